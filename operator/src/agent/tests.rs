//! The agent against a mock API server (`tower-test` behind
//! `kube::Client::new`): the report's server-side apply and when it is
//! (not) sent, the Events on pods and on the node, and that the agent only
//! asks for its own node and its own node's pods.
//!
//! (These live beside the code rather than in `operator/tests/`: `warden` is
//! a binary crate, so an integration test could not reach the agent's
//! functions.)

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use http::{Request, Response, StatusCode};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::client::Body;
use kube::core::PartialObjectMeta;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher::Event;
use kube::Client;
use serde_json::{json, Value};
use tokio::sync::watch;
use tower_test::mock;
use warden_api::policy::{Mode, RemediationPolicy};
use warden_api::report::{ContainerFinding, ContainerRef, HostFacts, Severity};
use warden_api::{NodeRuntimeReportSpec, RuntimePolicy, RuntimePolicySpec};

use super::config::AgentPolicy;
use super::events::{EventSink, NodeEvent, Target, FOUND, NODE_HAZARD};
use super::report::{publish_loop, ReportGate};

type Handle = mock::Handle<Request<Body>, Response<Body>>;
type Responder = mock::SendResponse<Response<Body>>;

fn mock_client() -> (Client, Handle) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(service, "default"), handle)
}

/// A request as the mock API server received it.
#[derive(Debug)]
struct Seen {
    method: String,
    path: String,
    query: BTreeMap<String, String>,
    content_type: Option<String>,
    accept: Option<String>,
    body: Value,
}

async fn next(handle: &mut Handle) -> (Seen, Responder) {
    let (request, send) = tokio::time::timeout(Duration::from_secs(10), handle.next_request())
        .await
        .expect("a request within 10 s")
        .expect("the client is alive");
    let (parts, body) = request.into_parts();
    let bytes = body.collect_bytes().await.unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    let query = parts
        .uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k.to_owned(), v.replace("%3D", "=").replace("%2F", "/"))
        })
        .collect();
    let header = |h: &str| parts.headers.get(h).map(|v| v.to_str().unwrap().to_owned());
    let seen = Seen {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query,
        content_type: header("content-type"),
        accept: header("accept"),
        body,
    };
    (seen, send)
}

fn reply(send: Responder, status: StatusCode, body: &Value) {
    send.send_response(
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(body).unwrap()))
            .unwrap(),
    );
}

async fn answer(handle: &mut Handle, status: StatusCode, body: Value) -> Seen {
    let (seen, send) = next(handle).await;
    reply(send, status, &body);
    seen
}

/// No request arrives within `wait`.
async fn silent(handle: &mut Handle, wait: Duration) {
    // `Ok(None)`: the client is gone, which is silent too.
    if let Ok(Some((req, _))) = tokio::time::timeout(wait, handle.next_request()).await {
        panic!("unexpected request: {} {}", req.method(), req.uri());
    }
}

fn node() -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some("worker-1".into()),
            uid: Some("node-uid".into()),
            labels: Some(BTreeMap::from([("pool".to_owned(), "gpu".to_owned())])),
            ..ObjectMeta::default()
        },
        ..Node::default()
    }
}

fn spec(findings: usize, second: i64) -> NodeRuntimeReportSpec {
    let f = (0..findings)
        .map(|i| ContainerFinding {
            pod: None,
            container: ContainerRef {
                name: None,
                id: format!("c{i}"),
                runtime: "runc".into(),
            },
            check: "device-access-broken".into(),
            severity: Severity::Error,
            message: "cannot open /dev/null".into(),
            evidence: BTreeMap::new(),
            repaired: false,
            repair_note: None,
        })
        .collect();
    NodeRuntimeReportSpec::from_scan(
        HostFacts::default(),
        vec![],
        f,
        2,
        Time(Timestamp::from_second(1_700_000_000 + second).unwrap()),
        Some("0.1.0".into()),
    )
}

fn ok_status() -> Value {
    json!({"apiVersion": "runtimewarden.io/v1alpha1", "kind": "NodeRuntimeReport", "metadata": {"name": "worker-1"}})
}

