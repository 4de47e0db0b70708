//! The freeze-or-abort guard against the real kernel: v1 freezer cgroups at
//! `/sys/fs/cgroup/freezer/<unique>` and v2 cgroups at
//! `/sys/fs/cgroup/unified/<unique>`, with real processes inside.
//!
//! The failing freeze is real too: a task in uninterruptible sleep that the
//! freezer cannot stop. We make one by having a thread of this test process
//! (outside the cgroup) hold a pipe's mutex forever, by faulting inside
//! `write(2)` on a userfaultfd page nobody serves; a shell in the cgroup then
//! opens that pipe through `/proc` and sleeps in `D` waiting for the mutex.
//! Serving the page afterwards releases everything.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use runtime_core::cgroups::freezer::{recover_marker, FreezeOptions, FreezeTarget, Recovery};
use runtime_core::cgroups::{FreezeError, FreezeGuard};
use runtime_core::procfs::Procfs;
use runtime_core::root::HostRoot;
use runtime_core::testing;

const V1_FREEZER: &str = "/sys/fs/cgroup/freezer";
const V2_ROOT: &str = "/sys/fs/cgroup/unified";

/// A cgroup made for one test; thawed, emptied and removed on drop, even
/// when the test fails.
struct TestCgroup {
    dir: PathBuf,
    v2: bool,
}

impl TestCgroup {
    fn new(base: &str, test: &str) -> Self {
        let dir = Path::new(base).join(format!("warden-test-{}-{test}", std::process::id()));
        fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        let v2 = base == V2_ROOT;
        Self { dir, v2 }
    }

    fn child(&self, name: &str) -> TestCgroup {
        let dir = self.dir.join(name);
        fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        TestCgroup { dir, v2: self.v2 }
    }

    fn procs(&self) -> PathBuf {
        self.dir.join("cgroup.procs")
    }

    fn state(&self) -> String {
        read(&self.dir.join("freezer.state"))
    }

    fn self_freezing(&self) -> String {
        read(&self.dir.join("freezer.self_freezing"))
    }

    fn v2_frozen(&self) -> bool {
        read(&self.dir.join("cgroup.events"))
            .lines()
            .any(|l| l == "frozen 1")
    }

    fn thaw(&self) {
        let (file, value) = if self.v2 {
            ("cgroup.freeze", "0")
        } else {
            ("freezer.state", "THAWED")
        };
        let _ = fs::write(self.dir.join(file), value);
    }

