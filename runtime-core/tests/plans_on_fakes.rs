//! Every check's causes planned and applied on fake ports (no root, no
//! D-Bus, no bpf): each plan obeys the never-narrow law, applying it does
//! what it says in the order that keeps the law, and applying it twice
//! changes nothing the second time.

use std::path::{Path, PathBuf};

use runtime_core::checks::{CheckId, Severity};
use runtime_core::devices::bpf::{self, DeviceAccess};
use runtime_core::devices::systemd::UnitDevices;
use runtime_core::devices::v1::lines::parse_write;
use runtime_core::devices::{Access, DeviceRule, DeviceType};
use runtime_core::diagnose::cause::{
    BlockedCause, Cause, DeviceAccessCause, JitterCause, JitterRuntime, Layer, ProfileCause,
    RefusedDevice, ShimCause, StuckCause, UnitCause,
};
use runtime_core::diagnose::{CheckPolicy, Finding, RequiredDevice, ScanOptions, Snapshot};
use runtime_core::discovery::Container;
use runtime_core::host::HostFacts;
use runtime_core::ports::SystemdSession;
use runtime_core::repair::{apply, plan, PlanError, RepairAction};
use runtime_core::root::HostRoot;
use runtime_core::systemd::history::VersionHazard;
use runtime_core::systemd::UnitView;
use runtime_core::testing::fakes::{Call, FakePorts};
use runtime_core::testing::fixtures::{nspawn_host_devices, runc_container, strict_unit, OLD_SET};

/// Whether a state allows a request.
type Verdict = Box<dyn Fn(&DeviceAccess) -> bool>;

/// Every device and access bit the laws are checked over.
fn requests() -> Vec<DeviceAccess> {
    let devices = [
        (DeviceType::Char, 1, 3),
        (DeviceType::Char, 1, 5),
        (DeviceType::Char, 1, 9),
        (DeviceType::Char, 5, 0),
        (DeviceType::Char, 10, 200),
        (DeviceType::Char, 136, 0),
        (DeviceType::Char, 195, 0),
        (DeviceType::Block, 8, 0),
    ];
    let mut out = Vec::new();
    for (kind, major, minor) in devices {
        for bits in 1..=7u8 {
            let a = Access::from_bits(bits);
            out.push(match kind {
                DeviceType::Block => DeviceAccess::block(major, minor, a),
                _ => DeviceAccess::char(major, minor, a),
            });
        }
    }
    out
}

fn required() -> Vec<RequiredDevice> {
    nspawn_host_devices()
        .devices()
        .filter_map(|d| {
            let path = nspawn_host_devices().preferred_path(d)?.to_path_buf();
            matches!(
                path.to_str(),
                Some(
                    "/dev/null"
                        | "/dev/zero"
                        | "/dev/full"
                        | "/dev/random"
                        | "/dev/urandom"
                        | "/dev/tty"
                )
            )
            .then_some(RequiredDevice { path, device: d })
        })
        .collect()
}

struct Bed {
    _dir: tempfile::TempDir,
    systemd: SystemdSession,
    fakes: FakePorts,
    snapshot: Snapshot,
    host: HostFacts,
    opts: ScanOptions,
}

fn bed() -> Bed {
    let dir = tempfile::tempdir().expect("tempdir");
    let fakes = FakePorts::new(dir.path());
    let snapshot = Snapshot::with_devices(fakes.ports.clone(), required(), nspawn_host_devices());
    let host = HostFacts::of_root(&HostRoot::new(dir.path()));
    let opts = ScanOptions {
        ports: fakes.ports.clone(),
        state_dir: Some("/run/warden".into()),
        ..ScanOptions::for_root(HostRoot::new(dir.path()))
    };
    Bed {
        systemd: SystemdSession::new(fakes.ports.systemd.clone()),
        _dir: dir,
        fakes,
        snapshot,
        host,
        opts,
    }
}

