//! The real-systemd tier (DESIGN §7 tier 4): a systemd 252 booted in
//! systemd-nspawn by `e2e/scripts/nspawn-systemd.sh`, and runc containers
//! with the systemd cgroup driver inside it.
//!
//! Everything here runs commands in the guest with `nsenter -t LEADER -a`
//! (all of its namespaces: its systemd, its runc state, its PID namespace,
//! which systemd's private socket insists on). Guards power the guest off
//! and delete containers on drop, so a failing test leaves nothing running.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use anyhow::{bail, ensure, Context, Result};
use serde_json::{json, Value};

/// The tier's script (prepare / boot / stop / root).
pub const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/nspawn-systemd.sh");

/// A booted nspawn systemd; powered off on drop.
#[derive(Debug)]
pub struct Nspawn {
    state: tempfile::TempDir,
    /// Host pid of the guest's PID 1 (systemd).
    pub leader: u32,
    /// The guest's root directory on the host (the cached debootstrap root).
    pub root: PathBuf,
}

impl Nspawn {
    /// Boot the guest (preparing the cached root first if needed; boots are
    /// serialised by the script, so this may wait for another test's guest
    /// to power off).
    pub fn boot() -> Result<Nspawn> {
        let state = tempfile::tempdir().context("state tempdir")?;
        let st = Command::new("bash")
            .arg(SCRIPT)
            .arg("boot")
            .arg(state.path())
            .status()
            .context("run nspawn-systemd.sh boot")?;
        ensure!(st.success(), "nspawn-systemd.sh boot failed");
        let leader_file = state.path().join("leader.pid");
        let leader = std::fs::read_to_string(&leader_file)
            .with_context(|| format!("read {}", leader_file.display()))?
            .trim()
            .parse()
            .context("leader pid")?;
        let out = Command::new("bash")
            .arg(SCRIPT)
            .arg("root")
            .output()
            .context("run nspawn-systemd.sh root")?;
        let root = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        Ok(Nspawn {
            state,
            leader,
            root,
        })
    }

    /// Run `sh -c script` in every namespace of the guest.
    pub fn sh(&self, script: &str) -> Result<Output> {
        Command::new("nsenter")
            .args(["-t", &self.leader.to_string(), "-a", "sh", "-c", script])
            .stdin(Stdio::null())
            .output()
            .context("run nsenter")
    }