#[tokio::test]
async fn report_is_applied_when_its_content_changes_and_only_then() {
    let (client, mut handle) = mock_client();
    let (_node_tx, node_rx) = watch::channel(Some(node()));
    let (spec_tx, spec_rx) = watch::channel(None);
    let writes = Arc::new(AtomicUsize::new(0));
    let w = Arc::clone(&writes);
    let min = Duration::from_millis(300);
    let task = tokio::spawn(publish_loop(
        client,
        node_rx,
        spec_rx,
        ReportGate::new(min, Duration::from_secs(3600)),
        super::report::APPLY_TIMEOUT,
        move || {
            w.fetch_add(1, Ordering::SeqCst);
        },
    ));

    // The first scan: applied, server-side, forced, owned by the node.
    spec_tx.send_replace(Some(spec(1, 0)));
    let first = answer(&mut handle, StatusCode::OK, ok_status()).await;
    let t_first = tokio::time::Instant::now();
    assert_eq!(first.method, "PATCH");
    assert_eq!(
        first.path,
        "/apis/runtimewarden.io/v1alpha1/noderuntimereports/worker-1"
    );
    assert_eq!(
        first.query,
        BTreeMap::from([
            ("fieldManager".to_owned(), "warden-agent".to_owned()),
            ("force".to_owned(), "true".to_owned())
        ])
    );
    assert_eq!(
        first.content_type.as_deref(),
        Some("application/apply-patch+yaml")
    );
    let b = &first.body;
    assert_eq!(b["apiVersion"], "runtimewarden.io/v1alpha1");
    assert_eq!(b["kind"], "NodeRuntimeReport");
    assert_eq!(b["metadata"]["name"], "worker-1");
    assert_eq!(
        b["metadata"]["ownerReferences"],
        json!([{"apiVersion": "v1", "kind": "Node", "name": "worker-1", "uid": "node-uid"}])
    );
    assert_eq!(b["summary"]["findings"], 1);
    assert_eq!(b["findings"][0]["container"]["id"], "c0");
    assert_eq!(b["lastScanTime"], "2023-11-14T22:13:20Z");
    assert!(b.get("spec").is_none(), "fields at the top level");
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(writes.load(Ordering::SeqCst), 1, "readiness callback");

    // Two changes right after that apply: one apply, of the newest, no
    // sooner than the minimum interval after the previous one.
    spec_tx.send_replace(Some(spec(2, 1)));
    tokio::time::sleep(Duration::from_millis(10)).await;
    spec_tx.send_replace(Some(spec(3, 2)));
    let second = answer(&mut handle, StatusCode::OK, ok_status()).await;
    assert!(t_first.elapsed() >= min, "{:?}", t_first.elapsed());
    assert_eq!(second.body["summary"]["findings"], 3, "the newest report");

    // Later scans with the same content: nothing is sent.
    spec_tx.send_replace(Some(spec(3, 30)));
    spec_tx.send_replace(Some(spec(3, 60)));
    silent(&mut handle, Duration::from_millis(600)).await;

    // A failed apply is retried with the newest report.
    spec_tx.send_replace(Some(spec(0, 120)));
    let failed = answer(
        &mut handle,
        StatusCode::INTERNAL_SERVER_ERROR,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "etcd is sad", "reason": "InternalError", "code": 500}),
    )
    .await;
    assert_eq!(failed.body["summary"]["findings"], 0);
    let retried = answer(&mut handle, StatusCode::OK, ok_status()).await;
    assert_eq!(retried.method, "PATCH");
    assert_eq!(retried.body["summary"]["findings"], 0);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(writes.load(Ordering::SeqCst), 3);

    // The agent stops: the loop ends and sends nothing more.
    drop(spec_tx);
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("publisher stops")
        .unwrap();
    silent(&mut handle, Duration::from_millis(100)).await;
}

