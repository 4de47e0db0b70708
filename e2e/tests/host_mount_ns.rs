//! The agent runs with the host's PID namespace but its own mount namespace:
//! the host's runtimes are not in its filesystem. With `--host-binaries-pid`
//! host facts find them in that process's mount namespace and run them there.

use std::process::Command;

use runtime_core::testing;
use warden_e2e::warden;

#[test]
fn runtimes_hidden_in_our_mount_namespace_are_found_in_the_hosts() {
    let name = "host_mount_ns";
    if !testing::require_root(name)
        || !testing::require_tool(name, "unshare")
        || !testing::require_tool(name, "nsenter")
        || !testing::require_path(name, std::path::Path::new("/usr/sbin/runc"))
    {
        return;
    }
    let bin = warden::bin().expect("warden binary");
    // This test process stays in the original mount namespace: it plays the
    // host's PID 1.
    let host_pid = std::process::id().to_string();
    let run = |extra: &[&str]| -> serde_json::Value {
        // A private mount namespace in which /usr/sbin/runc is not a program.
        let out = Command::new("unshare")
            .args(["-m", "--propagation", "private", "--", "sh", "-c"])
            .arg(
                "mount --bind /dev/null /usr/sbin/runc || exit 90; \
                 test -f /usr/sbin/runc && exit 91; \
                 exec \"$0\" check --output json \"$@\"",
            )
            .arg(&bin)
            .args(extra)
            .output()
            .expect("run unshare");
        assert!(
            matches!(out.status.code(), Some(0) | Some(1)),
            "{:?}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("JSON report")
    };
    let runc = |report: &serde_json::Value| {
        report["host"]["runtimes"]
            .as_array()
            .and_then(|r| r.iter().find(|r| r["kind"] == "runc"))
            .cloned()
    };

    // Without the option the hidden runc is invisible: the test can fail.
    assert!(
        runc(&run(&[])).is_none(),
        "runc should be hidden in the private namespace"
    );

    let report = run(&["--host-binaries-pid", &host_pid]);
    let found = runc(&report).unwrap_or_else(|| {
        panic!(
            "runc not found in the host's mount namespace: {}",
            report["host"]
        )
    });
    assert_eq!(found["path"], "/usr/sbin/runc");
    let host = Command::new("runc")
        .arg("--version")
        .output()
        .expect("runc --version");
    let text = String::from_utf8_lossy(&host.stdout);
    let want = text
        .split_whitespace()
        .nth(2)
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        found["version_raw"],
        want.as_str(),
        "the version is the host binary's"
    );
}
