//! What runc and systemd versions do with device rules: the history behind
//! seeds 000 and 003, as a pure function from versions to hazards.
//!
//! The facts (from the runtimes' and systemd's repositories and release
//! notes, and checked on this project's real-systemd tier where noted):
//!
//! * runc 1.1.3 and 1.1.4 (systemd driver) skip every `n:m` `DeviceAllow`
//!   entry whose `/dev/char/M:m` (or `/dev/block/M:m`) does not exist. With
//!   no `/dev/char` (LXC guests, minimal hosts) the unit keeps only
//!   `char-pts rwm`, `char-* m`, `block-* m`: the seed-003 landmine, which
//!   fires at the next `daemon-reload`.
//! * runc 1.1.5 and 1.1.6 also look under `/sys/dev/char` before skipping,
//!   so the entries are written (as `/dev/char/M:m`), but systemd older than
//!   v240 `stat()`s that path and drops it when it is missing.
//! * runc 1.1.7 and later, with systemd v240 or later, need no device node
//!   at all (systemd parses `/dev/char/M:m`, and `char-M` for majors). With
//!   an older systemd the stat() above still applies.
//! * runc before 1.1.8, with the systemd driver on cgroup v1, goes on with a
//!   device update after the freeze that should protect it failed, so the
//!   container sees the deny-all-then-allow window (seed 000); 1.1.8 refuses
//!   instead.

use serde::Serialize;

use crate::checks::CheckId;
use crate::devices::systemd::SYSTEMD_PARSES_DEVICE_NUMBERS;

/// A release as (major, minor, patch).
pub type Semver = (u32, u32, u32);

/// The inputs: what a node runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct VersionFacts {
    /// runc's version, when runc is installed and its version parses.
    pub runc: Option<Semver>,
    /// systemd's version, when systemd runs.
    pub systemd: Option<u32>,
    /// Whether `/dev/char` exists on the host.
    pub dev_char: bool,
    /// Whether the devices controller is on cgroup v1 (legacy or hybrid).
    pub devices_v1: bool,
}

/// A hazard that follows from versions alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum VersionHazard {
    /// runc 1.1.3–1.1.4 without `/dev/char`: scopes lack per-device entries.
    RuncSkipsDeviceEntries,
    /// systemd < 240 without `/dev/char`: it drops `/dev/char/M:m` entries
    /// at every reload.
    SystemdStatsDeviceNumbers,
    /// runc < 1.1.8 with the systemd driver on v1: device updates proceed
    /// after a failed freeze.
    RuncUpdatesAfterFailedFreeze,
}

impl VersionHazard {
    /// The stable check id (DESIGN §2) the hazard belongs to.
    pub fn check(self) -> CheckId {
        match self {
            VersionHazard::RuncSkipsDeviceEntries | VersionHazard::SystemdStatsDeviceNumbers => {
                CheckId::DeviceRulesLatent
            }
            VersionHazard::RuncUpdatesAfterFailedFreeze => CheckId::DeviceUpdateJitter,
        }
    }

    /// The hazard's stable name (`runc-skips-device-entries`), as reports
    /// show it.
    pub fn as_str(self) -> &'static str {
        match self {
            VersionHazard::RuncSkipsDeviceEntries => "runc-skips-device-entries",
            VersionHazard::SystemdStatsDeviceNumbers => "systemd-stats-device-numbers",
            VersionHazard::RuncUpdatesAfterFailedFreeze => "runc-updates-after-failed-freeze",
        }
    }

    /// One sentence for a report.
    pub fn message(self) -> &'static str {
        match self {
            VersionHazard::RuncSkipsDeviceEntries => {
                "runc 1.1.3-1.1.4 writes no per-device DeviceAllow entries when /dev/char is missing; \
                 the next systemctl daemon-reload takes /dev/null and every other device from its containers \
                 (fixed in runc 1.1.5)"
            }
            VersionHazard::SystemdStatsDeviceNumbers => {
                "systemd older than v240 stat()s /dev/char/M:m DeviceAllow entries and drops them when \
                 /dev/char is missing; a daemon-reload takes those devices from containers \
                 (explicit node paths work)"
            }
            VersionHazard::RuncUpdatesAfterFailedFreeze => {
                "runc before 1.1.8 goes on with a device update on cgroup v1 after its freeze failed, so \
                 containers can see EPERM while systemd rewrites the device list (fixed in runc 1.1.8)"
            }
        }
    }
}

