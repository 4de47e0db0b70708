//! The unit of every report: one [`Finding`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::checks::Severity;

/// Which container a finding is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRef {
    /// Runtime container id.
    pub id: String,
    /// Runtime that owns it (`runc`, `crun`, `containerd/runc`).
    pub runtime: String,
    /// Kubernetes pod namespace, from CRI annotations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_namespace: Option<String>,
    /// Kubernetes pod name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_name: Option<String>,
    /// Container name inside the pod.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
}

/// One thing found wrong (or about to go wrong) on a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable check id (`device-access-broken`, `seccomp-notify-unsafe`, ...).
    pub check: String,
    /// How bad it is.
    pub severity: Severity,
    /// The container it concerns; `None` for host-level hazards.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<ContainerRef>,
    /// One sentence an operator can act on.
    pub message: String,
    /// Facts that back the finding (paths, rules, counts), as key/value text.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub evidence: BTreeMap<String, String>,
    /// Whether a repair fixed it in this run.
    #[serde(default)]
    pub repaired: bool,
    /// Why it was or was not repaired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repair_note: Option<String>,
}
