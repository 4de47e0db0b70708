//! Root only: the host device table over real device nodes (mknod(2)) in a
//! tempdir laid out like a host, with and without `/dev/char`.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use runtime_core::devices::host_devices::HostDevices;
use runtime_core::devices::DeviceType;
use runtime_core::root::HostRoot;

const PROC_DEVICES: &str = "Character devices:\n  1 mem\n  4 /dev/vc/0\n  4 tty\n  4 ttyS\n  5 /dev/tty\n 10 misc\n136 pts\n\nBlock devices:\n  7 loop\n259 blkext\n";

/// Real nodes made with mknod(2) in a tempdir laid out like a host.
#[test]
fn scan_real_nodes_with_and_without_dev_char() {
    if !runtime_core::testing::require_root("scan_real_nodes_with_and_without_dev_char") {
        return;
    }
    use nix::sys::stat::{makedev, mknod, Mode, SFlag};
    let dir = tempfile::tempdir().expect("fixture");
    let root = HostRoot::new(dir.path());
    let dev = root.join("/dev");
    fs::create_dir_all(dev.join("net")).expect("fixture");
    fs::create_dir_all(dev.join("shm")).expect("fixture");
    fs::create_dir_all(root.join("/proc")).expect("fixture");
    fs::write(root.join("/proc/devices"), PROC_DEVICES).expect("fixture");
    let mk = |p: &Path, kind: SFlag, ma: u64, mi: u64| {
        mknod(p, kind, Mode::from_bits_truncate(0o666), makedev(ma, mi)).expect("fixture")
    };
    mk(&dev.join("null"), SFlag::S_IFCHR, 1, 3);
    mk(&dev.join("urandom"), SFlag::S_IFCHR, 1, 9);
    mk(&dev.join("net/tun"), SFlag::S_IFCHR, 10, 200);
    mk(&dev.join("loop0"), SFlag::S_IFBLK, 7, 0);
    // Nodes in skipped directories and symlinks are not names of record.
    mk(&dev.join("shm/hidden"), SFlag::S_IFCHR, 1, 5);
    std::os::unix::fs::symlink("null", dev.join("alias")).expect("fixture");

    let t = HostDevices::scan(&root).expect("fixture");
    assert!(!t.dev_char());
    assert_eq!(
        t.preferred_path((DeviceType::Char, 1, 3)),
        Some(Path::new("/dev/null"))
    );
    assert_eq!(
        t.node_paths((DeviceType::Char, 1, 3)),
        [PathBuf::from("/dev/null")]
    );
    assert_eq!(
        t.preferred_path((DeviceType::Char, 10, 200)),
        Some(Path::new("/dev/net/tun"))
    );
    assert_eq!(
        t.preferred_path((DeviceType::Block, 7, 0)),
        Some(Path::new("/dev/loop0"))
    );
    assert_eq!(t.preferred_path((DeviceType::Char, 1, 5)), None);
    assert!(!t.has_number_link((DeviceType::Char, 1, 3)));
    assert_eq!(
        t.proc_devices().majors_matching(DeviceType::Char, "pts"),
        BTreeSet::from([136])
    );

    fs::create_dir(dev.join("char")).expect("fixture");
    std::os::unix::fs::symlink("../null", dev.join("char/1:3")).expect("fixture");
    // A link whose target is a different device does not count.
    std::os::unix::fs::symlink("../urandom", dev.join("char/1:8")).expect("fixture");
    std::os::unix::fs::symlink("../missing", dev.join("char/1:7")).expect("fixture");
    let t = HostDevices::scan(&root).expect("fixture");
    assert!(t.dev_char());
    assert!(t.has_number_link((DeviceType::Char, 1, 3)));
    assert!(!t.has_number_link((DeviceType::Char, 1, 8)));
    assert!(!t.has_number_link((DeviceType::Char, 1, 7)));
    assert_eq!(
        t.stat(Path::new("/dev/char/1:3")),
        Some((DeviceType::Char, 1, 3))
    );
}
