//! A containerd owned by one test: its own config, root, state and socket
//! under a unique `/run/wctrd-<pid>-<n>/`, so it never meets the node's
//! containerd, and everything it started is killed and removed on drop.
//!
//! No registry exists here, so [`Containerd::import_busybox`] builds a
//! one-layer docker-archive image from busybox-static and `ctr images
//! import`s it. [`Containerd::run`] starts a container with `ctr run -d`
//! through the `io.containerd.runc.v2` shim, with runc's root set to a
//! directory of the test ([`Containerd::runc_root`]) and the OCI annotations
//! the test asks for (CRI pod identity).

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::json;

/// The image reference [`Containerd::import_busybox`] creates.
pub const BUSYBOX_IMAGE: &str = "warden.test/busybox:e2e";

/// Applets linked into the image's `/bin`.
const APPLETS: &[&str] = &["sh", "sleep", "cat", "ls", "echo", "head", "true"];

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A running test-owned containerd.
#[derive(Debug)]
pub struct Containerd {
    dir: PathBuf,
    child: Option<Child>,
    /// (namespace, id) of every container created through [`Containerd::run`].
    containers: Mutex<Vec<(String, String)>>,
}

impl Containerd {
    /// Write a config and start `containerd` with it; returns once its
    /// socket answers `ctr version`.
    pub fn start() -> Result<Self> {
        // Short: containerd's socket path must fit in sun_path (108 bytes).
        let dir = PathBuf::from(format!(
            "/run/wctrd-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        if dir.exists() {
            // A previous run of the same pid crashed without cleaning up.
            cleanup_dir(&dir);
        }
        for d in ["root", "state", "runc", "opt", "image"] {
            fs::create_dir_all(dir.join(d))
                .with_context(|| format!("mkdir {}", dir.join(d).display()))?;
        }
        let d = dir.display();
        // The CRI plugin is off: it would set up networking and watch
        // directories this test does not own. `opt` is moved in too so the
        // node's /opt/containerd is never touched.
        let config = format!(
            r#"version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "{d}/c.sock"

[ttrpc]
  address = "{d}/c.sock.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"
"#
        );
        let cfg = dir.join("config.toml");
        fs::write(&cfg, config).with_context(|| format!("write {}", cfg.display()))?;
        let log = dir.join("containerd.log");
        let log_file =
            fs::File::create(&log).with_context(|| format!("create {}", log.display()))?;
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .context("spawn containerd (install containerd)")?;
        let me = Self {
            dir,
            child: Some(child),
            containers: Mutex::new(Vec::new()),
        };
        me.wait_ready(Duration::from_secs(20))?;
        Ok(me)
    }

    fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.socket().exists() {
                if let Ok(o) = self.ctr("default", &["version"]) {
                    if o.status.success() {
                        return Ok(());
                    }
                }
            }
            if Instant::now() >= deadline {
                bail!(
                    "containerd did not answer on {} within {timeout:?}: {}",
                    self.socket().display(),
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The last lines of containerd's log, for error messages.
    pub fn log_tail(&self) -> String {
        let text = fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(10)..].join("\n")
    }

    /// containerd's gRPC socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("c.sock")
    }

    /// The runc root the shim uses (`--runc-root`): one sub-directory per
    /// containerd namespace; `warden check --containerd-runc-root`.
    pub fn runc_root(&self) -> PathBuf {
        self.dir.join("runc")
    }

    /// containerd's v2 task state (the bundles):
    /// `warden check --containerd-tasks`.
    pub fn tasks_dir(&self) -> PathBuf {
        self.dir.join("state/io.containerd.runtime.v2.task")
    }

    /// The `warden check` flags that point discovery at this containerd.
    pub fn warden_args(&self) -> Vec<String> {
        vec![
            "--containerd-runc-root".into(),
            self.runc_root().display().to_string(),
            "--containerd-tasks".into(),
            self.tasks_dir().display().to_string(),
        ]
    }

    /// `ctr -a SOCKET -n NAMESPACE ARGS`.
    pub fn ctr(&self, namespace: &str, args: &[&str]) -> Result<Output> {
        Command::new("ctr")
            .arg("-a")
            .arg(self.socket())
            .args(["-n", namespace])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .context("run ctr")
    }

    fn ctr_ok(&self, namespace: &str, args: &[&str]) -> Result<String> {
        let o = self.ctr(namespace, args)?;
        if !o.status.success() {
            bail!(
                "ctr -n {namespace} {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&o.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    }

    /// Build a busybox image as a docker-archive tar (one layer: busybox
    /// and a few applet links; config with `sleep 600` as its command) and
    /// import it into `namespace`. Returns the image reference.
    pub fn import_busybox(&self, namespace: &str) -> Result<&'static str> {
        let img = self.dir.join("image");
        let rootfs = img.join("rootfs");
        for d in ["bin", "proc", "sys", "dev", "tmp", "etc"] {
            fs::create_dir_all(rootfs.join(d))
                .with_context(|| format!("mkdir in {}", rootfs.display()))?;
        }
        let busybox = rootfs.join("bin/busybox");
        if !busybox.exists() {
            fs::copy(crate::bundle::BUSYBOX, &busybox).with_context(|| {
                format!("copy {} (install busybox-static)", crate::bundle::BUSYBOX)
            })?;
        }
        for a in APPLETS {
            let link = rootfs.join("bin").join(a);
            if fs::symlink_metadata(&link).is_err() {
                symlink("busybox", &link).with_context(|| format!("symlink {}", link.display()))?;
            }
        }
        let layer = img.join("layer.tar");
        run_ok(
            Command::new("tar")
                .arg("-C")
                .arg(&rootfs)
                .arg("-cf")
                .arg(&layer)
                .args(["--owner=0", "--group=0", "."]),
            "tar the image layer",
        )?;
        let diff_id = sha256(&layer)?;
        let config = json!({
            "architecture": go_arch(),
            "os": "linux",
            "config": {"Cmd": ["sleep", "600"], "Env": ["PATH=/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{diff_id}")]},
            "history": [{"created_by": "warden-e2e busybox-static"}],
        });
        fs::write(img.join("config.json"), serde_json::to_vec(&config)?)
            .context("write image config")?;
        let manifest = json!([{
            "Config": "config.json",
            "RepoTags": [BUSYBOX_IMAGE],
            "Layers": ["layer.tar"],
        }]);
        fs::write(img.join("manifest.json"), serde_json::to_vec(&manifest)?)
            .context("write image manifest")?;
        let archive = img.join("busybox.tar");
        run_ok(
            Command::new("tar")
                .arg("-C")
                .arg(&img)
                .arg("-cf")
                .arg(&archive)
                .args(["manifest.json", "config.json", "layer.tar"]),
            "tar the image archive",
        )?;
        let archive_s = archive.display().to_string();
        self.ctr_ok(namespace, &["images", "import", &archive_s])?;
        Ok(BUSYBOX_IMAGE)
    }

    /// `ctr run -d` `image` as container `id` in `namespace`, in the cgroup
    /// `cgroup` (a path like `/warden-e2e/<id>`), with OCI `annotations`;
    /// waits until its task is `RUNNING` and returns its init pid. The
    /// container is killed and removed on drop (or by [`Containerd::remove`]).
    pub fn run(
        &self,
        namespace: &str,
        id: &str,
        image: &str,
        cgroup: &str,
        annotations: &[(&str, &str)],
        args: &[&str],
    ) -> Result<u32> {
        let runc_root = self.runc_root().display().to_string();
        let mut cmd: Vec<String> = vec![
            "run".into(),
            "-d".into(),
            "--null-io".into(),
            "--runc-root".into(),
            runc_root,
            "--cgroup".into(),
            cgroup.into(),
        ];
        for (k, v) in annotations {
            cmd.push("--annotation".into());
            cmd.push(format!("{k}={v}"));
        }
        cmd.push(image.into());
        cmd.push(id.into());
        cmd.extend(args.iter().map(|a| a.to_string()));
        self.containers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((namespace.to_string(), id.to_string()));
        let refs: Vec<&str> = cmd.iter().map(String::as_str).collect();
        self.ctr_ok(namespace, &refs)
            .with_context(|| format!("containerd log:\n{}", self.log_tail()))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some((pid, status)) = self.task(namespace, id)? {
                if status == "RUNNING" && pid > 0 {
                    return Ok(pid);
                }
            }
            if Instant::now() >= deadline {
                bail!("task {namespace}/{id} not RUNNING within 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// (pid, status) of a task from `ctr tasks ls`, if it exists.
    pub fn task(&self, namespace: &str, id: &str) -> Result<Option<(u32, String)>> {
        let out = self.ctr_ok(namespace, &["tasks", "ls"])?;
        Ok(out.lines().skip(1).find_map(|l| {
            let mut f = l.split_whitespace();
            if f.next()? != id {
                return None;
            }
            let pid = f.next()?.parse().ok()?;
            Some((pid, f.next()?.to_string()))
        }))
    }

    /// Kill a container's task, delete it and the container (and its
    /// snapshot). Errors of steps with nothing left to do are ignored.
    pub fn remove(&self, namespace: &str, id: &str) -> Result<()> {
        let _ = self.ctr(namespace, &["tasks", "kill", "-s", "KILL", id]);
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Ok(Some((_, status))) = self.task(namespace, id) {
            if status == "STOPPED" || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.ctr(namespace, &["tasks", "delete", "-f", id]);
        let o = self.ctr(namespace, &["containers", "delete", id])?;
        let gone = self.task(namespace, id)?.is_none();
        self.containers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|(n, i)| !(n == namespace && i == id));
        if !gone {
            bail!(
                "task {namespace}/{id} still there: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            );
        }
        Ok(())
    }

    /// Processes started for this containerd that are still alive: shims
    /// (their command line names our socket) and their children.
    fn leftover_shims(&self) -> Vec<i32> {
        let sock = self.socket().display().to_string();
        let Ok(rd) = fs::read_dir("/proc") else {
            return Vec::new();
        };
        rd.filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| {
                fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                    let text = String::from_utf8_lossy(&c);
                    text.contains("containerd-shim") && text.contains(&sock)
                })
            })
            .collect()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let list = std::mem::take(
            &mut *self
                .containers
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for (ns, id) in &list {
            let _ = self.remove(ns, id);
        }
        if let Some(mut c) = self.child.take() {
            if let Ok(pid) = i32::try_from(c.id()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if matches!(c.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        // A shim outlives containerd by design; ours must not outlive the test.
        for pid in self.leftover_shims() {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        cleanup_dir(&self.dir);
    }
}

/// Unmount whatever is still mounted under `dir` (a rootfs of a container
/// whose delete failed), deepest first, then remove the tree.
fn cleanup_dir(dir: &Path) {
    let prefix = dir.display().to_string();
    let mut mounts: Vec<String> = fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4).map(str::to_owned))
        .filter(|m| m.starts_with(&prefix))
        .collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in mounts {
        let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
    }
    let _ = fs::remove_dir_all(dir);
}

fn run_ok(cmd: &mut Command, what: &str) -> Result<()> {
    let o = cmd.output().with_context(|| what.to_string())?;
    if !o.status.success() {
        bail!("{what}: {}", String::from_utf8_lossy(&o.stderr).trim());
    }
    Ok(())
}

/// Hex sha256 of a file (coreutils' `sha256sum`: no hashing crate needed
/// for one digest per test).
fn sha256(path: &Path) -> Result<String> {
    let o = Command::new("sha256sum")
        .arg(path)
        .output()
        .context("run sha256sum")?;
    if !o.status.success() {
        bail!("sha256sum {}: failed", path.display());
    }
    let text = String::from_utf8_lossy(&o.stdout);
    let digest = text.split_whitespace().next().unwrap_or_default();
    if digest.len() != 64 {
        bail!("sha256sum {}: unexpected output {text:?}", path.display());
    }
    Ok(digest.to_string())
}

/// The image architecture in Go's names, which containerd matches against
/// the host platform on import.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}
