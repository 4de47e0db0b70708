//! `warden agent`: `warden check`'s engine running continuously on one node.
//!
//! The loop: scan at start, then whenever a trigger sees a change (inotify
//! on runtime state directories, systemd's transient units and v1 device
//! files; a poll of v2 device programs: see [`triggers`]), when the policy
//! changes, and at least every `--interval`. Each cycle scans; in Enforce
//! mode it repairs under the policy's limits ([`engine`]) and scans again.
//! The report goes to the API server as the node's `NodeRuntimeReport`
//! (server-side apply, only when its content changed, spaced by a few
//! seconds) and/or to `--report-file`; Events go to the affected Pod or the
//! Node. `/metrics`, `/healthz` and `/readyz` are served on
//! `--metrics-addr`.
//!
//! Freezes: the one repair that freezes (a systemd `DeviceAllow=` rewrite
//! on cgroup v1, where systemd writes deny-all first) leaves a marker under
//! `<state-dir>/frozen/` before freezing, as anything built on runtime-core's
//! freezer does. At start the agent thaws every
//! cgroup whose marker's owner is dead, and on the way out every cgroup whose
//! marker names itself, so nothing stays frozen behind it.
//!
//! SIGTERM/SIGINT: repairs not yet started are abandoned, the running one
//! finishes (a few writes or bpf calls; a systemd `DeviceAllow=` rewrite is
//! a read of the unit, then the set and a read back, inside a freeze of the
//! container on cgroup v1, each D-Bus call with a 5 s deadline), and the
//! agent exits.
//!
//! The scan, plans, repairs and their verification are
//! [`runtime_core::engine`]'s, the same two steps `warden check --fix` runs;
//! this module schedules them, applies the policy's mode and limits, and
//! reports.
//!
//! Permissions it needs (for the chart's ClusterRole; all cluster-wide, as
//! the agent's reads are filtered by field selectors, which RBAC cannot
//! express):
//!
//! | resource | verbs | why |
//! |---|---|---|
//! | core `nodes` | get, list, watch | its own Node (`metadata.name=` field selector): labels for policy selection, uid to own its report |
//! | `runtimewarden.io` `runtimepolicies` | list, watch | the policies selecting its node, merged |
//! | core `pods` | list, watch | the pods on its node (`spec.nodeName=` field selector), to name them in findings and Events |
//! | `runtimewarden.io` `noderuntimereports` | create, patch | its node's report, by server-side apply (which creates it the first time) |
//! | `events.k8s.io` `events` | create, patch | Events on affected Pods (their namespace) and on the Node (`default`) |

pub mod config;
pub mod events;
pub mod kube;
pub mod last_policy;
pub mod metrics;
pub mod report;
pub mod server;
pub mod triggers;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use prometheus_client::registry::Registry;
use runtime_core::cgroups::freezer::{sweep_markers, Recovery};
use runtime_core::diagnose::ScanReport;
use runtime_core::procfs::Procfs;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use warden_api::{NodeRuntimeReport, NodeRuntimeReportSpec};

use crate::error_chain::Chain;
use crate::policy_file::{self, PolicyFileError};

pub use config::AgentArgs;
use config::{AgentPolicy, MetricsAddr};
use events::{EventQueue, EventSink, NodeEvent, Seen, EVENT_QUEUE, EVENT_TIMEOUT};
use metrics::{Metrics, Trigger};
use report::{Gate, ReportGate};
use runtime_core::engine::{Engine, Limits, Mode};
use server::Health;
use triggers::{TreeSpec, Triggers};

/// Wait this long after a change before scanning, so that a burst of writes
/// (runc writes several files, systemd replays a whole device list) makes
/// one scan.
const SETTLE: Duration = Duration::from_millis(100);
/// Keep a change-triggered scan at least this far from the end of the
/// previous one: the bound on what a storm of changes can cost.
const MIN_GAP: Duration = Duration::from_millis(500);
/// How long a stopping agent waits for a running scan or repair.
const STOP_WAIT: Duration = Duration::from_secs(20);

