//! Fakes of every port ([`crate::ports`]): in-memory cgroups, device
//! programs, canary, signals, host programs and systemd, so any check, plan
//! and repair runs on a tempdir with no root, no bpf(2) and no D-Bus.
//!
//! Each fake records what was asked of it, so tests assert on the calls
//! (what was written, attached, detached, killed, set) as well as on the
//! state it ends in.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::cgroups::{FreezeError, FreezeTarget};
use crate::devices::bpf::kernel::BpfError;
use crate::devices::bpf::{AttachedProgram, EffectiveError, EffectivePrograms, Insn};
use crate::devices::canary::{CanaryError, CanaryResult};
use crate::devices::systemd::UnitDevices;
use crate::devices::v1::{transition, ApplyError, Emulator};
use crate::host::runtimes::ProbeError;
use crate::ports::{
    CanaryPort, CgroupPort, DeviceProgramPort, Frozen, HostProgramPort, Ports, SignalPort,
    SystemdPort,
};
use crate::procfs::Procfs;
use crate::root::HostRoot;
use crate::systemd::{SystemdClient, SystemdError, UnitProperty};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One thing a fake was asked to do, in order, across all fakes of a
/// [`FakePorts`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// A v1 write (`allow c 1:3 rwm`) to a cgroup.
    V1Write(PathBuf, String),
    /// A freeze of a cgroup, with the directory its marker goes to.
    Freeze(PathBuf, Option<PathBuf>),
    /// A thaw of a cgroup.
    Thaw(PathBuf),
    /// A program attached at a cgroup (the id the fake gave it).
    Attach(PathBuf, u32),
    /// A program detached from a cgroup.
    Detach(PathBuf, u32),
    /// A SIGKILL.
    Kill(i32),
    /// A `SetUnitProperties` call.
    SetUnit(String, Vec<UnitProperty>),
}

/// The shared call log of one set of fakes.
#[derive(Debug, Clone, Default)]
pub struct CallLog(Arc<Mutex<Vec<Call>>>);

impl CallLog {
    /// Record a call.
    pub fn push(&self, c: Call) {
        lock(&self.0).push(c);
    }
    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        lock(&self.0).clone()
    }
}

/// v1 device cgroups held as emulators; writes go through the kernel's
/// semantics (the emulator), the freezer is a flag per cgroup.
#[derive(Debug, Default)]
pub struct FakeCgroups {
    /// Device lists by cgroup (host path).
    pub lists: Mutex<BTreeMap<PathBuf, Emulator>>,
    /// Cgroups that are frozen now.
    pub frozen: Mutex<Vec<PathBuf>>,
    /// Cgroups whose freeze fails (a task in uninterruptible sleep).
    pub unfreezable: Mutex<Vec<PathBuf>>,
    log: CallLog,
}

impl FakeCgroups {
    /// Set a cgroup's list from `devices.list` text.
    pub fn set_list(&self, cgroup: impl Into<PathBuf>, list: &str) {
        let e = Emulator::from_devices_list(list).expect("devices.list fixture");
        lock(&self.lists).insert(cgroup.into(), e);
    }
    /// A cgroup's list now.
    pub fn list(&self, cgroup: &Path) -> Option<Emulator> {
        lock(&self.lists).get(cgroup).cloned()
    }
}

struct FakeFrozen {
    dir: PathBuf,
    frozen: Arc<FakeCgroupsShared>,
}

/// What a freeze guard of [`FakeCgroups`] needs after the port call returns.
#[derive(Debug, Default)]
struct FakeCgroupsShared {
    frozen: Mutex<Vec<PathBuf>>,
    log: CallLog,
}

impl Frozen for FakeFrozen {
    fn waited(&self) -> Duration {
        Duration::from_millis(1)
    }
    fn thaw(self: Box<Self>) -> Result<(), FreezeError> {
        lock(&self.frozen.frozen).retain(|d| d != &self.dir);
        self.frozen.log.push(Call::Thaw(self.dir.clone()));
        Ok(())
    }
}

