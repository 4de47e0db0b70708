//! `NodeRuntimeReport`: one node's current runtime state as its agent last
//! saw it. Named after the node, owned by the Node object (garbage-collected
//! with it), written only by that node's agent. Like a PolicyReport it is
//! current state, not a log, so its fields sit at the top level of the object
//! (no `spec`/`status` split: nothing in it is desired state).
//!
//! The shapes mirror `runtime_core::host::HostFacts` and
//! `runtime_core::diagnose::Finding`, but this crate does not depend on
//! runtime-core: the API must not change when the engine's internals do, so
//! the agent converts (the conversion is where API stability is decided).
//!
//! Size: etcd refuses objects over 1.5 MiB and the API server's request
//! limit is 3 MiB; a report stays far below both because
//! [`NodeRuntimeReportSpec::from_scan`] keeps at most [`MAX_FINDINGS`]
//! findings within [`MAX_FINDINGS_BYTES`] of JSON, worst first, and counts
//! the rest in `summary.omittedFindings`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use kube::{CustomResource, KubeSchema, Resource};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// At most this many container findings are listed in one report.
pub const MAX_FINDINGS: usize = 200;
/// At most this many host-level hazards are listed in one report.
pub const MAX_HAZARDS: usize = 50;
/// The listed findings and hazards together stay under this many bytes of
/// JSON; with the host facts that keeps a report well under 1 MiB.
pub const MAX_FINDINGS_BYTES: usize = 512 * 1024;
/// Longest `message` kept; longer ones are cut at a character boundary.
pub const MAX_MESSAGE_LEN: usize = 1024;
/// At most this many evidence entries per finding.
pub const MAX_EVIDENCE: usize = 32;

/// How bad a finding is. Ordered: `Info < Warning < Error`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub enum Severity {
    /// Worth knowing; nothing will break because of it.
    Info,
    /// A latent hazard: something will break when a trigger happens.
    Warning,
    /// Broken now, or certain to break.
    Error,
}

/// How cgroups are mounted on the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum CgroupMode {
    /// Only v1 hierarchies are mounted.
    Legacy,
    /// v1 controllers and a v2 hierarchy side by side.
    Hybrid,
    /// Only the v2 hierarchy is mounted.
    Unified,
}

/// The content of a [`NodeRuntimeReport`]. On the wire its fields are the
/// object's top-level fields, beside `metadata`.
// Each printcolumn(...) repeats keys like `type_`, which clippy mistakes
// for duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "runtimewarden.io",
    version = "v1alpha1",
    kind = "NodeRuntimeReport",
    plural = "noderuntimereports",
    shortname = "nrr",
    category = "runtimewarden",
    no_spec,
    derive = "PartialEq",
    doc = "One node's container-runtime state as its Runtime Warden agent last saw it: host facts, host-level hazards, per-container findings and what was repaired. Named after the node and owned by the Node object; written only by that node's agent. Current state, not a log.",
    printcolumn(
        name = "Containers",
        type_ = "integer",
        json_path = ".summary.containers",
        description = "Containers inspected in the last scan"
    ),
    printcolumn(
        name = "Findings",
        type_ = "integer",
        json_path = ".summary.findings",
        description = "Container findings and host hazards in the last scan"
    ),
    printcolumn(
        name = "Unrepaired",
        type_ = "integer",
        json_path = ".summary.unrepaired",
        priority = 1,
        description = "Findings at warning or above that are not repaired"
    ),
    printcolumn(
        name = "Repaired",
        type_ = "integer",
        json_path = ".summary.repaired",
        description = "Findings repaired in the last scan"
    ),
    printcolumn(name = "Last Scan", type_ = "date", json_path = ".lastScanTime"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new(
    "!has(self.summary) || size(self.findings) + size(self.hazards) + self.summary.omittedFindings == self.summary.findings"
).message("summary.findings must count every listed finding and hazard plus summary.omittedFindings").reason(Reason::FieldValueInvalid))]
#[x_kube(validation = Rule::new(
    "!has(self.summary) || self.summary.repaired + self.summary.unrepaired <= self.summary.findings"
).message("summary.repaired + summary.unrepaired cannot exceed summary.findings").reason(Reason::FieldValueInvalid))]
#[serde(rename_all = "camelCase")]
pub struct NodeRuntimeReportSpec {
    /// When the agent finished the scan this report describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scan_time: Option<Time>,

    /// Version of the agent that wrote the report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub agent_version: Option<String>,

    /// What the node is made of, as far as runtime hazards go.
    #[serde(default)]
    pub host: HostFacts,

