//! The engine's cycle on a fixture host with fake ports: a broken container
//! is found, planned, repaired, verified; a repair that fails backs off and
//! is not planned again until its backoff ends.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use runtime_core::checks::CheckId;
use runtime_core::diagnose::{CheckPolicy, ScanOptions};
use runtime_core::engine::{AttemptResult, Engine, Limits, Mode};
use runtime_core::testing::fakes::{Call, FakePorts};
use runtime_core::testing::fixtures::HostFixture;

/// The devices list runc gives a container from `runc spec`, without
/// /dev/null.
const WITHOUT_NULL: &str =
    "c 1:5 rwm\nc 1:7 rwm\nc 1:8 rwm\nc 1:9 rwm\nc 5:0 rwm\nc 5:2 rwm\nc 10:200 rwm\nc 136:* rwm\nc *:* m\nb *:* m\n";

fn node() -> (HostFixture, FakePorts, Engine, PathBuf) {
    let h = HostFixture::hybrid();
    for d in ["/dev/null", "/dev/zero", "/dev/urandom"] {
        h.device(d);
    }
    h.runc_container("c1", 4100);
    let fakes = FakePorts::new(h.path());
    let dir = PathBuf::from("/sys/fs/cgroup/devices/warden/c1");
    fakes.cgroups.set_list(&dir, WITHOUT_NULL);
    let engine = Engine::new(ScanOptions {
        ports: fakes.ports.clone(),
        state_dir: Some("/run/warden".into()),
        ..ScanOptions::for_root(h.root())
    });
    (h, fakes, engine, dir)
}

fn policy() -> CheckPolicy {
    CheckPolicy {
        required_devices: ["/dev/null", "/dev/zero", "/dev/urandom"]
            .iter()
            .map(PathBuf::from)
            .collect(),
        ..CheckPolicy::default()
    }
}

#[test]
fn a_broken_container_is_found_planned_repaired_and_verified() {
    let (_h, fakes, mut engine, dir) = node();
    let planned = engine.scan(&policy(), Mode::Enforce);
    let f = planned
        .report
        .findings
        .iter()
        .find(|f| f.check == CheckId::DeviceAccessBroken)
        .expect("the container cannot open /dev/null");
    assert_eq!(f.message(), "container cannot open /dev/null");
    assert!(planned.has_work());
    let round = engine.repair(
        planned,
        &policy(),
        &Limits::default(),
        &AtomicBool::new(false),
    );
    assert_eq!(round.attempts.len(), 1);
    assert_eq!(round.attempts[0].result, AttemptResult::Repaired);
    let f = round
        .report
        .findings
        .iter()
        .find(|f| f.check == CheckId::DeviceAccessBroken)
        .expect("kept in the report");
    assert!(f.repaired, "{:?}", f.repair_note);
    assert_eq!(
        fakes.log.calls(),
        vec![Call::V1Write(dir.clone(), "allow c 1:3 rwm".into())]
    );
    // The next cycle finds nothing to do.
    let again = engine.scan(&policy(), Mode::Enforce);
    assert!(!again.has_work());
    assert!(again
        .report
        .findings
        .iter()
        .all(|f| f.check != CheckId::DeviceAccessBroken));
}

#[test]
fn a_failing_repair_backs_off_and_is_not_planned_meanwhile() {
    let (_h, fakes, mut engine, dir) = node();
    let planned = engine.scan(&policy(), Mode::Enforce);
    // The list vanishes between the scan and the repair (the cgroup is being
    // torn down): the repair fails.
    fakes.cgroups.lists.lock().unwrap().clear();
    let round = engine.repair(
        planned,
        &policy(),
        &Limits::default(),
        &AtomicBool::new(false),
    );
    assert_eq!(round.attempts[0].result, AttemptResult::Failed);
    // Broken again on the next scan, but backing off: no plan is made.
    fakes.cgroups.set_list(&dir, WITHOUT_NULL);
    let next = engine.scan(&policy(), Mode::Enforce);
    assert!(!next.has_work(), "backing off");
    let p = next
        .plans
        .iter()
        .find(|p| p.check == CheckId::DeviceAccessBroken)
        .expect("considered");
    assert!(p.plan.is_none(), "{p:?}");
    assert!(
        p.not_planned
            .as_deref()
            .unwrap_or("")
            .contains("backing off"),
        "{p:?}"
    );
    // A dry run still shows what would be done.
    let dry = engine.scan(&policy(), Mode::DryRun);
    assert!(dry.plans.iter().any(|p| p.plan.is_some()));
}

