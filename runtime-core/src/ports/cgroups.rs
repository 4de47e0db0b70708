//! The cgroup writer and freezer port: v1 device lists and freezes.

use std::path::Path;
use std::time::Duration;

use crate::cgroups::{FreezeError, FreezeGuard, FreezeOptions, FreezeTarget};
use crate::devices::v1::{ApplyError, Emulator, V1DeviceCgroup};
use crate::procfs::Procfs;
use crate::root::HostRoot;

/// A freeze in place; thawed by [`Frozen::thaw`], or when dropped.
pub trait Frozen: Send {
    /// How long the freeze took to complete.
    fn waited(&self) -> Duration;
    /// Thaw now, and say whether the thaw failed.
    fn thaw(self: Box<Self>) -> Result<(), FreezeError>;
}

/// v1 device lists and the freezer (host paths).
pub trait CgroupPort: Send + Sync {
    /// The v1 `devices.list` of `cgroup`, as the kernel's rules.
    fn v1_devices(&self, cgroup: &Path) -> Result<Emulator, ApplyError>;

    /// Take `cgroup`'s list to `target` by the minimal transition from what
    /// it holds now, refusing (with nothing written) a transition that would
    /// narrow access; returns the number of writes made. The caller has
    /// checked that `target` only adds; the refusal guards against a list
    /// that changed in between.
    fn widen_v1_devices(&self, cgroup: &Path, target: &Emulator) -> Result<usize, ApplyError>;

    /// Freeze `target`, waiting at most `deadline`; with `marker_dir`, a
    /// crash-recovery marker is left there (a host path) until the thaw.
    fn freeze(
        &self,
        target: &FreezeTarget,
        deadline: Duration,
        marker_dir: Option<&Path>,
    ) -> Result<Box<dyn Frozen>, FreezeError>;
}

/// The cgroup filesystem of the host under a root.
#[derive(Debug, Clone)]
pub struct RealCgroups {
    root: HostRoot,
}

impl RealCgroups {
    /// The cgroups of the host under `root`.
    pub fn new(root: HostRoot) -> Self {
        Self { root }
    }
}

struct RealFrozen(FreezeGuard);

impl Frozen for RealFrozen {
    fn waited(&self) -> Duration {
        self.0.waited()
    }
    fn thaw(self: Box<Self>) -> Result<(), FreezeError> {
        self.0.thaw()
    }
}

impl CgroupPort for RealCgroups {
    fn v1_devices(&self, cgroup: &Path) -> Result<Emulator, ApplyError> {
        V1DeviceCgroup::new(self.root.join(cgroup)).read()
    }

    fn widen_v1_devices(&self, cgroup: &Path, target: &Emulator) -> Result<usize, ApplyError> {
        let cg = V1DeviceCgroup::new(self.root.join(cgroup));
        let plan = cg.plan(target)?;
        if let Some(reason) = plan.transition.reason() {
            return Err(ApplyError::Narrowing {
                reason: reason.to_string(),
            });
        }
        let n = plan.transition.writes().len();
        if n > 0 {
            cg.execute(plan, target)?;
        }
        Ok(n)
    }

    fn freeze(
        &self,
        target: &FreezeTarget,
        deadline: Duration,
        marker_dir: Option<&Path>,
    ) -> Result<Box<dyn Frozen>, FreezeError> {
        let t = match target {
            FreezeTarget::V1(p) => FreezeTarget::V1(self.root.join(p)),
            FreezeTarget::V2(p) => FreezeTarget::V2(self.root.join(p)),
        };
        let options = FreezeOptions {
            marker: marker_dir.map(|d| {
                crate::devices::v1::update::freeze_marker_path(&self.root.join(d), target.dir())
            }),
            // The marker records the host path: whoever recovers it (the
            // agent in its pod under /host, or a check on the host) re-roots
            // it under its own root.
            record_as: Some(target.clone()),
            // The marker names this process by its own pid and start time,
            // read from this process's /proc; its lock is what tells other
            // processes, in any PID namespace, that it lives.
            procfs: Procfs::real(),
        };
        Ok(Box::new(RealFrozen(FreezeGuard::freeze_target(
            t, deadline, &options,
        )?)))
    }
}
