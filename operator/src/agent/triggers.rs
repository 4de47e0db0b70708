//! What makes the agent scan before its timer: inotify watches and a cheap
//! poll of attached device programs.
//!
//! - **Runtime state directories** (runc, crun, containerd's runc root and
//!   task directory) and `/run/systemd/transient`: a container created or
//!   deleted, a `state.json`/`status` rewritten, a unit or `DeviceAllow=`
//!   drop-in written. Only names that mean a change of container state wake
//!   the engine: runc and containerd shims write temporary files and pid
//!   files on every exec, and an exec probe must not cost a node scan.
//! - **v1 device rules**: `devices.list` is generated on read and never
//!   changes on its own, but every change to it is a `write(2)` to
//!   `devices.allow` or `devices.deny` of the cgroup or one of its ancestors
//!   (a deny in a parent propagates down), and the VFS reports any write as
//!   `IN_MODIFY` on the file written, cgroupfs included. So the agent watches
//!   those two files of every container's devices cgroup and its ancestors,
//!   and a removed rule wakes it at once instead of at the next tick.
//! - **v2 device programs**: `BPF_PROG_ATTACH`/`DETACH` touch no file, so no
//!   watch can see them. Every `--bpf-poll` (1 s) the agent asks the kernel
//!   for each container's effective device program ids (`BPF_PROG_QUERY`,
//!   one syscall per container) and wakes when a list differs from the one
//!   before.
//!
//! What neither covers (eventfd growth of a shim, an init stuck in a seccomp
//! notification, a v1 change through an unwatched path) waits for the timer.
//!
//! A root that does not exist yet (`/run/crun` before crun first ran) is
//! found by watching its nearest existing ancestor for creations; the walk
//! is redone when one happens, without waking the engine unless the root
//! itself appeared.

use std::collections::{BTreeSet, HashMap};
use std::ffi::OsStr;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask, Watches};
use runtime_core::devices::bpf;
use runtime_core::diagnose::ScanReport;
use runtime_core::root::HostRoot;
use tokio::sync::Notify;

/// A directory tree to watch for container state changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeSpec {
    /// Host path of the tree's root.
    pub path: PathBuf,
    /// Directories at depths `0..depth` are watched (the root is depth 0).
    pub depth: u8,
    /// File names whose changes wake the engine; `None`: every name.
    /// Directory creations and removals always do.
    pub files: Option<&'static [&'static str]>,
}

impl TreeSpec {
    /// The trees of a node: runtime state directories (one directory per
    /// container, one more level per containerd namespace) and systemd's
    /// transient units (units plus `<unit>.d/` drop-ins).
    pub fn for_node(
        runc: &[PathBuf],
        crun: &[PathBuf],
        containerd_runc: &Path,
        containerd_tasks: &Path,
        systemd_transient: &Path,
    ) -> Vec<TreeSpec> {
        const RUNC: &[&str] = &["state.json"];
        const CRUN: &[&str] = &["status"];
        const NONE: &[&str] = &[];
        let mut v: Vec<TreeSpec> = runc
            .iter()
            .map(|p| TreeSpec {
                path: p.clone(),
                depth: 2,
                files: Some(RUNC),
            })
            .collect();
        v.extend(crun.iter().map(|p| TreeSpec {
            path: p.clone(),
            depth: 2,
            files: Some(CRUN),
        }));
        v.push(TreeSpec {
            path: containerd_runc.to_path_buf(),
            depth: 3,
            files: Some(RUNC),
        });
        // Bundles appear and go with their task; the files in them (pid
        // files per exec, logs) are not container state.
        v.push(TreeSpec {
            path: containerd_tasks.to_path_buf(),
            depth: 2,
            files: Some(NONE),
        });
        v.push(TreeSpec {
            path: systemd_transient.to_path_buf(),
            depth: 2,
            files: None,
        });
        v
    }
}

/// Why a path is watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A directory of tree `spec` at `depth`.
    Tree { spec: usize, depth: u8 },
    /// The nearest existing ancestor of a tree root that does not exist.
    Ancestor,
    /// `devices.allow` / `devices.deny` of a v1 devices cgroup.
    DeviceFile,
}

/// What one inotify event means for the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reaction {
    Ignore,
    /// Scan.
    Wake,
    /// Redo the directory walk (a directory came or went), then scan.
    Resync,
    /// Redo the walk; scan only if that found a missing root.
    ResyncQuiet,
}

