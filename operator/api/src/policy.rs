//! `RuntimePolicy`: what users apply with kubectl to say how Runtime Warden
//! treats the nodes and namespaces it selects.
//!
//! Every field has a default, so `spec: {}` is a valid policy and the
//! built-in behaviour of `warden check` (no `--policy`) is
//! [`RuntimePolicySpec::default()`]. The serde defaults, the `Default` impls
//! and the `default:` values in the generated CRD schema are the same values;
//! a test in `operator/tests/` holds them together.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The devices every container is expected to be able to open unless a
/// policy says otherwise: the character devices the OCI runtime spec makes
/// mandatory (`/dev/ptmx` aside, which is a symlink into devpts).
pub const DEFAULT_REQUIRED_DEVICES: [&str; 6] = [
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
];

/// Upper bound of `devices.required`. Keeps the object small and the
/// CEL cost estimate of rules over the list bounded.
pub const MAX_REQUIRED_DEVICES: usize = 64;

/// Upper bound of `remediation.maxConcurrentRepairs`: repairs freeze
/// cgroups and talk to systemd, so a node should never run many at once.
pub const MAX_CONCURRENT_REPAIRS: i32 = 16;

/// Selector rules shared by `nodeSelector` and `namespaceSelector`. The API
/// server checks a `LabelSelector`'s operators only on built-in kinds; in a
/// CRD it is free-form unless the schema says so.
const SELECTOR_RULE: &str = "!has(self.matchExpressions) || self.matchExpressions.all(e, \
     e.operator in ['In', 'NotIn'] ? (has(e.values) && size(e.values) > 0) \
     : (e.operator in ['Exists', 'DoesNotExist'] && (!has(e.values) || size(e.values) == 0)))";
const SELECTOR_MESSAGE: &str = "matchExpressions: operator must be In or NotIn with at least one \
     value, or Exists or DoesNotExist without values";

/// Longest `matchExpressions` list, and longest `values` list in one
/// expression, a selector may have. Bounds the CEL cost of the selector
/// rule; real selectors are far smaller.
pub const MAX_SELECTOR_EXPRESSIONS: u64 = 32;
/// See [`MAX_SELECTOR_EXPRESSIONS`].
pub const MAX_SELECTOR_VALUES: u64 = 64;

/// The schema of a `LabelSelector` with bounded lists (k8s-openapi's has
/// none, and unbounded lists inflate the API server's CEL cost estimate).
fn bounded_selector(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let mut schema = <LabelSelector as JsonSchema>::json_schema(generator);
    if let Some(exprs) = schema.pointer_mut("/properties/matchExpressions") {
        exprs["maxItems"] = MAX_SELECTOR_EXPRESSIONS.into();
        if let Some(values) = exprs.pointer_mut("/items/properties/values") {
            values["maxItems"] = MAX_SELECTOR_VALUES.into();
        }
    }
    schema
}

/// How a policy treats what it finds.
///
/// Order matters for the merge: `Audit < Enforce`, the stricter wins.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    JsonSchema,
)]
pub enum Mode {
    /// Report findings and warn at admission; change nothing on the node.
    /// The default, so that applying a policy never starts repairing
    /// containers or denying pods until someone asks for it.
    #[default]
    Audit,
    /// Repair broken containers (under `remediation`'s limits) and deny
    /// unsafe pods at admission.
    Enforce,
}

/// When the agent writes explicit per-device `DeviceAllow=` entries for a
/// container's systemd unit instead of wildcard classes (seed 003).
///
/// Order for the merge: `Never < Auto < Always`, the stricter wins.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    JsonSchema,
)]
pub enum ExplicitRules {
    /// Never rewrite `DeviceAllow=`; only report the hazard.
    Never,
    /// Rewrite when the node lacks `/dev/char`, the condition under which
    /// systemd and some runc releases drop per-device entries.
    #[default]
    Auto,
    /// Always rewrite to explicit device-node paths, whatever the node.
    Always,
}

