//! A systemd-managed container's unit against what its runtime granted it
//! (seed 003): what the unit's `DeviceAllow=` takes away once systemd
//! re-applies it (read by the `device-rules-latent` check), and the repair,
//! a rewrite of `DeviceAllow=` to explicit per-device entries.
//!
//! Plans are made from the scan's snapshot (the unit view it read); the
//! apply goes through a [`SystemdClient`] (the repair round's session), so
//! pure tests feed unit properties from a fake.
//!
//! Why the rewrite never narrows access:
//! - the new list is the explicit form of the container's OCI rules plus
//!   every entry the unit has now (merged per selector, access OR-ed), so
//!   systemd's program only gains patterns; the policy is left as it is;
//! - planning checks, as systemd will resolve it on this host, that the new
//!   list is not narrower than the rules on any required device, and refuses
//!   otherwise; what no entry can express is listed in the plan;
//! - on cgroup v2 systemd attaches its new program before it releases the
//!   old one, so the container holds the intersection of both, never less
//!   than before (measured on systemd 252 in systemd-nspawn: 200 rewrites
//!   under a loop opening `/dev/urandom`, 224k opens, 0 EPERM). On v1 systemd
//!   writes `devices.deny a` and then the allow list, a deny-all window, so
//!   the container is frozen around the call, and nothing is sent when it
//!   cannot be frozen. A call that times out is reported as failed, but
//!   systemd may still apply it after the thaw: staying frozen until a
//!   barrier call returns is the fail-safety work that follows this
//!   redesign.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cgroups::FreezeTarget;
use crate::checks::CheckId;
use crate::devices::device_allow::{explicit_device_allow, ExplicitOptions, UnexpressedReason};
use crate::devices::host_devices::{DeviceId, HostDevices};
use crate::devices::systemd::DeviceAllowEntry;
use crate::devices::Access;
use crate::diagnose::{Cause, CheckPolicy, ExplicitRules, Finding, Snapshot};
use crate::discovery::Container;
use crate::ports::CgroupPort;
use crate::systemd::unit_view::{covers, lost_required, merge};
use crate::systemd::SystemdClient;
use crate::systemd::UnitView;

use super::{PlanError, RepairAction, RepairError, RepairPlan};

/// How long a v1 freeze around the rewrite may take (as the device update
/// path: a container that cannot freeze in a second has blocked tasks).
pub(crate) const FREEZE_DEADLINE: Duration = Duration::from_secs(1);

/// The required devices as this host has them.
pub(crate) fn required_devices(
    policy: &CheckPolicy,
    host: &HostDevices,
) -> Vec<(PathBuf, DeviceId)> {
    crate::systemd::unit_view::required_devices(&policy.required_devices, host)
}

/// Read `c`'s unit through `client` and compare it with its rules.
/// `Ok(None)` when the container is not in a systemd unit.
#[cfg(test)]
pub(crate) fn read_unit(
    c: &Container,
    client: &dyn SystemdClient,
    host: &HostDevices,
    version: Option<u32>,
) -> Result<Option<UnitView>, String> {
    if !c.systemd_cgroup {
        return Ok(None);
    }
    let Some(unit) = c.systemd_unit() else {
        return Ok(None);
    };
    let spec = c
        .config
        .as_deref()
        .ok_or_else(|| format!("OCI config of {} unreadable", c.id))?;
    let rules = crate::devices::expected::expected_rules(spec)
        .map_err(|e| format!("OCI device rules: {e}"))?;
    let current = client
        .unit_devices(&unit)
        .map_err(|e| format!("{unit}: {e}"))?;
    UnitView::new(unit, current, rules, host, version)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// The rewritten list for a unit, and what it still cannot express.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rewrite {
    /// The explicit entries plus every entry the unit has now.
    pub entries: Vec<DeviceAllowEntry>,
    /// Rules no entry can express, as text.
    pub unexpressed: Vec<String>,
}

fn reason_text(r: UnexpressedReason) -> &'static str {
    match r {
        UnexpressedReason::NoNode => {
            "no node and no /dev/char link, systemd too old to parse numbers"
        }
        UnexpressedReason::WildcardMajor => "systemd has no form for one minor of every major",
        UnexpressedReason::NoClassName => {
            "no /proc/devices name of its own, systemd too old for a numeric class"
        }
    }
}

