//! Per-task facts read from `/proc`: thread lists, scheduler state letters,
//! wait channels, open file descriptors, and the tasks of a cgroup.
//!
//! Every reader goes through a [`HostRoot`], so fixtures in a tempdir and the
//! real `/proc` use the same code. Processes come and go while we read: a task
//! that exits between listing and reading is skipped by the list readers
//! rather than failing the whole read, and single-process readers report it as
//! [`ProcfsError::Gone`] so callers can tell "exited" from "broken".

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{IoContext, WrappedIoError};
use crate::root::HostRoot;

/// Why a `/proc` read failed.
#[derive(Debug, thiserror::Error)]
pub enum ProcfsError {
    /// The process (or thread) exited before or while it was read.
    #[error("process {pid} is gone")]
    Gone {
        /// The pid (or tid) that vanished.
        pid: i32,
    },
    /// Reading a file failed for another reason (permissions, I/O).
    #[error(transparent)]
    Io(#[from] WrappedIoError),
    /// A file had content we could not understand.
    #[error("{path}: malformed {what}")]
    Malformed {
        /// The file that was read.
        path: PathBuf,
        /// What was expected in it.
        what: &'static str,
    },
}

impl ProcfsError {
    /// Whether the error only says that the process exited.
    pub fn is_gone(&self) -> bool {
        matches!(self, ProcfsError::Gone { .. })
    }
}

/// The one-letter scheduler state of a task, as `/proc/<pid>/stat` shows it
/// (`R`, `S`, `D`, `T`, `t`, `Z`, `X`, `I`, `P`...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct TaskState(pub char);

impl TaskState {
    /// `D`: uninterruptible sleep. Such a task ignores the freezer's fake
    /// signal, so it is the usual reason a cgroup stays `FREEZING`.
    ///
    /// Careful: since Linux 6.1 a task frozen *in place* (in a freezable
    /// sleep) is also reported as `D`; tell them apart by `wchan` or by
    /// looking again after a thaw.
    pub fn is_uninterruptible(self) -> bool {
        self.0 == 'D'
    }

    /// `T` (stopped by a signal) or `t` (stopped by a tracer).
    pub fn is_stopped(self) -> bool {
        matches!(self.0, 'T' | 't')
    }

    /// `Z` (zombie) or `X` (dead).
    pub fn is_dead(self) -> bool {
        matches!(self.0, 'Z' | 'X')
    }

    /// A human word for the state, as `/proc/<pid>/status` spells it.
    pub fn describe(self) -> &'static str {
        match self.0 {
            'R' => "running",
            'S' => "sleeping",
            'D' => "disk sleep",
            'T' => "stopped",
            't' => "tracing stop",
            'Z' => "zombie",
            'X' => "dead",
            'I' => "idle",
            'P' => "parked",
            _ => "unknown",
        }
    }
}

impl std::fmt::Display for TaskState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What `/proc` says about one task (thread).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskInfo {
    /// The thread-group id (the process's pid).
    pub pid: i32,
    /// The thread id (equal to `pid` for the main thread).
    pub tid: i32,
    /// The task's command name (`comm`, at most 15 bytes).
    pub comm: String,
    /// Scheduler state letter.
    pub state: TaskState,
    /// The kernel function the task sleeps in (`wchan`), when it sleeps and
    /// the kernel lets us see it. `None` for running tasks (the kernel prints
    /// `0`) and where access is denied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wchan: Option<String>,
}

impl std::fmt::Display for TaskInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {}", self.pid)?;
        if self.tid != self.pid {
            write!(f, " tid {}", self.tid)?;
        }
        write!(f, " ({}) state {}", self.comm, self.state)?;
        if let Some(w) = &self.wchan {
            write!(f, " wchan {w}")?;
        }
        Ok(())
    }
}

/// What `/proc/<pid>/stat` says about a process ([`Procfs::stat`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProcStat {
    /// The main thread's command name (`comm`).
    pub comm: String,
    /// The main thread's scheduler state.
    pub state: TaskState,
    /// Start time in clock ticks after boot.
    pub start_time: u64,
    /// How many threads the process has.
    pub threads: u32,
}

