//! Host facts on tempdir fixtures (hybrid, unified, legacy) and on this
//! machine.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use runtime_core::cgroups::CgroupMode;
use runtime_core::host::{HostFacts, RuntimeKind};
use runtime_core::root::HostRoot;

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    fs::write(&p, text).expect("write");
}

fn script(root: &Path, rel: &str, stdout: &str) {
    write(
        root,
        rel,
        &format!("#!/bin/sh\ncat <<'EOS'\n{stdout}\nEOS\n"),
    );
    fs::set_permissions(root.join(rel), fs::Permissions::from_mode(0o755)).expect("chmod");
}

const HYBRID: &str = "\
24 1 253:0 / / rw,relatime - ext4 /dev/vda rw
30 24 0:26 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
32 30 0:28 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
33 30 0:29 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
34 30 0:30 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
35 30 0:31 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
";

const UNIFIED: &str = "\
24 1 253:0 / / rw,relatime - ext4 /dev/vda rw
30 24 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

const LEGACY: &str = "\
24 1 253:0 / / rw,relatime - ext4 /dev/vda rw
31 30 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
32 30 0:28 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
34 30 0:30 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,release_agent=/x,name=systemd
";

#[test]
fn hybrid_fixture_without_dev_char_or_systemd() {
    let t = tempfile::tempdir().expect("tempdir");
    let r = t.path();
    write(r, "proc/self/mountinfo", HYBRID);
    write(r, "proc/sys/kernel/osrelease", "6.1.0-13-amd64\n");
    write(r, "sys/fs/cgroup/unified/cgroup.controllers", "");
    script(
        r,
        "usr/sbin/runc",
        "runc version 1.1.5+ds1\ncommit: x\nspec: 1.0.2-dev",
    );
    script(r, "usr/bin/crun", "crun version 1.8.1\ncommit: f8a096b");
    script(
        r,
        "usr/bin/containerd",
        "containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+b1",
    );

    let f = HostFacts::of_root(&HostRoot::new(r));
    assert_eq!(f.kernel.as_deref(), Some("6.1.0-13-amd64"));
    let cg = f.cgroups.as_ref().expect("layout");
    assert_eq!(cg.mode, CgroupMode::Hybrid);
    assert_eq!(
        cg.v1_mount("devices"),
        Some(Path::new("/sys/fs/cgroup/devices"))
    );
    assert!(cg.v2.as_ref().expect("v2").controllers.is_empty());
    assert!(!f.dev_char);
    assert!(!f.systemd.running);
    assert_eq!(f.systemd.version, None);
    let runc = f.runtime(RuntimeKind::Runc).expect("runc found");
    assert_eq!(runc.version.as_deref(), Some("1.1.5"));
    assert_eq!(runc.version_raw.as_deref(), Some("1.1.5+ds1"));
    assert_eq!(
        runc.path,
        Path::new("/usr/sbin/runc"),
        "host path, not fixture path"
    );
    assert_eq!(
        f.runtime(RuntimeKind::Crun).and_then(|r| r.semver()),
        Some((1, 8, 1))
    );
    assert_eq!(
        f.runtime(RuntimeKind::Containerd)
            .and_then(|r| r.version.clone())
            .as_deref(),
        Some("1.6.20")
    );
    assert!(f.runtime(RuntimeKind::Ctr).is_none());
    assert!(f.unreadable.is_empty(), "{:?}", f.unreadable);
    let json = serde_json::to_value(&f).expect("json");
    assert_eq!(json["dev_char"], serde_json::json!(false));
    assert_eq!(json["cgroups"]["mode"], "hybrid");
}

#[test]
fn unified_fixture_with_dev_char_and_running_systemd() {
    let t = tempfile::tempdir().expect("tempdir");
    let r = t.path();
    write(r, "proc/self/mountinfo", UNIFIED);
    write(r, "proc/sys/kernel/osrelease", "6.8.0\n");
    write(
        r,
        "sys/fs/cgroup/cgroup.controllers",
        "cpuset cpu io memory hugetlb pids\n",
    );
    fs::create_dir_all(r.join("dev/char")).expect("mkdir");
    fs::create_dir_all(r.join("run/systemd/system")).expect("mkdir");
    script(
        r,
        "usr/bin/systemctl",
        "systemd 255 (255.4-1ubuntu8)\n+PAM +AUDIT",
    );
    let f = HostFacts::of_root(&HostRoot::new(r));
    let cg = f.cgroups.as_ref().expect("layout");
    assert_eq!(cg.mode, CgroupMode::Unified);
    assert!(cg.v1.is_empty());
    let v2 = cg.v2.as_ref().expect("v2");
    assert_eq!(v2.mount_point, Path::new("/sys/fs/cgroup"));
    assert!(v2.controllers.iter().any(|c| c == "memory"));
    assert!(f.dev_char);
    assert!(f.systemd.running);
    assert_eq!(f.systemd.version, Some(255));
    assert!(f.runtimes.is_empty());
}

#[test]
fn legacy_fixture_and_broken_runtime_is_reported_not_fatal() {
    let t = tempfile::tempdir().expect("tempdir");
    let r = t.path();
    write(r, "proc/self/mountinfo", LEGACY);
    // No osrelease: reported as unreadable.
    write(r, "usr/bin/runc", "#!/bin/sh\nexit 3\n");
    fs::set_permissions(r.join("usr/bin/runc"), fs::Permissions::from_mode(0o755)).expect("chmod");
    let f = HostFacts::of_root(&HostRoot::new(r));
    let cg = f.cgroups.as_ref().expect("layout");
    assert_eq!(cg.mode, CgroupMode::Legacy);
    assert_eq!(
        cg.v1_mount("name=systemd"),
        Some(Path::new("/sys/fs/cgroup/systemd"))
    );
    assert!(f.kernel.is_none());
    assert!(f.unreadable.iter().any(|u| u.what == "kernel release"));
    let runc = f
        .runtime(RuntimeKind::Runc)
        .expect("runc listed even when its version fails");
    assert!(runc.version.is_none());
    assert!(f.unreadable.iter().any(|u| u.what == "runc version"));
}

#[test]
fn empty_root_reports_what_it_could_not_read() {
    let t = tempfile::tempdir().expect("tempdir");
    let f = HostFacts::of_root(&HostRoot::new(t.path()));
    assert!(f.cgroups.is_none());
    assert!(f.unreadable.iter().any(|u| u.what == "cgroup layout"));
}

#[test]
fn this_machine_agrees_with_the_kernel() {
    let f = HostFacts::of_root(&HostRoot::real());
    assert_eq!(f.dev_char, Path::new("/dev/char").is_dir());
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").expect("osrelease");
    assert_eq!(f.kernel.as_deref(), Some(kernel.trim()));
    let cg = f.cgroups.expect("this machine has cgroups");
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let has_v1_devices = mountinfo
        .lines()
        .any(|l| l.contains(" - cgroup ") && l.ends_with(",devices"));
    let has_v2 = mountinfo.contains(" - cgroup2 ");
    let want = match (has_v1_devices, has_v2) {
        (true, true) => CgroupMode::Hybrid,
        (true, false) => CgroupMode::Legacy,
        _ => CgroupMode::Unified,
    };
    assert_eq!(cg.mode, want);
}
