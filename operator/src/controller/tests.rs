//! The controller against a mock API server (`tower-test` behind
//! `kube::Client::new`): the exact requests and bodies of a reconcile, the
//! backoff on 409/500, and the Lease protocol.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use http::{Request, Response, StatusCode};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::client::Body;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Action;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, store::Writer};
use kube::runtime::watcher::{self, Event};
use kube::Client;
use serde_json::{json, Value};
use tower_test::mock;
use warden_api::report::{ContainerFinding, ContainerRef, HostFacts, Severity};
use warden_api::{NodeRuntimeReport, NodeRuntimeReportSpec, RuntimePolicy, RuntimePolicySpec};

use super::daemonset::{agent_daemonset, AgentConfig};
use super::leader::{Elector, LeaseTimings, Role};
use super::reconcile::{desired_status, error_policy, reconcile, Context, ReconcileError};
use crate::cli::PullPolicy;

type Handle = mock::Handle<Request<Body>, Response<Body>>;

fn mock_client() -> (Client, Handle) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(service, "default"), handle)
}

/// One request as the mock server saw it.
#[derive(Debug)]
struct Seen {
    method: String,
    path: String,
    query: BTreeMap<String, String>,
    content_type: Option<String>,
    body: Value,
}

/// Take the next request, answer it with `status` and `reply`, and return
/// what was asked.
async fn answer(handle: &mut Handle, status: StatusCode, reply: Value) -> Seen {
    let (request, send) = tokio::time::timeout(Duration::from_secs(10), handle.next_request())
        .await
        .expect("a request within 10 s")
        .expect("the client is still alive");
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
            (k.to_owned(), v.to_owned())
        })
        .collect();
    send.send_response(
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(&reply).unwrap()))
            .unwrap(),
    );
    Seen {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query,
        content_type: parts
            .headers
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned()),
        body,
    }
}

fn api_status(code: u16, reason: &str) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": format!("mock: {reason}"), "reason": reason, "code": code,
    })
}

/// After the code under test is done and has dropped its client, the mock
/// must have no unanswered request left.
async fn assert_no_more_requests(mut handle: Handle) {
    let next = tokio::time::timeout(Duration::from_secs(10), handle.next_request())
        .await
        .expect("the client is dropped");
    assert!(
        next.is_none(),
        "unexpected request: {:?}",
        next.map(|(r, _)| r.uri().clone())
    );
}

fn agent() -> AgentConfig {
    AgentConfig {
        namespace: "runtime-warden".into(),
        name: "warden-agent".into(),
        image: "runtime-warden:test".into(),
        pull_policy: PullPolicy::IfNotPresent,
        service_account: "warden-agent".into(),
        cpu_request: "20m".into(),
        memory_request: "64Mi".into(),
        memory_limit: "256Mi".into(),
    }
}

/// The fixed "now" of these tests.
fn now() -> Timestamp {
    Timestamp::from_second(1_700_000_000).unwrap()
}

fn node(name: &str, pool: &str) -> PartialObjectMeta<Node> {
    PartialObjectMeta::<Node> {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(BTreeMap::from([("pool".to_owned(), pool.to_owned())])),
            ..ObjectMeta::default()
        },
        ..PartialObjectMeta::default()
    }
}

fn report(node: &str, unrepaired: usize) -> NodeRuntimeReport {
    let findings = (0..unrepaired)
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
    let spec = NodeRuntimeReportSpec::from_scan(
        HostFacts::default(),
        vec![],
        findings,
        2,
        Time(now() - Duration::from_secs(60)),
        None,
    );
    NodeRuntimeReport::new(node, spec)
}