    /// Hazards of the node itself rather than of one container (a runtime
    /// version with a known bug, a kernel exposed to the cgroup attach race).
    #[serde(default)]
    #[schemars(length(max = MAX_HAZARDS))]
    pub hazards: Vec<Hazard>,

    /// Per-container findings, worst first (unrepaired before repaired, then
    /// by severity). At most 200 are listed; `summary.omittedFindings`
    /// counts the rest.
    #[serde(default)]
    #[schemars(length(max = MAX_FINDINGS))]
    pub findings: Vec<ContainerFinding>,

    /// Counts over the whole scan, including findings left out of the list.
    #[serde(default)]
    pub summary: ReportSummary,
}

/// Host facts of one node (mirrors `runtime_core::host::HostFacts`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostFacts {
    /// Kernel release (`uname -r`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub kernel: Option<String>,

    /// Whether the kernel falls in the range where moving a process into a
    /// cpu cgroup fails with EINVAL while one of its threads is being created
    /// (seed 001, 4.8 up to 6.1). Absent when the release is unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attach_race_exposed: Option<bool>,

    /// How cgroups are mounted. Absent when it could not be detected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroups: Option<CgroupFacts>,

    /// Whether /dev/char exists. Without it some runc and systemd releases
    /// drop per-device DeviceAllow= entries (seed 003).
    #[serde(default)]
    pub dev_char: bool,

    /// The node's systemd manager.
    #[serde(default)]
    pub systemd: SystemdFacts,

    /// Container runtimes found on the node, with versions.
    #[serde(default)]
    #[schemars(length(max = 16))]
    pub runtimes: Vec<RuntimeFacts>,

    /// What the agent could not inspect, and why.
    #[serde(default)]
    #[schemars(length(max = 32))]
    pub unreadable: Vec<Unreadable>,
}

/// The cgroup layout of a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CgroupFacts {
    /// Legacy, Hybrid or Unified.
    pub mode: CgroupMode,
    /// Every mounted v1 hierarchy.
    #[serde(default)]
    #[schemars(length(max = 32))]
    pub v1: Vec<V1Hierarchy>,
    /// The v2 hierarchy, if mounted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v2: Option<V2Hierarchy>,
}

/// One mounted cgroup v1 hierarchy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct V1Hierarchy {
    /// Controllers bound to it (`cpu`, `devices`, ...; named hierarchies as
    /// `name=systemd`).
    #[serde(default)]
    #[schemars(length(max = 32))]
    pub controllers: Vec<String>,
    /// Host path where it is mounted.
    #[schemars(length(max = 4096))]
    pub mount_point: String,
}

/// The mounted cgroup v2 hierarchy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct V2Hierarchy {
    /// Host path where it is mounted.
    #[schemars(length(max = 4096))]
    pub mount_point: String,
    /// Controllers available at its root.
    #[serde(default)]
    #[schemars(length(max = 32))]
    pub controllers: Vec<String>,
}

/// The node's systemd manager.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SystemdFacts {
    /// Whether systemd runs as the node's init.
    #[serde(default)]
    pub running: bool,
    /// The running manager's version number (`252`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub version: Option<i32>,
}

/// One container runtime binary found on the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeFacts {
    /// The runtime's executable name: `runc`, `crun`, `containerd`,
    /// `containerd-shim-runc-v2`, ... A string rather than an enum so that a
    /// newer agent can report a runtime this API version does not list.
    #[schemars(length(max = 63))]
    pub kind: String,
    /// Host path of the binary.
    #[schemars(length(max = 4096))]
    pub path: String,
    /// Release version (`1.1.5`), without distribution suffixes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub version: Option<String>,
    /// The version as the binary printed it (`1.1.5+ds1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub version_raw: Option<String>,
}

/// Something the agent could not inspect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Unreadable {
    /// What was being inspected (`kernel release`, `cgroup layout`, ...).
    #[schemars(length(max = 256))]
    pub what: String,
    /// The path that failed, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub path: Option<String>,
    /// The error, as the OS gave it.
    #[schemars(length(max = 1024))]
    pub error: String,
}

