//! `--dry-run` and `--fix`: plan a repair for every finding, apply the plans,
//! scan again and mark what was repaired.

use runtime_core::diagnose::{self, CheckPolicy, Finding, ScanOptions, ScanReport};
use runtime_core::repair;

use super::report::PlannedRepair;

/// A plan (or the reason there is none) for each finding.
pub fn plan_all(
    report: &ScanReport,
    opts: &ScanOptions,
    policy: &CheckPolicy,
) -> Vec<PlannedRepair> {
    report
        .findings
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let container = f
                .container
                .as_ref()
                .and_then(|r| report.discovered.iter().find(|c| c.id == r.id));
            match repair::plan(f, container, opts, policy) {
                Ok(p) => PlannedRepair {
                    finding: i,
                    check: f.check.clone(),
                    plan: Some(p),
                    not_planned: None,
                },
                Err(e) => PlannedRepair {
                    finding: i,
                    check: f.check.clone(),
                    plan: None,
                    not_planned: Some(e.to_string()),
                },
            }
        })
        .collect()
}

fn same(a: &Finding, b: &Finding) -> bool {
    a.check == b.check && a.container.as_ref().map(|c| &c.id) == b.container.as_ref().map(|c| &c.id)
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
    let mut notes: Vec<Option<(bool, String)>> = vec![None; first.findings.len()];
    for p in plans {
        let Some(plan) = &p.plan else {
            notes[p.finding] = Some((false, p.not_planned.clone().unwrap_or_default()));
            continue;
        };
        let _span = tracing::info_span!("repair", check = %p.check).entered();
        match repair::apply(plan, opts) {
            Ok(o) => {
                tracing::info!(changed = ?o.changed, unchanged = ?o.unchanged, "repair applied");
                let mut text = o.changed;
                text.extend(o.unchanged);
                notes[p.finding] = Some((true, text.join("; ")));
            }
            Err(e) => {
                tracing::warn!(error = %e, "repair failed");
                notes[p.finding] = Some((false, format!("repair failed: {e}")));
            }
        }
    }
    let second = diagnose::scan(opts, policy);
    let mut findings = first.findings;
    for (f, note) in findings.iter_mut().zip(notes) {
        let still = second.findings.iter().any(|g| same(f, g));
        match note {
            Some((true, text)) if !still => {
                f.repaired = true;
                f.repair_note = Some(text);
            }
            Some((true, text)) => {
                f.repair_note = Some(format!("applied ({text}) but the check still fails"))
            }
            Some((false, text)) => f.repair_note = Some(text),
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