/// [`FakeCgroups`] with its freeze state shared with the guards it hands
/// out (a guard outlives the borrow of the port).
#[derive(Debug, Default)]
pub struct SharedFakeCgroups {
    /// The lists and failure settings.
    pub inner: FakeCgroups,
    shared: Arc<FakeCgroupsShared>,
}

impl SharedFakeCgroups {
    fn new(log: CallLog) -> Self {
        Self {
            inner: FakeCgroups {
                log: log.clone(),
                ..FakeCgroups::default()
            },
            shared: Arc::new(FakeCgroupsShared {
                frozen: Mutex::new(Vec::new()),
                log,
            }),
        }
    }

    /// The cgroups frozen now.
    pub fn frozen_now(&self) -> Vec<PathBuf> {
        lock(&self.shared.frozen).clone()
    }
}

impl std::ops::Deref for SharedFakeCgroups {
    type Target = FakeCgroups;
    fn deref(&self) -> &FakeCgroups {
        &self.inner
    }
}

impl CgroupPort for SharedFakeCgroups {
    fn v1_devices(&self, cgroup: &Path) -> Result<Emulator, ApplyError> {
        self.inner.list(cgroup).ok_or_else(|| {
            ApplyError::Io(crate::error::WrappedIoError {
                op: "read",
                path: cgroup.join("devices.list"),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            })
        })
    }

    fn widen_v1_devices(&self, cgroup: &Path, target: &Emulator) -> Result<usize, ApplyError> {
        let current = self.v1_devices(cgroup)?;
        let t = transition(&current, target);
        if let Some(reason) = t.reason() {
            return Err(ApplyError::Narrowing {
                reason: reason.to_string(),
            });
        }
        let mut e = current;
        for w in t.writes() {
            self.inner.log.push(Call::V1Write(
                cgroup.to_path_buf(),
                crate::devices::v1::lines::format_write(w),
            ));
            e.apply(w).map_err(ApplyError::Emulator)?;
        }
        lock(&self.inner.lists).insert(cgroup.to_path_buf(), e);
        Ok(t.writes().len())
    }

    fn freeze(
        &self,
        target: &FreezeTarget,
        _deadline: Duration,
        marker_dir: Option<&Path>,
    ) -> Result<Box<dyn Frozen>, FreezeError> {
        let dir = target.dir().to_path_buf();
        if lock(&self.inner.unfreezable).contains(&dir) {
            return Err(FreezeError::UnexpectedState {
                path: dir.join("freezer.state"),
                value: "FREEZING".into(),
            });
        }
        self.inner
            .log
            .push(Call::Freeze(dir.clone(), marker_dir.map(Path::to_path_buf)));
        lock(&self.shared.frozen).push(dir.clone());
        Ok(Box::new(FakeFrozen {
            dir,
            frozen: Arc::clone(&self.shared),
        }))
    }
}

/// A program attached in [`FakePrograms`]: its id and instructions.
pub type FakeProgram = (u32, Vec<Insn>);

/// cgroup v2 device programs in memory: per cgroup its own programs; the
/// effective set of a cgroup is its own and its ancestors' (by path).
#[derive(Debug, Default)]
pub struct FakePrograms {
    /// Programs attached at each cgroup (host path), by id.
    pub attached: Mutex<BTreeMap<PathBuf, Vec<FakeProgram>>>,
    next_id: Mutex<u32>,
    log: CallLog,
}

impl FakePrograms {
    /// Attach `insns` at `cgroup` as a fixture (not logged); returns its id.
    pub fn add(&self, cgroup: impl Into<PathBuf>, insns: Vec<Insn>) -> u32 {
        let id = {
            let mut n = lock(&self.next_id);
            *n += 1;
            *n + 100
        };
        lock(&self.attached)
            .entry(cgroup.into())
            .or_default()
            .push((id, insns));
        id
    }

