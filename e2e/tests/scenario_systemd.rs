//! Issue scenario 3 (seed 003) on a real systemd: `warden check` run inside
//! the nspawn guest, against that guest's systemd 252 and runc state.
//!
//! The landmine is made the way the seed's host made it: with `/dev/char`
//! gone (and `/sys/dev/char` hidden, which runc 1.1.5 falls back to), runc
//! skips every per-device `DeviceAllow=` entry and the scope gets only
//! `char-pts rwm`, `char-* m`, `block-* m`, while runc's own device program
//! keeps the container working. Then:
//! 1. before `daemon-reload` `warden check` reports `device-rules-latent`
//!    for that container only (the container still works), and `--dry-run`
//!    shows the explicit entries without changing the unit;
//! 2. `systemctl daemon-reload` makes systemd attach its program: `/dev/null`
//!    fails, and `warden check` reports `device-access-broken`;
//! 3. `warden check --fix` rewrites the unit: the container opens `/dev/null`
//!    and `/dev/urandom` again, the report marks the findings repaired, and a
//!    further `daemon-reload` leaves it working;
//! 4. a second container with a correct unit (runc's `/dev/char/M:m` form,
//!    which systemd 252 parses) is never reported, and neither its unit nor
//!    its device programs change;
//! 5. a third landmine, repaired by `--fix` before it fires while the
//!    container opens `/dev/urandom` in a loop, sees no EPERM: on cgroup v2
//!    the rewrite opens no deny window.

// Test helpers outside #[test] fns panic on failure like the tests do.
#![allow(clippy::unwrap_used)]

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use runtime_core::devices::bpf;
use runtime_core::devices::systemd::DeviceAllowEntry;
use runtime_core::systemd::{BusPaths, DbusSystemd, SystemdClient};
use runtime_core::testing;
use serde_json::Value;
use warden_e2e::nspawn::{GuestContainer, Installed, Nspawn};
use warden_e2e::warden;

/// What runc 1.1.3-1.1.4 (and 1.1.5 without `/sys/dev/char`) sets.
const OLD_SET: &[&str] = &["char-pts rwm", "char-* m", "block-* m"];

fn sorted_text(v: &[DeviceAllowEntry]) -> Vec<String> {
    let mut s: Vec<String> = v.iter().map(ToString::to_string).collect();
    s.sort();
    s
}

fn unit_allow(client: &DbusSystemd, c: &GuestContainer<'_>) -> Vec<String> {
    sorted_text(&client.unit_devices(&c.unit()).unwrap().allow)
}

/// `warden check --output json EXTRA` run inside the guest.
fn check(ns: &Nspawn, warden: &Installed, extra: &[&str]) -> Value {
    let out = ns
        .sh(&format!(
            "{} check --output json {}",
            warden.guest,
            extra.join(" ")
        ))
        .unwrap();
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "warden check {extra:?} exited {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "warden check JSON: {e}: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn findings_for<'a>(report: &'a Value, id: &str) -> Vec<&'a Value> {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["container"]["id"] == id)
        .collect()
}

