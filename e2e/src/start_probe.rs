//! Start a container that may hang, with a deadline, and leave nothing behind.
//!
//! [`crate::Container::run`] expects a container to come up. Profiles that
//! deadlock the runtime do not: `RUNTIME run -d` never returns, and the
//! container's init sits in `seccomp_do_user_notification` until SIGKILL.
//! [`probe_start`] runs the runtime as a child with a deadline, classifies
//! what happened ([`StartOutcome`]), and a guard kills every process of the
//! attempt (the runtime child, its descendants, everything in the
//! container's cgroups) and runs `delete -f`, on every path including panics.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::{Bundle, Runtime};

/// What a container start did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartOutcome {
    /// The runtime exited non-zero before the container ran.
    Refused {
        /// The runtime's stderr, trimmed.
        error: String,
    },
    /// The runtime did not finish within the deadline.
    Hangs {
        /// `wchan` of the attempt's processes when the deadline passed
        /// (`pid` -> kernel function), the evidence of where they sleep.
        wchan: BTreeMap<u32, String>,
    },
    /// The runtime exited 0.
    Started {
        /// Whether the workload itself got past `execve` within the deadline
        /// (its `comm` became the workload's); `false` means the container is
        /// "running" but its init never reached the program.
        workload_running: bool,
        /// `wchan` of the init when the workload did not start.
        init_wchan: Option<String>,
        /// The syscall number the init is blocked in (from
        /// `/proc/<pid>/syscall`) when the workload did not start.
        init_syscall: Option<i64>,
    },
}

impl StartOutcome {
    /// Short label: `refused`, `hangs`, `starts`, `starts-blocked`.
    pub fn label(&self) -> &'static str {
        match self {
            StartOutcome::Refused { .. } => "refused",
            StartOutcome::Hangs { .. } => "hangs",
            StartOutcome::Started {
                workload_running: true,
                ..
            } => "starts",
            StartOutcome::Started {
                workload_running: false,
                ..
            } => "starts-blocked",
        }
    }
}

