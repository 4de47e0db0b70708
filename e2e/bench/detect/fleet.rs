//! Containers under a private runc root, the two device breakages of the
//! seeds, and a `warden agent --standalone` process.
//!
//! Shared by `e2e/tests/agent_standalone.rs` and the `detect` benchmark. A
//! private `runc --root` keeps the agent's view (and its repairs, in
//! Enforce mode) to the containers the test made, whatever else runs on the
//! machine.

#![allow(dead_code)]

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use runtime_core::devices::bpf;
use runtime_core::devices::v1::V1DeviceCgroup;
use runtime_core::devices::{Access, DeviceType};
use serde_json::Value;
use warden_e2e::Bundle;

/// A runc container under a private root; killed and deleted on drop.
pub struct Ctr {
    /// Container id (also its cgroup name under `/warden-e2e/`).
    pub id: String,
    root: PathBuf,
}

impl Ctr {
    /// Create a busybox bundle in `dir/<id>` and `runc --root ROOT run -d`
    /// it, sleeping.
    pub fn start(root: &Path, dir: &Path, id: &str) -> Result<Ctr> {
        let bdir = dir.join(id);
        fs::create_dir_all(&bdir).with_context(|| format!("mkdir {}", bdir.display()))?;
        Bundle::busybox(&bdir, id, &["sleep", "3600"])?;
        let log = fs::File::create(bdir.join("runc.log")).context("runc log")?;
        let me = Ctr {
            id: id.to_owned(),
            root: root.to_path_buf(),
        };
        let status = Command::new("runc")
            .arg("--root")
            .arg(root)
            .args(["run", "-d", "--bundle"])
            .arg(&bdir)
            .arg(id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .status()
            .context("spawn runc")?;
        if !status.success() {
            bail!(
                "runc run {id}: {}",
                fs::read_to_string(bdir.join("runc.log")).unwrap_or_default()
            );
        }
        Ok(me)
    }

    /// `runc exec` `args`; whether it succeeded.
    pub fn exec(&self, args: &[&str]) -> Result<bool> {
        let out = Command::new("runc")
            .arg("--root")
            .arg(&self.root)
            .arg("exec")
            .arg(&self.id)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .context("runc exec")?;
        Ok(out.status.success())
    }

    /// Whether the container opens /dev/null and /dev/urandom (from inside).
    pub fn opens(&self) -> bool {
        self.exec(&["cat", "/dev/null"]).unwrap_or(false)
            && self
                .exec(&["head", "-c", "1", "/dev/urandom"])
                .unwrap_or(false)
    }

    /// Its v1 devices cgroup.
    pub fn devices_dir(&self) -> PathBuf {
        PathBuf::from(format!("/sys/fs/cgroup/devices/warden-e2e/{}", self.id))
    }

    /// Its v2 cgroup.
    pub fn unified_dir(&self) -> PathBuf {
        PathBuf::from(format!("/sys/fs/cgroup/unified/warden-e2e/{}", self.id))
    }

    /// The v1 half of seed 003: the rules for /dev/null and /dev/urandom
    /// removed from the container's device list.
    pub fn break_v1(&self) -> Result<()> {
        warden_e2e::breakage::break_v1(&self.devices_dir())
    }

    /// Whether the v1 list lets the container read and write /dev/null and
    /// /dev/urandom (cheap: one read of `devices.list`, no exec).
    pub fn v1_allows(&self) -> bool {
        V1DeviceCgroup::new(self.devices_dir())
            .read()
            .is_ok_and(|e| {
                let rw = Access::READ.union(Access::WRITE);
                e.allows(DeviceType::Char, 1, 3, rw) && e.allows(DeviceType::Char, 1, 9, rw)
            })
    }

    /// The v2 half: attach what systemd's old device set gave the unit
    /// (`char-pts rwm`, `char-* m`, `block-* m`) beside the runtime's
    /// program; both run, so /dev/null and /dev/urandom are denied. Returns
    /// the attached program's id.
    pub fn break_v2(&self) -> Result<u32> {
        warden_e2e::breakage::break_v2(&self.unified_dir())
    }

    /// Whether program `id` is still attached to the container's v2 cgroup.
    pub fn v2_attached(&self, id: u32) -> bool {
        bpf::kernel::open_cgroup(&self.unified_dir())
            .and_then(|cg| bpf::kernel::query(cg.as_fd(), false))
            .is_ok_and(|a| a.prog_ids.contains(&id))
    }
}

impl Drop for Ctr {
    fn drop(&mut self) {
        for args in [
            &["kill", self.id.as_str(), "KILL"][..],
            &["delete", "-f", self.id.as_str()],
        ] {
            let _ = Command::new("runc")
                .arg("--root")
                .arg(&self.root)
                .args(args)
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A running `warden agent`; killed on drop if still running.
pub struct Agent {
    child: Option<Child>,
    /// The report file it writes.
    pub report: PathBuf,
    /// Its stderr (JSON log lines).
    pub log: PathBuf,
    /// Where it serves `/metrics`, once known.
    pub metrics: Option<SocketAddr>,
}

impl Agent {
    /// Start `warden agent --standalone` on the containers under `runc_root`
    /// only (every other state directory points into `work`), reporting to
    /// `work/report.json`, metrics on a free loopback port, JSON logs in
    /// `work/agent.log`. `extra` adds flags (`--policy FILE`, ...).
    pub fn start(work: &Path, runc_root: &Path, extra: &[&str]) -> Result<Agent> {
        let bin = warden_e2e::warden::bin()?;
        let report = work.join("report.json");
        let log = work.join("agent.log");
        let nowhere = work.join("absent");
        let mut cmd = Command::new(bin);
        cmd.args(["--log-format", "json", "agent", "--standalone"])
            .arg("--report-file")
            .arg(&report)
            .args(["--metrics-addr", "127.0.0.1:0", "--node-name", "e2e-node"])
            .arg("--runc-root")
            .arg(runc_root)
            .arg("--crun-root")
            .arg(nowhere.join("crun"))
            .arg("--containerd-runc-root")
            .arg(nowhere.join("containerd-runc"))
            .arg("--containerd-tasks")
            .arg(nowhere.join("containerd-tasks"))
            .arg("--systemd-transient")
            .arg(nowhere.join("transient"))
            .arg("--state-dir")
            .arg(work.join("state"))
            .args(extra)
            .env("RUST_LOG", "warden=info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).context("agent log")?);
        let child = cmd.spawn().context("spawn warden agent")?;
        let mut agent = Agent {
            child: Some(child),
            report,
            log,
            metrics: None,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while agent.metrics.is_none() {
            agent.metrics = agent
                .log_lines()
                .iter()
                .find_map(|l| l["fields"]["addr"].as_str().and_then(|a| a.parse().ok()));
            if Instant::now() > deadline {
                bail!("the agent did not start serving: {}", agent.log_text());
            }
            if let Some(status) = agent
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!("the agent exited with {status}: {}", agent.log_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(agent)
    }

    /// The agent's stderr so far.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its log lines that parse as JSON.
    pub fn log_lines(&self) -> Vec<Value> {
        self.log_text()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The report file's current content, if any.
    pub fn report(&self) -> Option<Value> {
        let bytes = fs::read(&self.report).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Wait until the report satisfies `pred`.
    pub fn wait_report(&self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(r) = self.report().filter(|r| pred(r)) {
                return Ok(r);
            }
            if Instant::now() > deadline {
                bail!(
                    "report never matched; last: {}\nagent log:\n{}",
                    self.report().map(|r| r.to_string()).unwrap_or_default(),
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// GET `path` from the agent's HTTP endpoint: (status line, body).
    pub fn get(&self, path: &str) -> Result<(String, String)> {
        let addr = self.metrics.context("no metrics address")?;
        let mut s = TcpStream::connect(addr).context("connect")?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
        Ok((
            head.lines().next().unwrap_or("").to_owned(),
            body.to_owned(),
        ))
    }

    /// The value of the metric line starting with `series` (`name{labels}`).
    pub fn metric(&self, series: &str) -> Result<Option<f64>> {
        let (_, body) = self.get("/metrics")?;
        Ok(body.lines().find_map(|l| {
            l.strip_prefix(series)
                .and_then(|v| v.trim().parse::<f64>().ok())
        }))
    }

    /// The agent's pid.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGTERM, then wait (at most `timeout`) for the exit.
    pub fn stop(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let mut child = self.child.take().context("already stopped")?;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .context("SIGTERM")?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = child.try_wait()? {
                return Ok(s);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("the agent did not exit within {timeout:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Findings in `report` about container `id`.
pub fn findings_for<'a>(report: &'a Value, id: &str) -> Vec<&'a Value> {
    report["findings"]
        .as_array()
        .map(|a| a.iter().filter(|f| f["container"]["id"] == id).collect())
        .unwrap_or_default()
}

/// A RuntimePolicy YAML in `dir` with `mode`; returns its path.
pub fn policy_file(dir: &Path, mode: &str) -> Result<PathBuf> {
    let p = dir.join(format!("policy-{mode}.yaml"));
    fs::write(
        &p,
        format!(
            "apiVersion: runtimewarden.io/v1alpha1\nkind: RuntimePolicy\nmetadata:\n  name: e2e-{}\nspec:\n  mode: {mode}\n",
            mode.to_lowercase()
        ),
    )
    .with_context(|| format!("write {}", p.display()))?;
    Ok(p)
}
