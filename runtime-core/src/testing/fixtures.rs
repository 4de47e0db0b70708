//! Fixtures shared by the tests of every module (and the operator's and
//! e2e's): a host device table, systemd-driven containers, the `DeviceAllow`
//! sets runc writes.

use std::path::PathBuf;

use crate::checks::{CheckId, Severity};
use crate::devices::host_devices::{DeviceId, HostDevices, ProcDevices};
use crate::devices::systemd::{DeviceAllowEntry, DevicePolicy, UnitDevices};
use crate::devices::DeviceType;
use crate::diagnose::cause::{Cause, DeviceAccessCause, Layer, RefusedDevice};
use crate::diagnose::{Finding, ScanReport, Snapshot};
use crate::discovery::{Container, ContainerCgroups, ContainerRef, RuntimeSource};
use crate::host::HostFacts;
use crate::ports::Ports;
use crate::root::HostRoot;

/// `DeviceAllow` entries from unit-file text.
pub fn entries(list: &[&str]) -> Vec<DeviceAllowEntry> {
    list.iter()
        .map(|s| DeviceAllowEntry::parse(s).expect("entry"))
        .collect()
}

/// A strict unit with these entries.
pub fn strict_unit(allow: &[&str]) -> UnitDevices {
    UnitDevices {
        policy: Some(DevicePolicy::Strict),
        allow: entries(allow),
    }
}

/// What runc 1.1.3-1.1.4 leaves in a scope without `/dev/char`: seed 003.
pub const OLD_SET: &[&str] = &["char-pts rwm", "char-* m", "block-* m"];

/// What runc 1.1.5 writes when `/sys/dev/char` exists: one
/// `/dev/char/M:m` entry per default device.
pub const RUNC_1_1_5_SET: &[&str] = &[
    "char-pts rwm",
    "/dev/char/1:3 rwm",
    "/dev/char/1:5 rwm",
    "/dev/char/1:7 rwm",
    "/dev/char/1:8 rwm",
    "/dev/char/1:9 rwm",
    "/dev/char/5:0 rwm",
    "/dev/char/5:2 rwm",
    "/dev/char/10:200 rwm",
    "char-* m",
    "block-* m",
];

/// The nspawn guest's /dev: no /dev/char, no ptmx node.
pub fn nspawn_host_devices() -> HostDevices {
    host_devices_with_dev_char(false)
}

/// The nspawn guest's /dev, with or without `/dev/char`.
pub fn host_devices_with_dev_char(dev_char: bool) -> HostDevices {
    let nodes: Vec<(PathBuf, DeviceId)> = vec![
        ("/dev/null".into(), (DeviceType::Char, 1, 3)),
        ("/dev/zero".into(), (DeviceType::Char, 1, 5)),
        ("/dev/full".into(), (DeviceType::Char, 1, 7)),
        ("/dev/random".into(), (DeviceType::Char, 1, 8)),
        ("/dev/urandom".into(), (DeviceType::Char, 1, 9)),
        ("/dev/tty".into(), (DeviceType::Char, 5, 0)),
        ("/dev/net/tun".into(), (DeviceType::Char, 10, 200)),
    ];
    HostDevices::from_parts(
        nodes,
        Vec::new(),
        dev_char,
        ProcDevices::parse(
            "Character devices:\n  1 mem\n  5 /dev/tty\n 10 misc\n136 pts\n\nBlock devices:\n  7 loop\n",
        ),
    )
}

/// A runc container from `runc spec` (deny-all, then runc's defaults), in a
/// systemd scope `runc-<id>.scope` when `systemd`; `v1` adds a v1 devices
/// cgroup, `freezer` a v1 freezer cgroup.
pub fn runc_container(id: &str, systemd: bool, v1: bool, freezer: Option<PathBuf>) -> Container {
    let spec: oci_spec::runtime::Spec = serde_json::from_str(
        r#"{"ociVersion":"1.0.2","linux":{"resources":{"devices":[{"allow":false,"access":"rwm"}]}}}"#,
    )
    .expect("spec");
    let mut cgroups = ContainerCgroups {
        path: Some(format!("/system.slice/runc-{id}.scope")),
        ..Default::default()
    };
    if v1 {
        cgroups.v1.insert(
            "devices".into(),
            PathBuf::from(format!(
                "/sys/fs/cgroup/devices/system.slice/runc-{id}.scope"
            )),
        );
    }
    if let Some(f) = freezer {
        cgroups.v1.insert("freezer".into(), f);
    }
    Container {
        id: id.into(),
        runtime: RuntimeSource::Runc,
        pid: 1,
        state_dir: PathBuf::from("/run/runc").join(id),
        bundle: None,
        config: Some(Box::new(spec)),
        cgroups,
        systemd_cgroup: systemd,
        pod: None,
    }
}