/// A context whose reflectors hold gpu-1 (clean report), gpu-2 (report with
/// findings) and cpu-1 (not selected by the test policy).
fn context(client: Client) -> Arc<Context> {
    let mut nodes: Writer<PartialObjectMeta<Node>> = Writer::default();
    listed(
        &mut nodes,
        [
            node("gpu-1", "gpu"),
            node("gpu-2", "gpu"),
            node("cpu-1", "cpu"),
        ],
    );
    let mut reports: Writer<NodeRuntimeReport> = Writer::default();
    listed(
        &mut reports,
        [report("gpu-1", 0), report("gpu-2", 2), report("cpu-1", 1)],
    );
    context_with(client, &nodes, &reports)
}

/// Feed a reflector writer the events of a completed initial list.
fn listed<K>(writer: &mut Writer<K>, objects: impl IntoIterator<Item = K>)
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    writer.apply_watcher_event(&Event::Init);
    for o in objects {
        writer.apply_watcher_event(&Event::InitApply(o));
    }
    writer.apply_watcher_event(&Event::InitDone);
}

fn context_with(
    client: Client,
    nodes: &Writer<PartialObjectMeta<Node>>,
    reports: &Writer<NodeRuntimeReport>,
) -> Arc<Context> {
    Arc::new(Context {
        client: client.clone(),
        nodes: nodes.as_reader(),
        reports: reports.as_reader(),
        recorder: Recorder::new(
            client,
            Reporter {
                controller: "warden-operator".into(),
                instance: Some("operator-0".into()),
            },
        ),
        stale_after: Duration::from_secs(900),
        resync: Duration::from_secs(300),
        cache_wait: Duration::from_millis(50),
        clock: now,
        failures: Mutex::new(HashMap::new()),
    })
}

fn gpu_policy() -> RuntimePolicy {
    let spec = RuntimePolicySpec {
        node_selector: LabelSelector {
            match_labels: Some(BTreeMap::from([("pool".to_owned(), "gpu".to_owned())])),
            ..LabelSelector::default()
        },
        ..RuntimePolicySpec::default()
    };
    let mut p = RuntimePolicy::new("gpu", spec);
    p.metadata.generation = Some(2);
    p.metadata.uid = Some("policy-uid".into());
    p
}

const SSA: [(&str, &str); 2] = [("fieldManager", "warden-operator"), ("force", "true")];

fn ssa_query() -> BTreeMap<String, String> {
    SSA.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[tokio::test]
async fn reconcile_writes_status_and_records_an_event() {
    let (client, mut handle) = mock_client();
    let ctx = context(client);
    let task = tokio::spawn(reconcile(Arc::new(gpu_policy()), ctx));

    // 1. Server-side apply of the status subresource (no DaemonSet apply:
    // that is the keeper's).
    let st = answer(
        &mut handle,
        StatusCode::OK,
        serde_json::to_value(gpu_policy()).unwrap(),
    )
    .await;
    assert_eq!(st.method, "PATCH");
    assert_eq!(
        st.path,
        "/apis/runtimewarden.io/v1alpha1/runtimepolicies/gpu/status"
    );
    assert_eq!(st.query, ssa_query());
    assert_eq!(
        st.content_type.as_deref(),
        Some("application/apply-patch+yaml")
    );
    assert_eq!(
        st.body,
        json!({
            "apiVersion": "runtimewarden.io/v1alpha1",
            "kind": "RuntimePolicy",
            "status": {
                "observedGeneration": 2,
                "conditions": [
                    {
                        "type": "Ready", "status": "True", "reason": "AllNodesReporting",
                        "message": "all 2 selected nodes have a fresh report",
                        "observedGeneration": 2, "lastTransitionTime": "2023-11-14T22:13:20Z",
                    },
                    {
                        "type": "Degraded", "status": "True", "reason": "FindingsOnNodes",
                        "message": "1 of 2 selected nodes report unrepaired findings: gpu-2",
                        "observedGeneration": 2, "lastTransitionTime": "2023-11-14T22:13:20Z",
                    },
                ],
                "nodes": {"matched": 2, "compliant": 1, "withFindings": 1, "unreported": 0},
            },
        })
    );

    // 2. One Event: Degraded turned True. (Ready=True on a new policy is
    // not news.)
    let ev = answer(&mut handle, StatusCode::CREATED, json!({})).await;
    assert_eq!(ev.method, "POST");
    assert_eq!(ev.path, "/apis/events.k8s.io/v1/namespaces/default/events");
    assert_eq!(ev.body["type"], "Warning");
    assert_eq!(ev.body["reason"], "FindingsOnNodes");
    assert_eq!(
        ev.body["note"],
        "1 of 2 selected nodes report unrepaired findings: gpu-2"
    );
    assert_eq!(ev.body["reportingController"], "warden-operator");
    assert_eq!(ev.body["reportingInstance"], "operator-0");
    assert_eq!(
        (
            &ev.body["regarding"]["kind"],
            &ev.body["regarding"]["name"],
            &ev.body["regarding"]["uid"]
        ),
        (&json!("RuntimePolicy"), &json!("gpu"), &json!("policy-uid"))
    );

    let action = task.await.unwrap().unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(300)));
    assert_no_more_requests(handle).await;
}

