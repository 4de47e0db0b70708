//! The individual checks. Each is a function from what a scan saw to
//! findings; none of them changes anything.

use std::time::SystemTime;

use super::{CheckPolicy, ScanOptions};
use crate::discovery::Container;
use crate::host::HostFacts;
use crate::procfs::Procfs;

pub(crate) mod device_access;
pub(crate) mod device_rules_latent;
pub(super) mod freeze_blocked;
pub(super) mod host_hazards;
pub(super) mod seccomp_profile;
pub(super) mod seccomp_stuck;
pub(super) mod shim_fd_leak;
mod state;

/// What every check may look at.
pub(super) struct Ctx<'a> {
    pub opts: &'a ScanOptions,
    pub policy: &'a CheckPolicy,
    pub host: &'a HostFacts,
    pub procfs: &'a Procfs,
    /// What the scan read, kept for planning (and its systemd session).
    pub snapshot: &'a super::Snapshot,
    pub containers: &'a [Container],
    pub now: SystemTime,
    /// Every process of the node, read once on first use and shared by the
    /// checks that look at all of them (seccomp_stuck::node_processes).
    pub processes: std::cell::OnceCell<Vec<seccomp_stuck::NodeProcess>>,
}
