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

use std::path::PathBuf;

use super::{evidence, Ctx};
use crate::devices::host_devices::{DeviceId, HostDevices};
use crate::diagnose::{ids, CheckPolicy, Finding, Severity};
use crate::discovery::Container;
use crate::repair::systemd_unit::{self, UnitView};
use crate::systemd::SystemdClient;

pub(in crate::diagnose) fn check(ctx: &Ctx<'_>) -> Vec<Finding> {
    let in_units = ctx
        .containers
        .iter()
        .filter(|c| c.systemd_cgroup && c.systemd_unit().is_some())
        .count();
    if in_units == 0 {
        return Vec::new();
    }
    if !ctx.systemd.running() {
        tracing::debug!(
            containers = in_units,
            "containers in systemd units but no systemd runs here: device-rules-latent skipped"
        );
        return Vec::new();
    }
    let client = match ctx.systemd.client() {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(error = %e, "systemd unreachable: device-rules-latent skipped");
            return Vec::new();
        }
    };
    let host = match HostDevices::scan(ctx.opts.root()) {
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
        .filter_map(|c| container_finding(c, client, &host, version, ctx.policy))
        .collect()
}

/// The finding for one container, if its unit loses anything. Errors
/// (unit gone, config unreadable) skip the container with a debug log.
pub(super) fn container_finding(
    c: &Container,
    client: &dyn SystemdClient,
    host: &HostDevices,
    version: Option<u32>,
    policy: &CheckPolicy,
) -> Option<Finding> {
    let view = match systemd_unit::read_unit(c, client, host, version) {
        Ok(Some(v)) => v,
        Ok(None) => return None,
        Err(e) => {
            tracing::debug!(container = %c.id, error = %e, "systemd unit unreadable");
            return None;
        }
    };
    if view.lost.is_empty() {
        return None;
    }
    let required = systemd_unit::required_devices(policy, host);
    Some(finding(c, &view, &required))
}