    /// The instructions of every program in effect for `cgroup` (its own
    /// and its ancestors'), in attach order.
    pub fn effective_insns(&self, cgroup: &Path) -> Vec<Vec<Insn>> {
        lock(&self.attached)
            .iter()
            .filter(|(dir, _)| cgroup.starts_with(dir))
            .flat_map(|(_, progs)| progs.iter().map(|(_, i)| i.clone()))
            .collect()
    }

    /// Ids attached at `cgroup` now.
    pub fn ids(&self, cgroup: &Path) -> Vec<u32> {
        lock(&self.attached)
            .get(cgroup)
            .map(|v| v.iter().map(|(id, _)| *id).collect())
            .unwrap_or_default()
    }
}

impl DeviceProgramPort for FakePrograms {
    fn effective(&self, cgroup: &Path) -> Result<EffectivePrograms, EffectiveError> {
        let all = lock(&self.attached);
        let mut programs = Vec::new();
        for (dir, progs) in all.iter() {
            if cgroup.starts_with(dir) {
                for (id, insns) in progs {
                    programs.push(AttachedProgram {
                        id: *id,
                        name: String::new(),
                        tag: [0; 8],
                        insns: insns.clone(),
                    });
                }
            }
        }
        EffectivePrograms::from_programs(cgroup.to_path_buf(), programs)
    }

    fn attached(&self, cgroup: &Path) -> Result<Vec<u32>, BpfError> {
        Ok(self.ids(cgroup))
    }

    fn instructions(&self, id: u32) -> Result<Option<Vec<Insn>>, BpfError> {
        Ok(lock(&self.attached)
            .values()
            .flatten()
            .find(|(i, _)| *i == id)
            .map(|(_, insns)| insns.clone()))
    }

    fn attach(&self, cgroup: &Path, insns: &[Insn]) -> Result<(), BpfError> {
        let id = self.add(cgroup, insns.to_vec());
        self.log.push(Call::Attach(cgroup.to_path_buf(), id));
        Ok(())
    }

    fn detach(&self, cgroup: &Path, id: u32) -> Result<bool, BpfError> {
        let mut all = lock(&self.attached);
        let Some(progs) = all.get_mut(cgroup) else {
            return Ok(false);
        };
        let before = progs.len();
        progs.retain(|(i, _)| *i != id);
        let gone = progs.len() < before;
        if gone {
            self.log.push(Call::Detach(cgroup.to_path_buf(), id));
        }
        Ok(gone)
    }
}

/// A canary that answers from a table: device path -> result (allowed when
/// not listed).
#[derive(Debug, Default)]
pub struct FakeCanary {
    /// Results by device (host path).
    pub results: Mutex<BTreeMap<PathBuf, CanaryResult>>,
}

impl CanaryPort for FakeCanary {
    fn available(&self) -> bool {
        true
    }
    fn probe(
        &self,
        _cgroups: &[&Path],
        devices: &[&Path],
    ) -> Result<Vec<CanaryResult>, CanaryError> {
        let r = lock(&self.results);
        Ok(devices
            .iter()
            .map(|d| r.get(*d).copied().unwrap_or(CanaryResult::Allowed(None)))
            .collect())
    }
}

/// Signals recorded, never sent.
#[derive(Debug, Default)]
pub struct FakeSignals {
    log: CallLog,
}

impl SignalPort for FakeSignals {
    fn kill(&self, pid: i32) -> Result<(), nix::Error> {
        self.log.push(Call::Kill(pid));
        Ok(())
    }
}

/// Host programs with canned answers: host path -> stdout.
#[derive(Debug, Default)]
pub struct FakeHostPrograms {
    /// stdout by program (host path).
    pub outputs: Mutex<BTreeMap<PathBuf, String>>,
}

impl HostProgramPort for FakeHostPrograms {
    fn exists(&self, program: &Path) -> bool {
        lock(&self.outputs).contains_key(program)
    }
    fn location(&self, program: &Path) -> PathBuf {
        program.to_path_buf()
    }
    fn run(&self, program: &Path, args: &[&str], timeout: Duration) -> Result<String, ProbeError> {
        lock(&self.outputs)
            .get(program)
            .cloned()
            .ok_or_else(|| ProbeError::Timeout {
                probe: args.last().copied().unwrap_or_default().to_string(),
                timeout,
            })
    }
}

