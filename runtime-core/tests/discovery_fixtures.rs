//! Discovery over tempdir host fixtures: runc, containerd-runc and crun state,
//! pod identity, recycled pids, half-written state and vanished bundles.

use std::fs;
use std::path::Path;

use runtime_core::cgroups::CgroupLayout;
use runtime_core::discovery::{discover, RuntimeSource, StateDirs};
use runtime_core::root::HostRoot;

const MOUNTINFO: &str = "\
32 30 0:28 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
33 30 0:29 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
34 30 0:30 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
35 30 0:31 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    fs::write(p, text).expect("write");
}

/// A `/proc/<pid>` with a stat line whose 22nd field is `start`.
fn process(root: &Path, pid: i32, start: u64, cgroup: &str) {
    let mut fields: Vec<String> = (3..=52).map(|i| i.to_string()).collect();
    fields[0] = "S".into();
    fields[19] = start.to_string(); // field 22 overall
    write(
        root,
        &format!("proc/{pid}/stat"),
        &format!("{pid} (sleep) {}\n", fields.join(" ")),
    );
    write(
        root,
        &format!("proc/{pid}/cgroup"),
        &format!("3:name=systemd:{cgroup}\n2:freezer:{cgroup}\n1:devices:{cgroup}\n0::{cgroup}\n"),
    );
}

fn config(annotations: &str) -> String {
    format!(
        r#"{{"ociVersion":"1.0.2","root":{{"path":"rootfs"}},"annotations":{{{annotations}}},
            "linux":{{"resources":{{"devices":[{{"allow":false,"access":"rwm"}},{{"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"}}]}}}}}}"#
    )
}

fn runc_state(id: &str, pid: i32, start: u64, bundle: &str) -> String {
    format!(
        r#"{{"id":"{id}","init_process_pid":{pid},"init_process_start":{start},"created":"2026-01-01T00:00:00Z",
            "config":{{"labels":["bundle={bundle}"],"cgroups":{{"Systemd":false}}}},"cgroup_paths":{{}}}}"#
    )
}

#[test]
fn finds_runc_containerd_and_crun_containers() {
    let t = tempfile::tempdir().expect("tempdir");
    let r = t.path();
    write(r, "proc/self/mountinfo", MOUNTINFO);
    let root = HostRoot::new(r);
    let layout = CgroupLayout::detect(&root).expect("layout");

    // Plain runc.
    process(r, 100, 5000, "/warden/a");
    write(
        r,
        "run/runc/a/state.json",
        &runc_state("a", 100, 5000, "/bundles/a"),
    );
    write(r, "bundles/a/config.json", &config(""));
    // containerd's runc, Kubernetes pod, bundle found through the label.
    process(r, 200, 6000, "/kubepods/besteffort/podu-1/b");
    write(
        r,
        "run/containerd/runc/k8s.io/b/state.json",
        &runc_state(
            "b",
            200,
            6000,
            "/run/containerd/io.containerd.runtime.v2.task/k8s.io/b",
        ),
    );
    write(
        r,
        "run/containerd/io.containerd.runtime.v2.task/k8s.io/b/config.json",
        &config(
            r#""io.kubernetes.cri.sandbox-namespace":"prod","io.kubernetes.cri.sandbox-name":"web-0",
               "io.kubernetes.cri.sandbox-uid":"u-1","io.kubernetes.cri.container-name":"app""#,
        ),
    );
    // crun, with its own config copy (the bundle is gone).
    process(r, 300, 7000, "/system.slice/crun-c.scope");
    write(
        r,
        "run/crun/c/status",
        r#"{"pid":300,"process-start-time":7000,"cgroup-path":"/system.slice/crun-c.scope","bundle":"/gone/c","systemd-cgroup":true}"#,
    );
    write(r, "run/crun/c/config.json", &config(""));

    let d = discover(&root, Some(&layout), &StateDirs::default());
    assert!(d.skipped.is_empty(), "{:?}", d.skipped);
    let ids: Vec<&str> = d.containers.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["b", "c", "a"], "sorted by runtime name then id");

    let a = d.containers.iter().find(|c| c.id == "a").expect("a");
    assert_eq!(a.runtime, RuntimeSource::Runc);
    assert_eq!(a.pid, 100);
    assert_eq!(
        a.cgroups.v1("devices").map(|p| p.as_path()),
        Some(Path::new("/sys/fs/cgroup/devices/warden/a"))
    );
    assert_eq!(
        a.cgroups.v2.as_deref(),
        Some(Path::new("/sys/fs/cgroup/unified/warden/a"))
    );
    assert_eq!(a.cgroups.path.as_deref(), Some("/warden/a"));
    assert!(a.pod.is_none());
    let devs = a
        .config
        .as_ref()
        .and_then(|s| s.linux().as_ref())
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.devices().as_ref())
        .map(Vec::len);
    assert_eq!(devs, Some(2), "OCI config parsed");

    let b = d.containers.iter().find(|c| c.id == "b").expect("b");
    assert_eq!(
        b.runtime,
        RuntimeSource::ContainerdRunc {
            namespace: "k8s.io".into()
        }
    );
    let pod = b.pod.as_ref().expect("pod identity");
    assert_eq!(
        (pod.namespace.as_str(), pod.name.as_str()),
        ("prod", "web-0")
    );
    assert_eq!(pod.uid.as_deref(), Some("u-1"));
    let r = b.reference();
    assert_eq!(r.container_name.as_deref(), Some("app"));
    assert_eq!(r.runtime, "containerd/runc");

    let c = d.containers.iter().find(|c| c.id == "c").expect("c");
    assert!(c.systemd_cgroup);
    assert_eq!(c.systemd_unit().as_deref(), Some("crun-c.scope"));
}