#[tokio::test]
async fn an_unchanged_status_is_not_written_again() {
    let (client, handle) = mock_client();
    let ctx = context(client);
    let mut policy = gpu_policy();
    policy.status = Some(desired_status(&policy, &ctx));
    let task = tokio::spawn(reconcile(Arc::new(policy), ctx));

    // Nothing to write at all.
    assert_eq!(
        task.await.unwrap().unwrap(),
        Action::requeue(Duration::from_secs(300))
    );
    assert_no_more_requests(handle).await;
}

#[tokio::test]
async fn no_status_is_written_before_the_caches_have_listed() {
    let (client, handle) = mock_client();
    // Writers alive but never listed: the reflectors are still starting.
    let nodes: Writer<PartialObjectMeta<Node>> = Writer::default();
    let reports: Writer<NodeRuntimeReport> = Writer::default();
    let ctx = context_with(client, &nodes, &reports);
    let task = tokio::spawn(reconcile(Arc::new(gpu_policy()), ctx));
    // No status with zero nodes is written: the reconcile comes back
    // shortly instead.
    assert_eq!(
        task.await.unwrap().unwrap(),
        Action::requeue(super::reconcile::CACHE_RETRY)
    );
    drop((nodes, reports));
    assert_no_more_requests(handle).await;
}

#[tokio::test]
async fn failures_back_off_exponentially_and_success_resets() {
    let (client, mut handle) = mock_client();
    let ctx = context(client);
    let policy = Arc::new(gpu_policy());

    // 500 on the status: the reconcile fails.
    let task = tokio::spawn(reconcile(policy.clone(), ctx.clone()));
    let st = answer(
        &mut handle,
        StatusCode::INTERNAL_SERVER_ERROR,
        api_status(500, "InternalError"),
    )
    .await;
    assert!(st.path.ends_with("/runtimepolicies/gpu/status"));
    let err = task.await.unwrap().unwrap_err();
    assert!(matches!(err, ReconcileError::PatchStatus { .. }), "{err}");
    assert_eq!(
        error_policy(policy.clone(), &err, ctx.clone()),
        Action::requeue(Duration::from_secs(1))
    );

    // 409 on the status: fails again, the wait doubles.
    let task = tokio::spawn(reconcile(policy.clone(), ctx.clone()));
    let st = answer(
        &mut handle,
        StatusCode::CONFLICT,
        api_status(409, "Conflict"),
    )
    .await;
    assert!(st.path.ends_with("/runtimepolicies/gpu/status"));
    let err = task.await.unwrap().unwrap_err();
    assert!(matches!(err, ReconcileError::PatchStatus { .. }), "{err}");
    assert!(err.to_string().contains("RuntimePolicy gpu"), "{err}");
    assert_eq!(
        error_policy(policy.clone(), &err, ctx.clone()),
        Action::requeue(Duration::from_secs(2))
    );

    // The retry succeeds (events answered), which resets the count.
    let task = tokio::spawn(reconcile(policy.clone(), ctx.clone()));
    answer(
        &mut handle,
        StatusCode::OK,
        serde_json::to_value(gpu_policy()).unwrap(),
    )
    .await;
    answer(&mut handle, StatusCode::CREATED, json!({})).await;
    assert_eq!(
        task.await.unwrap().unwrap(),
        Action::requeue(Duration::from_secs(300))
    );
    assert_eq!(
        error_policy(policy, &err, ctx.clone()),
        Action::requeue(Duration::from_secs(1))
    );

    drop(ctx);
    assert_no_more_requests(handle).await;
}

