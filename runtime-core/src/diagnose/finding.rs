//! The unit of every report: one [`Finding`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::checks::Severity;
pub use crate::discovery::ContainerRef;

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
