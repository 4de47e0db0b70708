//! What each check found, typed: the cause of a finding. Repairs read these
//! fields; people read the message and evidence rendered from them
//! (the `render` module) only at the edges (JSON, the table, the
//! NodeRuntimeReport).

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::devices::host_devices::DeviceId;
use crate::systemd::history::VersionHazard;
use crate::systemd::UnitView;

/// Which layer refused a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Layer {
    /// The v1 `devices.list` (the emulator's verdict).
    V1,
    /// A cgroup v2 device program (the interpreter's verdict).
    V2,
}

impl Layer {
    /// `v1`, `v2`.
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::V1 => "v1",
            Layer::V2 => "v2",
        }
    }
}

/// A required device the container cannot open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedDevice {
    /// Its node on the host (`/dev/null`).
    pub path: PathBuf,
    /// Its number.
    pub device: DeviceId,
    /// The layers whose rules refuse read-write access (empty when only the
    /// canary saw the refusal).
    pub by: Vec<Layer>,
    /// Whether the canary's open got EPERM.
    pub canary: bool,
}

/// `device-access-broken`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceAccessCause {
    /// The refused devices, in the policy's order.
    pub refused: Vec<RefusedDevice>,
    /// Why the canary did not run, when it failed.
    pub canary_error: Option<String>,
    /// The container's v1 devices cgroup (host path).
    pub v1_cgroup: Option<PathBuf>,
    /// Its v2 cgroup (host path).
    pub v2_cgroup: Option<PathBuf>,
}

/// `device-rules-latent` for one container: its unit and what it loses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitCause {
    /// The unit compared with the container's rules.
    pub view: UnitView,
    /// Whether a required device is among the losses (an error then).
    pub loses_required: bool,
}

/// `seccomp-notify-stuck`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StuckCause {
    /// The process.
    pub pid: i32,
    /// The waiting thread.
    pub tid: i32,
    /// Its name.
    pub comm: String,
    /// Its process's start time (clock ticks since boot): guards a kill
    /// against pid reuse.
    pub start_time: u64,
    /// Its cgroup path (v1 devices or v2).
    pub cgroup: Option<String>,
    /// Whether it is still the runtime (an init or exec before `execve`);
    /// only these may be killed.
    pub runtime_init: bool,
    /// The task as people read it (`pid 12 (runc:[2:INIT]) state S wchan
    /// ...`).
    pub task: String,
    /// The threshold it passed, in seconds.
    pub stuck_after_secs: u64,
}

/// `shim-fd-leak`.
#[derive(Debug, Clone, PartialEq)]
pub struct ShimCause {
    /// The shim's pid.
    pub pid: i32,
    /// Its name.
    pub comm: String,
    /// Its start time (with the pid, the shim's identity across scans).
    pub start_time: u64,
    /// eventfds now.
    pub count: usize,
    /// eventfds when first seen.
    pub first_count: usize,
    /// Growth per minute over the observation.
    pub per_minute: f64,
}

impl Eq for ShimCause {}

/// `freeze-blocked`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockedCause {
    /// The blocked tasks, as people read them.
    pub tasks: Vec<String>,
    /// The cgroup they are in (host path).
    pub cgroup: PathBuf,
}

/// Which runtime replays device rules on update (`device-update-jitter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum JitterRuntime {
    /// crun on cgroup v1, whatever the driver.
    Crun,
    /// runc with the systemd driver on cgroup v1 (systemd replays).
    SystemdRunc,
}

/// `device-update-jitter` from the containers a node runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JitterCause {
    /// The runtime.
    pub runtime: JitterRuntime,
    /// Its version, when known.
    pub version: Option<String>,
    /// How many of its containers run here.
    pub containers: usize,
}

/// A profile check for a running container's own seccomp profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileCause {
    /// The analysis's sentence.
    pub message: String,
    /// The analysis's facts (syscall, per-runtime effect, ...).
    pub evidence: BTreeMap<String, String>,
}

/// What a check found, one variant per kind of finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// A required device is refused now.
    DeviceAccess(DeviceAccessCause),
    /// A unit's `DeviceAllow=` would take devices at the next re-apply.
    UnitDevices(UnitCause),
    /// A task blocked in a seccomp notification.
    Stuck(StuckCause),
    /// A shim's eventfds keep growing.
    ShimLeak(ShimCause),
    /// Tasks in uninterruptible sleep in a container.
    FreezeBlocked(BlockedCause),
    /// A runtime that replays device rules on update.
    Jitter(JitterCause),
    /// A hazard of the runc/systemd versions and `/dev/char`.
    VersionHazard {
        /// The hazard.
        hazard: VersionHazard,
        /// Whether `/dev/char` exists.
        dev_char: bool,
    },
    /// A kernel in the cgroup attach race range.
    AttachRace {
        /// The kernel release.
        kernel: String,
    },
    /// The container's profile notifies what its runtime needs.
    Profile(ProfileCause),
}

impl Cause {
    /// What, besides the check and the container, tells this finding apart
    /// from others of the same check (a host finding's runtime, a shim's pid
    /// and start time, a stuck thread, a profile rule's syscall).
    pub fn subject(&self) -> String {
        match self {
            Cause::DeviceAccess(_) | Cause::UnitDevices(_) | Cause::FreezeBlocked(_) => {
                String::new()
            }
            Cause::Stuck(s) => format!("tid {} start {}", s.tid, s.start_time),
            Cause::ShimLeak(s) => format!("shim {} start {}", s.pid, s.start_time),
            Cause::Jitter(j) => match j.runtime {
                JitterRuntime::Crun => "crun".into(),
                JitterRuntime::SystemdRunc => "runc systemd driver".into(),
            },
            Cause::VersionHazard { hazard, .. } => hazard.as_str().into(),
            Cause::AttachRace { .. } => "kernel".into(),
            Cause::Profile(p) => p
                .evidence
                .get("syscall")
                .cloned()
                .unwrap_or_else(|| p.message.clone()),
        }
    }
}
