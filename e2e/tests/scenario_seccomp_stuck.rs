//! Scenario 4 of issue 5 (seed 004): a runc container and a crun container
//! whose seccomp profile notifies `close` hang at start, their init blocked
//! in `seccomp_do_user_notification` (the listener takes the fd and never
//! answers). `warden check` reports both as `seccomp-notify-stuck` for the
//! right container ids and nothing for a healthy neighbour; `--fix` kills
//! them only when the policy allows it (`remediation.killStuckInits: true`
//! in `mode: Enforce`), and otherwise says why it did not.
//!
//! The scenarios run one at a time: `--fix` acts on every stuck task of the
//! node, so a killing scenario would end the other one's containers.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use runtime_core::testing;
use serde_json::{json, Value};
use warden_e2e::container::unique_id;
use warden_e2e::listener::{Answer, SeccompListener};
use warden_e2e::start_probe::{cgroup_dirs, descendants, is_gone, wchan};
use warden_e2e::{warden, Bundle, Container, Runtime};

static SERIAL: Mutex<()> = Mutex::new(());

const SECCOMP_WCHAN: &str = "seccomp_do_user_notification";

fn prerequisites(name: &str) -> bool {
    testing::require_root(name)
        && testing::require_tool(name, "runc")
        && testing::require_tool(name, "crun")
        && testing::require_path(name, Path::new(warden_e2e::bundle::BUSYBOX))
}

/// A container whose start hangs: the runtime's `run -d` runs as a child
/// of the test; everything of the attempt is killed and deleted on drop.
struct Hung {
    runtime: Runtime,
    id: String,
    child: Option<Child>,
    /// The tasks found blocked in the notification: (pid, tid).
    blocked: Vec<(u32, u32)>,
}

