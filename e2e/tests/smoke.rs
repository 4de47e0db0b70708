//! First real-runtime smoke test: a busybox container under runc and one under
//! crun, then `warden check --output json` must list both runtimes with the
//! host facts.

use runtime_core::testing;
use warden_e2e::container::unique_id;
use warden_e2e::{warden, Bundle, Container, Runtime};

#[test]
fn check_lists_runc_and_crun_with_containers_running() {
    let name = "smoke";
    if !testing::require_root(name)
        || !testing::require_tool(name, "runc")
        || !testing::require_tool(name, "crun")
        || !testing::require_path(name, std::path::Path::new(warden_e2e::bundle::BUSYBOX))
    {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut running = Vec::new();
    for rt in [Runtime::Runc, Runtime::Crun] {
        let id = unique_id(&format!("smoke-{}", rt.binary()));
        let dir = tmp.path().join(&id);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let bundle = Bundle::busybox(&dir, &id, &["sleep", "600"]).expect("bundle");
        let c = Container::run(rt, &id, &bundle).expect("container starts");
        let (ok, out) = c.exec(&["cat", "/dev/null"]).expect("exec");
        assert!(
            ok,
            "{}: cat /dev/null inside the container failed: {out}",
            rt.binary()
        );
        running.push(c);
    }

    let report = warden::check_json(&[]).expect("warden check");
    let runtimes = report["host"]["runtimes"]
        .as_array()
        .expect("host.runtimes array");
    for want in ["runc", "crun"] {
        let r = runtimes
            .iter()
            .find(|r| r["kind"] == want)
            .unwrap_or_else(|| panic!("{want} missing from host.runtimes: {runtimes:?}"));
        assert!(
            r["version"].as_str().is_some_and(|v| !v.is_empty()),
            "{want} has no version: {r}"
        );
    }
    assert!(
        report["host"]["dev_char"].is_boolean(),
        "host.dev_char must be a boolean"
    );
    assert!(report["findings"].is_array(), "findings must be an array");
    assert!(report["host"]["cgroups"]["mode"].is_string());
    // The containers are still running after the scan: check must not disturb them.
    for c in &running {
        assert_eq!(c.state().expect("state")["status"], "running");
    }
}