fn checks(fs: &[&Value]) -> Vec<String> {
    fs.iter()
        .map(|f| f["check"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Device programs attached at the container's own cgroup (ids are
/// global, so the host reads them through the guest's root).
fn programs(ns: &Nspawn, c: &GuestContainer<'_>) -> Vec<u32> {
    let dir = std::path::PathBuf::from(format!(
        "/proc/{}/root/sys/fs/cgroup/system.slice/{}",
        ns.leader,
        c.unit()
    ));
    let cg = bpf::kernel::open_cgroup(&dir).unwrap();
    let mut ids = bpf::kernel::query(cg.as_fd(), false).unwrap().prog_ids;
    ids.sort();
    ids
}

/// The plans of `--dry-run` / `--fix` for one container's findings.
fn plans_for<'a>(report: &'a Value, id: &str) -> Vec<&'a Value> {
    let findings = report["findings"].as_array().expect("findings");
    report["plans"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .filter(|p| {
                    p["finding"]
                        .as_u64()
                        .and_then(|i| findings.get(usize::try_from(i).ok()?))
                        .is_some_and(|f| f["container"]["id"] == id)
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn systemd_device_allow_landmine_is_reported_and_repaired() {
    let name = "systemd_device_allow_landmine_is_reported_and_repaired";
    if !testing::require_root(name)
        || !testing::require_tool(name, "systemd-nspawn")
        || !testing::require_tool(name, "debootstrap")
        || !testing::require_tool(name, "nsenter")
    {
        return;
    }
    let warden_bin = warden::bin().unwrap();
    let t0 = Instant::now();
    let ns = Nspawn::boot().unwrap();
    let booted = t0.elapsed();
    let pid = std::process::id();
    let warden = ns
        .install(&warden_bin, &format!("warden-e2e-{pid}"))
        .unwrap();

    // The seed's host: no /dev/char. runc 1.1.5 still finds
    // /sys/dev/char/M:m and writes /dev/char/M:m entries: a correct unit.
    ns.ok("rm -rf /dev/char").unwrap();
    let ok_id = format!("warden-sd-ok-{pid}");
    let ok = ns
        .run_systemd_runc(&ok_id, ns.busybox_bundle(&ok_id).unwrap())
        .unwrap();
    // With /sys/dev/char hidden as well, runc skips every per-device entry.
    let bad_id = format!("warden-sd-bad-{pid}");
    let bundle = ns.busybox_bundle(&bad_id).unwrap();
    ns.ok("mkdir -p /run/warden-e2e-empty && mount --bind /run/warden-e2e-empty /sys/dev/char")
        .unwrap();
    let bad = ns.run_systemd_runc(&bad_id, bundle);
    ns.ok("umount /sys/dev/char").unwrap();
    let bad = bad.unwrap();

    let client = DbusSystemd::connect(
        &BusPaths::of_process(ns.leader).with_timeout(Duration::from_secs(10)),
    )
    .unwrap();
    let old: Vec<String> = {
        let mut v: Vec<String> = OLD_SET.iter().map(|s| (*s).to_string()).collect();
        v.sort();
        v
    };
    assert_eq!(
        unit_allow(&client, &bad),
        old,
        "runc should have left the seed's set"
    );
    let ok_unit = unit_allow(&client, &ok);
    assert!(
        ok_unit.contains(&"/dev/char/1:3 rwm".to_string()),
        "{ok_unit:?}"
    );
    let p = bad.probe();
    assert!(
        warden_e2e::nspawn::works(&p),
        "the landmine has not fired yet: {p}"
    );
    assert!(ok.works());

    // 1. The landmine, before anything fires.
    let t_scan = Instant::now();
    let r = check(&ns, &warden, &[]);
    let scan_took = t_scan.elapsed();
    let fb = findings_for(&r, &bad.id);
    assert_eq!(
        checks(&fb),
        ["device-rules-latent"],
        "before daemon-reload: {fb:?}"
    );
    let latent = fb[0];
    assert_eq!(latent["severity"], "error");
    assert_eq!(latent["evidence"]["unit"], bad.unit());
    assert_eq!(latent["evidence"]["device_policy"], "strict");
    let lost = latent["evidence"]["devices_lost"].as_str().unwrap();
    assert!(
        lost.contains("/dev/null") && lost.contains("/dev/urandom"),
        "{lost}"
    );
    assert!(
        findings_for(&r, &ok.id).is_empty(),
        "the correct unit is reported: {:?}",
        findings_for(&r, &ok.id)
    );

    // --dry-run shows the explicit entries and changes nothing.
    let r = check(&ns, &warden, &["--dry-run"]);
    let plans = plans_for(&r, &bad.id);
    assert_eq!(plans.len(), 1, "{plans:?}");
    let action = &plans[0]["plan"]["actions"][0];
    assert_eq!(action["action"], "systemd-device-allow", "{action}");
    assert_eq!(action["unit"], bad.unit());
    let planned: Vec<&str> = action["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for e in [
        "/dev/null rwm",
        "/dev/urandom rwm",
        "char-pts rwm",
        "char-* m",
    ] {
        assert!(planned.contains(&e), "{e} not planned: {planned:?}");
    }
    assert!(
        action["freeze"].is_null(),
        "no freeze on cgroup v2: {action}"
    );
    assert_eq!(unit_allow(&client, &bad), old, "--dry-run changed the unit");
    assert!(bad.works());

    // 2. The seed's trigger.
    ns.ok("systemctl daemon-reload").unwrap();
    let p = bad.probe();
    assert!(
        p.contains("Operation not permitted"),
        "daemon-reload should break it: {p}"
    );
    let r = check(&ns, &warden, &[]);
    let fb = findings_for(&r, &bad.id);
    assert!(
        checks(&fb).contains(&"device-access-broken".to_string()),
        "after daemon-reload: {fb:?}"
    );
    assert!(findings_for(&r, &ok.id).is_empty());

    // 3. The repair. (daemon-reload re-attached systemd's program to the
    // correct unit too, so its programs are taken from here.)
    let ok_programs = programs(&ns, &ok);
    let t_fix = Instant::now();
    let r = check(&ns, &warden, &["--fix"]);
    let fix_took = t_fix.elapsed();
    let fb = findings_for(&r, &bad.id);
    assert!(!fb.is_empty());
    for f in &fb {
        assert_eq!(f["repaired"], true, "not repaired: {f}");
        eprintln!("{}: {}", f["check"], f["repair_note"]);
    }
    assert!(plans_for(&r, &bad.id)
        .iter()
        .all(|p| p["plan"]["actions"][0]["action"] == "systemd-device-allow"));
    let p = bad.probe();
    assert!(warden_e2e::nspawn::works(&p), "--fix should repair: {p}");
    let now = unit_allow(&client, &bad);
    assert!(now.contains(&"/dev/null rwm".to_string()), "{now:?}");
    assert_eq!(
        programs(&ns, &ok),
        ok_programs,
        "--fix touched the other container's device programs"
    );

    // ...and it survives the trigger.
    ns.ok("systemctl daemon-reload").unwrap();
    let p = bad.probe();
    assert!(
        warden_e2e::nspawn::works(&p),
        "the repair should survive daemon-reload: {p}"
    );
    let r = check(&ns, &warden, &[]);
    assert!(
        findings_for(&r, &bad.id).is_empty(),
        "{:?}",
        findings_for(&r, &bad.id)
    );

    // 4. The other container was never touched.
    assert!(findings_for(&r, &ok.id).is_empty());
    assert_eq!(unit_allow(&client, &ok), ok_unit);
    assert!(ok.works());

    // 5. A landmine repaired before it fires, while the container opens
    // /dev/urandom in a loop: systemd attaches its new program before it
    // drops the old one, so the rewrite never denies (cgroup v2).
    let late_id = format!("warden-sd-late-{pid}");
    let bundle = ns.busybox_bundle(&late_id).unwrap();
    ns.ok("mount --bind /run/warden-e2e-empty /sys/dev/char")
        .unwrap();
    let late = ns.run_systemd_runc(&late_id, bundle);
    ns.ok("umount /sys/dev/char").unwrap();
    let late = late.unwrap();
    assert_eq!(unit_allow(&client, &late), old);
    let out = late.bundle.host.join("loop.out");
    let stop = late.bundle.host.join("rootfs/stop");
    ns.ok(&format!(
        "runc exec {} sh -c 'i=0; f=0; while [ ! -e /stop ]; do true </dev/urandom 2>&- || f=$((f+1)); \
         i=$((i+1)); done; echo opens=$i eperm=$f' >{}/loop.out 2>&1 &",
        late.id, late.bundle.guest
    ))
    .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let r = check(&ns, &warden, &["--fix"]);
    let fl = findings_for(&r, &late.id);
    assert_eq!(checks(&fl), ["device-rules-latent"], "{fl:?}");
    assert_eq!(fl[0]["repaired"], true, "{}", fl[0]);
    std::thread::sleep(Duration::from_millis(200));
    std::fs::write(&stop, "").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let counts = loop {
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        if text.contains("eperm=") || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    eprintln!("open loop across the live rewrite: {}", counts.trim());
    let opens: u64 = counts
        .split_whitespace()
        .find_map(|w| w.strip_prefix("opens="))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no loop result: {counts}"));
    assert!(opens > 1000, "the loop hardly ran: {counts}");
    assert!(
        counts.contains("eperm=0"),
        "the rewrite denied a live open: {counts}"
    );
    ns.ok("systemctl daemon-reload").unwrap();
    assert!(late.works(), "{}", late.probe());

    drop((late, bad, ok, warden, client));
    eprintln!(
        "scenario systemd: boot {booted:.1?}, one scan {scan_took:.1?}, --fix {fix_took:.1?}, total {:.1?}",
        t0.elapsed()
    );
}
