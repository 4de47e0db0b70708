//! Breaking a running container the way the seeds did, for scenarios and
//! benchmarks.

use std::fs;
use std::os::fd::AsFd;
use std::path::Path;

use anyhow::{Context, Result};
use runtime_core::devices::bpf;
use runtime_core::devices::{Access, DeviceRule, DeviceType};

/// The `DeviceAllow=` set runc 1.1.3-1.1.4 left on a scope without
/// `/dev/char` (seed 003): `char-pts rwm`, `char-* m`, `block-* m` — no
/// /dev/null, no /dev/urandom.
pub fn seed_003_rules() -> [DeviceRule; 3] {
    let rule = |kind, major, access| DeviceRule {
        allow: true,
        kind,
        major,
        minor: None,
        access,
    };
    [
        rule(DeviceType::Char, Some(136), Access::ALL),
        rule(DeviceType::Char, None, Access::MKNOD),
        rule(DeviceType::Block, None, Access::MKNOD),
    ]
}

/// The v1 breakage: remove /dev/null (`c 1:3`) and /dev/urandom (`c 1:9`)
/// from the devices cgroup at `devices_dir`.
pub fn break_v1(devices_dir: &Path) -> Result<()> {
    let deny = devices_dir.join("devices.deny");
    fs::write(&deny, "c 1:3 rwm").context("deny /dev/null")?;
    fs::write(&deny, "c 1:9 rwm").context("deny /dev/urandom")?;
    Ok(())
}

/// The v2 breakage: attach a program built from [`seed_003_rules`] beside
/// whatever the cgroup at `unified_dir` already runs (as systemd's
/// `sd_devices` did after `daemon-reload`). Returns the new program's id.
pub fn break_v2(unified_dir: &Path) -> Result<u32> {
    let insns = bpf::program::build_from_rules(&seed_003_rules()).context("program")?;
    let prog = bpf::kernel::load_device_program(&insns).context("load")?;
    let cg = bpf::kernel::open_cgroup(unified_dir).context("open cgroup")?;
    let before = bpf::kernel::query(cg.as_fd(), false)
        .context("query")?
        .prog_ids;
    bpf::kernel::attach_multi(cg.as_fd(), prog.as_fd()).context("attach")?;
    let after = bpf::kernel::query(cg.as_fd(), false)
        .context("query")?
        .prog_ids;
    after
        .into_iter()
        .find(|id| !before.contains(id))
        .context("the attached program is not listed")
}
