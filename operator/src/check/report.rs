//! The report `warden check` prints.

use runtime_core::diagnose::{Finding, Severity};
use runtime_core::host::HostFacts;
use serde::Serialize;

use super::Outcome;

/// Everything one scan found: `{"host": {...}, "findings": [...]}`.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Facts about the node.
    pub host: HostFacts,
    /// What is wrong, per container or for the host.
    pub findings: Vec<Finding>,
}

impl Report {
    /// Clean unless an unrepaired finding at warning or above remains.
    pub fn outcome(&self) -> Outcome {
        if self
            .findings
            .iter()
            .any(|f| f.severity >= Severity::Warning && !f.repaired)
        {
            Outcome::Findings
        } else {
            Outcome::Clean
        }
    }
}
