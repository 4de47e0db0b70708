//! `warden agent --standalone` on real runc containers (issue 8): a running
//! container broken the two ways of seed 003 (v1 device rules removed; a
//! narrower v2 device program attached beside the runtime's) is repaired by
//! the agent in Enforce mode, with no API server, before its 30 s timer
//! could have fired: the inotify watch on the v1 device files and the poll
//! of attached programs wake it. In Audit mode it only reports. At start it
//! thaws a cgroup that a dead agent left frozen; on SIGTERM it exits 0.
//!
//! Each test runs its own containers under a private `runc --root`, so the
//! agent (which repairs every container it sees) touches nothing else on the
//! machine. The tests of this file run one at a time (a lock).

#[path = "../bench/detect/fleet.rs"]
mod fleet;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use fleet::{findings_for, policy_file, Agent, Ctr};
use runtime_core::cgroups::freezer::FreezeMarker;
use runtime_core::cgroups::FreezeTarget;
use runtime_core::testing;
use serde_json::Value;

static SERIAL: Mutex<()> = Mutex::new(());

/// Longer than any trigger path, far shorter than the 30 s timer.
const SOON: Duration = Duration::from_secs(10);

fn prerequisites(name: &str) -> bool {
    testing::require_root(name)
        && testing::require_tool(name, "runc")
        && testing::require_path(name, Path::new(warden_e2e::bundle::BUSYBOX))
        && testing::require_path(name, Path::new("/sys/fs/cgroup/devices/devices.list"))
        && testing::require_path(name, Path::new("/sys/fs/cgroup/unified/cgroup.procs"))
}

struct Setup {
    tmp: tempfile::TempDir,
    root: PathBuf,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("runc");
    fs::create_dir_all(&root).expect("mkdir runc root");
    Setup { tmp, root }
}

fn id(tag: &str) -> String {
    format!("warden-e2e-agent-{tag}-{}", std::process::id())
}

fn clean(report: &Value, c: &Ctr) -> bool {
    report["summary"]["containers"] == 2 && findings_for(report, &c.id).is_empty()
}