#[tokio::test]
async fn a_failed_event_does_not_fail_the_reconcile() {
    let (client, mut handle) = mock_client();
    let task = tokio::spawn(reconcile(Arc::new(gpu_policy()), context(client)));
    answer(
        &mut handle,
        StatusCode::OK,
        serde_json::to_value(gpu_policy()).unwrap(),
    )
    .await;
    answer(
        &mut handle,
        StatusCode::FORBIDDEN,
        api_status(403, "Forbidden"),
    )
    .await;
    assert_eq!(
        task.await.unwrap().unwrap(),
        Action::requeue(Duration::from_secs(300))
    );
    assert_no_more_requests(handle).await;
}

const LEASE_PATH: &str =
    "/apis/coordination.k8s.io/v1/namespaces/runtime-warden/leases/warden-operator";

fn timings() -> LeaseTimings {
    LeaseTimings {
        duration: Duration::from_secs(15),
        renew_deadline: Duration::from_secs(10),
        retry: Duration::from_secs(2),
    }
}

fn elector(client: Client, me: &str) -> Elector {
    Elector::new(
        Api::<Lease>::namespaced(client, "runtime-warden"),
        "warden-operator",
        me,
        timings(),
    )
}

/// A monotonic clock the test moves by hand.
#[derive(Clone)]
struct FakeClock(Arc<Mutex<std::time::Instant>>);

impl FakeClock {
    fn new() -> Self {
        Self(Arc::new(Mutex::new(std::time::Instant::now())))
    }
    fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }
    fn clock(&self) -> super::leader::Clock {
        let me = self.clone();
        Arc::new(move || *me.0.lock().unwrap())
    }
}

fn lease(holder: &str, rv: &str, transitions: i32) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some("warden-operator".into()),
            namespace: Some("runtime-warden".into()),
            resource_version: Some(rv.into()),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            acquire_time: Some(MicroTime(now())),
            renew_time: Some(MicroTime(now())),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }),
    }
}

#[tokio::test]
async fn the_first_replica_creates_the_lease() {
    let (client, mut handle) = mock_client();
    let task =
        tokio::spawn(async move { elector(client, "operator-a").try_acquire_or_renew().await });
    let get = answer(
        &mut handle,
        StatusCode::NOT_FOUND,
        api_status(404, "NotFound"),
    )
    .await;
    assert_eq!(
        (get.method.as_str(), get.path.as_str()),
        ("GET", LEASE_PATH)
    );
    let created = serde_json::to_value(lease("operator-a", "1", 0)).unwrap();
    let post = answer(&mut handle, StatusCode::CREATED, created).await;
    assert_eq!(post.method, "POST");
    assert_eq!(
        post.path,
        "/apis/coordination.k8s.io/v1/namespaces/runtime-warden/leases"
    );
    assert_eq!(post.body["spec"]["holderIdentity"], "operator-a");
    assert_eq!(post.body["spec"]["leaseDurationSeconds"], 15);
    assert_eq!(post.body["spec"]["leaseTransitions"], 0);
    assert!(post.body["spec"]["renewTime"].is_string());
    assert_eq!(task.await.unwrap().unwrap(), Role::Leader);
    assert_no_more_requests(handle).await;
}

