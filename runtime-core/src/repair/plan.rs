//! From a finding to a plan. Reads state, changes nothing.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

use crate::cgroups::FreezeTarget;
use crate::checks::CheckId;
use crate::devices::bpf::{self, DeviceAccess};
use crate::devices::expected::expected_rules;
use crate::devices::host_devices::DeviceId;
use crate::devices::systemd::{DeviceAllowEntry, DevicePolicy};
use crate::devices::v1::{transition, DefaultPolicy, Emulator};
use crate::devices::{Access, DeviceRule, DeviceType};
use crate::diagnose::{
    rw_request, Cause, CheckPolicy, ContainerRef, Finding, Snapshot, SnapshotError,
};
use crate::discovery::Container;
use crate::host::HostFacts;

/// One step of a repair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum RepairAction {
    /// Write these allow rules to a v1 `devices.allow`, in order (a minimal
    /// transition from the current list to the current list plus what the
    /// container is entitled to).
    V1Allow {
        /// Host path of the v1 devices cgroup.
        cgroup: PathBuf,
        /// The allow rules that make up the target (current + these).
        add: Vec<DeviceRule>,
        /// The `devices.allow` lines the transition writes, for the reader.
        writes: Vec<String>,
    },
    /// Attach a device program built from `attach` (when given), then detach
    /// the programs attached at this cgroup that deny what the container is
    /// entitled to.
    V2Replace {
        /// Host path of the v2 cgroup.
        cgroup: PathBuf,
        /// The rules our program enforces: the OCI config's (with runtime
        /// defaults) plus an allow for every host device node and access
        /// bit the current programs all allow, so that nothing the
        /// container could open is lost. `None` on a hybrid host where the
        /// container has a v1 devices cgroup: the v1 list governs there
        /// (runc attaches no v2 program), so the repair only detaches.
        attach: Option<Vec<DeviceRule>>,
        /// Ids of the programs to detach after ours is attached.
        detach: Vec<u32>,
        /// Whether an identical program is attached already (then only the
        /// detach remains).
        already_attached: bool,
        /// Ids of the programs in effect when the plan was made: `attach`
        /// keeps what they allowed, so it is attached only if they are still
        /// the ones in effect (apply refuses otherwise; the next scan plans
        /// again).
        based_on: Vec<u32>,
    },
    /// Replace a systemd unit's `DeviceAllow=` with explicit per-device
    /// entries (seed 003), in one `SetUnitProperties` call; `DevicePolicy=`
    /// is left as it is.
    SystemdDeviceAllow {
        /// The unit (`runc-<id>.scope`).
        unit: String,
        /// Its `DevicePolicy=` (kept).
        policy: DevicePolicy,
        /// Its entries before, in unit-file form.
        before: Vec<String>,
        /// The entries after: the explicit form of the container's rules
        /// plus every entry the unit had.
        #[serde(serialize_with = "super::systemd_unit::entries_as_text")]
        entries: Vec<DeviceAllowEntry>,
        /// What the old entries lose against the rules (device, access,
        /// node).
        lost: Vec<String>,
        /// Rules no entry can express (never a required device: then there
        /// is no plan).
        unexpressed: Vec<String>,
        /// The cgroup frozen around the call (host path): on cgroup v1
        /// systemd writes deny-all before the list; `None` on v2.
        freeze: Option<FreezeTarget>,
        /// The container's cgroup as the kernel names it: the unit is
        /// written only if its `ControlGroup` is this cgroup or its parent
        /// (crun runs the container in `<scope>/container`).
        container_cgroup: String,
    },
    /// SIGKILL a task stuck in a seccomp notification, if it is still the
    /// same process.
    Kill {
        /// Process id.
        pid: i32,
        /// Its start time (clock ticks since boot), checked before the kill.
        start_time: u64,
    },
}

/// What will be done for one finding, and why that is safe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RepairPlan {
    /// The check id of the finding.
    pub check: CheckId,
    /// The container concerned.
    pub container: Option<ContainerRef>,
    /// The steps, in order.
    pub actions: Vec<RepairAction>,
    /// Why the steps never narrow access (or are otherwise safe).
    pub safety: String,
}

