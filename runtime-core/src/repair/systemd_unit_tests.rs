//! Tests of the `DeviceAllow=` rewrite: planning on fakes, applying under
//! a freeze, and (as root) systemd's v1 replay inside a real freeze.

use super::*;
use crate::devices::host_devices::ProcDevices;
use crate::devices::systemd::{DevicePolicy, UnitDevices};
use crate::devices::DeviceType;
use crate::ports::RealCgroups;
use crate::root::HostRoot;
use crate::systemd::{SystemdError, UnitProperty};
use std::cell::RefCell;

/// A systemd that holds one unit's device settings and applies
/// `SetUnitProperties` the way systemd does (a reset clears, entries for
/// the same path merge).
pub(crate) struct FakeSystemd {
    pub version: u32,
    pub devices: RefCell<UnitDevices>,
    pub calls: RefCell<Vec<Vec<UnitProperty>>>,
    pub fail: bool,
}

impl FakeSystemd {
    pub fn new(allow: &[&str]) -> Self {
        FakeSystemd {
            version: 252,
            devices: RefCell::new(UnitDevices {
                policy: Some(DevicePolicy::Strict),
                allow: entries(allow),
            }),
            calls: RefCell::new(Vec::new()),
            fail: false,
        }
    }
}

impl SystemdClient for FakeSystemd {
    fn version_string(&self) -> Result<String, SystemdError> {
        Ok(format!("{}.1-1", self.version))
    }
    fn unit_devices(&self, _unit: &str) -> Result<UnitDevices, SystemdError> {
        if self.fail {
            return Err(SystemdError::Reply {
                method: "GetUnit",
                message: "no such unit".into(),
            });
        }
        Ok(self.devices.borrow().clone())
    }
    fn set_unit_properties(
        &self,
        _unit: &str,
        _runtime: bool,
        properties: &[UnitProperty],
    ) -> Result<(), SystemdError> {
        self.calls.borrow_mut().push(properties.to_vec());
        let mut d = self.devices.borrow_mut();
        for p in properties {
            match p {
                UnitProperty::DevicePolicy(p) => d.policy = Some(*p),
                UnitProperty::DeviceAllow(e) if e.is_empty() => d.allow.clear(),
                UnitProperty::DeviceAllow(e) => {
                    let merged = merge(&d.allow, e);
                    d.allow = merged;
                }
            }
        }
        Ok(())
    }
    fn reload(&self) -> Result<(), SystemdError> {
        Ok(())
    }
}

use crate::testing::fixtures::{entries, nspawn_host_devices as host, OLD_SET, RUNC_1_1_5_SET};

/// A runc container from `runc spec` in a systemd scope; `v1` adds a v1
/// devices cgroup, `freezer` a v1 freezer cgroup.
fn container(id: &str, freezer: Option<PathBuf>, v1: bool) -> Container {
    crate::testing::fixtures::runc_container(id, true, v1, freezer)
}

/// A finding of `check` whose typed cause refuses `refused` (device paths
/// of [`host`]; only `device-access-broken` uses them).
fn finding(check: CheckId, refused: &[&str]) -> Finding {
    let h = host();
    let cause = crate::diagnose::Cause::DeviceAccess(crate::diagnose::cause::DeviceAccessCause {
        refused: refused
            .iter()
            .map(|p| crate::diagnose::cause::RefusedDevice {
                path: PathBuf::from(p),
                device: h.stat(Path::new(p)).expect("a device of the fixture host"),
                by: vec![crate::diagnose::cause::Layer::V1],
                canary: true,
            })
            .collect(),
        canary_error: None,
        v1_cgroup: None,
        v2_cgroup: None,
    });
    Finding::new(check, crate::diagnose::Severity::Error, None, cause)
}

fn the_action(p: &RepairPlan) -> (&[DeviceAllowEntry], Option<&FreezeTarget>, &[String]) {
    match &p.actions[..] {
        [RepairAction::SystemdDeviceAllow {
            entries,
            freeze,
            unexpressed,
            ..
        }] => (entries, freeze.as_ref(), unexpressed),
        other => panic!("unexpected actions {other:?}"),
    }
}

