//! `warden check` without root: it still runs, and says what it could not
//! inspect instead of passing a partial scan off as a clean one.

use std::process::Command;

use runtime_core::testing;
use warden_e2e::{warden, Bundle, Container, Runtime};

#[test]
fn check_as_nobody_lists_what_it_could_not_read() {
    let name = "nonroot";
    if !testing::require_root(name)
        || !testing::require_tool(name, "setpriv")
        || !testing::require_tool(name, "runc")
    {
        return;
    }
    // A running container, so there is runtime state a non-root scan cannot read.
    let tmp = tempfile::tempdir().expect("tempdir");
    let id = warden_e2e::container::unique_id("nonroot");
    let dir = tmp.path().join(&id);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let b = Bundle::busybox(&dir, &id, &["sleep", "600"]).expect("bundle");
    let _c = Container::run(Runtime::Runc, &id, &b).expect("container");

    let bin = warden::bin().expect("warden binary");
    let state = tempfile::tempdir().expect("state dir");
    std::fs::set_permissions(
        state.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .expect("chmod");
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&bin)
        .args(["check", "--output", "json", "--state-dir"])
        .arg(state.path())
        .output()
        .expect("run setpriv");
    let code = out.status.code();
    assert!(
        matches!(code, Some(0) | Some(1)),
        "a non-root scan is not an error: {code:?} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    let unreadable = report["host"]["unreadable"]
        .as_array()
        .expect("host.unreadable");
    let text = serde_json::to_string(unreadable).expect("json");
    assert!(text.contains("not running as root"), "{text}");
    assert!(
        report["containers"]
            .as_array()
            .is_some_and(|c| c.iter().all(|c| c["id"] != id.as_str())),
        "a non-root scan cannot see runc's state, and must not pretend to"
    );
    // The host facts it can read are still there.
    assert!(report["host"]["kernel"].is_string());
    assert!(report["host"]["dev_char"].is_boolean());
}
