//! `seccomp-notify-stuck`: a task blocked in a seccomp user notification
//! (`seccomp_do_user_notification`) for longer than the policy allows.
//!
//! Seed 004 and DESIGN §2: a profile that notifies a syscall the runtime
//! itself issues before `execve` leaves the container's init waiting for an
//! agent that never answers; only SIGKILL ends it. The container may not even
//! have runtime state yet, so every task on the node is looked at and
//! attributed to a container by its cgroup.

use std::time::Duration;

use super::Ctx;
use crate::checks::CheckId;
use crate::diagnose::cause::{Cause, StuckCause};
use crate::diagnose::{ContainerRef, Finding, Severity};
use crate::procfs::{read_wchan, ProcStat, TaskInfo};

/// The kernel function a task waits in for the notifying agent's answer.
pub const SECCOMP_WCHAN: &str = "seccomp_do_user_notification";

/// Whether a `wchan` names [`SECCOMP_WCHAN`]. Compilers clone and rename
/// static kernel functions, and `wchan` shows the clone's symbol: kernel
/// 6.18 here reports `seccomp_do_user_notification.isra.0`, so a suffix
/// starting with `.` (`.isra.N`, `.constprop.N`, `.part.N`) still matches.
pub fn is_seccomp_wait(wchan: &str) -> bool {
    crate::procfs::wchan_base(wchan) == SECCOMP_WCHAN
}

/// A stuck task, with what is needed to act on it.
#[derive(Debug, Clone)]
pub struct StuckTask {
    /// The task.
    pub task: TaskInfo,
    /// Its process's start time (clock ticks since boot), to guard a kill
    /// against pid reuse.
    pub start_time: u64,
    /// How long the process has existed.
    pub age: Duration,
    /// Its cgroup path (v1 devices or v2).
    pub cgroup: Option<String>,
    /// Whether the process is still the runtime (runc, crun): a container
    /// init (or exec) that never reached the workload's `execve`. Only these are stuck by construction; a workload
    /// waiting on its agent may simply be served slowly.
    pub runtime_init: bool,
}

/// Whether the task is still the runtime (runc, crun) rather than the
/// workload: before `execve` an init keeps the runtime's name (`comm`:
/// `runc:[2:INIT]`, `runc:[1:CHILD]`, `crun`), which `execve` replaces with
/// the workload's. `/proc/<pid>/exe` cannot tell: after pivot_root it reads
/// `/` here, and the runtimes run from a sealed memfd copy of themselves.
fn is_runtime_init(ctx: &Ctx<'_>, pid: i32, comm: &str) -> bool {
    if comm.starts_with("runc:[") || comm == "crun" || comm == "runc" {
        return true;
    }
    std::fs::read_link(ctx.opts.root().join(format!("/proc/{pid}/exe")))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
        .is_some_and(|t| t.contains("runc_cloned") || t.ends_with("/runc") || t.ends_with("/crun"))
}

/// What is kept between scans for a waiting workload task: when it was
/// first seen waiting (unix seconds).
const WAITS_FILE: &str = "seccomp-waits.json";

/// Every task blocked in a seccomp notification on the node.
pub fn stuck_tasks(ctx: &Ctx<'_>) -> Vec<StuckTask> {
    let uptime = read_uptime(ctx).unwrap_or(Duration::ZERO);
    let ticks = clock_ticks();
    let mut out = Vec::new();
    for p in node_processes(ctx) {
        let pid = p.pid;
        // Every task of the node is looked at: read only its wchan, and the
        // rest only for the few that wait in a notification. Most processes
        // have one thread, whose wchan is the process's.
        let tids = if p.stat.threads == 1 {
            vec![pid]
        } else {
            // A many-threaded process whose main thread runs under no
            // filter (a shim, a daemon) is passed over: threads inherit the
            // filters of the thread that creates them, and the runtimes
            // install a container's filter on the thread that execs the
            // workload. Only a thread that installed a filter of its own,
            // after the others started, would be missed. Container
            // processes, which run under filters, are read thread by thread.
            if ctx.procfs.seccomp_mode(pid).ok().flatten() == Some(0) {
                continue;
            }
            let Ok(tids) = ctx.procfs.thread_ids(pid) else {
                continue;
            };
            tids
        };
        for tid in tids {
            let wchan_path = if p.stat.threads == 1 {
                ctx.opts.root().join(format!("/proc/{pid}/wchan"))
            } else {
                ctx.opts
                    .root()
                    .join(format!("/proc/{pid}/task/{tid}/wchan"))
            };
            let waiting = read_wchan(&wchan_path).is_some_and(|w| is_seccomp_wait(&w));
            if !waiting {
                continue;
            }
            let Ok(t) = ctx.procfs.task(pid, tid) else {
                continue;
            };
            if !t.wchan.as_deref().is_some_and(is_seccomp_wait) {
                continue;
            }
            let start = p.stat.start_time;
            let started = Duration::from_secs_f64(start as f64 / ticks);
            let age = uptime.saturating_sub(started);
            let cgroup = ctx.procfs.cgroups(pid).ok().and_then(|cgs| {
                cgs.iter()
                    .find(|c| c.controllers.iter().any(|n| n == "devices"))
                    .or_else(|| cgs.iter().find(|c| c.hierarchy == 0))
                    .map(|c| c.path.clone())
            });
            out.push(StuckTask {
                task: t,
                start_time: start,
                age,
                cgroup,
                runtime_init: is_runtime_init(ctx, pid, &p.stat.comm),
            });
        }
    }
    out
}

