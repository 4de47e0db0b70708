//! `device-access-broken`: a container cannot open a required device.
//!
//! Decided from the effective access of its v1 `devices.list` (the
//! emulator) and its v2 device programs (evaluated in userspace), then
//! confirmed by a canary process placed in its device cgroups. Either source
//! refusing is a finding; the cause says which.

use std::path::{Path, PathBuf};

use super::Ctx;
use crate::checks::CheckId;
use crate::devices::bpf::{DeviceAccess, DeviceVerdict};
use crate::devices::canary::CanaryResult;
use crate::devices::{Access, DeviceType};
use crate::diagnose::cause::{Cause, DeviceAccessCause, Layer, RefusedDevice};
use crate::diagnose::{Finding, Severity};
use crate::discovery::Container;

/// The read-write request for a device.
pub(crate) fn rw_request(device: crate::devices::host_devices::DeviceId) -> DeviceAccess {
    let (kind, major, minor) = device;
    let rw = Access::READ.union(Access::WRITE);
    match kind {
        DeviceType::Block => DeviceAccess::block(major, minor, rw),
        _ => DeviceAccess::char(major, minor, rw),
    }
}

pub(in crate::diagnose) fn check(ctx: &Ctx<'_>, c: &Container) -> Vec<Finding> {
    let snap = ctx.snapshot;
    let devices = snap.required_devices();
    if devices.is_empty() {
        return Vec::new();
    }
    let v1_dir = c.cgroups.v1("devices").cloned();
    // A source that cannot be read leaves the verdict to the canary; with
    // no canary either, the check is unknown for this container, not clean.
    let mut unread: Vec<String> = Vec::new();
    let v1 = v1_dir.as_ref().and_then(|d| match snap.read_v1_devices(d) {
        Ok(e) => Some(e),
        Err(e) => {
            tracing::debug!(container = %c.id, error = %e, "v1 devices list unreadable");
            unread.push(crate::error::chain(&e));
            None
        }
    });
    let v2_dir = c.cgroups.v2.clone();
    let v2 = v2_dir
        .as_ref()
        .and_then(|d| match snap.read_effective_programs(d) {
            Ok(p) if p.programs.is_empty() => None,
            Ok(p) => Some(p),
            Err(e) => {
                tracing::debug!(container = %c.id, error = %e, "v2 device programs unreadable");
                unread.push(crate::error::chain(&e));
                None
            }
        });

    let mut refused: Vec<RefusedDevice> = Vec::new();
    for d in devices {
        let req = rw_request(d.device);
        let verdict =
            DeviceVerdict::evaluate(v1.as_ref(), v2.as_deref(), &req).unwrap_or_else(|_| {
                DeviceVerdict::new(
                    v1.as_ref()
                        .map(|e| e.allows(req.kind, req.major, req.minor, req.access)),
                    None,
                )
            });
        if !verdict.allowed() {
            let by = verdict
                .refused_by()
                .into_iter()
                .map(|l| if l == "v1" { Layer::V1 } else { Layer::V2 })
                .collect();
            refused.push(RefusedDevice {
                path: d.path.clone(),
                device: d.device,
                by,
                canary: false,
            });
        }
    }

    // The canary is the ground truth: it catches what the model cannot see
    // (an allow-mode v1 list hides its denies; programs we failed to read).
    let mut dirs: Vec<&Path> = Vec::new();
    dirs.extend(v1_dir.as_deref());
    dirs.extend(v2_dir.as_deref());
    let canary = &snap.ports().canary;
    let mut canary_error = None;
    let mut canary_verdict = false;
    if ctx.policy.canary && canary.available() && !dirs.is_empty() {
        let dev_refs: Vec<&Path> = devices.iter().map(|d| d.path.as_path()).collect();
        match canary.probe(&dirs, &dev_refs) {
            Ok(results) => {
                canary_verdict = true;
                for (d, r) in devices.iter().zip(results) {
                    if r != CanaryResult::Denied {
                        continue;
                    }
                    match refused.iter_mut().find(|x| x.path == d.path) {
                        Some(x) => x.canary = true,
                        None => refused.push(RefusedDevice {
                            path: d.path.clone(),
                            device: d.device,
                            by: Vec::new(),
                            canary: true,
                        }),
                    }
                }
            }
            Err(e) => canary_error = Some(e.to_string()),
        }
    }
    if !unread.is_empty() && !canary_verdict {
        ctx.unknown(
            CheckId::DeviceAccessBroken,
            Some(&c.id),
            format!(
                "device access of container {} (device-access-broken not fully evaluated)",
                c.id
            ),
            match &canary_error {
                Some(e) => format!("{}; canary: {e}", unread.join("; ")),
                None => unread.join("; "),
            },
        );
    }
    if refused.is_empty() {
        return Vec::new();
    }
    // What was read is kept for the plans of this finding only.
    if let (Some(d), Some(e)) = (&v1_dir, v1) {
        snap.keep_v1_devices(d, e);
    }
    if let (Some(d), Some(p)) = (&v2_dir, v2) {
        snap.keep_effective_programs(d, p);
    }
    // The policy's order, whichever source saw the refusal first.
    let order = |p: &PathBuf| devices.iter().position(|d| &d.path == p);
    refused.sort_by_key(|r| order(&r.path));
    vec![Finding::new(
        CheckId::DeviceAccessBroken,
        Severity::Error,
        Some(c.reference()),
        Cause::DeviceAccess(DeviceAccessCause {
            refused,
            canary_error,
            v1_cgroup: v1_dir,
            v2_cgroup: v2_dir,
        }),
    )]
}