#[test]
fn exited_recycled_half_written_and_bundle_gone_are_skipped() {
    let t = tempfile::tempdir().expect("tempdir");
    let r = t.path();
    write(r, "proc/self/mountinfo", MOUNTINFO);
    let root = HostRoot::new(r);
    let layout = CgroupLayout::detect(&root).expect("layout");

    // Exited: no /proc entry.
    write(
        r,
        "run/runc/gone/state.json",
        &runc_state("gone", 401, 1, "/bundles/x"),
    );
    // Recycled pid: same pid, another start time.
    process(r, 402, 999, "/x");
    write(
        r,
        "run/runc/recycled/state.json",
        &runc_state("recycled", 402, 1, "/bundles/x"),
    );
    // Half-written state file.
    write(
        r,
        "run/runc/half/state.json",
        r#"{"id":"half","init_process_pid":4"#,
    );
    // Live process, bundle removed.
    process(r, 404, 10, "/y");
    write(
        r,
        "run/runc/nobundle/state.json",
        &runc_state("nobundle", 404, 10, "/bundles/removed"),
    );
    // A live one among them is still found.
    process(r, 405, 11, "/z");
    write(
        r,
        "run/runc/ok/state.json",
        &runc_state("ok", 405, 11, "/bundles/ok"),
    );
    write(r, "bundles/ok/config.json", &config(""));

    let d = discover(&root, Some(&layout), &StateDirs::default());
    assert_eq!(d.containers.len(), 1);
    assert_eq!(d.containers[0].id, "ok");
    let reason = |id: &str| {
        d.skipped
            .iter()
            .find(|s| s.state_dir.ends_with(id))
            .map(|s| s.reason.clone())
            .unwrap_or_else(|| panic!("{id} not skipped"))
    };
    assert!(reason("gone").contains("exited"), "{}", reason("gone"));
    assert!(
        reason("recycled").contains("exited"),
        "{}",
        reason("recycled")
    );
    assert!(reason("half").contains("parse"), "{}", reason("half"));
    assert!(
        reason("nobundle").contains("bundle gone"),
        "{}",
        reason("nobundle")
    );
}

#[test]
fn no_runtime_state_is_an_empty_scan() {
    let t = tempfile::tempdir().expect("tempdir");
    let d = discover(&HostRoot::new(t.path()), None, &StateDirs::default());
    assert!(d.containers.is_empty() && d.skipped.is_empty());
}
