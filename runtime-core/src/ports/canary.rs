//! The device canary port: the ground truth of what a container's device
//! cgroups allow.

use std::path::{Path, PathBuf};

use crate::devices::canary::{self, CanaryError, CanaryResult};
use crate::root::HostRoot;

/// Open devices from inside a container's device cgroups.
pub trait CanaryPort: Send + Sync {
    /// Whether a canary can run here (root, on this machine).
    fn available(&self) -> bool;

    /// Open each of `devices` (host paths) from a child placed in
    /// `cgroups` (host paths); results in the order of `devices`.
    fn probe(&self, cgroups: &[&Path], devices: &[&Path])
        -> Result<Vec<CanaryResult>, CanaryError>;
}

/// A forked child on this machine ([`canary::probe`]).
#[derive(Debug, Clone)]
pub struct RealCanary {
    root: HostRoot,
}

impl RealCanary {
    /// A canary for the cgroups under `root` (this machine's `/`).
    pub fn new(root: HostRoot) -> Self {
        Self { root }
    }
}

impl CanaryPort for RealCanary {
    fn available(&self) -> bool {
        crate::root::running_as_root()
    }

    fn probe(
        &self,
        cgroups: &[&Path],
        devices: &[&Path],
    ) -> Result<Vec<CanaryResult>, CanaryError> {
        let dirs: Vec<PathBuf> = cgroups.iter().map(|d| self.root.join(d)).collect();
        let devs: Vec<PathBuf> = devices.iter().map(|d| self.root.join(d)).collect();
        let dirs: Vec<&Path> = dirs.iter().map(PathBuf::as_path).collect();
        let devs: Vec<&Path> = devs.iter().map(PathBuf::as_path).collect();
        canary::probe(&dirs, &devs)
    }
}

/// No canary (a fixture root, or not root).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoCanary;

impl CanaryPort for NoCanary {
    fn available(&self) -> bool {
        false
    }
    fn probe(
        &self,
        _cgroups: &[&Path],
        devices: &[&Path],
    ) -> Result<Vec<CanaryResult>, CanaryError> {
        Ok(vec![CanaryResult::Allowed(None); devices.len()])
    }
}
