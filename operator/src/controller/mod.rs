//! `warden operator`: the cluster side of Runtime Warden.
//!
//! The agent DaemonSet is applied at start and again whenever it is edited
//! or deleted (a watch on it, see [`keeper`]). One kube-runtime `Controller`
//! reconciles every `RuntimePolicy`: it writes each policy's status from the
//! nodes it selects and their `NodeRuntimeReport`s. Nodes and reports are
//! watched through reflectors; a change to either (a node added, removed or
//! relabelled; a report written) reconciles all policies, and every policy is
//! reconciled at least every `--resync-seconds` so stale reports show.
//!
//! Only the replica holding the leader Lease runs the controller. It stops
//! on SIGTERM/SIGINT (finishing running reconciles, then releasing the
//! Lease) and exits with an error when it loses the Lease, so that the pod
//! restarts as a candidate.
//!
//! Permissions it needs (for the chart's ClusterRole/Role):
//!
//! | resource | verbs | why |
//! |---|---|---|
//! | `runtimewarden.io` `runtimepolicies` | get, list, watch | the reconciled objects |
//! | `runtimewarden.io` `runtimepolicies/status` | patch | status by server-side apply |
//! | `runtimewarden.io` `noderuntimereports` | list, watch | aggregation |
//! | core `nodes` | list, watch | which nodes a policy selects (metadata only) |
//! | `apps` `daemonsets` in its namespace | get, list, watch, create, patch | the agent, by server-side apply (which creates it the first time); watched to undo edits and deletions |
//! | `coordination.k8s.io` `leases` in its namespace | get, create, update | leader election |
//! | `events.k8s.io` `events` in `default` | create, patch | Events on (cluster-scoped) policies |

pub mod daemonset;
pub mod keeper;
pub mod leader;
pub mod reconcile;
pub mod status;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{reflector, Controller, WatchStreamExt};
use kube::{Client, ResourceExt};
use tokio::sync::watch;
use warden_api::{NodeRuntimeReport, RuntimePolicy};

use crate::cli::OperatorArgs;
use crate::error_chain::Chain;
use daemonset::AgentConfig;
use leader::{Elector, HoldEnd, LeaderError, LeaseTimings};
use reconcile::{error_policy, reconcile, Context};

/// Why the operator stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// The async runtime could not start.
    #[error("start the async runtime")]
    Runtime(#[source] std::io::Error),
    /// No usable cluster configuration (in-cluster or kubeconfig).
    #[error("connect to the cluster")]
    Client(#[source] kube::Error),
    /// Signal handlers could not be installed.
    #[error("install signal handlers")]
    Signals(#[source] std::io::Error),
    /// No `--identity` and no hostname to use instead.
    #[error("no --identity (POD_NAME) and no hostname to use instead")]
    NoIdentity,
    /// Leader election is misconfigured.
    #[error(transparent)]
    Leader(#[from] LeaderError),
    /// The Lease was lost: another replica may act now, so this one stops.
    #[error("lost the leader Lease; exiting so that this replica restarts as a candidate")]
    LostLease,
}

impl OperatorError {
    /// What the person who started the operator can do about this error,
    /// when the error alone does not make it obvious.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            Self::Client(_) => Some(crate::exit::NO_CLUSTER_HINT),
            _ => None,
        }
    }
}

/// Run `warden operator` until SIGTERM/SIGINT or loss of the Lease.
pub fn run(args: &OperatorArgs) -> Result<(), OperatorError> {
    // One thread is plenty: the work is waiting on the API server.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(OperatorError::Runtime)?
        .block_on(operate(args))
}

fn identity(args: &OperatorArgs) -> Result<String, OperatorError> {
    if let Some(id) = args.identity.as_ref().filter(|s| !s.is_empty()) {
        return Ok(id.clone());
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map_err(|_| OperatorError::NoIdentity)?;
    let host = host.trim();
    if host.is_empty() {
        return Err(OperatorError::NoIdentity);
    }
    // Two replicas on one host (tests, a laptop) still differ.
    Ok(format!("{host}-{}", std::process::id()))
}

/// Set `stop` on the first SIGTERM or SIGINT.
fn stop_on_signals(stop: watch::Sender<bool>) -> Result<(), OperatorError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(OperatorError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(OperatorError::Signals)?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = int.recv() => tracing::info!("SIGINT: shutting down"),
        }
        let _ = stop.send(true);
    });
    Ok(())
}