/// One open file descriptor of a process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FdInfo {
    /// The descriptor number.
    pub fd: i32,
    /// What the `/proc/<pid>/fd/<fd>` link points at: a path, or a
    /// pseudo-target such as `anon_inode:[eventfd]`, `pipe:[1234]`,
    /// `socket:[5678]`.
    pub target: String,
}

impl FdInfo {
    /// Whether this descriptor is an eventfd (the object seed 002's shim
    /// leaks one of per exec).
    pub fn is_eventfd(&self) -> bool {
        self.target == "anon_inode:[eventfd]"
    }
}

/// One line of `/proc/<pid>/cgroup`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProcCgroup {
    /// Hierarchy id (`0` for the v2 hierarchy).
    pub hierarchy: u32,
    /// Controllers bound to that hierarchy (`cpu,cpuacct`, `name=systemd`);
    /// empty for v2.
    pub controllers: Vec<String>,
    /// The cgroup path, relative to the hierarchy's root (`/docker/abc`).
    pub path: String,
}

/// Reader of `/proc` (and of cgroup task lists) under a [`HostRoot`].
#[derive(Debug, Clone, Default)]
pub struct Procfs {
    root: HostRoot,
}

impl Procfs {
    /// A reader of the host under `root`.
    pub fn new(root: HostRoot) -> Self {
        Self { root }
    }

    /// A reader of this machine's `/proc`.
    pub fn real() -> Self {
        Self::new(HostRoot::real())
    }

    /// The root this reader works under.
    pub fn root(&self) -> &HostRoot {
        &self.root
    }

    fn pid_dir(&self, pid: i32) -> PathBuf {
        self.root.join(format!("/proc/{pid}"))
    }

    fn task_dir(&self, pid: i32, tid: i32) -> PathBuf {
        self.root.join(format!("/proc/{pid}/task/{tid}"))
    }

    /// The thread ids of process `pid`, sorted.
    pub fn thread_ids(&self, pid: i32) -> Result<Vec<i32>, ProcfsError> {
        let dir = self.pid_dir(pid).join("task");
        let mut tids = numeric_entries(&dir).map_err(|e| gone_or(e, pid, "read dir", &dir))?;
        tids.sort_unstable();
        Ok(tids)
    }

    /// What `/proc` says about thread `tid` of process `pid`.
    pub fn task(&self, pid: i32, tid: i32) -> Result<TaskInfo, ProcfsError> {
        let dir = self.task_dir(pid, tid);
        let stat_path = dir.join("stat");
        let stat = read_small(&stat_path).map_err(|e| gone_or(e, tid, "read", &stat_path))?;
        let (comm, state) = parse_stat(&stat).ok_or_else(|| ProcfsError::Malformed {
            path: stat_path.clone(),
            what: "stat line",
        })?;
        let wchan = read_wchan(&dir.join("wchan"));
        Ok(TaskInfo {
            pid,
            tid,
            comm,
            state,
            wchan,
        })
    }

    /// Every thread of process `pid`. Threads that exit while we read are
    /// left out; [`ProcfsError::Gone`] only when the process itself is gone.
    pub fn process_tasks(&self, pid: i32) -> Result<Vec<TaskInfo>, ProcfsError> {
        let tids = self.thread_ids(pid)?;
        let mut out = Vec::with_capacity(tids.len());
        for tid in tids {
            match self.task(pid, tid) {
                Ok(t) => out.push(t),
                Err(e) if e.is_gone() => continue,
                Err(e) => return Err(e),
            }
        }
        if out.is_empty() {
            return Err(ProcfsError::Gone { pid });
        }
        Ok(out)
    }