const TREE_MASK: WatchMask = WatchMask::CREATE
    .union(WatchMask::DELETE)
    .union(WatchMask::MOVED_TO)
    .union(WatchMask::MOVED_FROM)
    .union(WatchMask::CLOSE_WRITE)
    .union(WatchMask::DELETE_SELF)
    .union(WatchMask::ONLYDIR);
const ANCESTOR_MASK: WatchMask = WatchMask::CREATE
    .union(WatchMask::MOVED_TO)
    .union(WatchMask::ONLYDIR);
const DEVICE_FILE_MASK: WatchMask = WatchMask::MODIFY;

fn react(kind: Kind, specs: &[TreeSpec], mask: EventMask, name: Option<&OsStr>) -> Reaction {
    if mask.contains(EventMask::Q_OVERFLOW) {
        return Reaction::Resync;
    }
    if mask.contains(EventMask::IGNORED) {
        // The watched inode went away (a container's cgroup or state
        // directory removed): its own events already said so.
        return Reaction::Ignore;
    }
    match kind {
        Kind::DeviceFile => {
            if mask.contains(EventMask::MODIFY) {
                Reaction::Wake
            } else {
                Reaction::Ignore
            }
        }
        Kind::Ancestor => Reaction::ResyncQuiet,
        Kind::Tree { spec, .. } => {
            if mask.contains(EventMask::DELETE_SELF) || mask.contains(EventMask::ISDIR) {
                return Reaction::Resync;
            }
            let Some(files) = specs.get(spec).and_then(|s| s.files) else {
                return Reaction::Wake;
            };
            match name.and_then(OsStr::to_str) {
                Some(n) if files.contains(&n) => Reaction::Wake,
                _ => Reaction::Ignore,
            }
        }
    }
}

/// The watch table: what is watched and why.
struct WatchSet {
    watches: Watches,
    root: HostRoot,
    specs: Vec<TreeSpec>,
    by_path: HashMap<PathBuf, (WatchDescriptor, Kind)>,
    by_wd: HashMap<WatchDescriptor, PathBuf>,
    device_files: BTreeSet<PathBuf>,
}

impl WatchSet {
    /// Every (path, kind) the trees and device files want watched now.
    fn desired(&self) -> HashMap<PathBuf, Kind> {
        let mut want: HashMap<PathBuf, Kind> = HashMap::new();
        for (i, spec) in self.specs.iter().enumerate() {
            let top = self.root.join(&spec.path);
            if top.is_dir() {
                walk(&top, 0, spec.depth, &mut |p, depth| {
                    want.insert(p.to_path_buf(), Kind::Tree { spec: i, depth });
                });
            } else if let Some(a) = top.ancestors().skip(1).find(|a| a.is_dir()) {
                // A tree's own watch on the same directory sees creations
                // already; never downgrade it.
                want.entry(a.to_path_buf()).or_insert(Kind::Ancestor);
            }
        }
        for f in &self.device_files {
            want.entry(f.clone()).or_insert(Kind::DeviceFile);
        }
        want
    }

    /// Bring the kernel's watches in line with [`Self::desired`]. Returns
    /// whether a tree root that was missing is now watched.
    fn sync(&mut self) -> bool {
        let want = self.desired();
        let stale: Vec<PathBuf> = self
            .by_path
            .iter()
            .filter(|(p, (_, k))| want.get(*p) != Some(k))
            .map(|(p, _)| p.clone())
            .collect();
        for p in stale {
            if let Some((wd, _)) = self.by_path.remove(&p) {
                self.by_wd.remove(&wd);
                // EINVAL: the kernel dropped it already (inode gone).
                let _ = self.watches.remove(wd);
            }
        }
        let mut root_appeared = false;
        for (p, kind) in want {
            if self.by_path.contains_key(&p) {
                continue;
            }
            let mask = match kind {
                Kind::Tree { .. } => TREE_MASK,
                Kind::Ancestor => ANCESTOR_MASK,
                Kind::DeviceFile => DEVICE_FILE_MASK,
            };
            match self.watches.add(&p, mask) {
                Ok(wd) => {
                    if matches!(kind, Kind::Tree { depth: 0, .. }) {
                        root_appeared = true;
                    }
                    // One inode watched under two names (bind mounts)
                    // keeps one entry.
                    if let Some(old) = self.by_wd.insert(wd.clone(), p.clone()) {
                        self.by_path.remove(&old);
                    }
                    self.by_path.insert(p, (wd, kind));
                }
                // Gone between the walk and the watch: the next event or
                // scan redoes the walk.
                Err(e) => tracing::debug!(path = %p.display(), error = %e, "watch not added"),
            }
        }
        root_appeared
    }