    /// [`Nspawn::sh`], failing unless the script succeeds; its stdout.
    pub fn ok(&self, script: &str) -> Result<String> {
        let out = self.sh(script)?;
        if !out.status.success() {
            bail!(
                "`{script}` failed in the guest: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The host path of a guest path (through the cached root).
    pub fn host_path(&self, guest: &str) -> PathBuf {
        self.root.join(guest.trim_start_matches('/'))
    }

    /// Write a busybox bundle at guest path `/var/lib/warden-e2e/<id>`
    /// running `sleep 3600`, from `runc spec` run in the guest, with the
    /// systemd cgroups path `system.slice:runc:<id>` (unit `runc-<id>.scope`).
    pub fn busybox_bundle(&self, id: &str) -> Result<GuestBundle> {
        let guest = format!("/var/lib/warden-e2e/{id}");
        let host = self.host_path(&guest);
        let bin = host.join("rootfs/bin");
        std::fs::create_dir_all(&bin).with_context(|| format!("mkdir {}", bin.display()))?;
        std::fs::copy(self.root.join("bin/busybox"), bin.join("busybox"))
            .context("copy the guest's busybox")?;
        for applet in ["sh", "cat", "head", "sleep", "echo", "true"] {
            let link = bin.join(applet);
            if !link.exists() {
                std::os::unix::fs::symlink("busybox", &link)
                    .with_context(|| format!("symlink {}", link.display()))?;
            }
        }
        self.ok(&format!("cd {guest} && rm -f config.json && runc spec"))?;
        let config_path = host.join("config.json");
        let text = std::fs::read_to_string(&config_path)
            .with_context(|| format!("read {}", config_path.display()))?;
        let mut config: Value = serde_json::from_str(&text).context("parse runc spec")?;
        config["process"]["terminal"] = json!(false);
        config["process"]["args"] = json!(["sleep", "3600"]);
        config["root"]["readonly"] = json!(false);
        config["linux"]["cgroupsPath"] = json!(format!("system.slice:runc:{id}"));
        std::fs::write(&config_path, serde_json::to_vec_pretty(&config)?)
            .with_context(|| format!("write {}", config_path.display()))?;
        Ok(GuestBundle {
            guest,
            host,
            config,
        })
    }

    /// `runc --systemd-cgroup run -d` a bundle in the guest.
    pub fn run_systemd_runc<'a>(
        &'a self,
        id: &str,
        bundle: GuestBundle,
    ) -> Result<GuestContainer<'a>> {
        let out = self.sh(&format!(
            "runc --systemd-cgroup run -d --bundle {} {id} </dev/null >/dev/null 2>{}/runc.log",
            bundle.guest, bundle.guest
        ))?;
        let c = GuestContainer {
            ns: self,
            id: id.to_string(),
            bundle,
        };
        if !out.status.success() {
            bail!(
                "runc run {id} failed: {}",
                std::fs::read_to_string(c.bundle.host.join("runc.log")).unwrap_or_default()
            );
        }
        Ok(c)
    }

    /// Copy a binary into the guest (`/usr/local/bin/<name>`); removed again
    /// when the returned guard drops, so the cached root stays clean.
    pub fn install(&self, binary: &Path, name: &str) -> Result<Installed> {
        let guest = format!("/usr/local/bin/{name}");
        let host = self.host_path(&guest);
        if let Some(dir) = host.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("mkdir {}", dir.display()))?;
        }
        std::fs::copy(binary, &host)
            .with_context(|| format!("copy {} to {}", binary.display(), host.display()))?;
        Ok(Installed { guest, host })
    }
}

impl Drop for Nspawn {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(SCRIPT)
            .arg("stop")
            .arg(self.state.path())
            .status();
    }
}

/// A bundle in the guest.
#[derive(Debug)]
pub struct GuestBundle {
    /// Its guest path.
    pub guest: String,
    /// Its host path.
    pub host: PathBuf,
    /// The config written.
    pub config: Value,
}

/// A runc container inside the guest; deleted on drop (declare it after the
/// guest, so it drops first, while the guest still runs).
#[derive(Debug)]
pub struct GuestContainer<'a> {
    ns: &'a Nspawn,
    /// Container id.
    pub id: String,
    /// Its bundle.
    pub bundle: GuestBundle,
}

impl GuestContainer<'_> {
    /// Its systemd unit.
    pub fn unit(&self) -> String {
        format!("runc-{}.scope", self.id)
    }

    /// Read `/dev/null` and `/dev/urandom` from inside the container: `OK
    /// null` / `OK urandom` lines, or the errors busybox prints.
    pub fn probe(&self) -> String {
        match self.ns.sh(&format!(
            "runc exec {} sh -c 'cat /dev/null && echo OK null; head -c 16 /dev/urandom >/dev/null && echo OK urandom; true' 2>&1",
            self.id
        )) {
            Ok(out) => {
                String::from_utf8_lossy(&out.stdout).into_owned()
                    + &String::from_utf8_lossy(&out.stderr)
            }
            Err(e) => format!("probe failed: {e:#}"),
        }
    }

    /// Whether [`GuestContainer::probe`] opened both devices.
    pub fn works(&self) -> bool {
        works(&self.probe())
    }
}

impl Drop for GuestContainer<'_> {
    fn drop(&mut self) {
        let _ = self.ns.sh(&format!("runc delete -f {}", self.id));
        let _ = std::fs::remove_dir_all(&self.bundle.host);
    }
}

/// Whether a probe's output shows both devices opened.
pub fn works(probe: &str) -> bool {
    probe.contains("OK null") && probe.contains("OK urandom")
}

/// A binary copied into the guest; removed on drop.
#[derive(Debug)]
pub struct Installed {
    /// Its guest path.
    pub guest: String,
    host: PathBuf,
}

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.host);
    }
}
