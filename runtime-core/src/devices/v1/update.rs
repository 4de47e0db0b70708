//! `update_devices`: the safe way to change a running container's v1 device
//! rules.
//!
//! A transition that never narrows is written with the workload running: by
//! construction no request allowed before and after is refused in between,
//! so a freeze would only add latency. A transition that must narrow (only
//! leaving allow-all mode for an allow list) is written with the container
//! frozen — and if the freeze fails, **nothing is written** and the error
//! says which tasks blocked it. This is the opposite of seed 000, where runc
//! logged the failed freeze and let systemd replay the list anyway.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::cgroups::freezer::{FreezeError, FreezeGuard, FreezeOptions, FreezeTarget};
use crate::devices::v1::apply::{Applied, ApplyError, V1DeviceCgroup};
use crate::devices::v1::emulator::Emulator;

/// Where a container's v1 cgroups are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V1Paths {
    /// Its directory in the devices hierarchy
    /// (`/sys/fs/cgroup/devices/...`).
    pub devices: PathBuf,
    /// Its directory in the freezer hierarchy, if it has one. Without it a
    /// narrowing transition is refused.
    pub freezer: Option<PathBuf>,
}

/// How `update_devices` behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateOptions {
    /// How long a freeze may take before the update is abandoned.
    pub freeze_deadline: Duration,
    /// Freeze around every update, narrowing or not (costs latency, buys
    /// nothing for a non-narrowing transition; for measurements and for
    /// callers that distrust the list they read).
    pub always_freeze: bool,
    /// Where to leave a crash-recovery marker for each freeze (the agent's
    /// `<state-dir>/frozen/`): if this process dies mid-update, the agent's
    /// next start thaws what the marker names. `None` writes no marker.
    pub marker_dir: Option<PathBuf>,
}

impl Default for UpdateOptions {
    fn default() -> Self {
        Self {
            freeze_deadline: Duration::from_secs(1),
            always_freeze: false,
            marker_dir: None,
        }
    }
}

/// The marker file for a freeze of `cgroup` in `dir`: one per cgroup and
/// process, so concurrent freezers never share (and remove) each other's
/// marker. Any `*.json` in the directory is recovered by the agent, which
/// reads the cgroup from the marker's content, not its name.
///
/// Nested layouts (kubepods slices) give cgroup paths far longer than a file
/// name may be (255 bytes): the name keeps the path's last 120 characters
/// (the container's scope) after a hash of the whole path, so it stays
/// unique and short.
pub fn freeze_marker_path(dir: &Path, cgroup: &Path) -> PathBuf {
    /// Longest readable part kept before the hash.
    const KEEP: usize = 120;
    let name: String = cgroup
        .to_string_lossy()
        .trim_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    // The hash keeps names unique where the mapping above or the cut would
    // not (`/a/b_c` and `/a_b/c` map alike).
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    cgroup.hash(&mut h);
    // `name` is ASCII: any byte index is a char boundary.
    let tail = &name[name.len().saturating_sub(KEEP)..];
    let name = format!("{:016x}-{tail}", h.finish());
    dir.join(format!("{name}-{}.json", std::process::id()))
}

/// What an update did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UpdateOutcome {
    /// The state before, the writes, and the state read back.
    pub applied: Applied,
    /// How long the freeze took when the writes ran frozen; `None` when the
    /// workload kept running.
    pub frozen_for: Option<Duration>,
}

/// Why an update did not happen (or did not finish cleanly).
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// Reading, writing or checking the device cgroup failed.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// The transition narrows and there is no freezer cgroup to make that
    /// invisible; nothing was written.
    #[error("device update not applied: it narrows ({reason}) and no freezer cgroup was given")]
    NoFreezer {
        /// Why the transition narrows.
        reason: String,
    },
    /// The freeze failed; nothing was written.
    #[error("device update not applied: the freeze it needs failed: {source}")]
    Freeze {
        /// Why a freeze was needed.
        reason: String,
        /// The freezer's error (names the blocking tasks on a timeout).
        #[source]
        source: FreezeError,
    },
    /// The writes were made but the cgroup could not be thawed: the
    /// container is still frozen (its marker, if any, is kept for recovery).
    #[error("device update applied but thawing failed; the container is still frozen: {0}")]
    Thaw(#[source] FreezeError),
    /// Both the writes (or their check) and the thaw failed: the list may
    /// be partly written **and** the container is still frozen.
    #[error(
        "device update failed: {apply}; and thawing failed too, the container is still frozen: {thaw}"
    )]
    ApplyAndThaw {
        /// Why the writes failed.
        apply: Box<ApplyError>,
        /// Why the thaw failed.
        #[source]
        thaw: Box<FreezeError>,
    },
}

