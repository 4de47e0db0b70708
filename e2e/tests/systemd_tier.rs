//! Seed 003 on a real systemd (DESIGN §7 tier 4).
//!
//! systemd 252 boots in systemd-nspawn (`e2e/scripts/nspawn-systemd.sh`,
//! bookworm root cached under /var/cache/warden-e2e). Inside it, with
//! `/dev/char` removed, runc runs a busybox container with the systemd
//! cgroup driver. Then, through runtime-core's D-Bus client:
//! 1. the scope gets the set runc 1.1.3-1.1.4 wrote without `/dev/char`
//!    (`char-pts rwm`, `char-* m`, `block-* m`): `cat /dev/null` fails;
//! 2. the scope gets runtime-core's explicit per-device rewrite of the
//!    container's OCI rules: `/dev/null` and `/dev/urandom` work;
//! 3. `systemctl daemon-reload` (the seed's trigger) leaves them working.

// Test helpers outside #[test] fns panic on failure like the tests do.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use runtime_core::devices::device_allow::{
    explicit_device_allow, narrower_than_rules, ExplicitOptions,
};
use runtime_core::devices::host_devices::HostDevices;
use runtime_core::devices::oci::rules_from_oci;
use runtime_core::devices::systemd::{DeviceAllowEntry, DevicePolicy, SystemdDevices};
use runtime_core::devices::{Access, DeviceRule, DeviceType};
use runtime_core::host::HostRoot;
use runtime_core::systemd::{BusPaths, DbusSystemd, SystemdClient};
use runtime_core::testing;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/nspawn-systemd.sh");

/// A booted nspawn systemd; powered off on drop.
struct Nspawn {
    state: tempfile::TempDir,
    leader: u32,
    root: PathBuf,
}

