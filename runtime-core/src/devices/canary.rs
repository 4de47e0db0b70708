//! The device canary: the ground truth of what a container's device cgroups
//! allow.
//!
//! A short-lived child process joins the container's *device* cgroups (the v1
//! `devices` hierarchy and the v2 cgroup, whose programs enforce devices) and
//! nothing else — no namespace entry, no other controller — then asks for
//! read-write access to each host device node with `faccessat(AT_EACCESS)`
//! and reports the errno. That runs the device-cgroup check the kernel runs
//! on open (`inode_permission` -> `devcgroup_inode_permission`: v2 programs,
//! then the v1 list) without opening anything, so no driver sees an open
//! (proved against real v1 lists and v2 programs in `tests/canary_real.rs`).
//! `EPERM` is the device cgroup refusing; as root nothing else refuses.
//!
//! The child is forked, not executed: it needs no helper binary on the host
//! and runs only async-signal-safe calls (open, write, close, _exit) on
//! buffers prepared before the fork.

use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The outcome of opening one device from inside the container's cgroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CanaryResult {
    /// The open succeeded, or failed for a reason other than the device
    /// cgroup (the errno is kept: `ENXIO` for `/dev/tty`).
    Allowed(Option<i32>),
    /// `EPERM`: the device cgroup refused.
    Denied,
    /// The host node could not be opened at all (missing from the host).
    HostMissing(i32),
}

impl CanaryResult {
    /// Whether the device cgroup refused the open.
    pub fn denied(self) -> bool {
        self == CanaryResult::Denied
    }
}