    /// Name, state and start time of process `pid` (its main thread) from
    /// one read of `/proc/<pid>/stat`. Node-wide scans look at every
    /// process; one read instead of a `task` plus a `start_time` keeps a
    /// 1000-container scan within its budget.
    pub fn stat(&self, pid: i32) -> Result<ProcStat, ProcfsError> {
        let path = self.pid_dir(pid).join("stat");
        let stat = read_small(&path).map_err(|e| gone_or(e, pid, "read", &path))?;
        let malformed = || ProcfsError::Malformed {
            path: path.clone(),
            what: "stat line",
        };
        let (comm, state) = parse_stat(&stat).ok_or_else(malformed)?;
        let start_time = parse_start_time(&stat).ok_or_else(malformed)?;
        // Field 20 (`num_threads`): the 18th after the `)` that closes comm.
        let threads = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(17)?.parse().ok())
            .ok_or_else(malformed)?;
        Ok(ProcStat {
            comm,
            state,
            start_time,
            threads,
        })
    }

    /// When process `pid` started, in clock ticks after boot (field 22 of
    /// `/proc/<pid>/stat`). With the pid it names a process uniquely: a pid
    /// can be reused, a (pid, start time) pair cannot.
    pub fn start_time(&self, pid: i32) -> Result<u64, ProcfsError> {
        let path = self.pid_dir(pid).join("stat");
        let stat = read_small(&path).map_err(|e| gone_or(e, pid, "read", &path))?;
        parse_start_time(&stat).ok_or(ProcfsError::Malformed {
            path,
            what: "stat line",
        })
    }

    /// The thread-group id (pid) that thread `tid` belongs to, from the
    /// `Tgid:` line of `/proc/<tid>/status`.
    pub fn tgid_of(&self, tid: i32) -> Result<i32, ProcfsError> {
        let path = self.pid_dir(tid).join("status");
        let text = read_small(&path).map_err(|e| gone_or(e, tid, "read", &path))?;
        text.lines()
            .find_map(|l| l.strip_prefix("Tgid:"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or(ProcfsError::Malformed {
                path,
                what: "Tgid line",
            })
    }

    /// The seccomp mode of thread `tid` (the `Seccomp:` line of
    /// `/proc/<tid>/status`: 0 none, 1 strict, 2 filter); `None` when the
    /// kernel does not show it.
    pub fn seccomp_mode(&self, tid: i32) -> Result<Option<u8>, ProcfsError> {
        let path = self.pid_dir(tid).join("status");
        let text = read_small(&path).map_err(|e| gone_or(e, tid, "read", &path))?;
        Ok(text
            .lines()
            .find_map(|l| l.strip_prefix("Seccomp:"))
            .and_then(|v| v.trim().parse().ok()))
    }

    /// The open file descriptors of process `pid`, sorted by number.
    /// Descriptors closed while we read are left out.
    pub fn fds(&self, pid: i32) -> Result<Vec<FdInfo>, ProcfsError> {
        let dir = self.pid_dir(pid).join("fd");
        let mut fds = numeric_entries(&dir).map_err(|e| gone_or(e, pid, "read dir", &dir))?;
        fds.sort_unstable();
        let mut out = Vec::with_capacity(fds.len());
        for fd in fds {
            let link = dir.join(fd.to_string());
            match fs::read_link(&link) {
                Ok(t) => out.push(FdInfo {
                    fd,
                    target: t.to_string_lossy().into_owned(),
                }),
                Err(e) if is_gone(&e) => continue,
                Err(e) => return Err(wrap("readlink", &link, e).into()),
            }
        }
        Ok(out)
    }

    /// How many eventfds process `pid` holds open.
    pub fn eventfd_count(&self, pid: i32) -> Result<usize, ProcfsError> {
        Ok(self.fds(pid)?.iter().filter(|f| f.is_eventfd()).count())
    }

    /// [`Procfs::eventfd_count`], unless `pid` holds more than `cap` fds:
    /// then `None`, after counting directory entries only (no `readlink`,
    /// no table in memory). A process with a million fds would otherwise
    /// cost every scan ~90 MB and a million system calls.
    pub fn eventfd_count_capped(&self, pid: i32, cap: usize) -> Result<Option<usize>, ProcfsError> {
        let dir = self.pid_dir(pid).join("fd");
        let mut n = 0usize;
        for entry in fs::read_dir(&dir).map_err(|e| gone_or(e, pid, "read dir", &dir))? {
            entry.map_err(|e| gone_or(e, pid, "read dir", &dir))?;
            n += 1;
            if n > cap {
                return Ok(None);
            }
        }
        self.eventfd_count(pid).map(Some)
    }

    /// The cgroups of process `pid`, one entry per hierarchy.
    pub fn cgroups(&self, pid: i32) -> Result<Vec<ProcCgroup>, ProcfsError> {
        let path = self.pid_dir(pid).join("cgroup");
        let text = read_small(&path).map_err(|e| gone_or(e, pid, "read", &path))?;
        text.lines()
            .filter(|l| !l.is_empty())
            .map(|l| {
                parse_cgroup_line(l).ok_or_else(|| ProcfsError::Malformed {
                    path: path.clone(),
                    what: "cgroup line",
                })
            })
            .collect()
    }

    /// The v2 cgroup path of process `pid` (the `0::` line), if it has one.
    pub fn v2_cgroup(&self, pid: i32) -> Result<Option<String>, ProcfsError> {
        Ok(self
            .cgroups(pid)?
            .into_iter()
            .find(|c| c.hierarchy == 0 && c.controllers.is_empty())
            .map(|c| c.path))
    }

    /// The processes (thread-group ids) directly in the cgroup at host path
    /// `cgroup_dir` (its `cgroup.procs`), sorted. Works for v1 and v2.
    pub fn cgroup_procs(&self, cgroup_dir: &Path) -> Result<Vec<i32>, ProcfsError> {
        let path = self.root.join(cgroup_dir).join("cgroup.procs");
        read_id_list(&path)
    }

    /// The threads directly in the cgroup at host path `cgroup_dir`, sorted:
    /// `tasks` on v1, `cgroup.threads` on v2.
    pub fn cgroup_threads(&self, cgroup_dir: &Path) -> Result<Vec<i32>, ProcfsError> {
        let dir = self.root.join(cgroup_dir);
        let v1 = dir.join("tasks");
        // Try v1 first and fall back on ENOENT: one lookup, not two, on
        // the path every scan takes for every container.
        match read_small(&v1) {
            Ok(text) => parse_id_list(&text, &v1),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                read_id_list(&dir.join("cgroup.threads"))
            }
            Err(e) => Err(wrap("read", &v1, e).into()),
        }
    }

    /// Every task in the cgroup at host path `cgroup_dir`, and, when
    /// `recursive`, in its descendant cgroups (the freezer freezes those too).
    /// Tasks that exit while we read are left out.
    pub fn cgroup_tasks(
        &self,
        cgroup_dir: &Path,
        recursive: bool,
    ) -> Result<Vec<TaskInfo>, ProcfsError> {
        let mut out = Vec::new();
        for tid in self.cgroup_tids(cgroup_dir, recursive)? {
            match self.tgid_of(tid).and_then(|pid| self.task(pid, tid)) {
                Ok(t) => out.push(t),
                Err(e) if e.is_gone() => continue,
                Err(e) => return Err(e),
            }
        }
        out.sort_by_key(|t| (t.pid, t.tid));
        Ok(out)
    }

    /// The thread ids in the cgroup at host path `cgroup_dir` and, when
    /// `recursive`, in its descendant cgroups, sorted: what
    /// [`Procfs::cgroup_tasks`] describes, without reading anything per
    /// thread (a scan that only needs some threads looks closer at those).
    pub fn cgroup_tids(&self, cgroup_dir: &Path, recursive: bool) -> Result<Vec<i32>, ProcfsError> {
        let mut out = Vec::new();
        let mut dirs = vec![cgroup_dir.to_path_buf()];
        while let Some(dir) = dirs.pop() {
            out.extend(self.cgroup_threads(&dir)?);
            if recursive {
                let real = self.root.join(&dir);
                let entries = match fs::read_dir(&real) {
                    Ok(e) => e,
                    // A child cgroup removed while we walk: nothing to list.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(wrap("read dir", &real, e).into()),
                };
                for entry in entries.flatten() {
                    if entry.file_type().is_ok_and(|t| t.is_dir()) {
                        dirs.push(dir.join(entry.file_name()));
                    }
                }
            }
        }
        out.sort_unstable();
        Ok(out)
    }
}

