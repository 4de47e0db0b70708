//! The report `warden check` prints.

use runtime_core::diagnose::{ScanReport, Severity};
use serde::Serialize;

use super::Outcome;

/// Everything one scan found: `{"host": {...}, "findings": [...], "containers": [...]}`.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct Report(pub ScanReport);

impl Report {
    /// Clean unless an unrepaired finding at warning or above remains.
    pub fn outcome(&self) -> Outcome {
        if self
            .0
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

impl std::ops::Deref for Report {
    type Target = ScanReport;
    fn deref(&self) -> &ScanReport {
        &self.0
    }
}
