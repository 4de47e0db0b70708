//! `device-access-broken`: a container cannot open a required device.
//!
//! Decided from the effective access of its v1 `devices.list` (the
//! emulator) and its v2 device programs (evaluated in userspace), then
//! confirmed by a canary process placed in its device cgroups. Either source
//! refusing is a finding; the evidence says which.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::{evidence, Ctx};
use crate::devices::bpf::{DeviceAccess, DeviceVerdict};
use crate::devices::canary::CanaryResult;
use crate::devices::{Access, DeviceType};
use crate::diagnose::{ids, Finding, Severity};
use crate::discovery::Container;

/// A required device as the host has it.
#[derive(Debug, Clone)]
pub(crate) struct HostDevice {
    pub path: PathBuf,
    pub kind: DeviceType,
    pub major: u32,
    pub minor: u32,
}

/// Stat the required device nodes on the host; nodes the host lacks are
/// not the container's problem and are left out.
pub(crate) fn host_devices(ctx: &Ctx<'_>) -> Vec<HostDevice> {
    ctx.policy
        .required_devices
        .iter()
        .filter_map(|p| {
            let md = std::fs::metadata(ctx.opts.root().join(p)).ok()?;
            let ft = md.file_type();
            let kind = if ft.is_char_device() {
                DeviceType::Char
            } else if ft.is_block_device() {
                DeviceType::Block
            } else {
                return None;
            };
            let rdev = md.rdev();
            Some(HostDevice {
                path: p.clone(),
                kind,
                major: nix::sys::stat::major(rdev) as u32,
                minor: nix::sys::stat::minor(rdev) as u32,
            })
        })
        .collect()
}

/// `devices` is [`host_devices`], stat'ed once per scan rather than once
/// per container.
pub(in crate::diagnose) fn check(
    ctx: &Ctx<'_>,
    c: &Container,
    devices: &[HostDevice],
) -> Vec<Finding> {
    if devices.is_empty() {
        return Vec::new();
    }
    let root = ctx.opts.root();
    let v1_dir = c.cgroups.v1("devices").cloned();
    let v1 = match &v1_dir {
        Some(d) => match ctx.opts.ports.cgroups.v1_devices(d) {
            Ok(e) => Some(e),
            Err(e) => {
                tracing::debug!(container = %c.id, error = %e, "v1 devices list unreadable");
                None
            }
        },
        None => None,
    };
    let v2_dir = c.cgroups.v2.clone();
    let v2 = match &v2_dir {
        Some(d) => match ctx.opts.ports.programs.effective(d) {
            Ok(p) if p.programs.is_empty() => None,
            Ok(p) => Some(p),
            Err(e) => {
                tracing::debug!(container = %c.id, error = %e, "v2 device programs unreadable");
                None
            }
        },
        None => None,
    };

    let mut refused = Vec::new();
    let mut ev = evidence([]);
    for d in devices {
        let req = match d.kind {
            DeviceType::Block => {
                DeviceAccess::block(d.major, d.minor, Access::READ.union(Access::WRITE))
            }
            _ => DeviceAccess::char(d.major, d.minor, Access::READ.union(Access::WRITE)),
        };
        let verdict =
            DeviceVerdict::evaluate(v1.as_ref(), v2.as_ref(), &req).unwrap_or_else(|_| {
                DeviceVerdict::new(
                    v1.as_ref()
                        .map(|e| e.allows(req.kind, req.major, req.minor, req.access)),
                    None,
                )
            });
        if !verdict.allowed() {
            ev.insert(
                format!("refused:{}", d.path.display()),
                format!(
                    "{}:{} rw refused by {}",
                    d.major,
                    d.minor,
                    verdict.refused_by().join("+")
                ),
            );
            refused.push(d.path.clone());
        }
    }

    // The canary is the ground truth: it catches what the model cannot see
    // (an allow-mode v1 list hides its denies; programs we failed to read).
    let mut dirs: Vec<PathBuf> = Vec::new();
    dirs.extend(v1_dir.clone());
    dirs.extend(v2_dir.clone());
    let canary = &ctx.opts.ports.canary;
    if ctx.policy.canary && canary.available() && !dirs.is_empty() {
        let dir_refs: Vec<&Path> = dirs.iter().map(PathBuf::as_path).collect();
        let dev_refs: Vec<&Path> = devices.iter().map(|d| d.path.as_path()).collect();
        match canary.probe(&dir_refs, &dev_refs) {
            Ok(results) => {
                for (d, r) in devices.iter().zip(results) {
                    if r == CanaryResult::Denied {
                        ev.insert(format!("canary:{}", d.path.display()), "EPERM".into());
                        if !refused.contains(&d.path) {
                            refused.push(d.path.clone());
                        }
                    }
                }
            }
            Err(e) => {
                ev.insert("canary".into(), format!("not run: {e}"));
            }
        }
    }
    if refused.is_empty() {
        return Vec::new();
    }
    if let Some(d) = &v1_dir {
        ev.insert("v1_cgroup".into(), root.join(d).display().to_string());
    }
    if let Some(d) = &v2_dir {
        ev.insert("v2_cgroup".into(), root.join(d).display().to_string());
    }
    let names: Vec<String> = refused.iter().map(|p| p.display().to_string()).collect();
    vec![Finding {
        check: ids::DEVICE_ACCESS_BROKEN.into(),
        severity: Severity::Error,
        container: Some(c.reference()),
        message: format!("container cannot open {}", names.join(", ")),
        evidence: ev,
        repaired: false,
        repair_note: None,
    }]
}
