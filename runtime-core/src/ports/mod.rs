//! Ports: the only seams through which diagnosis and repair touch the node.
//!
//! Every check and every repair step reaches the kernel, the runtimes and
//! systemd through one of these traits, bundled in [`Ports`]. The real
//! implementations ([`Ports::for_root`]) are thin wrappers over the
//! mechanics (`cgroups`, `devices`, `systemd`, `procfs`); the fakes in
//! `runtime_core::testing` (cargo feature `testing`) stand in for all of
//! them, so any check and any plan can be tested on a tempdir, with no root,
//! no D-Bus and no bpf(2) (the pattern of youki's `libcgroups`, which
//! injects its cgroup root and its systemd client).
//!
//! Paths given to a port are *host* paths (as the kernel names them, e.g.
//! `/sys/fs/cgroup/devices/runc-c1`); the port re-roots them under its
//! [`HostRoot`], so a plan reads the same on the host and in the agent's pod.
//!
//! The filesystem itself (host facts, runtime state, `/proc`) is read under
//! the [`HostRoot`], whose fake is a fixture tree (see
//! `testing::HostFixture`).

mod canary;
mod cgroups;
pub mod exec;
mod programs;
mod signals;
mod systemd;

use std::sync::Arc;

pub use canary::{CanaryPort, NoCanary, RealCanary};
pub use cgroups::{CgroupPort, Frozen, RealCgroups};
pub use exec::{HostProgramPort, RealHostPrograms};
pub use programs::{DeviceProgramPort, NoPrograms, RealPrograms};
pub use signals::{RealSignals, SignalPort};
pub use systemd::{RealSystemd, SessionError, SystemdPort, SystemdSession, SYSTEMD_TIMEOUT};

use crate::procfs::Procfs;
use crate::root::HostRoot;

/// Every seam, bundled; cheap to clone (shared implementations).
#[derive(Clone)]
pub struct Ports {
    /// The host root every file read goes through.
    pub root: HostRoot,
    /// `/proc` under the root.
    pub procfs: Procfs,
    /// v1 device lists and the freezer.
    pub cgroups: Arc<dyn CgroupPort>,
    /// cgroup v2 device programs (bpf query, attach, detach).
    pub programs: Arc<dyn DeviceProgramPort>,
    /// The device canary (fork, join the container's device cgroups, test
    /// access).
    pub canary: Arc<dyn CanaryPort>,
    /// Signals to processes.
    pub signals: Arc<dyn SignalPort>,
    /// The host's programs (runtime `--version` probes).
    pub exec: Arc<dyn HostProgramPort>,
    /// systemd, one connection per scan.
    pub systemd: Arc<dyn SystemdPort>,
}

impl std::fmt::Debug for Ports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ports")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl Ports {
    /// The real ports of the host under `root`.
    ///
    /// Device programs and the canary act on the machine this process runs
    /// on, so they are only wired when `root` is this machine's `/`; a
    /// fixture root (or a copy of a host) gets ports that read no programs
    /// and run no canary. `binaries_ns_pid` runs the host's runtime binaries
    /// in the mount namespace of that process (1 in the agent's pod).
    pub fn for_root(root: HostRoot, binaries_ns_pid: Option<i32>) -> Self {
        let live = root.is_real();
        Self {
            procfs: Procfs::new(root.clone()),
            cgroups: Arc::new(RealCgroups::new(root.clone())),
            programs: if live {
                Arc::new(RealPrograms::new(root.clone()))
            } else {
                Arc::new(NoPrograms)
            },
            canary: if live {
                Arc::new(RealCanary::new(root.clone()))
            } else {
                Arc::new(NoCanary)
            },
            signals: Arc::new(RealSignals),
            exec: Arc::new(RealHostPrograms::new(root.clone(), binaries_ns_pid)),
            systemd: Arc::new(RealSystemd::new(root.clone())),
            root,
        }
    }

    /// The real ports of this machine.
    pub fn real() -> Self {
        Self::for_root(HostRoot::real(), None)
    }
}
