//! The freeze-or-abort guard: freeze a cgroup with a deadline, thaw it when
//! the guard goes away (normal return, `?` error, or panic unwinding).
//!
//! Seed 000: runc tried to freeze a container before systemd replayed its
//! device rules, gave up after ~2 s of `FREEZING`, *logged and carried on*,
//! and the workload saw EPERM on `/dev/urandom`. The guard here makes the
//! failure impossible to ignore: [`FreezeGuard::freeze`] either returns a
//! guard for a cgroup that is `FROZEN`, or an error that names the tasks that
//! kept it from freezing, with the cgroup already thawed again.
//!
//! Rules the guard keeps:
//! - a cgroup this guard froze is thawed on every path out, and is never left
//!   `FREEZING` after a failed attempt;
//! - a cgroup that was already frozen by someone else (`freezer.self_freezing`
//!   on v1, `cgroup.freeze` on v2) is left as it was found;
//! - optionally, a marker file records the freeze before it starts and is
//!   removed once thawed, so that after a crash [`recover_marker`] can thaw
//!   what a dead process left frozen.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{IoContext, WrappedIoError};
use crate::procfs::{Procfs, TaskInfo};
use crate::root::HostRoot;

/// The cgroup to freeze, and which freezer interface it has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "version", content = "cgroup", rename_all = "lowercase")]
pub enum FreezeTarget {
    /// A cgroup directory in the v1 freezer hierarchy
    /// (`/sys/fs/cgroup/freezer/...`): `freezer.state`.
    V1(PathBuf),
    /// A cgroup v2 directory: `cgroup.freeze` and `cgroup.events`.
    V2(PathBuf),
}

impl FreezeTarget {
    /// The cgroup directory.
    pub fn dir(&self) -> &Path {
        match self {
            FreezeTarget::V1(p) | FreezeTarget::V2(p) => p,
        }
    }
}

impl std::fmt::Display for FreezeTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FreezeTarget::V1(p) => write!(f, "v1 {}", p.display()),
            FreezeTarget::V2(p) => write!(f, "v2 {}", p.display()),
        }
    }
}

/// Options beyond the deadline.
#[derive(Debug, Clone, Default)]
pub struct FreezeOptions {
    /// The target as the marker records it: its host path (not re-rooted),
    /// so that whoever recovers it re-roots it under its own root. `None`
    /// records the target as frozen.
    pub record_as: Option<FreezeTarget>,
    /// A marker file to write before freezing and remove after thawing (for
    /// example `/run/warden/frozen/<container>.json`). Its parent directory
    /// is created when missing.
    pub marker: Option<PathBuf>,
    /// Where to read task facts for the error report; the real `/proc` by
    /// default.
    pub procfs: Procfs,
}

/// Why a freeze did not happen, or a thaw failed.
#[derive(Debug, thiserror::Error)]
pub enum FreezeError {
    /// Reading or writing a freezer file (or the marker) failed.
    #[error(transparent)]
    Io(#[from] WrappedIoError),
    /// A freezer file held something other than the states we know.
    #[error("{path}: unexpected freezer content {value:?}")]
    UnexpectedState {
        /// The file read.
        path: PathBuf,
        /// What it held.
        value: String,
    },
    /// The cgroup did not reach `FROZEN` before the deadline.
    #[error("{0}")]
    Timeout(Box<FreezeTimeout>),
    /// The marker names a cgroup that could not be thawed.
    #[error("marker {marker}: {reason}")]
    Marker {
        /// The marker file.
        marker: PathBuf,
        /// What was wrong with it.
        reason: String,
    },
}

/// The details of a freeze that did not complete in time.
#[derive(Debug, Clone, Serialize)]
pub struct FreezeTimeout {
    /// The cgroup directory.
    pub cgroup: PathBuf,
    /// How long we tried.
    pub waited: Duration,
    /// The state seen last (`FREEZING`).
    pub state: String,
    /// The tasks that most likely kept it from freezing: those in
    /// uninterruptible sleep that stayed there after the thaw, or, when
    /// there are none, every task not known to be frozen.
    pub blockers: Vec<TaskInfo>,
    /// How many tasks the cgroup (and its descendants) held.
    pub tasks_seen: usize,
    /// Whether this guard thawed the cgroup again (`false` when the freeze
    /// was someone else's to undo, or the thaw failed).
    pub thawed: bool,
    /// Why the thaw failed, if it did.
    pub thaw_error: Option<String>,
}

impl std::fmt::Display for FreezeTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cannot freeze {}: still {} after {:?} ({}); {}",
            self.cgroup.display(),
            self.state,
            self.waited,
            thaw_note(self.thawed, self.thaw_error.as_deref()),
            describe_blockers(&self.blockers, self.tasks_seen)
        )
    }
}