fn refused_null() -> Cause {
    Cause::DeviceAccess(DeviceAccessCause {
        refused: vec![RefusedDevice {
            path: "/dev/null".into(),
            device: (DeviceType::Char, 1, 3),
            by: vec![Layer::V1],
            canary: true,
        }],
        canary_error: None,
        v1_cgroup: None,
        v2_cgroup: None,
    })
}

fn finding_for(c: &Container, check: CheckId, cause: Cause) -> Finding {
    Finding::new(check, Severity::Error, Some(c.reference()), cause)
}

/// The `device-rules-latent` finding of `c` whose unit `unit` has the
/// seed's `DeviceAllow`, and its unit view.
fn latent(c: &Container, unit: &str) -> (Finding, UnitView) {
    let rules = runtime_core::devices::expected::expected_rules(c.config.as_deref().expect("spec"))
        .expect("rules");
    let view = UnitView::new(
        unit,
        strict_unit(OLD_SET),
        rules,
        &nspawn_host_devices(),
        Some(252),
    )
    .expect("view");
    let f = finding_for(
        c,
        CheckId::DeviceRulesLatent,
        Cause::UnitDevices(UnitCause {
            view: view.clone(),
            loses_required: true,
        }),
    );
    (f, view)
}

/// The law for a sequence of states: each allows at least what the first
/// and the last both allow.
fn never_narrower(states: &[&dyn Fn(&DeviceAccess) -> bool]) {
    let (first, last) = (states[0], states[states.len() - 1]);
    for req in requests() {
        let both = first(&req) && last(&req);
        for (i, s) in states.iter().enumerate() {
            assert!(!both || s(&req), "state {i} narrows {req:?}");
        }
        assert!(
            !first(&req) || last(&req),
            "a repair never takes access away: {req:?}"
        );
    }
}

#[test]
fn v1_device_access_plans_allow_writes_that_never_narrow() {
    let b = bed();
    let c = runc_container("v1c", false, true, None);
    let dir = c.cgroups.v1("devices").expect("v1 dir").clone();
    // The runtime's rules lost /dev/null and /dev/urandom; a hook added a
    // GPU (195:0) that the OCI config does not list: it must stay.
    b.fakes.cgroups.set_list(
        &dir,
        "c 1:5 rwm\nc 1:7 rwm\nc 1:8 rwm\nc 5:0 rwm\nc 5:2 rwm\nc 10:200 rwm\nc 136:* rwm\nc 195:0 rw\nc *:* m\nb *:* m\n",
    );
    let before = b.fakes.cgroups.list(&dir).expect("list");
    let f = finding_for(&c, CheckId::DeviceAccessBroken, refused_null());
    let p = plan(&f, Some(&c), &b.snapshot, &b.host, &CheckPolicy::default()).expect("a plan");
    let RepairAction::V1Allow { writes, .. } = &p.actions[0] else {
        panic!("a v1 plan: {p:?}")
    };
    assert!(writes.iter().all(|w| w.starts_with("allow ")), "{writes:?}");
    // Replay the plan's writes: every intermediate state keeps the law.
    let mut states = vec![before.clone()];
    for w in writes {
        let mut next = states.last().expect("a state").clone();
        next.apply(&parse_write(w).expect("a write"))
            .expect("applies");
        states.push(next);
    }
    let fns: Vec<Verdict> = states
        .iter()
        .map(|e| {
            let e = e.clone();
            Box::new(move |r: &DeviceAccess| e.allows(r.kind, r.major, r.minor, r.access))
                as Verdict
        })
        .collect();
    let refs: Vec<&dyn Fn(&DeviceAccess) -> bool> = fns.iter().map(|f| f.as_ref()).collect();
    never_narrower(&refs);

    let first = apply(&p, &b.opts, &b.systemd).expect("applies");
    assert!(!first.changed.is_empty());
    let after = b.fakes.cgroups.list(&dir).expect("list");
    assert!(after.allows(DeviceType::Char, 1, 3, Access::ALL));
    assert!(after.allows(DeviceType::Char, 195, 0, Access::READ.union(Access::WRITE)));
    let writes_made = b.fakes.log.calls().len();
    let second = apply(&p, &b.opts, &b.systemd).expect("applies again");
    assert!(second.changed.is_empty(), "idempotent: {second:?}");
    assert_eq!(
        b.fakes.log.calls().len(),
        writes_made,
        "nothing written twice"
    );
}