    fn forget(&mut self, wd: &WatchDescriptor) {
        if let Some(p) = self.by_wd.remove(wd) {
            self.by_path.remove(&p);
        }
    }

    fn kind_of(&self, wd: &WatchDescriptor) -> Option<Kind> {
        let p = self.by_wd.get(wd)?;
        self.by_path.get(p).map(|(_, k)| *k)
    }
}

/// Visit `dir` (at `depth`) and its subdirectories down to `max - 1`.
fn walk(dir: &Path, depth: u8, max: u8, visit: &mut dyn FnMut(&Path, u8)) {
    if depth >= max {
        return;
    }
    visit(dir, depth);
    if depth + 1 >= max {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        // Not following symlinks: a state directory never holds one to a
        // container's directory, and following could leave the tree.
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            walk(&e.path(), depth + 1, max, visit);
        }
    }
}

/// The v1 device files whose writes change what `dir`'s tasks may open:
/// `devices.allow` and `devices.deny` of `dir` and of each ancestor below
/// the hierarchy's root (whose rules cannot be changed).
pub fn device_files(dir: &Path, mount_point: &Path) -> Vec<PathBuf> {
    dir.ancestors()
        .take_while(|a| a.starts_with(mount_point) && *a != mount_point)
        .flat_map(|a| [a.join("devices.allow"), a.join("devices.deny")])
        .collect()
}

/// Each container's effective device program ids, as last seen.
#[derive(Debug, Default)]
struct ProgPoll {
    /// cgroup v2 directory -> ids at the last look (`None`: not looked yet).
    last: HashMap<PathBuf, Option<Vec<u32>>>,
}

impl ProgPoll {
    fn set_dirs(&mut self, dirs: impl IntoIterator<Item = PathBuf>) {
        let mut next = HashMap::new();
        for d in dirs {
            let prev = self.last.remove(&d).flatten();
            next.insert(d, prev);
        }
        self.last = next;
    }

    /// Look at every directory; true when some list changed since the last
    /// look (a first look records without waking: the scan that found the
    /// container read its programs moments ago).
    fn poll(&mut self, query: impl Fn(&Path) -> Option<Vec<u32>>) -> bool {
        let mut changed = false;
        for (dir, last) in &mut self.last {
            let now = query(dir);
            if let (Some(before), Some(after)) = (last.as_ref(), now.as_ref()) {
                if before != after {
                    tracing::debug!(cgroup = %dir.display(), ?before, ?after, "device programs changed");
                    changed = true;
                }
            }
            *last = now;
        }
        changed
    }
}

