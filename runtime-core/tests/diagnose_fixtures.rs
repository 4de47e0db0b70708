//! The scan engine over tempdir host fixtures: shim eventfd growth across
//! scans, seccomp-stuck tasks attributed to containers, D-state blockers,
//! and host hazards.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::Duration;

use runtime_core::diagnose::{scan, CheckId, CheckPolicy, ScanOptions, Severity};
use runtime_core::root::HostRoot;

const MOUNTINFO: &str = "\
32 30 0:28 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
33 30 0:29 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
35 30 0:31 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    fs::write(p, text).expect("write");
}

/// `/proc/<pid>` with one thread, a state letter, a wchan and a start time
/// (clock ticks).
fn process(root: &Path, pid: i32, comm: &str, state: &str, wchan: &str, start: u64, cgroup: &str) {
    let mut fields: Vec<String> = (3..=52).map(|i| i.to_string()).collect();
    fields[0] = state.into();
    fields[19] = start.to_string();
    let stat = format!("{pid} ({comm}) {}\n", fields.join(" "));
    write(root, &format!("proc/{pid}/stat"), &stat);
    write(
        root,
        &format!("proc/{pid}/status"),
        &format!("Name:\t{comm}\nTgid:\t{pid}\n"),
    );
    write(root, &format!("proc/{pid}/task/{pid}/stat"), &stat);
    write(root, &format!("proc/{pid}/task/{pid}/wchan"), wchan);
    write(root, &format!("proc/{pid}/wchan"), wchan);
    write(
        root,
        &format!("proc/{pid}/cgroup"),
        &format!("2:freezer:{cgroup}\n1:devices:{cgroup}\n0::{cgroup}\n"),
    );
    fs::create_dir_all(root.join(format!("proc/{pid}/fd"))).expect("fd dir");
}

fn eventfds(root: &Path, pid: i32, n: usize) {
    let dir = root.join(format!("proc/{pid}/fd"));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("fd dir");
    symlink("/dev/null", dir.join("0")).expect("fd 0");
    for i in 0..n {
        symlink("anon_inode:[eventfd]", dir.join((10 + i).to_string())).expect("eventfd");
    }
}

fn opts(root: &Path) -> ScanOptions {
    ScanOptions {
        state_dir: Some("/run/warden".into()),
        ..ScanOptions::for_root(HostRoot::new(root))
    }
}

fn base(root: &Path) {
    write(root, "proc/self/mountinfo", MOUNTINFO);
    write(root, "proc/sys/kernel/osrelease", "6.1.0\n");
    write(root, "proc/uptime", "1000.00 1900.00\n");
}

#[test]
fn shim_eventfd_growth_is_reported_after_it_grows() {
    let t = tempfile::tempdir().expect("tempdir");
    let r = t.path();
    base(r);
    process(r, 700, "containerd-shim", "S", "ep_poll", 100, "/");
    process(r, 701, "not-a-shim", "S", "ep_poll", 100, "/");
    eventfds(r, 700, 3);
    eventfds(r, 701, 50);
    let policy = CheckPolicy::default();

    let first = scan(&opts(r), &policy);
    assert!(
        !first
            .findings
            .iter()
            .any(|f| f.check == CheckId::ShimFdLeak),
        "{:?}",
        first.findings
    );
    assert!(
        r.join("run/warden/shim-fds.json").is_file(),
        "counts persisted under the state dir"
    );

    eventfds(r, 700, 5);
    let second = scan(&opts(r), &policy);
    assert!(
        !second
            .findings
            .iter()
            .any(|f| f.check == CheckId::ShimFdLeak),
        "growth 2 < threshold 5"
    );

    eventfds(r, 700, 9);
    let third = scan(&opts(r), &policy);
    let f = third
        .findings
        .iter()
        .find(|f| f.check == CheckId::ShimFdLeak)
        .expect("growth of 6 eventfds is a leak");
    assert_eq!(f.evidence()["pid"], "700");
    assert_eq!(f.evidence()["eventfds"], "9");
    assert_eq!(f.evidence()["eventfds_first_seen"], "3");
    assert!(f.message().contains("per minute"));

    // A recycled pid (new start time) starts afresh.
    process(r, 700, "containerd-shim", "S", "ep_poll", 200, "/");
    eventfds(r, 700, 9);
    let fourth = scan(&opts(r), &policy);
    assert!(!fourth
        .findings
        .iter()
        .any(|f| f.check == CheckId::ShimFdLeak));
}

