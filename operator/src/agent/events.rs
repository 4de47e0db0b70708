//! Kubernetes Events: on the Pod when one of its containers has a new
//! finding, was repaired, or a repair failed; on the Node for new host
//! hazards. Findings are reported when they appear, not on every scan (the
//! report holds the current state; events are for the moment something
//! happened).

use std::collections::HashSet;

use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod};
use kube::core::PartialObjectMeta;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::{ObjectRef, Store};
use runtime_core::diagnose::{Finding, ScanReport, Severity};
use tokio::sync::watch;

use runtime_core::diagnose::FindingId;
use runtime_core::engine::{Attempt, AttemptResult};

/// Longest event note the API accepts is 1 kB; keep well under it.
const MAX_NOTE: usize = 900;

/// What an event is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A pod on this node.
    Pod {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// UID from the container's CRI annotations, when present.
        uid: Option<String>,
    },
    /// This node.
    Node,
}

/// One event to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeEvent {
    /// The object it is about.
    pub target: Target,
    /// Normal or Warning.
    pub warning: bool,
    /// `RuntimeHazardFound`, `RuntimeRepaired`, ...
    pub reason: &'static str,
    /// What the agent did: `Scan` or `Repair`.
    pub action: &'static str,
    /// The sentence `kubectl describe` shows.
    pub note: String,
}

/// Reason of a new finding on a container.
pub const FOUND: &str = "RuntimeHazardFound";
/// Reason of a successful repair.
pub const REPAIRED: &str = "RuntimeRepaired";
/// Reason of a failed repair.
pub const REPAIR_FAILED: &str = "RuntimeRepairFailed";
/// Event reason: a repair applied, but the rescan could not make the check.
pub const REPAIR_UNVERIFIED: &str = "RuntimeRepairUnverified";
/// Reason of a new host hazard on the node.
pub const NODE_HAZARD: &str = "NodeRuntimeHazard";

fn target_of(f: &Finding, scan_uid: impl Fn(&str) -> Option<String>) -> Option<Target> {
    match &f.container {
        None => Some(Target::Node),
        Some(c) => match (&c.pod_namespace, &c.pod_name) {
            (Some(ns), Some(name)) => Some(Target::Pod {
                namespace: ns.clone(),
                name: name.clone(),
                uid: scan_uid(&c.id),
            }),
            // A container outside Kubernetes: the report lists it, but
            // there is no object to attach an event to.
            _ => None,
        },
    }
}

