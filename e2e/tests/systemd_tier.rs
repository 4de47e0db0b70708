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

use std::time::{Duration, Instant};

use runtime_core::devices::device_allow::{
    explicit_device_allow, narrower_than_rules, ExplicitOptions,
};
use runtime_core::devices::host_devices::HostDevices;
use runtime_core::devices::oci::rules_from_oci;
use runtime_core::devices::systemd::{DeviceAllowEntry, DevicePolicy, SystemdDevices};
use runtime_core::devices::{Access, DeviceRule, DeviceType};
use runtime_core::root::HostRoot;
use runtime_core::systemd::{BusPaths, DbusSystemd, SystemdClient};
use runtime_core::testing;
use warden_e2e::nspawn::{works, Nspawn};

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
    let ns = Nspawn::boot().unwrap();
    let booted = t0.elapsed();

    // The bundle, written from the host into the cached root.
    let id = format!("warden-seed3-{}", std::process::id());
    let bundle = ns.busybox_bundle(&id).unwrap();

    // The seed's host: no /dev/char.
    ns.ok("rm -rf /dev/char").unwrap();
    let ctr = ns.run_systemd_runc(&id, bundle).unwrap();
    let config = ctr.bundle.config.clone();
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
    let p = ctr.probe();
    assert!(works(&p), "container should start healthy: {p}");

    // 1. The landmine runc 1.1.3-1.1.4 leaves without /dev/char.
    let old = entries(&["char-pts rwm", "char-* m", "block-* m"]);
    client.replace_devices(&unit, None, &old).unwrap();
    assert_eq!(
        sorted(client.unit_devices(&unit).unwrap().allow),
        sorted(old.clone())
    );
    let p = ctr.probe();
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
    let p = ctr.probe();
    assert!(
        works(&p),
        "explicit entries should repair the container: {p}"
    );

    // 3. The seed's trigger.
    ns.ok("systemctl daemon-reload").unwrap();
    let p = ctr.probe();
    assert!(works(&p), "the repair should survive daemon-reload: {p}");
    let after = DbusSystemd::connect(&paths)
        .unwrap()
        .unit_devices(&unit)
        .unwrap();
    assert_eq!(sorted(after.allow), sorted(explicit.entries.clone()));

    // And the landmine really is one: the old set, then daemon-reload, stays
    // broken (systemd rebuilds the same program from it).
    client.replace_devices(&unit, None, &old).unwrap();
    ns.ok("systemctl daemon-reload").unwrap();
    let p = ctr.probe();
    assert!(!p.contains("OK null"), "old set after daemon-reload: {p}");

    drop(ctr);
    drop(client);
    eprintln!(
        "systemd tier: boot {booted:.1?}, repair call {repair_took:.1?}, total {:.1?}",
        t0.elapsed()
    );
}
