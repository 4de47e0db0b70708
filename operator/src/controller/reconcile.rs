//! One reconcile of one `RuntimePolicy`: sum up the selected nodes' reports
//! into the policy's status, record Events for condition changes. Errors
//! requeue with a per-policy exponential backoff. (The agent DaemonSet is
//! applied by [`super::keeper`], not per reconcile.)

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::Store;
use kube::{Client, Resource, ResourceExt};
use warden_api::policy::condition;
use warden_api::{NodeRuntimeReport, RuntimePolicy, RuntimePolicyStatus};

use super::daemonset::{agent_daemonset, AgentConfig};
use super::status::{self, NodeView};
use crate::error_chain::Chain;

/// Field manager of every server-side apply the operator makes.
pub const MANAGER: &str = "warden-operator";

/// First retry after a failed reconcile; doubled per further failure.
pub const BACKOFF_BASE: Duration = Duration::from_secs(1);
/// Longest wait between retries of a failing reconcile.
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// How long a reconcile waits for the node and report caches' first list.
pub const CACHE_WAIT: Duration = Duration::from_secs(30);
/// When to try again if they are still not ready.
pub const CACHE_RETRY: Duration = Duration::from_secs(5);

/// Everything a reconcile needs, shared by all reconciles.
pub struct Context {
    /// API client.
    pub client: Client,
    /// Nodes (metadata only), kept by a reflector.
    pub nodes: Store<PartialObjectMeta<Node>>,
    /// Reports, kept by a reflector.
    pub reports: Store<NodeRuntimeReport>,
    /// Records Events on policies.
    pub recorder: Recorder,
    /// A report older than this counts as missing.
    pub stale_after: Duration,
    /// Reconcile every policy at least this often.
    pub resync: Duration,
    /// How long a reconcile waits for the caches' first list
    /// ([`CACHE_WAIT`] outside tests).
    pub cache_wait: Duration,
    /// The time status conditions are stamped with (fixed in tests).
    pub clock: fn() -> Timestamp,
    /// Consecutive failures per policy, for the backoff.
    pub failures: Mutex<HashMap<String, u32>>,
}

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The agent DaemonSet could not be applied.
    #[error("apply agent DaemonSet {namespace}/{name}")]
    ApplyDaemonSet {
        /// DaemonSet namespace.
        namespace: String,
        /// DaemonSet name.
        name: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// The policy's status could not be written.
    #[error("write status of RuntimePolicy {name}")]
    PatchStatus {
        /// Policy name.
        name: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
}

/// Server-side apply of the agent DaemonSet. Idempotent: an unchanged
/// object is a no-op on the server.
pub async fn apply_agent(
    client: &Client,
    agent: &AgentConfig,
) -> Result<DaemonSet, ReconcileError> {
    let api: Api<DaemonSet> = Api::namespaced(client.clone(), &agent.namespace);
    api.patch(
        &agent.name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(agent_daemonset(agent)),
    )
    .await
    .map_err(|source| ReconcileError::ApplyDaemonSet {
        namespace: agent.namespace.clone(),
        name: agent.name.clone(),
        source,
    })
}

/// The status `policy` should have now, from the reflectors' view.
pub fn desired_status(policy: &RuntimePolicy, ctx: &Context) -> RuntimePolicyStatus {
    let nodes = ctx.nodes.state();
    let reports = ctx.reports.state();
    let by_node: BTreeMap<&str, &warden_api::NodeRuntimeReportSpec> = reports
        .iter()
        .filter_map(|r| Some((r.metadata.name.as_deref()?, &r.spec)))
        .collect();
    let no_labels = BTreeMap::new();
    let views = nodes.iter().filter_map(|n| {
        Some(NodeView {
            name: n.metadata.name.as_deref()?,
            labels: n.metadata.labels.as_ref().unwrap_or(&no_labels),
        })
    });
    let now = (ctx.clock)();
    let tally = status::tally(
        &policy.spec.node_selector,
        views,
        &by_node,
        now,
        ctx.stale_after,
    );
    status::status(policy, &tally, Time(now))
}

/// The Events a status change deserves: one per condition whose status
/// changed. A condition seen for the first time is announced only when it
/// is bad news (Ready=False, Degraded=True), so a new healthy policy makes
/// no noise.
pub fn condition_events(
    old: Option<&RuntimePolicyStatus>,
    new: &RuntimePolicyStatus,
) -> Vec<Event> {
    new.conditions
        .iter()
        .filter_map(|c| {
            let bad = (c.type_ == condition::READY && c.status == "False")
                || (c.type_ == condition::DEGRADED && c.status == "True");
            let before = status::condition_status(old, &c.type_);
            let announce = match before {
                Some(b) => b != c.status,
                None => bad,
            };
            announce.then(|| Event {
                type_: if bad {
                    EventType::Warning
                } else {
                    EventType::Normal
                },
                reason: c.reason.clone(),
                note: Some(c.message.clone()),
                action: "Reconcile".into(),
                secondary: None,
            })
        })
        .collect()
}

async fn publish(ctx: &Context, policy: &RuntimePolicy, event: &Event) {
    // Events are for people; failing to record one must not fail the
    // reconcile (RBAC on events, a full namespace quota).
    if let Err(e) = ctx.recorder.publish(event, &policy.object_ref(&())).await {
        tracing::warn!(policy = %policy.name_any(), reason = %event.reason, error = %e, "could not record Event");
    }
}

/// Reconcile one policy.
#[tracing::instrument(skip_all, fields(policy = %policy.name_any(), generation = policy.metadata.generation))]
pub async fn reconcile(
    policy: Arc<RuntimePolicy>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let name = policy.name_any();

    // Until both reflectors have listed once, counts would be wrong (an
    // operator restart would flap every policy to "no nodes selected").
    let caches = async {
        ctx.nodes.wait_until_ready().await?;
        ctx.reports.wait_until_ready().await
    };
    if !matches!(
        tokio::time::timeout(ctx.cache_wait, caches).await,
        Ok(Ok(()))
    ) {
        tracing::debug!("node and report caches not ready yet");
        return Ok(Action::requeue(CACHE_RETRY));
    }

    let desired = desired_status(&policy, &ctx);
    if policy.status.as_ref() != Some(&desired) {
        let api: Api<RuntimePolicy> = Api::all(ctx.client.clone());
        let body = serde_json::json!({
            "apiVersion": RuntimePolicy::api_version(&()),
            "kind": RuntimePolicy::kind(&()),
            "status": desired,
        });
        api.patch_status(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
        .map_err(|source| ReconcileError::PatchStatus {
            name: name.clone(),
            source,
        })?;
        tracing::info!(nodes = ?desired.nodes, "status updated");
        for event in condition_events(policy.status.as_ref(), &desired) {
            publish(&ctx, &policy, &event).await;
        }
    }

    ctx.failures
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&name);
    Ok(Action::requeue(ctx.resync))
}

/// Wait before retry number `failures` (1 for the first failure):
/// 1 s, 2 s, 4 s, ... up to 5 minutes.
pub fn backoff(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    BACKOFF_BASE.saturating_mul(1 << exp).min(BACKOFF_MAX)
}

/// After a failed reconcile: log, count the failure, requeue with backoff.
pub fn error_policy(
    policy: Arc<RuntimePolicy>,
    error: &ReconcileError,
    ctx: Arc<Context>,
) -> Action {
    let name = policy.name_any();
    let failures = {
        let mut map = ctx.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let n = map.entry(name.clone()).or_insert(0);
        *n = n.saturating_add(1);
        *n
    };
    let wait = backoff(failures);
    tracing::warn!(policy = %name, error = %Chain(error), failures, retry_in = ?wait, "reconcile failed");
    Action::requeue(wait)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_cap() {
        let waits: Vec<u64> = (1..=10).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300]);
        assert_eq!(backoff(u32::MAX), BACKOFF_MAX);
        assert_eq!(backoff(0), BACKOFF_BASE);
    }
}