/// Why the canary could not run.
#[derive(Debug, thiserror::Error)]
pub enum CanaryError {
    /// A path held a NUL byte.
    #[error("path {0} contains a NUL byte")]
    Nul(PathBuf),
    /// fork/pipe failed.
    #[error("canary: {0}")]
    Sys(#[from] nix::Error),
    /// The child could not join a cgroup (`cgroup.procs` write failed).
    #[error("canary could not join {path}: {errno}")]
    Join {
        /// The `cgroup.procs` file.
        path: PathBuf,
        /// The error.
        errno: nix::Error,
    },
    /// The child's report was cut short.
    #[error("canary report truncated ({got} of {want} bytes)")]
    Truncated {
        /// Bytes received.
        got: usize,
        /// Bytes expected.
        want: usize,
    },
    /// The child did not finish in time (it was killed).
    #[error("canary did not finish within {0:?}")]
    Timeout(Duration),
}

/// Open each of `devices` (host paths) from a child placed in the given
/// cgroup directories (each must hold a `cgroup.procs`). Results are in the
/// order of `devices`.
pub fn probe(cgroup_dirs: &[&Path], devices: &[&Path]) -> Result<Vec<CanaryResult>, CanaryError> {
    let cstr = |p: &Path| {
        CString::new(p.as_os_str().as_bytes()).map_err(|_| CanaryError::Nul(p.to_path_buf()))
    };
    let procs: Vec<CString> = cgroup_dirs
        .iter()
        .map(|d| cstr(&d.join("cgroup.procs")))
        .collect::<Result<_, _>>()?;
    let devs: Vec<CString> = devices.iter().map(|d| cstr(d)).collect::<Result<_, _>>()?;
    let (rd, wr) = nix::unistd::pipe()?;
    let report = seam::fork_and_probe(&procs, &devs, rd, wr)?;
    // Report layout: per cgroup one i32 (0 or errno), then per device one i32
    // (0 or errno).
    let want = 4 * (procs.len() + devs.len());
    if report.len() < want {
        // A failed join ends the child early: find which.
        let words = words(&report);
        for (i, w) in words.iter().enumerate().take(procs.len()) {
            if *w != 0 {
                return Err(CanaryError::Join {
                    path: cgroup_dirs[i].join("cgroup.procs"),
                    errno: nix::Error::from_raw(*w),
                });
            }
        }
        return Err(CanaryError::Truncated {
            got: report.len(),
            want,
        });
    }
    let words = words(&report);
    for (i, w) in words.iter().enumerate().take(procs.len()) {
        if *w != 0 {
            return Err(CanaryError::Join {
                path: cgroup_dirs[i].join("cgroup.procs"),
                errno: nix::Error::from_raw(*w),
            });
        }
    }
    Ok(words[procs.len()..]
        .iter()
        .map(|&e| match e {
            0 => CanaryResult::Allowed(None),
            libc::EPERM => CanaryResult::Denied,
            libc::ENOENT => CanaryResult::HostMissing(e),
            other => CanaryResult::Allowed(Some(other)),
        })
        .collect())
}

fn words(b: &[u8]) -> Vec<i32> {
    b.chunks_exact(4)
        .map(|c| i32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// How long the canary child may take: it only opens a few device nodes.
const CANARY_TIMEOUT: Duration = Duration::from_secs(5);

#[allow(unsafe_code)]
mod seam {
    //! The fork. Everything the child touches is prepared by the parent.

    use super::*;
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    use nix::unistd::{fork, ForkResult};

    pub(super) fn fork_and_probe(
        procs: &[CString],
        devs: &[CString],
        rd: OwnedFd,
        wr: OwnedFd,
    ) -> Result<Vec<u8>, CanaryError> {
        // SAFETY: the child only calls async-signal-safe functions (getpid,
        // open, write, close, _exit) on memory allocated before the fork, so
        // another thread holding the allocator lock cannot deadlock it.
        match unsafe { fork() }? {
            ForkResult::Child => {
                let w = wr.as_raw_fd();
                // SAFETY: getpid has no preconditions.
                let pid = unsafe { libc::getpid() };
                let mut digits = [0u8; 16];
                let n = format_pid(pid, &mut digits);
                for p in procs {
                    // SAFETY: `p` is a valid NUL-terminated path; the fd is
                    // closed below.
                    let fd = unsafe { libc::open(p.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
                    let err = if fd < 0 {
                        errno()
                    } else {
                        // SAFETY: `digits[..n]` is initialised memory we own.
                        let r = unsafe { libc::write(fd, digits.as_ptr().cast(), n) };
                        let e = if r < 0 { errno() } else { 0 };
                        // SAFETY: fd was opened above.
                        unsafe { libc::close(fd) };
                        e
                    };
                    put(w, err);
                    if err != 0 {
                        // SAFETY: _exit is async-signal-safe and never returns.
                        unsafe { libc::_exit(1) };
                    }
                }
                for d in devs {
                    // Permission without the driver's open(): faccessat with
                    // AT_EACCESS goes through the kernel's inode_permission,
                    // which runs the device-cgroup check (v1 list and v2
                    // programs), and never calls into the driver, so a
                    // required /dev/watchdog is not armed and a serial port
                    // does not toggle DTR at every scan.
                    // SAFETY: `d` is a valid NUL-terminated path; faccessat
                    // is async-signal-safe.
                    let r = unsafe {
                        libc::faccessat(
                            libc::AT_FDCWD,
                            d.as_ptr(),
                            libc::R_OK | libc::W_OK,
                            libc::AT_EACCESS,
                        )
                    };
                    put(w, if r < 0 { errno() } else { 0 });
                }
                // SAFETY: _exit is async-signal-safe and never returns.
                unsafe { libc::_exit(0) }
            }
            ForkResult::Parent { child } => {
                drop(wr);
                let deadline = std::time::Instant::now() + CANARY_TIMEOUT;
                while let WaitStatus::StillAlive = waitpid(child, Some(WaitPidFlag::WNOHANG))? {
                    if std::time::Instant::now() >= deadline {
                        let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
                        let _ = waitpid(child, None);
                        return Err(CanaryError::Timeout(CANARY_TIMEOUT));
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                let mut buf = Vec::new();
                let mut f = std::fs::File::from(rd);
                f.read_to_end(&mut buf).map_err(|e| {
                    CanaryError::Sys(nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
                })?;
                Ok(buf)
            }
        }
    }

    fn errno() -> i32 {
        // SAFETY: __errno_location returns this thread's errno slot.
        unsafe { *libc::__errno_location() }
    }

    fn put(fd: i32, v: i32) {
        let b = v.to_ne_bytes();
        // SAFETY: `b` is 4 bytes on the stack; a short write shows up as a
        // truncated report in the parent.
        unsafe { libc::write(fd, b.as_ptr().cast(), 4) };
    }

    /// Decimal digits of `pid` without allocating.
    fn format_pid(mut pid: i32, out: &mut [u8; 16]) -> usize {
        let mut tmp = [0u8; 16];
        let mut n = 0;
        if pid == 0 {
            tmp[0] = b'0';
            n = 1;
        }
        while pid > 0 && n < tmp.len() {
            tmp[n] = b'0' + (pid % 10) as u8;
            pid /= 10;
            n += 1;
        }
        for (dst, src) in out.iter_mut().zip(tmp[..n].iter().rev()) {
            *dst = *src;
        }
        n
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn pid_digits() {
            let mut b = [0u8; 16];
            let n = super::format_pid(40213, &mut b);
            assert_eq!(&b[..n], b"40213");
            let n = super::format_pid(7, &mut b);
            assert_eq!(&b[..n], b"7");
        }
    }
}
