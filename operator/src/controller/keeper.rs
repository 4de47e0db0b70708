//! Keeps the agent DaemonSet applied: at start (each time the watch has
//! listed) and whenever the DaemonSet's spec is changed or it is deleted by
//! someone else. Not on every policy reconcile: the DaemonSet does not
//! depend on any policy, and an apply per reconcile (every report write
//! reconciles every policy) was most of the operator's API traffic.

use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::DaemonSet;
use kube::core::PartialObjectMeta;
use kube::runtime::watcher::{self, Event};
use kube::Client;
use tokio::sync::watch;

use super::daemonset::AgentConfig;
use super::reconcile::{apply_agent, backoff};
use crate::error_chain::Chain;

/// Emit `()` when the agent DaemonSet must be applied (again): after each
/// complete list (start, relist after a watch error), when its generation
/// changes (a spec edit: ours, answered by a no-op apply, or anyone
/// else's, which is reverted) and when it is deleted. Status-only updates
/// (pods becoming ready) keep the generation and are ignored.
pub fn agent_changes<S>(events: S) -> impl Stream<Item = ()>
where
    S: Stream<Item = Result<Event<PartialObjectMeta<DaemonSet>>, watcher::Error>>,
{
    let mut generation: Option<i64> = None;
    events.filter_map(move |event| {
        let apply = match event {
            Ok(Event::Apply(ds)) => {
                let g = ds.metadata.generation;
                std::mem::replace(&mut generation, g) != g
            }
            Ok(Event::InitApply(ds)) => {
                generation = ds.metadata.generation;
                false
            }
            Ok(Event::Delete(_)) => {
                generation = None;
                true
            }
            Ok(Event::InitDone) => true,
            Ok(Event::Init) | Err(_) => false,
        };
        futures::future::ready(apply.then_some(()))
    })
}

/// Apply the agent DaemonSet each time `changes` asks for it, retrying a
/// failed apply with [`backoff`] until it succeeds or the next change comes,
/// until `changes` ends or `halt` turns true.
pub async fn keep_applied(
    client: Client,
    agent: AgentConfig,
    changes: impl Stream<Item = ()>,
    mut halt: watch::Receiver<bool>,
) {
    let mut changes = std::pin::pin!(changes);
    let mut pending = false;
    let mut failures: u32 = 0;
    loop {
        if pending {
            match apply_agent(&client, &agent).await {
                Ok(_) => {
                    pending = false;
                    failures = 0;
                    tracing::info!(namespace = %agent.namespace, name = %agent.name, "agent DaemonSet applied");
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(error = %Chain(&e), retry_in = ?backoff(failures), "agent DaemonSet not applied");
                }
            }
        }
        let wait = if pending {
            backoff(failures)
        } else {
            Duration::MAX
        };
        tokio::select! {
            change = changes.next() => match change {
                Some(()) => pending = true,
                None => return,
            },
            () = tokio::time::sleep(wait), if pending => {}
            _ = halt.wait_for(|h| *h) => return,
        }
    }
}
