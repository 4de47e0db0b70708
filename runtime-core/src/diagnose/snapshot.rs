//! The scan's snapshot: what diagnosis read, kept for planning.
//!
//! Plans are pure (`repair::plan`): everything they need (the host
//! device table, v1 lists, attached programs, systemd's units and version)
//! comes from here. Each item is read through the ports lazily, the first
//! time a check or a plan asks for it, and at most once per scan, so a scan
//! costs no more than the findings it has, and planning reads nothing the
//! diagnosis did not already read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use crate::devices::bpf::EffectivePrograms;
use crate::devices::host_devices::{device_of, DeviceId, HostDevices};
use crate::devices::systemd::UnitDevices;
use crate::devices::v1::Emulator;
use crate::ports::{Ports, SystemdSession};

/// Something the snapshot could not read (kept, so it is not read again).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{what} unreadable")]
pub struct SnapshotError {
    /// What was being read (`devices.list of /sys/fs/cgroup/devices/c1`).
    pub what: String,
    /// The error, with its own context (paths, errno); shared, as the
    /// snapshot hands the same error to every reader.
    #[source]
    pub source: Arc<dyn std::error::Error + Send + Sync>,
}

impl SnapshotError {
    fn new(what: impl Into<String>, e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self {
            what: what.into(),
            source: Arc::new(e),
        }
    }
}

/// A required device as the host has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequiredDevice {
    /// Its node (`/dev/null`).
    pub path: PathBuf,
    /// Its number.
    pub device: DeviceId,
}

type Cache<T> = Mutex<BTreeMap<PathBuf, Result<T, SnapshotError>>>;

fn cached<T: Clone>(
    cache: &Cache<T>,
    key: &Path,
    read: impl FnOnce() -> Result<T, SnapshotError>,
) -> Result<T, SnapshotError> {
    let lock = |c: &Cache<T>| {
        c.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(key)
            .cloned()
    };
    if let Some(v) = lock(cache) {
        return v;
    }
    let v = read();
    cache
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(key.to_path_buf(), v.clone());
    v
}

/// What one scan read, lazily.
#[derive(Debug)]
pub struct Snapshot {
    ports: Ports,
    systemd: SystemdSession,
    required_paths: Vec<PathBuf>,
    required: OnceLock<Vec<RequiredDevice>>,
    host_devices: OnceLock<Result<Arc<HostDevices>, SnapshotError>>,
    v1: Cache<Emulator>,
    programs: Cache<Arc<EffectivePrograms>>,
    own_programs: Cache<Vec<u32>>,
    units: Mutex<BTreeMap<String, Result<UnitDevices, SnapshotError>>>,
}

impl Snapshot {
    /// A snapshot reading through `ports`; `required` are the policy's
    /// required device paths.
    pub fn new(ports: Ports, required: Vec<PathBuf>) -> Self {
        Self {
            systemd: SystemdSession::new(ports.systemd.clone()),
            ports,
            required_paths: required,
            required: OnceLock::new(),
            host_devices: OnceLock::new(),
            v1: Mutex::default(),
            programs: Mutex::default(),
            own_programs: Mutex::default(),
            units: Mutex::default(),
        }
    }

    /// A snapshot whose required devices and host device table are given
    /// rather than read (tests on fixture roots, where device nodes cannot
    /// be made without root).
    pub fn with_devices(ports: Ports, required: Vec<RequiredDevice>, host: HostDevices) -> Self {
        let s = Self::new(ports, required.iter().map(|d| d.path.clone()).collect());
        let _ = s.required.set(required);
        let _ = s.host_devices.set(Ok(Arc::new(host)));
        s
    }

    /// The ports it reads through.
    pub fn ports(&self) -> &Ports {
        &self.ports
    }

    /// The scan's systemd session (one connection, with its breaker).
    pub fn systemd(&self) -> &SystemdSession {
        &self.systemd
    }

