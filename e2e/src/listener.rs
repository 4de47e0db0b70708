//! A seccomp notify listener for real-runtime tests: the other end of an OCI
//! `linux.seccomp.listenerPath`.
//!
//! An OCI runtime connects to the listener's UNIX socket after installing a
//! filter that uses `SCMP_ACT_NOTIFY`, and sends the container process state
//! (JSON) with the notify fd attached (`SCM_RIGHTS`). What happens next decides
//! whether container start completes, so the listener has two behaviours:
//! [`Answer::Never`] takes the fd and holds it without answering (an agent
//! that is slow, stuck or not written for the runtime's own syscalls), and
//! [`Answer::Continue`] answers every notification with "continue" (a
//! responsive agent). Dropping the listener closes every fd it holds, which
//! makes any still-pending notification fail with `ENOSYS` in the caller.

use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};

/// How the listener treats notifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Receive the fd, hold it, never answer.
    Never,
    /// Answer each notification with `SECCOMP_USER_NOTIF_FLAG_CONTINUE`.
    Continue,
}

/// One fd hand-off received from a runtime.
#[derive(Debug, Clone)]
pub struct Handoff {
    /// The container process state the runtime sent (`ociVersion`, `fds`,
    /// `pid`, `metadata`, `state`), or `Null` when it did not parse.
    pub state: serde_json::Value,
    /// How many fds came with it.
    pub fds: usize,
}

/// One notification seen by a [`Answer::Continue`] listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notification {
    /// Host pid of the caller.
    pub pid: u32,
    /// Syscall number (native architecture).
    pub nr: i32,
}

#[derive(Debug, Default)]
struct Seen {
    handoffs: Vec<Handoff>,
    notifications: Vec<Notification>,
}

/// A listener serving one socket path until dropped.
#[derive(Debug)]
pub struct SeccompListener {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
    thread: Option<JoinHandle<()>>,
}

impl SeccompListener {
    /// Bind `path` and serve it from a background thread.
    pub fn start(path: &Path, answer: Answer) -> Result<Self> {
        let sock = UnixListener::bind(path).with_context(|| format!("bind {}", path.display()))?;
        sock.set_nonblocking(true).context("listener nonblocking")?;
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let thread = {
            let (stop, seen) = (Arc::clone(&stop), Arc::clone(&seen));
            std::thread::Builder::new()
                .name("seccomp-listener".into())
                .spawn(move || serve(&sock, answer, &stop, &seen))
                .context("spawn listener thread")?
        };
        Ok(Self {
            path: path.to_path_buf(),
            stop,
            seen,
            thread: Some(thread),
        })
    }

    /// The socket path (for `listenerPath`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Hand-offs received so far.
    pub fn handoffs(&self) -> Vec<Handoff> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .handoffs
            .clone()
    }

    /// Notifications answered so far (always empty for [`Answer::Never`]).
    pub fn notifications(&self) -> Vec<Notification> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .notifications
            .clone()
    }
}

impl Drop for SeccompListener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Accept hand-offs and (in `Continue` mode) answer notifications until
/// `stop`. One thread polls everything: the runtimes under test make at most
/// a few notifications a second, and a poll loop needs no wake-up plumbing to
/// stop. The held fds are dropped (closed) when the loop ends.
fn serve(sock: &UnixListener, answer: Answer, stop: &AtomicBool, seen: &Mutex<Seen>) {
    let mut held: Vec<OwnedFd> = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        match sock.accept() {
            Ok((stream, _)) => {
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                if let Ok((state, fds)) = receive_handoff(stream.as_raw_fd()) {
                    let mut s = seen.lock().unwrap_or_else(PoisonError::into_inner);
                    s.handoffs.push(Handoff {
                        state,
                        fds: fds.len(),
                    });
                    held.extend(fds);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => {}
        }
        if answer == Answer::Continue {
            for fd in &held {
                while let Some(n) = notify_ioctl::answer_continue(fd.as_fd()) {
                    seen.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .notifications
                        .push(n);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Read one message: the JSON state in the payload, fds in `SCM_RIGHTS`.
fn receive_handoff(sock: RawFd) -> Result<(serde_json::Value, Vec<OwnedFd>)> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut cmsg = nix::cmsg_space!([RawFd; 8]);
    let mut iov = [IoSliceMut::new(&mut buf)];
    let msg = recvmsg::<()>(sock, &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC)
        .context("recvmsg from runtime")?;
    let len = msg.bytes;
    let mut fds = Vec::new();
    for c in msg.cmsgs().context("control messages")? {
        if let ControlMessageOwned::ScmRights(raw) = c {
            for fd in raw {
                fds.push(owned(fd));
            }
        }
    }
    let state = serde_json::from_slice(&buf[..len]).unwrap_or(serde_json::Value::Null);
    Ok((state, fds))
}

#[allow(unsafe_code)]
fn owned(fd: RawFd) -> OwnedFd {
    // SAFETY: `fd` was just installed in this process by SCM_RIGHTS and nothing
    // else refers to it; the OwnedFd becomes its only owner.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// The seccomp user-notification ioctls: the one seam here that needs
/// `unsafe`, since neither std nor nix wraps them.
#[allow(unsafe_code)]
mod notify_ioctl {
    use std::os::fd::{AsRawFd, BorrowedFd};

    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

    use super::Notification;

    /// If a notification is pending on `fd`, receive it and let the syscall
    /// continue; `None` when nothing is pending or the fd is dead.
    pub fn answer_continue(fd: BorrowedFd<'_>) -> Option<Notification> {
        let mut pfd = [PollFd::new(fd, PollFlags::POLLIN)];
        match poll(&mut pfd, PollTimeout::ZERO) {
            Ok(n) if n > 0 => {}
            _ => return None,
        }
        if !pfd[0]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLIN))
        {
            return None;
        }
        // SAFETY: seccomp_notif is plain old data; all-zero is the state the
        // kernel requires before NOTIF_RECV.
        let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
        // SAFETY: fd is a seccomp notify fd; req is a valid, writable
        // seccomp_notif of the size the ioctl number encodes.
        let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_RECV, &mut req) };
        if rc != 0 {
            return None;
        }
        let mut resp = libc::seccomp_notif_resp {
            id: req.id,
            val: 0,
            error: 0,
            flags: libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32,
        };
        // SAFETY: resp is a valid seccomp_notif_resp for an id just received;
        // a stale id only makes the ioctl fail with ENOENT.
        let _ = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_SEND, &mut resp) };
        Some(Notification {
            pid: req.pid,
            nr: req.data.nr,
        })
    }
}
