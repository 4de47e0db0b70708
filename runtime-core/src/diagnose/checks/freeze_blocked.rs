//! `freeze-blocked`: tasks in uninterruptible sleep inside a container's
//! cgroup. A freeze would wait for them and fail (seed 000: runc then went on
//! with a disruptive device update).

use super::Ctx;
use crate::checks::CheckId;
use crate::diagnose::cause::{BlockedCause, Cause};
use crate::diagnose::{Finding, Severity};
use crate::discovery::Container;

/// How long a task must stay in `D` to count.
const RESAMPLE: std::time::Duration = std::time::Duration::from_millis(200);

/// Wait channels of tasks that are frozen, not blocked: since Linux 6.1 a
/// frozen task also shows state `D`.
const FROZEN_WCHANS: &[&str] = &["__refrigerator", "do_freezer_trap", "freezer_wait"];

pub(in crate::diagnose) fn check(ctx: &Ctx<'_>, c: &Container) -> Vec<Finding> {
    let root = ctx.opts.root();
    let host_dir = match (c.cgroups.v1("freezer"), &c.cgroups.v2) {
        (Some(d), _) => d,
        (None, Some(d)) => d,
        (None, None) => return Vec::new(),
    };
    let tids = match ctx.procfs.cgroup_tids(host_dir, true) {
        Ok(t) => t,
        Err(e) => {
            tracing::debug!(container = %c.id, error = %e, "cgroup tasks unreadable");
            return Vec::new();
        }
    };
    // One read per thread (`/proc/<tid>/stat` names any thread): only those
    // in D are described in full. Every container is checked on every scan.
    // The node's process table already holds single-threaded processes
    // (most container processes): no read at all for those.
    let table = super::seccomp_stuck::node_processes(ctx);
    let tasks: Vec<crate::procfs::TaskInfo> = tids
        .into_iter()
        .filter(|tid| match table.binary_search_by_key(tid, |p| p.pid) {
            Ok(i) if table[i].stat.threads == 1 => table[i].stat.state.is_uninterruptible(),
            _ => ctx
                .procfs
                .stat(*tid)
                .is_ok_and(|s| s.state.is_uninterruptible()),
        })
        .filter_map(|tid| {
            ctx.procfs
                .tgid_of(tid)
                .and_then(|pid| ctx.procfs.task(pid, tid))
                .ok()
        })
        .collect();
    if tasks.is_empty() {
        return Vec::new();
    }
    // A cgroup that is (being) frozen on purpose shows its tasks in D: that
    // is not a blocker. Read only when something is in D (the rare case).
    if let Ok(s) = std::fs::read_to_string(root.join(host_dir).join("freezer.state")) {
        if s.trim() != "THAWED" {
            return Vec::new();
        }
    }
    let blocked = |t: &crate::procfs::TaskInfo| {
        t.state.is_uninterruptible()
            && !t
                .wchan
                .as_deref()
                .is_some_and(|w| FROZEN_WCHANS.contains(&crate::procfs::wchan_base(w)))
    };
    let first: Vec<_> = tasks.iter().filter(|t| blocked(t)).collect();
    if first.is_empty() {
        return Vec::new();
    }
    // Short disk waits are D too: only tasks still blocked a moment later
    // count. The second look costs nothing on the common, clean path.
    std::thread::sleep(RESAMPLE);
    let blockers: Vec<String> = first
        .iter()
        .filter_map(|t| ctx.procfs.task(t.pid, t.tid).ok())
        .filter(|t| blocked(t))
        .map(|t| t.to_string())
        .collect();
    if blockers.is_empty() {
        return Vec::new();
    }
    vec![Finding::new(
        CheckId::FreezeBlocked,
        Severity::Warning,
        Some(c.reference()),
        Cause::FreezeBlocked(BlockedCause {
            tasks: blockers,
            cgroup: host_dir.clone(),
        }),
    )]
}