#[test]
fn the_seed_set_loses_the_pseudo_devices_and_runc_115s_does_not() {
    let h = host();
    let c = container("a", None, false);
    let sd = FakeSystemd::new(OLD_SET);
    let v = read_unit(&c, &sd, &h, Some(252))
        .unwrap()
        .expect("in a unit");
    assert_eq!(v.unit, "runc-a.scope");
    let lost: Vec<String> = v.lost.iter().map(ToString::to_string).collect();
    assert!(
        lost.contains(&"c 1:3 rw (/dev/null)".to_string()),
        "{lost:?}"
    );
    assert!(lost.iter().any(|l| l.contains("/dev/urandom")), "{lost:?}");
    // ptmx (5:2) has no node in the guest: not counted, but noted.
    assert!(!lost.iter().any(|l| l.contains(" 5:2 ")), "{lost:?}");
    assert_eq!(v.lost_without_node, 1);
    let required = required_devices(&CheckPolicy::default(), &h);
    assert_eq!(required.len(), 6);
    assert_eq!(v.lost_required(&required).len(), 6);

    // What runc 1.1.5 writes when /sys/dev/char exists: fine on 252...
    let sd = FakeSystemd::new(RUNC_1_1_5_SET);
    let v = read_unit(&c, &sd, &h, Some(252)).unwrap().unwrap();
    assert!(v.lost.is_empty(), "{:?}", v.lost);
    // ...but a systemd that stats the path loses everything.
    let v = read_unit(&c, &sd, &h, Some(239)).unwrap().unwrap();
    assert_eq!(v.lost_required(&required).len(), 6);

    // Not in a unit: nothing to read, systemd is not asked.
    let mut plain = container("b", None, false);
    plain.systemd_cgroup = false;
    let failing = FakeSystemd {
        fail: true,
        ..FakeSystemd::new(&[])
    };
    assert!(read_unit(&plain, &failing, &h, Some(252))
        .unwrap()
        .is_none());
    assert!(read_unit(&c, &failing, &h, Some(252)).is_err());
}

#[test]
fn plan_then_apply_repairs_once_and_keeps_what_the_unit_had() {
    let h = host();
    let c = container("a", None, false);
    let mut old: Vec<&str> = OLD_SET.to_vec();
    old.push("/dev/fuse rwm"); // an admin's addition, not in the rules
    let sd = FakeSystemd::new(&old);
    let f = finding(CheckId::DeviceRulesLatent, &[]);
    let plan = plan_with(&f, &c, &CheckPolicy::default(), &sd, &h, Some(252))
        .unwrap()
        .expect("a plan");
    let (want, freeze, unexpressed) = the_action(&plan);
    assert!(freeze.is_none(), "v2 needs no freeze");
    assert!(unexpressed.is_empty(), "{unexpressed:?}");
    let text: Vec<String> = want.iter().map(ToString::to_string).collect();
    for e in [
        "/dev/null rwm",
        "/dev/urandom rwm",
        "/dev/fuse rwm",
        "char-pts rwm",
        "char-* m",
    ] {
        assert!(text.contains(&e.to_string()), "{e} missing from {text:?}");
    }
    assert!(plan.safety.contains("only grows"), "{}", plan.safety);
    let json = serde_json::to_value(&plan).unwrap();
    assert_eq!(json["actions"][0]["action"], "systemd-device-allow");
    assert!(json["actions"][0]["entries"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!("/dev/null rwm")));
    assert_eq!(sd.calls.borrow().len(), 0, "planning changes nothing");

    let root = HostRoot::new("/nonexistent");
    let a = apply_with(
        &sd,
        &RealCgroups::new(root.clone()),
        "runc-a.scope",
        want,
        None,
        None,
    )
    .unwrap();
    assert!(matches!(a, Applied::Changed(_)), "{a:?}");
    {
        let calls = sd.calls.borrow();
        assert_eq!(calls.len(), 1);
        // One call: reset, then every entry; the policy untouched.
        assert_eq!(calls[0][0], UnitProperty::DeviceAllow(vec![]));
        assert!(!calls[0]
            .iter()
            .any(|p| matches!(p, UnitProperty::DevicePolicy(_))));
    }
    let v = read_unit(&c, &sd, &h, Some(252)).unwrap().unwrap();
    assert!(v.lost.is_empty(), "{:?}", v.lost);
    assert!(v
        .current
        .allow
        .contains(&DeviceAllowEntry::parse("/dev/fuse rwm").unwrap()));

    // Idempotent: a second apply makes no call; planning again has
    // nothing to do.
    let a = apply_with(
        &sd,
        &RealCgroups::new(root.clone()),
        "runc-a.scope",
        want,
        None,
        None,
    )
    .unwrap();
    assert!(matches!(a, Applied::Unchanged(_)), "{a:?}");
    assert_eq!(sd.calls.borrow().len(), 1);
    assert!(plan_with(&f, &c, &CheckPolicy::default(), &sd, &h, Some(252)).is_err());
}