impl Hung {
    /// Start `bundle` and wait until a task in its cgroups is blocked in a
    /// seccomp notification.
    fn start(runtime: Runtime, id: &str, bundle: &Bundle) -> Self {
        let err = fs::File::create(bundle.dir.join("runtime.stderr")).expect("stderr file");
        let child = Command::new(runtime.binary())
            .args(["run", "-d", "--bundle"])
            .arg(&bundle.dir)
            .arg(id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("spawn runtime");
        let mut me = Self {
            runtime,
            id: id.to_string(),
            child: Some(child),
            blocked: Vec::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while me.blocked.is_empty() {
            me.blocked = blocked_tasks(&me.id);
            assert!(
                Instant::now() < deadline,
                "{} {id}: no task blocked in a seccomp notification: {}",
                runtime.binary(),
                fs::read_to_string(bundle.dir.join("runtime.stderr")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        me
    }

    /// Live processes of the attempt: the runtime child, its descendants
    /// and the members of the container's cgroups.
    fn pids(&self) -> BTreeSet<u32> {
        let mut out = BTreeSet::new();
        if let Some(c) = &self.child {
            out.insert(c.id());
            out.extend(descendants(c.id()));
        }
        for d in cgroup_dirs(&self.id) {
            out.extend(procs(&d));
        }
        out.into_iter().filter(|p| !is_gone(*p)).collect()
    }

    /// Kill everything, reap the runtime child, delete the container and
    /// its cgroups. Returns what is still left (pids, cgroup dirs).
    fn cleanup(&mut self) -> (BTreeSet<u32>, Vec<PathBuf>) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let alive = self.pids();
            for p in &alive {
                if let Ok(raw) = i32::try_from(*p) {
                    let _ = kill(Pid::from_raw(raw), Signal::SIGKILL);
                }
            }
            if let Some(mut c) = self.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
            if alive.is_empty() || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = Command::new(self.runtime.binary())
            .args(["delete", "-f", &self.id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        for d in cgroup_dirs(&self.id) {
            let _ = fs::remove_dir(&d);
        }
        (self.pids(), cgroup_dirs(&self.id))
    }
}

impl Drop for Hung {
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// (pid, tid) of every task of the container's cgroups waiting for a
/// seccomp notification answer.
fn blocked_tasks(id: &str) -> Vec<(u32, u32)> {
    let mut out = BTreeSet::new();
    for d in cgroup_dirs(id) {
        for pid in procs(&d) {
            let Ok(rd) = fs::read_dir(format!("/proc/{pid}/task")) else {
                continue;
            };
            for tid in rd
                .filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            {
                let w =
                    fs::read_to_string(format!("/proc/{pid}/task/{tid}/wchan")).unwrap_or_default();
                // The kernel may show a compiler clone (`.isra.0`).
                if w.strip_prefix(SECCOMP_WCHAN)
                    .is_some_and(|r| r.is_empty() || r.starts_with('.'))
                {
                    out.insert((pid, tid));
                }
            }
        }
    }
    out.into_iter().collect()
}

fn procs(dir: &Path) -> Vec<u32> {
    fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Fields drop in order: containers first, then the listeners (closing a
/// held notify fd unblocks the init), then the bundles.
struct Fleet {
    hung: Vec<Hung>,
    healthy: Container,
    _listeners: Vec<SeccompListener>,
    tmp: tempfile::TempDir,
}

/// A runc and a crun container hung on `close`, each with its own
/// never-answering listener, and a healthy runc container.
fn fleet(tag: &str) -> Fleet {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut hung = Vec::new();
    let mut listeners = Vec::new();
    for rt in [Runtime::Runc, Runtime::Crun] {
        let id = unique_id(&format!("{tag}-{}", rt.binary()));
        let dir = tmp.path().join(&id);
        fs::create_dir_all(&dir).expect("mkdir");
        let sock = dir.join("listener.sock");
        listeners.push(SeccompListener::start(&sock, Answer::Never).expect("listener"));
        let mut b = Bundle::busybox(&dir, &id, &["sleep", "600"]).expect("bundle");
        b.set_seccomp(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": sock,
            "syscalls": [{"names": ["close"], "action": "SCMP_ACT_NOTIFY"}],
        }))
        .expect("seccomp");
        hung.push(Hung::start(rt, &id, &b));
    }
    let id = unique_id(&format!("{tag}-healthy"));
    let dir = tmp.path().join(&id);
    fs::create_dir_all(&dir).expect("mkdir");
    let b = Bundle::busybox(&dir, &id, &["sleep", "600"]).expect("bundle");
    let healthy = Container::run(Runtime::Runc, &id, &b).expect("healthy container");
    Fleet {
        tmp,
        hung,
        healthy,
        _listeners: listeners,
    }
}

fn stuck_for<'a>(report: &'a Value, id: &str) -> Vec<&'a Value> {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["check"] == "seccomp-notify-stuck" && f["container"]["id"] == id)
        .collect()
}

/// `warden check --output json --stuck-after 1` plus `extra`, with a
/// private state dir.
fn check(f: &Fleet, extra: &[&str]) -> Value {
    let state = f.tmp.path().join("warden-state").display().to_string();
    let mut args = vec!["--stuck-after", "1", "--state-dir", state.as_str()];
    args.extend_from_slice(extra);
    warden::check_json(&args).expect("warden check")
}

fn write_policy(f: &Fleet, kill: bool) -> String {
    let p = f.tmp.path().join(format!("policy-{kill}.yaml"));
    fs::write(
        &p,
        format!(
            "apiVersion: runtimewarden.io/v1alpha1\nkind: RuntimePolicy\nmetadata:\n  name: stuck\n\
             spec:\n  mode: Enforce\n  remediation:\n    killStuckInits: {kill}\n"
        ),
    )
    .expect("write policy");
    p.display().to_string()
}

/// Both hung containers are reported, the healthy one is not; returns the
/// report.
fn assert_reported(f: &Fleet) -> Value {
    // The threshold is the task's age: wait until both are older than 1 s.
    std::thread::sleep(Duration::from_millis(1500));
    let report = check(f, &[]);
    for h in &f.hung {
        let mine = stuck_for(&report, &h.id);
        assert!(
            !mine.is_empty(),
            "{} {} not reported stuck: {}",
            h.runtime.binary(),
            h.id,
            report["findings"]
        );
        for x in &mine {
            eprintln!("{}: {}", h.runtime.binary(), x);
            assert_eq!(x["severity"], "error", "{x}");
            // Both runtimes have written their state by the time the init
            // blocks, so the finding names the runtime too.
            assert_eq!(x["container"]["runtime"], h.runtime.binary(), "{x}");
            let pid: u32 = x["evidence"]["pid"]
                .as_str()
                .and_then(|p| p.parse().ok())
                .expect("pid evidence");
            assert!(
                h.blocked.iter().any(|(p, _)| *p == pid),
                "{}: reported pid {pid} is not one of the blocked {:?}",
                h.id,
                h.blocked
            );
        }
    }
    let healthy: Vec<&Value> = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|x| x["container"]["id"] == f.healthy.id.as_str())
        .collect();
    assert!(
        healthy.is_empty(),
        "healthy container reported: {healthy:?}"
    );
    // Below the threshold nothing is stuck yet: the default 10 s.
    let young = warden::check_json(&[
        "--state-dir",
        &f.tmp.path().join("warden-state").display().to_string(),
    ])
    .expect("check with the default threshold");
    for h in &f.hung {
        assert!(
            stuck_for(&young, &h.id).is_empty(),
            "{} reported before 10 s",
            h.id
        );
    }
    report
}

#[test]
fn stuck_inits_are_reported_and_killed_when_the_policy_allows() {
    if !prerequisites("seccomp_stuck_kill") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut f = fleet("stuck-kill");
    assert_reported(&f);

    let policy = write_policy(&f, true);
    let fixed = check(&f, &["--policy", &policy, "--fix"]);
    for h in &f.hung {
        let mine = stuck_for(&fixed, &h.id);
        assert!(!mine.is_empty(), "finding kept in the --fix report");
        for x in &mine {
            assert_eq!(x["repaired"], true, "not marked repaired: {x}");
            assert!(
                x["repair_note"]
                    .as_str()
                    .is_some_and(|n| n.contains("killed") || n.contains("exited")),
                "{x}"
            );
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while !h.blocked.iter().all(|(p, _)| is_gone(*p)) {
            assert!(
                Instant::now() < deadline,
                "{}: stuck pids {:?} still alive after --fix (wchan {:?})",
                h.id,
                h.blocked,
                h.blocked.iter().map(|(p, _)| wchan(*p)).collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    assert_eq!(
        f.healthy.state().expect("healthy state")["status"],
        "running",
        "the healthy container is untouched"
    );
    let again = check(&f, &[]);
    for h in &f.hung {
        assert!(stuck_for(&again, &h.id).is_empty(), "{} still stuck", h.id);
    }
    for h in &mut f.hung {
        let (pids, dirs) = h.cleanup();
        assert!(pids.is_empty() && dirs.is_empty(), "{pids:?} {dirs:?} left");
    }
}

#[test]
fn without_kill_stuck_inits_fix_leaves_them_and_says_why() {
    if !prerequisites("seccomp_stuck_nokill") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut f = fleet("stuck-keep");
    assert_reported(&f);

    for policy in [None, Some(write_policy(&f, false))] {
        let mut extra = vec!["--fix"];
        if let Some(p) = &policy {
            extra.extend(["--policy", p.as_str()]);
        }
        let report = check(&f, &extra);
        for h in &f.hung {
            let mine = stuck_for(&report, &h.id);
            assert!(!mine.is_empty(), "{} still reported", h.id);
            for x in &mine {
                assert_eq!(x["repaired"], false, "{x}");
                assert!(
                    x["repair_note"]
                        .as_str()
                        .is_some_and(|n| n.contains("killStuckInits")),
                    "the note says why: {x}"
                );
            }
            assert_eq!(
                blocked_tasks(&h.id),
                h.blocked,
                "{} must still be blocked, not killed",
                h.id
            );
        }
    }
    for h in &mut f.hung {
        let (pids, dirs) = h.cleanup();
        assert!(pids.is_empty() && dirs.is_empty(), "{pids:?} {dirs:?} left");
    }
}