/// An apply that never gets an answer times out and is retried: a hung
/// connection does not stop report writes for good.
#[tokio::test]
async fn a_hung_apply_times_out_and_the_newest_report_is_retried() {
    let (client, mut handle) = mock_client();
    let (_node_tx, node_rx) = watch::channel(Some(node()));
    let (spec_tx, spec_rx) = watch::channel(None);
    let writes = Arc::new(AtomicUsize::new(0));
    let w = Arc::clone(&writes);
    let task = tokio::spawn(publish_loop(
        client,
        node_rx,
        spec_rx,
        ReportGate::new(Duration::ZERO, Duration::from_secs(3600)),
        Duration::from_millis(200),
        move || {
            w.fetch_add(1, Ordering::SeqCst);
        },
    ));

    spec_tx.send_replace(Some(spec(1, 0)));
    let (hung, _never_answered) = next(&mut handle).await;
    assert_eq!(hung.method, "PATCH");
    // Meanwhile the findings changed: the retry carries the newest.
    spec_tx.send_replace(Some(spec(2, 1)));
    let retried = answer(&mut handle, StatusCode::OK, ok_status()).await;
    assert_eq!(retried.method, "PATCH");
    assert_eq!(retried.body["summary"]["findings"], 2);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(writes.load(Ordering::SeqCst), 1);

    drop(spec_tx);
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("publisher stops")
        .unwrap();
}

fn pod_meta(ns: &str, name: &str, uid: &str) -> PartialObjectMeta<Pod> {
    PartialObjectMeta::<Pod> {
        metadata: ObjectMeta {
            namespace: Some(ns.into()),
            name: Some(name.into()),
            uid: Some(uid.into()),
            ..ObjectMeta::default()
        },
        ..PartialObjectMeta::default()
    }
}

/// An event sink of the agent on `worker-1` (the node is known; keep the
/// sender alive as long as the sink).
fn event_sink(
    client: Client,
    pods: &Writer<PartialObjectMeta<Pod>>,
) -> (EventSink, watch::Sender<Option<Node>>) {
    let (node_tx, node_rx) = watch::channel(Some(node()));
    let sink = EventSink::new(
        Recorder::new(
            client,
            Reporter {
                controller: "warden-agent".into(),
                instance: Some("worker-1".into()),
            },
        ),
        node_rx,
        pods.as_reader(),
    );
    (sink, node_tx)
}

#[tokio::test]
async fn events_go_to_the_pod_and_to_the_node() {
    let (client, mut handle) = mock_client();
    let mut pods: Writer<PartialObjectMeta<Pod>> = Writer::default();
    pods.apply_watcher_event(&Event::Apply(pod_meta("shop", "web-0", "pod-uid")));
    let (sink, _node_tx) = event_sink(client, &pods);
    let events = vec![
        NodeEvent {
            target: Target::Pod {
                namespace: "shop".into(),
                name: "web-0".into(),
                uid: None,
            },
            warning: true,
            reason: FOUND,
            action: "Scan",
            note: "device-access-broken: container app (c1): cannot open /dev/null".into(),
        },
        // Not on this node by the API, and no uid from the runtime: no
        // object to attach to, nothing sent.
        NodeEvent {
            target: Target::Pod {
                namespace: "shop".into(),
                name: "ghost".into(),
                uid: None,
            },
            warning: true,
            reason: FOUND,
            action: "Scan",
            note: "x".into(),
        },
        NodeEvent {
            target: Target::Node,
            warning: true,
            reason: NODE_HAZARD,
            action: "Scan",
            note: "device-update-jitter: node: crun replaces device rules".into(),
        },
    ];
    let task = tokio::spawn(async move { sink.publish(&events).await });

    let pod = answer(&mut handle, StatusCode::CREATED, json!({})).await;
    assert_eq!(pod.method, "POST");
    assert_eq!(pod.path, "/apis/events.k8s.io/v1/namespaces/shop/events");
    assert_eq!(pod.body["type"], "Warning");
    assert_eq!(pod.body["reason"], "RuntimeHazardFound");
    assert_eq!(pod.body["action"], "Scan");
    assert_eq!(
        pod.body["note"],
        "device-access-broken: container app (c1): cannot open /dev/null"
    );
    assert_eq!(pod.body["reportingController"], "warden-agent");
    assert_eq!(pod.body["reportingInstance"], "worker-1");
    assert_eq!(
        pod.body["regarding"],
        json!({"apiVersion": "v1", "kind": "Pod", "namespace": "shop", "name": "web-0", "uid": "pod-uid"})
    );

    let n = answer(&mut handle, StatusCode::CREATED, json!({})).await;
    assert_eq!(n.method, "POST");
    assert_eq!(n.path, "/apis/events.k8s.io/v1/namespaces/default/events");
    assert_eq!(n.body["reason"], "NodeRuntimeHazard");
    assert_eq!(
        n.body["regarding"],
        json!({"apiVersion": "v1", "kind": "Node", "name": "worker-1", "uid": "node-uid"})
    );
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
    // The sink (and its client) are gone with the task.
    assert!(
        tokio::time::timeout(Duration::from_secs(5), handle.next_request())
            .await
            .unwrap()
            .is_none(),
        "no third event"
    );
}

