//! Node-level hazards: facts about the host and its runtimes that make a
//! known failure possible before any container shows it.

use super::{evidence, Ctx};
use crate::cgroups::CgroupMode;
use crate::diagnose::{ids, Finding, Severity};
use crate::host::RuntimeKind;
use crate::systemd::history::{version_hazards, VersionFacts};

pub(in crate::diagnose) fn check(ctx: &Ctx<'_>) -> Vec<Finding> {
    let h = ctx.host;
    let mut out = Vec::new();
    let v1_devices = h
        .cgroups
        .as_ref()
        .is_some_and(|c| c.mode != CgroupMode::Unified && c.v1_mount("devices").is_some());

    if v1_devices {
        // Measured here (DESIGN §2): crun writes deny-all and every rule on
        // each update that carries devices, whatever the cgroup driver.
        let crun_containers = ctx
            .containers
            .iter()
            .filter(|c| c.runtime.oci_runtime() == RuntimeKind::Crun)
            .count();
        if crun_containers > 0 {
            let crun = h.runtime(RuntimeKind::Crun);
            out.push(host_finding(
                ids::DEVICE_UPDATE_JITTER,
                Severity::Warning,
                format!("{crun_containers} crun container(s): crun replays device rules as deny-all then allow on every update on cgroup v1: \
                 workloads opening devices at high frequency can get EPERM during updates"),
                [
                    ("runtime", format!("crun {}", crun.and_then(|r| r.version.as_deref()).unwrap_or("?"))),
                    ("crun_containers", crun_containers.to_string()),
                ],
            ));
        }
        // runc's own emulator is minimal, but with the systemd driver systemd
        // replays the list on every update.
        let systemd_runc = ctx
            .containers
            .iter()
            .filter(|c| c.systemd_cgroup && c.runtime.oci_runtime() == RuntimeKind::Runc)
            .count();
        if systemd_runc > 0 {
            let runc = h.runtime(RuntimeKind::Runc);
            out.push(host_finding(
                ids::DEVICE_UPDATE_JITTER,
                Severity::Warning,
                format!(
                    "{systemd_runc} runc container(s) use the systemd cgroup driver on cgroup v1: systemd \
                     replays DeviceAllow as deny-all then allow on every update"
                ),
                [
                    ("runtime", format!("runc {}", runc.and_then(|r| r.version.as_deref()).unwrap_or("?"))),
                    ("systemd_driver_containers", systemd_runc.to_string()),
                ],
            ));
        }
    }
    // Hazards that follow from runc / systemd versions and /dev/char alone
    // (seeds 000 and 003).
    let facts = VersionFacts {
        runc: h.runtime(RuntimeKind::Runc).and_then(|r| r.semver()),
        systemd: h.systemd.version.filter(|_| h.systemd.running),
        dev_char: h.dev_char,
        devices_v1: v1_devices,
    };
    for hz in version_hazards(&facts) {
        out.push(host_finding(
            hz.check(),
            Severity::Warning,
            hz.message().to_string(),
            [
                (
                    "hazard",
                    serde_json::to_value(hz)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                ),
                ("dev_char", h.dev_char.to_string()),
            ],
        ));
    }
    if h.attach_race_exposed == Some(true) {
        out.push(host_finding(
            ids::CGROUP_ATTACH_RACE,
            Severity::Warning,
            "kernel in [4.8, 6.1): joining a cgroup fails with EINVAL while a thread is TASK_NEW; \
             exec probes can fail spuriously with runtimes that do not retry"
                .into(),
            [("kernel", h.kernel.clone().unwrap_or_default())],
        ));
    }
    out
}

fn host_finding<const N: usize>(
    check: &str,
    severity: Severity,
    message: String,
    ev: [(&str, String); N],
) -> Finding {
    Finding {
        check: check.into(),
        severity,
        container: None,
        message,
        evidence: evidence(ev),
        repaired: false,
        repair_note: None,
    }
}