fn wait_until(timeout: Duration, what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn enforce_repairs_v1_and_v2_breakages_without_waiting_for_the_timer() {
    if !prerequisites("agent_enforce") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let s = setup();
    let broken = Ctr::start(&s.root, s.tmp.path(), &id("enf-broken")).expect("start");
    let other = Ctr::start(&s.root, s.tmp.path(), &id("enf-other")).expect("start");
    let other_list = fs::read_to_string(other.devices_dir().join("devices.list")).expect("list");
    let policy = policy_file(s.tmp.path(), "Enforce").expect("policy");
    let mut agent = Agent::start(
        s.tmp.path(),
        &s.root,
        &[
            "--policy",
            policy.to_str().expect("utf-8"),
            "--interval",
            "30s",
        ],
    )
    .expect("agent starts");
    agent
        .wait_report(SOON, |r| clean(r, &broken))
        .expect("first report: two healthy containers");
    let (status, _) = agent.get("/readyz").expect("readyz");
    assert!(status.contains("200"), "{status}");
    let (status, _) = agent.get("/healthz").expect("healthz");
    assert!(status.contains("200"), "{status}");

    // v1: the rules for /dev/null and /dev/urandom removed.
    broken.break_v1().expect("break v1");
    let t = Instant::now();
    wait_until(SOON, "the v1 repair", || broken.v1_allows());
    eprintln!("v1 repaired {:?} after the breakage", t.elapsed());
    assert!(
        broken.opens(),
        "the container opens /dev/null and /dev/urandom again"
    );
    wait_until(SOON, "the repair counted", || {
        agent
            .metric("warden_repairs_total{check=\"device-access-broken\",result=\"repaired\"}")
            .ok()
            .flatten()
            == Some(1.0)
    });

    // v2: a narrower program attached beside the runtime's.
    let prog = broken.break_v2().expect("break v2");
    assert!(!broken.opens(), "the breakage takes the devices away");
    let t = Instant::now();
    wait_until(SOON, "the v2 repair", || !broken.v2_attached(prog));
    eprintln!("v2 repaired {:?} after the breakage", t.elapsed());
    assert!(broken.opens(), "the container opens its devices again");
    wait_until(SOON, "both repairs counted", || {
        agent
            .metric("warden_repairs_total{check=\"device-access-broken\",result=\"repaired\"}")
            .ok()
            .flatten()
            == Some(2.0)
    });
    let report = agent
        .wait_report(SOON, |r| clean(r, &broken))
        .expect("the report is clean again");
    assert_eq!(report["kind"], "NodeRuntimeReport");
    assert_eq!(report["metadata"]["name"], "e2e-node");

    // The log says what was repaired, and why it was safe enough to say so.
    let repairs: Vec<Value> = agent
        .log_lines()
        .into_iter()
        .filter(|l| l["fields"]["message"] == "repair")
        .collect();
    assert_eq!(repairs.len(), 2, "{repairs:?}");
    assert!(repairs
        .iter()
        .all(|l| l["fields"]["container"] == broken.id.as_str()
            && l["fields"]["result"] == "repaired"));
    // The healthy container was not touched.
    assert_eq!(
        fs::read_to_string(other.devices_dir().join("devices.list")).expect("list"),
        other_list
    );
    assert!(other.opens());
    // Only the start scan and change-triggered scans ran: the timer (30 s)
    // never fired.
    assert_eq!(
        agent
            .metric("warden_scans_total{trigger=\"timer\"}")
            .expect("metrics"),
        None
    );

    let status = agent
        .stop(Duration::from_secs(10))
        .expect("stops on SIGTERM");
    assert!(status.success(), "exit status {status}");
}

#[test]
fn audit_only_reports() {
    if !prerequisites("agent_audit") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let s = setup();
    let v1 = Ctr::start(&s.root, s.tmp.path(), &id("aud-v1")).expect("start");
    let v2 = Ctr::start(&s.root, s.tmp.path(), &id("aud-v2")).expect("start");
    let policy = policy_file(s.tmp.path(), "Audit").expect("policy");
    let mut agent = Agent::start(
        s.tmp.path(),
        &s.root,
        &["--policy", policy.to_str().expect("utf-8")],
    )
    .expect("agent starts");
    agent
        .wait_report(SOON, |r| {
            r["summary"]["containers"] == 2 && r["summary"]["findings"] == 0
        })
        .expect("first report");

    v1.break_v1().expect("break v1");
    let prog = v2.break_v2().expect("break v2");
    let broken = |r: &Value, c: &Ctr| {
        findings_for(r, &c.id).iter().any(|f| {
            f["check"] == "device-access-broken"
                && f["repaired"] == false
                && f["severity"] == "Error"
        })
    };
    let report = agent
        .wait_report(SOON, |r| broken(r, &v1) && broken(r, &v2))
        .expect("both breakages reported");
    assert_eq!(report["summary"]["unrepaired"], 2);
    assert_eq!(report["summary"]["repaired"], 0);

    // Given time, still nothing repaired.
    std::thread::sleep(Duration::from_secs(3));
    assert!(!v1.v1_allows() && !v1.opens(), "Audit must not repair v1");
    assert!(
        v2.v2_attached(prog) && !v2.opens(),
        "Audit must not repair v2"
    );
    let report = agent.report().expect("report");
    assert!(broken(&report, &v1) && broken(&report, &v2));
    assert_eq!(
        agent
            .metric("warden_findings{check=\"device-access-broken\",severity=\"error\"}")
            .expect("metrics"),
        Some(2.0)
    );
    assert!(
        !agent
            .get("/metrics")
            .expect("metrics")
            .1
            .contains("warden_repairs_total{"),
        "no repair attempted"
    );
    let status = agent
        .stop(Duration::from_secs(10))
        .expect("stops on SIGTERM");
    assert!(status.success(), "exit status {status}");
}

/// A v1 freezer cgroup holding a sleeping process; thawed, emptied and
/// removed on drop whatever the test did.
struct Frozen {
    dir: PathBuf,
    child: Child,
}

impl Frozen {
    fn new(name: &str) -> Frozen {
        let dir = PathBuf::from(format!("/sys/fs/cgroup/freezer/{name}"));
        fs::create_dir_all(&dir).expect("mkdir freezer cgroup");
        let child = Command::new("sleep")
            .arg("600")
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn sleep");
        let me = Frozen { dir, child };
        fs::write(me.dir.join("cgroup.procs"), me.child.id().to_string()).expect("move sleep");
        fs::write(me.dir.join("freezer.state"), "FROZEN").expect("freeze");
        wait_until(Duration::from_secs(5), "FROZEN", || me.state() == "FROZEN");
        me
    }

    fn state(&self) -> String {
        fs::read_to_string(self.dir.join("freezer.state"))
            .unwrap_or_default()
            .trim()
            .to_owned()
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = fs::write(self.dir.join("freezer.state"), "THAWED");
        let _ = self.child.kill();
        let _ = self.child.wait();
        for _ in 0..100 {
            if fs::remove_dir(&self.dir).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

#[test]
fn a_freeze_left_by_a_dead_agent_is_thawed_at_start() {
    if !prerequisites("agent_thaw")
        || !testing::require_path(
            "agent_thaw",
            Path::new("/sys/fs/cgroup/freezer/cgroup.procs"),
        )
    {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let s = setup();
    let frozen = Frozen::new(&format!("warden-e2e-agent-thaw-{}", std::process::id()));
    // The "previous agent": a process that has exited.
    let mut dead = Command::new("true").spawn().expect("spawn true");
    let dead_pid = dead.id() as i32;
    dead.wait().expect("wait");
    let markers = s.tmp.path().join("state/frozen");
    fs::create_dir_all(&markers).expect("mkdir markers");
    let marker = markers.join("crashed.json");
    let m = FreezeMarker {
        target: FreezeTarget::V1(frozen.dir.clone()),
        owner_pid: dead_pid,
        owner_start: 1,
    };
    fs::write(&marker, serde_json::to_string(&m).expect("encode")).expect("write marker");
    assert_eq!(frozen.state(), "FROZEN");

    let mut agent = Agent::start(s.tmp.path(), &s.root, &[]).expect("agent starts");
    wait_until(SOON, "the thaw", || frozen.state() == "THAWED");
    assert!(!marker.exists(), "the marker is removed once thawed");
    assert!(
        agent
            .log_lines()
            .iter()
            .any(|l| l["fields"]["message"] == "thawed a cgroup left frozen"),
        "{}",
        agent.log_text()
    );
    let status = agent
        .stop(Duration::from_secs(10))
        .expect("stops on SIGTERM");
    assert!(status.success(), "exit status {status}");
}
