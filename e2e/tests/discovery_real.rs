//! Discovery on real runtimes: a runc, a crun and a containerd (runc shim)
//! container run at once; `warden check --output json`, pointed at the
//! test's containerd, lists each with the right runtime, containerd
//! namespace, init pid, cgroup path and pod identity (from CRI annotations
//! where they are set). A container that dies or is deleted between scans
//! disappears without failing the scan.

use std::path::Path;

use runtime_core::cgroups::CgroupLayout;
use runtime_core::discovery::{self, RuntimeSource, StateDirs};
use runtime_core::root::HostRoot;
use runtime_core::testing;
use serde_json::Value;
use warden_e2e::container::unique_id;
use warden_e2e::containerd::Containerd;
use warden_e2e::{warden, Bundle, Container, Runtime};

fn prerequisites(name: &str) -> bool {
    testing::require_root(name)
        && testing::require_tool(name, "runc")
        && testing::require_tool(name, "crun")
        && testing::require_tool(name, "containerd")
        && testing::require_tool(name, "ctr")
        && testing::require_tool(name, "containerd-shim-runc-v2")
        && testing::require_path(name, Path::new(warden_e2e::bundle::BUSYBOX))
}

/// The `containers` entry of `id` in a report.
fn listed<'a>(report: &'a Value, id: &str) -> Option<&'a Value> {
    report["containers"]
        .as_array()
        .expect("containers array")
        .iter()
        .find(|c| c["id"] == id)
}

/// CRI annotations of a pod (containerd's keys, as its CRI plugin sets them).
const CRI: [(&str, &str); 4] = [
    ("io.kubernetes.cri.sandbox-namespace", "prod"),
    ("io.kubernetes.cri.sandbox-name", "web-0"),
    ("io.kubernetes.cri.sandbox-uid", "3f1c-uid"),
    ("io.kubernetes.cri.container-name", "app"),
];

