//! Carrying out a plan. Every action re-reads the live state first, so
//! applying a plan twice (or after the problem went away) changes nothing.

use std::path::PathBuf;

use serde::Serialize;

use super::plan::widen;
use super::{RepairAction, RepairPlan};
use crate::devices::bpf;
use crate::diagnose::ScanOptions;
use crate::ports::SystemdSession;

/// Why applying a plan failed. Nothing was left narrower than before.
#[derive(Debug, thiserror::Error)]
pub enum RepairError {
    /// The v1 write or its read-back check failed.
    #[error("v1 devices repair of {cgroup}: {source}")]
    V1 {
        /// The cgroup.
        cgroup: PathBuf,
        /// The error.
        #[source]
        source: crate::devices::v1::ApplyError,
    },
    /// The v1 state changed so that the transition would narrow: refused.
    #[error("v1 devices repair of {0}: the transition would narrow access now; refused")]
    V1Narrowing(PathBuf),
    /// A bpf step failed.
    #[error("v2 device program repair of {cgroup}")]
    V2 {
        /// The cgroup.
        cgroup: PathBuf,
        /// What failed.
        #[source]
        source: V2Error,
    },
    /// The cgroup's device programs changed since the plan was made: ours,
    /// built from what they allowed then, is not attached.
    #[error("v2 device program repair of {cgroup}: its device programs changed since the scan; refused, the next scan plans again")]
    V2Changed {
        /// The cgroup.
        cgroup: PathBuf,
    },
    /// The kill failed.
    #[error("kill {pid}")]
    Kill {
        /// The pid.
        pid: i32,
        /// What failed.
        #[source]
        source: nix::Error,
    },
    /// A call to systemd failed.
    #[error("systemd unit {unit}")]
    SystemdCall {
        /// The unit.
        unit: String,
        /// The call's error.
        #[source]
        source: crate::systemd::SystemdError,
    },
    /// systemd could not be reached in this repair round.
    #[error("systemd unit {unit}")]
    SystemdSession {
        /// The unit.
        unit: String,
        /// Why the round has no systemd.
        #[source]
        source: crate::ports::SessionError,
    },
    /// systemd did not keep what was set, or the call and the thaw failed
    /// together (the message says which, and whether the container is
    /// still frozen).
    #[error("systemd unit {unit}: {message}")]
    Systemd {
        /// The unit.
        unit: String,
        /// What failed.
        message: String,
    },
    /// The container could not be frozen around a systemd change that needs
    /// it (cgroup v1): nothing was sent to systemd.
    #[error("systemd unit {unit}: left unchanged: {source}")]
    Freeze {
        /// The unit.
        unit: String,
        /// The freezer's error.
        #[source]
        source: crate::cgroups::FreezeError,
    },
    /// Other planning-time errors surfacing at apply time.
    #[error(transparent)]
    Plan(#[from] super::PlanError),
}

/// What failed in a v2 device-program step.
///
/// (Also see [`RepairError::V2Changed`].)
#[derive(Debug, thiserror::Error)]
pub enum V2Error {
    /// A bpf(2) step (query, load, attach, detach).
    #[error(transparent)]
    Bpf(#[from] crate::devices::bpf::kernel::BpfError),
    /// The programs in effect could not be read back.
    #[error(transparent)]
    Effective(#[from] crate::devices::bpf::EffectiveError),
    /// The program could not be built from the rules.
    #[error("build the device program")]
    Build(#[source] crate::devices::v1::EmulatorError),
}

/// What applying did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ApplyOutcome {
    /// One line per step that changed something.
    pub changed: Vec<String>,
    /// One line per step that found nothing left to do.
    pub unchanged: Vec<String>,
}

/// Whether a unit whose `ControlGroup` is `managed` holds the container in
/// `cgroup`: the same cgroup or its parent (crun runs the container in
/// `<scope>/container`), where `cgroup` may be seen from a parent cgroup
/// namespace (a longer path ending in the unit's). The root manages all and
/// is never accepted.
fn manages(managed: &str, cgroup: &str) -> bool {
    let m = managed.trim_end_matches('/');
    if !m.starts_with('/') || m.len() < 2 {
        return false;
    }
    let cg = cgroup.trim_end_matches('/');
    let parent = cg.rsplit_once('/').map_or("", |(p, _)| p);
    // `m` starts with '/', so a suffix match ends on a path boundary.
    [cg, parent].iter().any(|x| x.ends_with(m))
}

/// Apply `plan` through `opts`' ports, talking to systemd through the
/// repair round's one session.
pub fn apply(
    plan: &RepairPlan,
    opts: &ScanOptions,
    systemd: &SystemdSession,
) -> Result<ApplyOutcome, RepairError> {
    let ports = &opts.ports;
    let mut out = ApplyOutcome::default();
    for action in &plan.actions {
        match action {
            RepairAction::V1Allow { cgroup, add, .. } => {
                let err = |source| RepairError::V1 {
                    cgroup: cgroup.clone(),
                    source,
                };
                // Re-read: the plan's view may be old, and whatever the
                // list holds now is kept (the target only adds).
                let current = ports.cgroups.v1_devices(cgroup).map_err(err)?;
                let target = widen(&current, add)?;
                match ports.cgroups.widen_v1_devices(cgroup, &target) {
                    Ok(0) => out.unchanged.push(format!(
                        "{}: devices.list already complete",
                        cgroup.display()
                    )),
                    Ok(n) => out
                        .changed
                        .push(format!("{}: {n} allow write(s)", cgroup.display())),
                    Err(crate::devices::v1::ApplyError::Narrowing { .. }) => {
                        return Err(RepairError::V1Narrowing(cgroup.clone()))
                    }
                    Err(e) => return Err(err(e)),
                }
            }
            RepairAction::V2Replace {
                cgroup,
                attach,
                detach,
                based_on,
                ..
            } => {
                let err = |source: V2Error| RepairError::V2 {
                    cgroup: cgroup.clone(),
                    source,
                };
                let programs = &ports.programs;
                let own = programs.attached(cgroup).map_err(|e| err(e.into()))?;
                // Hybrid (`attach` is None): the v1 list governs, so only
                // the denying programs go and nothing of ours is attached.
                if let Some(rules) = attach {
                    let ours = bpf::program::build_from_rules(rules)
                        .map_err(|e| err(V2Error::Build(e)))?;
                    let mut have_ours = false;
                    for id in &own {
                        if programs
                            .instructions(*id)
                            .is_ok_and(|i| i.as_deref() == Some(ours.as_slice()))
                        {
                            have_ours = true;
                        }
                    }
                    // Ours keeps what the programs in effect at planning
                    // allowed; if others came or went since (a runtime
                    // update widened the container), it could hold the
                    // container below its new access: refuse, the next
                    // scan plans from what is there then.
                    let now = programs.effective(cgroup).map_err(|e| err(e.into()))?;
                    let mut now_ids: Vec<u32> = now
                        .programs
                        .iter()
                        .filter(|p| p.insns != ours)
                        .map(|p| p.id)
                        .collect();
                    let mut then_ids = based_on.clone();
                    now_ids.sort_unstable();
                    then_ids.sort_unstable();
                    // On a second apply the denying programs this plan
                    // detaches are gone, which is fine once ours holds the
                    // container; gone without ours, something else changed.
                    if have_ours {
                        then_ids.retain(|id| now_ids.contains(id) || !detach.contains(id));
                    }
                    if now_ids != then_ids {
                        return Err(RepairError::V2Changed {
                            cgroup: cgroup.clone(),
                        });
                    }
                    // Ours first: while both are attached the container has
                    // the intersection, which is never less than before ∩
                    // after; ours allows all the container had, so after the
                    // detach it has no less than before.
                    if !have_ours {
                        programs.attach(cgroup, &ours).map_err(|e| err(e.into()))?;
                        out.changed.push(format!(
                            "{}: attached the container's device program",
                            cgroup.display()
                        ));
                    }
                }
                for id in detach {
                    if programs.detach(cgroup, *id).map_err(|e| err(e.into()))? {
                        out.changed.push(format!(
                            "{}: detached denying program {id}",
                            cgroup.display()
                        ));
                    } else {
                        out.unchanged
                            .push(format!("{}: program {id} already gone", cgroup.display()));
                    }
                }
            }
            RepairAction::SystemdDeviceAllow {
                unit,
                entries,
                freeze,
                container_cgroup,
                ..
            } => {
                // The round's one connection (made on first use); after a
                // timeout in this round, no further container is frozen for
                // a systemd that does not answer.
                let client = systemd
                    .client()
                    .map_err(|source| RepairError::SystemdSession {
                        unit: unit.clone(),
                        source,
                    })?;
                // The unit's identity, before anything is written to it.
                let managed =
                    client
                        .unit_control_group(unit)
                        .map_err(|source| RepairError::SystemdCall {
                            unit: unit.clone(),
                            source,
                        })?;
                let its_own = manages(&managed, container_cgroup);
                if !its_own {
                    return Err(RepairError::Systemd {
                        unit: unit.clone(),
                        message: format!(
                            "it manages {managed}, not the container's cgroup \
                             {container_cgroup}: refused"
                        ),
                    });
                }
                // Freezes leave markers where the agent looks at start.
                let markers = opts.state_dir.as_ref().map(|d| d.join("frozen"));
                let applied = super::systemd_unit::apply_with(
                    client,
                    ports.cgroups.as_ref(),
                    unit,
                    entries,
                    freeze.as_ref(),
                    markers.as_deref(),
                );
                if let Err(RepairError::SystemdCall { source, .. }) = &applied {
                    systemd.note_failure(source);
                }
                match applied? {
                    super::systemd_unit::Applied::Changed(s) => out.changed.push(s),
                    super::systemd_unit::Applied::Unchanged(s) => out.unchanged.push(s),
                }
            }
            RepairAction::Kill { pid, start_time } => match ports.procfs.start_time(*pid) {
                Ok(t) if t == *start_time => {
                    ports
                        .signals
                        .kill(*pid)
                        .map_err(|source| RepairError::Kill { pid: *pid, source })?;
                    out.changed.push(format!("killed pid {pid}"));
                }
                _ => out.unchanged.push(format!("pid {pid} already exited")),
            },
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::manages;

    #[test]
    fn a_unit_manages_its_container_or_the_container_s_parent_only() {
        let u = "/system.slice/runc-c1.scope";
        assert!(manages(u, "/system.slice/runc-c1.scope"));
        assert!(manages(
            "/system.slice/crun-c1.scope",
            "/system.slice/crun-c1.scope/container"
        ));
        // The same cgroup seen from a parent cgroup namespace.
        assert!(manages(
            u,
            "/machine.slice/m.scope/payload/system.slice/runc-c1.scope"
        ));
        assert!(!manages(u, "/system.slice/runc-c10.scope"));
        assert!(!manages(u, "/system.slice/runc-c1.scope/a/b"));
        assert!(!manages(
            "/system.slice/runc-other.scope",
            "/system.slice/runc-c1.scope"
        ));
        assert!(!manages("/", "/system.slice/runc-c1.scope"));
        assert!(!manages("", "/system.slice/runc-c1.scope"));
    }
}