fn describe(f: &Finding) -> String {
    let who = f
        .container
        .as_ref()
        .map(|c| match &c.container_name {
            Some(n) => format!("container {n} ({})", short(&c.id)),
            None => format!("container {}", short(&c.id)),
        })
        .unwrap_or_else(|| "node".into());
    cut(format!("{}: {who}: {}", f.check, f.message()))
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

fn cut(mut s: String) -> String {
    if s.len() > MAX_NOTE {
        let mut end = MAX_NOTE - 3;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push_str("...");
    }
    s
}

/// Findings seen in the previous scan, to tell new ones.
#[derive(Debug, Default)]
pub struct Seen(HashSet<FindingId>);

impl Seen {
    /// Events for the findings of `scan` (warning or worse) that the
    /// previous scan did not show; remembers this scan's findings.
    pub fn found(&mut self, scan: &ScanReport) -> Vec<NodeEvent> {
        let uid = |id: &str| {
            scan.discovered
                .iter()
                .find(|c| c.id == id)
                .and_then(|c| c.pod.as_ref())
                .and_then(|p| p.uid.clone())
        };
        let now: HashSet<FindingId> = scan.findings.iter().map(Finding::id).collect();
        let events = scan
            .findings
            .iter()
            .filter(|f| f.severity >= Severity::Warning && !self.0.contains(&f.id()))
            .filter_map(|f| {
                let target = target_of(f, uid)?;
                let reason = if target == Target::Node {
                    NODE_HAZARD
                } else {
                    FOUND
                };
                Some(NodeEvent {
                    target,
                    warning: true,
                    reason,
                    action: "Scan",
                    note: describe(f),
                })
            })
            .collect();
        self.0 = now;
        events
    }
}

/// Events for the repairs of one round.
pub fn repaired(attempts: &[Attempt], scan: &ScanReport) -> Vec<NodeEvent> {
    let uid = |id: &str| {
        scan.discovered
            .iter()
            .find(|c| c.id == id)
            .and_then(|c| c.pod.as_ref())
            .and_then(|p| p.uid.clone())
    };
    attempts
        .iter()
        .filter_map(|a| {
            let target = target_of(&a.finding, uid)?;
            let (warning, reason) = match a.result {
                AttemptResult::Repaired => (false, REPAIRED),
                AttemptResult::Failed => (true, REPAIR_FAILED),
                AttemptResult::Unverified => (true, REPAIR_UNVERIFIED),
            };
            let who = describe(&a.finding);
            Some(NodeEvent {
                target,
                warning,
                reason,
                action: "Repair",
                note: cut(format!("{who} -- {}", a.note)),
            })
        })
        .collect()
}

/// Records events through the API server.
pub struct EventSink {
    recorder: Recorder,
    node: watch::Receiver<Option<Node>>,
    pods: Store<PartialObjectMeta<Pod>>,
}

impl EventSink {
    /// A sink recording as `recorder`, about the node `node` holds once it
    /// is known, resolving pods through the store of this node's pods.
    pub fn new(
        recorder: Recorder,
        node: watch::Receiver<Option<Node>>,
        pods: Store<PartialObjectMeta<Pod>>,
    ) -> Self {
        Self {
            recorder,
            node,
            pods,
        }
    }

    fn reference(&self, t: &Target) -> Option<ObjectReference> {
        match t {
            Target::Node => {
                let node = self.node.borrow();
                let meta = &node.as_ref()?.metadata;
                Some(ObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Node".into()),
                    name: meta.name.clone(),
                    uid: meta.uid.clone(),
                    ..ObjectReference::default()
                })
            }
            Target::Pod {
                namespace,
                name,
                uid,
            } => {
                let cached = self
                    .pods
                    .get(&ObjectRef::new(name).within(namespace))
                    .and_then(|p| p.metadata.uid.clone());
                // A pod neither on this node (per the API) nor named with a
                // uid is not one we can safely attach an event to.
                let uid = cached.or_else(|| uid.clone())?;
                Some(ObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Pod".into()),
                    namespace: Some(namespace.clone()),
                    name: Some(name.clone()),
                    uid: Some(uid),
                    ..ObjectReference::default()
                })
            }
        }
    }

    /// Record `events`; failures are logged (an event is best effort).
    pub async fn publish(&self, events: &[NodeEvent]) {
        for e in events {
            let Some(reference) = self.reference(&e.target) else {
                tracing::debug!(reason = e.reason, note = %e.note, "no object to attach the event to");
                continue;
            };
            let ev = Event {
                type_: if e.warning {
                    EventType::Warning
                } else {
                    EventType::Normal
                },
                reason: e.reason.into(),
                note: Some(e.note.clone()),
                action: e.action.into(),
                secondary: None,
            };
            if let Err(err) = self.recorder.publish(&ev, &reference).await {
                tracing::warn!(reason = e.reason, error = %err, "event not recorded");
            }
        }
    }
}

/// Events on their way to the API server: a bounded queue drained by a task
/// of its own, each call under a deadline, so that a hung or half-open API
/// connection (kube's client has no read timeout) never holds up a scan or a
/// repair. When the queue is full, new events are dropped with a warning:
/// an Event is best effort, a repair is not.
#[derive(Debug, Clone)]
pub struct EventQueue {
    tx: tokio::sync::mpsc::Sender<Vec<NodeEvent>>,
}

/// Batches of events the queue holds before it drops new ones.
pub const EVENT_QUEUE: usize = 64;
/// The deadline of one event write.
pub const EVENT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

