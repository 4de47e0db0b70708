//! A container's systemd unit against what its runtime granted it (seed
//! 003): what the unit's `DeviceAllow=` takes away once systemd re-applies
//! it. Diagnosis (`device-rules-latent`) and repair (the explicit rewrite)
//! both read units through this view, so it lives here, below both.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::devices::device_allow::narrower_than_rules;
use crate::devices::host_devices::{DeviceId, HostDevices};
use crate::devices::systemd::{DeviceAllowEntry, DevicePolicy, UnitDevices};
use crate::devices::v1::EmulatorError;
use crate::devices::{Access, DeviceRule};

/// Why a unit could not be compared with its rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{unit}: device rules cannot be evaluated")]
pub struct UnitViewError {
    /// The unit.
    pub unit: String,
    /// What failed.
    #[source]
    pub source: EmulatorError,
}

/// A device (with a node on this host) and the access the unit loses on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lost {
    /// The device.
    pub device: DeviceId,
    /// The access bits lost on it one by one (or, when each bit alone is
    /// still allowed, the smallest combination that is not).
    pub access: Access,
    /// Its node on the host.
    pub path: Option<PathBuf>,
}

impl fmt::Display for Lost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (kind, major, minor) = self.device;
        write!(f, "{} {major}:{minor} {}", kind.letter(), self.access)?;
        if let Some(p) = &self.path {
            write!(f, " ({})", p.display())?;
        }
        Ok(())
    }
}

/// A container's unit as systemd holds it, and what it loses against the
/// container's rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitView {
    /// `runc-<id>.scope`.
    pub unit: String,
    /// `DevicePolicy=` and `DeviceAllow=` now.
    pub current: UnitDevices,
    /// The running manager's version, when known.
    pub version: Option<u32>,
    /// What the container is entitled to (OCI rules + runtime defaults).
    pub rules: Vec<DeviceRule>,
    /// Devices with a node here that systemd's program for the unit would
    /// deny although the rules allow them.
    pub lost: Vec<Lost>,
    /// How many devices without a node here would be lost too (not counted:
    /// nothing on this host can open them).
    pub lost_without_node: usize,
}

impl UnitView {
    /// Compare `current` (the unit's settings) with `rules`.
    pub fn new(
        unit: impl Into<String>,
        current: UnitDevices,
        rules: Vec<DeviceRule>,
        host: &HostDevices,
        version: Option<u32>,
    ) -> Result<Self, UnitViewError> {
        let unit = unit.into();
        let policy = current.policy.unwrap_or_default();
        let (lost, lost_without_node) = losses(&rules, policy, &current.allow, host, version)
            .map_err(|source| UnitViewError {
                unit: unit.clone(),
                source,
            })?;
        Ok(Self {
            unit,
            current,
            version,
            rules,
            lost,
            lost_without_node,
        })
    }

    /// The policy as systemd applies it.
    pub fn policy(&self) -> DevicePolicy {
        self.current.policy.unwrap_or_default()
    }

    /// The lost devices that are required (read or write lost on one).
    pub fn lost_required<'a>(&'a self, required: &[(PathBuf, DeviceId)]) -> Vec<&'a Lost> {
        lost_required(&self.lost, required)
    }

    /// What `allow` (instead of the unit's entries) would lose against the
    /// rules: the check of a rewrite before it is planned.
    pub fn losses_with(
        &self,
        allow: &[DeviceAllowEntry],
        host: &HostDevices,
    ) -> Result<Vec<Lost>, UnitViewError> {
        losses(&self.rules, self.policy(), allow, host, self.version)
            .map(|(l, _)| l)
            .map_err(|source| UnitViewError {
                unit: self.unit.clone(),
                source,
            })
    }
}

/// The lost devices among `required` (read or write lost on one).
pub fn lost_required<'a>(lost: &'a [Lost], required: &[(PathBuf, DeviceId)]) -> Vec<&'a Lost> {
    let rw = Access::READ.union(Access::WRITE);
    lost.iter()
        .filter(|l| {
            required.iter().any(|(_, d)| *d == l.device) && !l.access.intersection(rw).is_empty()
        })
        .collect()
}

/// The required devices as this host has them (paths without a node are
/// left out: the container cannot lose what the host does not have).
pub fn required_devices(required: &[PathBuf], host: &HostDevices) -> Vec<(PathBuf, DeviceId)> {
    required
        .iter()
        .filter_map(|p| host.stat(p).map(|d| (p.clone(), d)))
        .collect()
}

/// What `allow` under `policy` loses against `rules`, per device with a
/// node here, and how many node-less devices it would lose.
fn losses(
    rules: &[DeviceRule],
    policy: DevicePolicy,
    allow: &[DeviceAllowEntry],
    host: &HostDevices,
    version: Option<u32>,
) -> Result<(Vec<Lost>, usize), EmulatorError> {
    let gaps = narrower_than_rules(rules, policy, allow, host, version)?;
    // Per device: the single bits lost (`mknod` alone may still be allowed
    // by `char-* m`), or, when every bit is allowed alone but not together,
    // the smallest combination lost.
    let mut with_node: BTreeMap<DeviceId, (Access, Option<Access>)> = BTreeMap::new();
    let mut without: BTreeSet<DeviceId> = BTreeSet::new();
    for g in gaps {
        if host.node_paths(g.device).is_empty() {
            without.insert(g.device);
            continue;
        }
        let (single, combined) = with_node.entry(g.device).or_insert((Access::NONE, None));
        if g.access.bits().count_ones() == 1 {
            *single = single.union(g.access);
        } else if combined.is_none_or(|c| g.access.bits().count_ones() < c.bits().count_ones()) {
            *combined = Some(g.access);
        }
    }
    let lost = with_node
        .into_iter()
        .map(|(device, (single, combined))| Lost {
            device,
            access: if single.is_empty() {
                combined.unwrap_or(single)
            } else {
                single
            },
            path: host.preferred_path(device).map(Path::to_path_buf),
        })
        .collect();
    Ok((lost, without.len()))
}

/// `primary`, then the entries of `keep` it lacks; entries for the same
/// selector are merged into one (access OR-ed). systemd keeps one entry per
/// path and a later one replaces its access, so the rewrite sends a reset
/// and then this merged list, which leaves exactly this list.
pub fn merge(primary: &[DeviceAllowEntry], keep: &[DeviceAllowEntry]) -> Vec<DeviceAllowEntry> {
    let mut out: Vec<DeviceAllowEntry> = Vec::with_capacity(primary.len() + keep.len());
    for e in primary.iter().chain(keep) {
        match out.iter_mut().find(|o| o.selector == e.selector) {
            Some(o) => o.access = o.access.union(e.access),
            None => out.push(e.clone()),
        }
    }
    out
}

/// Whether `have` holds every entry of `want` (same selector, at least the
/// same access).
pub fn covers(have: &[DeviceAllowEntry], want: &[DeviceAllowEntry]) -> bool {
    want.iter().all(|w| {
        have.iter()
            .any(|h| h.selector == w.selector && h.access.contains(w.access))
    })
}