/// A finding of `check` whose cause renders as "container cannot open
/// /dev/null" (for report, event and metric tests, which care about the
/// check, severity and container, not the cause).
pub fn finding(check: CheckId, severity: Severity, container: Option<ContainerRef>) -> Finding {
    Finding::new(
        check,
        severity,
        container,
        Cause::DeviceAccess(DeviceAccessCause {
            refused: vec![RefusedDevice {
                path: "/dev/null".into(),
                device: (DeviceType::Char, 1, 3),
                by: vec![Layer::V1],
                canary: false,
            }],
            canary_error: None,
            v1_cgroup: None,
            v2_cgroup: None,
        }),
    )
}

/// A scan of an empty root (no facts, quickly) holding `findings`.
pub fn scan_with(findings: Vec<Finding>) -> ScanReport {
    let root = HostRoot::new("/nonexistent/warden-test-root");
    ScanReport {
        host: HostFacts::of_root(&root),
        findings,
        containers: vec![],
        skipped: vec![],
        discovered: vec![],
        not_evaluated: Default::default(),
        resample_waits: 0,
        snapshot: Snapshot::new(Ports::for_root(root, None), Vec::new()),
    }
}

/// A tempdir laid out like a host, for scans on fixtures: `/proc` entries,
/// the cgroup mounts, runtime state and bundles, and device nodes (links to
/// this machine's, so no root is needed to make them).
#[derive(Debug)]
pub struct HostFixture {
    dir: tempfile::TempDir,
}

/// A hybrid layout: v1 devices and freezer, v2 at `/sys/fs/cgroup/unified`.
pub const HYBRID_MOUNTINFO: &str = "\
32 30 0:28 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
33 30 0:29 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
35 30 0:31 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

impl HostFixture {
    /// An empty host with the hybrid cgroup layout and kernel 6.1.
    pub fn hybrid() -> Self {
        let f = Self {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        f.write("proc/self/mountinfo", HYBRID_MOUNTINFO);
        f.write("proc/sys/kernel/osrelease", "6.1.0\n");
        f
    }

    /// The fixture's root directory.
    pub fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The fixture as a host root.
    pub fn root(&self) -> HostRoot {
        HostRoot::new(self.dir.path())
    }

    /// Write `text` at `rel` (a host path without its leading `/`).
    pub fn write(&self, rel: &str, text: &str) {
        let p = self.dir.path().join(rel.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().expect("a parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }

    /// A single-threaded process in `cgroup` (devices, freezer and v2).
    pub fn process(&self, pid: i32, comm: &str, start: u64, cgroup: &str) {
        let mut fields: Vec<String> = (3..=52).map(|i| i.to_string()).collect();
        fields[0] = "S".into();
        fields[19] = start.to_string();
        let stat = format!("{pid} ({comm}) {}\n", fields.join(" "));
        self.write(&format!("proc/{pid}/stat"), &stat);
        self.write(
            &format!("proc/{pid}/status"),
            &format!("Name:\t{comm}\nTgid:\t{pid}\nSeccomp:\t0\n"),
        );
        self.write(&format!("proc/{pid}/task/{pid}/stat"), &stat);
        self.write(&format!("proc/{pid}/wchan"), "do_nanosleep");
        self.write(
            &format!("proc/{pid}/cgroup"),
            &format!("2:freezer:{cgroup}\n1:devices:{cgroup}\n0::{cgroup}\n"),
        );
    }

    /// A runc container `id` (cgroupfs driver) whose init is `pid`, in
    /// cgroup `/warden/<id>`, from `runc spec`'s device rules.
    pub fn runc_container(&self, id: &str, pid: i32) {
        let start = 5000 + u64::try_from(pid).unwrap_or(0);
        self.process(pid, "sh", start, &format!("/warden/{id}"));
        self.write(
            &format!("run/runc/{id}/state.json"),
            &format!(
                r#"{{"id":"{id}","init_process_pid":{pid},"init_process_start":{start},"created":"2026-01-01T00:00:00Z","config":{{"labels":["bundle=/bundles/{id}"],"cgroups":{{"Systemd":false}}}},"cgroup_paths":{{}}}}"#
            ),
        );
        self.write(
            &format!("bundles/{id}/config.json"),
            r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},"linux":{"resources":{"devices":[{"allow":false,"access":"rwm"}]}}}"#,
        );
    }

    /// `path` (`/dev/null`) as a link to this machine's node, so that
    /// `stat()` under the fixture sees a real device.
    pub fn device(&self, path: &str) {
        let p = self.dir.path().join(path.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().expect("a parent")).expect("mkdir");
        std::os::unix::fs::symlink(path, p).expect("device link");
    }
}