fn thaw_note(thawed: bool, thaw_error: Option<&str>) -> String {
    match (thawed, thaw_error) {
        (true, _) => "thawed again".to_owned(),
        (false, Some(e)) => format!("THAW FAILED: {e}"),
        (false, None) => "left as found: the freeze was not ours".to_owned(),
    }
}

fn describe_blockers(blockers: &[TaskInfo], tasks_seen: usize) -> String {
    const SHOWN: usize = 8;
    if blockers.is_empty() {
        return format!("no blocking task identified among {tasks_seen} tasks");
    }
    let mut s = format!("blocked by {} of {tasks_seen} tasks: ", blockers.len());
    let shown: Vec<String> = blockers
        .iter()
        .take(SHOWN)
        .map(ToString::to_string)
        .collect();
    s.push_str(&shown.join("; "));
    if blockers.len() > SHOWN {
        s.push_str(&format!("; and {} more", blockers.len() - SHOWN));
    }
    s
}

/// A frozen cgroup. Thaws it when dropped, unless it was already frozen
/// before this guard was made.
#[derive(Debug)]
#[must_use = "dropping the guard thaws the cgroup at once"]
pub struct FreezeGuard {
    target: FreezeTarget,
    /// We requested the freeze (it was not already requested), so we undo it.
    owned: bool,
    /// Still frozen by us: the drop must thaw.
    active: bool,
    marker: Option<PathBuf>,
    /// An exclusive flock on the marker, held for the guard's life: it is
    /// how any other process (in any PID namespace) tells a live freeze
    /// from a leftover. Declared after `marker` so it is released only
    /// after the drop has thawed and removed the marker.
    marker_lock: Option<nix::fcntl::Flock<fs::File>>,
    waited: Duration,
}

/// The longest sleep between two looks at the state.
const MAX_POLL: Duration = Duration::from_millis(10);
/// How often to repeat the freeze request while the cgroup is `FREEZING`.
/// On v1 each write of `FROZEN` sends the freezer's wake-up to every task
/// again, which catches tasks that were busy the first time (runc repeats
/// its write for the same reason).
const REWRITE_EVERY: Duration = Duration::from_millis(10);
/// How often a failed thaw write is retried before giving up.
const THAW_ATTEMPTS: u32 = 3;

impl FreezeGuard {
    /// Freeze the v1 freezer cgroup at `v1_freezer_cgroup_dir`
    /// (`/sys/fs/cgroup/freezer/<path>`), waiting at most `deadline` for it
    /// to reach `FROZEN`.
    ///
    /// On timeout the cgroup is thawed again and the error names the tasks
    /// that blocked it. A `deadline` of zero makes a single attempt.
    pub fn freeze(
        v1_freezer_cgroup_dir: &Path,
        deadline: Duration,
    ) -> Result<FreezeGuard, FreezeError> {
        Self::freeze_target(
            FreezeTarget::V1(v1_freezer_cgroup_dir.to_path_buf()),
            deadline,
            &FreezeOptions::default(),
        )
    }

    /// Freeze the cgroup v2 directory `v2_cgroup_dir` (`cgroup.freeze`),
    /// with the same contract as [`FreezeGuard::freeze`].
    pub fn freeze_v2(v2_cgroup_dir: &Path, deadline: Duration) -> Result<FreezeGuard, FreezeError> {
        Self::freeze_target(
            FreezeTarget::V2(v2_cgroup_dir.to_path_buf()),
            deadline,
            &FreezeOptions::default(),
        )
    }

    /// Freeze `target`, with options (a crash-recovery marker).
    pub fn freeze_target(
        target: FreezeTarget,
        deadline: Duration,
        options: &FreezeOptions,
    ) -> Result<FreezeGuard, FreezeError> {
        let start = Instant::now();
        let already_requested = self_freeze_requested(&target)?;
        let owned = !already_requested;
        let (marker, marker_lock) = match (&options.marker, owned) {
            (Some(m), true) => {
                let recorded = options.record_as.as_ref().unwrap_or(&target);
                let lock = write_marker(m, recorded, &options.procfs)?;
                (Some(m.clone()), Some(lock))
            }
            _ => (None, None),
        };
        // From here on the guard exists, so every early return (`?`) thaws
        // what we asked to freeze.
        let mut guard = FreezeGuard {
            target,
            owned,
            active: owned,
            marker,
            marker_lock,
            waited: Duration::ZERO,
        };
        if owned {
            guard.request(true)?;
        }
        let mut pause = Duration::from_micros(100);
        let mut last_request = Instant::now();
        let last_state = loop {
            let state = effective_state(&guard.target)?;
            if state == State::Frozen {
                guard.waited = start.elapsed();
                return Ok(guard);
            }
            let elapsed = start.elapsed();
            if elapsed >= deadline {
                break state;
            }
            thread::sleep(pause.min(deadline - elapsed));
            pause = (pause * 2).min(MAX_POLL);
            if owned && last_request.elapsed() >= REWRITE_EVERY {
                guard.request(true)?;
                last_request = Instant::now();
            }
        };
        Err(guard.fail(start.elapsed(), last_state, &options.procfs))
    }

