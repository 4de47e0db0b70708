//! `--dry-run` and `--fix`: plan a repair for every finding, apply the plans,
//! scan again and mark what was repaired.
//!
//! The pieces are public so that `warden agent` runs exactly this engine
//! under its own scheduling (rate limits, backoff): [`plan_all`] for the
//! plans, [`apply_one`] for each repair, [`mark_repaired`] to fold the notes
//! and a second scan into one report. [`apply_all`] is the sequential
//! composition `warden check --fix` uses.

use runtime_core::diagnose::{self, CheckPolicy, Finding, ScanOptions, ScanReport};
use runtime_core::repair;

pub use super::report::PlannedRepair;

/// What came of considering one finding's repair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairNote {
    /// The plan was applied without error (the second scan decides whether
    /// it fixed the finding).
    pub applied: bool,
    /// What was done, or why nothing was.
    pub text: String,
}

/// A plan (or the reason there is none) for each finding.
/// Pure: plans read only the scan's snapshot.
pub fn plan_all(report: &ScanReport, policy: &CheckPolicy) -> Vec<PlannedRepair> {
    report
        .findings
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let container = f
                .container
                .as_ref()
                .and_then(|r| report.discovered.iter().find(|c| c.id == r.id));
            match repair::plan(f, container, &report.snapshot, &report.host, policy) {
                Ok(p) => PlannedRepair {
                    finding: i,
                    check: f.check.to_string(),
                    plan: Some(p),
                    not_planned: None,
                },
                Err(e) => PlannedRepair {
                    finding: i,
                    check: f.check.to_string(),
                    plan: None,
                    not_planned: Some(e.to_string()),
                },
            }
        })
        .collect()
}

/// Whether two findings are the same problem (the same [`FindingId`]).
///
/// [`FindingId`]: runtime_core::diagnose::FindingId
pub fn same(a: &Finding, b: &Finding) -> bool {
    a.id() == b.id()
}

/// Apply one plan, or note why there is none.
pub fn apply_one(p: &PlannedRepair, opts: &ScanOptions) -> RepairNote {
    let Some(plan) = &p.plan else {
        return RepairNote {
            applied: false,
            text: p.not_planned.clone().unwrap_or_default(),
        };
    };
    let _span = tracing::info_span!("repair", check = %p.check).entered();
    match repair::apply(plan, opts) {
        Ok(o) => {
            tracing::info!(changed = ?o.changed, unchanged = ?o.unchanged, "repair applied");
            let mut text = o.changed;
            text.extend(o.unchanged);
            RepairNote {
                applied: true,
                text: text.join("; "),
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "repair failed");
            RepairNote {
                applied: false,
                text: format!("repair failed: {e}"),
            }
        }
    }
}

/// Apply every plan, then scan again. Findings of the first scan are kept
/// (so the report says what was wrong) and marked repaired when their plan
/// applied and the second scan no longer shows them; findings that only the
/// second scan shows are added.
pub fn apply_all(
    first: ScanReport,
    plans: &[PlannedRepair],
    opts: &ScanOptions,
    policy: &CheckPolicy,
) -> ScanReport {
    let mut notes: Vec<Option<RepairNote>> = vec![None; first.findings.len()];
    for p in plans {
        notes[p.finding] = Some(apply_one(p, opts));
    }
    let second = diagnose::scan(opts, policy);
    mark_repaired(first, notes, second)
}

/// Fold the repair notes (indexed like `first.findings`) and a scan made
/// after the repairs into one report (see [`apply_all`]).
pub fn mark_repaired(
    first: ScanReport,
    notes: Vec<Option<RepairNote>>,
    second: ScanReport,
) -> ScanReport {
    let mut findings = first.findings;
    for (f, note) in findings.iter_mut().zip(notes) {
        let still = second.findings.iter().any(|g| same(f, g));
        match note {
            Some(RepairNote {
                applied: true,
                text,
            }) if !still => {
                f.repaired = true;
                f.repair_note = Some(text);
            }
            Some(RepairNote {
                applied: true,
                text,
            }) => f.repair_note = Some(format!("applied ({text}) but the check still fails")),
            Some(RepairNote {
                applied: false,
                text,
            }) => f.repair_note = Some(text),
            None => {}
        }
    }
    let extra: Vec<Finding> = second
        .findings
        .iter()
        .filter(|g| !findings.iter().any(|f| same(f, g)))
        .cloned()
        .collect();
    findings.extend(extra);
    ScanReport { findings, ..second }
}