/// `RUNTIME run -d` the bundle, wait at most `deadline`, classify, clean up.
/// `workload_comm` is the `comm` the container's init has once it runs the
/// workload (`sleep` for busybox's `sleep`).
pub fn probe_start(
    runtime: Runtime,
    id: &str,
    bundle: &Bundle,
    deadline: Duration,
    workload_comm: &str,
) -> Result<StartOutcome> {
    let stderr_path = bundle.dir.join("runtime.stderr");
    let stderr = fs::File::create(&stderr_path)
        .with_context(|| format!("create {}", stderr_path.display()))?;
    // stdout/stderr go to a file, not a pipe: a hung init that inherited a
    // pipe would keep it open and block whoever reads it.
    let child = Command::new(runtime.binary())
        .args(["run", "-d", "--bundle"])
        .arg(&bundle.dir)
        .arg(id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .with_context(|| format!("spawn {} run", runtime.binary()))?;
    let mut guard = Attempt {
        runtime,
        id: id.to_string(),
        child: Some(child),
    };
    let start = Instant::now();
    let status = loop {
        let child = guard.child.as_mut().context("child")?;
        if let Some(st) = child.try_wait().context("wait runtime")? {
            break Some(st);
        }
        if start.elapsed() >= deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let outcome = match status {
        None => {
            let wchan = guard.pids().into_iter().map(|p| (p, wchan(p))).collect();
            StartOutcome::Hangs { wchan }
        }
        Some(st) if !st.success() => {
            let error = fs::read_to_string(&stderr_path)
                .unwrap_or_default()
                .trim()
                .to_string();
            StartOutcome::Refused { error }
        }
        Some(_) => {
            let init = init_pid(runtime, id);
            let mut workload_running = false;
            while let Some(pid) = init {
                if comm(pid).as_deref() == Some(workload_comm) {
                    workload_running = true;
                    break;
                }
                if start.elapsed() >= deadline {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let blocked = (!workload_running).then_some(init).flatten();
            StartOutcome::Started {
                workload_running,
                init_wchan: blocked.map(wchan),
                init_syscall: blocked.and_then(current_syscall),
            }
        }
    };
    guard.cleanup();
    Ok(outcome)
}

/// One start attempt's processes; everything is killed and the container
/// deleted when it drops.
struct Attempt {
    runtime: Runtime,
    id: String,
    child: Option<Child>,
}

impl Attempt {
    /// Every live process of the attempt: the runtime child, its descendants
    /// (the container init is one while `run` has not returned) and the
    /// members of the container's cgroups (after `run` returned).
    fn pids(&self) -> BTreeSet<u32> {
        let mut pids = BTreeSet::new();
        if let Some(c) = &self.child {
            pids.insert(c.id());
            pids.extend(descendants(c.id()));
        }
        for dir in cgroup_dirs(&self.id) {
            if let Ok(text) = fs::read_to_string(dir.join("cgroup.procs")) {
                pids.extend(text.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
            }
        }
        pids
    }

    fn cleanup(&mut self) {
        // Kill until nothing is left: a hung init may fork nothing, but the
        // runtime child can still be creating processes when first killed.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let pids = self.pids();
            let alive: Vec<u32> = pids
                .into_iter()
                .filter(|p| Path::new(&format!("/proc/{p}")).exists())
                .collect();
            let own = self.child.as_ref().map(Child::id);
            let others: Vec<u32> = alive.iter().copied().filter(|p| Some(*p) != own).collect();
            for p in &alive {
                if let Ok(raw) = i32::try_from(*p) {
                    let _ = kill(Pid::from_raw(raw), Signal::SIGKILL);
                }
            }
            if let Some(mut c) = self.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
            if others.iter().all(|p| is_gone(*p)) || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let bin = self.runtime.binary();
        let _ = Command::new(bin)
            .args(["delete", "-f", &self.id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        for dir in cgroup_dirs(&self.id) {
            let _ = fs::remove_dir(&dir);
        }
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if self.child.is_some() || !self.pids().is_empty() {
            self.cleanup();
        }
    }
}

/// Zombie or absent: either way it no longer runs anything.
pub fn is_gone(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => {
            s.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                == Some("Z")
        }
        Err(_) => true,
    }
}

/// The container's cgroup directories under every mounted hierarchy, for the
/// `/warden-e2e/<id>` cgroups path [`Bundle::busybox`] sets.
pub fn cgroup_dirs(id: &str) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir("/sys/fs/cgroup") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("warden-e2e").join(id))
        .filter(|p| p.is_dir())
        .collect()
}

/// The container init's pid from the runtime's state, if it has one.
fn init_pid(runtime: Runtime, id: &str) -> Option<u32> {
    let out = Command::new(runtime.binary())
        .args(["state", id])
        .output()
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v["pid"]
        .as_u64()
        .and_then(|p| u32::try_from(p).ok())
        .filter(|p| *p > 0)
}

/// All descendants of `root`, from the ppid field of `/proc/*/stat`.
pub fn descendants(root: u32) -> BTreeSet<u32> {
    let mut parent_of = Vec::new();
    if let Ok(entries) = fs::read_dir("/proc") {
        for e in entries.filter_map(|e| e.ok()) {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if let Some(ppid) = fs::read_to_string(e.path().join("stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(')')
                        .and_then(|(_, r)| r.split_whitespace().nth(1)?.parse::<u32>().ok())
                })
            {
                parent_of.push((pid, ppid));
            }
        }
    }
    let mut found = BTreeSet::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for (child, _) in parent_of.iter().filter(|(_, pp)| *pp == p) {
            if found.insert(*child) {
                frontier.push(*child);
            }
        }
    }
    found
}

/// `/proc/<pid>/wchan`: the kernel function a sleeping task waits in.
pub fn wchan(pid: u32) -> String {
    fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default()
}

/// The syscall a blocked task is in: the first field of `/proc/<pid>/syscall`
/// (`running` or `-1` when it is not in one).
pub fn current_syscall(pid: u32) -> Option<i64> {
    fs::read_to_string(format!("/proc/{pid}/syscall"))
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn comm(pid: u32) -> Option<String> {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim().to_string())
}