impl EventQueue {
    /// Start the task that records through `sink`, `per_call` at most per
    /// event, holding at most `capacity` batches.
    pub fn spawn(sink: EventSink, capacity: usize, per_call: std::time::Duration) -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<NodeEvent>>(capacity.max(1));
        tokio::spawn(async move {
            while let Some(batch) = rx.recv().await {
                for e in batch {
                    let one = std::slice::from_ref(&e);
                    if tokio::time::timeout(per_call, sink.publish(one))
                        .await
                        .is_err()
                    {
                        tracing::warn!(reason = e.reason, after = ?per_call, "event not recorded: the API server did not answer in time");
                    }
                }
            }
        });
        Self { tx }
    }

    /// Queue `events`; never waits.
    pub fn send(&self, events: &[NodeEvent]) {
        if events.is_empty() {
            return;
        }
        if let Err(e) = self.tx.try_send(events.to_vec()) {
            tracing::warn!(dropped = events.len(), reason = %e, "events dropped: the API server is not keeping up");
        }
    }
}

/// Log `events` (standalone mode has no API server to record them).
pub fn log(events: &[NodeEvent]) {
    for e in events {
        let target = match &e.target {
            Target::Node => "node".to_owned(),
            Target::Pod {
                namespace, name, ..
            } => format!("pod {namespace}/{name}"),
        };
        if e.warning {
            tracing::warn!(reason = e.reason, %target, "{}", e.note);
        } else {
            tracing::info!(reason = e.reason, %target, "{}", e.note);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runtime_core::diagnose::ContainerRef;
    use runtime_core::testing::fixtures;

    /// A finding of `check` on `container` (id, and pod namespace/name).
    fn finding(
        container: Option<(&str, Option<(&str, &str)>)>,
        check: &str,
        sev: Severity,
    ) -> Finding {
        fixtures::finding(
            check.parse().expect("a check id"),
            sev,
            container.map(|(id, pod)| ContainerRef {
                id: id.into(),
                runtime: "runc".into(),
                pod_namespace: pod.map(|p| p.0.into()),
                pod_name: pod.map(|p| p.1.into()),
                container_name: Some("app".into()),
            }),
        )
    }

    use fixtures::scan_with as scan;

    #[test]
    fn only_new_findings_make_events() {
        let mut seen = Seen::default();
        let pod = finding(
            Some(("c1", Some(("shop", "web-0")))),
            "device-access-broken",
            Severity::Error,
        );
        let bare = finding(Some(("c2", None)), "device-access-broken", Severity::Error);
        let host = finding(None, "device-update-jitter", Severity::Warning);
        let info = finding(
            Some(("c3", Some(("shop", "web-1")))),
            "seccomp-duplicate-rule",
            Severity::Info,
        );
        let ev = seen.found(&scan(vec![
            pod.clone(),
            bare.clone(),
            host.clone(),
            info.clone(),
        ]));
        assert_eq!(ev.len(), 2, "{ev:?}");
        assert_eq!(ev[0].reason, FOUND);
        assert_eq!(
            ev[0].target,
            Target::Pod {
                namespace: "shop".into(),
                name: "web-0".into(),
                uid: None
            }
        );
        assert!(ev[0].note.contains("device-access-broken"));
        assert_eq!(ev[1].reason, NODE_HAZARD);
        assert_eq!(ev[1].target, Target::Node);

        // The same findings again: nothing new.
        assert!(seen
            .found(&scan(vec![pod.clone(), host.clone()]))
            .is_empty());
        // Gone, then back: new again.
        assert!(seen.found(&scan(vec![host.clone()])).is_empty());
        assert_eq!(seen.found(&scan(vec![pod, host])).len(), 1);
    }

    #[test]
    fn repairs_make_normal_or_warning_events() {
        let mut f = finding(
            Some(("c1", Some(("shop", "web-0")))),
            "device-access-broken",
            Severity::Error,
        );
        f.repaired = true;
        let attempts = vec![
            Attempt {
                finding: f.clone(),
                result: AttemptResult::Repaired,
                note: "1 allow write(s)".into(),
            },
            Attempt {
                finding: f,
                result: AttemptResult::Failed,
                note: "x".repeat(5000),
            },
        ];
        let ev = repaired(&attempts, &scan(vec![]));
        assert_eq!(ev.len(), 2);
        assert_eq!((ev[0].reason, ev[0].warning), (REPAIRED, false));
        assert!(ev[0].note.ends_with("1 allow write(s)"), "{}", ev[0].note);
        assert_eq!((ev[1].reason, ev[1].warning), (REPAIR_FAILED, true));
        assert!(ev[1].note.len() <= MAX_NOTE);
    }
}
