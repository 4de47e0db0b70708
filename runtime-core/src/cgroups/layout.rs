//! Detect how cgroups are mounted on a host: legacy (v1 only), hybrid (v1
//! controllers plus a v2 hierarchy, usually at `/sys/fs/cgroup/unified`) or
//! unified (v2 only).
//!
//! Detection reads `/proc/self/mountinfo` under an injectable [`HostRoot`], so
//! the same parser runs on fixtures and on the real machine.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{IoContext, WrappedIoError};
use crate::root::HostRoot;

/// How the cgroup hierarchies are arranged on a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupMode {
    /// Only v1 hierarchies are mounted.
    Legacy,
    /// v1 controllers and a v2 hierarchy side by side (this project's CI
    /// machines: v1 at `/sys/fs/cgroup/<controller>`, v2 at
    /// `/sys/fs/cgroup/unified`).
    Hybrid,
    /// Only the v2 hierarchy is mounted.
    Unified,
}

impl std::fmt::Display for CgroupMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CgroupMode::Legacy => "legacy",
            CgroupMode::Hybrid => "hybrid",
            CgroupMode::Unified => "unified",
        })
    }
}

/// One mounted v1 hierarchy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct V1Hierarchy {
    /// Controllers bound to it (`cpu`, `cpuacct`, `devices`, ...). Named
    /// hierarchies appear as `name=systemd`.
    pub controllers: Vec<String>,
    /// Host path where it is mounted.
    pub mount_point: PathBuf,
}

/// The mounted v2 hierarchy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct V2Hierarchy {
    /// Host path where it is mounted.
    pub mount_point: PathBuf,
    /// Controllers available at its root (`cgroup.controllers`); on a hybrid
    /// host this is usually empty because v1 holds them all.
    pub controllers: Vec<String>,
}

/// The cgroup layout of a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CgroupLayout {
    /// Legacy, hybrid or unified.
    pub mode: CgroupMode,
    /// Every v1 hierarchy, sorted by mount point.
    pub v1: Vec<V1Hierarchy>,
    /// The v2 hierarchy, if mounted.
    pub v2: Option<V2Hierarchy>,
}

/// Why the layout could not be detected.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// `mountinfo` could not be read.
    #[error("cannot detect cgroup layout: {0}")]
    Io(#[from] WrappedIoError),
    /// No cgroup filesystem is mounted at all.
    #[error("no cgroup filesystem is mounted (read {0})")]
    NoCgroups(PathBuf),
}

impl CgroupLayout {
    /// Detect the layout of the host under `root`.
    pub fn detect(root: &HostRoot) -> Result<Self, LayoutError> {
        let path = root.join("/proc/self/mountinfo");
        let text = fs::read_to_string(&path).with_path("read", &path)?;
        let mut layout = Self::from_mountinfo(&text).ok_or(LayoutError::NoCgroups(path))?;
        if let Some(v2) = layout.v2.as_mut() {
            // The root's cgroup.controllers lists what v2 may use. Unreadable
            // (a fixture without it) means "none known", not an error.
            let p = root.join(&v2.mount_point).join("cgroup.controllers");
            if let Ok(s) = fs::read_to_string(&p) {
                v2.controllers = s.split_whitespace().map(str::to_owned).collect();
            }
        }
        Ok(layout)
    }

    /// Build the layout from the text of a `mountinfo` file. `None` when no
    /// cgroup filesystem appears in it.
    pub fn from_mountinfo(text: &str) -> Option<Self> {
        let mut v1 = Vec::new();
        let mut v2 = None;
        for line in text.lines() {
            let Some(m) = MountLine::parse(line) else {
                continue;
            };
            match m.fstype {
                "cgroup2" => {
                    // With several cgroup2 mounts (bind mounts), keep the
                    // shortest mount point: it is the canonical one.
                    let keep = match &v2 {
                        Some(V2Hierarchy { mount_point, .. }) => {
                            m.mount_point.as_os_str().len() < mount_point.as_os_str().len()
                        }
                        None => true,
                    };
                    if keep {
                        v2 = Some(V2Hierarchy {
                            mount_point: m.mount_point,
                            controllers: Vec::new(),
                        });
                    }
                }
                "cgroup" => {
                    let controllers = v1_controllers(m.super_options);
                    if controllers.is_empty() {
                        continue;
                    }
                    // The same hierarchy bind-mounted twice (containers do
                    // this) is one hierarchy: keep its first mount point.
                    if v1
                        .iter()
                        .any(|h: &V1Hierarchy| h.controllers == controllers)
                    {
                        continue;
                    }
                    v1.push(V1Hierarchy {
                        controllers,
                        mount_point: m.mount_point,
                    });
                }
                _ => {}
            }
        }
        v1.sort_by(|a, b| a.mount_point.cmp(&b.mount_point));
        // A host counts as hybrid only when v1 holds real controllers; a v1
        // `name=systemd` hierarchy beside a full v2 is still unified from the
        // point of view of resource control.
        let v1_has_controllers = v1
            .iter()
            .any(|h| h.controllers.iter().any(|c| !c.starts_with("name=")));
        let mode = match (v1_has_controllers, v2.is_some()) {
            (true, true) => CgroupMode::Hybrid,
            (true, false) => CgroupMode::Legacy,
            (false, true) => CgroupMode::Unified,
            (false, false) if v1.is_empty() => return None,
            (false, false) => CgroupMode::Legacy,
        };
        Some(Self { mode, v1, v2 })
    }

