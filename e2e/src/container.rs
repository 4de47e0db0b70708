//! Containers run with real OCI runtimes, deleted on drop.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::Bundle;

/// An OCI runtime binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// runc.
    Runc,
    /// crun.
    Crun,
}

impl Runtime {
    /// Executable name.
    pub fn binary(self) -> &'static str {
        match self {
            Runtime::Runc => "runc",
            Runtime::Crun => "crun",
        }
    }
}

/// A running container; killed and deleted when dropped, so a failing test
/// leaves nothing behind.
#[derive(Debug)]
pub struct Container {
    /// The runtime that owns it.
    pub runtime: Runtime,
    /// Container id.
    pub id: String,
    /// Bundle directory.
    pub bundle: PathBuf,
}

/// A unique container id for this test process: `warden-e2e-<tag>-<pid>`.
pub fn unique_id(tag: &str) -> String {
    format!("warden-e2e-{tag}-{}", std::process::id())
}

impl Container {
    /// `RUNTIME run -d` the bundle and wait until the container is running.
    pub fn run(runtime: Runtime, id: &str, bundle: &Bundle) -> Result<Self> {
        let me = Self {
            runtime,
            id: id.to_string(),
            bundle: bundle.dir.clone(),
        };
        // A detached container inherits the runtime's stdio: a pipe would
        // never reach EOF while it runs, so stderr goes to a file instead.
        let log = bundle.dir.join("runtime.log");
        let log_file =
            std::fs::File::create(&log).with_context(|| format!("create {}", log.display()))?;
        let status = Command::new(runtime.binary())
            .args(["run", "-d", "--bundle"])
            .arg(&bundle.dir)
            .arg(id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .status()
            .with_context(|| format!("spawn {}", runtime.binary()))?;
        if !status.success() {
            bail!(
                "{} run {id} failed: {}",
                runtime.binary(),
                std::fs::read_to_string(&log).unwrap_or_default().trim()
            );
        }
        me.wait_status("running", Duration::from_secs(10))?;
        Ok(me)
    }

    /// The runtime's `state` JSON.
    pub fn state(&self) -> Result<serde_json::Value> {
        let out = Command::new(self.runtime.binary())
            .args(["state", &self.id])
            .output()
            .context("runtime state")?;
        if !out.status.success() {
            bail!(
                "state {}: {}",
                self.id,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        serde_json::from_slice(&out.stdout).context("parse state JSON")
    }

    /// The init process's host pid.
    pub fn pid(&self) -> Result<u32> {
        let s = self.state()?;
        s["pid"]
            .as_u64()
            .and_then(|p| u32::try_from(p).ok())
            .context("state has no pid")
    }

    /// Wait until `state.status` is `want`.
    pub fn wait_status(&self, want: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self
                .state()
                .ok()
                .and_then(|s| s["status"].as_str().map(str::to_owned));
            if got.as_deref() == Some(want) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("container {} is {:?}, wanted {want}", self.id, got);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Run `args` inside the container (`RUNTIME exec`); returns
    /// (success, stdout+stderr).
    pub fn exec(&self, args: &[&str]) -> Result<(bool, String)> {
        let out = Command::new(self.runtime.binary())
            .args(["exec", &self.id])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .context("runtime exec")?;
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        Ok((out.status.success(), text))
    }

    /// The bundle directory.
    pub fn bundle(&self) -> &Path {
        &self.bundle
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let bin = self.runtime.binary();
        let _ = Command::new(bin)
            .args(["kill", &self.id, "KILL"])
            .stderr(Stdio::null())
            .status();
        let _ = Command::new(bin)
            .args(["delete", "-f", &self.id])
            .stderr(Stdio::null())
            .status();
    }
}