/// Plan the rewrite of `view`'s unit: refuses when a required device would
/// still be denied afterwards.
pub(crate) fn rewrite(
    view: &UnitView,
    host: &HostDevices,
    required: &[(PathBuf, DeviceId)],
) -> Result<Rewrite, PlanError> {
    let x = explicit_device_allow(
        &view.rules,
        host,
        ExplicitOptions {
            systemd_version: view.version,
        },
    )
    .map_err(PlanError::Emulator)?;
    let unexpressed: Vec<String> = x
        .unexpressed
        .iter()
        .map(|u| format!("{} {}: {}", u.pattern, u.access, reason_text(u.reason)))
        .collect();
    let entries = merge(&x.entries, &view.current.allow);
    let after = view
        .losses_with(&entries, host)
        .map_err(PlanError::UnitView)?;
    let still = lost_required(&after, required);
    if !still.is_empty() {
        let names: Vec<String> = still.iter().map(ToString::to_string).collect();
        return Err(PlanError::NotRepairable(format!(
            "no DeviceAllow entry systemd {} accepts here can express {} (unexpressed rules: {}); \
             the unit is left as it is",
            view.version
                .map_or_else(|| "(version unknown)".into(), |v| v.to_string()),
            names.join(", "),
            if unexpressed.is_empty() {
                "none".into()
            } else {
                unexpressed.join("; ")
            }
        )));
    }
    Ok(Rewrite {
        entries,
        unexpressed,
    })
}

/// The devices a `device-access-broken` finding says were refused.
fn refused_devices(finding: &Finding) -> BTreeSet<DeviceId> {
    match &finding.cause {
        Cause::DeviceAccess(c) => c.refused.iter().map(|r| r.device).collect(),
        _ => BTreeSet::new(),
    }
}

/// Whether `devices.explicitRules` lets the rewrite be planned on a host
/// with (`dev_char`) or without `/dev/char`: `Never` refuses, `Auto` allows
/// it only without `/dev/char` (where systemd's `char-*`/`block-*` entries
/// resolve through it and lose devices), `Always` whenever it is needed.
pub(crate) fn explicit_rules_allowed(
    rules: ExplicitRules,
    dev_char: bool,
) -> Result<(), PlanError> {
    match rules {
        ExplicitRules::Never => Err(PlanError::NotAllowed(
            "devices.explicitRules: Never".to_string(),
        )),
        ExplicitRules::Auto if dev_char => Err(PlanError::NotAllowed(
            "devices.explicitRules: Auto, and this host has /dev/char (systemd resolves \
             DeviceAllow there itself); set Always to rewrite anyway"
                .to_string(),
        )),
        ExplicitRules::Auto | ExplicitRules::Always => Ok(()),
    }
}

/// Plan the `DeviceAllow=` rewrite for `finding` about `c`, talking to
/// systemd through `client`. `Ok(None)` when the unit is not the cause: the
/// container is not in a unit, or (for `device-access-broken`) the unit
/// loses none of the devices the container was refused.
#[cfg(test)]
pub(crate) fn plan_with(
    finding: &Finding,
    c: &Container,
    policy: &CheckPolicy,
    client: &dyn SystemdClient,
    host: &HostDevices,
    version: Option<u32>,
) -> Result<Option<RepairPlan>, PlanError> {
    let Some(view) = read_unit(c, client, host, version).map_err(PlanError::NoConfig)? else {
        return Ok(None);
    };
    plan_unit(finding, view, c, policy, host)
}

