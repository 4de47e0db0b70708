//! Reading one container's runtime state.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
use serde::Deserialize;

use super::{Container, ContainerCgroups, PodIdentity, RuntimeSource};
use crate::cgroups::CgroupLayout;
use crate::procfs::Procfs;
use crate::root::HostRoot;

/// Why a container's runtime state was passed over this scan (it exited,
/// its state is half-written, its bundle is gone). Reported under
/// `skipped`, never fatal.
#[derive(Debug, thiserror::Error)]
pub enum SkipReason {
    /// A state or config file could not be read.
    #[error("read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A state or config file does not parse (caught mid-write, or not the
    /// runtime's format).
    #[error("parse {path}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: serde_json::Error,
    },
    /// runc's state names no bundle (no `bundle=` label).
    #[error("{path}: no bundle label")]
    NoBundle {
        /// The state file.
        path: PathBuf,
    },
    /// No config.json could be read from any candidate (the bundle is gone).
    #[error("no readable config.json (bundle gone?): {tried}")]
    NoConfig {
        /// The candidates tried, with their errors.
        tried: String,
    },
    /// The init's cgroups could not be found.
    #[error("container {id}: cgroups unknown")]
    NoCgroups {
        /// The container.
        id: String,
    },
    /// The init exited and was not reaped yet.
    #[error("exited (pid {pid} is a zombie, not reaped yet)")]
    Zombie {
        /// The init pid.
        pid: i32,
    },
    /// The init's pid now belongs to another process.
    #[error("exited (pid {pid} now belongs to a process started at {now}, not {start})")]
    Recycled {
        /// The pid.
        pid: i32,
        /// The start time of the process holding it now.
        now: u64,
        /// The init's start time.
        start: u64,
    },
    /// The init is gone.
    #[error("exited (pid {pid} is gone)")]
    Gone {
        /// The pid.
        pid: i32,
    },
    /// The init's `/proc` entry could not be read.
    #[error("cannot read init pid {pid}")]
    Init {
        /// The pid.
        pid: i32,
        /// The error.
        #[source]
        source: crate::procfs::ProcfsError,
    },
}

impl SkipReason {
    /// Whether the container may still run (anything but an exited init).
    pub fn transient(&self) -> bool {
        !matches!(
            self,
            SkipReason::Zombie { .. } | SkipReason::Recycled { .. } | SkipReason::Gone { .. }
        )
    }

    /// The reason with its causes, as reports show it.
    pub fn chain(&self) -> String {
        crate::error::chain(self)
    }
}

/// What every reader needs.
pub(super) struct Ctx<'a> {
    pub root: &'a HostRoot,
    pub procfs: &'a Procfs,
    pub layout: Option<&'a CgroupLayout>,
    pub containerd_tasks: &'a Path,
}

/// The parts of runc's `state.json` (libcontainer's `State`) we use.
#[derive(Deserialize)]
struct RuncState {
    id: String,
    init_process_pid: i32,
    init_process_start: u64,
    #[serde(default)]
    config: RuncConfig,
    #[serde(default)]
    cgroup_paths: BTreeMap<String, PathBuf>,
}

#[derive(Deserialize, Default)]
struct RuncConfig {
    #[serde(default)]
    labels: Vec<String>,
    #[serde(default)]
    cgroups: RuncCgroups,
}

#[derive(Deserialize, Default)]
struct RuncCgroups {
    #[serde(default, rename = "Systemd")]
    systemd: bool,
}

/// crun's `status` file.
#[derive(Deserialize)]
struct CrunStatus {
    pid: i32,
    #[serde(rename = "process-start-time")]
    process_start_time: u64,
    #[serde(default)]
    bundle: Option<PathBuf>,
    #[serde(default, rename = "systemd-cgroup")]
    systemd_cgroup: bool,
}

