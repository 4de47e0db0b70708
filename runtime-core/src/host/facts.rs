//! Gathering [`HostFacts`].

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use super::kernel::{self, KernelVersion};
use super::runtimes::{self, RuntimeInfo};
use crate::cgroups::CgroupLayout;
use crate::ports::{Ports, SystemdSession};
use crate::root::HostRoot;

/// Something the scan could not inspect, and why. Reported, never fatal: a
/// non-root `warden check` still prints what it could read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unreadable {
    /// What was being inspected ("kernel release", "cgroup layout", ...).
    pub what: String,
    /// The path that failed, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// The error, as the OS gave it.
    pub error: String,
}

/// The systemd this node runs, if any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SystemdFacts {
    /// Whether systemd is PID 1 of this host (`/run/systemd/system` exists,
    /// the test `sd_booted()` uses).
    pub running: bool,
    /// The running manager's version number (`252`), when it could be asked.
    pub version: Option<u32>,
}

/// Facts about one node.
#[derive(Debug, Clone, Serialize)]
pub struct HostFacts {
    /// Kernel release (`uname -r`).
    pub kernel: Option<String>,
    /// Whether the kernel's release falls in the upstream range where moving
    /// a process into a cpu cgroup fails with `EINVAL` while one of its
    /// threads is `TASK_NEW` (seed 001, `[4.8, 6.1)`, see
    /// [`super::kernel::ATTACH_RACE_FIXED`]). `None` when the release is
    /// unknown or unparsable.
    pub attach_race_exposed: Option<bool>,
    /// How cgroups are mounted.
    pub cgroups: Option<CgroupLayout>,
    /// Whether `/dev/char` exists. Where it does not (LXC hosts), runc
    /// 1.1.3-1.1.4 silently dropped per-device `DeviceAllow=` entries: seed 003.
    pub dev_char: bool,
    /// The systemd manager, if one is reachable.
    pub systemd: SystemdFacts,
    /// Container runtimes found on this host, with versions.
    pub runtimes: Vec<RuntimeInfo>,
    /// What could not be read.
    pub unreadable: Vec<Unreadable>,
}

/// How long a runtime's `--version` may take before it is abandoned.
const VERSION_TIMEOUT: Duration = Duration::from_secs(5);

impl HostFacts {
    /// Gather the facts of the host behind `ports`, asking systemd through
    /// the scan's `systemd` session (one connection per scan).
    pub fn gather(ports: &Ports, systemd: &SystemdSession) -> Self {
        let root = &ports.root;
        let mut unreadable = Vec::new();

        let kernel_path = root.join("/proc/sys/kernel/osrelease");
        let kernel = match fs::read_to_string(&kernel_path) {
            Ok(s) => Some(s.trim().to_owned()),
            Err(e) => {
                unreadable.push(Unreadable {
                    what: "kernel release".into(),
                    path: Some(kernel_path),
                    error: e.to_string(),
                });
                None
            }
        };

        let attach_race_exposed = kernel
            .as_deref()
            .and_then(KernelVersion::parse)
            .map(kernel::attach_race_exposed);

        let cgroups = match CgroupLayout::detect(root) {
            Ok(l) => Some(l),
            Err(e) => {
                unreadable.push(Unreadable {
                    what: "cgroup layout".into(),
                    path: None,
                    error: e.to_string(),
                });
                None
            }
        };

        let dev_char = root.join("/dev/char").is_dir();

        let systemd = systemd_facts(ports, systemd, &mut unreadable);

        let (runtimes, errors) = runtimes::discover(ports.exec.as_ref(), VERSION_TIMEOUT);
        unreadable.extend(errors);

        Self {
            kernel,
            attach_race_exposed,
            cgroups,
            dev_char,
            systemd,
            runtimes,
            unreadable,
        }
    }

    /// Gather the facts of the host under `root` with its real ports (no
    /// scan to share a systemd connection with).
    pub fn of_root(root: &HostRoot) -> Self {
        let ports = Ports::for_root(root.clone(), None);
        let session = SystemdSession::new(ports.systemd.clone());
        Self::gather(&ports, &session)
    }

    /// The runtime of `kind` found on this host, if any.
    pub fn runtime(&self, kind: runtimes::RuntimeKind) -> Option<&RuntimeInfo> {
        self.runtimes.iter().find(|r| r.kind == kind)
    }
}

fn systemd_facts(
    ports: &Ports,
    session: &SystemdSession,
    unreadable: &mut Vec<Unreadable>,
) -> SystemdFacts {
    let running = ports.systemd.running();
    if !running {
        return SystemdFacts {
            running,
            version: None,
        };
    }
    // Ask the running manager first (its `Version` property over D-Bus):
    // inside the agent's pod there is no host `systemctl` to run. Fall back
    // to the installed binary, which on a booted host is the running one.
    if let Ok(v) = session
        .client()
        .and_then(|c| c.version().map_err(Into::into))
    {
        return SystemdFacts {
            running,
            version: Some(v),
        };
    }
    let systemctl = ["/usr/bin/systemctl", "/bin/systemctl"]
        .iter()
        .map(Path::new)
        .find(|p| ports.exec.exists(p));
    let version = match systemctl {
        Some(p) => match ports.exec.run(p, &["--version"], VERSION_TIMEOUT) {
            Ok(out) => parse_systemd_version(&out),
            Err(e) => {
                unreadable.push(Unreadable {
                    what: "systemd version".into(),
                    path: Some(ports.exec.location(p)),
                    error: e.to_string(),
                });
                None
            }
        },
        None => None,
    };
    SystemdFacts { running, version }
}

/// `systemd 252 (252.39-1~deb12u1)` -> 252.
pub(crate) fn parse_systemd_version(out: &str) -> Option<u32> {
    let first = out.lines().next()?;
    let mut words = first.split_whitespace();
    (words.next()? == "systemd").then_some(())?;
    let v = words.next()?;
    let digits: String = v.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemd_version_parses() {
        assert_eq!(
            parse_systemd_version("systemd 252 (252.39-1~deb12u1)\n+PAM"),
            Some(252)
        );
        assert_eq!(parse_systemd_version("systemd 219\n"), Some(219));
        assert_eq!(parse_systemd_version("nonsense"), None);
        assert_eq!(parse_systemd_version(""), None);
    }

    #[test]
    fn attach_race_exposure_follows_the_kernel_release() {
        let gather_with = |release: Option<&str>| {
            let d = tempfile::tempdir().expect("tempdir");
            if let Some(r) = release {
                let p = d.path().join("proc/sys/kernel");
                fs::create_dir_all(&p).expect("mkdir");
                fs::write(p.join("osrelease"), format!("{r}\n")).expect("write");
            }
            HostFacts::of_root(&HostRoot::new(d.path())).attach_race_exposed
        };
        assert_eq!(gather_with(Some("5.4.0-150-generic")), Some(true));
        assert_eq!(gather_with(Some("6.18.44-fc-v509")), Some(false));
        assert_eq!(gather_with(Some("garbage")), None);
        assert_eq!(gather_with(None), None);
    }

    #[test]
    fn real_host_reports_attach_race_exposure() {
        let facts = HostFacts::of_root(&HostRoot::real());
        let release = facts.kernel.as_deref().expect("kernel release readable");
        let v = KernelVersion::parse(release).expect("parsable release");
        assert_eq!(
            facts.attach_race_exposed,
            Some(kernel::attach_race_exposed(v))
        );
    }
}