impl Nspawn {
    fn boot() -> Nspawn {
        let state = tempfile::tempdir().unwrap();
        let st = Command::new("bash")
            .arg(SCRIPT)
            .arg("boot")
            .arg(state.path())
            .status()
            .unwrap();
        assert!(st.success(), "nspawn-systemd.sh boot failed");
        let leader = std::fs::read_to_string(state.path().join("leader.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let root = Command::new("bash")
            .arg(SCRIPT)
            .arg("root")
            .output()
            .unwrap();
        let root = PathBuf::from(String::from_utf8(root.stdout).unwrap().trim());
        Nspawn {
            state,
            leader,
            root,
        }
    }

    fn sh(&self, script: &str) -> Output {
        Command::new("nsenter")
            .args(["-t", &self.leader.to_string(), "-a", "sh", "-c", script])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn ok(&self, script: &str) -> String {
        let out = self.sh(script);
        assert!(
            out.status.success(),
            "`{script}` failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
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

/// A runc container inside the guest; deleted on drop (declared after the
/// guest, so it drops first, while the guest still runs).
struct Container<'a> {
    ns: &'a Nspawn,
    id: String,
    bundle_host: PathBuf,
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        let _ = self.ns.sh(&format!("runc delete -f {}", self.id));
        let _ = std::fs::remove_dir_all(&self.bundle_host);
    }
}

/// The devices runc 1.1 adds after the spec's own rules (libcontainer's
/// `AllowedDevices`): mknod of anything, the standard pseudo devices, ptys,
/// tun.
fn runc_default_rules() -> Vec<DeviceRule> {
    let any = |kind| DeviceRule {
        allow: true,
        kind,
        major: None,
        minor: None,
        access: Access::MKNOD,
    };
    let mut v = vec![any(DeviceType::Char), any(DeviceType::Block)];
    for (ma, mi) in [(1, 3), (1, 8), (1, 7), (5, 0), (1, 5), (1, 9)] {
        v.push(DeviceRule::allow_char(ma, mi, Access::ALL));
    }
    v.push(DeviceRule {
        allow: true,
        kind: DeviceType::Char,
        major: Some(136),
        minor: None,
        access: Access::ALL,
    });
    v.push(DeviceRule::allow_char(5, 2, Access::ALL));
    v.push(DeviceRule::allow_char(10, 200, Access::ALL));
    v
}

fn entries(list: &[&str]) -> Vec<DeviceAllowEntry> {
    list.iter()
        .map(|s| DeviceAllowEntry::parse(s).unwrap())
        .collect()
}

/// systemd keeps `DeviceAllow` newest-first; order means nothing to it.
fn sorted(mut v: Vec<DeviceAllowEntry>) -> Vec<DeviceAllowEntry> {
    v.sort();
    v
}

/// Probe from inside the container: each device read, `OK name` or the
/// error busybox prints.
fn probe(ns: &Nspawn, id: &str) -> String {
    let out = ns.sh(&format!(
        "runc exec {id} sh -c 'cat /dev/null && echo OK null; head -c 16 /dev/urandom >/dev/null && echo OK urandom; true' 2>&1"
    ));
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn works(p: &str) -> bool {
    p.contains("OK null") && p.contains("OK urandom")
}

#[test]
fn seed_003_on_real_systemd() {
    let name = "seed_003_on_real_systemd";
    if !testing::require_root(name)
        || !testing::require_tool(name, "systemd-nspawn")
        || !testing::require_tool(name, "debootstrap")
        || !testing::require_tool(name, "nsenter")
    {
        return;
    }
    let t0 = Instant::now();
    let ns = Nspawn::boot();
    let booted = t0.elapsed();

    // The bundle, written from the host into the cached root.
    let id = format!("warden-seed3-{}", std::process::id());
    let bundle = format!("/var/lib/warden-e2e/{id}");
    let bundle_host = ns.root.join(bundle.trim_start_matches('/'));
    let rootfs_bin = bundle_host.join("rootfs/bin");
    std::fs::create_dir_all(&rootfs_bin).unwrap();
    std::fs::copy(ns.root.join("bin/busybox"), rootfs_bin.join("busybox")).unwrap();
    for applet in ["sh", "cat", "head", "sleep", "echo", "true"] {
        std::os::unix::fs::symlink("busybox", rootfs_bin.join(applet)).unwrap();
    }
    ns.ok(&format!("cd {bundle} && runc spec"));
    let config_path = bundle_host.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
    config["process"]["terminal"] = false.into();
    config["process"]["args"] = serde_json::json!(["sleep", "3600"]);
    config["root"]["readonly"] = false.into();
    config["linux"]["cgroupsPath"] = format!("system.slice:runc:{id}").into();
    std::fs::write(&config_path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();

    // The seed's host: no /dev/char.
    ns.ok("rm -rf /dev/char");
    ns.ok(&format!(
        "runc --systemd-cgroup run -d --bundle {bundle} {id} </dev/null >/dev/null 2>&1"
    ));
    let ctr = Container {
        ns: &ns,
        id: id.clone(),
        bundle_host,
    };
    let unit = format!("runc-{id}.scope");

    let paths = BusPaths::of_process(ns.leader).with_timeout(Duration::from_secs(10));
    let client = DbusSystemd::connect(&paths).unwrap();
    let version = client.version().unwrap();
    let initial = client.unit_devices(&unit).unwrap();
    eprintln!(
        "systemd {version}; runc's DeviceAllow on {unit}: {}",
        initial
            .allow
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    assert_eq!(initial.policy, Some(DevicePolicy::Strict));
    let p = probe(&ns, &id);
    assert!(works(&p), "container should start healthy: {p}");

    // 1. The landmine runc 1.1.3-1.1.4 leaves without /dev/char.
    let old = entries(&["char-pts rwm", "char-* m", "block-* m"]);
    client.replace_devices(&unit, None, &old).unwrap();
    assert_eq!(
        sorted(client.unit_devices(&unit).unwrap().allow),
        sorted(old.clone())
    );
    let p = probe(&ns, &id);
    eprintln!("with the old set: {p}");
    assert!(
        !p.contains("OK null"),
        "cat /dev/null should fail with the old set: {p}"
    );
    assert!(p.contains("Operation not permitted"), "{p}");

    // 2. runtime-core's explicit rewrite of the container's rules, from the
    // guest's own device table (its systemd stats paths in its namespace).
    let mut rules = rules_from_oci(
        &serde_json::from_value::<Vec<_>>(config["linux"]["resources"]["devices"].clone()).unwrap(),
    )
    .unwrap();
    rules.extend(runc_default_rules());
    let guest = HostDevices::scan(&HostRoot::new(format!("/proc/{}/root", ns.leader))).unwrap();
    assert!(!guest.dev_char());
    let explicit = explicit_device_allow(
        &rules,
        &guest,
        ExplicitOptions {
            systemd_version: Some(version),
        },
    )
    .unwrap();
    eprintln!(
        "explicit: {} (unexpressed: {:?})",
        explicit
            .entries
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        explicit.unexpressed
    );
    assert!(explicit.is_exact(), "{explicit:?}");
    assert!(explicit
        .entries
        .contains(&DeviceAllowEntry::parse("/dev/null rwm").unwrap()));
    // What systemd will build from it allows the container's devices.
    let program = SystemdDevices {
        host: &guest,
        version: Some(version),
    }
    .program(explicit.policy, &explicit.entries)
    .unwrap();
    assert!(program.skipped.is_empty(), "{:?}", program.skipped);
    assert!(program.allows((DeviceType::Char, 1, 3), Access::READ.union(Access::WRITE)));

    // The latent-hazard check sees the old set as narrower than the rules
    // (it loses /dev/null), and the rewrite as not.
    let gaps =
        narrower_than_rules(&rules, DevicePolicy::Strict, &old, &guest, Some(version)).unwrap();
    assert!(
        gaps.iter().any(|g| g.device == (DeviceType::Char, 1, 3)),
        "{gaps:?}"
    );
    assert!(narrower_than_rules(
        &rules,
        explicit.policy,
        &explicit.entries,
        &guest,
        Some(version)
    )
    .unwrap()
    .is_empty());

    let t_repair = Instant::now();
    client
        .replace_devices(&unit, Some(explicit.policy), &explicit.entries)
        .unwrap();
    let repair_took = t_repair.elapsed();
    let p = probe(&ns, &id);
    assert!(
        works(&p),
        "explicit entries should repair the container: {p}"
    );

    // 3. The seed's trigger.
    ns.ok("systemctl daemon-reload");
    let p = probe(&ns, &id);
    assert!(works(&p), "the repair should survive daemon-reload: {p}");
    let after = DbusSystemd::connect(&paths)
        .unwrap()
        .unit_devices(&unit)
        .unwrap();
    assert_eq!(sorted(after.allow), sorted(explicit.entries.clone()));

    // And the landmine really is one: the old set, then daemon-reload, stays
    // broken (systemd rebuilds the same program from it).
    client.replace_devices(&unit, None, &old).unwrap();
    ns.ok("systemctl daemon-reload");
    let p = probe(&ns, &id);
    assert!(!p.contains("OK null"), "old set after daemon-reload: {p}");

    drop(ctr);
    drop(client);
    eprintln!(
        "systemd tier: boot {booted:.1?}, repair call {repair_took:.1?}, total {:.1?}",
        t0.elapsed()
    );
}
