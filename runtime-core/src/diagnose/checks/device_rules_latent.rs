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
use crate::diagnose::cause::{Cause, UnitCause};
use crate::diagnose::{CheckPolicy, Finding, Severity};
use crate::discovery::Container;
use crate::ports::SystemdSession;
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
        tracing::debug!(error = %e, "systemd unreachable: device-rules-latent skipped");
        return Vec::new();
    }
    let host = match ctx.snapshot.host_devices() {
        Ok(h) => h,
        Err(e) => {
            tracing::debug!(error = %e, "host device table unreadable: device-rules-latent skipped");
            return Vec::new();
        }
    };
    // The running manager's version decides how it reads entries (host
    // facts asked it first, over this same connection; the installed
    // binary's is the fallback).
    let version = ctx.host.systemd.version;
    ctx.containers
        .iter()
        .filter_map(|c| container_finding(c, session, &host, version, ctx.policy))
        .collect()
}

/// `c`'s unit compared with its rules, through the scan's systemd session.
/// `None` when the container is not in a unit, or its unit or config cannot
/// be read now (a container exiting mid-scan; debug log).
pub(crate) fn unit_view(
    c: &Container,
    session: &SystemdSession,
    host: &HostDevices,
    version: Option<u32>,
) -> Option<UnitView> {
    if !c.systemd_cgroup {
        return None;
    }
    let unit = c.systemd_unit()?;
    let spec = c.config.as_deref()?;
    let rules = match expected_rules(spec) {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(container = %c.id, error = %e, "OCI device rules unreadable");
            return None;
        }
    };
    let current = match session.call(|s| s.unit_devices(&unit)) {
        Ok(d) => d,
        Err(e) => {
            tracing::debug!(container = %c.id, unit, error = %e, "systemd unit unreadable");
            return None;
        }
    };
    match UnitView::new(unit, current, rules, host, version) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::debug!(container = %c.id, error = %e, "systemd unit not comparable");
            None
        }
    }
}

/// The finding for one container, if its unit loses anything.
pub(super) fn container_finding(
    c: &Container,
    session: &SystemdSession,
    host: &HostDevices,
    version: Option<u32>,
    policy: &CheckPolicy,
) -> Option<Finding> {
    let view = unit_view(c, session, host, version)?;
    if view.lost.is_empty() {
        return None;
    }
    let required = required_devices(&policy.required_devices, host);
    let loses_required = !view.lost_required(&required).is_empty();
    Some(Finding::new(
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
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::testing::fakes::{FakeSystemd, FakeSystemdPort};
    use crate::testing::fixtures::{
        nspawn_host_devices as host, runc_container, strict_unit, OLD_SET, RUNC_1_1_5_SET,
    };

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
            &s,
            &host(),
            Some(252),
            &CheckPolicy::default(),
        )
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
            &s,
            &host(),
            Some(252),
            &CheckPolicy::default(),
        )
        .expect("finding");
        assert_eq!(f.severity, Severity::Warning);
        assert!(f.message().contains("/dev/net/tun"), "{}", f.message());
        assert!(!f.evidence().contains_key("lost_without_host_node"));
    }

    #[test]
    fn complete_units_other_containers_and_unreadable_units_give_nothing() {
        let p = CheckPolicy::default();
        let (complete, _) = session(Some(RUNC_1_1_5_SET));
        assert!(container_finding(&container(true), &complete, &host(), Some(252), &p).is_none());
        // The same unit on a systemd that stats /dev/char paths (none here).
        assert!(container_finding(&container(true), &complete, &host(), Some(239), &p).is_some());
        // No systemd driver: not asked.
        let (seed, sd) = session(Some(OLD_SET));
        assert!(container_finding(&container(false), &seed, &host(), Some(252), &p).is_none());
        assert_eq!(*sd.connections.lock().unwrap(), 0, "systemd not even asked");
        // The unit is gone (container exited mid-scan): skipped.
        let (gone, _) = session(None);
        assert!(container_finding(&container(true), &gone, &host(), Some(252), &p).is_none());
    }

    #[test]
    fn one_connection_per_scan_and_a_timeout_skips_the_rest() {
        let (s, sd) = session(Some(OLD_SET));
        for _ in 0..3 {
            assert!(container_finding(
                &container(true),
                &s,
                &host(),
                Some(252),
                &CheckPolicy::default()
            )
            .is_some());
        }
        assert_eq!(*sd.connections.lock().unwrap(), 1);
        *sd.hang.lock().unwrap() = true;
        assert!(container_finding(
            &container(true),
            &s,
            &host(),
            Some(252),
            &CheckPolicy::default()
        )
        .is_none());
        assert!(s.tripped().is_some(), "the breaker trips on a timeout");
        *sd.hang.lock().unwrap() = false;
        assert!(
            container_finding(
                &container(true),
                &s,
                &host(),
                Some(252),
                &CheckPolicy::default()
            )
            .is_none(),
            "skipped for the rest of the session"
        );
    }
}