fn finding(c: &Container, view: &UnitView, required: &[(PathBuf, DeviceId)]) -> Finding {
    let lost_required = view.lost_required(required);
    let severity = if lost_required.is_empty() {
        Severity::Warning
    } else {
        Severity::Error
    };
    let names: Vec<String> = view
        .lost
        .iter()
        .map(|l| {
            l.path
                .as_ref()
                .map_or_else(|| l.to_string(), |p| p.display().to_string())
        })
        .collect();
    let mut ev = evidence([
        ("unit", view.unit.clone()),
        ("device_policy", view.policy().to_string()),
        (
            "device_allow",
            view.current
                .allow
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        ),
        (
            "devices_lost",
            view.lost
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        ),
        (
            "systemd_version",
            view.version
                .map_or_else(|| "unknown".into(), |v| v.to_string()),
        ),
    ]);
    if view.lost_without_node > 0 {
        ev.insert(
            "lost_without_host_node".into(),
            view.lost_without_node.to_string(),
        );
    }
    Finding {
        check: ids::DEVICE_RULES_LATENT.into(),
        severity,
        container: Some(c.reference()),
        message: format!(
            "systemd unit {} would deny {} once systemd re-applies it (daemon-reload): its \
             DeviceAllow lacks entries the container's OCI config allows",
            view.unit,
            names.join(", ")
        ),
        evidence: ev,
        repaired: false,
        repair_note: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::systemd::{DeviceAllowEntry, DevicePolicy, UnitDevices};
    use crate::discovery::{ContainerCgroups, RuntimeSource};
    use crate::systemd::{SystemdError, UnitProperty};

    /// A systemd with one unit's device settings, read-only.
    struct Fake(Option<UnitDevices>);

    impl SystemdClient for Fake {
        fn version_string(&self) -> Result<String, SystemdError> {
            Ok("252.39-1~deb12u1".into())
        }
        fn unit_devices(&self, _unit: &str) -> Result<UnitDevices, SystemdError> {
            self.0.clone().ok_or(SystemdError::Reply {
                method: "GetUnit",
                message: "unit not loaded".into(),
            })
        }
        fn set_unit_properties(
            &self,
            _unit: &str,
            _runtime: bool,
            _properties: &[UnitProperty],
        ) -> Result<(), SystemdError> {
            panic!("a check never changes anything")
        }
        fn reload(&self) -> Result<(), SystemdError> {
            panic!("a check never reloads")
        }
    }

    fn unit(allow: &[&str]) -> Fake {
        Fake(Some(UnitDevices {
            policy: Some(DevicePolicy::Strict),
            allow: allow
                .iter()
                .map(|s| DeviceAllowEntry::parse(s).expect("entry"))
                .collect(),
        }))
    }

    /// The nspawn guest's /dev, shared with the repair's tests.
    fn host() -> HostDevices {
        crate::repair::systemd_unit::tests::host()
    }

    fn container(systemd: bool) -> Container {
        let spec: oci_spec::runtime::Spec = serde_json::from_str(
            r#"{"ociVersion":"1.0.2","linux":{"resources":{"devices":[{"allow":false,"access":"rwm"}]}}}"#,
        )
        .expect("spec");
        Container {
            id: "c1".into(),
            runtime: RuntimeSource::Runc,
            pid: 1,
            state_dir: PathBuf::from("/run/runc/c1"),
            bundle: None,
            config: Some(Box::new(spec)),
            cgroups: ContainerCgroups {
                path: Some("/system.slice/runc-c1.scope".into()),
                ..Default::default()
            },
            systemd_cgroup: systemd,
            pod: None,
        }
    }

    #[test]
    fn the_seed_unit_is_an_error_with_evidence() {
        let f = container_finding(
            &container(true),
            &unit(&["char-pts rwm", "char-* m", "block-* m"]),
            &host(),
            Some(252),
            &CheckPolicy::default(),
        )
        .expect("finding");
        assert_eq!(f.check, "device-rules-latent");
        assert_eq!(f.severity, Severity::Error);
        assert_eq!(f.container.as_ref().map(|c| c.id.as_str()), Some("c1"));
        assert!(f.message.contains("runc-c1.scope"), "{}", f.message);
        assert!(f.message.contains("/dev/null"), "{}", f.message);
        assert_eq!(f.evidence["unit"], "runc-c1.scope");
        assert_eq!(f.evidence["device_policy"], "strict");
        assert_eq!(
            f.evidence["device_allow"],
            "char-pts rwm, char-* m, block-* m"
        );
        assert!(
            f.evidence["devices_lost"].contains("c 1:3 rw (/dev/null)"),
            "{}",
            f.evidence["devices_lost"]
        );
        assert!(f.evidence["devices_lost"].contains("/dev/net/tun"));
        // ptmx (5:2) has no node on this host.
        assert_eq!(f.evidence["lost_without_host_node"], "1");
    }

    #[test]
    fn losing_only_an_optional_device_is_a_warning() {
        let f = container_finding(
            &container(true),
            &unit(&[
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
            ]),
            &host(),
            Some(252),
            &CheckPolicy::default(),
        )
        .expect("finding");
        assert_eq!(f.severity, Severity::Warning);
        assert!(f.message.contains("/dev/net/tun"), "{}", f.message);
        assert!(!f.evidence.contains_key("lost_without_host_node"));
    }

    #[test]
    fn complete_units_other_containers_and_unreadable_units_give_nothing() {
        let complete = unit(crate::repair::systemd_unit::tests::RUNC_1_1_5_SET);
        let p = CheckPolicy::default();
        assert!(container_finding(&container(true), &complete, &host(), Some(252), &p).is_none());
        // The same unit on a systemd that stats /dev/char paths (none here).
        assert!(container_finding(&container(true), &complete, &host(), Some(239), &p).is_some());
        // No systemd driver: not asked.
        let seed = unit(&["char-pts rwm", "char-* m", "block-* m"]);
        assert!(container_finding(&container(false), &seed, &host(), Some(252), &p).is_none());
        // The unit is gone (container exited mid-scan): skipped.
        assert!(container_finding(&container(true), &Fake(None), &host(), Some(252), &p).is_none());
    }
}