pub(in crate::diagnose) fn check(ctx: &Ctx<'_>) -> Vec<Finding> {
    let now = ctx
        .now
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let waits_path = super::state::path(ctx, WAITS_FILE);
    let previous: std::collections::BTreeMap<String, f64> = waits_path
        .as_deref()
        .map(super::state::load)
        .unwrap_or_default();
    let mut waits = std::collections::BTreeMap::new();
    let mut out = Vec::new();
    for s in stuck_tasks(ctx) {
        // A runtime init has no business living long before execve: its age
        // is the time it has been stuck. A workload's wait is measured from
        // the first scan that saw it waiting, kept between scans.
        let stuck = if s.runtime_init {
            s.age >= ctx.policy.stuck_after
        } else {
            let key = format!("{}:{}:{}", s.task.pid, s.start_time, s.task.tid);
            let first = previous.get(&key).copied().unwrap_or(now);
            waits.insert(key, first);
            now - first >= ctx.policy.stuck_after.as_secs_f64()
        };
        if !stuck {
            continue;
        }
        let container = s
            .cgroup
            .as_deref()
            .and_then(|cg| {
                ctx.containers
                    .iter()
                    .find(|c| c.cgroups.path.as_deref() == Some(cg))
            })
            .map(|c| c.reference())
            .or_else(|| {
                // Not in any runtime's state yet (the init never reached
                // execve): name it by its cgroup's last component, which is
                // the container id for runc, crun and containerd.
                let cg = s.cgroup.as_deref()?;
                let id = cg.rsplit('/').next().filter(|x| !x.is_empty())?;
                Some(ContainerRef {
                    id: id.trim_end_matches(".scope").to_string(),
                    runtime: "unknown".into(),
                    pod_namespace: None,
                    pod_name: None,
                    container_name: None,
                })
            });
        // Messages stay the same from scan to scan (no growing age in
        // them): reports are re-applied only when their content changes.
        out.push(Finding::new(
            CheckId::SeccompNotifyStuck,
            if s.runtime_init {
                Severity::Error
            } else {
                Severity::Warning
            },
            container,
            Cause::Stuck(StuckCause {
                pid: s.task.pid,
                tid: s.task.tid,
                comm: s.task.comm.clone(),
                start_time: s.start_time,
                cgroup: s.cgroup.clone(),
                runtime_init: s.runtime_init,
                task: s.task.to_string(),
                stuck_after_secs: ctx.policy.stuck_after.as_secs(),
            }),
        ));
    }
    if let Some(p) = &waits_path {
        super::state::save(p, &waits);
    }
    out
}

/// A process of the node as the node-wide checks see it.
#[derive(Debug, Clone)]
pub(in crate::diagnose) struct NodeProcess {
    /// Its pid.
    pub pid: i32,
    /// One read of its `/proc/<pid>/stat`.
    pub stat: ProcStat,
}

/// Every process of the node, read once per scan (on first use) and shared
/// by the checks that look at all of them: at 1000 containers the node has
/// thousands of processes, and each read costs a path walk.
pub(super) fn node_processes<'c>(ctx: &'c Ctx<'_>) -> &'c [NodeProcess] {
    ctx.processes.get_or_init(|| {
        all_pids(ctx)
            .into_iter()
            .filter_map(|pid| {
                Some(NodeProcess {
                    pid,
                    stat: ctx.procfs.stat(pid).ok()?,
                })
            })
            .collect()
    })
}

