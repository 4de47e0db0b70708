//! The host-program port: finding and running the host's own binaries
//! (the runtimes' `--version` probes).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::root::HostRoot;

/// The host's programs.
pub trait HostProgramPort: Send + Sync {
    /// Whether an executable file exists at the host path `program`.
    fn exists(&self, program: &Path) -> bool;

    /// Where `program` (a host path) is read from here, for reports.
    fn location(&self, program: &Path) -> PathBuf;

    /// Run `program ARGS` with a deadline and return its stdout.
    fn run(&self, program: &Path, args: &[&str], timeout: Duration) -> Result<String, ProbeError>;
}

/// The binaries of the host under a root, or of another process's mount
/// namespace.
#[derive(Debug, Clone)]
pub struct RealHostPrograms {
    lookup: HostRoot,
    ns_pid: Option<i32>,
}

impl RealHostPrograms {
    /// Binaries under `root`; with `ns_pid`, looked up and run in the mount
    /// namespace of that process (`nsenter -t PID -m`): the agent's pod
    /// shares the host's PID namespace but not its filesystem, and a host
    /// binary run from the pod would load the pod's libraries.
    pub fn new(root: HostRoot, ns_pid: Option<i32>) -> Self {
        let lookup = match ns_pid {
            Some(pid) => HostRoot::new(format!("/proc/{pid}/root")),
            None => root,
        };
        Self { lookup, ns_pid }
    }
}

impl HostProgramPort for RealHostPrograms {
    fn exists(&self, program: &Path) -> bool {
        is_executable(&self.lookup.join(program))
    }

    fn location(&self, program: &Path) -> PathBuf {
        self.lookup.join(program)
    }

    fn run(&self, program: &Path, args: &[&str], timeout: Duration) -> Result<String, ProbeError> {
        match self.ns_pid {
            Some(pid) => run_in_mount_ns(pid, program, args, timeout),
            None => run_command(&self.lookup.join(program), args, timeout),
        }
    }
}

/// Why a host program could not be run, or gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// nsenter (util-linux) is not installed where the agent runs.
    #[error(
        "nsenter (util-linux) is missing: cannot run the host's binaries in their mount namespace"
    )]
    NoNsenter,
    /// The program could not be started.
    #[error("spawn {program}: {source}")]
    Spawn {
        /// The program.
        program: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Waiting for it failed.
    #[error("wait for {program}: {source}")]
    Wait {
        /// The program.
        program: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// It exited unsuccessfully.
    #[error("{probe} exited with {status}")]
    Failed {
        /// The probe (its last argument, `--version`).
        probe: String,
        /// Its exit status.
        status: std::process::ExitStatus,
    },
    /// It did not answer in time (it was killed).
    #[error("{probe} did not answer within {timeout:?}")]
    Timeout {
        /// The probe.
        probe: String,
        /// The deadline.
        timeout: Duration,
    },
}

/// Run `BIN ARGS...` inside the mount namespace of `pid` with nsenter
/// (util-linux), so the binary loads that namespace's libraries.
pub(crate) fn run_in_mount_ns(
    pid: i32,
    bin: &Path,
    args: &[&str],
    timeout: Duration,
) -> Result<String, ProbeError> {
    let nsenter = ["/usr/bin/nsenter", "/bin/nsenter"]
        .iter()
        .map(Path::new)
        .find(|p| is_executable(p))
        .ok_or(ProbeError::NoNsenter)?;
    let pid = pid.to_string();
    let bin = bin.display().to_string();
    let mut all = vec!["-t", pid.as_str(), "-m", "--", bin.as_str()];
    all.extend_from_slice(args);
    run_command(nsenter, &all, timeout)
}

/// Whether `p` is an executable file.
pub(crate) fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Run `BIN ARGS...` with a deadline; stdout is returned. A binary that
/// hangs is killed rather than stalling the whole scan. The last argument
/// names the probe in errors.
pub(crate) fn run_command(
    bin: &Path,
    args: &[&str],
    timeout: Duration,
) -> Result<String, ProbeError> {
    let probe = args.last().copied().unwrap_or_default().to_string();
    let mut child = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|source| ProbeError::Spawn {
            program: bin.to_path_buf(),
            source,
        })?;
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let mut out = String::new();
                if let Some(mut so) = child.stdout.take() {
                    let _ = so.read_to_string(&mut out);
                }
                return if status.success() {
                    Ok(out)
                } else {
                    Err(ProbeError::Failed { probe, status })
                };
            }
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(ProbeError::Timeout { probe, timeout });
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(source) => {
                return Err(ProbeError::Wait {
                    program: bin.to_path_buf(),
                    source,
                })
            }
        }
    }
}