#[test]
fn runc_crun_and_containerd_containers_are_listed_and_deleted_ones_vanish() {
    let name = "discovery_real";
    if !prerequisites(name) {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let state_dir = tmp.path().join("warden-state");

    // runc, with CRI-O style pod annotations written into its config.json.
    let runc_id = unique_id("disc-runc");
    let dir = tmp.path().join(&runc_id);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let mut b = Bundle::busybox(&dir, &runc_id, &["sleep", "600"]).expect("bundle");
    b.config["annotations"] = serde_json::json!({
        "io.kubernetes.pod.namespace": "batch",
        "io.kubernetes.pod.name": "job-7",
        "io.kubernetes.pod.uid": "9e2d-uid",
        "io.kubernetes.container.name": "worker",
    });
    b.save().expect("save config");
    let runc = Container::run(Runtime::Runc, &runc_id, &b).expect("runc container");

    // crun, no pod.
    let crun_id = unique_id("disc-crun");
    let dir = tmp.path().join(&crun_id);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let b = Bundle::busybox(&dir, &crun_id, &["sleep", "600"]).expect("bundle");
    let crun = Container::run(Runtime::Crun, &crun_id, &b).expect("crun container");

    // containerd, namespace k8s.io, CRI annotations through `ctr run`.
    let ctrd = Containerd::start().expect("containerd starts");
    let image = ctrd.import_busybox("k8s.io").expect("image import");
    let ctrd_id = unique_id("disc-ctrd");
    let ctrd_cgroup = format!("/warden-e2e/{ctrd_id}");
    let ctrd_pid = ctrd
        .run(
            "k8s.io",
            &ctrd_id,
            image,
            &ctrd_cgroup,
            &CRI,
            &["sleep", "600"],
        )
        .expect("containerd container");

    let mut args: Vec<String> = vec!["--state-dir".into(), state_dir.display().to_string()];
    args.extend(ctrd.warden_args());
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let report = warden::check_json(&argv).expect("warden check");

    let r = listed(&report, &runc_id).expect("runc container listed");
    assert_eq!(r["runtime"], "runc", "{r}");
    assert!(r.get("namespace").is_none(), "{r}");
    assert_eq!(r["pid"], runc.pid().expect("runc pid"), "{r}");
    assert_eq!(r["cgroup"], format!("/warden-e2e/{runc_id}"), "{r}");
    assert_eq!(r["pod"], "batch/job-7", "{r}");

    let c = listed(&report, &crun_id).expect("crun container listed");
    assert_eq!(c["runtime"], "crun", "{c}");
    assert_eq!(c["pid"], crun.pid().expect("crun pid"), "{c}");
    assert_eq!(c["cgroup"], format!("/warden-e2e/{crun_id}"), "{c}");
    assert!(c.get("pod").is_none(), "no annotations, no pod: {c}");

    let d = listed(&report, &ctrd_id).expect("containerd container listed");
    assert_eq!(d["runtime"], "containerd/runc", "{d}");
    assert_eq!(d["namespace"], "k8s.io", "{d}");
    assert_eq!(d["pid"], ctrd_pid, "{d}");
    assert_eq!(d["cgroup"], ctrd_cgroup, "{d}");
    assert_eq!(d["pod"], "prod/web-0", "{d}");
    for id in [&runc_id, &crun_id, &ctrd_id] {
        let mine: Vec<&Value> = report["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .filter(|f| f["container"]["id"] == id.as_str())
            .collect();
        assert!(mine.is_empty(), "healthy {id} reported: {mine:?}");
    }

    // The library view carries the whole identity (uid, container name) and
    // the per-controller directories.
    let root = HostRoot::real();
    let layout = CgroupLayout::detect(&root).expect("cgroup layout");
    let dirs = StateDirs {
        containerd_runc: ctrd.runc_root(),
        containerd_tasks: ctrd.tasks_dir(),
        ..StateDirs::default()
    };
    let found = discovery::discover(&root, Some(&layout), &dirs);
    let lib = found
        .containers
        .iter()
        .find(|c| c.id == ctrd_id)
        .expect("containerd container discovered");
    assert_eq!(
        lib.runtime,
        RuntimeSource::ContainerdRunc {
            namespace: "k8s.io".into()
        }
    );
    let pod = lib.pod.as_ref().expect("pod identity");
    assert_eq!(pod.uid.as_deref(), Some("3f1c-uid"));
    assert_eq!(pod.container.as_deref(), Some("app"));
    assert_eq!(
        lib.bundle.as_deref(),
        Some(ctrd.tasks_dir().join("k8s.io").join(&ctrd_id).as_path())
    );
    assert_eq!(
        lib.cgroups.v1("devices").map(|p| p.as_path()),
        Some(Path::new(&format!("/sys/fs/cgroup/devices{ctrd_cgroup}")))
    );
    let worker = found
        .containers
        .iter()
        .find(|c| c.id == runc_id)
        .and_then(|c| c.pod.as_ref())
        .expect("runc pod identity");
    assert_eq!(
        (worker.uid.as_deref(), worker.container.as_deref()),
        (Some("9e2d-uid"), Some("worker"))
    );

    // The crun init dies but its state stays (what a scan racing an exit
    // sees): skipped, not an error, and the others are still listed.
    let crun_pid = i32::try_from(crun.pid().expect("pid")).expect("pid range");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(crun_pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill crun init");
    crun.wait_status("stopped", std::time::Duration::from_secs(10))
        .expect("crun container stops");
    let report = warden::check_json(&argv).expect("warden check after an exit");
    assert!(
        listed(&report, &crun_id).is_none(),
        "a dead container is not listed"
    );
    assert!(listed(&report, &runc_id).is_some());
    assert!(listed(&report, &ctrd_id).is_some());

    // Deleted outright (crun and containerd): gone, still no error.
    drop(crun);
    ctrd.remove("k8s.io", &ctrd_id).expect("containerd remove");
    let report = warden::check_json(&argv).expect("warden check after deletes");
    assert!(listed(&report, &crun_id).is_none());
    assert!(listed(&report, &ctrd_id).is_none());
    assert!(listed(&report, &runc_id).is_some(), "runc still listed");
    let skipped = report["skipped"].as_array().cloned().unwrap_or_default();
    assert!(
        !skipped.iter().any(|s| s["state_dir"]
            .as_str()
            .is_some_and(|p| p.contains(&ctrd_id))),
        "a deleted container leaves no state to skip: {skipped:?}"
    );
    drop(runc);
}
