//! What the agent watches in the cluster, and only that:
//!
//! - its own Node (field selector `metadata.name=<node>`, metadata only):
//!   labels for the policies' `nodeSelector`, uid to own the report;
//! - every RuntimePolicy (cluster-scoped and few), merged strictest-wins over
//!   those whose `nodeSelector` matches the node's labels;
//! - the pods of this node only (field selector `spec.nodeName=<node>`,
//!   metadata only), to attach events to the right pod. Never every pod of
//!   the cluster: the Security Profiles Operator's daemon ran out of memory
//!   at 155 nodes by caching them all.

use std::collections::BTreeMap;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, reflector, Store};
use kube::runtime::watcher::{self, watcher, Event};
use kube::runtime::WatchStreamExt;
use kube::Client;
use tokio::sync::watch;
use warden_api::merge::{for_node, merge};
use warden_api::RuntimePolicy;

use super::config::AgentPolicy;

/// Watch only this node.
pub fn node_watch_config(node: &str) -> watcher::Config {
    watcher::Config::default().fields(&format!("metadata.name={node}"))
}

/// Watch only the pods scheduled to this node.
pub fn pod_watch_config(node: &str) -> watcher::Config {
    watcher::Config::default().fields(&format!("spec.nodeName={node}"))
}

/// A store of this node's pods (metadata only) and the stream that keeps
/// it current; the stream must be polled (spawn it).
pub fn pods(
    client: Client,
    node: &str,
) -> (
    Store<PartialObjectMeta<Pod>>,
    impl Stream<Item = ()> + Send + 'static,
) {
    let (store, writer) = reflector::store();
    let stream = reflector(
        writer,
        watcher(
            Api::<PartialObjectMeta<Pod>>::all(client),
            pod_watch_config(node),
        )
        .default_backoff(),
    )
    .map(|r| {
        if let Err(e) = r {
            tracing::debug!(error = %e, "pod watch");
        }
    });
    (store, stream)
}

enum Change {
    Node(Option<Box<PartialObjectMeta<Node>>>),
    Policies { synced: bool },
    Nothing,
}

/// Follow this node and the RuntimePolicies; publish the node (for the
/// report's owner and node events) and the merged policy whenever either
/// changes. Runs until the receivers are gone.
pub async fn follow_policies(
    client: Client,
    node_name: String,
    node_tx: watch::Sender<Option<Node>>,
    policy_tx: watch::Sender<Option<AgentPolicy>>,
    keep_at: Option<std::path::PathBuf>,
) {
    let nodes = watcher(
        Api::<PartialObjectMeta<Node>>::all(client.clone()),
        node_watch_config(&node_name),
    )
    .default_backoff()
    .map(|e| match e {
        Ok(Event::Apply(n) | Event::InitApply(n)) => Change::Node(Some(Box::new(n))),
        Ok(Event::Delete(_)) => Change::Node(None),
        Ok(Event::Init | Event::InitDone) => Change::Nothing,
        Err(e) => {
            tracing::warn!(error = %e, "node watch");
            Change::Nothing
        }
    });
    let (store, writer) = reflector::store::<RuntimePolicy>();
    let policies = reflector(
        writer,
        watcher(
            Api::<RuntimePolicy>::all(client),
            watcher::Config::default(),
        )
        .default_backoff(),
    )
    .map(|e| match e {
        Ok(Event::InitDone) => Change::Policies { synced: true },
        Ok(Event::Apply(_) | Event::Delete(_)) => Change::Policies { synced: false },
        Ok(Event::Init | Event::InitApply(_)) => Change::Nothing,
        Err(e) => {
            tracing::warn!(error = %e, "RuntimePolicy watch");
            Change::Nothing
        }
    });
    let mut changes = std::pin::pin!(futures::stream::select(nodes, policies));
    let mut labels: Option<BTreeMap<String, String>> = None;
    let mut synced = false;
    while let Some(change) = changes.next().await {
        match change {
            Change::Node(Some(n)) => {
                labels = Some(n.metadata.labels.clone().unwrap_or_default());
                let node = Node {
                    metadata: n.metadata.clone(),
                    ..Node::default()
                };
                node_tx.send_if_modified(|cur| {
                    let changed = cur.as_ref() != Some(&node);
                    *cur = Some(node);
                    changed
                });
            }
            Change::Node(None) => {
                labels = None;
                node_tx.send_replace(None);
            }
            Change::Policies { synced: s } => synced |= s,
            Change::Nothing => continue,
        }
        // Until both the node and the full policy list are known, the
        // engine keeps the built-in defaults (Audit: report only).
        let (Some(labels), true) = (&labels, synced) else {
            continue;
        };
        let all = store.state();
        let selecting: Vec<&RuntimePolicy> =
            for_node(all.iter().map(AsRef::as_ref), labels).collect();
        let effective = merge(selecting.iter().copied());
        let policy = AgentPolicy::from_effective(&effective);
        policy_tx.send_if_modified(|cur| {
            if cur.as_ref() == Some(&policy) {
                return false;
            }
            // Kept for a restart while the API server is away.
            if let Some(path) = &keep_at {
                let owned: Vec<RuntimePolicy> = selecting.iter().map(|p| (*p).clone()).collect();
                if let Err(e) = super::last_policy::save(path, &node_name, &owned) {
                    tracing::warn!(path = %path.display(), error = %crate::error_chain::Chain(&e), "the policy is not kept for a restart");
                }
            }
            tracing::info!(sources = ?policy.sources, enforce = policy.enforce, "policy changed");
            *cur = Some(policy);
            true
        });
        if node_tx.is_closed() && policy_tx.is_closed() {
            return;
        }
    }
}