#[tokio::test]
async fn only_this_nodes_pods_are_listed_and_watched() {
    let (client, mut handle) = mock_client();
    let (_store, stream) = super::kube::pods(client, "worker-1");
    let task = tokio::spawn(stream.for_each(|()| async {}));
    let list = answer(
        &mut handle,
        StatusCode::OK,
        json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList",
               "metadata": {"resourceVersion": "7"}, "items": []}),
    )
    .await;
    assert_eq!(
        (list.method.as_str(), list.path.as_str()),
        ("GET", "/api/v1/pods")
    );
    assert_eq!(
        list.query.get("fieldSelector").map(String::as_str),
        Some("spec.nodeName=worker-1")
    );
    assert!(
        list.accept
            .as_deref()
            .is_some_and(|a| a.contains("as=PartialObjectMetadataList")),
        "metadata only: {:?}",
        list.accept
    );
    let (w, _hold) = next(&mut handle).await;
    assert_eq!(w.query.get("watch").map(String::as_str), Some("true"));
    assert_eq!(
        w.query.get("fieldSelector").map(String::as_str),
        Some("spec.nodeName=worker-1")
    );
    task.abort();
}

fn policy(name: &str, pool: Option<&str>, mode: Mode, repairs: i32, kill: bool) -> RuntimePolicy {
    let mut p = RuntimePolicy::new(
        name,
        RuntimePolicySpec {
            mode,
            node_selector: LabelSelector {
                match_labels: pool.map(|p| BTreeMap::from([("pool".to_owned(), p.to_owned())])),
                ..LabelSelector::default()
            },
            remediation: RemediationPolicy {
                max_concurrent_repairs: repairs,
                kill_stuck_inits: kill,
            },
            ..RuntimePolicySpec::default()
        },
    );
    p.metadata.resource_version = Some("1".into());
    p
}

#[tokio::test]
async fn policies_selecting_this_node_are_merged() {
    let (client, mut handle) = mock_client();
    let (node_tx, mut node_rx) = watch::channel(None);
    let (policy_tx, mut policy_rx) = watch::channel(None);
    let kept = tempfile::tempdir().unwrap();
    let keep_at = kept.path().join("policy.json");
    let task = tokio::spawn(super::kube::follow_policies(
        client,
        "worker-1".into(),
        node_tx,
        policy_tx,
        Some(keep_at.clone()),
    ));
    let mut node_list = serde_json::to_value(node()).unwrap();
    node_list["apiVersion"] = json!("meta.k8s.io/v1");
    node_list["kind"] = json!("PartialObjectMetadata");
    let policies = json!({
        "apiVersion": "runtimewarden.io/v1alpha1", "kind": "RuntimePolicyList",
        "metadata": {"resourceVersion": "5"},
        "items": [
            policy("everywhere", None, Mode::Audit, 4, false),
            policy("gpu", Some("gpu"), Mode::Enforce, 2, false),
            policy("cpu", Some("cpu"), Mode::Enforce, 1, true),
        ],
    });
    // The two watches list in either order; watch requests are held open.
    let mut held = Vec::new();
    let mut listed_nodes = false;
    let mut listed_policies = false;
    while !(listed_nodes && listed_policies) {
        let (seen, send) = next(&mut handle).await;
        if seen.query.contains_key("watch") {
            held.push(send);
            continue;
        }
        match seen.path.as_str() {
            "/api/v1/nodes" => {
                assert_eq!(
                    seen.query.get("fieldSelector").map(String::as_str),
                    Some("metadata.name=worker-1"),
                    "only this node"
                );
                reply(
                    send,
                    StatusCode::OK,
                    &json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList",
                            "metadata": {"resourceVersion": "3"}, "items": [node_list]}),
                );
                listed_nodes = true;
            }
            "/apis/runtimewarden.io/v1alpha1/runtimepolicies" => {
                reply(send, StatusCode::OK, &policies);
                listed_policies = true;
            }
            other => panic!("unexpected request to {other}"),
        }
    }
    let got = tokio::time::timeout(Duration::from_secs(10), policy_rx.wait_for(Option::is_some))
        .await
        .expect("a merged policy")
        .unwrap()
        .clone()
        .unwrap();
    assert_eq!(
        got.sources,
        ["everywhere", "gpu"],
        "the cpu policy does not select this node"
    );
    assert!(got.enforce, "Enforce wins");
    assert_eq!(got.max_concurrent_repairs, 2, "the tightest limit wins");
    assert!(!got.check.kill_stuck_inits);
    assert_ne!(got, AgentPolicy::default());
    let n = node_rx
        .wait_for(Option::is_some)
        .await
        .unwrap()
        .clone()
        .unwrap();
    assert_eq!(n.metadata.uid.as_deref(), Some("node-uid"));
    task.abort();
    drop(held);
    // What a restart without the API server starts from: the same policy,
    // Enforce included (this test runs as root in CI; elsewhere the file is
    // not root's and is rightly ignored).
    if runtime_core::root::running_as_root() {
        let again = AgentPolicy::from_effective(&warden_api::merge(
            &super::last_policy::load(&keep_at, "worker-1").expect("kept"),
        ));
        assert_eq!(again, got);
        assert!(again.enforce);
        assert!(
            super::last_policy::load(&keep_at, "worker-2").is_none(),
            "kept for another node"
        );
    }
}

