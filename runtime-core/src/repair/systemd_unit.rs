//! A systemd-managed container's unit against what its runtime granted it
//! (seed 003): what the unit's `DeviceAllow=` takes away once systemd
//! re-applies it (read by the `device-rules-latent` check), and the repair,
//! a rewrite of `DeviceAllow=` to explicit per-device entries.
//!
//! Everything goes through [`SystemdClient`], so pure tests feed unit
//! properties from a fake; the scan and `warden check --fix` connect with
//! [`connect`].
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
//!   the container is frozen around the call, and nothing is changed when it
//!   cannot be frozen.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cgroups::FreezeTarget;
use crate::devices::device_allow::{
    explicit_device_allow, narrower_than_rules, ExplicitOptions, UnexpressedReason,
};
use crate::devices::expected::expected_rules;
use crate::devices::host_devices::{DeviceId, HostDevices};
use crate::devices::systemd::{DeviceAllowEntry, DevicePolicy, UnitDevices};
use crate::devices::{Access, DeviceRule};
use crate::diagnose::{ids, CheckPolicy, ExplicitRules, Finding, ScanOptions};
use crate::discovery::Container;
use crate::ports::CgroupPort;
use crate::systemd::SystemdClient;

use super::{PlanError, RepairAction, RepairError, RepairPlan};

/// How long a v1 freeze around the rewrite may take (as the device update
/// path: a container that cannot freeze in a second has blocked tasks).
pub(crate) const FREEZE_DEADLINE: Duration = Duration::from_secs(1);

/// A device (with a node on this host) and the access the unit loses on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lost {
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
#[derive(Debug, Clone)]
pub(crate) struct UnitView {
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
    /// The policy as systemd applies it.
    pub fn policy(&self) -> DevicePolicy {
        self.current.policy.unwrap_or_default()
    }

    /// The lost devices that are required (read or write lost on one).
    pub fn lost_required<'a>(&'a self, required: &'a [(PathBuf, DeviceId)]) -> Vec<&'a Lost> {
        lost_required(&self.lost, required)
    }
}

fn lost_required<'a>(lost: &'a [Lost], required: &[(PathBuf, DeviceId)]) -> Vec<&'a Lost> {
    let rw = Access::READ.union(Access::WRITE);
    lost.iter()
        .filter(|l| {
            required.iter().any(|(_, d)| *d == l.device) && !l.access.intersection(rw).is_empty()
        })
        .collect()
}

/// The required devices as this host has them (paths without a node are
/// left out: the container cannot lose what the host does not have).
pub(crate) fn required_devices(
    policy: &CheckPolicy,
    host: &HostDevices,
) -> Vec<(PathBuf, DeviceId)> {
    policy
        .required_devices
        .iter()
        .filter_map(|p| host.stat(p).map(|d| (p.clone(), d)))
        .collect()
}

/// Read `c`'s unit and compare it with its rules. `Ok(None)` when the
/// container is not in a systemd unit.
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
    let rules = expected_rules(spec).map_err(|e| format!("OCI device rules: {e}"))?;
    let current = client
        .unit_devices(&unit)
        .map_err(|e| format!("{unit}: {e}"))?;
    let policy = current.policy.unwrap_or_default();
    let (lost, lost_without_node) = losses(&rules, policy, &current.allow, host, version)?;
    Ok(Some(UnitView {
        unit,
        current,
        version,
        rules,
        lost,
        lost_without_node,
    }))
}

