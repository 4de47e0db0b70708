//! The host-program port: finding and running the host's own binaries
//! (the runtimes' `--version` probes).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::host::runtimes::{self, ProbeError};
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
        runtimes::is_executable(&self.lookup.join(program))
    }

    fn location(&self, program: &Path) -> PathBuf {
        self.lookup.join(program)
    }

    fn run(&self, program: &Path, args: &[&str], timeout: Duration) -> Result<String, ProbeError> {
        match self.ns_pid {
            Some(pid) => runtimes::run_in_mount_ns(pid, program, args, timeout),
            None => runtimes::run_command(&self.lookup.join(program), args, timeout),
        }
    }
}