/// Why a finding has no plan.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PlanError {
    /// This kind of finding is not repaired automatically; the text says what
    /// an operator can do.
    #[error("not repairable automatically: {0}")]
    NotRepairable(String),
    /// The repair is forbidden by the policy.
    #[error("not allowed by policy: {0}")]
    NotAllowed(String),
    /// The container is no longer in its runtime's state.
    #[error("cannot plan: the container is not in runtime state any more")]
    ContainerGone,
    /// The container's OCI config could not be read at discovery.
    #[error("cannot plan: the OCI config of {0} is unreadable")]
    NoConfig(String),
    /// The systemd unit of a `device-rules-latent` container cannot be read
    /// now (it exited, or systemd did not answer).
    #[error("cannot plan: the systemd unit of {0} cannot be read now")]
    UnitUnreadable(String),
    /// The container's OCI device rules are not valid rules.
    #[error("cannot plan: the container's OCI device rules")]
    Rules(#[source] crate::devices::oci::OciRuleError),
    /// The rules could not be evaluated or combined.
    #[error("cannot plan: the device rules")]
    Emulator(#[source] crate::devices::v1::EmulatorError),
    /// The scan could not read what the plan needs.
    #[error("cannot plan")]
    Snapshot(#[source] SnapshotError),
    /// A device program could not be evaluated.
    #[error("cannot plan: evaluating the device programs")]
    Program(#[source] Arc<crate::devices::bpf::EffectiveError>),
    /// The unit could not be compared with the rules.
    #[error("cannot plan")]
    UnitView(#[source] crate::systemd::UnitViewError),
}

impl PartialEq for PlanError {
    /// Errors compare by kind and text (the sources are not comparable).
    fn eq(&self, other: &Self) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
            && crate::error::chain(self) == crate::error::chain(other)
    }
}

/// Plan the repair of `finding` (about `container`, when it has one) from
/// what the scan read ([`Snapshot`]): nothing is read here but through the
/// snapshot, which reads each item at most once per scan.
pub fn plan(
    finding: &Finding,
    container: Option<&Container>,
    snapshot: &Snapshot,
    host: &HostFacts,
    policy: &CheckPolicy,
) -> Result<RepairPlan, PlanError> {
    let gone = || PlanError::ContainerGone;
    match finding.check {
        CheckId::DeviceAccessBroken => {
            let c = container.ok_or_else(gone)?;
            // A systemd unit whose DeviceAllow denies: fix the unit, or the
            // next daemon-reload breaks the container again.
            if let Some(p) =
                super::systemd_unit::plan(finding, c, snapshot, host.systemd.version, policy)?
            {
                return Ok(p);
            }
            plan_devices(finding, c, snapshot)
        }
        CheckId::DeviceRulesLatent if matches!(finding.cause, Cause::VersionHazard { .. }) => {
            Err(PlanError::NotRepairable(
                "a node-level hazard of the runc and systemd versions: upgrade runc to 1.1.7 or \
                 later and systemd to 240 or later (or give the host /dev/char links); units \
                 that already lack entries are reported, and repaired, container by container"
                    .into(),
            ))
        }
        CheckId::DeviceRulesLatent => {
            let c = container.ok_or_else(gone)?;
            super::systemd_unit::plan(finding, c, snapshot, host.systemd.version, policy)?
                .ok_or_else(|| PlanError::UnitUnreadable(c.id.clone()))
        }
        CheckId::SeccompNotifyStuck => plan_kill(finding, policy),
        CheckId::DeviceUpdateJitter => Err(PlanError::NotRepairable(
            "a node-level hazard: use a runtime that updates device rules minimally (runc >= 1.1.8 \
             with the cgroupfs driver) or avoid device updates on running containers"
                .into(),
        )),
        CheckId::CgroupAttachRace => Err(PlanError::NotRepairable(
            "a kernel hazard: upgrade to Linux 6.1 or later".into(),
        )),
        CheckId::ShimFdLeak => Err(PlanError::NotRepairable(
            "the shim holds the leaked fds until it exits: restart the pod, upgrade containerd, \
             and lengthen exec probe periods meanwhile"
                .into(),
        )),
        CheckId::FreezeBlocked => Err(PlanError::NotRepairable(
            "tasks in uninterruptible sleep cannot be moved; find what they wait on (wchan in the evidence)".into(),
        )),
        other => Err(PlanError::NotRepairable(format!(
            "no repair is known for {other}: fix the container's seccomp profile (warden lint-profile)"
        ))),
    }
}

fn plan_devices(
    finding: &Finding,
    c: &Container,
    snapshot: &Snapshot,
) -> Result<RepairPlan, PlanError> {
    let unreadable = PlanError::Snapshot;
    let spec = c
        .config
        .as_deref()
        .ok_or_else(|| PlanError::NoConfig(c.id.clone()))?;
    let rules = expected_rules(spec).map_err(PlanError::Rules)?;
    let entitled = Emulator::from_rules(&rules).map_err(PlanError::Emulator)?;
    let mut actions = Vec::new();

    if let Some(dir) = c.cgroups.v1("devices") {
        let current = snapshot.v1_devices(dir).map_err(unreadable)?;
        let add = entitlement_allows(&entitled);
        let target = widen(&current, &add)?;
        let t = transition(&current, &target);
        if t.narrowing() {
            // Cannot happen for a target that only adds allows; refuse rather
            // than trust it.
            return Err(PlanError::NotRepairable(format!(
                "the v1 transition would narrow access: {}",
                t.reason().unwrap_or("unknown")
            )));
        }
        if !t.is_empty() {
            actions.push(RepairAction::V1Allow {
                cgroup: dir.clone(),
                add,
                writes: t
                    .writes()
                    .iter()
                    .map(crate::devices::v1::lines::format_write)
                    .collect(),
            });
        }
    }

    if let Some(dir) = &c.cgroups.v2 {
        let progs = snapshot.effective_programs(dir).map_err(unreadable)?;
        if !progs.programs.is_empty() {
            let own = snapshot.own_programs(dir).map_err(unreadable)?;
            let required: Vec<DeviceAccess> = snapshot
                .required_devices()
                .iter()
                .map(|d| rw_request(d.device))
                .collect();
            let mut detach = Vec::new();
            let mut ancestors_deny = Vec::new();
            for p in &progs.programs {
                let denies = required.iter().any(|req| {
                    entitled.allows(req.kind, req.major, req.minor, req.access)
                        && !bpf::interp::allows(&p.insns, req).unwrap_or(true)
                });
                if !denies {
                    continue;
                }
                if own.contains(&p.id) {
                    detach.push(p.id);
                } else {
                    ancestors_deny.push(p.id);
                }
            }
            if !ancestors_deny.is_empty() {
                return Err(PlanError::NotRepairable(format!(
                    "device programs {ancestors_deny:?} that deny are attached to an ancestor cgroup, \
                     which holds other containers too"
                )));
            }
            if !detach.is_empty() {
                // Hybrid: the container's v1 list (just planned above)
                // governs and runc attached no v2 program, so detaching the
                // denying programs is the whole repair: none of ours stays.
                let attach = if c.cgroups.v1("devices").is_some() {
                    None
                } else {
                    let host = snapshot.host_devices().map_err(unreadable)?;
                    Some(keep_current_access(&rules, host.devices(), |req| {
                        progs
                            .allows(req)
                            .map_err(|e| PlanError::Program(Arc::new(e)))
                    })?)
                };
                let ours = attach
                    .as_ref()
                    .map(|r| bpf::program::build_from_rules(r).map_err(PlanError::Emulator))
                    .transpose()?;
                let already_attached = ours
                    .as_ref()
                    .is_some_and(|o| progs.programs.iter().any(|p| &p.insns == o));
                // Ours (from a repair cut short) is not part of what it was
                // built from.
                let based_on = progs
                    .programs
                    .iter()
                    .filter(|p| ours.as_ref() != Some(&p.insns))
                    .map(|p| p.id)
                    .collect();
                actions.push(RepairAction::V2Replace {
                    cgroup: dir.clone(),
                    attach,
                    detach,
                    already_attached,
                    based_on,
                });
            }
        }
    }

    if actions.is_empty() {
        return Err(PlanError::NotRepairable(format!(
            "nothing the container is entitled to is missing from its device cgroups ({})",
            finding.message()
        )));
    }
    Ok(RepairPlan {
        check: finding.check,
        container: Some(c.reference()),
        actions,
        safety: if c.cgroups.v1("devices").is_some() {
            "Only allow lines toward what the container's runtime granted it are written, and \
             device programs at its own cgroup that deny are detached (its v1 list governs), so \
             access only grows."
        } else {
            "Our program allows the OCI rules plus every device and bit the container can open \
             now, and it is attached before the denying program is detached, so access never \
             drops below what it had."
        }
        .into(),
    })
}

/// The allow rules that make up an entitlement (deny-mode: its exceptions;
/// allow-mode: allow everything).
pub(super) fn entitlement_allows(entitled: &Emulator) -> Vec<DeviceRule> {
    match entitled.default_policy() {
        DefaultPolicy::Allow => vec![DeviceRule {
            allow: true,
            kind: DeviceType::All,
            major: None,
            minor: None,
            access: Access::ALL,
        }],
        DefaultPolicy::Deny => entitled
            .essential()
            .into_iter()
            .map(|(p, a)| p.rule(true, a))
            .collect(),
    }
}

/// `rules` followed by an allow, per device of `devices`, of every access
/// bit that `allowed` says the container has now: a program built from the
/// result allows at least the OCI rules and everything the current programs
/// allowed on those devices (rules apply in order, so a later allow wins).
pub(super) fn keep_current_access(
    rules: &[DeviceRule],
    devices: impl IntoIterator<Item = DeviceId>,
    allowed: impl Fn(&DeviceAccess) -> Result<bool, PlanError>,
) -> Result<Vec<DeviceRule>, PlanError> {
    let mut out = rules.to_vec();
    let mut seen = std::collections::BTreeSet::new();
    for (kind, major, minor) in devices {
        if !seen.insert((kind, major, minor)) {
            continue;
        }
        let mut access = Access::NONE;
        for bit in [Access::READ, Access::WRITE, Access::MKNOD] {
            let req = match kind {
                DeviceType::Char => DeviceAccess::char(major, minor, bit),
                DeviceType::Block => DeviceAccess::block(major, minor, bit),
                _ => continue,
            };
            if allowed(&req)? {
                access = access.union(bit);
            }
        }
        if !access.is_empty() {
            out.push(DeviceRule {
                allow: true,
                kind,
                major: Some(major),
                minor: Some(minor),
                access,
            });
        }
    }
    Ok(out)
}

/// `current` with every rule of `add` written as an allow.
pub(super) fn widen(current: &Emulator, add: &[DeviceRule]) -> Result<Emulator, PlanError> {
    let mut target = current.clone();
    for r in add {
        target.apply(r).map_err(PlanError::Emulator)?;
    }
    Ok(target)
}

fn plan_kill(finding: &Finding, policy: &CheckPolicy) -> Result<RepairPlan, PlanError> {
    if !policy.kill_stuck_inits {
        return Err(PlanError::NotAllowed(
            "killing stuck inits is off (remediation.killStuckInits: false); kill the process by hand \
             or allow it in the policy so the kubelet can retry"
                .into(),
        ));
    }
    let Cause::Stuck(s) = &finding.cause else {
        return Err(PlanError::NotRepairable(
            "the finding names no stuck task".into(),
        ));
    };
    // Only a runtime process that never reached the workload's execve is
    // killed: a workload waiting on a live agent is not ours to end.
    if !s.runtime_init {
        return Err(PlanError::NotRepairable(
            "the waiting task is the workload itself, not a runtime init: its notify agent must answer".into(),
        ));
    }
    Ok(RepairPlan {
        check: finding.check,
        container: finding.container.clone(),
        actions: vec![RepairAction::Kill {
            pid: s.pid,
            start_time: s.start_time,
        }],
        safety: "The task the scan found blocked before execve as a runtime init is killed only \
                 if its pid still has the same start time (a recycled pid is never hit), and the \
                 kubelet recreates the container."
            .into(),
    })
}

#[cfg(test)]
mod v2_widening_tests {
    use super::*;
    use crate::devices::v1::lines::parse_write;

    fn rules(writes: &[&str]) -> Vec<DeviceRule> {
        writes.iter().map(|w| parse_write(w).unwrap()).collect()
    }

    fn req(kind: DeviceType, major: u32, minor: u32, access: Access) -> DeviceAccess {
        match kind {
            DeviceType::Block => DeviceAccess::block(major, minor, access),
            _ => DeviceAccess::char(major, minor, access),
        }
    }

    #[test]
    fn our_program_keeps_every_host_device_the_current_programs_allow() {
        // The OCI rules: deny all, then /dev/null.
        let oci = rules(&["deny a *:* rwm", "allow c 1:3 rwm"]);
        // Now: the runtime's program also lets a hook-added GPU (195:0) be
        // read and written, and /dev/urandom fully; a second program (an
        // ancestor's) allows everything but mknod of block devices.
        let runtime = bpf::program::build_from_rules(&rules(&[
            "allow c 1:3 rwm",
            "allow c 1:9 rwm",
            "allow c 195:0 rw",
            "allow b 8:0 r",
        ]))
        .unwrap();
        let ancestor =
            bpf::program::build_from_rules(&rules(&["allow c *:* rwm", "allow b *:* rw"])).unwrap();
        let now = |r: &DeviceAccess| {
            Ok(bpf::interp::allows(&runtime, r).unwrap()
                && bpf::interp::allows(&ancestor, r).unwrap())
        };
        let host: Vec<DeviceId> = vec![
            (DeviceType::Char, 1, 3),
            (DeviceType::Char, 1, 9),
            (DeviceType::Char, 195, 0),
            (DeviceType::Char, 195, 0), // a second node of the same device
            (DeviceType::Char, 10, 200),
            (DeviceType::Block, 8, 0),
        ];
        let widened = keep_current_access(&oci, host.clone(), now).unwrap();
        assert_eq!(&widened[..oci.len()], &oci[..], "the OCI rules come first");
        assert_eq!(
            widened[oci.len()..].to_vec(),
            rules(&[
                "allow c 1:3 rwm",
                "allow c 1:9 rwm",
                "allow c 195:0 rw",
                "allow b 8:0 r",
            ]),
            "one allow per device with exactly the bits it has now"
        );
        // Per device and bit, ours allows whatever the container had, and
        // nothing it had not beyond the OCI rules.
        let ours = bpf::program::build_from_rules(&widened).unwrap();
        let oci_prog = bpf::program::build_from_rules(&oci).unwrap();
        for &(kind, major, minor) in &host {
            for bit in [Access::READ, Access::WRITE, Access::MKNOD] {
                let r = req(kind, major, minor, bit);
                let had = now(&r).unwrap();
                let oci_allows = bpf::interp::allows(&oci_prog, &r).unwrap();
                let has = bpf::interp::allows(&ours, &r).unwrap();
                assert_eq!(has, had || oci_allows, "{r:?}");
            }
        }
        // The denying program alone (nothing but /dev/null) adds nothing.
        let only_null = keep_current_access(&oci, host, |r| {
            Ok(r.kind == DeviceType::Char && r.major == 1 && r.minor == 3)
        })
        .unwrap();
        assert_eq!(only_null[oci.len()..].to_vec(), rules(&["allow c 1:3 rwm"]));
    }
}