/// What `allow` under `policy` loses against `rules`, per device with a
/// node here, and how many node-less devices it would lose.
fn losses(
    rules: &[DeviceRule],
    policy: DevicePolicy,
    allow: &[DeviceAllowEntry],
    host: &HostDevices,
    version: Option<u32>,
) -> Result<(Vec<Lost>, usize), String> {
    let gaps = narrower_than_rules(rules, policy, allow, host, version)
        .map_err(|e| format!("device rules: {e}"))?;
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
/// selector are merged (access OR-ed), as systemd merges them.
pub(crate) fn merge(
    primary: &[DeviceAllowEntry],
    keep: &[DeviceAllowEntry],
) -> Vec<DeviceAllowEntry> {
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
pub(crate) fn covers(have: &[DeviceAllowEntry], want: &[DeviceAllowEntry]) -> bool {
    want.iter().all(|w| {
        have.iter()
            .any(|h| h.selector == w.selector && h.access.contains(w.access))
    })
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
    .map_err(|e| PlanError::Unreadable(format!("device rules: {e}")))?;
    let unexpressed: Vec<String> = x
        .unexpressed
        .iter()
        .map(|u| format!("{} {}: {}", u.pattern, u.access, reason_text(u.reason)))
        .collect();
    let entries = merge(&x.entries, &view.current.allow);
    let (after, _) = losses(&view.rules, view.policy(), &entries, host, view.version)
        .map_err(PlanError::Unreadable)?;
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

/// The devices a `device-access-broken` finding names (`refused:PATH`,
/// `canary:PATH` evidence), as this host numbers them.
fn refused_devices(finding: &Finding, host: &HostDevices) -> BTreeSet<DeviceId> {
    finding
        .evidence
        .keys()
        .filter_map(|k| {
            k.strip_prefix("refused:")
                .or_else(|| k.strip_prefix("canary:"))
        })
        .filter_map(|p| host.stat(Path::new(p)))
        .collect()
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
pub(crate) fn plan_with(
    finding: &Finding,
    c: &Container,
    policy: &CheckPolicy,
    client: &dyn SystemdClient,
    host: &HostDevices,
    version: Option<u32>,
) -> Result<Option<RepairPlan>, PlanError> {
    let Some(view) = read_unit(c, client, host, version).map_err(PlanError::Unreadable)? else {
        return Ok(None);
    };
    let required = required_devices(policy, host);
    if finding.check == ids::DEVICE_ACCESS_BROKEN {
        let refused = refused_devices(finding, host);
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
    let mut safety = String::from(
        "the new DeviceAllow is the explicit form of the container's OCI rules plus every entry \
         the unit has now, so systemd's list only grows (DevicePolicy is kept); ",
    );
    safety.push_str(match freeze {
        Some(_) => {
            "on cgroup v1 systemd writes deny-all and then the list, so the container is frozen \
             around the call, and nothing is changed if it cannot be frozen"
        }
        None => {
            "on cgroup v2 systemd attaches its new program before releasing the old one, so the \
             container never has less than before"
        }
    });
    if !rw.unexpressed.is_empty() {
        safety.push_str(&format!(
            "; rules no entry can express (not required devices): {}",
            rw.unexpressed.join("; ")
        ));
    }
    Ok(Some(RepairPlan {
        check: finding.check.clone(),
        container: Some(c.reference()),
        actions: vec![RepairAction::SystemdDeviceAllow {
            unit: view.unit.clone(),
            policy: view.policy(),
            before: view.current.allow.iter().map(ToString::to_string).collect(),
            entries: rw.entries,
            lost: view.lost.iter().map(ToString::to_string).collect(),
            unexpressed: rw.unexpressed,
            freeze,
        }],
        safety,
    }))
}

/// [`plan_with`] against the host's systemd. `Ok(None)` also when systemd
/// cannot be reached (logged): other repairs may still apply.
pub(crate) fn plan(
    finding: &Finding,
    c: &Container,
    opts: &ScanOptions,
    policy: &CheckPolicy,
) -> Result<Option<RepairPlan>, PlanError> {
    if !c.systemd_cgroup || c.systemd_unit().is_none() {
        return Ok(None);
    }
    let client = match opts.ports.systemd.connect() {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(container = %c.id, error = %e, "systemd unreachable: no DeviceAllow repair");
            return Ok(None);
        }
    };
    let host = HostDevices::scan(opts.root())
        .map_err(|e| PlanError::Unreadable(format!("host devices: {e}")))?;
    let version = client.version().ok();
    plan_with(finding, c, policy, client.as_ref(), &host, version)
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
/// A freeze leaves a marker in `marker_dir` (already re-rooted; the agent's
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
    let current = client.unit_devices(unit).map_err(|e| err(e.to_string()))?;
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
        (Err(e), Ok(_)) => Err(err(e.to_string())),
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
pub(crate) mod tests {
    use super::*;
    use crate::devices::host_devices::ProcDevices;
    use crate::devices::DeviceType;
    use crate::discovery::{ContainerCgroups, RuntimeSource};
    use crate::ports::RealCgroups;
    use crate::root::HostRoot;
    use crate::systemd::{SystemdError, UnitProperty};
    use std::cell::RefCell;

    /// A systemd that holds one unit's device settings and applies
    /// `SetUnitProperties` the way systemd does (a reset clears, entries for
    /// the same path merge).
    pub(crate) struct FakeSystemd {
        pub version: u32,
        pub devices: RefCell<UnitDevices>,
        pub calls: RefCell<Vec<Vec<UnitProperty>>>,
        pub fail: bool,
    }

    impl FakeSystemd {
        pub fn new(allow: &[&str]) -> Self {
            FakeSystemd {
                version: 252,
                devices: RefCell::new(UnitDevices {
                    policy: Some(DevicePolicy::Strict),
                    allow: entries(allow),
                }),
                calls: RefCell::new(Vec::new()),
                fail: false,
            }
        }
    }

    impl SystemdClient for FakeSystemd {
        fn version_string(&self) -> Result<String, SystemdError> {
            Ok(format!("{}.1-1", self.version))
        }
        fn unit_devices(&self, _unit: &str) -> Result<UnitDevices, SystemdError> {
            if self.fail {
                return Err(SystemdError::Reply {
                    method: "GetUnit",
                    message: "no such unit".into(),
                });
            }
            Ok(self.devices.borrow().clone())
        }
        fn set_unit_properties(
            &self,
            _unit: &str,
            _runtime: bool,
            properties: &[UnitProperty],
        ) -> Result<(), SystemdError> {
            self.calls.borrow_mut().push(properties.to_vec());
            let mut d = self.devices.borrow_mut();
            for p in properties {
                match p {
                    UnitProperty::DevicePolicy(p) => d.policy = Some(*p),
                    UnitProperty::DeviceAllow(e) if e.is_empty() => d.allow.clear(),
                    UnitProperty::DeviceAllow(e) => {
                        let merged = merge(&d.allow, e);
                        d.allow = merged;
                    }
                }
            }
            Ok(())
        }
        fn reload(&self) -> Result<(), SystemdError> {
            Ok(())
        }
    }

    pub(crate) fn entries(list: &[&str]) -> Vec<DeviceAllowEntry> {
        list.iter()
            .map(|s| DeviceAllowEntry::parse(s).expect("entry"))
            .collect()
    }

    pub(crate) const OLD_SET: &[&str] = &["char-pts rwm", "char-* m", "block-* m"];

    /// What runc 1.1.5 writes when `/sys/dev/char` exists: one
    /// `/dev/char/M:m` entry per default device.
    pub(crate) const RUNC_1_1_5_SET: &[&str] = &[
        "char-pts rwm",
        "/dev/char/1:3 rwm",
        "/dev/char/1:5 rwm",
        "/dev/char/1:7 rwm",
        "/dev/char/1:8 rwm",
        "/dev/char/1:9 rwm",
        "/dev/char/5:0 rwm",
        "/dev/char/5:2 rwm",
        "/dev/char/10:200 rwm",
        "char-* m",
        "block-* m",
    ];

    /// The nspawn guest's /dev: no /dev/char, no ptmx node.
    pub(crate) fn host() -> HostDevices {
        let nodes: Vec<(PathBuf, DeviceId)> = vec![
            ("/dev/null".into(), (DeviceType::Char, 1, 3)),
            ("/dev/zero".into(), (DeviceType::Char, 1, 5)),
            ("/dev/full".into(), (DeviceType::Char, 1, 7)),
            ("/dev/random".into(), (DeviceType::Char, 1, 8)),
            ("/dev/urandom".into(), (DeviceType::Char, 1, 9)),
            ("/dev/tty".into(), (DeviceType::Char, 5, 0)),
            ("/dev/net/tun".into(), (DeviceType::Char, 10, 200)),
        ];
        HostDevices::from_parts(
            nodes,
            Vec::new(),
            false,
            ProcDevices::parse("Character devices:\n  1 mem\n  5 /dev/tty\n 10 misc\n136 pts\n\nBlock devices:\n  7 loop\n"),
        )
    }

    /// A runc container from `runc spec` (deny-all, then runc's defaults),
    /// in a systemd scope; `v1` adds v1 devices (and freezer) cgroups.
    pub(crate) fn container(id: &str, freezer: Option<PathBuf>, v1: bool) -> Container {
        let spec: oci_spec::runtime::Spec = serde_json::from_str(
            r#"{"ociVersion":"1.0.2","linux":{"resources":{"devices":[{"allow":false,"access":"rwm"}]}}}"#,
        )
        .expect("spec");
        let mut cgroups = ContainerCgroups {
            path: Some(format!("/system.slice/runc-{id}.scope")),
            ..Default::default()
        };
        if v1 {
            cgroups.v1.insert(
                "devices".into(),
                PathBuf::from(format!(
                    "/sys/fs/cgroup/devices/system.slice/runc-{id}.scope"
                )),
            );
        }
        if let Some(f) = freezer {
            cgroups.v1.insert("freezer".into(), f);
        }
        Container {
            id: id.into(),
            runtime: RuntimeSource::Runc,
            pid: 1,
            state_dir: PathBuf::from("/run/runc").join(id),
            bundle: None,
            config: Some(Box::new(spec)),
            cgroups,
            systemd_cgroup: true,
            pod: None,
        }
    }

    fn finding(check: &str, evidence: &[&str]) -> Finding {
        Finding {
            check: check.into(),
            severity: crate::diagnose::Severity::Error,
            container: None,
            message: String::new(),
            evidence: evidence
                .iter()
                .map(|k| (k.to_string(), "EPERM".to_string()))
                .collect(),
            repaired: false,
            repair_note: None,
        }
    }

    fn the_action(p: &RepairPlan) -> (&[DeviceAllowEntry], Option<&FreezeTarget>, &[String]) {
        match &p.actions[..] {
            [RepairAction::SystemdDeviceAllow {
                entries,
                freeze,
                unexpressed,
                ..
            }] => (entries, freeze.as_ref(), unexpressed),
            other => panic!("unexpected actions {other:?}"),
        }
    }

    #[test]
    fn the_seed_set_loses_the_pseudo_devices_and_runc_115s_does_not() {
        let h = host();
        let c = container("a", None, false);
        let sd = FakeSystemd::new(OLD_SET);
        let v = read_unit(&c, &sd, &h, Some(252))
            .unwrap()
            .expect("in a unit");
        assert_eq!(v.unit, "runc-a.scope");
        let lost: Vec<String> = v.lost.iter().map(ToString::to_string).collect();
        assert!(
            lost.contains(&"c 1:3 rw (/dev/null)".to_string()),
            "{lost:?}"
        );
        assert!(lost.iter().any(|l| l.contains("/dev/urandom")), "{lost:?}");
        // ptmx (5:2) has no node in the guest: not counted, but noted.
        assert!(!lost.iter().any(|l| l.contains(" 5:2 ")), "{lost:?}");
        assert_eq!(v.lost_without_node, 1);
        let required = required_devices(&CheckPolicy::default(), &h);
        assert_eq!(required.len(), 6);
        assert_eq!(v.lost_required(&required).len(), 6);

        // What runc 1.1.5 writes when /sys/dev/char exists: fine on 252...
        let sd = FakeSystemd::new(RUNC_1_1_5_SET);
        let v = read_unit(&c, &sd, &h, Some(252)).unwrap().unwrap();
        assert!(v.lost.is_empty(), "{:?}", v.lost);
        // ...but a systemd that stats the path loses everything.
        let v = read_unit(&c, &sd, &h, Some(239)).unwrap().unwrap();
        assert_eq!(v.lost_required(&required).len(), 6);

        // Not in a unit: nothing to read, systemd is not asked.
        let mut plain = container("b", None, false);
        plain.systemd_cgroup = false;
        let failing = FakeSystemd {
            fail: true,
            ..FakeSystemd::new(&[])
        };
        assert!(read_unit(&plain, &failing, &h, Some(252))
            .unwrap()
            .is_none());
        assert!(read_unit(&c, &failing, &h, Some(252)).is_err());
    }

    #[test]
    fn plan_then_apply_repairs_once_and_keeps_what_the_unit_had() {
        let h = host();
        let c = container("a", None, false);
        let mut old: Vec<&str> = OLD_SET.to_vec();
        old.push("/dev/fuse rwm"); // an admin's addition, not in the rules
        let sd = FakeSystemd::new(&old);
        let f = finding(ids::DEVICE_RULES_LATENT, &[]);
        let plan = plan_with(&f, &c, &CheckPolicy::default(), &sd, &h, Some(252))
            .unwrap()
            .expect("a plan");
        let (want, freeze, unexpressed) = the_action(&plan);
        assert!(freeze.is_none(), "v2 needs no freeze");
        assert!(unexpressed.is_empty(), "{unexpressed:?}");
        let text: Vec<String> = want.iter().map(ToString::to_string).collect();
        for e in [
            "/dev/null rwm",
            "/dev/urandom rwm",
            "/dev/fuse rwm",
            "char-pts rwm",
            "char-* m",
        ] {
            assert!(text.contains(&e.to_string()), "{e} missing from {text:?}");
        }
        assert!(plan.safety.contains("only grows"), "{}", plan.safety);
        let json = serde_json::to_value(&plan).unwrap();
        assert_eq!(json["actions"][0]["action"], "systemd-device-allow");
        assert!(json["actions"][0]["entries"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("/dev/null rwm")));
        assert_eq!(sd.calls.borrow().len(), 0, "planning changes nothing");

        let root = HostRoot::new("/nonexistent");
        let a = apply_with(
            &sd,
            &RealCgroups::new(root.clone()),
            "runc-a.scope",
            want,
            None,
            None,
        )
        .unwrap();
        assert!(matches!(a, Applied::Changed(_)), "{a:?}");
        {
            let calls = sd.calls.borrow();
            assert_eq!(calls.len(), 1);
            // One call: reset, then every entry; the policy untouched.
            assert_eq!(calls[0][0], UnitProperty::DeviceAllow(vec![]));
            assert!(!calls[0]
                .iter()
                .any(|p| matches!(p, UnitProperty::DevicePolicy(_))));
        }
        let v = read_unit(&c, &sd, &h, Some(252)).unwrap().unwrap();
        assert!(v.lost.is_empty(), "{:?}", v.lost);
        assert!(v
            .current
            .allow
            .contains(&DeviceAllowEntry::parse("/dev/fuse rwm").unwrap()));

        // Idempotent: a second apply makes no call; planning again has
        // nothing to do.
        let a = apply_with(
            &sd,
            &RealCgroups::new(root.clone()),
            "runc-a.scope",
            want,
            None,
            None,
        )
        .unwrap();
        assert!(matches!(a, Applied::Unchanged(_)), "{a:?}");
        assert_eq!(sd.calls.borrow().len(), 1);
        assert!(plan_with(&f, &c, &CheckPolicy::default(), &sd, &h, Some(252)).is_err());
    }

    #[test]
    fn access_broken_is_planned_here_only_when_the_unit_is_the_cause() {
        let h = host();
        let c = container("a", None, false);
        let broken = finding(
            ids::DEVICE_ACCESS_BROKEN,
            &["refused:/dev/null", "canary:/dev/null"],
        );
        let sd = FakeSystemd::new(OLD_SET);
        assert!(
            plan_with(&broken, &c, &CheckPolicy::default(), &sd, &h, Some(252))
                .unwrap()
                .is_some()
        );
        // The unit only loses tun: /dev/null is denied by something else.
        let sd = FakeSystemd::new(&[
            "char-pts rwm",
            "/dev/null rwm",
            "/dev/zero rwm",
            "/dev/full rwm",
            "/dev/random rwm",
            "/dev/urandom rwm",
            "/dev/tty rwm",
            "char-* m",
            "block-* m",
        ]);
        assert!(
            plan_with(&broken, &c, &CheckPolicy::default(), &sd, &h, Some(252))
                .unwrap()
                .is_none()
        );
        // ...which the latent check does repair.
        let latent = finding(ids::DEVICE_RULES_LATENT, &[]);
        let p = plan_with(&latent, &c, &CheckPolicy::default(), &sd, &h, Some(252))
            .unwrap()
            .unwrap();
        let (want, _, _) = the_action(&p);
        assert!(want.contains(&DeviceAllowEntry::parse("/dev/net/tun rwm").unwrap()));
    }

    #[test]
    fn a_required_device_no_entry_can_express_is_refused() {
        // 1:3's only node has a space in its path (systemd refuses such a
        // path), there is no /dev/char, and systemd 239 stats /dev/char/M:m.
        let h = HostDevices::from_parts(
            vec![(PathBuf::from("/dev/my null"), (DeviceType::Char, 1, 3))],
            Vec::new(),
            false,
            ProcDevices::default(),
        );
        let policy = CheckPolicy {
            required_devices: vec![PathBuf::from("/dev/my null")],
            ..CheckPolicy::default()
        };
        let c = container("a", None, false);
        let sd = FakeSystemd {
            version: 239,
            ..FakeSystemd::new(OLD_SET)
        };
        let f = finding(ids::DEVICE_RULES_LATENT, &[]);
        let e = plan_with(&f, &c, &policy, &sd, &h, Some(239)).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, PlanError::NotRepairable(_)), "{msg}");
        assert!(
            msg.contains("c 1:3") && msg.contains("unexpressed"),
            "{msg}"
        );
        assert_eq!(sd.calls.borrow().len(), 0);
    }

    #[test]
    fn v1_is_frozen_around_the_call_or_not_changed() {
        let h = host();
        let f = finding(ids::DEVICE_RULES_LATENT, &[]);
        // No freezer cgroup: refused at planning.
        let c = container("a", None, true);
        let sd = FakeSystemd::new(OLD_SET);
        let e = plan_with(&f, &c, &CheckPolicy::default(), &sd, &h, Some(252)).unwrap_err();
        assert!(e.to_string().contains("freezer"), "{e}");

        // A fake v1 freezer (plain files): frozen during the call, thawed
        // after.
        let root = tempfile::tempdir().unwrap();
        let fz = PathBuf::from("/sys/fs/cgroup/freezer/system.slice/runc-a.scope");
        let dir = HostRoot::new(root.path()).join(&fz);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("freezer.state"), "THAWED\n").unwrap();
        std::fs::write(dir.join("freezer.self_freezing"), "0\n").unwrap();
        std::fs::write(dir.join("tasks"), "").unwrap();
        let c = container("a", Some(fz.clone()), true);
        let p = plan_with(&f, &c, &CheckPolicy::default(), &sd, &h, Some(252))
            .unwrap()
            .unwrap();
        let (want, freeze, _) = the_action(&p);
        assert_eq!(freeze, Some(&FreezeTarget::V1(fz.clone())));
        assert!(p.safety.contains("frozen"), "{}", p.safety);
        let a = apply_with(
            &sd,
            &RealCgroups::new(HostRoot::new(root.path())),
            "runc-a.scope",
            want,
            freeze,
            None,
        )
        .unwrap();
        match a {
            Applied::Changed(s) => assert!(s.contains("frozen for"), "{s}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            std::fs::read_to_string(dir.join("freezer.state"))
                .unwrap()
                .trim(),
            "THAWED"
        );

        // A freezer that cannot be frozen: nothing is sent to systemd.
        let sd = FakeSystemd::new(OLD_SET);
        std::fs::remove_file(dir.join("freezer.self_freezing")).unwrap();
        let e = apply_with(
            &sd,
            &RealCgroups::new(HostRoot::new(root.path())),
            "runc-a.scope",
            want,
            freeze,
            None,
        )
        .unwrap_err();
        assert!(matches!(e, RepairError::Freeze { .. }), "{e}");
        assert_eq!(sd.calls.borrow().len(), 0);
    }

    /// systemd's v1 behaviour, on a real devices cgroup: every
    /// `SetUnitProperties` writes `devices.deny a`, then the allow list.
    /// systemd stats each node between the writes; here the window is
    /// widened to 1 ms so that the unfrozen control sees it every time.
    struct V1Replaying {
        devices: PathBuf,
        state: RefCell<UnitDevices>,
    }

    impl SystemdClient for V1Replaying {
        fn version_string(&self) -> Result<String, SystemdError> {
            Ok("252".into())
        }
        fn unit_devices(&self, _unit: &str) -> Result<UnitDevices, SystemdError> {
            Ok(self.state.borrow().clone())
        }
        fn set_unit_properties(
            &self,
            _unit: &str,
            _runtime: bool,
            properties: &[UnitProperty],
        ) -> Result<(), SystemdError> {
            let w = |file: &str, line: &str| {
                std::fs::write(self.devices.join(file), line).expect("devices write");
            };
            w("devices.deny", "a");
            std::thread::sleep(Duration::from_millis(1));
            for line in [
                "c 1:3 rwm",
                "c 1:5 rwm",
                "c 1:7 rwm",
                "c 1:8 rwm",
                "c 1:9 rwm",
                "c 5:0 rwm",
                "c 136:* rwm",
                "c *:* m",
                "b *:* m",
            ] {
                w("devices.allow", line);
            }
            let mut d = self.state.borrow_mut();
            for p in properties {
                if let UnitProperty::DeviceAllow(e) = p {
                    d.allow = if e.is_empty() {
                        Vec::new()
                    } else {
                        merge(&d.allow, e)
                    };
                }
            }
            Ok(())
        }
        fn reload(&self) -> Result<(), SystemdError> {
            Ok(())
        }
    }

    /// A process opening /dev/urandom in a loop inside fresh v1 devices and
    /// freezer cgroups; killed, thawed and removed on drop.
    struct Looper {
        child: std::process::Child,
        devices: PathBuf,
        freezer: PathBuf,
        out: tempfile::NamedTempFile,
    }

    impl Looper {
        fn start(tag: &str) -> Looper {
            let name = format!("warden-sdu-{}-{tag}", std::process::id());
            let devices = PathBuf::from("/sys/fs/cgroup/devices").join(&name);
            let freezer = PathBuf::from("/sys/fs/cgroup/freezer").join(&name);
            std::fs::create_dir_all(&devices).unwrap();
            std::fs::create_dir_all(&freezer).unwrap();
            let out = tempfile::NamedTempFile::new().unwrap();
            let child = std::process::Command::new("/bin/busybox")
                .args([
                    "sh",
                    "-c",
                    "while :; do true </dev/urandom 2>&- || echo F; done",
                ])
                .stdout(out.reopen().unwrap())
                .spawn()
                .unwrap();
            let l = Looper {
                child,
                devices,
                freezer,
                out,
            };
            for dir in [&l.devices, &l.freezer] {
                std::fs::write(dir.join("cgroup.procs"), l.child.id().to_string()).unwrap();
            }
            l
        }

        fn eperms(&self) -> usize {
            std::fs::read_to_string(self.out.path())
                .unwrap()
                .lines()
                .count()
        }

        /// The loop still runs (a dead loop would count no EPERM).
        fn alive(&self) -> bool {
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
                .ok()
                .and_then(|s| s.rsplit(')').next().map(|r| r.trim_start().to_owned()))
                .is_some_and(|r| !r.starts_with('Z') && !r.starts_with('X'))
        }
    }

    impl Drop for Looper {
        fn drop(&mut self) {
            let _ = std::fs::write(self.freezer.join("freezer.state"), "THAWED");
            let _ = self.child.kill();
            let _ = self.child.wait();
            let _ = std::fs::remove_dir(&self.devices);
            let _ = std::fs::remove_dir(&self.freezer);
        }
    }

    /// On v1 systemd's rewrite opens a deny-all window (seen here without
    /// the freeze); inside the freeze the container never sees it.
    #[test]
    fn v1_replay_inside_the_freeze_is_invisible_to_the_container() {
        let name = "v1_replay_inside_the_freeze_is_invisible_to_the_container";
        if !crate::testing::require_root(name)
            || !crate::testing::require_path(name, Path::new("/sys/fs/cgroup/devices/devices.list"))
            || !crate::testing::require_path(name, Path::new("/sys/fs/cgroup/freezer/cgroup.procs"))
            || !crate::testing::require_path(name, Path::new("/bin/busybox"))
        {
            return;
        }
        let root = HostRoot::real();
        let want = entries(&["/dev/null rwm", "/dev/urandom rwm", "char-pts rwm"]);
        // Rewrites until `stop_at` EPERMs were seen, or `rounds` of them.
        let run = |tag: &str, frozen: bool, rounds: usize, stop_at: usize| -> (usize, usize) {
            let l = Looper::start(tag);
            let sd = V1Replaying {
                devices: l.devices.clone(),
                state: RefCell::new(UnitDevices::default()),
            };
            // Let the loop get going.
            std::thread::sleep(Duration::from_millis(20));
            let freeze = FreezeTarget::V1(l.freezer.clone());
            let mut done = 0;
            while done < rounds && l.eperms() < stop_at {
                sd.state.replace(UnitDevices {
                    policy: Some(DevicePolicy::Strict),
                    allow: entries(OLD_SET),
                });
                let a = apply_with(
                    &sd,
                    &RealCgroups::new(root.clone()),
                    "x.scope",
                    &want,
                    frozen.then_some(&freeze),
                    None,
                )
                .expect("apply");
                assert!(matches!(a, Applied::Changed(_)), "{a:?}");
                std::thread::sleep(Duration::from_micros(200));
                done += 1;
            }
            assert!(l.alive(), "the open loop died");
            assert_eq!(
                std::fs::read_to_string(l.freezer.join("freezer.state"))
                    .unwrap()
                    .trim(),
                "THAWED",
                "left frozen"
            );
            (l.eperms(), done)
        };
        let (unfrozen, unfrozen_rounds) = run("open", false, 200, 1);
        let (frozen, frozen_rounds) = run("frozen", true, 300, 1);
        eprintln!(
            "v1 replay: {unfrozen} EPERM in {unfrozen_rounds} rewrites unfrozen, \
             {frozen} in {frozen_rounds} frozen"
        );
        assert!(
            unfrozen > 0,
            "the replay window should be visible without a freeze"
        );
        assert_eq!(
            frozen, 0,
            "a deny-all window reached the container inside the freeze"
        );
    }

    #[test]
    fn merge_and_covers() {
        let m = merge(
            &entries(&["/dev/null rw", "char-* m"]),
            &entries(&["/dev/null m", "block-* m"]),
        );
        assert_eq!(m, entries(&["/dev/null rwm", "char-* m", "block-* m"]));
        assert!(covers(&m, &entries(&["/dev/null r", "block-* m"])));
        assert!(!covers(&m, &entries(&["/dev/zero r"])));
        assert!(!covers(
            &entries(&["/dev/null r"]),
            &entries(&["/dev/null rw"])
        ));
    }

    fn host_with_dev_char(dev_char: bool) -> HostDevices {
        let h = host();
        let nodes: Vec<(PathBuf, DeviceId)> = h
            .devices()
            .flat_map(|d| h.node_paths(d).iter().map(move |p| (p.clone(), d)))
            .collect();
        HostDevices::from_parts(nodes, Vec::new(), dev_char, h.proc_devices().clone())
    }

    #[test]
    fn explicit_rules_policy_gates_the_rewrite() {
        let c = container("a", None, false);
        let f = finding(ids::DEVICE_RULES_LATENT, &[]);
        let plan = |rules: ExplicitRules, dev_char: bool| {
            let policy = CheckPolicy {
                explicit_rules: rules,
                ..CheckPolicy::default()
            };
            let sd = FakeSystemd::new(OLD_SET);
            let r = plan_with(
                &f,
                &c,
                &policy,
                &sd,
                &host_with_dev_char(dev_char),
                Some(252),
            );
            let calls = sd.calls.borrow().len();
            (r, calls)
        };
        // Never: refused with the policy's name, whatever the host.
        for dev_char in [false, true] {
            match plan(ExplicitRules::Never, dev_char) {
                (Err(PlanError::NotAllowed(m)), 0) => {
                    assert_eq!(m, "devices.explicitRules: Never")
                }
                other => panic!("Never, dev_char {dev_char}: {other:?}"),
            }
        }
        // Auto: only where /dev/char is missing.
        assert!(matches!(plan(ExplicitRules::Auto, false), (Ok(Some(_)), 0)));
        match plan(ExplicitRules::Auto, true) {
            (Err(PlanError::NotAllowed(m)), 0) => {
                assert!(m.contains("explicitRules: Auto"), "{m}")
            }
            other => panic!("Auto with /dev/char: {other:?}"),
        }
        // Always: whenever needed, /dev/char or not.
        assert!(matches!(
            plan(ExplicitRules::Always, false),
            (Ok(Some(_)), 0)
        ));
        assert!(
            !matches!(
                plan(ExplicitRules::Always, true).0,
                Err(PlanError::NotAllowed(_))
            ),
            "Always is never refused by the policy"
        );
    }

    /// Delegates to a [`FakeSystemd`]; on the set call, records how many
    /// markers `markers` holds and whether the freezer says FROZEN, and
    /// optionally breaks the freezer (so the thaw fails) and the call.
    struct Watching<'a> {
        inner: FakeSystemd,
        markers: &'a Path,
        freezer: &'a Path,
        break_both: bool,
        seen: RefCell<Vec<(bool, usize)>>,
    }

    impl SystemdClient for Watching<'_> {
        fn version_string(&self) -> Result<String, SystemdError> {
            self.inner.version_string()
        }
        fn unit_devices(&self, unit: &str) -> Result<UnitDevices, SystemdError> {
            self.inner.unit_devices(unit)
        }
        fn set_unit_properties(
            &self,
            unit: &str,
            runtime: bool,
            properties: &[UnitProperty],
        ) -> Result<(), SystemdError> {
            let state = self.freezer.join("freezer.state");
            let frozen = std::fs::read_to_string(&state).unwrap().trim() == "FROZEN";
            let n = std::fs::read_dir(self.markers)
                .map(|r| r.flatten().count())
                .unwrap_or(0);
            self.seen.borrow_mut().push((frozen, n));
            if self.break_both {
                std::fs::remove_file(&state).unwrap();
                std::fs::create_dir(&state).unwrap();
                return Err(SystemdError::Reply {
                    method: "SetUnitProperties",
                    message: "access denied".into(),
                });
            }
            self.inner.set_unit_properties(unit, runtime, properties)
        }
        fn reload(&self) -> Result<(), SystemdError> {
            self.inner.reload()
        }
    }

    #[test]
    fn a_freeze_leaves_a_marker_until_the_thaw_and_both_failures_are_reported() {
        let root = tempfile::tempdir().unwrap();
        let hr = HostRoot::new(root.path());
        let fz = PathBuf::from("/sys/fs/cgroup/freezer/system.slice/runc-m.scope");
        let dir = hr.join(&fz);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("freezer.state"), "THAWED\n").unwrap();
        std::fs::write(dir.join("freezer.self_freezing"), "0\n").unwrap();
        std::fs::write(dir.join("tasks"), "").unwrap();
        let markers = hr.join("/run/warden/frozen");
        let freeze = FreezeTarget::V1(fz.clone());
        let want = entries(&["/dev/null rwm", "char-pts rwm"]);

        let sd = Watching {
            inner: FakeSystemd::new(OLD_SET),
            markers: &markers,
            freezer: &dir,
            break_both: false,
            seen: RefCell::new(Vec::new()),
        };
        let a = apply_with(
            &sd,
            &RealCgroups::new(hr.clone()),
            "runc-m.scope",
            &want,
            Some(&freeze),
            Some(Path::new("/run/warden/frozen")),
        )
        .unwrap();
        assert!(matches!(a, Applied::Changed(_)), "{a:?}");
        assert_eq!(
            *sd.seen.borrow(),
            vec![(true, 1)],
            "frozen, with its marker"
        );
        assert_eq!(
            std::fs::read_dir(&markers).unwrap().count(),
            0,
            "marker kept"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("freezer.state")).unwrap(),
            "THAWED"
        );

        // The call fails and the thaw fails: both are reported, and the
        // marker stays for the agent to thaw the container later.
        let sd = Watching {
            inner: FakeSystemd::new(OLD_SET),
            break_both: true,
            ..sd
        };
        let e = apply_with(
            &sd,
            &RealCgroups::new(hr.clone()),
            "runc-m.scope",
            &want,
            Some(&freeze),
            Some(Path::new("/run/warden/frozen")),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("access denied"), "the D-Bus error is lost: {e}");
        assert!(e.contains("freezer.state"), "the thaw error is lost: {e}");
        assert!(e.contains("still frozen"), "{e}");
        assert_eq!(std::fs::read_dir(&markers).unwrap().count(), 1);
    }

    #[test]
    fn explicit_rules_refuse_nothing_when_the_unit_is_not_the_cause() {
        let c = container("a", None, false);
        let broken = finding(
            ids::DEVICE_ACCESS_BROKEN,
            &["refused:/dev/null", "canary:/dev/null"],
        );
        // The unit denies nothing the container is entitled to: no plan
        // here (the device cgroups are repaired instead), not a refusal.
        let sd = FakeSystemd::new(&[
            "char-pts rwm",
            "/dev/null rwm",
            "/dev/zero rwm",
            "/dev/full rwm",
            "/dev/random rwm",
            "/dev/urandom rwm",
            "/dev/tty rwm",
            "/dev/net/tun rwm",
            "char-* m",
            "block-* m",
        ]);
        for (rules, dev_char) in [(ExplicitRules::Never, false), (ExplicitRules::Auto, true)] {
            let policy = CheckPolicy {
                explicit_rules: rules,
                ..CheckPolicy::default()
            };
            let h = host_with_dev_char(dev_char);
            assert!(
                matches!(
                    plan_with(&broken, &c, &policy, &sd, &h, Some(252)),
                    Ok(None)
                ),
                "{rules:?}"
            );
        }
    }
}