/// What happens to a seccomp profile that returns `SCMP_ACT_NOTIFY` for a
/// syscall the runtime itself needs before `execve` (seed 004: the
/// container's init deadlocks).
///
/// Order for the merge: `Allow < Warn < Deny`, the stricter wins.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    JsonSchema,
)]
pub enum NotifyAction {
    /// Accept such profiles silently.
    Allow,
    /// Admit the pod with a warning and report the profile.
    Warn,
    /// Deny the pod at admission (in `Enforce` mode; `Audit` downgrades it
    /// to a warning).
    #[default]
    Deny,
}

/// What the policy asks for. Every field has a default, so an empty spec is
/// the built-in behaviour.
// Each printcolumn(...) repeats keys like `type_`, which clippy mistakes
// for duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "runtimewarden.io",
    version = "v1alpha1",
    kind = "RuntimePolicy",
    plural = "runtimepolicies",
    shortname = "rtp",
    category = "runtimewarden",
    status = "RuntimePolicyStatus",
    derive = "PartialEq",
    doc = "How Runtime Warden treats the nodes and namespaces it selects: whether it repairs or only reports, which devices containers must keep, what to do with seccomp profiles that can deadlock a container's start. When several policies select the same node or namespace, the strictest setting of each field wins.",
    printcolumn(
        name = "Mode",
        type_ = "string",
        json_path = ".spec.mode",
        description = "Enforce repairs and denies; Audit only reports"
    ),
    printcolumn(
        name = "Matched",
        type_ = "integer",
        json_path = ".status.nodes.matched",
        description = "Nodes the nodeSelector selects"
    ),
    printcolumn(
        name = "Findings",
        type_ = "integer",
        json_path = ".status.nodes.withFindings",
        description = "Selected nodes whose report has unrepaired findings"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Every selected node reports"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new(
    "!has(self.remediation) || !has(self.remediation.killStuckInits) || !self.remediation.killStuckInits || (has(self.mode) && self.mode == 'Enforce')"
).message("remediation.killStuckInits kills container processes, so it needs mode: Enforce").reason(Reason::FieldValueInvalid))]
#[serde(rename_all = "camelCase")]
pub struct RuntimePolicySpec {
    /// Enforce: repair broken containers and deny unsafe pods. Audit: report
    /// and warn only.
    #[serde(default)]
    pub mode: Mode,

    /// Nodes whose agents apply this policy. Empty selects every node.
    #[serde(default)]
    #[schemars(schema_with = "bounded_selector")]
    #[x_kube(validation = Rule::new(SELECTOR_RULE).message(SELECTOR_MESSAGE).reason(Reason::FieldValueInvalid))]
    pub node_selector: LabelSelector,

    /// Namespaces whose pods the admission webhook checks against this
    /// policy. Empty selects every namespace.
    #[serde(default)]
    #[schemars(schema_with = "bounded_selector")]
    #[x_kube(validation = Rule::new(SELECTOR_RULE).message(SELECTOR_MESSAGE).reason(Reason::FieldValueInvalid))]
    pub namespace_selector: LabelSelector,

    /// Device access every container must keep.
    #[serde(default)]
    pub devices: DevicePolicy,

    /// Seccomp profiles that can deadlock a container's start.
    #[serde(default)]
    pub seccomp: SeccompPolicy,

    /// Exec probes on nodes whose runtime shim leaks a file descriptor per
    /// exec.
    #[serde(default)]
    pub exec: ExecPolicy,

    /// Limits on what the agent does to running containers in Enforce mode.
    #[serde(default)]
    pub remediation: RemediationPolicy,
}

