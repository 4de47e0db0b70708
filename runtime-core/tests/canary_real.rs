//! The device canary against real v1 device cgroups and a real v2 cgroup.

use std::fs;
use std::path::Path;

use runtime_core::devices::canary::{probe, CanaryResult};
use runtime_core::testing::{self, TestCgroup};

fn mk(base: &str, name: &str) -> TestCgroup {
    TestCgroup::new(base, &format!("canary-{name}"))
}

#[test]
fn canary_sees_v1_denies_and_ignores_non_cgroup_errors() {
    let t = "canary_v1";
    if !testing::require_root(t)
        || !testing::require_path(t, Path::new("/sys/fs/cgroup/devices/devices.list"))
    {
        return;
    }
    let cg = mk("/sys/fs/cgroup/devices", "v1");
    // A child cgroup inherits allow-all; deny /dev/null only.
    fs::write(cg.dir.join("devices.deny"), "c 1:3 rwm").expect("deny c 1:3");
    let devs = [
        Path::new("/dev/null"),
        Path::new("/dev/zero"),
        Path::new("/dev/tty"),
        Path::new("/dev/warden-no-such-device"),
    ];
    let r = probe(&[&cg.dir], &devs).expect("canary runs");
    assert_eq!(
        r[0],
        CanaryResult::Denied,
        "/dev/null is denied by the v1 list"
    );
    assert!(
        matches!(r[1], CanaryResult::Allowed(None)),
        "/dev/zero opens: {:?}",
        r[1]
    );
    assert!(
        !r[2].denied(),
        "/dev/tty fails for lack of a terminal, not the cgroup: {:?}",
        r[2]
    );
    assert!(matches!(r[3], CanaryResult::HostMissing(_)));

    // Re-allow and probe again: the same canary now sees access.
    fs::write(cg.dir.join("devices.allow"), "c 1:3 rwm").expect("allow c 1:3");
    let r = probe(&[&cg.dir], &devs[..1]).expect("canary runs");
    assert_eq!(r[0], CanaryResult::Allowed(None));
}

#[test]
fn canary_joins_v2_too_and_reports_a_failed_join() {
    let t = "canary_v2";
    if !testing::require_root(t)
        || !testing::require_path(t, Path::new("/sys/fs/cgroup/unified/cgroup.procs"))
    {
        return;
    }
    let v1 = mk("/sys/fs/cgroup/devices", "both");
    let v2 = mk("/sys/fs/cgroup/unified", "both");
    let r = probe(&[&v1.dir, &v2.dir], &[Path::new("/dev/null")]).expect("canary runs");
    assert_eq!(r[0], CanaryResult::Allowed(None));

    let missing = Path::new("/sys/fs/cgroup/devices/warden-canary-does-not-exist");
    let err = probe(&[missing], &[Path::new("/dev/null")]).expect_err("join must fail");
    assert!(err.to_string().contains("could not join"), "{err}");
}

#[test]
fn canary_sees_v2_program_denies() {
    use runtime_core::devices::bpf::{kernel, program};
    use runtime_core::devices::v1::lines::parse_write;
    use std::os::fd::AsFd;
    let t = "canary_v2_program";
    if !testing::require_root(t)
        || !testing::require_path(t, Path::new("/sys/fs/cgroup/unified/cgroup.procs"))
    {
        return;
    }
    let v2 = mk("/sys/fs/cgroup/unified", "v2prog");
    // A program that allows every character device but /dev/null.
    let rules: Vec<_> = ["allow c 1:5 rwm", "allow c 1:9 rwm", "allow c 5:0 rwm"]
        .iter()
        .map(|w| parse_write(w).expect("rule"))
        .collect();
    let insns = program::build_from_rules(&rules).expect("program");
    let prog = kernel::load_device_program(&insns).expect("load");
    let cg = kernel::open_cgroup(&v2.dir).expect("open cgroup");
    kernel::attach_multi(cg.as_fd(), prog.as_fd()).expect("attach");
    let r = probe(
        &[&v2.dir],
        &[Path::new("/dev/null"), Path::new("/dev/zero")],
    )
    .expect("canary runs");
    assert_eq!(r[0], CanaryResult::Denied, "the program denies /dev/null");
    assert_eq!(r[1], CanaryResult::Allowed(None), "and allows /dev/zero");
    kernel::detach(cg.as_fd(), prog.as_fd()).expect("detach");
}

#[test]
fn the_canary_never_opens_the_device() {
    use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
    let t = "canary_no_open";
    if !testing::require_root(t)
        || !testing::require_path(t, Path::new("/sys/fs/cgroup/devices/devices.list"))
    {
        return;
    }
    let cg = mk("/sys/fs/cgroup/devices", "noopen");
    // A node of its own (the zero device, 1:5), so that nothing else opens
    // it meanwhile. An open is what arms a watchdog or toggles a serial
    // line; inotify sees every open.
    let dir = tempfile::tempdir().expect("tempdir");
    let node = dir.path().join("zero");
    nix::sys::stat::mknod(
        &node,
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 5),
    )
    .expect("mknod");
    let ino = Inotify::init(InitFlags::IN_NONBLOCK).expect("inotify");
    ino.add_watch(&node, AddWatchFlags::IN_OPEN)
        .expect("watch the node");
    let r = probe(&[&cg.dir], &[&node]).expect("canary runs");
    assert_eq!(r[0], CanaryResult::Allowed(None));
    let events = ino.read_events().unwrap_or_default();
    assert!(
        events.is_empty(),
        "the canary opened the device: {events:?}"
    );
}