/// Plan the rewrite of `view` (the unit of `c`) for `finding`: pure, from
/// what the scan read. `Ok(None)` when the unit is not the cause (for
/// `device-access-broken`: the unit loses none of the refused devices).
pub(crate) fn plan_unit(
    finding: &Finding,
    view: UnitView,
    c: &Container,
    policy: &CheckPolicy,
    host: &HostDevices,
) -> Result<Option<RepairPlan>, PlanError> {
    // The unit is the last component of the init's cgroup path: a systemd
    // inside the container puts its init under `<scope>/init.scope`, and a
    // privileged pod can make a cgroup named after another container's
    // scope. Only a unit that names this container is ever written (apply
    // also checks which cgroup the unit manages).
    if !view.unit.contains(c.id.as_str()) {
        return Err(PlanError::NotRepairable(format!(
            "systemd unit {} does not name container {}: not written (is systemd running \
             inside the container?)",
            view.unit, c.id
        )));
    }
    let Some(container_cgroup) = c.cgroups.path.clone() else {
        return Err(PlanError::NotRepairable(format!(
            "{}: the container's cgroup is unknown, so the unit cannot be checked",
            view.unit
        )));
    };
    let required = required_devices(policy, host);
    if finding.check == CheckId::DeviceAccessBroken {
        let refused = refused_devices(finding);
        let rw = Access::READ.union(Access::WRITE);
        let cause = view
            .lost
            .iter()
            .any(|l| refused.contains(&l.device) && !l.access.intersection(rw).is_empty());
        if !cause {
            return Ok(None);
        }
    }
    if view.lost.is_empty() {
        return Err(PlanError::NotRepairable(format!(
            "{}: DeviceAllow no longer denies anything the container is entitled to",
            view.unit
        )));
    }
    // Only now, when the unit is the cause and loses something: a policy
    // that forbids the rewrite must not stop other repairs of a finding the
    // unit has nothing to do with.
    explicit_rules_allowed(policy.explicit_rules, host.dev_char())?;
    let rw = rewrite(&view, host, &required)?;
    if covers(&view.current.allow, &rw.entries) {
        return Err(PlanError::NotRepairable(format!(
            "{}: no DeviceAllow entry can express what the unit loses ({}): {}",
            view.unit,
            view.lost
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            rw.unexpressed.join("; ")
        )));
    }
    let freeze = match c.cgroups.v1("devices") {
        None => None,
        Some(_) => match c.cgroups.v1("freezer") {
            Some(f) => Some(FreezeTarget::V1(f.clone())),
            None => {
                return Err(PlanError::NotRepairable(format!(
                    "{}: systemd rewrites a v1 devices list as deny-all then allow, and the \
                     container has no v1 freezer cgroup to freeze around it",
                    view.unit
                )))
            }
        },
    };
    // One sentence: the unexpressable rules are in the plan's own field.
    let safety = match freeze {
        Some(_) => {
            "The new DeviceAllow keeps every entry the unit had and adds the container's rules \
             explicitly, so systemd's list only grows; on cgroup v1, where systemd writes \
             deny-all first, the container is frozen around the call, and nothing is sent if it \
             cannot be frozen."
        }
        None => {
            "The new DeviceAllow keeps every entry the unit had and adds the container's rules \
             explicitly, so systemd's list only grows, and on cgroup v2 systemd attaches its new \
             program before releasing the old one."
        }
    }
    .to_string();
    Ok(Some(RepairPlan {
        check: finding.check,
        container: Some(c.reference()),
        actions: vec![RepairAction::SystemdDeviceAllow {
            unit: view.unit.clone(),
            policy: view.policy(),
            before: view.current.allow.iter().map(ToString::to_string).collect(),
            entries: rw.entries,
            lost: view.lost.iter().map(ToString::to_string).collect(),
            unexpressed: rw.unexpressed,
            freeze,
            container_cgroup,
        }],
        safety,
    }))
}