    /// The required devices the host has (`stat()` of each path, once per
    /// scan; paths the host lacks are not the container's problem).
    pub fn required_devices(&self) -> &[RequiredDevice] {
        self.required.get_or_init(|| {
            self.required_paths
                .iter()
                .filter_map(|p| {
                    let md = std::fs::metadata(self.ports.root.join(p)).ok()?;
                    Some(RequiredDevice {
                        path: p.clone(),
                        device: device_of(&md)?,
                    })
                })
                .collect()
        })
    }

    /// The host's device table (every node under `/dev`, `/proc/devices`,
    /// `/dev/char`), scanned once.
    pub fn host_devices(&self) -> Result<Arc<HostDevices>, SnapshotError> {
        self.host_devices
            .get_or_init(|| {
                HostDevices::scan(&self.ports.root)
                    .map(Arc::new)
                    .map_err(|e| SnapshotError::new("host device table", e))
            })
            .clone()
    }

    /// Read the v1 devices list of `cgroup` without keeping it: the check
    /// reads every container's list, and only those with a finding are kept
    /// ([`Snapshot::keep_v1_devices`]), so a clean node costs no memory.
    pub fn read_v1_devices(&self, cgroup: &Path) -> Result<Emulator, SnapshotError> {
        self.ports
            .cgroups
            .v1_devices(cgroup)
            .map_err(|e| SnapshotError::new(format!("devices.list of {}", cgroup.display()), e))
    }

    /// Keep a list read by [`Snapshot::read_v1_devices`] for the plans.
    pub fn keep_v1_devices(&self, cgroup: &Path, list: Emulator) {
        self.v1
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(cgroup.to_path_buf(), Ok(list));
    }

    /// Read the programs in effect for `cgroup` without keeping them (see
    /// [`Snapshot::read_v1_devices`]).
    pub fn read_effective_programs(
        &self,
        cgroup: &Path,
    ) -> Result<Arc<EffectivePrograms>, SnapshotError> {
        self.ports
            .programs
            .effective(cgroup)
            .map(Arc::new)
            .map_err(|e| SnapshotError::new(format!("device programs of {}", cgroup.display()), e))
    }

    /// Keep programs read by [`Snapshot::read_effective_programs`].
    pub fn keep_effective_programs(&self, cgroup: &Path, programs: Arc<EffectivePrograms>) {
        self.programs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(cgroup.to_path_buf(), Ok(programs));
    }

    /// The v1 devices list of `cgroup` (host path), kept or read now.
    pub fn v1_devices(&self, cgroup: &Path) -> Result<Emulator, SnapshotError> {
        cached(&self.v1, cgroup, || {
            self.ports
                .cgroups
                .v1_devices(cgroup)
                .map_err(|e| SnapshotError::new(format!("devices.list of {}", cgroup.display()), e))
        })
    }

    /// Every device program in effect for `cgroup` (host path).
    pub fn effective_programs(
        &self,
        cgroup: &Path,
    ) -> Result<Arc<EffectivePrograms>, SnapshotError> {
        cached(&self.programs, cgroup, || {
            self.ports
                .programs
                .effective(cgroup)
                .map(Arc::new)
                .map_err(|e| {
                    SnapshotError::new(format!("device programs of {}", cgroup.display()), e)
                })
        })
    }

    /// A unit's device settings, asked of systemd through the scan's
    /// session once per scan (the latent check and the plans share it).
    pub fn unit_devices(&self, unit: &str) -> Result<UnitDevices, SnapshotError> {
        let lock = || {
            self.units
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        if let Some(v) = lock().get(unit) {
            return v.clone();
        }
        let v = self
            .systemd
            .call(|c| c.unit_devices(unit))
            .map_err(|e| SnapshotError::new(format!("systemd unit {unit}"), e));
        lock().insert(unit.to_string(), v.clone());
        v
    }

    /// Ids of the programs attached at `cgroup` itself.
    pub fn own_programs(&self, cgroup: &Path) -> Result<Vec<u32>, SnapshotError> {
        cached(&self.own_programs, cgroup, || {
            self.ports.programs.attached(cgroup).map_err(|e| {
                SnapshotError::new(format!("programs attached at {}", cgroup.display()), e)
            })
        })
    }
}