#[test]
fn seccomp_stuck_tasks_past_the_threshold_are_attributed_by_cgroup() {
    let t = tempfile::tempdir().expect("tempdir");
    let r = t.path();
    base(r);
    // Started at tick 100 (1 s after boot), uptime 1000 s: stuck ~999 s.
    process(
        r,
        800,
        "runc:[2:INIT]",
        "S",
        "seccomp_do_user_notification",
        100,
        "/warden-e2e/hung-1",
    );
    // Stuck only 1 s: below the threshold.
    process(
        r,
        801,
        "crun",
        "S",
        "seccomp_do_user_notification",
        99_900,
        "/warden-e2e/young",
    );
    // Both still run the runtime's binary: inits that never reached execve.
    symlink("/usr/sbin/runc", r.join("proc/800/exe")).expect("exe");
    symlink("/usr/bin/crun", r.join("proc/801/exe")).expect("exe");
    let f = scan(&opts(r), &CheckPolicy::default());
    let stuck: Vec<_> = f
        .findings
        .iter()
        .filter(|f| f.check == CheckId::SeccompNotifyStuck)
        .collect();
    assert_eq!(stuck.len(), 1, "{stuck:?}");
    let c = stuck[0].container.as_ref().expect("attributed");
    assert_eq!(c.id, "hung-1");
    assert_eq!(stuck[0].severity, Severity::Error);
    assert_eq!(stuck[0].evidence()["pid"], "800");

    let quick = CheckPolicy {
        stuck_after: Duration::ZERO,
        ..CheckPolicy::default()
    };
    let f = scan(&opts(r), &quick);
    assert_eq!(
        f.findings
            .iter()
            .filter(|f| f.check == CheckId::SeccompNotifyStuck)
            .count(),
        2
    );
}

#[test]
fn clean_fixture_has_no_findings_and_old_kernels_are_flagged() {
    let t = tempfile::tempdir().expect("tempdir");
    let r = t.path();
    base(r);
    process(r, 900, "sleep", "S", "hrtimer_nanosleep", 100, "/x");
    let f = scan(&opts(r), &CheckPolicy::default());
    assert!(f.findings.is_empty(), "{:?}", f.findings);

    write(r, "proc/sys/kernel/osrelease", "5.4.0-150-generic\n");
    let f = scan(&opts(r), &CheckPolicy::default());
    let race = f
        .findings
        .iter()
        .find(|f| f.check == CheckId::CgroupAttachRace)
        .expect("5.4 is exposed");
    assert!(race.container.is_none());
}