    /// The cgroup this guard holds.
    pub fn target(&self) -> &FreezeTarget {
        &self.target
    }

    /// Whether this guard froze the cgroup (and will thaw it). `false` when
    /// it was already frozen by someone else, who keeps the duty to thaw.
    pub fn owned(&self) -> bool {
        self.owned
    }

    /// How long the freeze took to complete.
    pub fn waited(&self) -> Duration {
        self.waited
    }

    /// For crash tests: what the world sees when the owner dies holding the
    /// freeze. The marker's lock is released (the kernel does that for a
    /// dead process), and nothing is thawed.
    #[doc(hidden)]
    pub fn simulate_crash(mut self) {
        drop(self.marker_lock.take());
        std::mem::forget(self);
    }

    /// Thaw now and report failure (the drop can only log it).
    pub fn thaw(mut self) -> Result<(), FreezeError> {
        self.thaw_inner()
    }

    /// Build the timeout error: look at the tasks while still `FREEZING`,
    /// thaw, then look again to tell real blockers from tasks frozen in place.
    fn fail(&mut self, waited: Duration, last: State, procfs: &Procfs) -> FreezeError {
        let snapshot = procfs
            .cgroup_tasks(self.target.dir(), true)
            .unwrap_or_default();
        let (thawed, thaw_error) = if self.owned {
            match self.thaw_inner() {
                Ok(()) => (true, None),
                Err(e) => (false, Some(e.to_string())),
            }
        } else {
            (false, None)
        };
        let blockers = pick_blockers(procfs, &snapshot);
        FreezeError::Timeout(Box::new(FreezeTimeout {
            cgroup: self.target.dir().to_path_buf(),
            waited,
            state: last.word(&self.target).to_owned(),
            blockers,
            tasks_seen: snapshot.len(),
            thawed,
            thaw_error,
        }))
    }

    fn request(&self, freeze: bool) -> Result<(), FreezeError> {
        let (path, value) = match &self.target {
            FreezeTarget::V1(d) => (
                d.join("freezer.state"),
                if freeze { "FROZEN" } else { "THAWED" },
            ),
            FreezeTarget::V2(d) => (d.join("cgroup.freeze"), if freeze { "1" } else { "0" }),
        };
        // Never created: a freezer file that is not there is an error, not
        // a new file in whatever directory a marker named.
        let mut f = fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .with_path("open", &path)?;
        io::Write::write_all(&mut f, value.as_bytes()).with_path("write", &path)?;
        Ok(())
    }

    fn thaw_inner(&mut self) -> Result<(), FreezeError> {
        if !self.active {
            return Ok(());
        }
        let mut last = None;
        for _ in 0..THAW_ATTEMPTS {
            match self.request(false) {
                Ok(()) => {
                    last = None;
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        if let Some(e) = last {
            // Keep the marker: it is how a later run finds this cgroup.
            return Err(e);
        }
        self.active = false;
        if let Some(m) = self.marker.take() {
            match fs::remove_file(&m) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(FreezeError::Io(WrappedIoError {
                        op: "remove",
                        path: m,
                        source,
                    }))
                }
            }
        }
        Ok(())
    }
}

impl Drop for FreezeGuard {
    fn drop(&mut self) {
        if let Err(e) = self.thaw_inner() {
            tracing::error!(cgroup = %self.target, error = %e, "thaw failed; the marker (if any) is kept for recovery");
        }
    }
}

/// The effective freezer state of a cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Thawed,
    Freezing,
    Frozen,
}

impl State {
    fn word(self, target: &FreezeTarget) -> &'static str {
        match (self, target) {
            (State::Thawed, FreezeTarget::V1(_)) => "THAWED",
            (State::Freezing, FreezeTarget::V1(_)) => "FREEZING",
            (State::Frozen, FreezeTarget::V1(_)) => "FROZEN",
            // v2 has no FREEZING: `cgroup.freeze` is 1 and `frozen` still 0.
            (State::Thawed, FreezeTarget::V2(_)) => "thawed (frozen 0)",
            (State::Freezing, FreezeTarget::V2(_)) => "freezing (cgroup.freeze 1, frozen 0)",
            (State::Frozen, FreezeTarget::V2(_)) => "frozen (frozen 1)",
        }
    }
}

fn read_trimmed(path: &Path) -> Result<String, FreezeError> {
    Ok(fs::read_to_string(path)
        .with_path("read", path)?
        .trim()
        .to_owned())
}

