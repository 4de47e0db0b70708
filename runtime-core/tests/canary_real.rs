//! The device canary against real v1 device cgroups and a real v2 cgroup.

use std::fs;
use std::path::{Path, PathBuf};

use runtime_core::devices::canary::{probe, CanaryResult};
use runtime_core::testing;

struct Cg(PathBuf);
impl Drop for Cg {
    fn drop(&mut self) {
        // The canary has exited; an empty cgroup can be removed.
        let _ = fs::remove_dir(&self.0);
    }
}

fn mk(base: &str, name: &str) -> Cg {
    let p = Path::new(base).join(format!("warden-canary-{name}-{}", std::process::id()));
    fs::create_dir_all(&p).expect("mkdir cgroup");
    Cg(p)
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
    fs::write(cg.0.join("devices.deny"), "c 1:3 rwm").expect("deny c 1:3");
    let devs = [
        Path::new("/dev/null"),
        Path::new("/dev/zero"),
        Path::new("/dev/tty"),
        Path::new("/dev/warden-no-such-device"),
    ];
    let r = probe(&[&cg.0], &devs).expect("canary runs");
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
    fs::write(cg.0.join("devices.allow"), "c 1:3 rwm").expect("allow c 1:3");
    let r = probe(&[&cg.0], &devs[..1]).expect("canary runs");
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
    let r = probe(&[&v1.0, &v2.0], &[Path::new("/dev/null")]).expect("canary runs");
    assert_eq!(r[0], CanaryResult::Allowed(None));

    let missing = Path::new("/sys/fs/cgroup/devices/warden-canary-does-not-exist");
    let err = probe(&[missing], &[Path::new("/dev/null")]).expect_err("join must fail");
    assert!(err.to_string().contains("could not join"), "{err}");
}
