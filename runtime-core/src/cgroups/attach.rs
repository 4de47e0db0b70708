//! Putting processes into cgroups without losing the seed-001 race.
//!
//! Seed 001: `docker exec` (and so exec liveness probes) failed with
//! `write .../cgroup.procs: invalid argument`. Kernels 4.8 to 6.0 refuse to
//! move a process into a cpu cgroup while one of its threads is still being
//! created (`TASK_NEW`), and a Go runtime starts threads whenever it likes.
//! Two answers, both here:
//!
//! - [`attach`]: write the pid to `cgroup.procs`, and retry `EINVAL` with a
//!   short, bounded exponential backoff (the window is the few microseconds
//!   between a thread's creation and its first wake-up). Other errors fail
//!   at once, naming the file. The writer sits behind [`ProcsWriter`] so
//!   tests can inject `EINVAL`.
//! - [`spawn_into_cgroup`]: for *new* processes on cgroup v2 (Linux ≥ 5.7),
//!   `clone3()` with `CLONE_INTO_CGROUP` creates the child directly inside
//!   the target cgroup: there is no move, so nothing to race, and the child
//!   never runs a single instruction outside it.
//!
//! Which kernels are exposed: [`crate::host::kernel::attach_race_exposed`].

use std::ffi::{CString, OsStr, OsString};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use crate::error::{IoContext, WrappedIoError};

/// Writes a pid into a `cgroup.procs` file. The real one is
/// [`FsProcsWriter`]; tests inject failures.
pub trait ProcsWriter {
    /// Write `pid` to the `cgroup.procs` file at `procs`, in one `write(2)`.
    fn write_pid(&self, procs: &Path, pid: Pid) -> io::Result<()>;
}

/// The real writer: `open(O_WRONLY)` and one `write(2)` of the decimal pid.
#[derive(Debug, Clone, Copy, Default)]
pub struct FsProcsWriter;

impl ProcsWriter for FsProcsWriter {
    fn write_pid(&self, procs: &Path, pid: Pid) -> io::Result<()> {
        let mut f = OpenOptions::new().write(true).open(procs)?;
        // One write: the kernel parses one pid per write on cgroup files.
        let n = f.write(pid.as_raw().to_string().as_bytes())?;
        if n == 0 {
            return Err(io::Error::from(io::ErrorKind::WriteZero));
        }
        Ok(())
    }
}

/// How often, and how patiently, `EINVAL` is retried.
///
/// The default makes up to 8 retries after the first attempt, sleeping 1,
/// 2, 4, 8, 16, 32, 50 and 50 ms: at most about 163 ms in all, close to
/// runc's 5 × 30 ms, but with most of the budget spent late, since the first
/// retry after a microsecond-wide window almost always succeeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    /// Retries after the first attempt.
    pub retries: u32,
    /// Sleep before the first retry.
    pub initial: Duration,
    /// The longest single sleep (each one doubles up to this).
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            retries: 8,
            initial: Duration::from_millis(1),
            max: Duration::from_millis(50),
        }
    }
}

impl Backoff {
    /// The sleeps before each retry, in order.
    pub fn delays(&self) -> impl Iterator<Item = Duration> + '_ {
        (0..self.retries).map(move |i| {
            let factor = 1u32.checked_shl(i).unwrap_or(u32::MAX);
            self.initial.saturating_mul(factor).min(self.max)
        })
    }

    /// The most time all retries can sleep.
    pub fn budget(&self) -> Duration {
        self.delays().sum()
    }
}

/// A successful attach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attached {
    /// Writes made (1 when the first one worked; more means `EINVAL` was
    /// retried: the seed-001 race fired and was absorbed).
    pub attempts: u32,
    /// Time from the first write to success.
    pub waited: Duration,
}

/// Why an attach failed.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// The write failed with something other than `EINVAL` (no such cgroup,
    /// no such process, permission...): not retried.
    #[error("attach pid {pid}: {source}")]
    Write {
        /// The process.
        pid: i32,
        /// The failed write, with its path.
        #[source]
        source: WrappedIoError,
    },
    /// `EINVAL` on every attempt.
    #[error(
        "attach pid {pid}: write {path}: EINVAL on all {attempts} attempts over {waited:?} \
         (a thread of the process kept being created, or the cgroup refuses it)"
    )]
    GaveUp {
        /// The process.
        pid: i32,
        /// The `cgroup.procs` file.
        path: PathBuf,
        /// Writes made.
        attempts: u32,
        /// Time spent.
        waited: Duration,
    },
}

