//! Root only, real v1 devices and freezer cgroups: systemd's `DeviceAllow=`
//! rewrite on cgroup v1 opens a deny-all window (seen here without the
//! freeze); the repair applied through the engine's `repair::apply`, frozen,
//! never lets the container see it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use runtime_core::cgroups::FreezeTarget;
use runtime_core::checks::CheckId;
use runtime_core::devices::systemd::{DevicePolicy, UnitDevices};
use runtime_core::diagnose::ScanOptions;
use runtime_core::ports::{Ports, SystemdPort, SystemdSession};
use runtime_core::repair::{apply, RepairAction, RepairPlan};
use runtime_core::systemd::unit_view::merge;
use runtime_core::systemd::{SystemdClient, SystemdError, UnitProperty};
use runtime_core::testing;
use runtime_core::testing::fakes::SharedClient;
use runtime_core::testing::fixtures::{entries, OLD_SET};

/// systemd's v1 behaviour, on a real devices cgroup: every
/// `SetUnitProperties` writes `devices.deny a`, then the allow list.
/// systemd stats each node between the writes; here the window is widened
/// to 1 ms so that the unfrozen control sees it every time.
struct V1Replaying {
    devices: PathBuf,
    state: Mutex<UnitDevices>,
}

impl SystemdClient for V1Replaying {
    fn version_string(&self) -> Result<String, SystemdError> {
        Ok("252".into())
    }
    fn unit_devices(&self, _unit: &str) -> Result<UnitDevices, SystemdError> {
        Ok(self.state.lock().expect("lock").clone())
    }
    fn unit_control_group(&self, unit: &str) -> Result<String, SystemdError> {
        Ok(format!("/{unit}"))
    }
    fn set_unit_properties(
        &self,
        _unit: &str,
        _runtime: bool,
        properties: &[UnitProperty],
    ) -> Result<(), SystemdError> {
        let w = |file: &str, line: &str| {
            std::fs::write(self.devices.join(file), line).expect("devices write");
        };
        w("devices.deny", "a");
        std::thread::sleep(Duration::from_millis(1));
        for line in [
            "c 1:3 rwm",
            "c 1:5 rwm",
            "c 1:7 rwm",
            "c 1:8 rwm",
            "c 1:9 rwm",
            "c 5:0 rwm",
            "c 136:* rwm",
            "c *:* m",
            "b *:* m",
        ] {
            w("devices.allow", line);
        }
        let mut d = self.state.lock().expect("lock");
        for p in properties {
            if let UnitProperty::DeviceAllow(e) = p {
                d.allow = if e.is_empty() {
                    Vec::new()
                } else {
                    merge(&d.allow, e)
                };
            }
        }
        Ok(())
    }
    fn reload(&self) -> Result<(), SystemdError> {
        Ok(())
    }
}

/// A port handing out one shared [`V1Replaying`].
struct ReplayPort(Arc<V1Replaying>);

impl SystemdPort for ReplayPort {
    fn running(&self) -> bool {
        true
    }
    fn connect(&self) -> Result<Box<dyn SystemdClient + Send + Sync>, SystemdError> {
        Ok(Box::new(SharedClient(Arc::clone(&self.0))))
    }
}

/// A process opening /dev/urandom in a loop inside fresh v1 devices and
/// freezer cgroups; killed, thawed and removed on drop.
struct Looper {
    child: std::process::Child,
    devices: PathBuf,
    freezer: PathBuf,
    out: tempfile::NamedTempFile,
}

impl Looper {
    fn start(tag: &str) -> Looper {
        let name = format!("warden-sdu-{}-{tag}", std::process::id());
        let devices = PathBuf::from("/sys/fs/cgroup/devices").join(&name);
        let freezer = PathBuf::from("/sys/fs/cgroup/freezer").join(&name);
        std::fs::create_dir_all(&devices).expect("mkdir devices");
        std::fs::create_dir_all(&freezer).expect("mkdir freezer");
        let out = tempfile::NamedTempFile::new().expect("tempfile");
        let child = std::process::Command::new("/bin/busybox")
            .args([
                "sh",
                "-c",
                "while :; do true </dev/urandom 2>&- || echo F; done",
            ])
            .stdout(out.reopen().expect("reopen"))
            .spawn()
            .expect("spawn busybox");
        let l = Looper {
            child,
            devices,
            freezer,
            out,
        };
        for dir in [&l.devices, &l.freezer] {
            std::fs::write(dir.join("cgroup.procs"), l.child.id().to_string()).expect("join");
        }
        l
    }