/// A hazard of the node itself, not of one container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Hazard {
    /// Stable check id (`device-update-jitter`, `cgroup-attach-race`, ...).
    #[schemars(length(max = 63))]
    pub check: String,
    /// How bad it is.
    pub severity: Severity,
    /// One sentence an operator can act on.
    #[schemars(length(max = MAX_MESSAGE_LEN))]
    pub message: String,
    /// Facts that back the hazard (paths, versions, counts).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = MAX_EVIDENCE))]
    pub evidence: BTreeMap<String, String>,
    /// Whether a repair fixed it in the last scan.
    #[serde(default)]
    pub repaired: bool,
    /// Why it was or was not repaired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_MESSAGE_LEN))]
    pub repair_note: Option<String>,
}

/// The pod a container belongs to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodRef {
    /// Pod namespace.
    #[schemars(length(max = 63))]
    pub namespace: String,
    /// Pod name.
    #[schemars(length(max = 253))]
    pub name: String,
    /// Pod UID, which tells a pod from a later one of the same name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub uid: Option<String>,
}

/// The container a finding concerns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerRef {
    /// Container name inside its pod, when the runtime state names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub name: Option<String>,
    /// Runtime container id.
    #[schemars(length(max = 128))]
    pub id: String,
    /// Runtime that owns it (`runc`, `crun`, `containerd/runc`).
    #[schemars(length(max = 63))]
    pub runtime: String,
}

/// One thing found wrong, or about to go wrong, with one container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerFinding {
    /// The pod, when the container belongs to one (CRI annotations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodRef>,
    /// The container.
    pub container: ContainerRef,
    /// Stable check id (`device-access-broken`, `seccomp-notify-stuck`, ...).
    #[schemars(length(max = 63))]
    pub check: String,
    /// How bad it is.
    pub severity: Severity,
    /// One sentence an operator can act on.
    #[schemars(length(max = MAX_MESSAGE_LEN))]
    pub message: String,
    /// Facts that back the finding (paths, rules, counts).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = MAX_EVIDENCE))]
    pub evidence: BTreeMap<String, String>,
    /// Whether a repair fixed it in the last scan.
    #[serde(default)]
    pub repaired: bool,
    /// Why it was or was not repaired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_MESSAGE_LEN))]
    pub repair_note: Option<String>,
}

/// Counts over a whole scan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReportSummary {
    /// Containers inspected.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub containers: i32,
    /// Container findings plus host hazards, listed or not.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub findings: i32,
    /// Findings and hazards a repair fixed.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub repaired: i32,
    /// Findings and hazards at warning or above that are not repaired. A
    /// node is compliant when this is zero.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub unrepaired: i32,
    /// Findings and hazards not listed because of the report's size cap.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub omitted_findings: i32,
}

/// Whether a finding still needs someone: at warning or above and not
/// repaired.
fn needs_attention(severity: Severity, repaired: bool) -> bool {
    severity >= Severity::Warning && !repaired
}

/// Sort key: unrepaired before repaired, then worst first, then a stable
/// identity so that equal scans give byte-identical reports (no churn in
/// server-side apply).
fn finding_order(f: &ContainerFinding) -> impl Ord + '_ {
    (
        !needs_attention(f.severity, f.repaired),
        std::cmp::Reverse(f.severity),
        f.pod.as_ref().map(|p| (&p.namespace, &p.name)),
        f.container.name.as_deref(),
        &f.container.id,
        &f.check,
        &f.message,
    )
}

fn hazard_order(h: &Hazard) -> impl Ord + '_ {
    (
        !needs_attention(h.severity, h.repaired),
        std::cmp::Reverse(h.severity),
        &h.check,
        &h.message,
    )
}