    /// Start `sh -c script` and move it in here before it runs the script's
    /// body: the script begins with `read` on a pipe we feed afterwards.
    fn spawn_inside(&self, script: &str) -> Proc {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(format!("read _ && {script}"))
            .stdin(Stdio::piped())
            .spawn()
            .expect("spawn sh");
        fs::write(self.procs(), child.id().to_string()).expect("move into cgroup");
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"go\n").expect("go");
        Proc(child)
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        self.thaw();
        for sub in fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            if sub.file_type().is_ok_and(|t| t.is_dir()) {
                drop(TestCgroup {
                    dir: sub.path(),
                    v2: self.v2,
                });
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let pids = fs::read_to_string(self.procs()).unwrap_or_default();
            if pids.trim().is_empty() || Instant::now() > deadline {
                break;
            }
            for p in pids.split_whitespace().filter_map(|p| p.parse().ok()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(p),
                    nix::sys::signal::SIGKILL,
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = fs::remove_dir(&self.dir);
    }
}

/// A child process, killed and reaped on drop.
struct Proc(Child);

impl Proc {
    fn pid(&self) -> i32 {
        self.0.id() as i32
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        // Bounded: a task that is still frozen cannot die until thawed, and
        // a failing test must not hang here.
        let deadline = Instant::now() + Duration::from_secs(2);
        while matches!(self.0.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Thaws a cgroup frozen by hand when the test ends, before the processes
/// declared earlier are killed (a frozen v1 task cannot die).
struct Unfreeze<'a>(&'a TestCgroup);

impl Drop for Unfreeze<'_> {
    fn drop(&mut self) {
        self.0.thaw();
    }
}

fn read(p: &Path) -> String {
    fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        .trim()
        .to_owned()
}

/// Nanoseconds process `pid` has spent on a CPU (`/proc/<pid>/schedstat`).
fn cpu_ns(pid: i32) -> u64 {
    read(Path::new(&format!("/proc/{pid}/schedstat")))
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .expect("schedstat")
}

/// How much CPU `pid` got during `window`.
fn progress(pid: i32, window: Duration) -> u64 {
    let before = cpu_ns(pid);
    std::thread::sleep(window);
    cpu_ns(pid) - before
}

/// Poll `cond` for up to 5 s.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn v1_ready(test: &str) -> bool {
    testing::require_root(test) && testing::require_path(test, Path::new(V1_FREEZER))
}

fn v2_ready(test: &str) -> bool {
    testing::require_root(test)
        && testing::require_path(test, &Path::new(V2_ROOT).join("cgroup.procs"))
}

const BUSY: &str = "while :; do :; done";

#[test]
fn freeze_stops_the_tasks_and_drop_thaws() {
    if !v1_ready("freeze_stops_the_tasks_and_drop_thaws") {
        return;
    }
    let cg = TestCgroup::new(V1_FREEZER, "stops");
    let busy = cg.spawn_inside(BUSY);
    wait_for("the busy loop to run", || {
        progress(busy.pid(), Duration::from_millis(20)) > 0
    });

    let guard = FreezeGuard::freeze(&cg.dir, Duration::from_secs(2)).expect("freeze");
    assert!(guard.owned());
    assert_eq!(cg.state(), "FROZEN");
    let task = Procfs::real().task(busy.pid(), busy.pid()).expect("task");
    assert_eq!(task.wchan.as_deref(), Some("__refrigerator"), "{task}");
    assert_eq!(
        progress(busy.pid(), Duration::from_millis(200)),
        0,
        "a frozen task gets no CPU"
    );

    drop(guard);
    assert_eq!(cg.state(), "THAWED");
    assert_eq!(cg.self_freezing(), "0");
    wait_for("the busy loop to run again", || {
        progress(busy.pid(), Duration::from_millis(20)) > 0
    });
}

/// With a zero deadline the guard makes one attempt. With busy and forking
/// tasks inside, the first look usually still sees `FREEZING` (measured here:
/// 287 of 300 attempts), so this is the timeout path racing real tasks:
/// whatever the outcome, a success means `FROZEN` and a failure means the
/// cgroup is `THAWED` again, never stuck in between.
#[test]
fn a_zero_deadline_never_leaves_the_cgroup_frozen() {
    if !v1_ready("a_zero_deadline_never_leaves_the_cgroup_frozen") {
        return;
    }
    let cg = TestCgroup::new(V1_FREEZER, "zero");
    let _busy = cg.spawn_inside(BUSY);
    let _forking = cg.spawn_inside("while :; do /bin/true; done");
    let _sleeper = cg.spawn_inside("exec sleep 60");
    let (mut frozen, mut timed_out) = (0, 0);
    for _ in 0..50 {
        match FreezeGuard::freeze(&cg.dir, Duration::ZERO) {
            Ok(guard) => {
                assert_eq!(cg.state(), "FROZEN");
                drop(guard);
                frozen += 1;
            }
            Err(FreezeError::Timeout(t)) => {
                assert!(t.thawed);
                assert!(
                    t.waited < Duration::from_millis(100),
                    "one attempt only: {:?}",
                    t.waited
                );
                timed_out += 1;
            }
            Err(e) => panic!("unexpected error: {e}"),
        }
        assert_eq!(cg.state(), "THAWED");
        assert_eq!(cg.self_freezing(), "0");
    }
    eprintln!("zero deadline: {frozen} frozen, {timed_out} timed out");
    assert_eq!(frozen + timed_out, 50);
}

#[test]
fn panic_and_error_inside_the_guarded_scope_thaw() {
    if !v1_ready("panic_and_error_inside_the_guarded_scope_thaw") {
        return;
    }
    let cg = TestCgroup::new(V1_FREEZER, "panic");
    let _busy = cg.spawn_inside(BUSY);

    let dir = cg.dir.clone();
    let outcome = std::panic::catch_unwind(move || {
        let _guard = FreezeGuard::freeze(&dir, Duration::from_secs(2)).expect("freeze");
        assert_eq!(read(&dir.join("freezer.state")), "FROZEN");
        panic!("boom inside the frozen scope");
    });
    assert!(outcome.is_err(), "the closure panicked");
    assert_eq!(cg.state(), "THAWED", "unwinding thawed the cgroup");

    let update = |dir: &Path| -> Result<(), String> {
        let _guard = FreezeGuard::freeze(dir, Duration::from_secs(2)).map_err(|e| e.to_string())?;
        assert_eq!(read(&dir.join("freezer.state")), "FROZEN");
        Err("device write failed".to_owned())?;
        Ok(())
    };
    assert!(update(&cg.dir).is_err());
    assert_eq!(
        cg.state(),
        "THAWED",
        "an early `?` return thawed the cgroup"
    );
}

#[test]
fn a_freeze_we_did_not_make_is_left_alone() {
    if !v1_ready("a_freeze_we_did_not_make_is_left_alone") {
        return;
    }
    let cg = TestCgroup::new(V1_FREEZER, "notours");
    let _sleeper = cg.spawn_inside("exec sleep 60");
    let _unfreeze = Unfreeze(&cg);
    fs::write(cg.dir.join("freezer.state"), "FROZEN").expect("freeze by hand");
    wait_for("the hand freeze", || cg.state() == "FROZEN");

    let guard = FreezeGuard::freeze(&cg.dir, Duration::from_secs(2)).expect("freeze");
    assert!(!guard.owned());
    drop(guard);
    assert_eq!(cg.state(), "FROZEN", "someone else's freeze stays");
    assert_eq!(cg.self_freezing(), "1");

    // A parent frozen by someone else: our guard on the child owns only the
    // child's own request, and dropping it leaves the parent's in force.
    cg.thaw();
    let child = cg.child("inner");
    let _inner = child.spawn_inside("exec sleep 60");
    let _unfreeze_parent = Unfreeze(&cg);
    fs::write(cg.dir.join("freezer.state"), "FROZEN").expect("freeze parent by hand");
    wait_for("the parent freeze", || cg.state() == "FROZEN");
    let guard = FreezeGuard::freeze(&child.dir, Duration::from_secs(2)).expect("freeze child");
    assert!(guard.owned());
    assert_eq!(child.self_freezing(), "1");
    drop(guard);
    assert_eq!(child.self_freezing(), "0", "our request is withdrawn");
    assert_eq!(child.state(), "FROZEN", "the parent's freeze still holds");
    assert_eq!(read(&child.dir.join("freezer.parent_freezing")), "1");
}

#[test]
fn a_marker_survives_a_lost_guard_and_recovery_thaws() {
    if !v1_ready("a_marker_survives_a_lost_guard_and_recovery_thaws") {
        return;
    }
    let cg = TestCgroup::new(V1_FREEZER, "marker");
    let _sleeper = cg.spawn_inside("exec sleep 60");
    let _unfreeze = Unfreeze(&cg);
    let run = tempfile::tempdir().expect("tempdir");
    let marker = run.path().join("warden/frozen/marker.json");
    let options = FreezeOptions {
        marker: Some(marker.clone()),
        ..Default::default()
    };
    let guard = FreezeGuard::freeze_target(
        FreezeTarget::V1(cg.dir.clone()),
        Duration::from_secs(2),
        &options,
    )
    .expect("freeze");
    assert!(marker.exists(), "the marker is written before the freeze");
    // While the owner lives, recovery leaves its freeze alone.
    assert!(matches!(
        recover_marker(&marker, &Procfs::real(), &HostRoot::real()).expect("recover"),
        Recovery::OwnerAlive { .. }
    ));
    assert_eq!(cg.state(), "FROZEN");
    // What a crash looks like from outside: the lock is gone, the guard
    // never runs its drop.
    guard.simulate_crash();
    assert_eq!(cg.state(), "FROZEN");
    assert!(marker.exists());

    let done = recover_marker(&marker, &Procfs::real(), &HostRoot::real()).expect("recover");
    assert_eq!(done, Recovery::Thawed(FreezeTarget::V1(cg.dir.clone())));
    assert_eq!(cg.state(), "THAWED");
    assert!(!marker.exists(), "the marker goes once the thaw worked");
}

#[test]
fn v2_freeze_and_thaw() {
    if !v2_ready("v2_freeze_and_thaw") {
        return;
    }
    let cg = TestCgroup::new(V2_ROOT, "v2freeze");
    let busy = cg.spawn_inside(BUSY);
    let guard = FreezeGuard::freeze_v2(&cg.dir, Duration::from_secs(2)).expect("freeze");
    assert!(guard.owned());
    assert!(cg.v2_frozen());
    assert_eq!(
        progress(busy.pid(), Duration::from_millis(200)),
        0,
        "a frozen task gets no CPU"
    );
    drop(guard);
    assert!(!cg.v2_frozen());
    assert_eq!(read(&cg.dir.join("cgroup.freeze")), "0");
    wait_for("the busy loop to run again", || {
        progress(busy.pid(), Duration::from_millis(20)) > 0
    });
}

/// A D-state task blocks the v1 freezer: the guard gives up at the deadline,
/// thaws, and names that task and only it (a busy loop and a sleeper in the
/// same cgroup did freeze).
#[test]
fn a_task_in_uninterruptible_sleep_defeats_the_v1_freeze() {
    if !v1_ready("a_task_in_uninterruptible_sleep_defeats_the_v1_freeze") {
        return;
    }
    let cg = TestCgroup::new(V1_FREEZER, "dstate");
    blocked_freeze(&cg, |dir| {
        FreezeGuard::freeze(dir, Duration::from_millis(300))
    });
    assert_eq!(cg.state(), "THAWED", "the failed freeze was undone");
    assert_eq!(cg.self_freezing(), "0");
}

#[test]
fn a_task_in_uninterruptible_sleep_defeats_the_v2_freeze() {
    if !v2_ready("a_task_in_uninterruptible_sleep_defeats_the_v2_freeze") {
        return;
    }
    let cg = TestCgroup::new(V2_ROOT, "dstate2");
    blocked_freeze(&cg, |dir| {
        FreezeGuard::freeze_v2(dir, Duration::from_millis(300))
    });
    assert_eq!(
        read(&cg.dir.join("cgroup.freeze")),
        "0",
        "the failed freeze was undone"
    );
    assert!(!cg.v2_frozen());
}

fn blocked_freeze(cg: &TestCgroup, freeze: impl FnOnce(&Path) -> Result<FreezeGuard, FreezeError>) {
    let test = "uninterruptible sleep via a userfaultfd-held pipe mutex";
    let Some(held) = uffd::PipeLock::hold() else {
        assert!(testing::require(
            false,
            &format!("{test}: userfaultfd(2) unavailable")
        ));
        return;
    };
    let me = std::process::id();
    let busy = cg.spawn_inside(BUSY);
    let sleeper = cg.spawn_inside("exec sleep 60");
    let mut victim = cg.spawn_inside(&format!("exec true < /proc/{me}/fd/{}", held.read_fd()));
    // Rebound after the victim so that, should the test fail, the lock is
    // released before the victim (unkillable while in D) is reaped.
    let mut lock = held;
    let procfs = Procfs::real();
    wait_for("the victim to block in D", || {
        procfs
            .task(victim.pid(), victim.pid())
            .is_ok_and(|t| t.state.is_uninterruptible())
    });

    let started = Instant::now();
    let err = match freeze(&cg.dir) {
        Ok(_) => panic!("the freeze cannot complete while a task sleeps in D"),
        Err(e) => e,
    };
    let waited = started.elapsed();
    eprintln!("freeze failed as expected after {waited:?}: {err}");
    match &err {
        FreezeError::Timeout(t) => {
            assert!(t.thawed);
            assert_eq!(t.tasks_seen, 3, "busy loop, sleeper, victim");
            assert_eq!(
                t.blockers.len(),
                1,
                "only the victim blocks: {:?}",
                t.blockers
            );
            let b = &t.blockers[0];
            assert_eq!(b.pid, victim.pid());
            assert!(b.state.is_uninterruptible());
            assert!(b.wchan.is_some(), "the report says where it sleeps");
        }
        other => panic!("expected a timeout, got {other}"),
    }
    let text = err.to_string();
    assert!(text.contains(&format!("pid {}", victim.pid())), "{text}");
    assert!(text.contains("state D"), "{text}");

    // The thawed cgroup runs again; releasing the mutex lets the victim finish.
    wait_for("the busy loop to run again", || {
        progress(busy.pid(), Duration::from_millis(20)) > 0
    });
    assert!(procfs
        .task(sleeper.pid(), sleeper.pid())
        .is_ok_and(|t| t.state.0 == 'S'));
    assert_eq!(lock.release().expect("release the pipe mutex"), 4096);
    let status = victim.0.wait().expect("wait victim");
    assert!(
        status.success(),
        "the victim opened the pipe once released: {status}"
    );
}

/// Test-only seam: userfaultfd(2), mmap(2) and write(2) on a raw buffer.
#[allow(unsafe_code)]
mod uffd {
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
    use std::thread::JoinHandle;
    use std::time::{Duration, Instant};

