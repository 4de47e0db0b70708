//! OCI bundles with a busybox-static root filesystem.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

/// Where Debian's busybox-static installs its binary.
pub const BUSYBOX: &str = "/bin/busybox";

/// Applets linked into every rootfs.
const APPLETS: &[&str] = &[
    "sh", "sleep", "cat", "ls", "echo", "true", "false", "head", "dd", "test", "ps", "kill",
];

/// An OCI bundle on disk: `config.json` plus a busybox `rootfs/`.
#[derive(Debug)]
pub struct Bundle {
    /// The bundle directory.
    pub dir: PathBuf,
    /// The parsed `config.json`, written back by [`Bundle::save`].
    pub config: Value,
}

impl Bundle {
    /// Create a bundle in `dir` whose process runs `args`. The config starts
    /// from `runc spec` (what real users start from), with no terminal, a
    /// writable rootfs and a cgroups path under `/warden-e2e/` so tests can
    /// find the container's cgroups.
    pub fn busybox(dir: &Path, id: &str, args: &[&str]) -> Result<Self> {
        let rootfs = dir.join("rootfs");
        for d in ["bin", "proc", "sys", "dev", "tmp", "etc"] {
            fs::create_dir_all(rootfs.join(d))
                .with_context(|| format!("mkdir in {}", rootfs.display()))?;
        }
        fs::copy(BUSYBOX, rootfs.join("bin/busybox"))
            .with_context(|| format!("copy {BUSYBOX} (install busybox-static)"))?;
        for a in APPLETS {
            let link = rootfs.join("bin").join(a);
            if !link.exists() {
                symlink("busybox", &link).with_context(|| format!("symlink {}", link.display()))?;
            }
        }
        let out = Command::new("runc")
            .arg("spec")
            .current_dir(dir)
            .output()
            .context("run `runc spec` (install runc)")?;
        if !out.status.success() {
            bail!("runc spec failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let cfg_path = dir.join("config.json");
        let text = fs::read_to_string(&cfg_path)
            .with_context(|| format!("read {}", cfg_path.display()))?;
        let mut config: Value = serde_json::from_str(&text).context("parse runc spec output")?;
        config["process"]["terminal"] = json!(false);
        config["process"]["args"] = json!(args);
        config["root"]["readonly"] = json!(false);
        config["linux"]["cgroupsPath"] = json!(format!("/warden-e2e/{id}"));
        let bundle = Self {
            dir: dir.to_path_buf(),
            config,
        };
        bundle.save()?;
        Ok(bundle)
    }

    /// Write `config` back to `config.json`.
    pub fn save(&self) -> Result<()> {
        let p = self.dir.join("config.json");
        let text = serde_json::to_string_pretty(&self.config)?;
        fs::write(&p, text).with_context(|| format!("write {}", p.display()))
    }

    /// Set the OCI `linux.seccomp` section.
    pub fn set_seccomp(&mut self, seccomp: Value) -> Result<()> {
        self.config["linux"]["seccomp"] = seccomp;
        self.save()
    }
}