#[test]
fn access_broken_is_planned_here_only_when_the_unit_is_the_cause() {
    let h = host();
    let c = container("a", None, false);
    let broken = finding(CheckId::DeviceAccessBroken, &["/dev/null"]);
    let sd = FakeSystemd::new(OLD_SET);
    assert!(
        plan_with(&broken, &c, &CheckPolicy::default(), &sd, &h, Some(252))
            .unwrap()
            .is_some()
    );
    // The unit only loses tun: /dev/null is denied by something else.
    let sd = FakeSystemd::new(&[
        "char-pts rwm",
        "/dev/null rwm",
        "/dev/zero rwm",
        "/dev/full rwm",
        "/dev/random rwm",
        "/dev/urandom rwm",
        "/dev/tty rwm",
        "char-* m",
        "block-* m",
    ]);
    assert!(
        plan_with(&broken, &c, &CheckPolicy::default(), &sd, &h, Some(252))
            .unwrap()
            .is_none()
    );
    // ...which the latent check does repair.
    let latent = finding(CheckId::DeviceRulesLatent, &[]);
    let p = plan_with(&latent, &c, &CheckPolicy::default(), &sd, &h, Some(252))
        .unwrap()
        .unwrap();
    let (want, _, _) = the_action(&p);
    assert!(want.contains(&DeviceAllowEntry::parse("/dev/net/tun rwm").unwrap()));
}

#[test]
fn a_required_device_no_entry_can_express_is_refused() {
    // 1:3's only node has a space in its path (systemd refuses such a
    // path), there is no /dev/char, and systemd 239 stats /dev/char/M:m.
    let h = HostDevices::from_parts(
        vec![(PathBuf::from("/dev/my null"), (DeviceType::Char, 1, 3))],
        Vec::new(),
        false,
        ProcDevices::default(),
    );
    let policy = CheckPolicy {
        required_devices: vec![PathBuf::from("/dev/my null")],
        ..CheckPolicy::default()
    };
    let c = container("a", None, false);
    let sd = FakeSystemd {
        version: 239,
        ..FakeSystemd::new(OLD_SET)
    };
    let f = finding(CheckId::DeviceRulesLatent, &[]);
    let e = plan_with(&f, &c, &policy, &sd, &h, Some(239)).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, PlanError::NotRepairable(_)), "{msg}");
    assert!(
        msg.contains("c 1:3") && msg.contains("unexpressed"),
        "{msg}"
    );
    assert_eq!(sd.calls.borrow().len(), 0);
}

#[test]
fn v1_is_frozen_around_the_call_or_not_changed() {
    let h = host();
    let f = finding(CheckId::DeviceRulesLatent, &[]);
    // No freezer cgroup: refused at planning.
    let c = container("a", None, true);
    let sd = FakeSystemd::new(OLD_SET);
    let e = plan_with(&f, &c, &CheckPolicy::default(), &sd, &h, Some(252)).unwrap_err();
    assert!(e.to_string().contains("freezer"), "{e}");

    // A fake v1 freezer (plain files): frozen during the call, thawed
    // after.
    let root = tempfile::tempdir().unwrap();
    let fz = PathBuf::from("/sys/fs/cgroup/freezer/system.slice/runc-a.scope");
    let dir = HostRoot::new(root.path()).join(&fz);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("freezer.state"), "THAWED\n").unwrap();
    std::fs::write(dir.join("freezer.self_freezing"), "0\n").unwrap();
    std::fs::write(dir.join("tasks"), "").unwrap();
    let c = container("a", Some(fz.clone()), true);
    let p = plan_with(&f, &c, &CheckPolicy::default(), &sd, &h, Some(252))
        .unwrap()
        .unwrap();
    let (want, freeze, _) = the_action(&p);
    assert_eq!(freeze, Some(&FreezeTarget::V1(fz.clone())));
    assert!(p.safety.contains("frozen around the call"), "{}", p.safety);
    let a = apply_with(
        &sd,
        &RealCgroups::new(HostRoot::new(root.path())),
        "runc-a.scope",
        want,
        freeze,
        None,
    )
    .unwrap();
    match a {
        Applied::Changed(s) => assert!(s.contains("frozen for"), "{s}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        std::fs::read_to_string(dir.join("freezer.state"))
            .unwrap()
            .trim(),
        "THAWED"
    );

    // A freezer that cannot be frozen: nothing is sent to systemd.
    let sd = FakeSystemd::new(OLD_SET);
    std::fs::remove_file(dir.join("freezer.self_freezing")).unwrap();
    let e = apply_with(
        &sd,
        &RealCgroups::new(HostRoot::new(root.path())),
        "runc-a.scope",
        want,
        freeze,
        None,
    )
    .unwrap_err();
    assert!(matches!(e, RepairError::Freeze { .. }), "{e}");
    assert_eq!(sd.calls.borrow().len(), 0);
}