#[tokio::test]
async fn a_held_lease_is_taken_only_after_its_duration_and_a_race_is_lost_cleanly() {
    let (client, mut handle) = mock_client();
    let time = FakeClock::new();
    let elector = Arc::new(Elector::with_clock(
        Api::<Lease>::namespaced(client, "runtime-warden"),
        "warden-operator",
        "operator-b",
        timings(),
        time.clock(),
    ));
    let held = serde_json::to_value(lease("operator-a", "7", 3)).unwrap();

    // Held by a live leader: no write.
    let e = elector.clone();
    let task = tokio::spawn(async move { e.try_acquire_or_renew().await });
    assert_eq!(
        answer(&mut handle, StatusCode::OK, held.clone())
            .await
            .method,
        "GET"
    );
    assert_eq!(task.await.unwrap().unwrap(), Role::Follower);

    // Still the same record after 14 s: still wait.
    time.advance(Duration::from_secs(14));
    let e = elector.clone();
    let task = tokio::spawn(async move { e.try_acquire_or_renew().await });
    answer(&mut handle, StatusCode::OK, held.clone()).await;
    assert_eq!(task.await.unwrap().unwrap(), Role::Follower);

    // Unchanged for the whole 15 s: take it over, with the resourceVersion
    // read, so a concurrent writer makes this fail with 409.
    time.advance(Duration::from_secs(1));
    let e = elector.clone();
    let task = tokio::spawn(async move { e.try_acquire_or_renew().await });
    answer(&mut handle, StatusCode::OK, held.clone()).await;
    let put = answer(
        &mut handle,
        StatusCode::CONFLICT,
        api_status(409, "Conflict"),
    )
    .await;
    assert_eq!(
        (put.method.as_str(), put.path.as_str()),
        ("PUT", LEASE_PATH)
    );
    assert_eq!(put.body["metadata"]["resourceVersion"], "7");
    assert_eq!(put.body["spec"]["holderIdentity"], "operator-b");
    assert_eq!(put.body["spec"]["leaseTransitions"], 4);
    assert_eq!(task.await.unwrap().unwrap(), Role::Follower);

    // The winner renews: a changed record restarts the wait.
    let renewed = serde_json::to_value(lease("operator-c", "8", 4)).unwrap();
    let e = elector.clone();
    let task = tokio::spawn(async move { e.try_acquire_or_renew().await });
    answer(&mut handle, StatusCode::OK, renewed).await;
    assert_eq!(task.await.unwrap().unwrap(), Role::Follower);

    drop(elector);
    assert_no_more_requests(handle).await;
}

#[tokio::test]
async fn the_leader_renews_and_releases() {
    let (client, mut handle) = mock_client();
    let elector = Arc::new(elector(client, "operator-a"));
    let mine = serde_json::to_value(lease("operator-a", "3", 1)).unwrap();

    let e = elector.clone();
    let task = tokio::spawn(async move { e.try_acquire_or_renew().await });
    answer(&mut handle, StatusCode::OK, mine.clone()).await;
    let put = answer(&mut handle, StatusCode::OK, mine.clone()).await;
    assert_eq!(put.method, "PUT");
    assert_eq!(put.body["spec"]["holderIdentity"], "operator-a");
    // Renewal keeps the acquisition time and the transition count.
    assert_eq!(put.body["spec"]["acquireTime"], mine["spec"]["acquireTime"]);
    assert_eq!(put.body["spec"]["leaseTransitions"], 1);
    assert_eq!(task.await.unwrap().unwrap(), Role::Leader);

    let e = elector.clone();
    let task = tokio::spawn(async move { e.release().await });
    answer(&mut handle, StatusCode::OK, mine.clone()).await;
    let put = answer(&mut handle, StatusCode::OK, mine).await;
    assert_eq!(put.method, "PUT");
    assert!(
        put.body["spec"].get("holderIdentity").is_none(),
        "{}",
        put.body
    );
    assert_eq!(put.body["spec"]["leaseDurationSeconds"], 1);
    task.await.unwrap().unwrap();

    drop(elector);
    assert_no_more_requests(handle).await;
}

