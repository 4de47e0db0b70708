//! v1 device rules against the real kernel: cgroups made for each test under
//! `/sys/fs/cgroup/devices` (and `/sys/fs/cgroup/freezer`) with a process
//! inside. After every change the kernel's `devices.list` is compared with the
//! emulator, and a shell *inside the cgroup* opens real device nodes for
//! reading, writing and both, which must succeed exactly where the emulator
//! says they may.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use runtime_core::devices::v1::lines::parse_write;
use runtime_core::devices::v1::{
    apply_target, update_devices, ApplyError, DefaultPolicy, Emulator, UpdateError, V1DeviceCgroup,
    V1Paths,
};
use runtime_core::devices::{Access, DeviceRule, DeviceType};
use runtime_core::testing::{self, TestCgroup};

const DEVICES: &str = "/sys/fs/cgroup/devices";
const FREEZER: &str = "/sys/fs/cgroup/freezer";

/// Device nodes every Linux host has, all `c 1:N`.
const NODES: [(&str, u32); 5] = [
    ("/dev/null", 3),
    ("/dev/zero", 5),
    ("/dev/full", 7),
    ("/dev/random", 8),
    ("/dev/urandom", 9),
];

/// A `sleep` standing in for the workload; killed and reaped on drop.
struct Workload(Child);