/// A runc (or containerd-runc) container from `<dir>/state.json`.
pub(super) fn read_runc(
    ctx: &Ctx<'_>,
    dir: &Path,
    src: RuntimeSource,
) -> Result<Container, SkipReason> {
    let path = dir.join("state.json");
    let state: RuncState = read_json(&path)?;
    check_alive(ctx, state.init_process_pid, state.init_process_start)?;
    let mut bundle = state
        .config
        .labels
        .iter()
        .find_map(|l| l.strip_prefix("bundle="))
        .map(PathBuf::from);
    if bundle.is_none() {
        if let RuntimeSource::ContainerdRunc { namespace } = &src {
            bundle = Some(ctx.containerd_tasks.join(namespace).join(&state.id));
        }
    }
    let bundle = bundle.ok_or_else(|| SkipReason::NoBundle { path: path.clone() })?;
    let config = read_config(&[ctx.root.join(bundle.join("config.json"))])?;
    // runc records host paths itself; /proc/<pid>/cgroup is the fallback when
    // an older runc did not.
    let cgroups = cgroups_of(ctx, state.init_process_pid)
        .or_else(|| cgroups_from_runc(&state.cgroup_paths))
        .ok_or_else(|| SkipReason::NoCgroups {
            id: state.id.clone(),
        })?;
    Ok(build(
        state.id,
        src,
        state.init_process_pid,
        dir,
        Some(bundle),
        config,
        cgroups,
        state.config.cgroups.systemd,
    ))
}

/// A crun container from `<dir>/status`.
pub(super) fn read_crun(ctx: &Ctx<'_>, dir: &Path) -> Result<Container, SkipReason> {
    let path = dir.join("status");
    let status: CrunStatus = read_json(&path)?;
    check_alive(ctx, status.pid, status.process_start_time)?;
    let id = super::file_name(dir);
    // crun keeps its own copy of the config: it survives the bundle's removal.
    let mut candidates = vec![dir.join("config.json")];
    if let Some(b) = &status.bundle {
        candidates.push(ctx.root.join(b.join("config.json")));
    }
    let config = read_config(&candidates)?;
    let cgroups =
        cgroups_of(ctx, status.pid).ok_or_else(|| SkipReason::NoCgroups { id: id.clone() })?;
    Ok(build(
        id,
        RuntimeSource::Crun,
        status.pid,
        dir,
        status.bundle,
        config,
        cgroups,
        status.systemd_cgroup,
    ))
}