/// A systemd holding units' device settings and applying
/// `SetUnitProperties` the way systemd does (a reset clears; an entry for a
/// selector it has replaces that entry's access).
#[derive(Debug)]
pub struct FakeSystemd {
    /// Whether it "runs" (`/run/systemd/system`).
    pub running: bool,
    /// The manager's major version.
    pub version: u32,
    /// Device settings by unit; a unit not here does not exist.
    pub units: Mutex<BTreeMap<String, UnitDevices>>,
    /// Every call times out (a stopped systemd).
    pub hang: Mutex<bool>,
    /// How many connections were made.
    pub connections: Mutex<usize>,
    /// How many times a unit's settings were read.
    pub reads: Mutex<usize>,
    /// `ControlGroup` by unit; a unit not here manages
    /// `/system.slice/<unit>`.
    pub control_groups: Mutex<BTreeMap<String, String>>,
    log: CallLog,
}

impl Default for FakeSystemd {
    fn default() -> Self {
        Self {
            running: true,
            version: 252,
            units: Mutex::new(BTreeMap::new()),
            hang: Mutex::new(false),
            connections: Mutex::new(0),
            reads: Mutex::new(0),
            control_groups: Mutex::new(BTreeMap::new()),
            log: CallLog::default(),
        }
    }
}

impl FakeSystemd {
    /// Give `unit` these settings.
    pub fn set_unit(&self, unit: &str, devices: UnitDevices) {
        lock(&self.units).insert(unit.to_string(), devices);
    }
    /// A unit's settings now.
    pub fn unit(&self, unit: &str) -> Option<UnitDevices> {
        lock(&self.units).get(unit).cloned()
    }
    /// Whether nothing was ever set on this systemd.
    pub fn log_is_read_only(&self) -> bool {
        !self
            .log
            .calls()
            .iter()
            .any(|c| matches!(c, Call::SetUnit(..)))
    }

    fn timeout(&self, what: &str) -> Result<(), SystemdError> {
        if *lock(&self.hang) {
            return Err(SystemdError::Timeout {
                what: what.into(),
                after: Duration::from_secs(5),
            });
        }
        Ok(())
    }
}

impl SystemdClient for FakeSystemd {
    fn version_string(&self) -> Result<String, SystemdError> {
        self.timeout("Version")?;
        Ok(format!("{}.1-1", self.version))
    }
    fn unit_devices(&self, unit: &str) -> Result<UnitDevices, SystemdError> {
        self.timeout("GetUnit")?;
        *lock(&self.reads) += 1;
        self.unit(unit).ok_or(SystemdError::Reply {
            method: "GetUnit",
            message: format!("unit {unit} not loaded"),
        })
    }
    fn unit_control_group(&self, unit: &str) -> Result<String, SystemdError> {
        self.timeout("Get")?;
        self.unit(unit).ok_or(SystemdError::Reply {
            method: "GetUnit",
            message: format!("unit {unit} not loaded"),
        })?;
        Ok(lock(&self.control_groups)
            .get(unit)
            .cloned()
            .unwrap_or_else(|| format!("/system.slice/{unit}")))
    }
    fn set_unit_properties(
        &self,
        unit: &str,
        _runtime: bool,
        properties: &[UnitProperty],
    ) -> Result<(), SystemdError> {
        self.timeout("SetUnitProperties")?;
        self.log
            .push(Call::SetUnit(unit.to_string(), properties.to_vec()));
        let mut units = lock(&self.units);
        let d = units.get_mut(unit).ok_or(SystemdError::Reply {
            method: "SetUnitProperties",
            message: format!("unit {unit} not loaded"),
        })?;
        for p in properties {
            match p {
                UnitProperty::DevicePolicy(p) => d.policy = Some(*p),
                UnitProperty::DeviceAllow(e) if e.is_empty() => d.allow.clear(),
                // systemd keeps one entry per path; a later one replaces
                // its access (it does not add to it).
                UnitProperty::DeviceAllow(e) => {
                    for entry in e {
                        match d.allow.iter_mut().find(|o| o.selector == entry.selector) {
                            Some(o) => o.access = entry.access,
                            None => d.allow.push(entry.clone()),
                        }
                    }
                }
            }
        }
        Ok(())
    }
    fn reload(&self) -> Result<(), SystemdError> {
        self.timeout("Reload")
    }
}