/// Move process `pid` (all its threads) into the cgroup directory `cgroup`
/// (a v1 per-controller directory or a v2 directory), retrying `EINVAL` with
/// the default [`Backoff`].
pub fn attach(pid: Pid, cgroup: &Path) -> Result<Attached, AttachError> {
    attach_with(&FsProcsWriter, pid, cgroup, &Backoff::default())
}

/// [`attach`] with an explicit writer and backoff.
pub fn attach_with(
    writer: &dyn ProcsWriter,
    pid: Pid,
    cgroup: &Path,
    backoff: &Backoff,
) -> Result<Attached, AttachError> {
    let procs = cgroup.join("cgroup.procs");
    let start = Instant::now();
    let mut delays = backoff.delays();
    let mut attempts = 0;
    loop {
        attempts += 1;
        match writer.write_pid(&procs, pid) {
            Ok(()) => {
                if attempts > 1 {
                    tracing::debug!(pid = pid.as_raw(), path = %procs.display(), attempts, "attach succeeded after EINVAL");
                }
                return Ok(Attached {
                    attempts,
                    waited: start.elapsed(),
                });
            }
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => match delays.next() {
                Some(d) => std::thread::sleep(d),
                None => {
                    return Err(AttachError::GaveUp {
                        pid: pid.as_raw(),
                        path: procs,
                        attempts,
                        waited: start.elapsed(),
                    })
                }
            },
            Err(e) => {
                return Err(AttachError::Write {
                    pid: pid.as_raw(),
                    source: WrappedIoError {
                        op: "write",
                        path: procs,
                        source: e,
                    },
                })
            }
        }
    }
}

/// Why [`spawn_into_cgroup`] failed.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The cgroup directory could not be opened.
    #[error("spawn into cgroup: {0}")]
    Cgroup(#[source] WrappedIoError),
    /// This kernel has no `clone3()` or no `CLONE_INTO_CGROUP` (before 5.7).
    /// Spawn normally and [`attach`] instead.
    #[error("clone3(CLONE_INTO_CGROUP) is not supported by this kernel (needs Linux 5.7): {0}")]
    Unsupported(Errno),
    /// `clone3()` refused (for example `EBADF`: the directory is not in a
    /// cgroup v2 hierarchy).
    #[error("clone3 into {cgroup}: {errno}")]
    Clone {
        /// The target cgroup.
        cgroup: PathBuf,
        /// The error.
        errno: Errno,
    },
    /// The child was created but could not run the program.
    #[error("exec {program}: {errno}")]
    Exec {
        /// The program.
        program: PathBuf,
        /// Why `execve` (or the setup before it) failed.
        errno: Errno,
    },
    /// A program name, argument, variable or directory holds a NUL byte.
    #[error("spawn into cgroup: NUL byte in {0:?}")]
    Nul(OsString),
    /// Creating the error-report pipe failed.
    #[error("spawn into cgroup: pipe: {0}")]
    Pipe(Errno),
}

/// Where the child's standard streams go; `None` inherits ours.
#[derive(Debug, Default)]
pub struct ChildStdio {
    /// Becomes fd 0.
    pub stdin: Option<OwnedFd>,
    /// Becomes fd 1.
    pub stdout: Option<OwnedFd>,
    /// Becomes fd 2.
    pub stderr: Option<OwnedFd>,
}

/// A process started by [`spawn_into_cgroup`]. Like `std::process::Child`,
/// dropping it neither kills nor reaps it.
#[derive(Debug)]
pub struct CgroupChild {
    pid: Pid,
    exited: Option<WaitStatus>,
}