#[test]
fn merge_and_covers() {
    let m = merge(
        &entries(&["/dev/null rw", "char-* m"]),
        &entries(&["/dev/null m", "block-* m"]),
    );
    assert_eq!(m, entries(&["/dev/null rwm", "char-* m", "block-* m"]));
    assert!(covers(&m, &entries(&["/dev/null r", "block-* m"])));
    assert!(!covers(&m, &entries(&["/dev/zero r"])));
    assert!(!covers(
        &entries(&["/dev/null r"]),
        &entries(&["/dev/null rw"])
    ));
}

fn host_with_dev_char(dev_char: bool) -> HostDevices {
    let h = host();
    let nodes: Vec<(PathBuf, DeviceId)> = h
        .devices()
        .flat_map(|d| h.node_paths(d).iter().map(move |p| (p.clone(), d)))
        .collect();
    HostDevices::from_parts(nodes, Vec::new(), dev_char, h.proc_devices().clone())
}

#[test]
fn explicit_rules_policy_gates_the_rewrite() {
    let c = container("a", None, false);
    let f = finding(CheckId::DeviceRulesLatent, &[]);
    let plan = |rules: ExplicitRules, dev_char: bool| {
        let policy = CheckPolicy {
            explicit_rules: rules,
            ..CheckPolicy::default()
        };
        let sd = FakeSystemd::new(OLD_SET);
        let r = plan_with(
            &f,
            &c,
            &policy,
            &sd,
            &host_with_dev_char(dev_char),
            Some(252),
        );
        let calls = sd.calls.borrow().len();
        (r, calls)
    };
    // Never: refused with the policy's name, whatever the host.
    for dev_char in [false, true] {
        match plan(ExplicitRules::Never, dev_char) {
            (Err(PlanError::NotAllowed(m)), 0) => {
                assert_eq!(m, "devices.explicitRules: Never")
            }
            other => panic!("Never, dev_char {dev_char}: {other:?}"),
        }
    }
    // Auto: only where /dev/char is missing.
    assert!(matches!(plan(ExplicitRules::Auto, false), (Ok(Some(_)), 0)));
    match plan(ExplicitRules::Auto, true) {
        (Err(PlanError::NotAllowed(m)), 0) => {
            assert!(m.contains("explicitRules: Auto"), "{m}")
        }
        other => panic!("Auto with /dev/char: {other:?}"),
    }
    // Always: whenever needed, /dev/char or not.
    assert!(matches!(
        plan(ExplicitRules::Always, false),
        (Ok(Some(_)), 0)
    ));
    assert!(
        !matches!(
            plan(ExplicitRules::Always, true).0,
            Err(PlanError::NotAllowed(_))
        ),
        "Always is never refused by the policy"
    );
}

/// Delegates to a [`FakeSystemd`]; on the set call, records how many
/// markers `markers` holds and whether the freezer says FROZEN, and
/// optionally breaks the freezer (so the thaw fails) and the call.
struct Watching<'a> {
    inner: FakeSystemd,
    markers: &'a Path,
    freezer: &'a Path,
    break_both: bool,
    seen: RefCell<Vec<(bool, usize)>>,
}