fn wrap(op: &'static str, path: &Path, source: io::Error) -> WrappedIoError {
    WrappedIoError {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// ENOENT and ESRCH both mean "the process went away" under `/proc`.
fn is_gone(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH)
}

fn gone_or(e: io::Error, pid: i32, op: &'static str, path: &Path) -> ProcfsError {
    if is_gone(&e) {
        ProcfsError::Gone { pid }
    } else {
        wrap(op, path, e).into()
    }
}

/// Numeric entries of a directory (`/proc/<pid>/task`, `/proc/<pid>/fd`).
fn numeric_entries(dir: &Path) -> io::Result<Vec<i32>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if let Some(n) = entry.file_name().to_str().and_then(|s| s.parse().ok()) {
            out.push(n);
        }
    }
    Ok(out)
}

fn read_id_list(path: &Path) -> Result<Vec<i32>, ProcfsError> {
    let text = read_small(path).with_path("read", path)?;
    parse_id_list(&text, path)
}

fn parse_id_list(text: &str, path: &Path) -> Result<Vec<i32>, ProcfsError> {
    let mut ids = text
        .split_whitespace()
        .map(|w| {
            w.parse().map_err(|_| ProcfsError::Malformed {
                path: path.to_path_buf(),
                what: "id list",
            })
        })
        .collect::<Result<Vec<i32>, _>>()?;
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// Read a small file (`stat`, `wchan`, `cgroup`, a cgroup's `tasks`) in as
/// few syscalls as possible: no size probe (`statx`) before reading, and no
/// extra `read` to find the end when a read already came back short (procfs
/// hands a small file over whole; a regular file is short only at its end).
/// A node-wide scan makes thousands of these reads.
pub(crate) fn read_small(path: &Path) -> io::Result<String> {
    use std::io::Read;
    let mut f = fs::File::open(path)?;
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = match f.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        out.extend_from_slice(&chunk[..n]);
        if n < chunk.len() {
            break;
        }
    }
    String::from_utf8(out).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// `wchan` is `0` (or empty) when the task runs; unreadable means "not
/// known", which is no reason to fail a diagnosis.
pub(crate) fn read_wchan(path: &Path) -> Option<String> {
    let s = read_small(path).ok()?;
    let s = s.trim();
    (!s.is_empty() && s != "0").then(|| s.to_owned())
}

/// `1234 (comm with (parens)) S 1 ...` -> (comm, state). The comm may hold
/// spaces and parentheses, so split at the *last* `)`.
pub(crate) fn parse_stat(stat: &str) -> Option<(String, TaskState)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    if close < open {
        return None;
    }
    let comm = stat[open + 1..close].to_owned();
    let state = stat[close + 1..].trim_start().chars().next()?;
    Some((comm, TaskState(state)))
}

