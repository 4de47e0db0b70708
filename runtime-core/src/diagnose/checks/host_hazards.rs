//! Node-level hazards: facts about the host and its runtimes that make a
//! known failure possible before any container shows it.

use super::Ctx;
use crate::cgroups::CgroupMode;
use crate::checks::CheckId;
use crate::diagnose::cause::{Cause, JitterCause, JitterRuntime};
use crate::diagnose::{Finding, Severity};
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
            out.push(jitter(
                ctx,
                JitterRuntime::Crun,
                RuntimeKind::Crun,
                crun_containers,
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
            out.push(jitter(
                ctx,
                JitterRuntime::SystemdRunc,
                RuntimeKind::Runc,
                systemd_runc,
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
    for hazard in version_hazards(&facts) {
        out.push(Finding::new(
            hazard.check(),
            Severity::Warning,
            None,
            Cause::VersionHazard {
                hazard,
                dev_char: h.dev_char,
            },
        ));
    }
    if h.attach_race_exposed == Some(true) {
        out.push(Finding::new(
            CheckId::CgroupAttachRace,
            Severity::Warning,
            None,
            Cause::AttachRace {
                kernel: h.kernel.clone().unwrap_or_default(),
            },
        ));
    }
    out
}

fn jitter(ctx: &Ctx<'_>, runtime: JitterRuntime, kind: RuntimeKind, containers: usize) -> Finding {
    Finding::new(
        CheckId::DeviceUpdateJitter,
        Severity::Warning,
        None,
        Cause::Jitter(JitterCause {
            runtime,
            version: ctx.host.runtime(kind).and_then(|r| r.version.clone()),
            containers,
        }),
    )
}