#[test]
fn v2_device_access_attaches_ours_before_detaching_and_keeps_everything() {
    let b = bed();
    let mut c = runc_container("v2c", false, false, None);
    let dir = PathBuf::from("/sys/fs/cgroup/system.slice/v2c");
    c.cgroups.v2 = Some(dir.clone());
    // The seed's systemd program (pts only, mknod anything) denies
    // /dev/null; a second program of the runtime allows what the OCI config
    // and a hook gave.
    let denying = b
        .fakes
        .programs
        .add(&dir, runtime_core::testing::seed_003_systemd_program());
    let mut rules: Vec<DeviceRule> = runtime_core::devices::expected::runtime_defaults();
    rules.push(parse_write("allow c 195:0 rw").expect("rule"));
    b.fakes.programs.add(
        &dir,
        bpf::program::build_from_rules(&rules).expect("program"),
    );
    let before = b.fakes.programs.effective_insns(&dir);
    let f = finding_for(&c, CheckId::DeviceAccessBroken, refused_null());
    let p = plan(&f, Some(&c), &b.snapshot, &b.host, &CheckPolicy::default()).expect("a plan");
    let RepairAction::V2Replace { attach, detach, .. } = &p.actions[0] else {
        panic!("a v2 plan: {p:?}")
    };
    assert_eq!(detach, &vec![denying]);
    let ours = bpf::program::build_from_rules(attach.as_ref().expect("ours on a unified host"))
        .expect("program");
    apply(&p, &b.opts, &b.systemd).expect("applies");
    let calls = b.fakes.log.calls();
    let at = calls
        .iter()
        .position(|c| matches!(c, Call::Attach(..)))
        .expect("attached");
    let de = calls
        .iter()
        .position(|c| matches!(c, Call::Detach(..)))
        .expect("detached");
    assert!(
        at < de,
        "ours is attached before the denying one goes: {calls:?}"
    );
    let after = b.fakes.programs.effective_insns(&dir);
    let run = |progs: &Vec<Vec<bpf::Insn>>, r: &DeviceAccess| {
        progs
            .iter()
            .all(|i| bpf::interp::allows(i, r).expect("evaluates"))
    };
    let mut during = before.clone();
    during.push(ours);
    let s0 = |r: &DeviceAccess| run(&before, r);
    let s1 = |r: &DeviceAccess| run(&during, r);
    let s2 = |r: &DeviceAccess| run(&after, r);
    never_narrower(&[&s0, &s1, &s2]);
    assert!(s2(&DeviceAccess::char(
        1,
        3,
        Access::READ.union(Access::WRITE)
    )));
    // Twice: nothing more attached or detached.
    let n = b.fakes.log.calls().len();
    apply(&p, &b.opts, &b.systemd).expect("applies again");
    assert_eq!(b.fakes.log.calls().len(), n, "idempotent");
}

/// The v2 bed: a container on a unified host with the seed's denying
/// program and the runtime's own (defaults plus a hook's GPU).
fn v2_bed(b: &Bed, id: &str) -> (Container, PathBuf, u32) {
    let mut c = runc_container(id, false, false, None);
    let dir = PathBuf::from(format!("/sys/fs/cgroup/system.slice/{id}"));
    c.cgroups.v2 = Some(dir.clone());
    let denying = b
        .fakes
        .programs
        .add(&dir, runtime_core::testing::seed_003_systemd_program());
    let mut rules: Vec<DeviceRule> = runtime_core::devices::expected::runtime_defaults();
    rules.push(parse_write("allow c 195:0 rw").expect("rule"));
    b.fakes.programs.add(
        &dir,
        bpf::program::build_from_rules(&rules).expect("program"),
    );
    (c, dir, denying)
}

