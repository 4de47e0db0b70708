//! Scenario 5 of issue 5 (seed 002): a process named like a shim
//! (`containerd-shim`) opens an eventfd on each signal, as the leaking shim
//! did on each exec. `warden check` reports `shim-fd-leak` only once the
//! count has grown across scans (kept in `--state-dir`), never from one
//! look at a process that simply holds many eventfds; the evidence has the
//! counts and a rate. A process with another name that leaks the same way
//! is not a shim and is not reported.

use std::io::{BufRead, BufReader, Lines};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use warden_e2e::warden;

/// The fake shim child; SIGKILLed and reaped on drop.
struct FakeShim {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    eventfds: usize,
}

impl FakeShim {
    fn spawn(name: &str) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fake_shim"))
            .args(["--name", name])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn fake_shim");
        let stdout = child.stdout.take().expect("stdout");
        let mut me = Self {
            child,
            lines: BufReader::new(stdout).lines(),
            eventfds: 0,
        };
        assert_eq!(me.next_line(), "ready");
        me
    }

    fn next_line(&mut self) -> String {
        self.lines
            .next()
            .expect("fake_shim exited")
            .expect("read fake_shim")
    }

    fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("pid range")
    }

    /// Make it leak `n` more eventfds, one signal at a time (signals of one
    /// kind do not queue).
    fn leak(&mut self, n: usize) {
        for _ in 0..n {
            kill(Pid::from_raw(self.pid()), Signal::SIGUSR1).expect("SIGUSR1");
            self.eventfds += 1;
            assert_eq!(self.next_line(), format!("eventfds {}", self.eventfds));
        }
    }
}

impl Drop for FakeShim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `shim-fd-leak` findings about `pid`.
fn leaks_of(report: &Value, pid: i32) -> Vec<Value> {
    // Evidence values are strings.
    let want = pid.to_string();
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["check"] == "shim-fd-leak" && f["evidence"]["pid"].as_str() == Some(&want))
        .cloned()
        .collect()
}

fn scan(state_dir: &Path) -> Value {
    warden::check_json(&["--state-dir", &state_dir.display().to_string()]).expect("warden check")
}

fn evidence_num(f: &Value, key: &str) -> f64 {
    f["evidence"][key]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("evidence {key} missing or not a number: {f}"))
}

#[test]
fn a_shim_whose_eventfds_grow_is_reported_after_growth_only() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let state = tmp.path().join("state");
    let mut shim = FakeShim::spawn("containerd-shim");
    let mut other = FakeShim::spawn("not-a-shim");
    // Already many eventfds at the first look: one scan cannot tell a leak
    // from a busy shim.
    shim.leak(12);
    other.leak(12);
    let proc_comm = std::fs::read_to_string(format!("/proc/{}/comm", shim.pid())).expect("comm");
    assert_eq!(proc_comm.trim(), "containerd-shim");

    let first = scan(&state);
    assert!(
        leaks_of(&first, shim.pid()).is_empty(),
        "first scan: no growth seen yet"
    );
    let saved: Value = serde_json::from_slice(
        &std::fs::read(state.join("shim-fds.json")).expect("counts kept in the state dir"),
    )
    .expect("state JSON");
    let key = saved
        .as_object()
        .expect("state map")
        .keys()
        .find(|k| k.starts_with(&format!("{}:", shim.pid())))
        .cloned()
        .expect("the shim is tracked by pid:start_time");
    assert_eq!(saved[&key]["first_count"], 12, "{saved}");
    assert!(
        !saved
            .as_object()
            .expect("map")
            .keys()
            .any(|k| k.starts_with(&format!("{}:", other.pid()))),
        "a process not named like a shim is not tracked"
    );

    // Below the growth threshold (5): still nothing.
    shim.leak(3);
    other.leak(3);
    let second = scan(&state);
    assert!(leaks_of(&second, shim.pid()).is_empty(), "growth 3 < 5");

    // Past it: reported, with counts and a rate.
    shim.leak(4);
    other.leak(4);
    let third = scan(&state);
    let found = leaks_of(&third, shim.pid());
    assert_eq!(found.len(), 1, "{}", third["findings"]);
    let f = &found[0];
    assert_eq!(f["severity"], "warning", "{f}");
    assert_eq!(evidence_num(f, "eventfds"), 19.0, "{f}");
    assert_eq!(evidence_num(f, "eventfds_first_seen"), 12.0, "{f}");
    let rate = evidence_num(f, "growth_per_minute");
    assert!(rate > 0.0, "{f}");
    assert!(
        f["message"]
            .as_str()
            .is_some_and(|m| m.contains("per minute")),
        "{f}"
    );
    assert!(leaks_of(&third, other.pid()).is_empty(), "not a shim");

    // Another state directory has no history: nothing to compare with.
    let fresh = scan(&tmp.path().join("fresh"));
    assert!(leaks_of(&fresh, shim.pid()).is_empty());

    // The shim exits: the next scan forgets it and reports nothing about it.
    let pid = shim.pid();
    drop(shim);
    let after = scan(&state);
    assert!(leaks_of(&after, pid).is_empty());
    let saved: Value =
        serde_json::from_slice(&std::fs::read(state.join("shim-fds.json")).expect("state"))
            .expect("state JSON");
    assert!(
        saved.get(&key).is_none(),
        "an exited shim is dropped from the state: {saved}"
    );
}