    const UFFD_API: u64 = 0xAA;
    const UFFDIO_REGISTER_MODE_MISSING: u64 = 1;

    #[repr(C)]
    pub struct UffdioApi {
        api: u64,
        features: u64,
        ioctls: u64,
    }

    #[repr(C)]
    pub struct UffdioRange {
        start: u64,
        len: u64,
    }

    #[repr(C)]
    pub struct UffdioRegister {
        range: UffdioRange,
        mode: u64,
        ioctls: u64,
    }

    #[repr(C)]
    pub struct UffdioZeropage {
        range: UffdioRange,
        mode: u64,
        zeropage: i64,
    }

    nix::ioctl_readwrite!(uffdio_api, 0xAA, 0x3F, UffdioApi);
    nix::ioctl_readwrite!(uffdio_register, 0xAA, 0x00, UffdioRegister);
    nix::ioctl_readwrite!(uffdio_zeropage, 0xAA, 0x04, UffdioZeropage);

    /// A pipe whose mutex a thread of this process holds until
    /// [`PipeLock::release`]: the thread sits in `write(2)` (which takes the
    /// pipe mutex) faulting on a page of a userfaultfd region that nobody
    /// serves. Anyone else who opens, reads or writes the pipe sleeps in `D`.
    pub struct PipeLock {
        uffd: OwnedFd,
        region: usize,
        len: usize,
        read_end: OwnedFd,
        writer: Option<JoinHandle<io::Result<usize>>>,
    }