impl CgroupChild {
    /// The child's pid.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Wait for the child to exit (once; later calls return the same status).
    pub fn wait(&mut self) -> Result<WaitStatus, Errno> {
        if let Some(s) = self.exited {
            return Ok(s);
        }
        loop {
            match waitpid(self.pid, None) {
                Ok(s @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => {
                    self.exited = Some(s);
                    return Ok(s);
                }
                Ok(_) => continue,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Send SIGKILL, unless the child was already reaped (its pid may be
    /// someone else's by now).
    pub fn kill(&self) -> Result<(), Errno> {
        if self.exited.is_some() {
            return Ok(());
        }
        kill(self.pid, Signal::SIGKILL)
    }
}

/// Start `cmd` as a new process created *inside* the cgroup v2 directory
/// `v2_cgroup_dir`, with `clone3(CLONE_INTO_CGROUP)`. Its streams are
/// inherited; see [`spawn_into_cgroup_with`] to redirect them.
pub fn spawn_into_cgroup(cmd: &Command, v2_cgroup_dir: &Path) -> Result<CgroupChild, SpawnError> {
    spawn_into_cgroup_with(cmd, v2_cgroup_dir, ChildStdio::default())
}

/// [`spawn_into_cgroup`] with the child's standard streams set.
///
/// Taken from `cmd`: the program (looked up in `PATH` when it has no `/`),
/// the arguments, environment changes (`env`, `env_remove`) applied to ours,
/// and the working directory. Not visible through `Command`'s getters, and
/// so not honoured: `env_clear()` (remove variables one by one instead),
/// `stdin`/`stdout`/`stderr` (pass [`ChildStdio`]), and `pre_exec` hooks.
///
/// Why not `Command::spawn` plus a move: the move is the race of seed 001,
/// and the child would run outside the cgroup until moved. Why not a
/// `pre_exec` hook writing `cgroup.procs`: it is still a move (of a
/// single-threaded child, so no `TASK_NEW` race, but the fork is still
/// charged to the parent's cgroup and limits such as `pids.max` are checked
/// against the wrong cgroup). `clone3` places the child at creation.
pub fn spawn_into_cgroup_with(
    cmd: &Command,
    v2_cgroup_dir: &Path,
    stdio: ChildStdio,
) -> Result<CgroupChild, SpawnError> {
    let plan = ExecPlan::from_command(cmd)?;
    let cgroup_dir = File::open(v2_cgroup_dir)
        .with_path("open", v2_cgroup_dir)
        .map_err(SpawnError::Cgroup)?;
    let (err_read, err_write) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(SpawnError::Pipe)?;
    let fds = [&stdio.stdin, &stdio.stdout, &stdio.stderr].map(|f| f.as_ref().map(|f| f.as_fd()));
    let pid = match clone3_seam::spawn(&plan, cgroup_dir.as_fd(), err_write.as_fd(), fds) {
        Ok(pid) => pid,
        Err(e @ (Errno::ENOSYS | Errno::E2BIG)) => return Err(SpawnError::Unsupported(e)),
        Err(errno) => {
            return Err(SpawnError::Clone {
                cgroup: v2_cgroup_dir.to_path_buf(),
                errno,
            })
        }
    };
    // Our copies of the child's ends must close, or the report pipe never
    // reaches EOF.
    drop(err_write);
    drop(stdio);
    let mut child = CgroupChild { pid, exited: None };
    // EOF: exec succeeded (the write end was close-on-exec). Four bytes: the
    // errno of the failed setup or exec.
    let mut buf = [0u8; 4];
    let mut got = 0;
    let mut report = File::from(err_read);
    while got < buf.len() {
        match report.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    if got == buf.len() {
        let _ = child.wait();
        return Err(SpawnError::Exec {
            program: PathBuf::from(OsStr::from_bytes(plan.path.as_bytes())),
            errno: Errno::from_raw(i32::from_ne_bytes(buf)),
        });
    }
    Ok(child)
}

/// Everything the child needs, prepared before `clone3`: after it, the child
/// of a multi-threaded parent may not allocate.
struct ExecPlan {
    path: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
    cwd: Option<CString>,
}

impl ExecPlan {
    fn from_command(cmd: &Command) -> Result<Self, SpawnError> {
        let mut env: Vec<(OsString, OsString)> = std::env::vars_os().collect();
        for (k, v) in cmd.get_envs() {
            env.retain(|(ek, _)| ek != k);
            if let Some(v) = v {
                env.push((k.to_owned(), v.to_owned()));
            }
        }
        let program = cmd.get_program();
        let path = resolve_program(program, &env).unwrap_or_else(|| PathBuf::from(program));
        let cstr =
            |s: &OsStr| CString::new(s.as_bytes()).map_err(|_| SpawnError::Nul(s.to_owned()));
        let mut argv = vec![cstr(program)?];
        for a in cmd.get_args() {
            argv.push(cstr(a)?);
        }
        let envp = env
            .iter()
            .map(|(k, v)| {
                let mut kv = k.clone();
                kv.push("=");
                kv.push(v);
                CString::new(kv.into_vec())
                    .map_err(|e| SpawnError::Nul(OsString::from_vec(e.into_vec())))
            })
            .collect::<Result<_, _>>()?;
        let cwd = cmd
            .get_current_dir()
            .map(|d| cstr(d.as_os_str()))
            .transpose()?;
        Ok(Self {
            path: cstr(path.as_os_str())?,
            argv,
            envp,
            cwd,
        })
    }
}

/// `PATH` lookup as a shell does it: the first executable regular file.
fn resolve_program(program: &OsStr, env: &[(OsString, OsString)]) -> Option<PathBuf> {
    if program.as_bytes().contains(&b'/') {
        return None;
    }
    let path = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| {
            OsString::from("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        });
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// The one place that calls `clone3(2)` and runs code in the child before
/// `execve(2)`.
#[allow(unsafe_code)]
mod clone3_seam {
    use std::ffi::c_char;
    use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

    use nix::errno::Errno;
    use nix::unistd::Pid;

    use super::ExecPlan;

    /// `struct clone_args` as of Linux 5.7 (`CLONE_ARGS_SIZE_VER2`, 88 bytes).
    #[repr(C)]
    #[derive(Default)]
    struct CloneArgs {
        flags: u64,
        pidfd: u64,
        child_tid: u64,
        parent_tid: u64,
        exit_signal: u64,
        stack: u64,
        stack_size: u64,
        tls: u64,
        set_tid: u64,
        set_tid_size: u64,
        cgroup: u64,
    }

    /// `CLONE_INTO_CGROUP` from `<linux/sched.h>` (not in every libc).
    const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

    /// Create a child inside the cgroup `cgroup` that sets up `stdio`,
    /// changes directory and execs `plan`; on any failure it writes its errno
    /// to `report` and exits 127. Returns the child's pid.
    pub(super) fn spawn(
        plan: &ExecPlan,
        cgroup: BorrowedFd<'_>,
        report: BorrowedFd<'_>,
        stdio: [Option<BorrowedFd<'_>>; 3],
    ) -> Result<Pid, Errno> {
        // Pointer arrays built here, before the clone: the child must not
        // allocate (another thread of ours may hold the allocator's lock).
        let argv: Vec<*const c_char> = plan
            .argv
            .iter()
            .map(|a| a.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect();
        let envp: Vec<*const c_char> = plan
            .envp
            .iter()
            .map(|a| a.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect();
        let stdio = stdio.map(|f| f.map(|f| f.as_raw_fd()));
        let mut args = CloneArgs {
            flags: CLONE_INTO_CGROUP,
            exit_signal: libc::SIGCHLD as u64,
            cgroup: cgroup.as_raw_fd() as u64,
            ..Default::default()
        };
        // SAFETY: `args` is a properly initialised clone_args of the size we
        // pass. With no CLONE_VM and no stack, clone3 behaves like fork: the
        // child gets a copy of our memory, so every pointer prepared above
        // stays valid in it, and it only makes async-signal-safe calls before
        // execve or _exit.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_clone3,
                &mut args as *mut CloneArgs,
                std::mem::size_of::<CloneArgs>(),
            )
        };
        match ret {
            r if r < 0 => Err(Errno::last()),
            0 => child(plan, &argv, &envp, stdio, report.as_raw_fd()),
            pid => Ok(Pid::from_raw(pid as i32)),
        }
    }

    /// Runs in the new process. Never returns.
    fn child(
        plan: &ExecPlan,
        argv: &[*const c_char],
        envp: &[*const c_char],
        stdio: [Option<RawFd>; 3],
        report: RawFd,
    ) -> ! {
        // SAFETY: only async-signal-safe libc calls on memory we own (our
        // copy of the parent's), then execve or _exit.
        unsafe {
            // A clean signal state, as a freshly exec'd program expects: the
            // Rust runtime ignores SIGPIPE and our threads may block signals.
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            for (target, fd) in stdio.iter().enumerate() {
                let Some(fd) = *fd else { continue };
                let target = target as RawFd;
                let ok = if fd == target {
                    // Already in place: only drop close-on-exec.
                    libc::fcntl(fd, libc::F_SETFD, 0) >= 0
                } else {
                    libc::dup2(fd, target) >= 0
                };
                if !ok {
                    fail(report);
                }
            }
            if let Some(cwd) = &plan.cwd {
                if libc::chdir(cwd.as_ptr()) < 0 {
                    fail(report);
                }
            }
            libc::execve(plan.path.as_ptr(), argv.as_ptr(), envp.as_ptr());
            fail(report)
        }
    }

    /// Report errno to the parent and exit.
    fn fail(report: RawFd) -> ! {
        let errno = Errno::last_raw().to_ne_bytes();
        // SAFETY: write(2) of a 4-byte stack buffer, then _exit(2), which
        // runs no atexit handlers or destructors of the parent's state.
        unsafe {
            libc::write(report, errno.as_ptr().cast(), errno.len());
            libc::_exit(127)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::{Cell, RefCell};

    /// Fails with `errno` the first `fail` times, then succeeds; records
    /// every call.
    struct Flaky {
        errno: i32,
        fail: u32,
        calls: Cell<u32>,
        paths: RefCell<Vec<PathBuf>>,
    }

    impl Flaky {
        fn new(errno: i32, fail: u32) -> Self {
            Self {
                errno,
                fail,
                calls: Cell::new(0),
                paths: RefCell::new(Vec::new()),
            }
        }
    }

    impl ProcsWriter for Flaky {
        fn write_pid(&self, procs: &Path, _pid: Pid) -> io::Result<()> {
            self.calls.set(self.calls.get() + 1);
            self.paths.borrow_mut().push(procs.to_path_buf());
            if self.calls.get() <= self.fail {
                return Err(io::Error::from_raw_os_error(self.errno));
            }
            Ok(())
        }
    }

    fn quick() -> Backoff {
        Backoff {
            retries: 5,
            initial: Duration::from_micros(10),
            max: Duration::from_micros(100),
        }
    }

    #[test]
    fn einval_is_retried_until_it_clears() {
        let w = Flaky::new(libc::EINVAL, 3);
        let got = attach_with(&w, Pid::from_raw(42), Path::new("/cg"), &quick()).expect("attached");
        assert_eq!(got.attempts, 4);
        assert_eq!(w.calls.get(), 4);
        assert!(w
            .paths
            .borrow()
            .iter()
            .all(|p| p == Path::new("/cg/cgroup.procs")));
    }

    #[test]
    fn einval_gives_up_after_the_bound() {
        let w = Flaky::new(libc::EINVAL, u32::MAX);
        let e =
            attach_with(&w, Pid::from_raw(42), Path::new("/cg"), &quick()).expect_err("gives up");
        assert_eq!(w.calls.get(), 6, "first attempt plus 5 retries");
        match &e {
            AttachError::GaveUp {
                attempts,
                path,
                pid,
                ..
            } => {
                assert_eq!(*attempts, 6);
                assert_eq!(path, Path::new("/cg/cgroup.procs"));
                assert_eq!(*pid, 42);
            }
            other => panic!("unexpected {other}"),
        }
        let text = e.to_string();
        assert!(
            text.contains("/cg/cgroup.procs") && text.contains("EINVAL"),
            "{text}"
        );
    }

    #[test]
    fn other_errors_fail_at_once_with_the_path() {
        for errno in [libc::ENOENT, libc::ESRCH, libc::EACCES, libc::EBUSY] {
            let w = Flaky::new(errno, 1);
            let e =
                attach_with(&w, Pid::from_raw(7), Path::new("/x"), &quick()).expect_err("fails");
            assert_eq!(w.calls.get(), 1, "errno {errno} is not retried");
            match &e {
                AttachError::Write { source, .. } => {
                    assert_eq!(source.path, Path::new("/x/cgroup.procs"));
                    assert_eq!(source.source.raw_os_error(), Some(errno));
                }
                other => panic!("unexpected {other}"),
            }
        }
    }

    #[test]
    fn backoff_doubles_and_is_bounded() {
        let b = Backoff::default();
        let d: Vec<u64> = b.delays().map(|d| d.as_millis() as u64).collect();
        assert_eq!(d, vec![1, 2, 4, 8, 16, 32, 50, 50]);
        assert_eq!(b.budget(), Duration::from_millis(163));
        let huge = Backoff {
            retries: 64,
            initial: Duration::from_secs(1),
            max: Duration::from_secs(2),
        };
        assert!(
            huge.delays().all(|d| d <= Duration::from_secs(2)),
            "no overflow"
        );
        assert_eq!(Backoff { retries: 0, ..b }.delays().count(), 0);
    }

    #[test]
    fn exec_plan_applies_env_changes_and_resolves_path() {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg("true")
            .env("WARDEN_X", "1")
            .env_remove("HOME");
        let plan = ExecPlan::from_command(&cmd).expect("plan");
        assert!(plan.path.as_bytes().ends_with(b"/sh"), "{:?}", plan.path);
        assert_eq!(plan.argv.len(), 3);
        assert!(plan.envp.iter().any(|e| e.as_bytes() == b"WARDEN_X=1"));
        assert!(!plan.envp.iter().any(|e| e.as_bytes().starts_with(b"HOME=")));
        // std swaps NUL-holding arguments for a placeholder before we can see
        // them, but passes environment values through.
        let mut bad = Command::new("sh");
        bad.env("WARDEN_BAD", "a\0b");
        assert!(matches!(
            ExecPlan::from_command(&bad),
            Err(SpawnError::Nul(_))
        ));
    }
}