/// The hazards these versions carry, in a stable order. Unknown versions
/// give no hazard (nothing is claimed without a version).
pub fn version_hazards(f: &VersionFacts) -> Vec<VersionHazard> {
    let mut out = Vec::new();
    let Some(runc) = f.runc else {
        return out;
    };
    let skips = ((1, 1, 3)..=(1, 1, 4)).contains(&runc);
    if skips && !f.dev_char {
        out.push(VersionHazard::RuncSkipsDeviceEntries);
    }
    let old_systemd = f.systemd.is_some_and(|v| v < SYSTEMD_PARSES_DEVICE_NUMBERS);
    // runc 1.1.3-1.1.4 already dropped the entries; the stat() only matters
    // for the entries other versions write.
    if old_systemd && !f.dev_char && !skips {
        out.push(VersionHazard::SystemdStatsDeviceNumbers);
    }
    if runc < (1, 1, 8) && f.devices_v1 && f.systemd.is_some() {
        out.push(VersionHazard::RuncUpdatesAfterFailedFreeze);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use VersionHazard::*;

    fn facts(runc: Semver, systemd: u32, dev_char: bool, devices_v1: bool) -> VersionFacts {
        VersionFacts {
            runc: Some(runc),
            systemd: Some(systemd),
            dev_char,
            devices_v1,
        }
    }

    #[test]
    fn the_seed_003_landmine() {
        assert_eq!(
            version_hazards(&facts((1, 1, 4), 252, false, false)),
            [RuncSkipsDeviceEntries]
        );
        assert_eq!(
            version_hazards(&facts((1, 1, 3), 252, false, false)),
            [RuncSkipsDeviceEntries]
        );
        assert!(version_hazards(&facts((1, 1, 4), 252, true, false)).is_empty());
        // 1.1.5 falls back to /sys/dev/char; systemd 252 parses the number.
        assert!(version_hazards(&facts((1, 1, 5), 252, false, false)).is_empty());
        assert!(version_hazards(&facts((1, 1, 2), 252, false, false)).is_empty());
    }

    #[test]
    fn old_systemd_stats_device_numbers() {
        for runc in [(1, 1, 5), (1, 1, 7), (1, 2, 0)] {
            assert_eq!(
                version_hazards(&facts(runc, 239, false, false)),
                [SystemdStatsDeviceNumbers],
                "{runc:?}"
            );
            assert!(version_hazards(&facts(runc, 239, true, false)).is_empty());
            assert!(version_hazards(&facts(runc, 240, false, false)).is_empty());
        }
        // Not reported twice for the runc that skipped them already.
        assert_eq!(
            version_hazards(&facts((1, 1, 4), 239, false, false)),
            [RuncSkipsDeviceEntries]
        );
    }

    #[test]
    fn freeze_failure_before_1_1_8_on_v1() {
        assert_eq!(
            version_hazards(&facts((1, 1, 7), 252, true, true)),
            [RuncUpdatesAfterFailedFreeze]
        );
        assert!(version_hazards(&facts((1, 1, 8), 252, true, true)).is_empty());
        assert!(version_hazards(&facts((1, 1, 7), 252, true, false)).is_empty());
        let no_systemd = VersionFacts {
            systemd: None,
            ..facts((1, 1, 5), 0, true, true)
        };
        assert!(version_hazards(&no_systemd).is_empty());
        // This machine's shape: runc 1.1.5, systemd 252 (in nspawn), no
        // /dev/char, hybrid v1 devices.
        assert_eq!(
            version_hazards(&facts((1, 1, 5), 252, false, true)),
            [RuncUpdatesAfterFailedFreeze]
        );
        let all = version_hazards(&facts((1, 1, 4), 239, false, true));
        assert_eq!(all, [RuncSkipsDeviceEntries, RuncUpdatesAfterFailedFreeze]);
        assert_eq!(all[0].check(), CheckId::DeviceRulesLatent);
        assert_eq!(all[1].check(), CheckId::DeviceUpdateJitter);
        for h in &all {
            assert_eq!(
                serde_json::to_value(h).expect("serialise"),
                serde_json::json!(h.as_str()),
                "the serialised name is the stable name"
            );
        }
        assert!(all.iter().all(|h| !h.message().is_empty()));
    }

    #[test]
    fn unknown_runc_claims_nothing() {
        assert!(version_hazards(&VersionFacts {
            systemd: Some(239),
            ..Default::default()
        })
        .is_empty());
    }
}