#[test]
fn a_freeze_left_by_a_dead_process_is_thawed_by_the_next_scan() {
    use runtime_core::cgroups::freezer::FreezeMarker;
    use runtime_core::cgroups::FreezeTarget;
    let (h, _fakes, mut engine, _dir) = node();
    // A `warden check --fix` killed inside its freeze: the cgroup is still
    // FROZEN and its marker names a process that is gone.
    let cg = "sys/fs/cgroup/freezer/warden/c1";
    h.write(&format!("{cg}/freezer.state"), "FROZEN\n");
    h.write(&format!("{cg}/freezer.self_freezing"), "1\n");
    h.write(&format!("{cg}/tasks"), "");
    let marker = FreezeMarker {
        // Markers record host paths; the scan re-roots them.
        target: FreezeTarget::V1(std::path::Path::new("/").join(cg)),
        owner_pid: 999_999,
        owner_start: 1,
    };
    h.write(
        "run/warden/frozen/left.json",
        &serde_json::to_string(&marker).expect("json"),
    );
    engine.scan(&policy(), Mode::Report);
    let state = std::fs::read_to_string(h.path().join(cg).join("freezer.state")).expect("state");
    assert_eq!(
        state.trim(),
        "THAWED",
        "thawed by the next scan, not the next agent start"
    );
    assert!(!h.path().join("run/warden/frozen/left.json").exists());
}

#[test]
fn a_container_that_keeps_breaking_is_repaired_five_times_an_hour_then_reported() {
    let (_h, fakes, mut engine, dir) = node();
    for round in 0..5 {
        let planned = engine.scan(&policy(), Mode::Enforce);
        assert!(planned.has_work(), "repair {round} runs");
        let r = engine.repair(
            planned,
            &policy(),
            &Limits::default(),
            &AtomicBool::new(false),
        );
        assert_eq!(r.attempts[0].result, AttemptResult::Repaired);
        // Something (a runtime, systemd) narrows the list again.
        fakes.cgroups.set_list(&dir, WITHOUT_NULL);
    }
    let sixth = engine.scan(&policy(), Mode::Enforce);
    assert!(!sixth.has_work(), "the budget is spent: no sixth repair");
    let round = sixth.into_round();
    let f = round
        .report
        .findings
        .iter()
        .find(|f| f.check == CheckId::DeviceAccessBroken)
        .expect("still reported");
    let note = f.repair_note.as_deref().unwrap_or("");
    assert!(note.contains("flapping"), "{note}");
}

#[test]
fn repairs_wait_for_another_warden_repairing_on_the_node() {
    use nix::fcntl::{Flock, FlockArg};
    let (h, fakes, mut engine, _dir) = node();
    std::fs::create_dir_all(h.path().join("run/warden")).expect("mkdir");
    let held = Flock::lock(
        std::fs::File::create(h.path().join("run/warden/repair.lock")).expect("lock file"),
        FlockArg::LockExclusive,
    )
    .expect("the other Warden holds the lock");
    let limits = Limits {
        lock_wait: std::time::Duration::from_millis(100),
        ..Limits::default()
    };
    let planned = engine.scan(&policy(), Mode::Enforce);
    let r = engine.repair(planned, &policy(), &limits, &AtomicBool::new(false));
    assert!(
        r.attempts.is_empty(),
        "nothing repaired while the lock is held"
    );
    assert_eq!(r.abandoned, 1);
    assert!(fakes.log.calls().is_empty(), "nothing written");
    let f = r
        .report
        .findings
        .iter()
        .find(|f| f.check == CheckId::DeviceAccessBroken)
        .expect("reported");
    assert!(
        f.repair_note
            .as_deref()
            .unwrap_or("")
            .contains("another Warden"),
        "{:?}",
        f.repair_note
    );
    drop(held);
    let planned = engine.scan(&policy(), Mode::Enforce);
    let r = engine.repair(planned, &policy(), &limits, &AtomicBool::new(false));
    assert_eq!(
        r.attempts[0].result,
        AttemptResult::Repaired,
        "once it is free"
    );
}
