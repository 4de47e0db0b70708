//! Real scenarios of issue 5 (device cases): break one of several running
//! containers the way the seeds do, and check that `warden check` reports
//! `device-access-broken` for that container only, that `--dry-run` plans
//! without changing anything, that `--fix` repairs it (the container opens
//! /dev/null and /dev/urandom again), and that the others are untouched.
//!
//! The scenarios run one at a time (a lock): `--fix` acts on every container
//! of the node, so two scenarios side by side would repair each other's.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use runtime_core::testing;
use serde_json::Value;
use warden_e2e::container::unique_id;
use warden_e2e::{warden, Bundle, Container, Runtime};

static SERIAL: Mutex<()> = Mutex::new(());

fn prerequisites(name: &str) -> bool {
    testing::require_root(name)
        && testing::require_tool(name, "runc")
        && testing::require_tool(name, "crun")
        && testing::require_path(name, Path::new(warden_e2e::bundle::BUSYBOX))
        && testing::require_path(name, Path::new("/sys/fs/cgroup/devices/devices.list"))
}

struct Fleet {
    _tmp: tempfile::TempDir,
    broken: Container,
    others: Vec<Container>,
}

fn fleet(tag: &str) -> Fleet {
    let tmp = tempfile::tempdir().expect("tempdir");
    let start = |rt: Runtime, name: &str| {
        let id = unique_id(&format!("{tag}-{name}"));
        let dir = tmp.path().join(&id);
        fs::create_dir_all(&dir).expect("mkdir");
        let b = Bundle::busybox(&dir, &id, &["sleep", "600"]).expect("bundle");
        Container::run(rt, &id, &b).expect("container starts")
    };
    let broken = start(Runtime::Runc, "broken");
    let others = vec![
        start(Runtime::Runc, "runc-ok"),
        start(Runtime::Crun, "crun-ok"),
    ];
    Fleet {
        _tmp: tmp,
        broken,
        others,
    }
}

fn devices_dir(c: &Container) -> PathBuf {
    PathBuf::from(format!("/sys/fs/cgroup/devices/warden-e2e/{}", c.id))
}

fn unified_dir(c: &Container) -> PathBuf {
    PathBuf::from(format!("/sys/fs/cgroup/unified/warden-e2e/{}", c.id))
}

fn opens(c: &Container) -> bool {
    let (ok1, _) = c.exec(&["cat", "/dev/null"]).expect("exec");
    let (ok2, _) = c.exec(&["head", "-c", "1", "/dev/urandom"]).expect("exec");
    ok1 && ok2
}

fn findings_for<'a>(report: &'a Value, id: &str) -> Vec<&'a Value> {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["container"]["id"] == id)
        .collect()
}

/// The shared body: `break_it` narrows the broken container's access;
/// `after_fix` checks the broken container once `--fix` repaired it.
fn scenario(tag: &str, break_it: impl FnOnce(&Container), after_fix: impl FnOnce(&Container)) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let f = fleet(tag);
    assert!(opens(&f.broken), "healthy before the breakage");
    let lists_before: Vec<String> = f
        .others
        .iter()
        .map(|c| fs::read_to_string(devices_dir(c).join("devices.list")).expect("list"))
        .collect();

    break_it(&f.broken);
    assert!(
        !opens(&f.broken),
        "the breakage must take /dev/null or /dev/urandom away"
    );

    let report = warden::check_json(&[]).expect("check");
    let broken = findings_for(&report, &f.broken.id);
    assert!(
        broken.iter().any(|x| x["check"] == "device-access-broken"),
        "broken container not reported: {broken:?}"
    );
    for c in &f.others {
        assert!(
            findings_for(&report, &c.id).is_empty(),
            "{} wrongly reported",
            c.id
        );
    }

    // --dry-run plans and changes nothing.
    let dry = warden::check_json(&["--dry-run"]).expect("dry-run");
    let plans = dry["plans"].as_array().expect("plans listed");
    assert!(
        plans
            .iter()
            .any(|p| p["check"] == "device-access-broken" && p["plan"].is_object()),
        "no plan: {plans:?}"
    );
    assert!(!opens(&f.broken), "--dry-run must not repair");

    // --fix repairs, and says so.
    let fixed = warden::check_json(&["--fix"]).expect("fix");
    let mine = findings_for(&fixed, &f.broken.id);
    let dev = mine
        .iter()
        .find(|x| x["check"] == "device-access-broken")
        .expect("finding kept in the report");
    assert_eq!(dev["repaired"], true, "not marked repaired: {dev}");
    assert!(
        opens(&f.broken),
        "the container opens /dev/null and /dev/urandom again"
    );
    after_fix(&f.broken);

    // Idempotent: nothing left to do.
    let again = warden::check_json(&["--fix"]).expect("fix again");
    assert!(
        findings_for(&again, &f.broken.id)
            .iter()
            .all(|x| x["check"] != "device-access-broken"),
        "a second --fix finds nothing"
    );
    for (c, before) in f.others.iter().zip(lists_before) {
        let after = fs::read_to_string(devices_dir(c).join("devices.list")).expect("list");
        assert_eq!(after, before, "{} untouched", c.id);
        assert!(opens(c));
    }
}

#[test]
fn v1_rules_removed_from_one_container_are_restored() {
    if !prerequisites("v1_rules_removed") {
        return;
    }
    scenario(
        "v1",
        |c| {
            warden_e2e::breakage::break_v1(&devices_dir(c)).expect("break v1");
        },
        |_| {},
    );
}

#[test]
fn narrower_v2_program_on_one_container_is_replaced() {
    if !prerequisites("v2_narrower_program")
        || !testing::require_path(
            "v2_narrower_program",
            Path::new("/sys/fs/cgroup/unified/cgroup.procs"),
        )
    {
        return;
    }
    // On this hybrid host the container has a v1 devices cgroup, which
    // governs (runc attaches no v2 program): the repair only detaches the
    // denying program and attaches none of its own, so the cgroup's own
    // program list is what it was before the breakage.
    let before = std::cell::RefCell::new(Vec::new());
    scenario(
        "v2",
        |c| {
            before.replace(own_programs(&unified_dir(c)));
            let bad = warden_e2e::breakage::break_v2(&unified_dir(c)).expect("break v2");
            assert!(own_programs(&unified_dir(c)).contains(&bad));
        },
        |c| {
            assert_eq!(
                own_programs(&unified_dir(c)),
                *before.borrow(),
                "after --fix the cgroup holds exactly the programs it had before the breakage"
            );
        },
    );
}

/// The device programs attached at `dir` itself (not inherited).
fn own_programs(dir: &Path) -> Vec<u32> {
    use runtime_core::devices::bpf;
    use std::os::fd::AsFd;
    let cg = bpf::kernel::open_cgroup(dir).expect("open cgroup");
    let mut ids = bpf::kernel::query(cg.as_fd(), false)
        .expect("query")
        .prog_ids;
    ids.sort_unstable();
    ids
}