/// A [`SystemdPort`] handing out one shared [`FakeSystemd`].
#[derive(Debug, Clone)]
pub struct FakeSystemdPort(pub Arc<FakeSystemd>);

/// A client sharing one systemd fake (any [`SystemdClient`]) with the test
/// that set it up, as ports hand out boxed clients.
#[derive(Debug)]
pub struct SharedClient<T>(pub Arc<T>);

impl<T: SystemdClient + Send + Sync> SystemdClient for SharedClient<T> {
    fn version_string(&self) -> Result<String, SystemdError> {
        self.0.version_string()
    }
    fn unit_devices(&self, unit: &str) -> Result<UnitDevices, SystemdError> {
        self.0.unit_devices(unit)
    }
    fn unit_control_group(&self, unit: &str) -> Result<String, SystemdError> {
        self.0.unit_control_group(unit)
    }
    fn set_unit_properties(
        &self,
        unit: &str,
        runtime: bool,
        properties: &[UnitProperty],
    ) -> Result<(), SystemdError> {
        self.0.set_unit_properties(unit, runtime, properties)
    }
    fn reload(&self) -> Result<(), SystemdError> {
        self.0.reload()
    }
}

impl SystemdPort for FakeSystemdPort {
    fn running(&self) -> bool {
        self.0.running
    }
    fn connect(&self) -> Result<Box<dyn SystemdClient + Send + Sync>, SystemdError> {
        if !self.0.running {
            return Err(SystemdError::NotRunning);
        }
        *lock(&self.0.connections) += 1;
        Ok(Box::new(SharedClient(Arc::clone(&self.0))))
    }
}

/// Every fake, wired as [`Ports`] over a fixture root, with handles to each
/// fake for setting state and reading what was done.
#[derive(Debug, Clone)]
pub struct FakePorts {
    /// The ports to hand to the code under test.
    pub ports: Ports,
    /// The cgroups fake.
    pub cgroups: Arc<SharedFakeCgroups>,
    /// The device-program fake.
    pub programs: Arc<FakePrograms>,
    /// The canary fake.
    pub canary: Arc<FakeCanary>,
    /// The signal fake.
    pub signals: Arc<FakeSignals>,
    /// The host-program fake.
    pub exec: Arc<FakeHostPrograms>,
    /// The systemd fake.
    pub systemd: Arc<FakeSystemd>,
    /// Every call made to any fake, in order.
    pub log: CallLog,
}

impl FakePorts {
    /// Fakes over the fixture root `root` (for `/proc`, runtime state and
    /// the files host facts read).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = HostRoot::new(root.into());
        let log = CallLog::default();
        let cgroups = Arc::new(SharedFakeCgroups::new(log.clone()));
        let programs = Arc::new(FakePrograms {
            log: log.clone(),
            ..FakePrograms::default()
        });
        let canary = Arc::new(FakeCanary::default());
        let signals = Arc::new(FakeSignals { log: log.clone() });
        let exec = Arc::new(FakeHostPrograms::default());
        let systemd = Arc::new(FakeSystemd {
            log: log.clone(),
            ..FakeSystemd::default()
        });
        let ports = Ports {
            procfs: Procfs::new(root.clone()),
            root,
            cgroups: cgroups.clone(),
            programs: programs.clone(),
            canary: canary.clone(),
            signals: signals.clone(),
            exec: exec.clone(),
            systemd: Arc::new(FakeSystemdPort(systemd.clone())),
        };
        Self {
            ports,
            cgroups,
            programs,
            canary,
            signals,
            exec,
            systemd,
            log,
        }
    }
}
