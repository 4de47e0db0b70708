//! The report `warden check` prints.

use runtime_core::diagnose::{ScanReport, Severity};
use runtime_core::engine::PlannedRepair;
use serde::Serialize;

use super::Outcome;

/// Everything one run found: `{"host": {...}, "findings": [...],
/// "containers": [...], "plans": [...]}`.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The scan.
    #[serde(flatten)]
    pub scan: ScanReport,
    /// Repairs considered (`--dry-run` and `--fix` only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub plans: Vec<PlannedRepair>,
}

impl Report {
    /// Clean unless an unrepaired finding at warning or above remains.
    pub fn outcome(&self) -> Outcome {
        if self
            .scan
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
        &self.scan
    }
}