/// Whether this cgroup itself has a freeze requested (not merely inherited
/// from a frozen parent): `freezer.self_freezing` on v1, `cgroup.freeze` on
/// v2. That request is what a guard would set, so it is what decides whether
/// the guard owns the freeze.
fn self_freeze_requested(target: &FreezeTarget) -> Result<bool, FreezeError> {
    let path = match target {
        FreezeTarget::V1(d) => d.join("freezer.self_freezing"),
        FreezeTarget::V2(d) => d.join("cgroup.freeze"),
    };
    match read_trimmed(&path)?.as_str() {
        "0" => Ok(false),
        "1" => Ok(true),
        other => Err(FreezeError::UnexpectedState {
            path,
            value: other.to_owned(),
        }),
    }
}

/// On v1, reading `freezer.state` is also what moves a cgroup from
/// `FREEZING` to `FROZEN` once every task froze; on v2 the kernel updates
/// `cgroup.events` by itself.
fn effective_state(target: &FreezeTarget) -> Result<State, FreezeError> {
    match target {
        FreezeTarget::V1(d) => {
            let path = d.join("freezer.state");
            match read_trimmed(&path)?.as_str() {
                "THAWED" => Ok(State::Thawed),
                "FREEZING" => Ok(State::Freezing),
                "FROZEN" => Ok(State::Frozen),
                other => Err(FreezeError::UnexpectedState {
                    path,
                    value: other.to_owned(),
                }),
            }
        }
        FreezeTarget::V2(d) => {
            let path = d.join("cgroup.events");
            let text = read_trimmed(&path)?;
            let frozen = text.lines().find_map(|l| l.strip_prefix("frozen "));
            match frozen {
                Some("1") => Ok(State::Frozen),
                Some("0") => Ok(State::Freezing),
                _ => Err(FreezeError::UnexpectedState { path, value: text }),
            }
        }
    }
}

/// Since Linux 6.1 a task frozen in place (asleep in a freezable wait) reads
/// `D`, like the uninterruptible sleeper that blocks the freezer. After the
/// thaw the frozen ones wake up; the blockers stay in `D`. So: tasks in `D`
/// before and after the thaw first; failing that, those in `D` before; failing
/// that, every task not parked in the freezer's own wait.
fn pick_blockers(procfs: &Procfs, snapshot: &[TaskInfo]) -> Vec<TaskInfo> {
    let candidates: Vec<&TaskInfo> = snapshot
        .iter()
        .filter(|t| t.wchan.as_deref() != Some("__refrigerator"))
        .collect();
    let still_blocked: Vec<TaskInfo> = candidates
        .iter()
        .filter(|t| t.state.is_uninterruptible())
        .filter_map(|t| procfs.task(t.pid, t.tid).ok())
        .filter(|now| now.state.is_uninterruptible())
        .collect();
    if !still_blocked.is_empty() {
        return still_blocked;
    }
    let were_blocked: Vec<TaskInfo> = candidates
        .iter()
        .filter(|t| t.state.is_uninterruptible())
        .map(|t| (*t).clone())
        .collect();
    if !were_blocked.is_empty() {
        return were_blocked;
    }
    candidates.into_iter().cloned().collect()
}

/// What a marker file records: enough to thaw the cgroup and to tell whether
/// the process that froze it is still alive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FreezeMarker {
    /// The frozen cgroup.
    pub target: FreezeTarget,
    /// The pid of the process that froze it.
    pub owner_pid: i32,
    /// That process's start time (clock ticks after boot), which tells a
    /// live owner from an unrelated process that reuses its pid.
    pub owner_start: u64,
}

/// Write the marker and return the flock held on it. The file is created
/// exclusively under a temporary name, locked, written and renamed into
/// place, so that it is never seen unlocked or torn while its owner lives.
fn write_marker(
    path: &Path,
    target: &FreezeTarget,
    procfs: &Procfs,
) -> Result<nix::fcntl::Flock<fs::File>, FreezeError> {
    use nix::fcntl::{Flock, FlockArg};
    let pid = std::process::id() as i32;
    let owner_start = procfs.start_time(pid).map_err(|e| FreezeError::Marker {
        marker: path.to_path_buf(),
        reason: format!("cannot read our own start time: {e}"),
    })?;
    let marker = FreezeMarker {
        target: target.clone(),
        owner_pid: pid,
        owner_start,
    };
    let text = serde_json::to_string(&marker).map_err(|e| FreezeError::Marker {
        marker: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).with_path("create dir", parent)?;
    }
    let tmp = path.with_extension(format!("{pid}.{owner_start}.tmp"));
    let file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .with_path("create", &tmp)?;
    let mut lock = Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, e)| {
        let _ = fs::remove_file(&tmp);
        FreezeError::Marker {
            marker: tmp.clone(),
            reason: format!("cannot lock a new marker: {e}"),
        }
    })?;
    let written = io::Write::write_all(&mut *lock, text.as_bytes())
        .with_path("write", &tmp)
        .and_then(|()| fs::rename(&tmp, path).with_path("rename", path));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e.into());
    }
    Ok(lock)
}