fn effective_programs(dir: &Path) -> Option<Vec<u32>> {
    let fd = bpf::kernel::open_cgroup(dir).ok()?;
    let mut ids = bpf::kernel::query(fd.as_fd(), true).ok()?.prog_ids;
    ids.sort_unstable();
    Some(ids)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind; carry on.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The running triggers. Dropping it stops the background tasks.
pub struct Triggers {
    set: Option<Arc<Mutex<WatchSet>>>,
    poll: Option<Arc<Mutex<ProgPoll>>>,
    root: HostRoot,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Triggers {
    /// Start watching `specs` (host paths under `root`) and, when
    /// `bpf_poll` is not zero, polling device programs; each change calls
    /// `wake.notify_one()`. Must run inside a tokio runtime.
    pub fn start(
        root: HostRoot,
        specs: Vec<TreeSpec>,
        bpf_poll: Duration,
        wake: Arc<Notify>,
    ) -> std::io::Result<Self> {
        let inotify = Inotify::init()?;
        let set = Arc::new(Mutex::new(WatchSet {
            watches: inotify.watches(),
            root: root.clone(),
            specs,
            by_path: HashMap::new(),
            by_wd: HashMap::new(),
            device_files: BTreeSet::new(),
        }));
        lock(&set).sync();
        let mut stream = inotify.into_event_stream(vec![0u8; 64 * 1024])?;
        let mut tasks = Vec::new();
        let events_set = Arc::clone(&set);
        let events_wake = Arc::clone(&wake);
        tasks.push(tokio::spawn(async move {
            while let Some(ev) = stream.next().await {
                let ev = match ev {
                    Ok(ev) => ev,
                    Err(e) => {
                        tracing::warn!(error = %e, "inotify read failed; relying on the timer");
                        break;
                    }
                };
                let mut set = lock(&events_set);
                if ev.mask.contains(EventMask::IGNORED) {
                    set.forget(&ev.wd);
                }
                let kind = match set.kind_of(&ev.wd) {
                    Some(k) => k,
                    None if ev.mask.contains(EventMask::Q_OVERFLOW) => Kind::Ancestor,
                    None => continue,
                };
                let reaction = react(kind, &set.specs, ev.mask, ev.name.as_deref());
                let wake_now = match reaction {
                    Reaction::Ignore => false,
                    Reaction::Wake => true,
                    Reaction::Resync => {
                        set.sync();
                        true
                    }
                    Reaction::ResyncQuiet => set.sync(),
                };
                drop(set);
                if wake_now {
                    tracing::trace!(mask = ?ev.mask, name = ?ev.name, "change seen");
                    events_wake.notify_one();
                }
            }
        }));
        let poll = if bpf_poll.is_zero() || !root.is_real() {
            None
        } else {
            let poll = Arc::new(Mutex::new(ProgPoll::default()));
            let p = Arc::clone(&poll);
            tasks.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(bpf_poll);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    if lock(&p).poll(effective_programs) {
                        wake.notify_one();
                    }
                }
            }));
            Some(poll)
        };
        Ok(Self {
            set: Some(set),
            poll,
            root,
            tasks,
        })
    }

    /// Follow the containers of the latest scan: watch their v1 device
    /// files, poll their v2 device programs, and redo the directory walk.
    pub fn update(&self, report: &ScanReport) {
        let mount = report.host.cgroups.as_ref().and_then(|l| {
            l.v1.iter()
                .find(|h| h.controllers.iter().any(|c| c == "devices"))
                .map(|h| self.root.join(&h.mount_point))
        });
        if let Some(set) = &self.set {
            let mut files = BTreeSet::new();
            if let Some(mount) = &mount {
                for c in &report.discovered {
                    if let Some(d) = c.cgroups.v1("devices") {
                        files.extend(device_files(&self.root.join(d), mount));
                    }
                }
            }
            let mut set = lock(set);
            set.device_files = files;
            set.sync();
        }
        if let Some(poll) = &self.poll {
            let dirs = report
                .discovered
                .iter()
                .filter_map(|c| c.cgroups.v2.as_ref().map(|d| self.root.join(d)));
            lock(poll).set_dirs(dirs);
        }
    }

    /// How many paths are watched (for logs and tests).
    pub fn watched(&self) -> usize {
        self.set.as_ref().map_or(0, |s| lock(s).by_path.len())
    }
}

impl Drop for Triggers {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs(tmp: &Path) -> Vec<TreeSpec> {
        TreeSpec::for_node(
            &[tmp.join("runc")],
            &[tmp.join("crun")],
            &tmp.join("containerd/runc"),
            &tmp.join("containerd/tasks"),
            &tmp.join("transient"),
        )
    }

    #[test]
    fn only_container_state_names_wake() {
        let s = specs(Path::new("/x"));
        let runc = Kind::Tree { spec: 0, depth: 1 };
        fn name(n: &str) -> Option<&OsStr> {
            Some(OsStr::new(n))
        }
        assert_eq!(
            react(runc, &s, EventMask::MOVED_TO, name("state.json")),
            Reaction::Wake
        );
        // runc's temporary files and the exec fifo, written on every exec.
        assert_eq!(
            react(runc, &s, EventMask::CLOSE_WRITE, name("runc.ZksuQD")),
            Reaction::Ignore
        );
        assert_eq!(
            react(runc, &s, EventMask::CREATE, name("exec.fifo")),
            Reaction::Ignore
        );
        assert_eq!(
            react(
                Kind::Tree { spec: 0, depth: 0 },
                &s,
                EventMask::CREATE | EventMask::ISDIR,
                name("abc")
            ),
            Reaction::Resync
        );
        let crun = Kind::Tree { spec: 1, depth: 1 };
        assert_eq!(
            react(crun, &s, EventMask::MOVED_TO, name("status")),
            Reaction::Wake
        );
        assert_eq!(
            react(crun, &s, EventMask::CLOSE_WRITE, name("status.tmp")),
            Reaction::Ignore
        );
        let tasks = Kind::Tree { spec: 3, depth: 1 };
        assert_eq!(
            react(tasks, &s, EventMask::CLOSE_WRITE, name("init.pid")),
            Reaction::Ignore
        );
        let transient = Kind::Tree { spec: 4, depth: 1 };
        assert_eq!(
            react(
                transient,
                &s,
                EventMask::CLOSE_WRITE,
                name("50-DeviceAllow.conf")
            ),
            Reaction::Wake
        );
        assert_eq!(
            react(Kind::DeviceFile, &s, EventMask::MODIFY, None),
            Reaction::Wake
        );
        assert_eq!(
            react(Kind::DeviceFile, &s, EventMask::IGNORED, None),
            Reaction::Ignore
        );
        assert_eq!(
            react(Kind::Ancestor, &s, EventMask::CREATE, name("crun")),
            Reaction::ResyncQuiet
        );
    }

