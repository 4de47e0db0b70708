//! Containers on this node, from the runtimes' own state: runc (`/run/runc`),
//! containerd's runc (`/run/containerd/runc/<namespace>`), and crun
//! (`/run/crun`).
//!
//! Each container comes with its init pid (checked against the recorded
//! start time, so a recycled pid is never mistaken for the container), its
//! bundle and OCI config, its cgroup paths (read from the init's
//! `/proc/<pid>/cgroup`, which is right whatever the runtime or cgroup
//! driver), and the pod identity found in CRI annotations.
//!
//! Runtimes write state while we read: a container that exits mid-scan, a
//! half-written state file or a bundle that is gone is skipped with a debug
//! log and listed in [`Discovery::skipped`], never an error for the whole scan.

mod container;
mod pod;
mod state;

pub use container::{Container, ContainerCgroups, ContainerRef, RuntimeSource};
pub use pod::PodIdentity;
pub use state::SkipReason;

use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::cgroups::CgroupLayout;
use crate::procfs::Procfs;
use crate::root::HostRoot;

/// Where the runtimes keep their state (host paths).
#[derive(Debug, Clone)]
pub struct StateDirs {
    /// runc `--root` directories (`/run/runc`, plus any other a node uses).
    pub runc: Vec<PathBuf>,
    /// crun state directories.
    pub crun: Vec<PathBuf>,
    /// containerd's runc root: one sub-directory per containerd namespace.
    pub containerd_runc: PathBuf,
    /// containerd's v2 task state: `<namespace>/<id>/config.json` bundles.
    pub containerd_tasks: PathBuf,
}

impl Default for StateDirs {
    fn default() -> Self {
        Self {
            runc: vec![PathBuf::from("/run/runc")],
            crun: vec![PathBuf::from("/run/crun")],
            containerd_runc: PathBuf::from("/run/containerd/runc"),
            containerd_tasks: PathBuf::from("/run/containerd/io.containerd.runtime.v2.task"),
        }
    }
}

/// A container that was seen but left out of the scan, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// The state directory of the container.
    pub state_dir: PathBuf,
    /// Why it was left out (exited, half-written state, bundle gone...).
    pub reason: String,
    /// Whether the container may well still run (its state was caught
    /// half-written, its bundle or `/proc` entry unreadable): what is known
    /// of it is unknown this scan. `false` when it exited.
    #[serde(skip)]
    pub transient: bool,
}

/// The result of one discovery pass.
#[derive(Debug, Default)]
pub struct Discovery {
    /// Live containers, sorted by (runtime, namespace, id).
    pub containers: Vec<Container>,
    /// State directories that exist but could not be read (not root):
    /// reported so a partial scan never passes for a clean one.
    pub unreadable: Vec<crate::host::Unreadable>,
    /// Containers seen but not usable this time.
    pub skipped: Vec<Skipped>,
}

/// Find every live container under `root`.
pub fn discover(root: &HostRoot, layout: Option<&CgroupLayout>, dirs: &StateDirs) -> Discovery {
    let procfs = Procfs::new(root.clone());
    let ctx = state::Ctx {
        root,
        procfs: &procfs,
        layout,
        containerd_tasks: &dirs.containerd_tasks,
    };
    let mut out = Discovery::default();
    for d in &dirs.runc {
        for entry in out.subdirs(&root.join(d)) {
            out.push(state::read_runc(&ctx, &entry, RuntimeSource::Runc), &entry);
        }
    }
    for ns_dir in out.subdirs(&root.join(&dirs.containerd_runc)) {
        let ns = file_name(&ns_dir);
        for entry in out.subdirs(&ns_dir) {
            let src = RuntimeSource::ContainerdRunc {
                namespace: ns.clone(),
            };
            out.push(state::read_runc(&ctx, &entry, src), &entry);
        }
    }
    for d in &dirs.crun {
        for entry in out.subdirs(&root.join(d)) {
            out.push(state::read_crun(&ctx, &entry), &entry);
        }
    }
    out.containers.sort_by(|a, b| {
        (a.runtime.name(), a.runtime.namespace(), &a.id).cmp(&(
            b.runtime.name(),
            b.runtime.namespace(),
            &b.id,
        ))
    });
    out
}

impl Discovery {
    fn push(&mut self, r: Result<Container, state::SkipReason>, state_dir: &Path) {
        match r {
            Ok(c) => self.containers.push(c),
            Err(e) => {
                let transient = e.transient();
                let reason = e.chain();
                tracing::debug!(state_dir = %state_dir.display(), %reason, "container skipped");
                self.skipped.push(Skipped {
                    state_dir: state_dir.to_path_buf(),
                    reason,
                    transient,
                });
            }
        }
    }
}

impl Discovery {
    /// Sub-directories of `dir`, sorted. A missing `dir` has none (a
    /// runtime that is not installed has no state directory); one that
    /// cannot be read is recorded in [`Discovery::unreadable`].
    fn subdirs(&mut self, dir: &Path) -> Vec<PathBuf> {
        let rd = match fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) => {
                if e.kind() != std::io::ErrorKind::NotFound {
                    self.unreadable.push(crate::host::Unreadable {
                        what: "runtime state directory".into(),
                        path: Some(dir.to_path_buf()),
                        error: e.to_string(),
                    });
                }
                return Vec::new();
            }
        };
        let mut v: Vec<PathBuf> = rd
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.path())
            .collect();
        v.sort();
        v
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