/// Field 22 (`starttime`): the 20th field after the `)` that closes comm.
fn parse_start_time(stat: &str) -> Option<u64> {
    let close = stat.rfind(')')?;
    stat[close + 1..].split_whitespace().nth(19)?.parse().ok()
}

/// `4:cpu,cpuacct:/docker/abc` or `0::/user.slice`.
fn parse_cgroup_line(line: &str) -> Option<ProcCgroup> {
    let mut parts = line.splitn(3, ':');
    let hierarchy = parts.next()?.parse().ok()?;
    let controllers = parts.next()?;
    let path = parts.next()?.to_owned();
    let controllers = if controllers.is_empty() {
        Vec::new()
    } else {
        controllers.split(',').map(str::to_owned).collect()
    };
    Some(ProcCgroup {
        hierarchy,
        controllers,
        path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(p, text).expect("write");
    }

    /// A fixture host: process 100 with threads 100 (sleeping in a pipe
    /// read) and 101 (in D state), plus a listed thread 102 that exited
    /// before we could read it.
    fn fixture() -> tempfile::TempDir {
        let d = tempfile::tempdir().expect("tempdir");
        let r = d.path();
        write(
            r,
            "proc/100/task/100/stat",
            "100 (my (odd) comm) S 1 100 100 0 -1\n",
        );
        write(r, "proc/100/task/100/wchan", "pipe_read");
        write(
            r,
            "proc/100/task/101/stat",
            "101 (worker) D 1 100 100 0 -1\n",
        );
        write(r, "proc/100/task/101/wchan", "fifo_open");
        fs::create_dir_all(r.join("proc/100/task/102")).expect("mkdir");
        write(r, "proc/100/status", "Name:\tx\nTgid:\t100\nPid:\t100\n");
        write(
            r,
            "proc/101/status",
            "Name:\tworker\nTgid:\t100\nPid:\t101\n",
        );
        write(
            r,
            "proc/100/cgroup",
            "4:cpu,cpuacct:/docker/abc\n1:name=systemd:/x\n0::/kubepods/pod1\n",
        );
        fs::create_dir_all(r.join("proc/100/fd")).expect("mkdir");
        symlink("anon_inode:[eventfd]", r.join("proc/100/fd/5")).expect("symlink");
        symlink("anon_inode:[eventfd]", r.join("proc/100/fd/7")).expect("symlink");
        symlink("/dev/null", r.join("proc/100/fd/0")).expect("symlink");
        symlink("pipe:[42]", r.join("proc/100/fd/12")).expect("symlink");
        write(r, "sys/fs/cgroup/freezer/c1/tasks", "101\n100\n999\n");
        write(r, "sys/fs/cgroup/freezer/c1/cgroup.procs", "100\n");
        write(r, "sys/fs/cgroup/unified/c2/cgroup.threads", "100\n");
        d
    }

    #[test]
    fn stat_parses_comm_with_parens_and_spaces() {
        assert_eq!(
            parse_stat("7 (a) b) c) R 1 2"),
            Some(("a) b) c".to_owned(), TaskState('R')))
        );
        let line = "7 (a b) S 1 7 7 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 1 0 123456 1000 50";
        assert_eq!(parse_start_time(line), Some(123456));
        assert_eq!(parse_start_time("7 (a) S 1"), None);
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x)"), None);
    }

    #[test]
    fn tasks_of_a_process_skip_threads_that_exited() {
        let d = fixture();
        let p = Procfs::new(HostRoot::new(d.path()));
        assert_eq!(p.thread_ids(100).expect("tids"), vec![100, 101, 102]);
        let tasks = p.process_tasks(100).expect("tasks");
        assert_eq!(tasks.len(), 2, "thread 102 has no stat: it exited, skipped");
        assert_eq!(tasks[0].comm, "my (odd) comm");
        assert_eq!(tasks[0].state, TaskState('S'));
        assert_eq!(tasks[0].wchan.as_deref(), Some("pipe_read"));
        assert!(tasks[1].state.is_uninterruptible());
        assert_eq!(
            tasks[1].to_string(),
            "pid 100 tid 101 (worker) state D wchan fifo_open"
        );
        assert!(p.task(100, 102).expect_err("gone").is_gone());
        assert!(p.process_tasks(555).expect_err("gone").is_gone());
    }

    #[test]
    fn fds_and_eventfds_are_counted() {
        let d = fixture();
        let p = Procfs::new(HostRoot::new(d.path()));
        let fds = p.fds(100).expect("fds");
        assert_eq!(
            fds.iter().map(|f| f.fd).collect::<Vec<_>>(),
            vec![0, 5, 7, 12]
        );
        assert_eq!(fds[3].target, "pipe:[42]");
        assert_eq!(p.eventfd_count(100).expect("count"), 2);
        assert!(p.fds(555).expect_err("gone").is_gone());
    }

    #[test]
    fn cgroup_lines_parse() {
        let d = fixture();
        let p = Procfs::new(HostRoot::new(d.path()));
        let cg = p.cgroups(100).expect("cgroups");
        assert_eq!(cg.len(), 3);
        assert_eq!(cg[0].controllers, vec!["cpu", "cpuacct"]);
        assert_eq!(cg[0].path, "/docker/abc");
        assert_eq!(
            p.v2_cgroup(100).expect("v2").as_deref(),
            Some("/kubepods/pod1")
        );
    }

    #[test]
    fn cgroup_tasks_skip_tasks_that_exited() {
        let d = fixture();
        let p = Procfs::new(HostRoot::new(d.path()));
        let v1 = Path::new("/sys/fs/cgroup/freezer/c1");
        assert_eq!(p.cgroup_procs(v1).expect("procs"), vec![100]);
        assert_eq!(p.cgroup_threads(v1).expect("threads"), vec![100, 101, 999]);
        let tasks = p.cgroup_tasks(v1, true).expect("tasks");
        // 999 is listed but has no /proc entry: it exited, skipped.
        assert_eq!(
            tasks.iter().map(|t| t.tid).collect::<Vec<_>>(),
            vec![100, 101]
        );
        assert!(tasks.iter().all(|t| t.pid == 100));
        let v2 = Path::new("/sys/fs/cgroup/unified/c2");
        assert_eq!(p.cgroup_threads(v2).expect("threads"), vec![100]);
    }

    #[test]
    fn real_current_process() {
        let p = Procfs::real();
        let me = std::process::id() as i32;
        let tids = p.thread_ids(me).expect("tids");
        assert!(tids.contains(&me));
        let tasks = p.process_tasks(me).expect("tasks");
        let main = tasks.iter().find(|t| t.tid == me).expect("main thread");
        assert!(!main.comm.is_empty());
        // This thread is running the test, so its state is R.
        let this = nix::unistd::gettid().as_raw();
        assert_eq!(p.task(me, this).expect("self").state, TaskState('R'));
        // The file we hold open shows up among the fds.
        let f = tempfile::tempfile().expect("tempfile");
        let fds = p.fds(me).expect("fds");
        assert!(
            fds.iter().any(|d| d.target.contains("(deleted)")),
            "{fds:?}"
        );
        drop(f);
        assert!(p
            .cgroups(me)
            .expect("cgroups")
            .iter()
            .any(|c| !c.path.is_empty()));
    }

    /// Test-only seam: an eventfd, which std does not offer.
    #[allow(unsafe_code)]
    fn eventfd() -> std::os::fd::OwnedFd {
        use std::os::fd::FromRawFd;
        // SAFETY: eventfd(2) takes two integers and touches no memory of ours.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        assert!(fd >= 0, "eventfd: {}", io::Error::last_os_error());
        // SAFETY: fd is a fresh descriptor that nothing else owns.
        unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }
    }

    #[test]
    fn real_eventfds_are_counted() {
        let p = Procfs::real();
        let me = std::process::id() as i32;
        // Other tests run in parallel threads and may open eventfds of their
        // own, so look for *our* descriptors by number.
        let fds: Vec<_> = (0..3).map(|_| eventfd()).collect();
        let nums: Vec<i32> = fds.iter().map(std::os::fd::AsRawFd::as_raw_fd).collect();
        let seen = p.fds(me).expect("fds");
        for n in &nums {
            let fd = seen
                .iter()
                .find(|f| f.fd == *n)
                .expect("our eventfd listed");
            assert!(fd.is_eventfd(), "{fd:?}");
        }
        assert!(p.eventfd_count(me).expect("count") >= 3);
    }

    #[test]
    fn real_exited_process_reads_as_gone() {
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        let pid = child.id() as i32;
        child.wait().expect("wait");
        let p = Procfs::real();
        assert!(p.process_tasks(pid).expect_err("exited").is_gone());
        assert!(p.fds(pid).expect_err("exited").is_gone());
    }
}