impl Workload {
    fn start(cgroups: &[&TestCgroup]) -> Self {
        let child = Command::new("sleep")
            .arg("600")
            .spawn()
            .expect("spawn sleep");
        for cg in cgroups {
            cg.add(child.id());
        }
        Workload(child)
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let deadline = Instant::now() + Duration::from_secs(2);
        while matches!(self.0.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

fn ready(test: &str) -> bool {
    testing::require_root(test)
        && testing::require_path(test, &Path::new(DEVICES).join("devices.allow"))
        && testing::require_tool(test, "sh")
}

/// Open every node of [`NODES`] from a shell that first moves itself into
/// `cg`: for reading, writing, and both. Returns `(minor, r, w, rw)`.
fn probe(cg: &TestCgroup) -> Vec<(u32, bool, bool, bool)> {
    let mut script = format!("echo $$ > {}/cgroup.procs || exit 99\n", cg.dir.display());
    for (node, _) in NODES {
        script.push_str(&format!(
            "r=0; true < {node} && r=1\n\
             w=0; true > {node} && w=1\n\
             rw=0; true <> {node} && rw=1\n\
             echo $r $w $rw\n"
        ));
    }
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        // Opened here, outside the cgroup: the probe itself must not need
        // /dev/null (its failed opens print to this).
        .stderr(Stdio::null())
        .output()
        .expect("run probe");
    assert!(out.status.success(), "probe failed: {out:?}");
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let rows: Vec<_> = text
        .lines()
        .zip(NODES)
        .map(|(line, (_, minor))| {
            let b: Vec<bool> = line.split(' ').map(|x| x == "1").collect();
            (minor, b[0], b[1], b[2])
        })
        .collect();
    assert_eq!(rows.len(), NODES.len(), "probe output: {text}");
    rows
}

/// The kernel refuses and allows exactly what the emulator says.
fn assert_kernel_agrees(cg: &TestCgroup, emu: &Emulator, context: &str) {
    let rw = Access::READ.union(Access::WRITE);
    for (minor, r, w, both) in probe(cg) {
        let want = (
            emu.allows(DeviceType::Char, 1, minor, Access::READ),
            emu.allows(DeviceType::Char, 1, minor, Access::WRITE),
            emu.allows(DeviceType::Char, 1, minor, rw),
        );
        assert_eq!(
            (r, w, both),
            want,
            "{context}: c 1:{minor} (r, w, rw) in {}",
            cg.dir.display()
        );
    }
}

fn rules(writes: &[&str]) -> Vec<DeviceRule> {
    writes
        .iter()
        .map(|w| parse_write(w).expect("test rule"))
        .collect()
}

fn target(writes: &[&str]) -> Emulator {
    Emulator::from_rules(&rules(writes)).expect("test target")
}

/// Docker's default device rules.
const DOCKER: &[&str] = &[
    "deny a",
    "allow c *:* m",
    "allow b *:* m",
    "allow c 1:3 rwm",
    "allow c 1:5 rwm",
    "allow c 1:7 rwm",
    "allow c 1:8 rwm",
    "allow c 1:9 rwm",
    "allow c 5:0 rwm",
    "allow c 5:1 rwm",
    "allow c 5:2 rwm",
    "allow c 136:* rwm",
    "allow c 10:200 rwm",
];

fn with(base: &[&'static str], extra: &[&'static str]) -> Vec<&'static str> {
    base.iter().chain(extra).copied().collect()
}

fn sorted_lines(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s.lines().map(str::to_string).collect();
    v.sort();
    v
}

#[test]
fn deny_list_transitions_match_the_kernel_and_never_need_a_freeze() {
    let test = "deny_list_transitions";
    if !ready(test) {
        return;
    }
    let cg = TestCgroup::new(DEVICES, "denylist");
    let dev = V1DeviceCgroup::new(&cg.dir);
    // The initial rules go in before the workload does.
    dev.write_all(&rules(DOCKER)).unwrap();
    let initial_text = dev.read_list().unwrap();
    let initial = target(DOCKER);
    assert_eq!(initial_text, initial.devices_list());
    let _workload = Workload::start(&[&cg]);
    assert_kernel_agrees(&cg, &initial, "docker defaults");

    // (name, target, expected number of writes)
    let steps: Vec<(&str, Vec<&str>, usize)> = vec![
        ("add /dev/fuse", with(DOCKER, &["allow c 10:229 rwm"]), 1),
        (
            "remove /dev/full",
            with(DOCKER, &["allow c 10:229 rwm", "deny c 1:7 rwm"]),
            1,
        ),
        (
            "partial: null read-only, zero loses mknod",
            with(
                DOCKER,
                &[
                    "allow c 10:229 rwm",
                    "deny c 1:7 rwm",
                    "deny c 1:3 w",
                    "deny c 1:5 m",
                ],
            ),
            2,
        ),
        (
            "partial: null write-only now",
            with(
                DOCKER,
                &[
                    "allow c 10:229 rwm",
                    "deny c 1:7 rwm",
                    "deny c 1:3 r",
                    "deny c 1:5 m",
                ],
            ),
            2,
        ),
        (
            "split the c 1:* family into a wildcard",
            vec![
                "deny a",
                "allow c *:* m",
                "allow b *:* m",
                "allow c 1:* rw",
                "allow c 1:9 rwm",
            ],
            9,
        ),
        ("back to the docker defaults", DOCKER.to_vec(), 10),
    ];
    for (name, writes, expected_writes) in steps {
        let want = target(&writes);
        let applied = apply_target(&cg.dir, &want).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!applied.transition.narrowing(), "{name}");
        assert_eq!(
            applied.transition.writes().len(),
            expected_writes,
            "{name}: {:?}",
            applied.transition
        );
        let kernel = dev.read().unwrap();
        assert!(kernel.same_permissions(&want), "{name}: {kernel:?}");
        assert_eq!(kernel.default_policy(), DefaultPolicy::Deny);
        assert_kernel_agrees(&cg, &want, name);
    }
    // Back where we started: the same lines (not necessarily in the same
    // order: re-added exceptions go to the end of the kernel's list).
    assert_eq!(
        sorted_lines(&dev.read_list().unwrap()),
        sorted_lines(&initial_text)
    );
    // And nothing left to do.
    let again = apply_target(&cg.dir, &initial).unwrap();
    assert!(again.transition.is_empty());
}

#[test]
fn allow_all_transitions_match_the_kernel_and_refuse_to_narrow() {
    let test = "allow_all_transitions";
    if !ready(test) {
        return;
    }
    let cg = TestCgroup::new(DEVICES, "allowall");
    let dev = V1DeviceCgroup::new(&cg.dir);
    let _workload = Workload::start(&[&cg]);
    assert_eq!(dev.read_list().unwrap(), "a *:* rwm\n");
    assert_kernel_agrees(&cg, &Emulator::allow_all(), "new cgroup");

    // Deny /dev/full: the list still says `a *:* rwm`, the kernel refuses.
    let no_full = target(&["allow a", "deny c 1:7 rwm"]);
    let applied = apply_target(&cg.dir, &no_full).unwrap();
    assert_eq!(applied.transition.writes().len(), 2, "reset + deny");
    assert_eq!(dev.read_list().unwrap(), "a *:* rwm\n");
    assert_kernel_agrees(&cg, &no_full, "deny /dev/full");

    // Lift it again: the hidden deny is cleared by the widening reset.
    let applied = apply_target(&cg.dir, &Emulator::allow_all()).unwrap();
    assert_eq!(applied.transition.writes().len(), 1);
    assert_kernel_agrees(&cg, &Emulator::allow_all(), "allow all again");

    // Partial: /dev/zero read-only through a deny of w, in allow mode.
    let zero_ro = target(&["allow a", "deny c 1:5 w"]);
    apply_target(&cg.dir, &zero_ro).unwrap();
    assert_kernel_agrees(&cg, &zero_ro, "zero read-only");

    // An allow list of every char device has an allow-mode twin: no narrowing.
    let chars = target(&["deny a", "allow c *:* rwm"]);
    let applied = apply_target(&cg.dir, &chars).unwrap();
    assert!(!applied.transition.narrowing());
    assert_eq!(dev.read_list().unwrap(), "a *:* rwm\n");
    assert_kernel_agrees(&cg, &chars, "all char devices");

    // Docker's allow list must narrow: refused, nothing written.
    let docker = target(DOCKER);
    match apply_target(&cg.dir, &docker) {
        Err(ApplyError::Narrowing { reason }) => assert!(reason.contains("allow-all")),
        other => panic!("expected a narrowing refusal, got {other:?}"),
    }
    assert_eq!(dev.read_list().unwrap(), "a *:* rwm\n");
    assert_kernel_agrees(&cg, &chars, "after the refusal");
}

/// A tiny deterministic generator, so a failure can be replayed.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

#[test]
fn emulator_agrees_with_the_kernel_on_random_writes() {
    let test = "emulator_agrees_with_the_kernel";
    if !ready(test) {
        return;
    }
    let cg = TestCgroup::new(DEVICES, "random");
    let dev = V1DeviceCgroup::new(&cg.dir);
    let mut emu = Emulator::allow_all();
    let mut rng = Lcg(0x5eed_0000 + u64::from(std::process::id()));
    let majors = [None, Some(1), Some(5)];
    let minors = [None, Some(3), Some(5), Some(7), Some(9)];
    for step in 0..400 {
        let kind = match rng.next(12) {
            0 => DeviceType::All,
            1..=2 => DeviceType::Block,
            _ => DeviceType::Char,
        };
        let rule = DeviceRule {
            allow: rng.next(2) == 0,
            kind,
            major: majors[rng.next(3) as usize],
            minor: minors[rng.next(5) as usize],
            access: Access::from_bits(1 + rng.next(7) as u8),
        };
        dev.write_all(&[rule]).unwrap();
        emu.apply(&rule).unwrap();
        assert_eq!(
            dev.read_list().unwrap(),
            emu.devices_list(),
            "after write {step}: {rule:?}"
        );
        if step % 25 == 24 {
            assert_kernel_agrees(&cg, &emu, &format!("after write {step}"));
        }
    }
}

#[test]
fn narrowing_update_freezes_and_a_failed_freeze_writes_nothing() {
    let test = "narrowing_update_freezes";
    if !ready(test) || !testing::require_path(test, &Path::new(FREEZER).join("tasks")) {
        return;
    }
    let devices = TestCgroup::new(DEVICES, "update");
    let freezer = TestCgroup::new(FREEZER, "update");
    let _workload = Workload::start(&[&devices, &freezer]);
    let dev = V1DeviceCgroup::new(&devices.dir);
    let docker = target(DOCKER);

    // A freezer that is not there, and the freezer root (which has no
    // freezer.state to write): the freeze fails, nothing is written.
    for bad in [freezer.dir.join("missing"), PathBuf::from(FREEZER)] {
        let paths = V1Paths {
            devices: devices.dir.clone(),
            freezer: Some(bad.clone()),
        };
        match update_devices(&paths, &docker) {
            Err(UpdateError::Freeze { reason, source }) => {
                eprintln!("aborted as expected with {}: {source}", bad.display());
                assert!(reason.contains("allow-all"));
            }
            other => panic!("expected an aborted update, got {other:?}"),
        }
        assert_eq!(dev.read_list().unwrap(), "a *:* rwm\n", "{}", bad.display());
        assert_kernel_agrees(&devices, &Emulator::allow_all(), "after the abort");
    }
    let no_freezer = V1Paths {
        devices: devices.dir.clone(),
        freezer: None,
    };
    assert!(matches!(
        update_devices(&no_freezer, &docker),
        Err(UpdateError::NoFreezer { .. })
    ));
    assert_eq!(dev.read_list().unwrap(), "a *:* rwm\n");

    // With the real freezer the narrowing update runs frozen, and thaws.
    let paths = V1Paths {
        devices: devices.dir.clone(),
        freezer: Some(freezer.dir.clone()),
    };
    let done = update_devices(&paths, &docker).unwrap();
    assert!(done.frozen_for.is_some());
    assert!(done.applied.transition.narrowing());
    assert_eq!(dev.read_list().unwrap(), docker.devices_list());
    assert_eq!(
        fs::read_to_string(freezer.dir.join("freezer.state"))
            .unwrap()
            .trim(),
        "THAWED"
    );
    assert_kernel_agrees(&devices, &docker, "docker defaults after the frozen update");

    // Adding /dev/fuse never narrows: no freeze at all, even with a freezer
    // that would fail.
    let fuse = target(&with(DOCKER, &["allow c 10:229 rwm"]));
    let broken_freezer = V1Paths {
        devices: devices.dir.clone(),
        freezer: Some(freezer.dir.join("missing")),
    };
    let done = update_devices(&broken_freezer, &fuse).unwrap();
    assert_eq!(done.frozen_for, None);
    assert_eq!(done.applied.transition.writes().len(), 1);
    assert!(dev.read().unwrap().same_permissions(&fuse));
}

#[test]
fn a_frozen_update_with_a_marker_dir_thaws_and_leaves_no_marker() {
    let test = "frozen_update_marker";
    if !ready(test) || !testing::require_path(test, &Path::new(FREEZER).join("tasks")) {
        return;
    }
    let devices = TestCgroup::new(DEVICES, "update-marker");
    let freezer = TestCgroup::new(FREEZER, "update-marker");
    let _workload = Workload::start(&[&devices, &freezer]);
    let state = tempfile::tempdir().unwrap();
    let markers = state.path().join("frozen");
    let paths = V1Paths {
        devices: devices.dir.clone(),
        freezer: Some(freezer.dir.clone()),
    };
    let options = runtime_core::devices::v1::UpdateOptions {
        marker_dir: Some(markers.clone()),
        ..Default::default()
    };
    let docker = target(DOCKER);
    let done = runtime_core::devices::v1::update_devices_with(&paths, &docker, &options).unwrap();
    assert!(done.frozen_for.is_some(), "the narrowing update ran frozen");
    // The marker directory was made for the freeze, and emptied by the thaw.
    assert!(markers.is_dir(), "no marker was written for the freeze");
    let left: Vec<_> = fs::read_dir(&markers).unwrap().flatten().collect();
    assert!(left.is_empty(), "markers left after the thaw: {left:?}");
    assert_eq!(
        fs::read_to_string(freezer.dir.join("freezer.state"))
            .unwrap()
            .trim(),
        "THAWED"
    );
    assert_kernel_agrees(&devices, &docker, "after the frozen update with a marker");
}