/// A renewal whose request never gets an answer must not keep the replica
/// leading: it stops within the renew deadline of the start of its last
/// successful renewal, well before another replica could take the Lease
/// (the lease duration after it last saw a change).
#[tokio::test]
async fn a_hung_renewal_ends_leadership_before_the_lease_can_be_taken() {
    let (client, mut handle) = mock_client();
    // Real time, short timings: the test takes about one renew deadline.
    let timings = LeaseTimings {
        duration: Duration::from_millis(1500),
        renew_deadline: Duration::from_millis(1000),
        retry: Duration::from_millis(200),
    };
    let elector = Arc::new(Elector::new(
        Api::<Lease>::namespaced(client, "runtime-warden"),
        "warden-operator",
        "operator-a",
        timings,
    ));
    let mine = serde_json::to_value(lease("operator-a", "3", 1)).unwrap();
    let (_stop_tx, mut stop) = tokio::sync::watch::channel(false);
    let e = elector.clone();
    let task = tokio::spawn(async move {
        assert_eq!(e.try_acquire_or_renew().await.unwrap(), Role::Leader);
        let end = e.hold(&mut stop).await;
        (end, std::time::Instant::now())
    });

    // The acquisition: its request starts no later than the mock sees it.
    answer(&mut handle, StatusCode::OK, mine.clone()).await;
    let acquired_by = std::time::Instant::now();
    answer(&mut handle, StatusCode::OK, mine).await;

    // The first renewal's read never gets an answer.
    let (hung, _never_answered) =
        tokio::time::timeout(Duration::from_secs(10), handle.next_request())
            .await
            .expect("a renewal within 10 s")
            .expect("the client is alive");
    assert_eq!(hung.uri().path(), LEASE_PATH);

    let (end, ended_at) = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the elector gives up on its own")
        .unwrap();
    assert_eq!(end, super::leader::HoldEnd::Lost);
    let after = ended_at.saturating_duration_since(acquired_by);
    assert!(
        after <= timings.renew_deadline + Duration::from_millis(100),
        "stopped {after:?} after the last renewal started"
    );
    assert!(
        after < timings.duration,
        "another replica could lead by now"
    );

    drop(elector);
    drop(_never_answered);
    assert_no_more_requests(handle).await;
}

#[tokio::test]
async fn only_node_set_and_label_changes_trigger_reconciles() {
    let relabelled = {
        let mut n = node("gpu-1", "gpu");
        n.metadata.labels = Some(BTreeMap::from([("pool".to_owned(), "cpu".to_owned())]));
        n
    };
    let mut heartbeat = node("gpu-1", "gpu");
    heartbeat.metadata.resource_version = Some("99".into());
    let events: Vec<Result<Event<PartialObjectMeta<Node>>, watcher::Error>> = vec![
        Ok(Event::Init),
        Ok(Event::InitApply(node("gpu-1", "gpu"))),
        Ok(Event::InitDone),                     // 1: initial list complete
        Ok(Event::Apply(heartbeat)),             // same labels: ignored
        Ok(Event::Apply(relabelled)),            // 2: labels changed
        Ok(Event::Apply(node("gpu-2", "gpu"))),  // 3: new node
        Ok(Event::Delete(node("gpu-2", "gpu"))), // 4: node gone
    ];
    let triggers = super::node_changes(futures::stream::iter(events))
        .count()
        .await;
    assert_eq!(triggers, 4);

    // The reflector-backed store sees what the trigger saw.
    let (store, writer) = reflector::store::<PartialObjectMeta<Node>>();
    let stream = reflector::reflector(
        writer,
        futures::stream::iter(vec![
            Ok::<_, watcher::Error>(Event::Init),
            Ok(Event::InitApply(node("n1", "gpu"))),
            Ok(Event::InitDone),
        ]),
    );
    assert_eq!(super::node_changes(stream).count().await, 1);
    assert_eq!(store.state().len(), 1);
}