    impl PipeLock {
        /// `None` when userfaultfd is not available here.
        pub fn hold() -> Option<Self> {
            let (read_end, write_end) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ok()?;
            // SAFETY: userfaultfd(2) takes flags only; it returns a new fd or -1.
            let raw = unsafe { libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC) };
            if raw < 0 {
                return None;
            }
            // SAFETY: raw is a fresh descriptor nothing else owns.
            let uffd = unsafe { OwnedFd::from_raw_fd(raw as RawFd) };
            let mut api = UffdioApi {
                api: UFFD_API,
                features: 0,
                ioctls: 0,
            };
            // SAFETY: api is a valid, initialised struct of the size the ioctl encodes.
            unsafe { uffdio_api(uffd.as_raw_fd(), &mut api) }.ok()?;
            let len = 4096;
            // SAFETY: an anonymous private mapping at an address of the kernel's choosing.
            let region = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            if region == libc::MAP_FAILED {
                return None;
            }
            let region = region as usize;
            let mut reg = UffdioRegister {
                range: UffdioRange {
                    start: region as u64,
                    len: len as u64,
                },
                mode: UFFDIO_REGISTER_MODE_MISSING,
                ioctls: 0,
            };
            // SAFETY: reg is valid and describes the mapping made above.
            unsafe { uffdio_register(uffd.as_raw_fd(), &mut reg) }.ok()?;
            let (tx, rx) = std::sync::mpsc::channel();
            let writer = std::thread::spawn(move || {
                let _ = tx.send(nix::unistd::gettid().as_raw());
                // SAFETY: region..region+len is mapped for the lifetime of
                // the PipeLock, which joins this thread before unmapping.
                let n = unsafe {
                    libc::write(write_end.as_raw_fd(), region as *const libc::c_void, len)
                };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            let tid = rx.recv().ok()?;
            let wchan = format!("/proc/self/task/{tid}/wchan");
            let deadline = Instant::now() + Duration::from_secs(5);
            while std::fs::read_to_string(&wchan).ok()?.trim() != "handle_userfault" {
                if Instant::now() > deadline {
                    return None;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            Some(Self {
                uffd,
                region,
                len,
                read_end,
                writer: Some(writer),
            })
        }

        /// The descriptor of the pipe's read end in this process.
        pub fn read_fd(&self) -> RawFd {
            self.read_end.as_raw_fd()
        }

        /// Serve the page (zeros): the write completes and the mutex is
        /// free. Returns how many bytes the held write wrote.
        pub fn release(&mut self) -> io::Result<usize> {
            let Some(writer) = self.writer.take() else {
                return Ok(0);
            };
            let mut zp = UffdioZeropage {
                range: UffdioRange {
                    start: self.region as u64,
                    len: self.len as u64,
                },
                mode: 0,
                zeropage: 0,
            };
            // SAFETY: zp is valid and names the registered range.
            unsafe { uffdio_zeropage(self.uffd.as_raw_fd(), &mut zp) }.map_err(io::Error::from)?;
            writer
                .join()
                .map_err(|_| io::Error::other("writer thread panicked"))?
        }
    }

    impl Drop for PipeLock {
        fn drop(&mut self) {
            let _ = self.release();
            // SAFETY: the writer has been joined; nothing uses the mapping.
            unsafe { libc::munmap(self.region as *mut libc::c_void, self.len) };
        }
    }
}