/// The `DeviceAllow=` rewrite for `finding` about `c`, from the scan's
/// snapshot: a `device-rules-latent` finding carries its unit view; for
/// `device-access-broken` the unit's settings come from the snapshot (read
/// once per scan, shared with the latent check). `Ok(None)` when the
/// container is not in a unit, its unit cannot be read (logged), or the
/// unit is not the cause: other repairs may still apply.
pub(crate) fn plan(
    finding: &Finding,
    c: &Container,
    snapshot: &Snapshot,
    systemd_version: Option<u32>,
    policy: &CheckPolicy,
) -> Result<Option<RepairPlan>, PlanError> {
    if !c.systemd_cgroup || c.systemd_unit().is_none() {
        return Ok(None);
    }
    let host = snapshot.host_devices().map_err(PlanError::Snapshot)?;
    let view = match &finding.cause {
        Cause::UnitDevices(u) => Some(u.view.clone()),
        _ => {
            let units = |u: &str| snapshot.unit_devices(u);
            match crate::diagnose::unit_view(c, &units, &host, systemd_version) {
                Ok(v) => v,
                Err(e) => {
                    // The device cgroups can still be repaired now; the unit
                    // is looked at again by the next scan.
                    tracing::warn!(
                        container = %c.id,
                        error = %crate::error::chain(&e),
                        "systemd unit unreadable: only the device cgroups are repaired this time"
                    );
                    None
                }
            }
        }
    };
    match view {
        Some(v) => plan_unit(finding, v, c, policy, &host),
        None => Ok(None),
    }
}

/// What applying the rewrite did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Applied {
    /// systemd has the entries now.
    Changed(String),
    /// It had them already: no call was made.
    Unchanged(String),
}

/// Set `entries` (merged with whatever the unit has by now) on `unit`,
/// frozen in `freeze` (a host path, re-rooted under `root`) when given.
/// A freeze leaves a marker in `marker_dir` (a host path, re-rooted by the
/// cgroup port; the agent's
/// `<state-dir>/frozen/`) until the thaw, so that a crash mid-repair is
/// thawed by the agent's next start.
pub(crate) fn apply_with(
    client: &dyn SystemdClient,
    cgroups: &dyn CgroupPort,
    unit: &str,
    entries: &[DeviceAllowEntry],
    freeze: Option<&FreezeTarget>,
    marker_dir: Option<&Path>,
) -> Result<Applied, RepairError> {
    let err = |message: String| RepairError::Systemd {
        unit: unit.to_string(),
        message,
    };
    let call = |source| RepairError::SystemdCall {
        unit: unit.to_string(),
        source,
    };
    let current = client.unit_devices(unit).map_err(call)?;
    if covers(&current.allow, entries) {
        return Ok(Applied::Unchanged(format!(
            "{unit}: DeviceAllow already explicit and complete ({} entries)",
            current.allow.len()
        )));
    }
    // Anything added to the unit since planning is kept.
    let target = merge(entries, &current.allow);
    let guard = match freeze {
        None => None,
        Some(t) => Some(
            cgroups
                .freeze(t, FREEZE_DEADLINE, marker_dir)
                .map_err(|source| RepairError::Freeze {
                    unit: unit.to_string(),
                    source,
                })?,
        ),
    };
    let frozen_for = guard.as_ref().map(|g| g.waited());
    let set = client
        .replace_devices(unit, None, &target)
        .and_then(|()| client.unit_devices(unit));
    let thawed = guard.map(|g| g.thaw()).transpose();
    match (set, thawed) {
        (Ok(_), Err(e)) => Err(err(format!(
            "DeviceAllow call made but thawing the container failed; it is still frozen: {e}"
        ))),
        (Err(call), Err(thaw)) => Err(err(format!(
            "DeviceAllow call failed: {call}; and thawing the container failed too, it is still \
             frozen: {thaw}"
        ))),
        (Err(e), Ok(_)) => Err(call(e)),
        (Ok(after), Ok(_)) if !covers(&after.allow, &target) => Err(err(format!(
            "systemd did not keep the entries; it has: {}",
            after
                .allow
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ))),
        (Ok(_), Ok(_)) => Ok(Applied::Changed(format!(
            "{unit}: DeviceAllow rewritten to {} explicit entries{}",
            target.len(),
            frozen_for.map_or_else(String::new, |d| format!(" (frozen for {d:?})"))
        ))),
    }
}

/// Serialize entries in unit-file form (`/dev/null rwm`), for plans.
pub(crate) fn entries_as_text<S: serde::Serializer>(
    entries: &[DeviceAllowEntry],
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_seq(entries.iter().map(ToString::to_string))
}

#[cfg(test)]
#[path = "systemd_unit_tests.rs"]
mod tests;
