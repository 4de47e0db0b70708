//! The signal port.

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Signals to processes.
pub trait SignalPort: Send + Sync {
    /// SIGKILL `pid`. The caller has checked that `pid` is still the process
    /// it means (start time).
    fn kill(&self, pid: i32) -> Result<(), nix::Error>;
}

/// kill(2).
#[derive(Debug, Clone, Copy, Default)]
pub struct RealSignals;

impl SignalPort for RealSignals {
    fn kill(&self, pid: i32) -> Result<(), nix::Error> {
        kill(Pid::from_raw(pid), Signal::SIGKILL)
    }
}
