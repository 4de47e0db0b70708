//! `update_devices`: the safe way to change a running container's v1 device
//! rules.
//!
//! A transition that never narrows is written with the workload running: by
//! construction no request allowed before and after is refused in between,
//! so a freeze would only add latency. A transition that must narrow (only
//! leaving allow-all mode for an allow list) is written with the container
//! frozen — and if the freeze fails, **nothing is written** and the error
//! says which tasks blocked it. This is the opposite of seed 000, where runc
//! logged the failed freeze and let systemd replay the list anyway.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::cgroups::freezer::{FreezeError, FreezeGuard};
use crate::devices::v1::apply::{Applied, ApplyError, V1DeviceCgroup};
use crate::devices::v1::emulator::Emulator;

/// Where a container's v1 cgroups are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V1Paths {
    /// Its directory in the devices hierarchy
    /// (`/sys/fs/cgroup/devices/...`).
    pub devices: PathBuf,
    /// Its directory in the freezer hierarchy, if it has one. Without it a
    /// narrowing transition is refused.
    pub freezer: Option<PathBuf>,
}

/// How `update_devices` behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateOptions {
    /// How long a freeze may take before the update is abandoned.
    pub freeze_deadline: Duration,
    /// Freeze around every update, narrowing or not (costs latency, buys
    /// nothing for a non-narrowing transition; for measurements and for
    /// callers that distrust the list they read).
    pub always_freeze: bool,
}

impl Default for UpdateOptions {
    fn default() -> Self {
        Self {
            freeze_deadline: Duration::from_secs(1),
            always_freeze: false,
        }
    }
}

/// What an update did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UpdateOutcome {
    /// The state before, the writes, and the state read back.
    pub applied: Applied,
    /// How long the freeze took when the writes ran frozen; `None` when the
    /// workload kept running.
    pub frozen_for: Option<Duration>,
}

/// Why an update did not happen (or did not finish cleanly).
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// Reading, writing or checking the device cgroup failed.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// The transition narrows and there is no freezer cgroup to make that
    /// invisible; nothing was written.
    #[error("device update not applied: it narrows ({reason}) and no freezer cgroup was given")]
    NoFreezer {
        /// Why the transition narrows.
        reason: String,
    },
    /// The freeze failed; nothing was written.
    #[error("device update not applied: the freeze it needs failed: {source}")]
    Freeze {
        /// Why a freeze was needed.
        reason: String,
        /// The freezer's error (names the blocking tasks on a timeout).
        #[source]
        source: FreezeError,
    },
    /// The writes were made but the cgroup could not be thawed.
    #[error("device update applied but thawing failed: {0}")]
    Thaw(#[source] FreezeError),
}

/// Take a container's device cgroup to `target` with the default options;
/// see [`update_devices_with`].
pub fn update_devices(paths: &V1Paths, target: &Emulator) -> Result<UpdateOutcome, UpdateError> {
    update_devices_with(paths, target, &UpdateOptions::default())
}

/// Take a container's device cgroup to `target`: without a freeze when the
/// transition never narrows, frozen when it must narrow, and not at all when
/// that freeze fails.
pub fn update_devices_with(
    paths: &V1Paths,
    target: &Emulator,
    options: &UpdateOptions,
) -> Result<UpdateOutcome, UpdateError> {
    let cg = V1DeviceCgroup::new(&paths.devices);
    let plan = cg.plan(target)?;
    let reason = match plan.transition.reason() {
        Some(r) => r.to_string(),
        None if options.always_freeze => "freezing every update was requested".to_string(),
        None => {
            return Ok(UpdateOutcome {
                applied: cg.execute(plan, target)?,
                frozen_for: None,
            });
        }
    };
    let Some(freezer) = &paths.freezer else {
        return Err(UpdateError::NoFreezer { reason });
    };
    let guard = FreezeGuard::freeze(freezer, options.freeze_deadline)
        .map_err(|source| UpdateError::Freeze { reason, source })?;
    let frozen_for = Some(guard.waited());
    // Plan again under the freeze: another writer may have changed the list
    // between the first read and the freeze.
    let applied = cg.plan(target).and_then(|plan| cg.execute(plan, target));
    let thawed = guard.thaw();
    let applied = applied?;
    thawed.map_err(UpdateError::Thaw)?;
    Ok(UpdateOutcome {
        applied,
        frozen_for,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::v1::lines::{parse_write, ALLOW_FILE, DENY_FILE, LIST_FILE};
    use std::fs;

    fn target(writes: &[&str]) -> Emulator {
        let rules: Vec<_> = writes.iter().map(|w| parse_write(w).unwrap()).collect();
        Emulator::from_rules(&rules).unwrap()
    }

    #[test]
    fn narrowing_without_a_freezer_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(LIST_FILE), "a *:* rwm\n").unwrap();
        let paths = V1Paths {
            devices: dir.path().to_path_buf(),
            freezer: None,
        };
        let err = update_devices(&paths, &target(&["allow c 1:3 rwm"])).unwrap_err();
        assert!(matches!(err, UpdateError::NoFreezer { .. }), "{err}");
        assert!(!dir.path().join(ALLOW_FILE).exists());
        assert!(!dir.path().join(DENY_FILE).exists());
    }

    #[test]
    fn narrowing_with_a_missing_freezer_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(LIST_FILE), "a *:* rwm\n").unwrap();
        let paths = V1Paths {
            devices: dir.path().to_path_buf(),
            freezer: Some(dir.path().join("no-such-freezer")),
        };
        let err = update_devices(&paths, &target(&["allow c 1:3 rwm"])).unwrap_err();
        assert!(matches!(err, UpdateError::Freeze { .. }), "{err}");
        assert!(err.to_string().contains("no-such-freezer"), "{err}");
        assert!(!dir.path().join(DENY_FILE).exists());
    }
}
