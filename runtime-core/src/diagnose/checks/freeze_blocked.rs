//! `freeze-blocked`: tasks in uninterruptible sleep inside a container's
//! cgroup. A freeze would wait for them and fail (seed 000: runc then went on
//! with a disruptive device update).

use super::Ctx;
use crate::checks::CheckId;
use crate::diagnose::cause::{BlockedCause, Cause};
use crate::diagnose::{Finding, Severity};
use crate::discovery::Container;

/// How long a task must stay in `D` to count.
pub(in crate::diagnose) const RESAMPLE: std::time::Duration = std::time::Duration::from_millis(200);

/// A container with tasks in `D` at the first look, to look at again after
/// the scan's one [`RESAMPLE`] wait.
pub(in crate::diagnose) struct Candidate<'c> {
    container: &'c Container,
    cgroup: std::path::PathBuf,
    first: Vec<crate::procfs::TaskInfo>,
}

fn blocked(t: &crate::procfs::TaskInfo) -> bool {
    t.state.is_uninterruptible()
        && !t
            .wchan
            .as_deref()
            .is_some_and(|w| FROZEN_WCHANS.contains(&crate::procfs::wchan_base(w)))
}

/// Wait channels of tasks that are frozen, not blocked: since Linux 6.1 a
/// frozen task also shows state `D`.
const FROZEN_WCHANS: &[&str] = &["__refrigerator", "do_freezer_trap", "freezer_wait"];

/// The first look at `c`: its tasks in uninterruptible sleep, if any.
pub(in crate::diagnose) fn first_look<'c>(
    ctx: &Ctx<'_>,
    c: &'c Container,
) -> Option<Candidate<'c>> {
    let root = ctx.opts.root();
    let host_dir = match (c.cgroups.v1("freezer"), &c.cgroups.v2) {
        (Some(d), _) => d,
        (None, Some(d)) => d,
        (None, None) => return None,
    };
    let tids = match ctx.procfs.cgroup_tids(host_dir, true) {
        Ok(t) => t,
        Err(e) => {
            tracing::debug!(container = %c.id, error = %e, "cgroup tasks unreadable");
            return None;
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
        return None;
    }
    // A cgroup that is (being) frozen on purpose shows its tasks in D: that
    // is not a blocker. Read only when something is in D (the rare case).
    if let Ok(s) = std::fs::read_to_string(root.join(host_dir).join("freezer.state")) {
        if s.trim() != "THAWED" {
            return None;
        }
    }
    let first: Vec<_> = tasks.into_iter().filter(blocked).collect();
    if first.is_empty() {
        return None;
    }
    Some(Candidate {
        container: c,
        cgroup: host_dir.clone(),
        first,
    })
}

/// The second look, after the scan's one wait: short disk waits are `D`
/// too, so only tasks still blocked a moment later count. A tenant with
/// many containers of `D` tasks (a vfork parent stays in `D`) costs one
/// wait per scan, not one per container.
pub(in crate::diagnose) fn confirm(ctx: &Ctx<'_>, cand: Candidate<'_>) -> Option<Finding> {
    let blockers: Vec<String> = cand
        .first
        .iter()
        .filter_map(|t| ctx.procfs.task(t.pid, t.tid).ok())
        .filter(blocked)
        .map(|t| t.to_string())
        .collect();
    if blockers.is_empty() {
        return None;
    }
    Some(Finding::new(
        CheckId::FreezeBlocked,
        Severity::Warning,
        Some(cand.container.reference()),
        Cause::FreezeBlocked(BlockedCause {
            tasks: blockers,
            cgroup: cand.cgroup,
        }),
    ))
}