#[test]
fn a_v2_repair_cut_short_after_the_attach_is_finished_by_the_next_plan() {
    let b = bed();
    let (c, dir, denying) = v2_bed(&b, "v2p");
    let f = finding_for(&c, CheckId::DeviceAccessBroken, refused_null());
    let p = plan(&f, Some(&c), &b.snapshot, &b.host, &CheckPolicy::default()).expect("a plan");
    let RepairAction::V2Replace { attach, .. } = &p.actions[0] else {
        panic!("a v2 plan: {p:?}")
    };
    // The agent dies between the attach and the detach: ours is attached,
    // the denying program still is.
    let ours = bpf::program::build_from_rules(attach.as_ref().expect("ours")).expect("program");
    b.fakes.programs.add(&dir, ours);
    // The next scan plans from what is there now, and its plan applies.
    let next = Snapshot::with_devices(b.fakes.ports.clone(), required(), nspawn_host_devices());
    let p = plan(&f, Some(&c), &next, &b.host, &CheckPolicy::default()).expect("a plan");
    apply(&p, &b.opts, &b.systemd).expect("finishes the repair");
    assert!(
        !b.fakes.programs.ids(&dir).contains(&denying),
        "the denying program is gone"
    );
}

#[test]
fn a_v2_repair_is_refused_when_the_programs_changed_since_the_plan() {
    let b = bed();
    let (c, dir, _) = v2_bed(&b, "v2c");
    let f = finding_for(&c, CheckId::DeviceAccessBroken, refused_null());
    let p = plan(&f, Some(&c), &b.snapshot, &b.host, &CheckPolicy::default()).expect("a plan");
    // A runtime update attaches a wider program before the repair runs:
    // ours, built from the old set, could hold the container below it.
    b.fakes.programs.add(
        &dir,
        bpf::program::build_from_rules(&[parse_write("allow a *:* rwm").expect("rule")])
            .expect("program"),
    );
    let before = b.fakes.log.calls().len();
    let e = apply(&p, &b.opts, &b.systemd).expect_err("refused");
    assert!(e.to_string().contains("changed since the scan"), "{e}");
    assert_eq!(
        b.fakes.log.calls().len(),
        before,
        "nothing attached or detached"
    );
}