/// The kernel function a `wchan` names, without the suffix compilers add to
/// cloned static functions (`.isra.0`, `.constprop.0`, `.part.0`): kernel
/// 6.18 reports `seccomp_do_user_notification.isra.0`, and checks compare
/// against the source name.
pub fn wchan_base(wchan: &str) -> &str {
    wchan.split_once('.').map_or(wchan, |(base, _)| base)
}

#[cfg(test)]
mod wchan_tests {
    #[test]
    fn clone_suffixes_are_dropped() {
        assert_eq!(
            super::wchan_base("seccomp_do_user_notification.isra.0"),
            "seccomp_do_user_notification"
        );
        assert_eq!(
            super::wchan_base("do_freezer_trap.constprop.0"),
            "do_freezer_trap"
        );
        assert_eq!(super::wchan_base("fifo_open"), "fifo_open");
    }

    #[test]
    fn fd_tables_over_the_cap_are_not_read() {
        let t = tempfile::tempdir().expect("tempdir");
        let dir = t.path().join("proc/77/fd");
        std::fs::create_dir_all(&dir).expect("mkdir");
        for i in 0..10 {
            let target = if i % 2 == 0 {
                "anon_inode:[eventfd]"
            } else {
                "/dev/null"
            };
            std::os::unix::fs::symlink(target, dir.join(i.to_string())).expect("fd");
        }
        let p = super::Procfs::new(crate::root::HostRoot::new(t.path()));
        assert_eq!(p.eventfd_count_capped(77, 20).expect("read"), Some(5));
        assert_eq!(
            p.eventfd_count_capped(77, 9).expect("read"),
            None,
            "over the cap"
        );
    }
}