    #[test]
    fn device_files_cover_ancestors_below_the_mount() {
        let files = device_files(
            Path::new("/sys/fs/cgroup/devices/kubepods/pod1/abc"),
            Path::new("/sys/fs/cgroup/devices"),
        );
        assert_eq!(files.len(), 6);
        assert!(files.contains(&PathBuf::from(
            "/sys/fs/cgroup/devices/kubepods/devices.deny"
        )));
        assert!(!files.contains(&PathBuf::from("/sys/fs/cgroup/devices/devices.deny")));
        assert!(device_files(
            Path::new("/sys/fs/cgroup/devices"),
            Path::new("/sys/fs/cgroup/devices")
        )
        .is_empty());
    }

    #[test]
    fn program_poll_wakes_on_change_but_not_on_first_sight() {
        let mut p = ProgPoll::default();
        p.set_dirs([PathBuf::from("/a"), PathBuf::from("/b")]);
        let ids = std::cell::RefCell::new(HashMap::from([
            (PathBuf::from("/a"), vec![1]),
            (PathBuf::from("/b"), vec![2]),
        ]));
        let q = |d: &Path| ids.borrow().get(d).cloned();
        assert!(!p.poll(q), "first look records");
        assert!(!p.poll(q), "nothing changed");
        ids.borrow_mut().insert(PathBuf::from("/b"), vec![2, 7]);
        assert!(p.poll(q), "an attach at /b");
        assert!(!p.poll(q));
        // A container that goes away is dropped; one that comes is looked
        // at first.
        p.set_dirs([PathBuf::from("/b"), PathBuf::from("/c")]);
        ids.borrow_mut().insert(PathBuf::from("/c"), vec![9]);
        assert!(!p.poll(q));
        assert_eq!(p.last.len(), 2);
    }

    /// Real inotify on a tempdir: a container directory appearing, its state
    /// file renamed into place, and a missing root created later.
    #[tokio::test]
    async fn watches_follow_trees_and_missing_roots() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("runc")).unwrap();
        let wake = Arc::new(Notify::new());
        let t = Triggers::start(
            HostRoot::real(),
            specs(tmp.path()),
            Duration::ZERO,
            Arc::clone(&wake),
        )
        .unwrap();
        let woke = || async {
            tokio::time::timeout(Duration::from_secs(5), wake.notified())
                .await
                .is_ok()
        };
        let quiet = || async {
            tokio::time::timeout(Duration::from_millis(300), wake.notified())
                .await
                .is_err()
        };

        std::fs::create_dir(tmp.path().join("runc/c1")).unwrap();
        assert!(woke().await, "a container directory");
        // The walk now covers c1: an unrelated file there stays quiet...
        std::fs::write(tmp.path().join("runc/c1/runc.tmp"), "x").unwrap();
        assert!(quiet().await, "runc's temporary files do not wake");
        // ...and its state file wakes.
        std::fs::write(tmp.path().join("runc/c1/state-1"), "{}").unwrap();
        std::fs::rename(
            tmp.path().join("runc/c1/state-1"),
            tmp.path().join("runc/c1/state.json"),
        )
        .unwrap();
        assert!(woke().await, "state.json renamed into place");

        // /crun did not exist: created later, it is found and watched.
        std::fs::create_dir(tmp.path().join("crun")).unwrap();
        assert!(woke().await, "a missing root appearing wakes");
        std::fs::create_dir(tmp.path().join("crun/c2")).unwrap();
        assert!(woke().await, "and is watched from then on");
        assert!(t.watched() >= 4);
    }
}
