//! `warden operator` and `warden agent` as processes: the operator refuses
//! unsafe election timings before touching the cluster, a SIGTERM while it
//! waits for the Lease ends it cleanly (exit 0) even when the API server is
//! unreachable, and both say once why they cannot find a cluster and what to
//! do instead.

// Helpers outside #[test] functions panic on purpose.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn warden() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_warden"));
    // Never pick up a real cluster from the environment.
    c.env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .env("RUST_LOG", "info");
    c
}

#[test]
fn unsafe_lease_timings_are_refused_before_connecting() {
    let out = warden()
        .args([
            "operator",
            "--agent-image",
            "runtime-warden:test",
            "--identity",
            "t",
            "--lease-duration-seconds",
            "10",
            "--renew-deadline-seconds",
            "10",
        ])
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("renew deadline"), "{stderr}");
}

#[test]
fn the_agent_image_is_required() {
    let out = warden()
        .args(["operator"])
        .env_remove("WARDEN_AGENT_IMAGE")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--agent-image"));
}

#[test]
fn sigterm_while_waiting_for_the_lease_exits_cleanly() {
    // A kubeconfig whose API server refuses connections: the operator keeps
    // retrying the Lease until it is told to stop.
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("config");
    std::fs::File::create(&kubeconfig)
        .unwrap()
        .write_all(
            br#"apiVersion: v1
kind: Config
clusters:
- name: nowhere
  cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}
users:
- name: nobody
  user: {token: "t"}
contexts:
- name: nowhere
  context: {cluster: nowhere, user: nobody}
current-context: nowhere
"#,
        )
        .unwrap();
    let mut child = warden()
        .args([
            "operator",
            "--agent-image",
            "runtime-warden:test",
            "--identity",
            "replica-a",
            "--retry-period-seconds",
            "1",
        ])
        .env("KUBECONFIG", &kubeconfig)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Let it install its handlers and fail to reach the server at least once.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the operator exited early"
    );
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());

    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no exit 10 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("SIGTERM"), "{stderr}");
    assert!(
        stderr.contains("leader election"),
        "it tried the Lease: {stderr}"
    );
}

#[test]
fn without_a_cluster_each_cause_is_printed_once_with_a_hint() {
    // A path that shows up nowhere but in the cause, so it can be counted.
    let kubeconfig = "/nonexistent/warden-cli-test-kubeconfig";
    let commands: [&[&str]; 2] = [
        &["agent", "--node-name", "n1", "--metrics-addr", "off"],
        &["operator", "--agent-image", "x"],
    ];
    for args in commands {
        let out = warden()
            .args(args)
            .env("HOME", "/nonexistent")
            .env("KUBECONFIG", kubeconfig)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(
            stderr
                .matches("warden: error: connect to the cluster")
                .count(),
            1,
            "{args:?}: {stderr}"
        );
        assert_eq!(stderr.matches(kubeconfig).count(), 1, "{args:?}: {stderr}");
        assert_eq!(
            stderr.matches("(os error 2)").count(),
            1,
            "{args:?}: {stderr}"
        );
        assert!(
            stderr.contains("\nhint: run inside a cluster, or set KUBECONFIG"),
            "{args:?}: {stderr}"
        );
        assert!(
            stderr.contains("`warden agent --standalone`"),
            "{args:?}: {stderr}"
        );
    }
}