/// Recover every marker (`*.json`) in `dir`: thaw what dead owners left
/// frozen and drop markers of deleted cgroups (see [`recover_marker`]).
/// Returns each marker with what was done, for the caller to log. Safe to
/// run at every scan, by any process: a freeze whose owner lives is never
/// touched.
pub fn sweep_markers(
    dir: &Path,
    procfs: &Procfs,
    root: &HostRoot,
) -> Vec<(PathBuf, Result<Recovery, FreezeError>)> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let p = e.path();
        if p.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let r = recover_marker(&p, procfs, root);
        out.push((p, r));
    }
    out
}

/// Log what [`sweep_markers`] did (a thaw is a warning: something died
/// holding a freeze). Returns how many cgroups were thawed.
pub fn log_sweep(results: &[(PathBuf, Result<Recovery, FreezeError>)]) -> usize {
    let mut thawed = 0;
    for (p, r) in results {
        match r {
            Ok(Recovery::Thawed(t)) => {
                tracing::warn!(cgroup = %t, marker = %p.display(), "thawed a cgroup left frozen");
                thawed += 1;
            }
            Ok(Recovery::CgroupGone(t)) => {
                tracing::info!(cgroup = %t, marker = %p.display(), "removed the marker of a deleted cgroup");
            }
            Ok(Recovery::OwnerAlive { pid }) => {
                tracing::debug!(pid, marker = %p.display(), "a live process holds this freeze; left alone");
            }
            Err(e) => {
                tracing::error!(marker = %p.display(), error = %crate::error::chain(e), "cannot recover a freeze marker")
            }
        }
    }
    thawed
}

/// What [`recover_marker`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery {
    /// The owner is gone (or is this process): the cgroup was thawed and the
    /// marker removed.
    Thawed(FreezeTarget),
    /// The owner still runs; its guard will thaw. Nothing was touched.
    OwnerAlive {
        /// The owner's pid.
        pid: i32,
    },
    /// The owner is gone and so is the cgroup (the container was deleted):
    /// nothing to thaw; the marker was removed.
    CgroupGone(FreezeTarget),
}

/// Whether the owner of a marker still holds its freeze.
///
/// The owner holds an exclusive flock on the marker for the guard's life,
/// and a lock is released when its holder dies, whatever PID or time
/// namespace either side is in: a lock held means alive. A free lock means
/// dead, unless the marker predates the lock (written by an older Warden),
/// in which case the pid and start time decide, and anything but "process
/// gone" counts as alive (a `/proc` read error must never thaw a live
/// freeze).
fn owner_alive(
    marker: &Path,
    m: &FreezeMarker,
    procfs: &Procfs,
) -> Result<Option<nix::fcntl::Flock<fs::File>>, FreezeError> {
    use nix::fcntl::{Flock, FlockArg};
    let file = fs::File::open(marker).with_path("open", marker)?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(held) => {
            let me = std::process::id() as i32;
            // Our own marker without our lock is a leftover (a guard whose
            // thaw failed and which was dropped).
            if m.owner_pid == me {
                return Ok(Some(held));
            }
            match procfs.start_time(m.owner_pid) {
                Ok(s) if s == m.owner_start => Ok(None),
                Ok(_) => Ok(Some(held)),
                Err(e) if e.is_gone() => Ok(Some(held)),
                Err(_) => Ok(None),
            }
        }
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, e)) => Err(FreezeError::Marker {
            marker: marker.to_path_buf(),
            reason: format!("cannot test the owner's lock: {e}"),
        }),
    }
}

/// A marker's target, recorded as a host path (or, by an older Warden, as
/// the path under its own root), under `root`; only cgroup directories.
fn recovery_target(
    marker: &Path,
    t: &FreezeTarget,
    root: &HostRoot,
) -> Result<FreezeTarget, FreezeError> {
    let host = t.dir();
    if !host.starts_with("/sys/fs/cgroup/") {
        return Err(FreezeError::Marker {
            marker: marker.to_path_buf(),
            reason: format!("{} is not a cgroup directory: not touched", host.display()),
        });
    }
    Ok(match t {
        FreezeTarget::V1(p) => FreezeTarget::V1(root.join(p)),
        FreezeTarget::V2(p) => FreezeTarget::V2(root.join(p)),
    })
}