impl SystemdClient for Watching<'_> {
    fn version_string(&self) -> Result<String, SystemdError> {
        self.inner.version_string()
    }
    fn unit_devices(&self, unit: &str) -> Result<UnitDevices, SystemdError> {
        self.inner.unit_devices(unit)
    }
    fn set_unit_properties(
        &self,
        unit: &str,
        runtime: bool,
        properties: &[UnitProperty],
    ) -> Result<(), SystemdError> {
        let state = self.freezer.join("freezer.state");
        let frozen = std::fs::read_to_string(&state).unwrap().trim() == "FROZEN";
        let n = std::fs::read_dir(self.markers)
            .map(|r| r.flatten().count())
            .unwrap_or(0);
        self.seen.borrow_mut().push((frozen, n));
        if self.break_both {
            std::fs::remove_file(&state).unwrap();
            std::fs::create_dir(&state).unwrap();
            return Err(SystemdError::Reply {
                method: "SetUnitProperties",
                message: "access denied".into(),
            });
        }
        self.inner.set_unit_properties(unit, runtime, properties)
    }
    fn reload(&self) -> Result<(), SystemdError> {
        self.inner.reload()
    }
}

#[test]
fn a_freeze_leaves_a_marker_until_the_thaw_and_both_failures_are_reported() {
    let root = tempfile::tempdir().unwrap();
    let hr = HostRoot::new(root.path());
    let fz = PathBuf::from("/sys/fs/cgroup/freezer/system.slice/runc-m.scope");
    let dir = hr.join(&fz);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("freezer.state"), "THAWED\n").unwrap();
    std::fs::write(dir.join("freezer.self_freezing"), "0\n").unwrap();
    std::fs::write(dir.join("tasks"), "").unwrap();
    let markers = hr.join("/run/warden/frozen");
    let freeze = FreezeTarget::V1(fz.clone());
    let want = entries(&["/dev/null rwm", "char-pts rwm"]);

    let sd = Watching {
        inner: FakeSystemd::new(OLD_SET),
        markers: &markers,
        freezer: &dir,
        break_both: false,
        seen: RefCell::new(Vec::new()),
    };
    let a = apply_with(
        &sd,
        &RealCgroups::new(hr.clone()),
        "runc-m.scope",
        &want,
        Some(&freeze),
        Some(Path::new("/run/warden/frozen")),
    )
    .unwrap();
    assert!(matches!(a, Applied::Changed(_)), "{a:?}");
    assert_eq!(
        *sd.seen.borrow(),
        vec![(true, 1)],
        "frozen, with its marker"
    );
    assert_eq!(
        std::fs::read_dir(&markers).unwrap().count(),
        0,
        "marker kept"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("freezer.state")).unwrap(),
        "THAWED"
    );

    // The call fails and the thaw fails: both are reported, and the
    // marker stays for the agent to thaw the container later.
    let sd = Watching {
        inner: FakeSystemd::new(OLD_SET),
        break_both: true,
        ..sd
    };
    let e = apply_with(
        &sd,
        &RealCgroups::new(hr.clone()),
        "runc-m.scope",
        &want,
        Some(&freeze),
        Some(Path::new("/run/warden/frozen")),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("access denied"), "the D-Bus error is lost: {e}");
    assert!(e.contains("freezer.state"), "the thaw error is lost: {e}");
    assert!(e.contains("still frozen"), "{e}");
    assert_eq!(std::fs::read_dir(&markers).unwrap().count(), 1);
}

#[test]
fn explicit_rules_refuse_nothing_when_the_unit_is_not_the_cause() {
    let c = container("a", None, false);
    let broken = finding(CheckId::DeviceAccessBroken, &["/dev/null"]);
    // The unit denies nothing the container is entitled to: no plan
    // here (the device cgroups are repaired instead), not a refusal.
    let sd = FakeSystemd::new(&[
        "char-pts rwm",
        "/dev/null rwm",
        "/dev/zero rwm",
        "/dev/full rwm",
        "/dev/random rwm",
        "/dev/urandom rwm",
        "/dev/tty rwm",
        "/dev/net/tun rwm",
        "char-* m",
        "block-* m",
    ]);
    for (rules, dev_char) in [(ExplicitRules::Never, false), (ExplicitRules::Auto, true)] {
        let policy = CheckPolicy {
            explicit_rules: rules,
            ..CheckPolicy::default()
        };
        let h = host_with_dev_char(dev_char);
        assert!(
            matches!(
                plan_with(&broken, &c, &policy, &sd, &h, Some(252)),
                Ok(None)
            ),
            "{rules:?}"
        );
    }
}