/// Device access every container must keep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DevicePolicy {
    /// When to rewrite a container unit's `DeviceAllow=` to explicit
    /// device-node entries: Auto (when the node lacks /dev/char), Always or
    /// Never.
    #[serde(default)]
    pub explicit_rules: ExplicitRules,

    /// Device nodes every container must be able to open read-write. The
    /// agent checks them from inside each container's cgroups and repairs
    /// lost access in Enforce mode. Paths under /dev/, no `.` components.
    #[serde(default = "default_required_devices")]
    #[schemars(
        length(max = MAX_REQUIRED_DEVICES),
        inner(length(max = 255), pattern(r"^/dev/[A-Za-z0-9_+\-][A-Za-z0-9._+\-]*(/[A-Za-z0-9_+\-][A-Za-z0-9._+\-]*)*$")),
        extend("x-kubernetes-list-type" = "set")
    )]
    pub required: Vec<String>,
}

impl Default for DevicePolicy {
    fn default() -> Self {
        Self {
            explicit_rules: ExplicitRules::default(),
            required: default_required_devices(),
        }
    }
}

fn default_required_devices() -> Vec<String> {
    DEFAULT_REQUIRED_DEVICES
        .iter()
        .map(|d| (*d).to_owned())
        .collect()
}

/// Seccomp profiles that can deadlock a container's start.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SeccompPolicy {
    /// What to do with a profile that returns SCMP_ACT_NOTIFY for a syscall
    /// the runtime needs before the container's process starts (close,
    /// write, ...): Deny, Warn or Allow.
    #[serde(default)]
    pub notify: NotifyAction,
}

/// Exec probes on nodes whose runtime shim leaks a file descriptor per exec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecPolicy {
    /// The shortest exec-probe period, in seconds, admitted for pods on nodes
    /// whose shim leaks; shorter periods are denied (Enforce) or warned
    /// about (Audit).
    #[serde(default = "default_min_probe_period")]
    #[schemars(range(min = 1, max = 86400))]
    pub min_probe_period_seconds: i32,
}

impl Default for ExecPolicy {
    fn default() -> Self {
        Self {
            min_probe_period_seconds: default_min_probe_period(),
        }
    }
}

fn default_min_probe_period() -> i32 {
    10
}

/// Limits on what the agent does to running containers in Enforce mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RemediationPolicy {
    /// How many containers one node's agent may repair at the same time.
    #[serde(default = "default_max_concurrent_repairs")]
    #[schemars(range(min = 1, max = MAX_CONCURRENT_REPAIRS))]
    pub max_concurrent_repairs: i32,

    /// Kill a container's init that is stuck forever in a seccomp user
    /// notification, so that the kubelet retries the container. Needs mode
    /// Enforce.
    #[serde(default)]
    pub kill_stuck_inits: bool,
}

impl Default for RemediationPolicy {
    fn default() -> Self {
        Self {
            max_concurrent_repairs: default_max_concurrent_repairs(),
            kill_stuck_inits: false,
        }
    }
}

fn default_max_concurrent_repairs() -> i32 {
    1
}

/// What the operator last observed about the nodes this policy selects.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuntimePolicyStatus {
    /// The `metadata.generation` this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// `Ready`: every node the policy selects has a fresh report. `Degraded`:
    /// some selected node reports unrepaired findings at warning or above.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// Counts of the nodes this policy selects.
    #[serde(default)]
    pub nodes: NodeCounts,
}

/// Counts of the nodes a policy selects, from their `NodeRuntimeReport`s.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeCounts {
    /// Nodes the policy's nodeSelector selects.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub matched: i32,
    /// Selected nodes whose fresh report has no unrepaired finding at
    /// warning or above.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub compliant: i32,
    /// Selected nodes whose fresh report has unrepaired findings at warning
    /// or above.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub with_findings: i32,
    /// Selected nodes with no report, or one older than the operator's
    /// staleness limit.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub unreported: i32,
}

/// Condition types a [`RuntimePolicyStatus`] carries.
pub mod condition {
    /// Every selected node has a fresh report.
    pub const READY: &str = "Ready";
    /// Some selected node has unrepaired findings at warning or above.
    pub const DEGRADED: &str = "Degraded";
}