/// Every numeric entry of `/proc`.
fn all_pids(ctx: &Ctx<'_>) -> Vec<i32> {
    let Ok(rd) = std::fs::read_dir(ctx.opts.root().join("/proc")) else {
        return Vec::new();
    };
    let mut v: Vec<i32> = rd
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    v.sort_unstable();
    v
}

fn read_uptime(ctx: &Ctx<'_>) -> Option<Duration> {
    let s = std::fs::read_to_string(ctx.opts.root().join("/proc/uptime")).ok()?;
    let secs: f64 = s.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_secs_f64(secs))
}

fn clock_ticks() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .map(|t| t as f64)
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

#[cfg(test)]
mod tests {
    use super::is_seccomp_wait;

    #[test]
    fn compiler_clones_of_the_wait_function_match() {
        assert!(is_seccomp_wait("seccomp_do_user_notification"));
        assert!(is_seccomp_wait("seccomp_do_user_notification.isra.0"));
        assert!(is_seccomp_wait("seccomp_do_user_notification.constprop.0"));
        assert!(!is_seccomp_wait("seccomp_do_user_notification_x"));
        assert!(!is_seccomp_wait("do_epoll_wait"));
        assert!(!is_seccomp_wait(""));
    }
}

#[cfg(test)]
mod walk_tests {
    use std::fs;
    use std::path::Path;
    use std::time::Duration;

    use crate::checks::CheckId;
    use crate::diagnose::{scan, CheckPolicy, ScanOptions};
    use crate::root::HostRoot;

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(p, text).expect("write");
    }

    /// A process with `threads` threads; `stuck` names the one waiting in
    /// the notification (`None`: all in futex waits).
    fn process(root: &Path, pid: i32, threads: i32, seccomp: u8, stuck: Option<i32>) {
        let mut fields: Vec<String> = (3..=52).map(|i| i.to_string()).collect();
        fields[0] = "S".into();
        fields[17] = threads.to_string();
        fields[19] = "100".into();
        let stat = format!("{pid} (proc{pid}) {}\n", fields.join(" "));
        write(root, &format!("proc/{pid}/stat"), &stat);
        write(
            root,
            &format!("proc/{pid}/status"),
            &format!("Name:\tproc{pid}\nTgid:\t{pid}\nSeccomp:\t{seccomp}\n"),
        );
        write(
            root,
            &format!("proc/{pid}/cgroup"),
            &format!("1:devices:/c{pid}\n"),
        );
        for tid in pid..pid + threads {
            let w = if Some(tid) == stuck {
                "seccomp_do_user_notification.isra.0"
            } else {
                "futex_wait_queue"
            };
            write(root, &format!("proc/{pid}/task/{tid}/stat"), &stat);
            write(root, &format!("proc/{pid}/task/{tid}/wchan"), w);
            if tid == pid {
                write(root, &format!("proc/{pid}/wchan"), w);
            }
        }
    }

    #[test]
    fn threads_are_read_where_a_filter_can_be_and_clones_of_the_symbol_match() {
        let t = tempfile::tempdir().expect("tempdir");
        let r = t.path();
        write(r, "proc/uptime", "1000.00 1000.00\n");
        // Filtered and many-threaded: a non-main thread is stuck.
        process(r, 900, 3, 2, Some(902));
        // Single-threaded, stuck.
        process(r, 960, 1, 2, Some(960));
        // Many-threaded without a filter (a shim): passed over.
        process(r, 950, 3, 0, Some(952));
        let opts = ScanOptions::for_root(HostRoot::new(r));
        let policy = CheckPolicy {
            stuck_after: Duration::ZERO,
            ..CheckPolicy::default()
        };
        let report = scan(&opts, &policy);
        let mut tids: Vec<(String, String)> = report
            .findings
            .iter()
            .filter(|f| f.check == CheckId::SeccompNotifyStuck)
            .map(|f| {
                (
                    f.evidence()["tid"].clone(),
                    f.container
                        .as_ref()
                        .map(|c| c.id.clone())
                        .unwrap_or_default(),
                )
            })
            .collect();
        tids.sort();
        assert_eq!(
            tids,
            [
                ("902".to_string(), "c900".to_string()),
                ("960".into(), "c960".into())
            ]
        );
    }
}
