//! What the checks look for and what repairs may do: the node-side view of a
//! `RuntimePolicy` (the operator maps the CRD onto this; `warden check` uses
//! [`CheckPolicy::default`], which equals the CRD defaults).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Settings of one scan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CheckPolicy {
    /// Device nodes every container must be able to open read-write.
    pub required_devices: Vec<PathBuf>,
    /// Confirm device verdicts with a canary process in the container's
    /// device cgroups (needs root).
    pub canary: bool,
    /// A task blocked in a seccomp user notification for longer than this is
    /// stuck.
    #[serde(with = "secs")]
    pub stuck_after: Duration,
    /// Whether a repair may SIGKILL a stuck container init or exec so the
    /// kubelet retries (`remediation.killStuckInits`).
    pub kill_stuck_inits: bool,
    /// eventfd growth of one shim, since it was first seen, that counts as a
    /// leak.
    pub shim_fd_growth: u32,
    /// Whether repairs may rewrite a systemd unit's `DeviceAllow=` into
    /// explicit per-device entries (`devices.explicitRules`).
    pub explicit_rules: ExplicitRules,
}

/// When systemd `DeviceAllow=` may be rewritten to explicit per-device
/// entries (the CRD's `devices.explicitRules`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExplicitRules {
    /// Only where `/dev/char` is missing (the seed-003 landmine).
    #[default]
    Auto,
    /// Whenever a unit's rules would deny what the container is entitled to.
    Always,
    /// Never: report only.
    Never,
}

impl Default for CheckPolicy {
    fn default() -> Self {
        Self {
            required_devices: [
                "/dev/null",
                "/dev/zero",
                "/dev/full",
                "/dev/random",
                "/dev/urandom",
                "/dev/tty",
            ]
            .iter()
            .map(PathBuf::from)
            .collect(),
            canary: true,
            stuck_after: Duration::from_secs(10),
            kill_stuck_inits: false,
            shim_fd_growth: 5,
            explicit_rules: ExplicitRules::Auto,
        }
    }
}

mod secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let v = f64::deserialize(d)?;
        if !(0.0..=86_400.0).contains(&v) {
            return Err(serde::de::Error::custom(
                "stuckAfter must be 0..=86400 seconds",
            ));
        }
        Ok(Duration::from_secs_f64(v))
    }
}