/// Why the agent stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The async runtime could not start.
    #[error("start the async runtime")]
    Runtime(#[source] std::io::Error),
    /// Signal handlers could not be installed.
    #[error("install signal handlers")]
    Signals(#[source] std::io::Error),
    /// No node name in cluster mode.
    #[error("no --node-name (NODE_NAME from the downward API) and not --standalone")]
    NoNodeName,
    /// The `--policy` file is unusable (the error names the file).
    #[error(transparent)]
    Policy(#[from] PolicyFileError),
    /// No usable cluster configuration.
    #[error("connect to the cluster")]
    Client(#[source] ::kube::Error),
    /// The HTTP endpoints could not listen.
    #[error("listen on {addr}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl AgentError {
    /// What the person who started the agent can do about this error, when
    /// the error alone does not make it obvious.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            Self::Client(_) => Some(crate::exit::NO_CLUSTER_HINT),
            _ => None,
        }
    }
}

/// Run `warden agent` until SIGTERM/SIGINT.
pub fn run(args: &AgentArgs) -> Result<(), AgentError> {
    // One thread for the loop, the watches and the API; scans and repairs
    // run on tokio's blocking pool.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(AgentError::Runtime)?;
    let result = rt.block_on(agent(args.clone()));
    // A scan stuck in an uninterruptible kernel read must not keep a
    // stopping agent alive past its grace period.
    rt.shutdown_timeout(Duration::from_secs(5));
    result
}

fn node_name(args: &AgentArgs) -> Result<String, AgentError> {
    if let Some(n) = args.node_name.as_ref().filter(|n| !n.is_empty()) {
        return Ok(n.clone());
    }
    if !args.standalone {
        return Err(AgentError::NoNodeName);
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host = host.trim();
    Ok(if host.is_empty() { "localhost" } else { host }.to_owned())
}

/// When a change-triggered scan may start: after the settle delay, and at
/// least [`MIN_GAP`] after the previous scan *ended* (counted from its start,
/// a scan that takes longer than the gap would be followed at once, and a
/// storm of changes would keep the agent scanning without pause).
fn change_scan_at(now: Instant, last_end: Instant) -> Instant {
    (now + SETTLE).max(last_end + MIN_GAP)
}

/// Thaw what dead owners, and this process (which holds no freeze at its
/// start and after its last repair), left frozen, by their markers in
/// `dir`; logged under the agent's own target. Returns how many cgroups
/// were thawed.
pub fn thaw_left_frozen(dir: &Path, procfs: &Procfs) -> usize {
    let mut thawed = 0;
    for (p, r) in sweep_markers(dir, procfs, procfs.root()) {
        match r {
            Ok(Recovery::Thawed(t)) => {
                tracing::warn!(cgroup = %t, marker = %p.display(), "thawed a cgroup left frozen");
                thawed += 1;
            }
            Ok(Recovery::CgroupGone(t)) => {
                tracing::info!(cgroup = %t, marker = %p.display(), "removed the marker of a deleted cgroup");
            }
            Ok(Recovery::OwnerAlive { pid }) => {
                tracing::info!(pid, marker = %p.display(), "a live process holds this freeze; left alone");
            }
            Err(e) => {
                tracing::error!(marker = %p.display(), error = %Chain(&e), "cannot recover a freeze marker")
            }
        }
    }
    thawed
}

/// Set `stop` and `abandon` on the first SIGTERM or SIGINT.
fn stop_on_signals(stop: watch::Sender<bool>, abandon: Arc<AtomicBool>) -> Result<(), AgentError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(AgentError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(AgentError::Signals)?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: stopping"),
            _ = int.recv() => tracing::info!("SIGINT: stopping"),
        }
        abandon.store(true, Ordering::SeqCst);
        let _ = stop.send(true);
    });
    Ok(())
}

/// Where reports and events go.
struct Sinks {
    node_name: String,
    file: Option<(PathBuf, ReportGate)>,
    api: Option<watch::Sender<Option<NodeRuntimeReportSpec>>>,
    events: Option<EventQueue>,
    health: Arc<Health>,
    last_summary: Option<warden_api::report::ReportSummary>,
}

impl Sinks {
    fn report(&mut self, scan: &ScanReport) {
        let spec = report::to_spec(scan, Time(Timestamp::now()));
        if self.last_summary != Some(spec.summary) {
            let s = spec.summary;
            tracing::info!(
                containers = s.containers,
                findings = s.findings,
                unrepaired = s.unrepaired,
                repaired = s.repaired,
                "report"
            );
            self.last_summary = Some(s);
        }
        if let Some((path, gate)) = &mut self.file {
            let now = Instant::now();
            if gate.decide(&spec, now) != Gate::Skip {
                let obj = NodeRuntimeReport::new(&self.node_name, spec.clone());
                match report::write_file(path, &obj) {
                    Ok(()) => gate.written(&spec, now),
                    Err(e) => tracing::warn!(error = %Chain(&e), "report file not written"),
                }
            }
        }
        match &self.api {
            // The publisher marks the agent ready after its first apply.
            Some(tx) => {
                tx.send_replace(Some(spec));
            }
            None => self.health.set_ready(),
        }
    }

    /// Queue (or, standalone, log) events; never waits on the API server.
    fn events(&self, events: &[NodeEvent]) {
        match &self.events {
            Some(queue) => queue.send(events),
            None => events::log(events),
        }
    }
}