#[test]
fn runc_1_1_4_under_systemd_without_dev_char_is_the_seed_003_landmine() {
    use std::os::unix::fs::PermissionsExt;
    let t = tempfile::tempdir().expect("tempdir");
    let r = t.path();
    base(r);
    fs::create_dir_all(r.join("run/systemd/system")).expect("systemd running");
    for (bin, out) in [
        ("usr/bin/systemctl", "systemd 252 (252.39-1~deb12u1)"),
        ("usr/sbin/runc", "runc version 1.1.4"),
    ] {
        write(r, bin, &format!("#!/bin/sh\necho '{out}'\n"));
        fs::set_permissions(r.join(bin), fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let f = scan(&opts(r), &CheckPolicy::default());
    let latent = f
        .findings
        .iter()
        .find(|f| f.check == CheckId::DeviceRulesLatent)
        .expect("landmine reported before it fires");
    assert!(latent.container.is_none());
    assert!(
        latent.message().contains("daemon-reload"),
        "{}",
        latent.message()
    );
    assert!(
        f.findings
            .iter()
            .any(|f| f.check == CheckId::DeviceUpdateJitter),
        "runc < 1.1.8 with systemd on v1 proceeds after a failed freeze"
    );

    // With /dev/char present the landmine is gone.
    fs::create_dir_all(r.join("dev/char")).expect("dev/char");
    let f = scan(&opts(r), &CheckPolicy::default());
    assert!(!f
        .findings
        .iter()
        .any(|f| f.check == CheckId::DeviceRulesLatent));
}

#[test]
fn a_containers_own_notify_on_close_profile_is_unsafe() {
    use std::os::unix::fs::PermissionsExt;
    let t = tempfile::tempdir().expect("tempdir");
    let r = t.path();
    base(r);
    write(r, "usr/sbin/runc", "#!/bin/sh\necho 'runc version 1.1.5'\n");
    fs::set_permissions(r.join("usr/sbin/runc"), fs::Permissions::from_mode(0o755)).expect("chmod");
    process(
        r,
        950,
        "sleep",
        "S",
        "hrtimer_nanosleep",
        100,
        "/warden/notify",
    );
    write(
        r,
        "run/runc/notify/state.json",
        r#"{"id":"notify","init_process_pid":950,"init_process_start":100,"config":{"labels":["bundle=/b/notify"]}}"#,
    );
    write(
        r,
        "b/notify/config.json",
        r#"{"ociVersion":"1.0.2","process":{"cwd":"/","args":["sleep"],"user":{"uid":0,"gid":0},"noNewPrivileges":true},"root":{"path":"rootfs"},
            "linux":{"seccomp":{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/run/agent.sock",
            "syscalls":[{"names":["close"],"action":"SCMP_ACT_NOTIFY"}]}}}"#,
    );
    let f = scan(&opts(r), &CheckPolicy::default());
    let unsafe_ = f
        .findings
        .iter()
        .find(|f| f.check == CheckId::SeccompNotifyUnsafe)
        .unwrap_or_else(|| {
            panic!(
                "notify on close not flagged: {:?} {:?} {:?}",
                f.findings, f.skipped, f.containers
            )
        });
    assert_eq!(
        unsafe_.container.as_ref().map(|c| c.id.as_str()),
        Some("notify")
    );
    assert_eq!(unsafe_.severity, Severity::Error);
}

#[test]
fn a_workload_waiting_on_its_agent_is_not_an_old_stuck_init() {
    use runtime_core::diagnose::ScanOptions;
    use runtime_core::repair::{plan, PlanError};
    let t = tempfile::tempdir().expect("tempdir");
    let r = t.path();
    base(r);
    // A workload (exe is its own binary) started ~999 s ago, caught waiting
    // on a live agent: its age says nothing about how long it has waited.
    process(
        r,
        810,
        "app",
        "S",
        "seccomp_do_user_notification.isra.0",
        100,
        "/warden-e2e/app",
    );
    symlink("/usr/local/bin/app", r.join("proc/810/exe")).expect("exe");
    let o: ScanOptions = opts(r);
    let first = scan(&o, &CheckPolicy::default());
    assert!(
        !first
            .findings
            .iter()
            .any(|f| f.check == CheckId::SeccompNotifyStuck),
        "first sighting is not stuck: {:?}",
        first.findings
    );
    // Seen waiting a minute ago, still waiting: the agent is not answering.
    let waits = r.join("run/warden/seccomp-waits.json");
    let text = fs::read_to_string(&waits).expect("waits kept");
    let mut map: std::collections::BTreeMap<String, f64> =
        serde_json::from_str(&text).expect("json");
    for v in map.values_mut() {
        *v -= 60.0;
    }
    fs::write(&waits, serde_json::to_string(&map).expect("json")).expect("write");
    let policy = CheckPolicy {
        kill_stuck_inits: true,
        ..CheckPolicy::default()
    };
    let second = scan(&o, &policy);
    let f = second
        .findings
        .iter()
        .find(|f| f.check == CheckId::SeccompNotifyStuck)
        .expect("reported after a minute of waiting");
    assert_eq!(f.severity, Severity::Warning);
    assert_eq!(f.evidence()["runtime_init"], "false");
    // Never killed, even with killStuckInits: it is the workload.
    match plan(f, None, &second.snapshot, &second.host, &policy) {
        Err(PlanError::NotRepairable(why)) => assert!(why.contains("workload"), "{why}"),
        other => panic!("a workload must not get a kill plan: {other:?}"),
    }
}

#[test]
fn a_task_stuck_in_d_state_blocks_the_freezer_and_is_named() {
    let t = tempfile::tempdir().expect("tempdir");
    let r = t.path();
    base(r);
    // The container's init and two more tasks in its freezer cgroup: one in
    // D on a pipe (a real blocker), one in D because it is frozen in place.
    process(
        r,
        960,
        "sleep",
        "S",
        "hrtimer_nanosleep",
        100,
        "/warden/blk",
    );
    process(r, 961, "writer", "D", "fifo_open", 100, "/warden/blk");
    process(r, 962, "idle", "D", "__refrigerator", 100, "/warden/blk");
    write(
        r,
        "sys/fs/cgroup/freezer/warden/blk/tasks",
        "960\n961\n962\n",
    );
    write(
        r,
        "sys/fs/cgroup/freezer/warden/blk/freezer.state",
        "THAWED\n",
    );
    write(
        r,
        "run/runc/blk/state.json",
        r#"{"id":"blk","init_process_pid":960,"init_process_start":100,"config":{"labels":["bundle=/b/blk"]}}"#,
    );
    write(
        r,
        "b/blk/config.json",
        r#"{"ociVersion":"1.0.2","process":{"cwd":"/","args":["sleep"],"user":{"uid":0,"gid":0}},"root":{"path":"rootfs"}}"#,
    );
    let f = scan(&opts(r), &CheckPolicy::default());
    let fb = f
        .findings
        .iter()
        .find(|f| f.check == CheckId::FreezeBlocked)
        .unwrap_or_else(|| {
            panic!(
                "D-state blocker not reported: {:?} {:?}",
                f.findings, f.skipped
            )
        });
    assert_eq!(fb.container.as_ref().map(|c| c.id.as_str()), Some("blk"));
    assert!(
        fb.evidence()["tasks"].contains("pid 961"),
        "{}",
        fb.evidence()["tasks"]
    );
    assert!(fb.evidence()["tasks"].contains("fifo_open"));
    assert!(
        !fb.evidence()["tasks"].contains("962"),
        "a frozen task is not a blocker"
    );

    // While the cgroup is being frozen on purpose, D is expected: no finding.
    write(
        r,
        "sys/fs/cgroup/freezer/warden/blk/freezer.state",
        "FREEZING\n",
    );
    let f = scan(&opts(r), &CheckPolicy::default());
    assert!(!f.findings.iter().any(|f| f.check == CheckId::FreezeBlocked));
}

#[test]
fn many_containers_with_tasks_in_d_cost_one_wait_per_scan() {
    let t = tempfile::tempdir().expect("tempdir");
    let r = t.path();
    base(r);
    // A tenant with three containers, each with a task stuck in D (a vfork
    // parent stays in D): the re-sample is shared, not paid per container.
    for (i, id) in ["d1", "d2", "d3"].iter().enumerate() {
        let pid = 970 + (i as i32) * 2;
        let cg = format!("/warden/{id}");
        process(r, pid, "sleep", "S", "hrtimer_nanosleep", 100, &cg);
        process(r, pid + 1, "vforker", "D", "fifo_open", 100, &cg);
        write(
            r,
            &format!("sys/fs/cgroup/freezer/warden/{id}/tasks"),
            &format!("{pid}\n{}\n", pid + 1),
        );
        write(
            r,
            &format!("sys/fs/cgroup/freezer/warden/{id}/freezer.state"),
            "THAWED\n",
        );
        write(
            r,
            &format!("run/runc/{id}/state.json"),
            &format!(
                r#"{{"id":"{id}","init_process_pid":{pid},"init_process_start":100,"config":{{"labels":["bundle=/b/{id}"]}}}}"#
            ),
        );
        write(
            r,
            &format!("b/{id}/config.json"),
            r#"{"ociVersion":"1.0.2","process":{"cwd":"/","args":["sleep"],"user":{"uid":0,"gid":0}},"root":{"path":"rootfs"}}"#,
        );
    }
    let f = scan(&opts(r), &CheckPolicy::default());
    let blocked = f
        .findings
        .iter()
        .filter(|f| f.check == CheckId::FreezeBlocked)
        .count();
    assert_eq!(blocked, 3, "{:?} {:?}", f.findings, f.skipped);
    assert_eq!(f.resample_waits, 1, "one shared wait");
}