fn agent_ds(generation: i64, resource_version: &str) -> PartialObjectMeta<DaemonSet> {
    let mut ds = PartialObjectMeta::<DaemonSet>::default();
    ds.metadata.name = Some("warden-agent".into());
    ds.metadata.namespace = Some("runtime-warden".into());
    ds.metadata.generation = Some(generation);
    ds.metadata.resource_version = Some(resource_version.into());
    ds
}

#[tokio::test]
async fn the_agent_is_reapplied_on_list_spec_change_and_deletion_only() {
    let events: Vec<Result<Event<PartialObjectMeta<DaemonSet>>, watcher::Error>> = vec![
        Ok(Event::Init),
        Ok(Event::InitApply(agent_ds(1, "10"))),
        Ok(Event::InitDone),                  // 1: applied at start
        Ok(Event::Apply(agent_ds(1, "11"))),  // status only: ignored
        Ok(Event::Apply(agent_ds(2, "12"))),  // 2: spec edited
        Ok(Event::Apply(agent_ds(2, "13"))),  // status only: ignored
        Ok(Event::Delete(agent_ds(2, "14"))), // 3: deleted
        Ok(Event::Apply(agent_ds(1, "15"))),  // 4: re-created
    ];
    let applies = super::keeper::agent_changes(futures::stream::iter(events))
        .count()
        .await;
    assert_eq!(applies, 4);
}

/// The keeper applies exactly the DaemonSet, once per change, retries a
/// failure with backoff, and makes no request while nothing changes.
#[tokio::test]
async fn the_keeper_applies_once_per_change_and_retries_failures() {
    let (client, mut handle) = mock_client();
    let (changes_tx, changes_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let (halt_tx, halt) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(super::keeper::keep_applied(
        client,
        agent(),
        tokio_stream_from(changes_rx),
        halt,
    ));

    changes_tx.send(()).unwrap();
    let expected_ds = serde_json::to_value(agent_daemonset(&agent())).unwrap();
    let ds = answer(&mut handle, StatusCode::OK, expected_ds.clone()).await;
    assert_eq!(ds.method, "PATCH");
    assert_eq!(
        ds.path,
        "/apis/apps/v1/namespaces/runtime-warden/daemonsets/warden-agent"
    );
    assert_eq!(ds.query, ssa_query());
    assert_eq!(
        ds.content_type.as_deref(),
        Some("application/apply-patch+yaml")
    );
    assert_eq!(ds.body, expected_ds);

    // A failure is retried (after the first backoff, 1 s) until it works.
    changes_tx.send(()).unwrap();
    answer(
        &mut handle,
        StatusCode::INTERNAL_SERVER_ERROR,
        api_status(500, "InternalError"),
    )
    .await;
    let retried = answer(&mut handle, StatusCode::OK, expected_ds.clone()).await;
    assert_eq!(retried.body, expected_ds);

    // Nothing changes: nothing is sent.
    let quiet = tokio::time::timeout(Duration::from_millis(1500), handle.next_request()).await;
    assert!(quiet.is_err(), "unexpected request");

    halt_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the keeper stops on halt")
        .unwrap();
    drop(changes_tx);
    assert_no_more_requests(handle).await;
}

/// An mpsc receiver as a stream (no tokio-stream dependency).
fn tokio_stream_from(
    rx: tokio::sync::mpsc::UnboundedReceiver<()>,
) -> impl futures::Stream<Item = ()> {
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|v| (v, rx)) })
}