async fn operate(args: &OperatorArgs) -> Result<(), OperatorError> {
    let timings = LeaseTimings {
        duration: Duration::from_secs(args.lease_duration_seconds.into()),
        renew_deadline: Duration::from_secs(args.renew_deadline_seconds.into()),
        retry: Duration::from_secs(args.retry_period_seconds.into()),
    }
    .validate()?;
    let identity = identity(args)?;
    let (stop_tx, mut stop) = watch::channel(false);
    stop_on_signals(stop_tx)?;

    let client = Client::try_default().await.map_err(OperatorError::Client)?;
    let elector = Elector::new(
        Api::<Lease>::namespaced(client.clone(), &args.namespace),
        &args.lease_name,
        &identity,
        timings,
    );
    tracing::info!(identity = %identity, lease = %args.lease_name, namespace = %args.namespace, "waiting for leadership");
    if !elector.acquire(&mut stop).await {
        return Ok(());
    }

    // The agent runs even before the first policy exists: with no policy it
    // applies the built-in defaults (Audit), i.e. it reports. The keeper
    // applies its DaemonSet as soon as its watch has listed.
    let agent = AgentConfig::from_args(args);

    // `halt` turns true when the controller must stop: shutdown requested,
    // or the Lease lost. From then on nothing renews the Lease, so running
    // reconciles get only the margin before another replica may take it
    // over; whatever is still running then is dropped (cancelled).
    let margin = timings.margin();
    let (halt_tx, halt) = watch::channel(false);
    let controller = run_controller(client, agent, args, &identity, halt, margin);
    tokio::pin!(controller);
    let holder = elector.hold(&mut stop);
    tokio::pin!(holder);
    let mut controller_done = false;
    let end = tokio::select! {
        end = &mut holder => end,
        () = &mut controller => {
            controller_done = true;
            holder.await
        }
    };
    let _ = halt_tx.send(true);
    if !controller_done && tokio::time::timeout(margin, &mut controller).await.is_err() {
        tracing::warn!(margin = ?margin, "reconciles still running when leadership ended; cancelled them");
    }
    match end {
        HoldEnd::Shutdown => {
            if let Err(e) = elector.release().await {
                tracing::warn!(error = %Chain(&e), "could not release the Lease; another replica takes over when it expires");
            }
            tracing::info!("stopped");
            Ok(())
        }
        HoldEnd::Lost => Err(OperatorError::LostLease),
    }
}

/// Emit `()` when the set of nodes or any node's labels change: the only
/// node changes that affect a policy's status. (Node status heartbeats
/// change `resourceVersion` every few minutes and are ignored.)
fn node_changes<S>(events: S) -> impl Stream<Item = ()>
where
    S: Stream<Item = Result<Event<PartialObjectMeta<Node>>, watcher::Error>>,
{
    let mut seen: HashMap<String, BTreeMap<String, String>> = HashMap::new();
    events.filter_map(move |event| {
        let changed = match event {
            Ok(Event::Apply(n)) => {
                let labels = n.metadata.labels.clone().unwrap_or_default();
                seen.insert(n.name_any(), labels.clone()) != Some(labels)
            }
            Ok(Event::Delete(n)) => {
                seen.remove(&n.name_any());
                true
            }
            Ok(Event::InitApply(n)) => {
                seen.insert(n.name_any(), n.metadata.labels.clone().unwrap_or_default());
                false
            }
            Ok(Event::InitDone) => true,
            Ok(Event::Init) | Err(_) => false,
        };
        futures::future::ready(changed.then_some(()))
    })
}

async fn run_controller(
    client: Client,
    agent: AgentConfig,
    args: &OperatorArgs,
    identity: &str,
    mut halt: watch::Receiver<bool>,
    margin: Duration,
) {
    let (nodes, node_writer) = reflector::store();
    let node_events = reflector(
        node_writer,
        // Metadata only: labels are all a policy looks at, and full Node
        // objects (images, conditions) are large.
        watcher::watcher(
            Api::<PartialObjectMeta<Node>>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff(),
    );
    let (reports, report_writer) = reflector::store();
    let report_events = reflector(
        report_writer,
        watcher::watcher(
            Api::<NodeRuntimeReport>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff(),
    )
    .touched_objects()
    .map(|_| ());

    // The agent DaemonSet, watched (metadata only) so that an edit or a
    // deletion is undone.
    let agent_events = watcher::watcher(
        Api::<PartialObjectMeta<DaemonSet>>::namespaced(client.clone(), &agent.namespace),
        watcher::Config::default().fields(&format!("metadata.name={}", agent.name)),
    )
    .default_backoff();
    let keeper = keeper::keep_applied(
        client.clone(),
        agent,
        keeper::agent_changes(agent_events),
        halt.clone(),
    );

    let ctx = Arc::new(Context {
        client: client.clone(),
        nodes,
        reports,
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: reconcile::MANAGER.into(),
                instance: Some(identity.to_owned()),
            },
        ),
        stale_after: Duration::from_secs(args.report_stale_after_seconds.into()),
        resync: Duration::from_secs(args.resync_seconds.into()),
        // A reconcile waiting for the caches must still finish within the
        // margin a stopping leader has.
        cache_wait: reconcile::CACHE_WAIT.min(margin),
        clock: Timestamp::now,
        failures: Mutex::new(HashMap::new()),
    });

    let halted = async move {
        let _ = halt.wait_for(|h| *h).await;
    };
    let controller = Controller::new(
        Api::<RuntimePolicy>::all(client),
        watcher::Config::default(),
    )
    // A burst of report writes (a rollout, a fleet-wide scan) becomes
    // one reconcile per policy.
    .with_config(kube::runtime::controller::Config::default().debounce(Duration::from_secs(2)))
    .reconcile_all_on(node_changes(node_events))
    .reconcile_all_on(report_events)
    .graceful_shutdown_on(halted)
    .run(reconcile, error_policy, ctx)
    .for_each(|result| async move {
        match result {
            Ok((obj, action)) => tracing::debug!(policy = %obj.name, ?action, "reconciled"),
            // The controller's error says only which object failed; the
            // chain says why.
            Err(e) => tracing::debug!(error = %Chain(&e), "controller"),
        }
    });
    futures::join!(controller, keeper);
}