/// Whether the cgroup at `dir` (under `root`, recorded as `host`) is gone:
/// its directory does not exist while its hierarchy is mounted. A path that
/// cannot be looked at, or a hierarchy that is not there (unmounted for a
/// moment, another root), is not gone.
fn cgroup_gone(dir: &Path, host: &Path, root: &HostRoot) -> bool {
    let missing =
        matches!(fs::symlink_metadata(dir), Err(e) if e.kind() == io::ErrorKind::NotFound);
    // `/sys/fs/cgroup/<hierarchy>`: the first five components.
    let hierarchy: PathBuf = host.components().take(5).collect();
    missing && root.join(&hierarchy).is_dir()
}

/// Thaw the cgroup a marker names when the process that froze it no longer
/// holds it (see [`owner_alive`]), and remove the marker; a marker whose
/// cgroup is gone is just removed. `root` is the host root of the caller:
/// markers record host paths. Run by every scan and at the agent's start
/// and stop.
pub fn recover_marker(
    marker: &Path,
    procfs: &Procfs,
    root: &HostRoot,
) -> Result<Recovery, FreezeError> {
    let text = match fs::read_to_string(marker) {
        Ok(t) => t,
        // Its owner thawed and removed it meanwhile: nothing left to do.
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(Recovery::OwnerAlive { pid: 0 });
        }
        Err(e) => {
            return Err(FreezeError::Io(WrappedIoError {
                op: "read",
                path: marker.to_path_buf(),
                source: e,
            }))
        }
    };
    let m: FreezeMarker = serde_json::from_str(&text).map_err(|e| FreezeError::Marker {
        marker: marker.to_path_buf(),
        reason: format!("unreadable marker: {e}"),
    })?;
    let target = recovery_target(marker, &m.target, root)?;
    // Held until the thaw is done: two sweepers never thaw one marker.
    let Some(_held) = owner_alive(marker, &m, procfs)? else {
        return Ok(Recovery::OwnerAlive { pid: m.owner_pid });
    };
    if cgroup_gone(target.dir(), m.target.dir(), root) {
        fs::remove_file(marker).with_path("remove", marker)?;
        return Ok(Recovery::CgroupGone(m.target));
    }
    // A guard that owns the freeze, with the marker attached: thawing it
    // through the usual path removes the marker only once the thaw worked.
    let mut guard = FreezeGuard {
        target: target.clone(),
        owned: true,
        active: true,
        marker: Some(marker.to_path_buf()),
        marker_lock: None,
        waited: Duration::ZERO,
    };
    guard.thaw_inner()?;
    Ok(Recovery::Thawed(target))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::root::HostRoot;

    /// A fake v1 freezer directory: plain files, so every write "succeeds"
    /// at once. Tests the protocol, not the kernel (tests/freezer_real.rs
    /// does that).
    fn fake_v1(state: &str, self_freezing: &str) -> tempfile::TempDir {
        let d = tempfile::tempdir().expect("tempdir");
        fs::write(d.path().join("freezer.state"), state).expect("write");
        fs::write(d.path().join("freezer.self_freezing"), self_freezing).expect("write");
        fs::write(d.path().join("tasks"), "").expect("write");
        d
    }

    fn read(p: &Path) -> String {
        fs::read_to_string(p).expect("read").trim().to_owned()
    }

    #[test]
    fn owned_freeze_is_thawed_on_drop() {
        let d = fake_v1("THAWED\n", "0\n");
        let g = FreezeGuard::freeze(d.path(), Duration::from_millis(50)).expect("freeze");
        assert!(g.owned());
        assert_eq!(read(&d.path().join("freezer.state")), "FROZEN");
        drop(g);
        assert_eq!(read(&d.path().join("freezer.state")), "THAWED");
    }

    #[test]
    fn a_freeze_requested_by_someone_else_is_left_alone() {
        let d = fake_v1("FROZEN\n", "1\n");
        let g = FreezeGuard::freeze(d.path(), Duration::from_millis(50)).expect("freeze");
        assert!(!g.owned());
        drop(g);
        assert_eq!(
            read(&d.path().join("freezer.state")),
            "FROZEN",
            "not ours to thaw"
        );
    }

    #[test]
    fn garbage_in_the_state_file_is_an_error_and_thaws() {
        let d = fake_v1("THAWED\n", "0\n");
        // A directory where the state file should be makes the write fail.
        fs::remove_file(d.path().join("freezer.state")).expect("rm");
        fs::create_dir(d.path().join("freezer.state")).expect("mkdir");
        let e = FreezeGuard::freeze(d.path(), Duration::ZERO).expect_err("must fail");
        assert!(matches!(e, FreezeError::Io(_)), "{e}");
        let d = fake_v1("THAWED\n", "maybe\n");
        let e = FreezeGuard::freeze(d.path(), Duration::ZERO).expect_err("must fail");
        assert!(e.to_string().contains("maybe"), "{e}");
    }

    #[test]
    fn v2_protocol_uses_cgroup_freeze() {
        let d = tempfile::tempdir().expect("tempdir");
        fs::write(d.path().join("cgroup.freeze"), "0\n").expect("write");
        fs::write(d.path().join("cgroup.events"), "populated 1\nfrozen 1\n").expect("write");
        let g = FreezeGuard::freeze_v2(d.path(), Duration::from_millis(50)).expect("freeze");
        assert!(g.owned());
        assert_eq!(read(&d.path().join("cgroup.freeze")), "1");
        g.thaw().expect("thaw");
        assert_eq!(read(&d.path().join("cgroup.freeze")), "0");
    }

    #[test]
    fn v2_timeout_names_blockers_and_thaws() {
        let d = tempfile::tempdir().expect("tempdir");
        fs::write(d.path().join("cgroup.freeze"), "0\n").expect("write");
        fs::write(d.path().join("cgroup.events"), "populated 1\nfrozen 0\n").expect("write");
        fs::write(d.path().join("cgroup.threads"), "").expect("write");
        let e = FreezeGuard::freeze_v2(d.path(), Duration::from_millis(20)).expect_err("timeout");
        match &e {
            FreezeError::Timeout(t) => {
                assert!(t.thawed);
                assert_eq!(t.tasks_seen, 0);
            }
            other => panic!("unexpected {other}"),
        }
        assert_eq!(read(&d.path().join("cgroup.freeze")), "0");
        assert!(e.to_string().contains("thawed again"), "{e}");
    }

    #[test]
    fn blockers_are_told_from_tasks_frozen_in_place() {
        let d = tempfile::tempdir().expect("tempdir");
        let r = d.path();
        let task = |tid: i32, state: char, wchan: &str| {
            let dir = r.join(format!("proc/{tid}/task/{tid}"));
            fs::create_dir_all(&dir).expect("mkdir");
            fs::write(dir.join("stat"), format!("{tid} (t{tid}) {state} 1 1 1\n")).expect("write");
            fs::write(dir.join("wchan"), wchan).expect("write");
            TaskInfo {
                pid: tid,
                tid,
                comm: format!("t{tid}"),
                state: crate::procfs::TaskState('D'),
                wchan: Some(wchan.to_owned()),
            }
        };
        // Snapshot while FREEZING: all three read D. After the thaw (the
        // files as they are now) 10 is back to S, 11 still D, 12 parked in
        // the refrigerator.
        let snapshot = vec![
            task(10, 'S', "hrtimer_nanosleep"),
            task(11, 'D', "fifo_open"),
            task(12, 'S', "__refrigerator"),
        ];
        let procfs = Procfs::new(HostRoot::new(r));
        let b = pick_blockers(&procfs, &snapshot);
        assert_eq!(b.iter().map(|t| t.tid).collect::<Vec<_>>(), vec![11]);
        assert_eq!(b[0].wchan.as_deref(), Some("fifo_open"));
    }

    #[test]
    fn marker_is_written_and_removed() {
        let d = fake_v1("THAWED\n", "0\n");
        let m = tempfile::tempdir().expect("tempdir");
        let marker = m.path().join("frozen/c1.json");
        let opts = FreezeOptions {
            marker: Some(marker.clone()),
            ..Default::default()
        };
        let g =
            FreezeGuard::freeze_target(FreezeTarget::V1(d.path().into()), Duration::ZERO, &opts)
                .expect("freeze");
        let rec: FreezeMarker =
            serde_json::from_str(&fs::read_to_string(&marker).expect("marker")).expect("json");
        assert_eq!(rec.target, FreezeTarget::V1(d.path().into()));
        assert_eq!(rec.owner_pid, std::process::id() as i32);
        drop(g);
        assert!(!marker.exists());
    }

    /// A host root with a fake v1 freezer cgroup `c1` (plain files) and
    /// the marker directory.
    fn host_with_c1(state: &str) -> (tempfile::TempDir, HostRoot, PathBuf) {
        let t = tempfile::tempdir().expect("tempdir");
        let dir = t.path().join("sys/fs/cgroup/freezer/c1");
        fs::create_dir_all(&dir).expect("mkdir");
        fs::write(dir.join("freezer.state"), state).expect("write");
        fs::write(dir.join("freezer.self_freezing"), "0\n").expect("write");
        fs::write(dir.join("tasks"), "").expect("write");
        let root = HostRoot::new(t.path());
        (t, root, dir)
    }

    const C1: &str = "/sys/fs/cgroup/freezer/c1";

    fn write_marker_file(marker: &Path, target: &str, pid: i32, start: u64) {
        let rec = FreezeMarker {
            target: FreezeTarget::V1(target.into()),
            owner_pid: pid,
            owner_start: start,
        };
        fs::create_dir_all(marker.parent().expect("parent")).expect("mkdir");
        fs::write(marker, serde_json::to_string(&rec).expect("json")).expect("write");
    }

    #[test]
    fn recovery_thaws_for_dead_owners_only() {
        let (t, root, dir) = host_with_c1("FROZEN\n");
        let marker = t.path().join("run/warden/frozen/c1.json");
        let procfs = Procfs::real();
        // A marker of an older Warden (no lock): pid 1 alive with this start
        // time, hands off.
        write_marker_file(&marker, C1, 1, procfs.start_time(1).expect("init start"));
        assert_eq!(
            recover_marker(&marker, &procfs, &root).expect("recover"),
            Recovery::OwnerAlive { pid: 1 }
        );
        assert_eq!(read(&dir.join("freezer.state")), "FROZEN");
        // pid 1 with another start time: a reused pid, so the owner is dead.
        write_marker_file(&marker, C1, 1, 1);
        assert!(matches!(
            recover_marker(&marker, &procfs, &root).expect("recover"),
            Recovery::Thawed(_)
        ));
        assert_eq!(read(&dir.join("freezer.state")), "THAWED");
        assert!(!marker.exists());
    }

    #[test]
    fn a_live_freeze_is_never_thawed_whatever_its_pid_says_and_a_leftover_is() {
        let (t, root, dir) = host_with_c1("THAWED\n");
        let markers = t.path().join("run/warden/frozen");
        let marker = markers.join("live.json");
        // A live guard: the marker records the host path and its owner's
        // lock is held. Its pid means nothing here (another PID namespace
        // would record a pid that is someone else's or nobody's).
        let opts = FreezeOptions {
            marker: Some(marker.clone()),
            record_as: Some(FreezeTarget::V1(C1.into())),
            ..Default::default()
        };
        let g = FreezeGuard::freeze_target(FreezeTarget::V1(dir.clone()), Duration::ZERO, &opts)
            .expect("freeze");
        let mut rec: FreezeMarker =
            serde_json::from_str(&fs::read_to_string(&marker).expect("marker")).expect("json");
        assert_eq!(rec.target, FreezeTarget::V1(C1.into()), "a host path");
        // As another PID namespace would see it: a pid that is not alive.
        rec.owner_pid = 999_999;
        fs::write(&marker, serde_json::to_string(&rec).expect("json")).expect("rewrite in place");
        let done = sweep_markers(&markers, &Procfs::real(), &root);
        assert!(
            matches!(done[..], [(_, Ok(Recovery::OwnerAlive { .. }))]),
            "{done:?}"
        );
        assert_eq!(
            read(&dir.join("freezer.state")),
            "FROZEN",
            "the live freeze stands"
        );
        drop(g);
        assert_eq!(read(&dir.join("freezer.state")), "THAWED");
        assert!(!marker.exists());
        // A leftover of this very process (a guard whose thaw failed, then
        // dropped): no lock, so it is thawed.
        fs::write(dir.join("freezer.state"), "FROZEN").expect("write");
        let me = std::process::id() as i32;
        write_marker_file(
            &marker,
            C1,
            me,
            Procfs::real().start_time(me).expect("start"),
        );
        assert_eq!(
            log_sweep(&sweep_markers(&markers, &Procfs::real(), &root)),
            1
        );
        assert_eq!(read(&dir.join("freezer.state")), "THAWED");
    }

    #[test]
    fn the_marker_of_a_deleted_cgroup_is_removed_but_not_one_of_an_unseen_hierarchy() {
        let (t, root, _dir) = host_with_c1("THAWED\n");
        let marker = t.path().join("run/warden/frozen/gone.json");
        write_marker_file(&marker, "/sys/fs/cgroup/freezer/deleted", 999_999, 1);
        assert!(matches!(
            recover_marker(&marker, &Procfs::real(), &root).expect("recover"),
            Recovery::CgroupGone(_)
        ));
        assert!(!marker.exists(), "not left to fail at every sweep");
        // The hierarchy itself is not there (not mounted now, another
        // root): the cgroup may well exist, so the marker stays.
        write_marker_file(&marker, "/sys/fs/cgroup/nohierarchy/c9", 999_999, 1);
        assert!(recover_marker(&marker, &Procfs::real(), &root).is_err());
        assert!(marker.exists());
    }

    #[test]
    fn a_marker_naming_anything_but_a_cgroup_is_not_followed() {
        let t = tempfile::tempdir().expect("tempdir");
        let marker = t.path().join("evil.json");
        write_marker_file(&marker, "/etc", 999_999, 1);
        assert!(recover_marker(&marker, &Procfs::real(), &HostRoot::new(t.path())).is_err());
        assert!(
            !t.path().join("etc/freezer.state").exists(),
            "nothing created"
        );
    }
}
