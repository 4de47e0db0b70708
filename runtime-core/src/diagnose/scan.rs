//! One scan of a node: host facts, containers, every check.

use std::path::PathBuf;
use std::time::SystemTime;

use serde::Serialize;

use super::checks::{self, Ctx};
use super::Snapshot;
use super::{CheckPolicy, Finding};
use crate::discovery::{self, Container, Skipped, StateDirs};
use crate::host::HostFacts;
use crate::ports::Ports;
use crate::root::HostRoot;

/// Where a scan reads and keeps state.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// The seams to the node (the host root, `/proc`, cgroups, device
    /// programs, the canary, systemd).
    pub ports: Ports,
    /// Runtime state directories.
    pub state_dirs: StateDirs,
    /// Where scans keep what must survive between them (eventfd counts of
    /// shims); `None` disables checks that need it. Host path, re-rooted.
    pub state_dir: Option<PathBuf>,
}

impl ScanOptions {
    /// Options for this machine: real ports, default state dirs,
    /// `/run/warden` for persisted state.
    pub fn real() -> Self {
        Self::for_root(HostRoot::real())
    }

    /// Options for the host under `root` with its real ports, default state
    /// dirs and no persisted state (fixtures, benchmarks).
    pub fn for_root(root: HostRoot) -> Self {
        let real = root.is_real();
        Self {
            ports: Ports::for_root(root, None),
            state_dirs: StateDirs::default(),
            state_dir: real.then(|| PathBuf::from("/run/warden")),
        }
    }

    /// The host root.
    pub fn root(&self) -> &HostRoot {
        &self.ports.root
    }
}

/// A container as reports list it.
#[derive(Debug, Clone, Serialize)]
pub struct ContainerSummary {
    /// Runtime container id.
    pub id: String,
    /// `runc`, `containerd/runc`, `crun`.
    pub runtime: String,
    /// containerd namespace, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Init pid.
    pub pid: i32,
    /// `namespace/name` of the pod, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// Kernel cgroup path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
}

impl From<&Container> for ContainerSummary {
    fn from(c: &Container) -> Self {
        Self {
            id: c.id.clone(),
            runtime: c.runtime.name().to_string(),
            namespace: c.runtime.namespace().map(str::to_owned),
            pid: c.pid,
            pod: c
                .pod
                .as_ref()
                .map(|p| format!("{}/{}", p.namespace, p.name)),
            cgroup: c.cgroups.path.clone(),
        }
    }
}

/// Everything one scan found.
#[derive(Debug, Serialize)]
pub struct ScanReport {
    /// Facts about the node.
    pub host: HostFacts,
    /// What is wrong, per container or for the host.
    pub findings: Vec<Finding>,
    /// The containers that were inspected.
    pub containers: Vec<ContainerSummary>,
    /// Containers seen but left out (exited mid-scan, half-written state).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<Skipped>,
    /// The discovered containers themselves, for repairs.
    #[serde(skip)]
    pub discovered: Vec<Container>,
    /// Checks this scan could not make, per container or (`None`) for
    /// all: a finding missing from `findings` for these is unknown, not
    /// gone (a repair is not "verified" by it).
    #[serde(skip)]
    pub not_evaluated: std::collections::BTreeSet<(crate::checks::CheckId, Option<String>)>,
    /// How many times the scan waited to look at tasks in uninterruptible
    /// sleep again (at most once per scan).
    #[serde(skip)]
    pub resample_waits: u32,
    /// What the scan read, for planning repairs without reading again.
    #[serde(skip)]
    pub snapshot: Snapshot,
}

/// Scan the node: host facts, discovery, every check.
pub fn scan(opts: &ScanOptions, policy: &CheckPolicy) -> ScanReport {
    let snapshot = Snapshot::new(opts.ports.clone(), policy.required_devices.clone());
    let mut host = HostFacts::gather(&opts.ports, snapshot.systemd());
    let mut found = discovery::discover(opts.root(), host.cgroups.as_ref(), &opts.state_dirs);
    host.unreadable.append(&mut found.unreadable);
    let ctx = Ctx {
        opts,
        policy,
        host: &host,
        procfs: &opts.ports.procfs,
        snapshot: &snapshot,
        containers: &found.containers,
        now: SystemTime::now(),
        processes: Default::default(),
        not_evaluated: Default::default(),
        unreadable: Default::default(),
    };
    let mut findings = Vec::new();
    findings.extend(checks::host_hazards::check(&ctx));
    let mut blocked = Vec::new();
    for c in &found.containers {
        findings.extend(checks::device_access::check(&ctx, c));
        blocked.extend(checks::freeze_blocked::first_look(&ctx, c));
        findings.extend(checks::seccomp_profile::check(&ctx, c));
    }
    // One wait per scan, whatever the number of containers with tasks in D.
    let mut resample_waits = 0;
    if !blocked.is_empty() {
        std::thread::sleep(checks::freeze_blocked::RESAMPLE);
        resample_waits = 1;
        for cand in blocked {
            findings.extend(checks::freeze_blocked::confirm(&ctx, cand));
        }
    }
    findings.extend(checks::device_rules_latent::check(&ctx));
    findings.extend(checks::seccomp_stuck::check(&ctx));
    findings.extend(checks::shim_fd_leak::check(&ctx));
    // Deterministic order: host first, then by container, check id.
    findings.sort_by_cached_key(|f| {
        let id = f.id();
        (id.container, id.check.as_str(), id.subject)
    });
    let mut unreadable = ctx.unreadable.take();
    let not_evaluated = ctx.not_evaluated.take();
    drop(ctx);
    if let Some(why) = snapshot.systemd().tripped() {
        unreadable.push(crate::host::Unreadable {
            what: "systemd units (skipped for the rest of the scan after a timeout)".into(),
            path: None,
            error: crate::error::chain(why.as_ref()),
        });
    }
    host.unreadable.append(&mut unreadable);
    ScanReport {
        containers: found
            .containers
            .iter()
            .map(ContainerSummary::from)
            .collect(),
        skipped: found.skipped,
        discovered: found.containers,
        host,
        findings,
        not_evaluated,
        resample_waits,
        snapshot,
    }
}