    /// The mount point of the v1 hierarchy that holds `controller`
    /// (`devices`, `freezer`, `name=systemd`).
    pub fn v1_mount(&self, controller: &str) -> Option<&Path> {
        self.v1
            .iter()
            .find(|h| h.controllers.iter().any(|c| c == controller))
            .map(|h| h.mount_point.as_path())
    }

    /// Every v1 controller name, sorted.
    pub fn v1_controllers(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .v1
            .iter()
            .flat_map(|h| h.controllers.iter().cloned())
            .collect();
        all.sort();
        all
    }
}

/// The fields of one `mountinfo` line that matter here.
struct MountLine<'a> {
    mount_point: PathBuf,
    fstype: &'a str,
    super_options: &'a str,
}

impl<'a> MountLine<'a> {
    /// Parse `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`.
    fn parse(line: &'a str) -> Option<Self> {
        let (pre, post) = line.split_once(" - ")?;
        let mount_point = pre.split(' ').nth(4)?;
        let mut post = post.split(' ');
        let fstype = post.next()?;
        let _source = post.next()?;
        let super_options = post.next().unwrap_or("");
        Some(Self {
            mount_point: PathBuf::from(unescape_octal(mount_point)),
            fstype,
            super_options,
        })
    }
}

/// The controllers named in a v1 mount's super options.
fn v1_controllers(super_options: &str) -> Vec<String> {
    const NOT_CONTROLLERS: &[&str] = &["rw", "ro", "noprefix", "xattr", "clone_children"];
    let mut out: Vec<String> = super_options
        .split(',')
        .filter(|o| !o.is_empty() && !NOT_CONTROLLERS.contains(o))
        .filter(|o| !o.starts_with("release_agent="))
        .map(str::to_owned)
        .collect();
    out.sort();
    out
}

/// `mountinfo` escapes space, tab, newline and backslash as `\ooo`.
fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const HYBRID: &str = "\
24 1 253:0 / / rw,relatime - ext4 /dev/vda rw
30 24 0:26 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:27 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
32 30 0:28 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
33 30 0:29 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
34 30 0:30 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
35 30 0:31 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn hybrid_is_detected() {
        let l = CgroupLayout::from_mountinfo(HYBRID).expect("layout");
        assert_eq!(l.mode, CgroupMode::Hybrid);
        assert_eq!(
            l.v1_mount("devices"),
            Some(Path::new("/sys/fs/cgroup/devices"))
        );
        assert_eq!(
            l.v1_mount("name=systemd"),
            Some(Path::new("/sys/fs/cgroup/systemd"))
        );
        assert_eq!(
            l.v2.as_ref().map(|v| v.mount_point.clone()),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        assert_eq!(
            l.v1_controllers(),
            ["cpu", "devices", "freezer", "name=systemd"]
        );
    }

    #[test]
    fn unified_with_only_named_v1_is_unified() {
        let text = "\
30 24 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate
40 24 0:40 / /run/lxc/named rw - cgroup cgroup rw,name=systemd
";
        let l = CgroupLayout::from_mountinfo(text).expect("layout");
        assert_eq!(l.mode, CgroupMode::Unified);
    }

    #[test]
    fn legacy_and_combined_controllers() {
        let text = "\
31 30 0:27 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
32 30 0:28 / /sys/fs/cgroup/devices rw - cgroup cgroup rw,devices
33 30 0:28 / /var/lib/bind/devices rw - cgroup cgroup rw,devices
";
        let l = CgroupLayout::from_mountinfo(text).expect("layout");
        assert_eq!(l.mode, CgroupMode::Legacy);
        assert_eq!(
            l.v1.len(),
            2,
            "bind mount of the same hierarchy counted once"
        );
        assert_eq!(
            l.v1_mount("cpuacct"),
            Some(Path::new("/sys/fs/cgroup/cpu,cpuacct"))
        );
        assert!(l.v2.is_none());
    }

    #[test]
    fn no_cgroups_is_none_and_garbage_is_skipped() {
        assert!(CgroupLayout::from_mountinfo("garbage\n24 1 0:1 / / rw - ext4 x rw\n").is_none());
    }

    #[test]
    fn octal_escapes_are_decoded() {
        assert_eq!(unescape_octal("/a\\040b"), "/a b");
        assert_eq!(unescape_octal("/plain"), "/plain");
        assert_eq!(unescape_octal("/trail\\04"), "/trail\\04");
    }
}