#[test]
fn a_kept_policy_never_restores_a_kill_and_a_planted_file_is_ignored() {
    use std::os::unix::fs::PermissionsExt;
    if !runtime_core::testing::require_root("a_kept_policy_never_restores_a_kill") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("policy.json");
    let enforce_kill = policy("k", None, Mode::Enforce, 1, true);
    super::last_policy::save(&p, "n1", &[enforce_kill]).unwrap();
    assert_eq!(
        std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let kept = super::last_policy::load(&p, "n1").expect("kept");
    let e = warden_api::merge(&kept);
    assert_eq!(e.mode, Mode::Enforce);
    assert!(
        !e.remediation.kill_stuck_inits,
        "a kill needs the API server's word"
    );
    // Writable by others: ignored.
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666)).unwrap();
    assert!(super::last_policy::load(&p, "n1").is_none());
}

#[test]
fn a_change_scan_waits_the_gap_after_the_previous_scan_ended() {
    use std::time::{Duration, Instant};
    let now = Instant::now();
    // A scan that took 2 s and ended just now: the next one waits the gap
    // from its end, not from its start (which is long past).
    let at = super::change_scan_at(now, now);
    assert!(at >= now + Duration::from_millis(500), "{:?}", at - now);
    // Long after the last scan, only the settle delay applies.
    let at = super::change_scan_at(now + Duration::from_secs(10), now);
    assert_eq!(
        at,
        now + Duration::from_secs(10) + Duration::from_millis(100)
    );
}

#[tokio::test]
async fn a_hung_api_server_never_holds_the_loop_and_each_event_times_out() {
    let (client, mut handle) = mock_client();
    let pods: Writer<PartialObjectMeta<Pod>> = Writer::default();
    let (sink, _node_tx) = event_sink(client, &pods);
    let queue = super::events::EventQueue::spawn(sink, 4, Duration::from_millis(200));
    let ev = |note: &str| NodeEvent {
        target: Target::Node,
        warning: true,
        reason: NODE_HAZARD,
        action: "Scan",
        note: note.into(),
    };
    // Queuing never waits, whatever the API server does.
    let t0 = std::time::Instant::now();
    queue.send(&[ev("first"), ev("second")]);
    assert!(t0.elapsed() < Duration::from_millis(50));
    // The first call hangs (never answered); the second is still made, once
    // the first's deadline passed.
    let (first, _hung) = next(&mut handle).await;
    assert_eq!(first.body["note"], "first");
    let (second, reply_to) = tokio::time::timeout(Duration::from_secs(5), next(&mut handle))
        .await
        .expect("the second event is not held up by the first");
    assert_eq!(second.body["note"], "second");
    reply(reply_to, StatusCode::CREATED, &json!({}));
    // A full queue drops rather than waits.
    let t0 = std::time::Instant::now();
    for i in 0..20 {
        queue.send(&[ev(&format!("burst {i}"))]);
    }
    assert!(t0.elapsed() < Duration::from_millis(50));
}
