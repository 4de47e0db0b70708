//! `warden check --fix` interrupted (SIGINT, SIGTERM) while it repairs:
//! it stops starting repairs, prints its report and exits, instead of dying
//! in the middle of one (inside a freeze, on cgroup v1 with systemd).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use runtime_core::testing::fixtures::HostFixture;
use warden_e2e::warden;

#[test]
fn an_interrupted_fix_stops_cleanly_and_reports() {
    // A fixture host: one runc container whose devices list lost /dev/null.
    let h = HostFixture::hybrid();
    for d in ["/dev/null", "/dev/zero"] {
        h.device(d);
    }
    h.runc_container("c1", 4100);
    h.write(
        "sys/fs/cgroup/devices/warden/c1/devices.list",
        "c 1:5 rwm\nc *:* m\nb *:* m\n",
    );
    // Another Warden holds the node's repair lock: this one waits, which is
    // where the signal reaches it.
    std::fs::create_dir_all(h.path().join("run/warden")).expect("mkdir");
    let _held = Flock::lock(
        std::fs::File::create(h.path().join("run/warden/repair.lock")).expect("lock file"),
        FlockArg::LockExclusive,
    )
    .expect("lock");
    let policy = h.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "apiVersion: runtimewarden.io/v1alpha1\nkind: RuntimePolicy\nmetadata: {name: p}\n\
         spec:\n  mode: Enforce\n  devices:\n    required: [/dev/null, /dev/zero]\n",
    )
    .expect("policy");
    let child = Command::new(warden::bin().expect("warden binary"))
        .args(["check", "--fix", "--output", "json", "--host-root"])
        .arg(h.path())
        .arg("--policy")
        .arg(&policy)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn warden check --fix");
    std::thread::sleep(Duration::from_millis(1500));
    let t0 = Instant::now();
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).expect("SIGINT");
    let out = child.wait_with_output().expect("wait");
    let stopped_in = t0.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a report with the finding unrepaired, not death by signal: {stderr}"
    );
    assert!(
        stopped_in < Duration::from_secs(5),
        "{stopped_in:?}: {stderr}"
    );
    assert!(stderr.contains("stopping"), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
    let f = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["check"] == "device-access-broken")
        .expect("the finding");
    assert_eq!(f["repaired"], false);
    // Nothing was written to the container's cgroup.
    let allow: PathBuf = h
        .path()
        .join("sys/fs/cgroup/devices/warden/c1/devices.allow");
    assert!(!allow.exists(), "no repair was started");
}
