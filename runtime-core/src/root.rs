//! The injectable filesystem root every reader goes through.

use std::path::{Path, PathBuf};

/// A filesystem root under which host paths (`/proc`, `/sys`, `/run`, `/dev`)
/// are read.
///
/// On a real node this is `/`; tests point it at a tempdir fixture laid out
/// like a host. Paths given to [`HostRoot::join`] are *host* paths (absolute,
/// as the kernel reports them in `mountinfo`), and are re-rooted here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRoot(PathBuf);

impl HostRoot {
    /// The real root of this machine.
    pub fn real() -> Self {
        Self(PathBuf::from("/"))
    }

    /// A root at `path` (a fixture directory in tests, or a mounted host root
    /// inside the agent's container).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self(path.into())
    }

    /// The root directory itself.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Whether this is the machine's real `/`.
    pub fn is_real(&self) -> bool {
        self.0 == Path::new("/")
    }

    /// Re-root an absolute host path (`/proc/self/mountinfo`) under this root.
    ///
    /// `..` components are resolved lexically and never climb above this
    /// root, so a fixture or mounted root is never escaped. On the real `/`
    /// that confines nothing: cgroup paths read from `/proc` are checked
    /// for `..` where they are parsed (`cgroups::paths`).
    pub fn join(&self, host_path: impl AsRef<Path>) -> PathBuf {
        use std::path::Component;
        let mut rel = PathBuf::new();
        for c in host_path.as_ref().components() {
            match c {
                Component::Normal(n) => rel.push(n),
                Component::ParentDir => {
                    rel.pop();
                }
                Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            }
        }
        self.0.join(rel)
    }
}

/// Whether this process runs with effective uid 0 (needed to read other
/// processes' fd tables, container state and to write cgroups).
pub fn running_as_root() -> bool {
    nix::unistd::geteuid().is_root()
}

impl Default for HostRoot {
    fn default() -> Self {
        Self::real()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_reroots_absolute_paths() {
        let r = HostRoot::new("/tmp/fx");
        assert_eq!(
            r.join("/proc/self/mountinfo"),
            PathBuf::from("/tmp/fx/proc/self/mountinfo")
        );
        assert_eq!(r.join("sys/fs"), PathBuf::from("/tmp/fx/sys/fs"));
        assert_eq!(
            HostRoot::real().join("/dev/char"),
            PathBuf::from("/dev/char")
        );
        assert!(HostRoot::real().is_real());
        assert_eq!(
            r.join("/sys/fs/cgroup/devices/../../../../etc/x"),
            PathBuf::from("/tmp/fx/etc/x")
        );
        assert_eq!(r.join("/../.."), PathBuf::from("/tmp/fx"));
        assert!(!r.is_real());
    }
}