/// Cut `s` to at most `max` bytes at a character boundary, marking the cut.
fn truncate(s: &mut String, max: usize) {
    if s.len() <= max {
        return;
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s.push('…');
}

fn bound_text(
    message: &mut String,
    evidence: &mut BTreeMap<String, String>,
    note: &mut Option<String>,
) {
    truncate(message, MAX_MESSAGE_LEN);
    if let Some(n) = note {
        truncate(n, MAX_MESSAGE_LEN);
    }
    while evidence.len() > MAX_EVIDENCE {
        evidence.pop_last();
    }
    for v in evidence.values_mut() {
        truncate(v, MAX_MESSAGE_LEN);
    }
}

fn json_len<T: Serialize>(v: &T) -> usize {
    // Serializing these plain structs cannot fail; if it ever did, counting
    // the item as too large to list is the safe answer.
    serde_json::to_vec(v).map_or(usize::MAX, |b| b.len())
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

impl NodeRuntimeReportSpec {
    /// Build a report from one scan: bound every text, order findings worst
    /// first, list as many as fit in [`MAX_FINDINGS`] / [`MAX_HAZARDS`] and
    /// [`MAX_FINDINGS_BYTES`], and count everything (listed or not) in the
    /// summary.
    pub fn from_scan(
        host: HostFacts,
        mut hazards: Vec<Hazard>,
        mut findings: Vec<ContainerFinding>,
        containers: usize,
        last_scan_time: Time,
        agent_version: Option<String>,
    ) -> Self {
        let total = hazards.len() + findings.len();
        let repaired = hazards.iter().filter(|h| h.repaired).count()
            + findings.iter().filter(|f| f.repaired).count();
        let unrepaired = hazards
            .iter()
            .filter(|h| needs_attention(h.severity, h.repaired))
            .count()
            + findings
                .iter()
                .filter(|f| needs_attention(f.severity, f.repaired))
                .count();

        for h in &mut hazards {
            bound_text(&mut h.message, &mut h.evidence, &mut h.repair_note);
        }
        for f in &mut findings {
            bound_text(&mut f.message, &mut f.evidence, &mut f.repair_note);
        }
        hazards.sort_by(|a, b| hazard_order(a).cmp(&hazard_order(b)));
        findings.sort_by(|a, b| finding_order(a).cmp(&finding_order(b)));

        // Hazards first: there are few and they concern the whole node.
        let mut budget = MAX_FINDINGS_BYTES;
        let hazards = take_within(hazards, MAX_HAZARDS, &mut budget);
        let findings = take_within(findings, MAX_FINDINGS, &mut budget);
        let listed = hazards.len() + findings.len();

        Self {
            last_scan_time: Some(last_scan_time),
            agent_version,
            host,
            hazards,
            findings,
            summary: ReportSummary {
                containers: count(containers),
                findings: count(total),
                repaired: count(repaired),
                unrepaired: count(unrepaired),
                omitted_findings: count(total - listed),
            },
        }
    }

    /// Whether the node has unrepaired findings or hazards at warning or
    /// above (listed or omitted).
    pub fn has_findings(&self) -> bool {
        self.summary.unrepaired > 0
    }
}

/// The longest prefix of `items` with at most `max` entries whose JSON fits
/// in `budget` bytes; `budget` is reduced by what was taken.
fn take_within<T: Serialize>(items: Vec<T>, max: usize, budget: &mut usize) -> Vec<T> {
    let mut out = Vec::with_capacity(items.len().min(max));
    for item in items.into_iter().take(max) {
        // +1 for the separating comma.
        let len = json_len(&item).saturating_add(1);
        if len > *budget {
            break;
        }
        *budget -= len;
        out.push(item);
    }
    out
}

impl NodeRuntimeReport {
    /// The report of node `node`, owned by that Node object so that it is
    /// garbage-collected when the node is deleted. There is no finalizer:
    /// nothing has to happen before a report may go.
    pub fn for_node(node: &Node, spec: NodeRuntimeReportSpec) -> Option<Self> {
        let name = node.metadata.name.clone()?;
        let uid = node.metadata.uid.clone()?;
        Some(Self {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                owner_references: Some(vec![OwnerReference {
                    api_version: Node::api_version(&()).into_owned(),
                    kind: Node::kind(&()).into_owned(),
                    name,
                    uid,
                    // Not the node's controller, and never blocking the
                    // node's deletion (that would need delete rights on
                    // nodes' finalizers, which an agent must not have).
                    controller: None,
                    block_owner_deletion: None,
                }]),
                ..ObjectMeta::default()
            },
            spec,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn finding(
        i: usize,
        severity: Severity,
        repaired: bool,
        message_len: usize,
    ) -> ContainerFinding {
        ContainerFinding {
            pod: Some(PodRef {
                namespace: "default".into(),
                name: format!("pod-{i:05}"),
                uid: Some(format!("uid-{i}")),
            }),
            container: ContainerRef {
                name: Some("app".into()),
                id: format!("{i:064x}"),
                runtime: "runc".into(),
            },
            check: "device-access-broken".into(),
            severity,
            message: "x".repeat(message_len),
            evidence: (0..40)
                .map(|k| (format!("key-{k:02}"), "v".repeat(message_len.min(2000))))
                .collect(),
            repaired,
            repair_note: Some("n".repeat(message_len)),
        }
    }

    fn t0() -> Time {
        Time(Timestamp::UNIX_EPOCH)
    }

    #[test]
    fn worst_case_scan_stays_far_below_the_object_limit() {
        // 400 findings of ~300 KiB each before bounding: 120 MiB of input.
        let findings: Vec<_> = (0..400)
            .map(|i| finding(i, Severity::Error, false, 100_000))
            .collect();
        let spec = NodeRuntimeReportSpec::from_scan(
            HostFacts::default(),
            Vec::new(),
            findings,
            400,
            t0(),
            None,
        );
        let bytes = serde_json::to_vec(&spec).unwrap().len();
        assert!(bytes < 600 * 1024, "report is {bytes} bytes");
        assert!(!spec.findings.is_empty());
        assert_eq!(spec.summary.findings, 400);
        assert_eq!(
            spec.summary.omitted_findings as usize,
            400 - spec.findings.len()
        );
        let f = &spec.findings[0];
        assert!(f.message.len() <= MAX_MESSAGE_LEN && f.message.ends_with('…'));
        assert_eq!(f.evidence.len(), MAX_EVIDENCE);
    }

    #[test]
    fn count_cap_applies_before_the_byte_budget() {
        let findings: Vec<_> = (0..300)
            .map(|i| finding(i, Severity::Info, false, 10))
            .collect();
        let spec = NodeRuntimeReportSpec::from_scan(
            HostFacts::default(),
            Vec::new(),
            findings,
            3,
            t0(),
            None,
        );
        assert_eq!(spec.findings.len(), MAX_FINDINGS);
        assert_eq!(spec.summary.omitted_findings, 100);
        // Info findings never make a node non-compliant.
        assert_eq!(spec.summary.unrepaired, 0);
        assert!(!spec.has_findings());
    }

    #[test]
    fn unrepaired_and_worse_findings_are_listed_first() {
        let findings = vec![
            finding(1, Severity::Info, false, 10),
            finding(2, Severity::Error, true, 10),
            finding(3, Severity::Warning, false, 10),
            finding(4, Severity::Error, false, 10),
        ];
        let spec = NodeRuntimeReportSpec::from_scan(
            HostFacts::default(),
            Vec::new(),
            findings,
            4,
            t0(),
            None,
        );
        let order: Vec<_> = spec
            .findings
            .iter()
            .map(|f| f.pod.as_ref().unwrap().name.clone())
            .collect();
        assert_eq!(order, ["pod-00004", "pod-00003", "pod-00002", "pod-00001"]);
        assert_eq!(spec.summary.repaired, 1);
        assert_eq!(spec.summary.unrepaired, 2);
        assert!(spec.has_findings());
    }

    #[test]
    fn truncation_respects_character_boundaries() {
        let mut s = "é".repeat(MAX_MESSAGE_LEN);
        truncate(&mut s, MAX_MESSAGE_LEN);
        assert!(s.len() <= MAX_MESSAGE_LEN);
        assert!(s.ends_with('…'));
        let mut short = "fine".to_owned();
        truncate(&mut short, MAX_MESSAGE_LEN);
        assert_eq!(short, "fine");
    }

    #[test]
    fn a_report_is_owned_by_its_node_without_blocking_its_deletion() {
        let node = Node {
            metadata: ObjectMeta {
                name: Some("worker-1".into()),
                uid: Some("0b9f-uid".into()),
                ..ObjectMeta::default()
            },
            ..Node::default()
        };
        let report = NodeRuntimeReport::for_node(&node, NodeRuntimeReportSpec::default()).unwrap();
        assert_eq!(report.metadata.name.as_deref(), Some("worker-1"));
        assert!(report.metadata.finalizers.is_none());
        let owners = report.metadata.owner_references.unwrap();
        assert_eq!(owners.len(), 1);
        assert_eq!(
            (owners[0].api_version.as_str(), owners[0].kind.as_str()),
            ("v1", "Node")
        );
        assert_eq!(
            (owners[0].name.as_str(), owners[0].uid.as_str()),
            ("worker-1", "0b9f-uid")
        );
        assert_eq!(owners[0].block_owner_deletion, None);
        // A node object without a uid (not yet created) cannot own anything.
        assert!(
            NodeRuntimeReport::for_node(&Node::default(), NodeRuntimeReportSpec::default())
                .is_none()
        );
    }

    #[test]
    fn fields_sit_at_the_top_level_on_the_wire() {
        let report = NodeRuntimeReport::new("n1", NodeRuntimeReportSpec::default());
        let v = serde_json::to_value(&report).unwrap();
        assert!(v.get("spec").is_none());
        assert!(v.get("summary").is_some() && v.get("host").is_some());
        assert_eq!(v["kind"], "NodeRuntimeReport");
        assert_eq!(v["apiVersion"], "runtimewarden.io/v1alpha1");
    }
}