    fn eperms(&self) -> usize {
        std::fs::read_to_string(self.out.path())
            .expect("read")
            .lines()
            .count()
    }

    /// The loop still runs (a dead loop would count no EPERM).
    fn alive(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
            .ok()
            .and_then(|s| s.rsplit(')').next().map(|r| r.trim_start().to_owned()))
            .is_some_and(|r| !r.starts_with('Z') && !r.starts_with('X'))
    }
}

impl Drop for Looper {
    fn drop(&mut self) {
        let _ = std::fs::write(self.freezer.join("freezer.state"), "THAWED");
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir(&self.devices);
        let _ = std::fs::remove_dir(&self.freezer);
    }
}

#[test]
fn v1_replay_inside_the_freeze_is_invisible_to_the_container() {
    let name = "v1_replay_inside_the_freeze_is_invisible_to_the_container";
    if !testing::require_root(name)
        || !testing::require_path(name, Path::new("/sys/fs/cgroup/devices/devices.list"))
        || !testing::require_path(name, Path::new("/sys/fs/cgroup/freezer/cgroup.procs"))
        || !testing::require_path(name, Path::new("/bin/busybox"))
    {
        return;
    }
    let want = entries(&["/dev/null rwm", "/dev/urandom rwm", "char-pts rwm"]);
    // Rewrites until `stop_at` EPERMs were seen, or `rounds` of them.
    let run = |tag: &str, frozen: bool, rounds: usize, stop_at: usize| -> (usize, usize) {
        let l = Looper::start(tag);
        let sd = Arc::new(V1Replaying {
            devices: l.devices.clone(),
            state: Mutex::new(UnitDevices::default()),
        });
        let mut ports = Ports::real();
        ports.systemd = Arc::new(ReplayPort(Arc::clone(&sd)));
        let opts = ScanOptions {
            ports,
            state_dir: None,
            ..ScanOptions::real()
        };
        let session = SystemdSession::new(opts.ports.systemd.clone());
        let plan = RepairPlan {
            check: CheckId::DeviceRulesLatent,
            container: None,
            actions: vec![RepairAction::SystemdDeviceAllow {
                unit: "x.scope".into(),
                policy: DevicePolicy::Strict,
                before: OLD_SET.iter().map(ToString::to_string).collect(),
                entries: want.clone(),
                lost: Vec::new(),
                unexpressed: Vec::new(),
                freeze: frozen.then(|| FreezeTarget::V1(l.freezer.clone())),
                container_cgroup: "/x.scope".into(),
            }],
            safety: String::new(),
        };
        // Let the loop get going.
        std::thread::sleep(Duration::from_millis(20));
        let mut done = 0;
        while done < rounds && l.eperms() < stop_at {
            *sd.state.lock().expect("lock") = UnitDevices {
                policy: Some(DevicePolicy::Strict),
                allow: entries(OLD_SET),
            };
            let out = apply(&plan, &opts, &session).expect("apply");
            assert_eq!(out.changed.len(), 1, "{out:?}");
            std::thread::sleep(Duration::from_micros(200));
            done += 1;
        }
        assert!(l.alive(), "the open loop died");
        assert_eq!(
            std::fs::read_to_string(l.freezer.join("freezer.state"))
                .expect("freezer.state")
                .trim(),
            "THAWED",
            "left frozen"
        );
        (l.eperms(), done)
    };
    let (unfrozen, unfrozen_rounds) = run("open", false, 200, 1);
    let (frozen, frozen_rounds) = run("frozen", true, 300, 1);
    eprintln!(
        "v1 replay: {unfrozen} EPERM in {unfrozen_rounds} rewrites unfrozen, \
         {frozen} in {frozen_rounds} frozen"
    );
    assert!(
        unfrozen > 0,
        "the replay window should be visible without a freeze"
    );
    assert_eq!(
        frozen, 0,
        "a deny-all window reached the container inside the freeze"
    );
}
