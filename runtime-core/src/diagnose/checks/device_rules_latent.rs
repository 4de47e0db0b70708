//! `device-rules-latent`: a container's systemd unit has a `DeviceAllow=`
//! that would deny a device its OCI config allows, once systemd re-applies
//! the unit (`daemon-reload`, a unit property change) — seed 003's landmine.
//!
//! The runtime's own device program (or v1 list) keeps the container working
//! until then, so nothing the container does shows it; only the unit does.
//! systemd is asked through [`SystemdClient`], once per scan, and only when
//! it runs on the host and some container lives in a unit; an unreachable
//! systemd skips the check (debug log) rather than failing the scan, and
//! every call has a deadline.

use super::Ctx;
use crate::checks::CheckId;
use crate::devices::expected::expected_rules;
use crate::devices::host_devices::HostDevices;
use crate::devices::systemd::UnitDevices;
use crate::diagnose::cause::{Cause, UnitCause};
use crate::diagnose::SnapshotError;
use crate::diagnose::{CheckPolicy, Finding, Severity};
use crate::discovery::Container;
use crate::systemd::unit_view::required_devices;
use crate::systemd::UnitView;

pub(in crate::diagnose) fn check(ctx: &Ctx<'_>) -> Vec<Finding> {
    let in_units = ctx
        .containers
        .iter()
        .filter(|c| c.systemd_cgroup && c.systemd_unit().is_some())
        .count();
    if in_units == 0 {
        return Vec::new();
    }
    let session = ctx.snapshot.systemd();
    if !session.running() {
        tracing::debug!(
            containers = in_units,
            "containers in systemd units but no systemd runs here: device-rules-latent skipped"
        );
        return Vec::new();
    }
    if let Err(e) = session.client() {
        // Not clean: unknown. Said in the report, and a repair verified by
        // this scan is not marked repaired.
        tracing::warn!(error = %crate::error::chain(&e), "systemd unreachable: device-rules-latent not evaluated");
        ctx.unknown(
            CheckId::DeviceRulesLatent,
            None,
            "systemd units (device-rules-latent not evaluated)".into(),
            crate::error::chain(&e),
        );
        return Vec::new();
    }
    let host = match ctx.snapshot.host_devices() {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(error = %crate::error::chain(&e), "host device table unreadable: device-rules-latent not evaluated");
            ctx.unknown(
                CheckId::DeviceRulesLatent,
                None,
                "host device table (device-rules-latent not evaluated)".into(),
                crate::error::chain(&e),
            );
            return Vec::new();
        }
    };
    // The running manager's version decides how it reads entries (host
    // facts asked it first, over this same connection; the installed
    // binary's is the fallback).
    let version = ctx.host.systemd.version;
    let units = |unit: &str| ctx.snapshot.unit_devices(unit);
    let mut out = Vec::new();
    for c in ctx.containers {
        match container_finding(c, &units, &host, version, ctx.policy) {
            Ok(Some(f)) => out.push(f),
            Ok(None) => {}
            Err(e) => {
                ctx.not_evaluated(CheckId::DeviceRulesLatent, Some(&c.id));
                // After a timeout the scan says once that systemd was
                // skipped; otherwise each container's reason is named.
                if session.tripped().is_none() {
                    ctx.unreadable(crate::host::Unreadable {
                        what: format!(
                            "systemd unit of container {} (device-rules-latent not evaluated)",
                            c.id
                        ),
                        path: None,
                        error: crate::error::chain(&e),
                    });
                }
            }
        }
    }
    out
}

/// Why a container's unit could not be compared with its rules: the check
/// is unknown for it, not clean.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UnitUnknown {
    /// The container's OCI config was not readable at discovery.
    #[error("the container's OCI config is unreadable")]
    NoConfig,
    /// Its OCI device rules are not valid rules.
    #[error("the container's OCI device rules")]
    Rules(#[source] crate::devices::oci::OciRuleError),
    /// systemd did not give the unit's settings (it exited mid-scan, or
    /// systemd did not answer).
    #[error(transparent)]
    Unit(SnapshotError),
    /// The unit's settings could not be compared with the rules.
    #[error(transparent)]
    View(crate::systemd::UnitViewError),
}