/// Take a container's device cgroup to `target` with the default options;
/// see [`update_devices_with`].
pub fn update_devices(paths: &V1Paths, target: &Emulator) -> Result<UpdateOutcome, UpdateError> {
    update_devices_with(paths, target, &UpdateOptions::default())
}

/// Take a container's device cgroup to `target`: without a freeze when the
/// transition never narrows, frozen when it must narrow, and not at all when
/// that freeze fails.
pub fn update_devices_with(
    paths: &V1Paths,
    target: &Emulator,
    options: &UpdateOptions,
) -> Result<UpdateOutcome, UpdateError> {
    let cg = V1DeviceCgroup::new(&paths.devices);
    let plan = cg.plan(target)?;
    let reason = match plan.transition.reason() {
        Some(r) => r.to_string(),
        None if options.always_freeze => "freezing every update was requested".to_string(),
        None => {
            return Ok(UpdateOutcome {
                applied: cg.execute(plan, target)?,
                frozen_for: None,
            });
        }
    };
    let Some(freezer) = &paths.freezer else {
        return Err(UpdateError::NoFreezer { reason });
    };
    let freeze_options = FreezeOptions {
        marker: options
            .marker_dir
            .as_deref()
            .map(|d| freeze_marker_path(d, freezer)),
        ..FreezeOptions::default()
    };
    let guard = FreezeGuard::freeze_target(
        FreezeTarget::V1(freezer.clone()),
        options.freeze_deadline,
        &freeze_options,
    )
    .map_err(|source| UpdateError::Freeze { reason, source })?;
    let frozen_for = Some(guard.waited());
    // Plan again under the freeze: another writer may have changed the list
    // between the first read and the freeze.
    let applied = cg.plan(target).and_then(|plan| cg.execute(plan, target));
    let thawed = guard.thaw();
    match (applied, thawed) {
        (Ok(applied), Ok(())) => Ok(UpdateOutcome {
            applied,
            frozen_for,
        }),
        (Ok(_), Err(thaw)) => Err(UpdateError::Thaw(thaw)),
        (Err(apply), Ok(())) => Err(UpdateError::Apply(apply)),
        (Err(apply), Err(thaw)) => Err(UpdateError::ApplyAndThaw {
            apply: Box::new(apply),
            thaw: Box::new(thaw),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::v1::lines::{parse_write, ALLOW_FILE, DENY_FILE, LIST_FILE};
    use std::fs;

    fn target(writes: &[&str]) -> Emulator {
        let rules: Vec<_> = writes.iter().map(|w| parse_write(w).unwrap()).collect();
        Emulator::from_rules(&rules).unwrap()
    }

    #[test]
    fn narrowing_without_a_freezer_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(LIST_FILE), "a *:* rwm\n").unwrap();
        let paths = V1Paths {
            devices: dir.path().to_path_buf(),
            freezer: None,
        };
        let err = update_devices(&paths, &target(&["allow c 1:3 rwm"])).unwrap_err();
        assert!(matches!(err, UpdateError::NoFreezer { .. }), "{err}");
        assert!(!dir.path().join(ALLOW_FILE).exists());
        assert!(!dir.path().join(DENY_FILE).exists());
    }

    #[test]
    fn narrowing_with_a_missing_freezer_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(LIST_FILE), "a *:* rwm\n").unwrap();
        let paths = V1Paths {
            devices: dir.path().to_path_buf(),
            freezer: Some(dir.path().join("no-such-freezer")),
        };
        let err = update_devices(&paths, &target(&["allow c 1:3 rwm"])).unwrap_err();
        assert!(matches!(err, UpdateError::Freeze { .. }), "{err}");
        assert!(err.to_string().contains("no-such-freezer"), "{err}");
        assert!(!dir.path().join(DENY_FILE).exists());
    }

    /// A fake v1 freezer (plain files) in `dir`.
    fn fake_freezer(dir: &std::path::Path) {
        fs::create_dir_all(dir).unwrap();
        fs::write(dir.join("freezer.state"), "THAWED\n").unwrap();
        fs::write(dir.join("freezer.self_freezing"), "0\n").unwrap();
        fs::write(dir.join("tasks"), "").unwrap();
    }

    fn json_files(dir: &std::path::Path) -> Vec<PathBuf> {
        fs::read_dir(dir)
            .map(|r| {
                r.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "json"))
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn a_frozen_update_leaves_a_marker_while_frozen_and_removes_it_on_thaw() {
        use std::os::unix::fs::OpenOptionsExt;
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;

        let dir = tempfile::tempdir().unwrap();
        let devices = dir.path().join("devices");
        let freezer = dir.path().join("freezer");
        let markers = dir.path().join("state/frozen");
        fs::create_dir_all(&devices).unwrap();
        fake_freezer(&freezer);
        // devices.list is a FIFO served by a thread, so the test sees the
        // marker directory at the moment each read happens — the re-read
        // under the freeze among them.
        let list = devices.join(LIST_FILE);
        let made = std::process::Command::new("mkfifo")
            .arg(&list)
            .status()
            .unwrap();
        assert!(made.success());
        let stop = Arc::new(AtomicBool::new(false));
        let server = {
            let (stop, list, markers, state) = (
                stop.clone(),
                list.clone(),
                markers.clone(),
                freezer.join("freezer.state"),
            );
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    match fs::OpenOptions::new()
                        .write(true)
                        .custom_flags(libc::O_NONBLOCK)
                        .open(&list)
                    {
                        Ok(mut f) => {
                            let frozen = fs::read_to_string(&state).unwrap().trim() == "FROZEN";
                            let n = json_files(&markers).len();
                            if std::io::Write::write_all(&mut f, b"a *:* rwm\n").is_ok() {
                                seen.push((frozen, n));
                            }
                            drop(f);
                            // Let the reader finish and close before the
                            // next open, so one open serves one read.
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(1)),
                    }
                }
                seen
            })
        };
        let paths = V1Paths {
            devices: devices.clone(),
            freezer: Some(freezer.clone()),
        };
        let options = UpdateOptions {
            marker_dir: Some(markers.clone()),
            ..UpdateOptions::default()
        };
        // The writes land in plain files, so the read-back check fails;
        // the thaw works and the error is the apply error alone.
        let result = update_devices_with(&paths, &target(&["allow c 1:3 rwm"]), &options);
        stop.store(true, Ordering::SeqCst);
        let seen = server.join().unwrap();
        let err = result.unwrap_err();
        assert!(matches!(err, UpdateError::Apply(_)), "{err}");
        assert!(
            seen.contains(&(true, 1)),
            "no read saw the frozen cgroup with its marker: {seen:?}"
        );
        assert!(
            seen.iter().all(|&(frozen, n)| frozen == (n == 1)),
            "a marker exactly while frozen: {seen:?}"
        );
        assert!(json_files(&markers).is_empty(), "marker left after thaw");
        assert_eq!(
            fs::read_to_string(freezer.join("freezer.state")).unwrap(),
            "THAWED"
        );
    }

    #[test]
    fn both_failures_are_reported() {
        let e = UpdateError::ApplyAndThaw {
            apply: Box::new(ApplyError::from(crate::error::WrappedIoError {
                op: "write",
                path: PathBuf::from("/x/devices.deny"),
                source: std::io::Error::from_raw_os_error(libc::EINVAL),
            })),
            thaw: Box::new(FreezeError::Io(crate::error::WrappedIoError {
                op: "write",
                path: PathBuf::from("/f/freezer.state"),
                source: std::io::Error::from_raw_os_error(libc::EBUSY),
            })),
        };
        let s = e.to_string();
        assert!(
            s.contains("devices.deny") && s.contains("freezer.state"),
            "{s}"
        );
        assert!(s.contains("still frozen"), "{s}");
    }

    #[test]
    fn marker_names_stay_short_and_distinct_on_deep_cgroup_paths() {
        let dir = Path::new("/run/warden/frozen");
        let deep = |leaf: &str| {
            PathBuf::from(format!(
                "/sys/fs/cgroup/freezer/kubepods.slice/{}/{leaf}",
                "kubepods-burstable-pod0123456789abcdef0123456789abcdef.slice/".repeat(6)
            ))
        };
        let (a, b) = (
            deep("cri-containerd-aaaa.scope"),
            deep("cri-containerd-bbbb.scope"),
        );
        let (ma, mb) = (freeze_marker_path(dir, &a), freeze_marker_path(dir, &b));
        for m in [&ma, &mb] {
            let name = m.file_name().expect("a name").len();
            assert!(name <= 255, "{name} bytes: {}", m.display());
            assert!(m.starts_with(dir) && m.extension().is_some_and(|e| e == "json"));
        }
        assert_ne!(ma, mb, "different cgroups, different markers");
        assert_ne!(
            freeze_marker_path(dir, Path::new("/a/b_c")),
            freeze_marker_path(dir, Path::new("/a_b/c")),
            "paths that map alike"
        );
        // Short paths keep their readable name.
        let short = freeze_marker_path(dir, Path::new("/sys/fs/cgroup/freezer/c1"));
        assert!(
            short.to_string_lossy().contains("sys_fs_cgroup_freezer_c1"),
            "{}",
            short.display()
        );
        // A real file system refuses names over 255 bytes: the marker can be
        // written.
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::write(freeze_marker_path(tmp.path(), &a), "{}").expect("marker written");
    }
}