#[test]
fn latent_units_are_rewritten_explicitly_frozen_on_v1_and_never_narrower() {
    let b = bed();
    let freezer = PathBuf::from("/sys/fs/cgroup/freezer/system.slice/runc-sd.scope");
    let c = runc_container("sd", true, true, Some(freezer.clone()));
    let unit = "runc-sd.scope";
    b.fakes.systemd.set_unit(unit, strict_unit(OLD_SET));
    let (f, view) = latent(&c, unit);
    let p = plan(&f, Some(&c), &b.snapshot, &b.host, &CheckPolicy::default()).expect("a plan");
    let RepairAction::SystemdDeviceAllow {
        entries, freeze, ..
    } = &p.actions[0]
    else {
        panic!("a systemd plan: {p:?}")
    };
    assert!(freeze.is_some(), "v1: frozen around the call");
    // Never narrower: every entry the unit had is kept, and nothing
    // required is lost any more.
    assert!(runtime_core::systemd::unit_view::covers(
        entries,
        &view.current.allow
    ));
    let required: Vec<(PathBuf, _)> = required().into_iter().map(|d| (d.path, d.device)).collect();
    let left = view
        .losses_with(entries, &nspawn_host_devices())
        .expect("losses");
    assert!(runtime_core::systemd::unit_view::lost_required(&left, &required).is_empty());

    apply(&p, &b.opts, &b.systemd).expect("applies");
    let calls = b.fakes.log.calls();
    let kinds: Vec<&str> = calls
        .iter()
        .map(|c| match c {
            Call::Freeze(..) => "freeze",
            Call::SetUnit(..) => "set",
            Call::Thaw(_) => "thaw",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["freeze", "set", "thaw"], "{calls:?}");
    assert_eq!(
        calls[0],
        Call::Freeze(freezer.clone(), Some("/run/warden/frozen".into())),
        "the freeze leaves its marker where the agent's sweep looks"
    );
    assert!(b.fakes.cgroups.frozen_now().is_empty(), "never left frozen");
    let after: UnitDevices = b.fakes.systemd.unit(unit).expect("unit");
    assert!(runtime_core::systemd::unit_view::covers(
        &after.allow,
        entries
    ));
    let n = b.fakes.log.calls().len();
    let again = apply(&p, &b.opts, &b.systemd).expect("applies again");
    assert!(again.changed.is_empty(), "{again:?}");
    assert_eq!(
        b.fakes.log.calls().len(),
        n,
        "no second call, no second freeze"
    );
}

#[test]
fn a_broken_container_in_a_unit_is_planned_from_the_unit_read_once() {
    let b = bed();
    let c = runc_container(
        "once",
        true,
        true,
        Some("/sys/fs/cgroup/freezer/system.slice/runc-once.scope".into()),
    );
    b.fakes
        .systemd
        .set_unit("runc-once.scope", strict_unit(OLD_SET));
    // The latent check read the unit in this scan...
    b.snapshot.unit_devices("runc-once.scope").expect("unit");
    // ...and the device-access plan uses that read.
    let f = finding_for(&c, CheckId::DeviceAccessBroken, refused_null());
    let p = plan(&f, Some(&c), &b.snapshot, &b.host, &CheckPolicy::default()).expect("a plan");
    assert!(
        matches!(p.actions[0], RepairAction::SystemdDeviceAllow { .. }),
        "the unit is the cause: {p:?}"
    );
    assert_eq!(
        *b.fakes.systemd.reads.lock().unwrap(),
        1,
        "one read per scan"
    );
}

#[test]
fn a_failed_freeze_changes_nothing() {
    let b = bed();
    let freezer = PathBuf::from("/sys/fs/cgroup/freezer/system.slice/runc-nf.scope");
    let c = runc_container("nf", true, true, Some(freezer.clone()));
    b.fakes
        .systemd
        .set_unit("runc-nf.scope", strict_unit(OLD_SET));
    b.fakes.cgroups.unfreezable.lock().unwrap().push(freezer);
    let (f, _) = latent(&c, "runc-nf.scope");
    let p = plan(&f, Some(&c), &b.snapshot, &b.host, &CheckPolicy::default()).expect("a plan");
    assert!(apply(&p, &b.opts, &b.systemd).is_err(), "freeze-or-abort");
    assert!(
        !b.fakes
            .log
            .calls()
            .iter()
            .any(|c| matches!(c, Call::SetUnit(..))),
        "nothing sent to systemd"
    );
    assert_eq!(
        b.fakes.systemd.unit("runc-nf.scope"),
        Some(strict_unit(OLD_SET))
    );
}

fn stuck(runtime_init: bool, pid: i32, start_time: u64) -> Cause {
    Cause::Stuck(StuckCause {
        pid,
        tid: pid,
        comm: if runtime_init { "runc:[2:INIT]" } else { "app" }.into(),
        start_time,
        cgroup: Some("/c1".into()),
        runtime_init,
        task: format!("pid {pid}"),
        stuck_after_secs: 10,
    })
}

#[test]
fn only_a_runtime_init_is_killed_and_only_when_allowed_and_still_the_same() {
    let b = bed();
    let c = runc_container("k", false, false, None);
    let root = b.opts.root().path().to_path_buf();
    let pid = 4242;
    let mut fields: Vec<String> = (3..=52).map(|i| i.to_string()).collect();
    fields[0] = "S".into();
    fields[19] = "777".into();
    std::fs::create_dir_all(root.join(format!("proc/{pid}"))).expect("mkdir");
    std::fs::write(
        root.join(format!("proc/{pid}/stat")),
        format!("{pid} (runc:[2:INIT]) {}\n", fields.join(" ")),
    )
    .expect("stat");
    let allow = CheckPolicy {
        kill_stuck_inits: true,
        ..CheckPolicy::default()
    };
    let init = finding_for(&c, CheckId::SeccompNotifyStuck, stuck(true, pid, 777));
    assert!(matches!(
        plan(
            &init,
            Some(&c),
            &b.snapshot,
            &b.host,
            &CheckPolicy::default()
        ),
        Err(PlanError::NotAllowed(_))
    ));
    let workload = finding_for(&c, CheckId::SeccompNotifyStuck, stuck(false, pid, 777));
    assert!(matches!(
        plan(&workload, Some(&c), &b.snapshot, &b.host, &allow),
        Err(PlanError::NotRepairable(_))
    ));
    let p = plan(&init, Some(&c), &b.snapshot, &b.host, &allow).expect("a kill plan");
    assert_eq!(
        p.actions,
        vec![RepairAction::Kill {
            pid,
            start_time: 777
        }]
    );
    apply(&p, &b.opts, &b.systemd).expect("applies");
    assert_eq!(b.fakes.log.calls(), vec![Call::Kill(pid)]);
    // A recycled pid (another start time) is never killed.
    let recycled = finding_for(&c, CheckId::SeccompNotifyStuck, stuck(true, pid, 778));
    let p = plan(&recycled, Some(&c), &b.snapshot, &b.host, &allow).expect("a kill plan");
    let out = apply(&p, &b.opts, &b.systemd).expect("applies");
    assert!(out.changed.is_empty());
    assert_eq!(b.fakes.log.calls().len(), 1, "no second kill");
}

#[test]
fn hazards_and_reports_have_no_plan_and_say_what_to_do() {
    let b = bed();
    let c = runc_container("h", false, false, None);
    let causes = [
        (
            CheckId::ShimFdLeak,
            Cause::ShimLeak(ShimCause {
                pid: 9,
                comm: "containerd-shim".into(),
                start_time: 1,
                count: 20,
                first_count: 3,
                per_minute: 17.0,
            }),
        ),
        (
            CheckId::FreezeBlocked,
            Cause::FreezeBlocked(BlockedCause {
                tasks: vec!["pid 9 (app) state D".into()],
                cgroup: Path::new("/sys/fs/cgroup/freezer/h").into(),
            }),
        ),
        (
            CheckId::DeviceUpdateJitter,
            Cause::Jitter(JitterCause {
                runtime: JitterRuntime::Crun,
                version: Some("1.8.1".into()),
                containers: 2,
            }),
        ),
        (
            CheckId::CgroupAttachRace,
            Cause::AttachRace {
                kernel: "5.4.0".into(),
            },
        ),
        (
            CheckId::SeccompNotifyUnsafe,
            Cause::Profile(ProfileCause {
                message: "notify on close".into(),
                evidence: Default::default(),
            }),
        ),
    ];
    for (check, cause) in causes {
        let f = finding_for(&c, check, cause);
        match plan(&f, Some(&c), &b.snapshot, &b.host, &CheckPolicy::default()) {
            Err(PlanError::NotRepairable(why)) => assert!(why.len() > 20, "{check}: {why}"),
            other => panic!("{check}: {other:?}"),
        }
    }
    // Host hazards have no container.
    for (check, hazard) in [
        (
            CheckId::DeviceRulesLatent,
            VersionHazard::RuncSkipsDeviceEntries,
        ),
        (
            CheckId::DeviceRulesLatent,
            VersionHazard::SystemdStatsDeviceNumbers,
        ),
        (
            CheckId::DeviceUpdateJitter,
            VersionHazard::RuncUpdatesAfterFailedFreeze,
        ),
    ] {
        let f = Finding::new(
            check,
            Severity::Warning,
            None,
            Cause::VersionHazard {
                hazard,
                dev_char: false,
            },
        );
        match plan(&f, None, &b.snapshot, &b.host, &CheckPolicy::default()) {
            Err(PlanError::NotRepairable(why)) => {
                assert!(why.contains("upgrade") || why.contains("runtime"), "{why}")
            }
            other => panic!("{hazard:?}: {other:?}"),
        }
    }
    assert!(b.fakes.log.calls().is_empty(), "planning changes nothing");
    // An entitlement already met: no plan rather than an empty one.
    let dir = PathBuf::from("/sys/fs/cgroup/devices/system.slice/runc-h.scope");
    let mut v1 = runc_container("h", false, true, None);
    v1.cgroups.v1.insert("devices".into(), dir.clone());
    // Everything runc's defaults grant (an allow-all list would not do: it
    // may hide denies, so the plan re-asserts it).
    b.fakes.cgroups.set_list(
        &dir,
        "c 1:3 rwm\nc 1:5 rwm\nc 1:7 rwm\nc 1:8 rwm\nc 1:9 rwm\nc 5:0 rwm\nc 5:2 rwm\nc 10:200 rwm\nc 136:* rwm\nc *:* m\nb *:* m\n",
    );
    let f = finding_for(&v1, CheckId::DeviceAccessBroken, refused_null());
    let r = plan(&f, Some(&v1), &b.snapshot, &b.host, &CheckPolicy::default());
    assert!(matches!(r, Err(PlanError::NotRepairable(_))), "{r:?}");
}

#[test]
fn a_unit_that_does_not_name_the_container_is_never_planned() {
    let b = bed();
    // systemd inside the container: its init sits in `<scope>/init.scope`,
    // and the last component of the init's cgroup names the guest's unit.
    let mut c = runc_container("c9", true, false, None);
    c.cgroups.path = Some("/system.slice/runc-c9.scope/init.scope".into());
    assert_eq!(c.systemd_unit().as_deref(), Some("init.scope"));
    let (f, _) = latent(&c, "init.scope");
    match plan(&f, Some(&c), &b.snapshot, &b.host, &CheckPolicy::default()) {
        Err(PlanError::NotRepairable(why)) => assert!(why.contains("does not name"), "{why}"),
        other => panic!("the host's init.scope must never be rewritten: {other:?}"),
    }
}

#[test]
fn a_unit_managing_another_cgroup_is_never_written() {
    let b = bed();
    let c = runc_container("spoof", true, false, None);
    b.fakes
        .systemd
        .set_unit("runc-spoof.scope", strict_unit(OLD_SET));
    let (f, _) = latent(&c, "runc-spoof.scope");
    let p = plan(&f, Some(&c), &b.snapshot, &b.host, &CheckPolicy::default()).expect("a plan");
    // The unit of that name manages someone else's cgroup (a privileged pod
    // named a sub-cgroup after another container's scope).
    b.fakes.systemd.control_groups.lock().unwrap().insert(
        "runc-spoof.scope".into(),
        "/system.slice/runc-other.scope".into(),
    );
    let e = apply(&p, &b.opts, &b.systemd).expect_err("refused");
    assert!(e.to_string().contains("runc-spoof.scope"), "{e}");
    assert!(
        !b.fakes
            .log
            .calls()
            .iter()
            .any(|c| matches!(c, Call::SetUnit(..))),
        "nothing written"
    );
    // The container's own unit is written.
    b.fakes.systemd.control_groups.lock().unwrap().clear();
    apply(&p, &b.opts, &b.systemd).expect("its own unit");
}