fn lock(m: &Mutex<Engine>) -> std::sync::MutexGuard<'_, Engine> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Run `f` on the engine on the blocking pool. `None` if it panicked (a
/// bug; logged, and the loop goes on: `/healthz` turns red if it keeps
/// happening).
async fn on_engine<T: Send + 'static>(
    engine: &Arc<Mutex<Engine>>,
    f: impl FnOnce(&mut Engine) -> T + Send + 'static,
) -> Option<T> {
    let e = Arc::clone(engine);
    let task = tokio::task::spawn_blocking(move || f(&mut lock(&e)));
    match task.await {
        Ok(v) => Some(v),
        Err(err) => {
            tracing::error!(error = %err, "scan or repair panicked");
            None
        }
    }
}

async fn agent(args: AgentArgs) -> Result<(), AgentError> {
    let node_name = node_name(&args)?;
    let root = args.node.root();
    let procfs = Procfs::new(root.clone());
    let markers = args.node.marker_dir();
    thaw_left_frozen(&markers, &procfs);

    let abandon = Arc::new(AtomicBool::new(false));
    let (stop_tx, mut stop) = watch::channel(false);
    stop_on_signals(stop_tx, Arc::clone(&abandon))?;

    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    let health = Arc::new(Health::new(args.interval * 3 + Duration::from_secs(60)));
    if let MetricsAddr::On(addr) = args.metrics_addr {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| AgentError::Listen { addr, source })?;
        let local = listener.local_addr().unwrap_or(addr);
        tracing::info!(addr = %local, "serving /metrics, /healthz, /readyz");
        tokio::spawn(server::serve(
            listener,
            Arc::new(registry),
            Arc::clone(&health),
            stop.clone(),
        ));
    }

    let (policy_tx, mut policy_rx) = watch::channel::<Option<AgentPolicy>>(None);
    let mut sinks = Sinks {
        node_name: node_name.clone(),
        file: args
            .report_file
            .clone()
            .map(|p| (p, ReportGate::new(Duration::ZERO, args.report_heartbeat))),
        api: None,
        events: None,
        health: Arc::clone(&health),
        last_summary: None,
    };
    // Standalone keeps the sender so that the policy never "closes".
    let mut _standalone_policy = None;
    if args.standalone {
        let policy = match &args.policy {
            Some(p) => {
                let rp = policy_file::load_policy(p)?;
                AgentPolicy::from_effective(&warden_api::merge([&rp]))
            }
            None => AgentPolicy::default(),
        };
        tracing::info!(node = %node_name, enforce = policy.enforce, sources = ?policy.sources, "standalone");
        policy_tx.send_replace(Some(policy));
        _standalone_policy = Some(policy_tx);
    } else {
        let client = ::kube::Client::try_default()
            .await
            .map_err(AgentError::Client)?;
        let (node_tx, node_rx) = watch::channel(None);
        // The policy of the last run, until the API server answers: a
        // restart during an outage keeps Enforce where it was enforced.
        let last = root.join(args.node.state_dir.join(last_policy::FILE));
        if let Some(kept) = last_policy::load(&last, &node_name) {
            let policy = AgentPolicy::from_effective(&warden_api::merge(&kept));
            tracing::info!(sources = ?policy.sources, enforce = policy.enforce, "the last policy applies until the API server answers");
            policy_tx.send_replace(Some(policy));
        }
        tokio::spawn(kube::follow_policies(
            client.clone(),
            node_name.clone(),
            node_tx,
            policy_tx,
            Some(last),
        ));
        let (pods, pod_stream) = kube::pods(client.clone(), &node_name);
        tokio::spawn(pod_stream.for_each(|()| futures::future::ready(())));
        let (spec_tx, spec_rx) = watch::channel(None);
        let ready = Arc::clone(&health);
        tokio::spawn(report::publish_loop(
            client.clone(),
            node_rx.clone(),
            spec_rx,
            ReportGate::new(args.report_min_interval, args.report_heartbeat),
            report::APPLY_TIMEOUT,
            move || ready.set_ready(),
        ));
        sinks.api = Some(spec_tx);
        sinks.events = Some(EventQueue::spawn(
            EventSink::new(
                ::kube::runtime::events::Recorder::new(
                    client,
                    ::kube::runtime::events::Reporter {
                        controller: report::FIELD_MANAGER.into(),
                        instance: Some(node_name.clone()),
                    },
                ),
                node_rx,
                pods,
            ),
            EVENT_QUEUE,
            EVENT_TIMEOUT,
        ));
        tracing::info!(node = %node_name, "following RuntimePolicies; built-in defaults (Audit) until they are listed");
    }

    let wake = Arc::new(Notify::new());
    let triggers = if args.no_watch {
        None
    } else {
        let specs = TreeSpec::for_node(
            &args.node.runc_roots,
            &args.node.crun_roots,
            &args.node.containerd_runc_root,
            &args.node.containerd_tasks,
            &args.systemd_transient,
        );
        match Triggers::start(root.clone(), specs, args.bpf_poll, Arc::clone(&wake)) {
            Ok(t) => {
                tracing::info!(watched = t.watched(), bpf_poll = ?args.bpf_poll, "watching for changes");
                Some(t)
            }
            Err(e) => {
                tracing::warn!(error = %e, "inotify unavailable: scanning on the timer only");
                None
            }
        }
    };

    let engine = Arc::new(Mutex::new(Engine::new(args.node.scan_options())));
    let mut seen = Seen::default();
    let mut trigger = Trigger::Start;
    let mut last_start: Option<Instant> = None;
    let mut last_end = Instant::now();
    let mut policy_open = true;
    loop {
        if last_start.is_some() {
            let next_tick = last_end + args.interval;
            trigger = tokio::select! {
                _ = stop.wait_for(|s| *s) => break,
                () = wake.notified() => Trigger::Change,
                () = tokio::time::sleep_until(next_tick.into()) => Trigger::Timer,
                r = policy_rx.changed(), if policy_open => match r {
                    Ok(()) => Trigger::Policy,
                    Err(_) => {
                        policy_open = false;
                        continue;
                    }
                },
            };
            if trigger == Trigger::Change {
                let not_before = change_scan_at(Instant::now(), last_end);
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => break,
                    () = tokio::time::sleep_until(not_before.into()) => {}
                }
                // Changes seen while settling are covered by this scan.
                let _ = wake.notified().now_or_never();
            }
        }
        let policy = policy_rx.borrow_and_update().clone().unwrap_or_default();
        last_start = Some(Instant::now());
        let t0 = Instant::now();
        let scan_policy = policy.clone();
        let mode = if scan_policy.enforce {
            Mode::Enforce
        } else {
            Mode::Report
        };
        let Some(planned) = on_engine(&engine, move |e| e.scan(&scan_policy.check, mode)).await
        else {
            last_end = Instant::now();
            continue;
        };
        metrics.scanned(trigger, t0.elapsed(), &planned.report);
        tracing::debug!(trigger = ?trigger, took_ms = t0.elapsed().as_millis() as u64, "scanned");
        if let Some(t) = &triggers {
            t.update(&planned.report);
        }
        let found = seen.found(&planned.report);
        if planned.has_work() && !abandon.load(Ordering::SeqCst) {
            // The finding is reported before the repair, which may take a
            // moment and is reported again after the rescan.
            sinks.report(&planned.report);
            sinks.events(&found);
            let flag = Arc::clone(&abandon);
            let repair_policy = policy.clone();
            let limits = Limits {
                max_concurrent: repair_policy.max_concurrent_repairs,
                ..Limits::default()
            };
            let work = on_engine(&engine, move |e| {
                e.repair(planned, &repair_policy.check, &limits, &flag)
            });
            let round = match tokio::time::timeout(STOP_WAIT * 3, work).await {
                Ok(Some(r)) => r,
                Ok(None) => continue,
                Err(_) => {
                    // The workers must not start another repair: the round
                    // ends with what is running, whose freezes keep their
                    // markers locked (the exit sweep leaves those alone).
                    abandon.store(true, Ordering::SeqCst);
                    tracing::error!("a repair round did not finish in a minute; stopping");
                    break;
                }
            };
            for a in &round.attempts {
                tracing::info!(
                    check = %a.finding.check,
                    container = a.finding.container.as_ref().map(|c| c.id.as_str()).unwrap_or("-"),
                    result = a.result.as_str(),
                    note = %a.note,
                    "repair"
                );
            }
            if round.abandoned > 0 {
                tracing::info!(
                    abandoned = round.abandoned,
                    "repairs not run this cycle (stopping, or another Warden was repairing)"
                );
            }
            metrics.repaired(&round.attempts);
            metrics.findings(&round.report);
            if let Some(t) = &triggers {
                t.update(&round.report);
            }
            sinks.report(&round.report);
            sinks.events(&events::repaired(&round.attempts, &round.report));
        } else {
            sinks.report(&planned.into_round().report);
            sinks.events(&found);
        }
        health.progress();
        last_end = Instant::now();
        if *stop.borrow() {
            break;
        }
    }

    drop(triggers);
    // A marker naming this process means one of our repairs froze a cgroup
    // and did not get to thaw it: thaw it now.
    let n = thaw_left_frozen(&markers, &procfs);
    if n > 0 {
        tracing::warn!(thawed = n, "thawed cgroups on the way out");
    }
    tracing::info!("stopped");
    Ok(())
}
