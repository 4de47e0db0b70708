//! The individual checks. Each is a function from what a scan saw to
//! findings; none of them changes anything.

use std::time::SystemTime;

use super::{CheckPolicy, ScanOptions};
use crate::checks::CheckId;
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
    /// Checks that could not be made, for a container or (`None`) for every
    /// container: their absence from the findings means "unknown", not
    /// "clean".
    pub not_evaluated: std::cell::RefCell<std::collections::BTreeSet<(CheckId, Option<String>)>>,
    /// What the checks could not read, for the report.
    pub unreadable: std::cell::RefCell<Vec<crate::host::Unreadable>>,
}

impl Ctx<'_> {
    /// Record that `check` could not be made (for `container`, or for all).
    pub fn not_evaluated(&self, check: CheckId, container: Option<&str>) {
        self.not_evaluated
            .borrow_mut()
            .insert((check, container.map(str::to_owned)));
    }

    /// Record that `check` could not be made (for `container`, or for all)
    /// and, for the report, what could not be read.
    pub fn unknown(&self, check: CheckId, container: Option<&str>, what: String, error: String) {
        self.not_evaluated(check, container);
        self.unreadable(crate::host::Unreadable {
            what,
            path: None,
            error,
        });
    }

    /// Record something a check could not read.
    pub fn unreadable(&self, u: crate::host::Unreadable) {
        self.unreadable.borrow_mut().push(u);
    }
}