#[allow(clippy::too_many_arguments)]
fn build(
    id: String,
    runtime: RuntimeSource,
    pid: i32,
    state_dir: &Path,
    bundle: Option<PathBuf>,
    config: Spec,
    cgroups: ContainerCgroups,
    systemd_cgroup: bool,
) -> Container {
    let pod = config
        .annotations()
        .as_ref()
        .and_then(PodIdentity::from_annotations);
    Container {
        id,
        runtime,
        pid,
        state_dir: state_dir.to_path_buf(),
        bundle,
        config: Some(Box::new(config)),
        cgroups,
        systemd_cgroup,
        pod,
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, SkipReason> {
    let text = fs::read(path).map_err(|source| SkipReason::Read {
        path: path.to_path_buf(),
        source,
    })?;
    // A state file caught mid-write does not parse: skip this round.
    serde_json::from_slice(&text).map_err(|source| SkipReason::Parse {
        path: path.to_path_buf(),
        source,
    })
}

fn read_config(candidates: &[PathBuf]) -> Result<Spec, SkipReason> {
    let mut tried = Vec::new();
    for p in candidates {
        match fs::read(p) {
            Ok(bytes) => {
                return serde_json::from_slice(&bytes).map_err(|source| SkipReason::Parse {
                    path: p.clone(),
                    source,
                })
            }
            Err(e) => tried.push(format!("{}: {e}", p.display())),
        }
    }
    Err(SkipReason::NoConfig {
        tried: tried.join("; "),
    })
}

/// The init must still be the process the runtime started: same pid *and*
/// same start time, or the pid was recycled after the container exited.
fn check_alive(ctx: &Ctx<'_>, pid: i32, start: u64) -> Result<(), SkipReason> {
    match ctx.procfs.stat(pid).map(|s| (s.start_time, s.state)) {
        // An init that exited but was not reaped yet (its parent is slow,
        // or a pid 1 that never reaps) keeps its pid and start time: its
        // state letter says it is dead.
        Ok((t, state)) if t == start && state.is_dead() => Err(SkipReason::Zombie { pid }),
        Ok((t, _)) if t == start => Ok(()),
        Ok((now, _)) => Err(SkipReason::Recycled { pid, now, start }),
        Err(e) if e.is_gone() => Err(SkipReason::Gone { pid }),
        Err(source) => Err(SkipReason::Init { pid, source }),
    }
}

/// Host cgroup directories of `pid`, from `/proc/<pid>/cgroup` and the mount
/// layout.
fn cgroups_of(ctx: &Ctx<'_>, pid: i32) -> Option<ContainerCgroups> {
    let layout = ctx.layout?;
    let entries = ctx.procfs.cgroups(pid).ok()?;
    let mut out = ContainerCgroups::default();
    for e in entries {
        // A path that climbs (`/../..`, seen from another cgroup namespace)
        // is refused by `cgroups::paths`, never joined: the cgroups of such a
        // process are unknown rather than someone else's.
        if e.hierarchy == 0 && e.controllers.iter().all(String::is_empty) {
            if let Some(dir) = crate::cgroups::paths::v2_dir(layout, &e.path) {
                out.v2 = Some(dir);
                if out.path.is_none() || layout.v1.is_empty() {
                    out.path = Some(e.path.clone());
                }
            }
            continue;
        }
        for c in &e.controllers {
            if let Some(dir) = crate::cgroups::paths::v1_dir(layout, c, &e.path) {
                out.v1.insert(c.clone(), dir);
            }
            if c == "devices" {
                out.path = Some(e.path.clone());
            }
        }
    }
    Some(out)
}

fn cgroups_from_runc(paths: &BTreeMap<String, PathBuf>) -> Option<ContainerCgroups> {
    if paths.is_empty() {
        return None;
    }
    let mut out = ContainerCgroups::default();
    for (k, v) in paths {
        if k.is_empty() {
            out.v2 = Some(v.clone());
        } else {
            out.v1.insert(k.clone(), v.clone());
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `/proc/<pid>` (and its main task) in scheduler state `state`,
    /// started at clock tick `start`.
    fn process(root: &Path, pid: i32, state: char, start: u64) {
        let mut fields: Vec<String> = (3..=52).map(|i| i.to_string()).collect();
        fields[0] = state.to_string();
        fields[19] = start.to_string();
        let stat = format!("{pid} (sleep) {}\n", fields.join(" "));
        for dir in [format!("proc/{pid}"), format!("proc/{pid}/task/{pid}")] {
            fs::create_dir_all(root.join(&dir)).expect("mkdir");
            fs::write(root.join(dir).join("stat"), &stat).expect("stat");
        }
    }

    #[test]
    fn a_zombie_init_counts_as_exited_and_a_live_one_does_not() {
        let t = tempfile::tempdir().expect("tempdir");
        let root = HostRoot::new(t.path());
        let procfs = Procfs::new(root.clone());
        let ctx = Ctx {
            root: &root,
            procfs: &procfs,
            layout: None,
            containerd_tasks: Path::new("/none"),
        };
        process(t.path(), 10, 'Z', 500);
        process(t.path(), 11, 'S', 600);
        let err = check_alive(&ctx, 10, 500).expect_err("zombie");
        assert!(matches!(err, SkipReason::Zombie { pid: 10 }), "{err}");
        assert!(check_alive(&ctx, 11, 600).is_ok());
        let err = check_alive(&ctx, 11, 601).expect_err("recycled");
        assert!(
            matches!(
                err,
                SkipReason::Recycled {
                    pid: 11,
                    now: 600,
                    start: 601
                }
            ),
            "{err}"
        );
        assert!(err.chain().starts_with("exited"), "{}", err.chain());
        let err = check_alive(&ctx, 12, 600).expect_err("gone");
        assert!(matches!(err, SkipReason::Gone { pid: 12 }), "{err}");
    }
}