/// `c`'s unit compared with its rules, its settings read through `units`
/// (the scan's snapshot). `Ok(None)` when the container is not in a unit;
/// an error when its unit or config cannot be read now: the check could not
/// be made for it.
pub(crate) fn unit_view(
    c: &Container,
    units: &dyn Fn(&str) -> Result<UnitDevices, SnapshotError>,
    host: &HostDevices,
    version: Option<u32>,
) -> Result<Option<UnitView>, UnitUnknown> {
    if !c.systemd_cgroup {
        return Ok(None);
    }
    let Some(unit) = c.systemd_unit() else {
        return Ok(None);
    };
    // The last component of the init's cgroup is the container's scope
    // only if it names the container: a systemd inside the container puts
    // its init under `<scope>/init.scope`, which is not ours to judge.
    if !unit.contains(c.id.as_str()) {
        return Ok(None);
    }
    let spec = c.config.as_deref().ok_or(UnitUnknown::NoConfig)?;
    let rules = expected_rules(spec).map_err(UnitUnknown::Rules)?;
    let current = units(&unit).map_err(UnitUnknown::Unit)?;
    UnitView::new(unit, current, rules, host, version)
        .map(Some)
        .map_err(UnitUnknown::View)
}

/// The finding for one container, if its unit loses anything; an error
/// when it could not be evaluated.
pub(super) fn container_finding(
    c: &Container,
    units: &dyn Fn(&str) -> Result<UnitDevices, SnapshotError>,
    host: &HostDevices,
    version: Option<u32>,
    policy: &CheckPolicy,
) -> Result<Option<Finding>, UnitUnknown> {
    let Some(view) = unit_view(c, units, host, version)? else {
        return Ok(None);
    };
    if view.lost.is_empty() {
        return Ok(None);
    }
    let required = required_devices(&policy.required_devices, host);
    let loses_required = !view.lost_required(&required).is_empty();
    Ok(Some(Finding::new(
        CheckId::DeviceRulesLatent,
        if loses_required {
            Severity::Error
        } else {
            Severity::Warning
        },
        Some(c.reference()),
        Cause::UnitDevices(UnitCause {
            view,
            loses_required,
        }),
    )))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::ports::SystemdSession;
    use crate::testing::fakes::{FakeSystemd, FakeSystemdPort};
    use crate::testing::fixtures::{
        nspawn_host_devices as host, runc_container, strict_unit, OLD_SET, RUNC_1_1_5_SET,
    };

    /// A reader of units through a session of a fake systemd.
    fn reader(s: &SystemdSession) -> impl Fn(&str) -> Result<UnitDevices, SnapshotError> + '_ {
        |u: &str| {
            s.call(|c| c.unit_devices(u)).map_err(|e| SnapshotError {
                what: format!("systemd unit {u}"),
                source: Arc::new(e),
            })
        }
    }

    fn session(unit: Option<&[&str]>) -> (SystemdSession, Arc<FakeSystemd>) {
        let sd = Arc::new(FakeSystemd::default());
        if let Some(allow) = unit {
            sd.set_unit("runc-c1.scope", strict_unit(allow));
        }
        (
            SystemdSession::new(Arc::new(FakeSystemdPort(sd.clone()))),
            sd,
        )
    }

    fn container(systemd: bool) -> Container {
        runc_container("c1", systemd, false, None)
    }

    #[test]
    fn the_seed_unit_is_an_error_with_evidence() {
        let (s, sd) = session(Some(OLD_SET));
        let f = container_finding(
            &container(true),
            &reader(&s),
            &host(),
            Some(252),
            &CheckPolicy::default(),
        )
        .expect("evaluated")
        .expect("finding");
        assert_eq!(f.check, CheckId::DeviceRulesLatent);
        assert_eq!(f.severity, Severity::Error);
        assert_eq!(f.container.as_ref().map(|c| c.id.as_str()), Some("c1"));
        let (message, ev) = (f.message(), f.evidence());
        assert!(message.contains("runc-c1.scope"), "{message}");
        assert!(message.contains("/dev/null"), "{message}");
        assert_eq!(ev["unit"], "runc-c1.scope");
        assert_eq!(ev["device_policy"], "strict");
        assert_eq!(ev["device_allow"], "char-pts rwm, char-* m, block-* m");
        assert!(
            ev["devices_lost"].contains("c 1:3 rw (/dev/null)"),
            "{}",
            ev["devices_lost"]
        );
        assert!(ev["devices_lost"].contains("/dev/net/tun"));
        // ptmx (5:2) has no node on this host.
        assert_eq!(ev["lost_without_host_node"], "1");
        assert!(sd.log_is_read_only(), "a check never changes anything");
    }

    #[test]
    fn losing_only_an_optional_device_is_a_warning() {
        let (s, _) = session(Some(&[
            "char-pts rwm",
            "/dev/null rwm",
            "/dev/zero rwm",
            "/dev/full rwm",
            "/dev/random rwm",
            "/dev/urandom rwm",
            "/dev/tty rwm",
            "/dev/char/5:2 rwm",
            "char-* m",
            "block-* m",
        ]));
        let f = container_finding(
            &container(true),
            &reader(&s),
            &host(),
            Some(252),
            &CheckPolicy::default(),
        )
        .expect("evaluated")
        .expect("finding");
        assert_eq!(f.severity, Severity::Warning);
        assert!(f.message().contains("/dev/net/tun"), "{}", f.message());
        assert!(!f.evidence().contains_key("lost_without_host_node"));
    }

    #[test]
    fn complete_units_other_containers_and_unreadable_units_give_nothing() {
        let p = CheckPolicy::default();
        let (complete, _) = session(Some(RUNC_1_1_5_SET));
        assert!(matches!(
            container_finding(&container(true), &reader(&complete), &host(), Some(252), &p),
            Ok(None)
        ));
        // The same unit on a systemd that stats /dev/char paths (none here).
        assert!(matches!(
            container_finding(&container(true), &reader(&complete), &host(), Some(239), &p),
            Ok(Some(_))
        ));
        // No systemd driver: not asked.
        let (seed, sd) = session(Some(OLD_SET));
        assert!(matches!(
            container_finding(&container(false), &reader(&seed), &host(), Some(252), &p),
            Ok(None)
        ));
        assert_eq!(*sd.connections.lock().unwrap(), 0, "systemd not even asked");
        // The unit is gone (container exited mid-scan): not evaluated, not
        // clean.
        let (gone, _) = session(None);
        assert!(matches!(
            container_finding(&container(true), &reader(&gone), &host(), Some(252), &p),
            Err(UnitUnknown::Unit(_))
        ));
    }

    #[test]
    fn one_connection_per_scan_and_a_timeout_skips_the_rest() {
        let (s, sd) = session(Some(OLD_SET));
        for _ in 0..3 {
            assert!(matches!(
                container_finding(
                    &container(true),
                    &reader(&s),
                    &host(),
                    Some(252),
                    &CheckPolicy::default()
                ),
                Ok(Some(_))
            ));
        }
        assert_eq!(*sd.connections.lock().unwrap(), 1);
        *sd.hang.lock().unwrap() = true;
        assert!(
            matches!(
                container_finding(
                    &container(true),
                    &reader(&s),
                    &host(),
                    Some(252),
                    &CheckPolicy::default()
                ),
                Err(UnitUnknown::Unit(_))
            ),
            "a timeout is no verdict"
        );
        assert!(s.tripped().is_some(), "the breaker trips on a timeout");
        *sd.hang.lock().unwrap() = false;
        assert!(
            container_finding(
                &container(true),
                &reader(&s),
                &host(),
                Some(252),
                &CheckPolicy::default()
            )
            .is_err(),
            "skipped for the rest of the session"
        );
    }
}
