//! The D-Bus client against a real systemd 252 booted in systemd-nspawn
//! (DESIGN §7 tier 4; `e2e/scripts/nspawn-systemd.sh` builds and boots it).
//!
//! One test function, because one booted systemd serves every step and the
//! harness has no suite teardown; the guard powers the container off even
//! when a step fails.
//!
//! systemd refuses private-socket clients whose pid it cannot see
//! (`SO_PEERCRED` gives pid 0 across PID namespaces: "Incoming private
//! connection from unprivileged client, refusing: No data available"), so
//! the private-socket steps run in a second process that `nsenter -p` puts
//! in the guest's PID namespace: this test binary again, running the
//! ignored helper test [`private_socket_steps`].

// Test helpers outside #[test] fns panic on failure like the tests do.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use runtime_core::devices::systemd::{parse_unit_text, DeviceAllowEntry, DevicePolicy};
use runtime_core::systemd::client::replace_devices_plan;
use runtime_core::systemd::{BusPaths, DbusSystemd, SystemdClient, SystemdError, Transport};
use runtime_core::testing;

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../e2e/scripts/nspawn-systemd.sh"
);

/// A booted nspawn systemd; powered off on drop.
struct Nspawn {
    state: tempfile::TempDir,
    leader: u32,
}

impl Nspawn {
    fn boot() -> Nspawn {
        let state = tempfile::tempdir().unwrap();
        let t0 = Instant::now();
        let st = Command::new("bash")
            .arg(SCRIPT)
            .arg("boot")
            .arg(state.path())
            .status()
            .unwrap();
        assert!(st.success(), "nspawn-systemd.sh boot failed");
        eprintln!(
            "nspawn boot (including any debootstrap): {:.1?}",
            t0.elapsed()
        );
        let leader = std::fs::read_to_string(state.path().join("leader.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        Nspawn { state, leader }
    }

    /// Run a command inside every namespace of the guest.
    fn sh(&self, script: &str) -> std::process::Output {
        Command::new("nsenter")
            .args(["-t", &self.leader.to_string(), "-a", "sh", "-c", script])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn root(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root", self.leader))
    }
}

impl Drop for Nspawn {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(SCRIPT)
            .arg("stop")
            .arg(self.state.path())
            .status();
    }
}

fn entries(list: &[&str]) -> Vec<DeviceAllowEntry> {
    list.iter()
        .map(|s| DeviceAllowEntry::parse(s).unwrap())
        .collect()
}

/// systemd 252 keeps `DeviceAllow` newest-first (and order has no meaning
/// to it), so lists are compared as sets.
fn sorted(mut v: Vec<DeviceAllowEntry>) -> Vec<DeviceAllowEntry> {
    v.sort();
    v
}

#[test]
fn dbus_client_against_real_systemd() {
    if !testing::require_root("dbus_client_against_real_systemd")
        || !testing::require_tool("dbus_client_against_real_systemd", "systemd-nspawn")
        || !testing::require_tool("dbus_client_against_real_systemd", "debootstrap")
        || !testing::require_tool("dbus_client_against_real_systemd", "nsenter")
    {
        return;
    }
    let t0 = Instant::now();
    let ns = Nspawn::boot();
    let paths = BusPaths::of_process(ns.leader).with_timeout(Duration::from_secs(10));

    // The system bus.
    let bus = DbusSystemd::connect(&paths).unwrap();
    assert_eq!(
        bus.transport(),
        &Transport::SystemBus(paths.system_bus.clone())
    );
    let version = bus.version().unwrap();
    assert!(version >= 240, "bookworm ships systemd 252, got {version}");
    eprintln!("systemd in nspawn: {}", bus.version_string().unwrap());

    // From outside the guest's PID namespace the private socket refuses us.
    let err = DbusSystemd::connect_private(&paths.private, paths.timeout).unwrap_err();
    eprintln!("private socket from the host's PID namespace: {err}");

    // A unit to work on: a transient service with strict device settings.
    let unit = format!("warden-dbus-{}.service", std::process::id());
    let out = ns.sh(&format!(
        "systemd-run --unit={unit} -p DevicePolicy=strict -p 'DeviceAllow=/dev/null rw' sleep 600"
    ));
    assert!(
        out.status.success(),
        "systemd-run: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let got = bus.unit_devices(&unit).unwrap();
    assert_eq!(got.policy, Some(DevicePolicy::Strict));
    assert_eq!(got.allow, entries(&["/dev/null rw"]));

    // Replace in one call; read back, and from the transient drop-in
    // systemd wrote.
    let want = entries(&[
        "/dev/null rwm",
        "/dev/urandom rw",
        "char-pts rwm",
        "/dev/char/1:5 rw",
        "block-* m",
    ]);
    bus.replace_devices(&unit, Some(DevicePolicy::Strict), &[])
        .unwrap();
    assert!(bus.unit_devices(&unit).unwrap().allow.is_empty());
    bus.replace_devices(&unit, None, &want).unwrap();
    let back = bus.unit_devices(&unit).unwrap();
    assert_eq!(sorted(back.allow), sorted(want.clone()));
    assert_eq!(back.policy, Some(DevicePolicy::Strict));
    let drop_in = ns.root().join(format!(
        "run/systemd/transient/{unit}.d/50-DeviceAllow.conf"
    ));
    let on_disk = parse_unit_text(&std::fs::read_to_string(&drop_in).unwrap()).unwrap();
    assert_eq!(sorted(on_disk.allow), sorted(want.clone()));

    // Without a reset, DeviceAllow adds to the list.
    bus.set_unit_properties(
        &unit,
        true,
        &[runtime_core::systemd::UnitProperty::DeviceAllow(entries(
            &["/dev/zero r"],
        ))],
    )
    .unwrap();
    assert_eq!(bus.unit_devices(&unit).unwrap().allow.len(), want.len() + 1);

    // systemd refuses /sys/dev/char paths (runc 1.1.5 only *checks* them).
    let err = bus
        .set_unit_properties(
            &unit,
            true,
            &replace_devices_plan(None, &entries(&["/sys/dev/char/1:3 rw"])),
        )
        .unwrap_err();
    eprintln!("/sys/dev/char/1:3 over D-Bus: {err}");
    assert!(matches!(err, SystemdError::Call { .. }), "{err}");
    // The refused call changed nothing (not even its leading reset).
    assert_eq!(bus.unit_devices(&unit).unwrap().allow.len(), want.len() + 1);

    // Unknown units are named as such.
    let err = bus.unit_devices("warden-no-such-unit.scope").unwrap_err();
    assert!(err.is_no_such_unit(), "{err}");

    // daemon-reload through the client keeps the runtime settings.
    bus.replace_devices(&unit, None, &want).unwrap();
    bus.reload().unwrap();
    let after = DbusSystemd::connect(&paths)
        .unwrap()
        .unit_devices(&unit)
        .unwrap();
    assert_eq!(sorted(after.allow), sorted(want.clone()));

    // The private socket, from inside the guest's PID namespace, with no
    // system bus socket: the fallback path.
    let out = Command::new("nsenter")
        .args(["-t", &ns.leader.to_string(), "-p", "--"])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "private_socket_steps",
            "--ignored",
            "--nocapture",
        ])
        .env(PRIVATE_ENV, &paths.private)
        .env(UNIT_ENV, &unit)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    eprintln!("{text}");
    assert!(out.status.success(), "private-socket steps failed");
    assert!(text.contains("1 passed"), "the helper test did not run");
    assert_eq!(
        bus.unit_devices(&unit).unwrap().allow,
        entries(&["/dev/full rw"])
    );

    let _ = ns.sh(&format!("systemctl stop {unit}"));
    eprintln!("systemd D-Bus tier took {:.1?}", t0.elapsed());
}

const PRIVATE_ENV: &str = "WARDEN_TEST_SYSTEMD_PRIVATE";
const UNIT_ENV: &str = "WARDEN_TEST_SYSTEMD_UNIT";

/// Run by [`dbus_client_against_real_systemd`] inside the guest's PID
/// namespace; ignored otherwise (it needs that setting up).
#[test]
#[ignore = "helper: dbus_client_against_real_systemd runs it inside systemd's PID namespace"]
fn private_socket_steps() {
    let private = PathBuf::from(
        std::env::var_os(PRIVATE_ENV).expect("run by dbus_client_against_real_systemd"),
    );
    let unit = std::env::var(UNIT_ENV).unwrap();
    let paths = BusPaths {
        system_bus: private.with_file_name("no_system_bus_here"),
        private: private.clone(),
        timeout: Duration::from_secs(10),
    };
    // The fallback picks the private socket and the handshake succeeds
    // (from this PID namespace systemd accepts us).
    let client = DbusSystemd::connect(&paths).unwrap();
    assert_eq!(client.transport(), &Transport::Private(private));
    let version = client.version().unwrap();
    assert!(version >= 240);
    assert_eq!(
        client.unit_devices(&unit).unwrap().policy,
        Some(DevicePolicy::Strict)
    );
    client
        .replace_devices(&unit, None, &entries(&["/dev/full rw"]))
        .unwrap();
    assert_eq!(
        client.unit_devices(&unit).unwrap().allow,
        entries(&["/dev/full rw"])
    );
    // Reload over the private socket: systemd may close private
    // connections while it reloads; a new connection sees the settings.
    match client.reload() {
        Ok(()) => eprintln!("Reload over the private socket: answered"),
        Err(e) => eprintln!("Reload over the private socket: {e}"),
    }
    let again = DbusSystemd::connect(&paths).unwrap();
    assert_eq!(
        again.unit_devices(&unit).unwrap().allow,
        entries(&["/dev/full rw"])
    );
    eprintln!("private socket: systemd {version}, unit {unit} read, set, reloaded");
}
