//! The engine: one cycle of scan → diagnose → plan → apply → verify, the
//! same for `warden check` and `warden agent`, which only drive it (print,
//! schedule, report).
//!
//! A cycle has two steps so that a driver can report the findings before
//! repairs that may take a moment:
//! 1. [`Engine::scan`]: host facts, discovery, every check, and (unless the
//!    mode is [`Mode::Report`]) a pure plan for every finding, read from the
//!    scan's snapshot; in [`Mode::Enforce`] the plans not backing off are
//!    marked to run;
//! 2. [`Engine::repair`]: the marked plans applied under the limits (at
//!    most `max_concurrent` at once, one container's repairs one after
//!    another, none started once `stop` is set), a second scan, and each
//!    first-scan finding marked repaired when its plan applied and the
//!    second scan no longer shows it (by [`FindingId`]); failures back off.
//!
//! Repairs only widen access or end a stuck runtime init; the ones on cgroup
//! v1 that go through systemd freeze the container around the call (see
//! [`crate::repair`]), leaving a crash-recovery marker under
//! `<state-dir>/frozen/`.

mod backoff;
mod budget;
mod describe;
mod workers;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde::Serialize;

pub use backoff::{Backoff, BACKOFF_BASE, BACKOFF_MAX};
pub use budget::{RepairBudget, BUDGET_REPAIRS, BUDGET_WINDOW};
pub use describe::describe;
pub use workers::run_groups;

use crate::checks::CheckId;
use crate::diagnose::{self, CheckPolicy, Finding, FindingId, ScanOptions, ScanReport};
use crate::ports::SystemdSession;
use crate::repair::{self, RepairPlan};

/// What a cycle does about findings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Scan and report; no plans (the agent in Audit mode, a plain `warden
    /// check`).
    Report,
    /// Plan every finding and show the plans; change nothing (`--dry-run`,
    /// and `--fix` under an Audit policy).
    DryRun,
    /// Plan, and repair what is not backing off (`--fix`, the agent in
    /// Enforce mode).
    Enforce,
}

/// How many repairs may run at once, and how long to wait for another
/// Warden's repairs on the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// At most this many repairs at the same time (at least 1).
    pub max_concurrent: usize,
    /// How long a repair round waits for the node's repair lock (held by
    /// the agent or a `warden check --fix` repairing now).
    pub lock_wait: std::time::Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_concurrent: 1,
            lock_wait: std::time::Duration::from_secs(10),
        }
    }
}

/// The node-wide repair lock, `<state-dir>/repair.lock` (flock): the agent
/// and a `warden check --fix` on the same host never repair at once (two
/// repairs of one container could freeze it twice, or thaw each other's
/// freeze). Released when dropped. `Ok(None)` without a state directory.
fn repair_lock(
    opts: &ScanOptions,
    wait: std::time::Duration,
    stop: &AtomicBool,
) -> Result<Option<nix::fcntl::Flock<std::fs::File>>, String> {
    use nix::fcntl::{Flock, FlockArg};
    let Some(dir) = &opts.state_dir else {
        return Ok(None);
    };
    let mut waited = false;
    let dir = opts.root().join(dir);
    let path = dir.join("repair.lock");
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let deadline = Instant::now() + wait;
    loop {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| format!("open {}: {e}", path.display()))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            // The plans were made before the other Warden's repairs ended:
            // they may be stale, so none is applied; the next scan plans
            // from what is there then.
            Ok(_) if waited => return Err(
                "another Warden repaired on this node meanwhile: planned again at the next scan"
                    .into(),
            ),
            Ok(l) => return Ok(Some(l)),
            Err((_, nix::errno::Errno::EWOULDBLOCK))
                if Instant::now() < deadline && !stop.load(Ordering::SeqCst) =>
            {
                waited = true;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                return Err(format!(
                    "another Warden is repairing on this node ({} is held): not repaired this time",
                    path.display()
                ))
            }
            Err((_, e)) => return Err(format!("lock {}: {e}", path.display())),
        }
    }
}

/// A repair considered for one finding.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedRepair {
    /// Index of the finding in the report's `findings`.
    pub finding: usize,
    /// The finding's identity.
    #[serde(skip)]
    pub id: FindingId,
    /// The check id, repeated for readers.
    pub check: CheckId,
    /// The plan, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<RepairPlan>,
    /// Why there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_planned: Option<String>,
}

/// What came of considering one finding's repair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairNote {
    /// The plan was applied without error (the second scan decides whether
    /// it fixed the finding).
    pub applied: bool,
    /// What was done, or why nothing was.
    pub text: String,
}

/// How one repair ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptResult {
    /// Applied, and the rescan no longer shows the finding.
    Repaired,
    /// Failed to apply, or applied and the check still fails.
    Failed,
    /// Applied, but the rescan could not make the check (systemd did not
    /// answer, a cgroup could not be read): unknown, retried after backoff.
    Unverified,
}

impl AttemptResult {
    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptResult::Repaired => "repaired",
            AttemptResult::Failed => "failed",
            AttemptResult::Unverified => "unverified",
        }
    }
}

/// One repair the engine ran.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// The finding as the report shows it after the repair.
    pub finding: Finding,
    /// How it ended.
    pub result: AttemptResult,
    /// What was done, or the error.
    pub note: String,
}

/// Step 1 of a cycle: a scan with its plans, before any repair.
#[derive(Debug)]
pub struct Planned {
    /// The scan.
    pub report: ScanReport,
    /// A plan (or why there is none) per finding (modes DryRun, Enforce).
    pub plans: Vec<PlannedRepair>,
    /// Indices into `plans` of the repairs that will run.
    runnable: Vec<usize>,
    /// Notes for findings that will not be repaired this cycle (no plan,
    /// backing off), by finding index.
    notes: Vec<Option<RepairNote>>,
}

impl Planned {
    /// Whether some repair will run.
    pub fn has_work(&self) -> bool {
        !self.runnable.is_empty()
    }

    /// The cycle without repairs: the report with the notes of findings
    /// left alone.
    pub fn into_round(self) -> Round {
        Round {
            report: annotate(self.report, self.notes),
            plans: self.plans,
            attempts: Vec::new(),
            abandoned: 0,
        }
    }
}

/// What a whole cycle produced.
#[derive(Debug)]
pub struct Round {
    /// The report: after repairs, the first scan's findings marked repaired
    /// or not, plus what only the rescan shows.
    pub report: ScanReport,
    /// The plans considered (empty in [`Mode::Report`]).
    pub plans: Vec<PlannedRepair>,
    /// The repairs that ran.
    pub attempts: Vec<Attempt>,
    /// Repairs not started because `stop` was set.
    pub abandoned: usize,
}

fn annotate(mut report: ScanReport, notes: Vec<Option<RepairNote>>) -> ScanReport {
    for (f, n) in report.findings.iter_mut().zip(notes) {
        if let Some(n) = n {
            f.repair_note = Some(n.text);
        }
    }
    report
}

/// The engine's state between cycles (backoff), and where it scans.
#[derive(Debug)]
pub struct Engine {
    opts: ScanOptions,
    backoff: Backoff,
    budget: RepairBudget,
}

impl Engine {
    /// An engine scanning with `opts`.
    pub fn new(opts: ScanOptions) -> Self {
        Self {
            opts,
            backoff: Backoff::default(),
            budget: RepairBudget::default(),
        }
    }

    /// Where it scans.
    pub fn options(&self) -> &ScanOptions {
        &self.opts
    }

    /// Scan the node, noting what a non-root run cannot see. Freezes that
    /// a dead process left behind (a `warden check --fix` killed mid-repair)
    /// are thawed first, whoever left them.
    fn scan_only(&self, policy: &CheckPolicy) -> ScanReport {
        if let Some(dir) = &self.opts.state_dir {
            let markers = self.opts.root().join(dir.join("frozen"));
            crate::cgroups::freezer::log_sweep(&crate::cgroups::freezer::sweep_markers(
                &markers,
                &self.opts.ports.procfs,
                self.opts.root(),
            ));
        }
        let mut report = diagnose::scan(&self.opts, policy);
        if self.opts.root().is_real() && !crate::host::running_as_root() {
            report.host.unreadable.push(crate::host::Unreadable {
                what: "container state and cgroups".into(),
                path: None,
                error: "not running as root: containers, their cgroups and other users' \
                        processes cannot be inspected; run as root for a full scan"
                    .into(),
            });
        }
        report
    }

    /// Step 1: scan, and plan per `mode` (see the module docs).
    pub fn scan(&mut self, policy: &CheckPolicy, mode: Mode) -> Planned {
        let report = self.scan_only(policy);
        // Forget backoff of findings that are gone; one whose check could
        // not be made this time is not gone.
        self.backoff.retain(
            |k| report.findings.iter().any(|f| &f.id() == k) || not_evaluated(&report, k),
            Instant::now(),
        );
        // A container passed over this scan keeps its budget.
        self.budget
            .retain(|c| report.discovered.iter().any(|d| d.id == c) || passed_over(&report, c));
        let mut notes = vec![None; report.findings.len()];
        let mut plans = Vec::new();
        let mut runnable = Vec::new();
        if mode != Mode::Report {
            let now = Instant::now();
            for (i, f) in report.findings.iter().enumerate() {
                // A finding backing off, or of a container whose repair
                // budget is spent, is not even planned in Enforce mode:
                // planning may ask systemd, and its repair will not run.
                if mode == Mode::Enforce {
                    let held = match (self.backoff.ready(&f.id(), now), &f.container) {
                        (Err(n), _) => Some(format!(
                            "not retried yet: backing off after {n} failed repair(s)"
                        )),
                        (Ok(()), Some(c)) => self.budget.ready(&c.id, now).err().map(|n| {
                            format!(
                                "flapping: repaired {n} times in the last hour, and something \
                                 keeps undoing it; not repaired again until the oldest of those \
                                 is an hour old (find what rewrites the container's device rules)"
                            )
                        }),
                        (Ok(()), None) => None,
                    };
                    if let Some(why) = held {
                        notes[i] = Some(RepairNote {
                            applied: false,
                            text: why.clone(),
                        });
                        plans.push(PlannedRepair {
                            finding: i,
                            id: f.id(),
                            check: f.check,
                            plan: None,
                            not_planned: Some(why),
                        });
                        continue;
                    }
                }
                let p = plan_one(&report, i, f, policy);
                if mode == Mode::Enforce {
                    match &p.plan {
                        None => {
                            notes[i] = Some(RepairNote {
                                applied: false,
                                text: p.not_planned.clone().unwrap_or_default(),
                            })
                        }
                        Some(_) => runnable.push(plans.len()),
                    }
                }
                plans.push(p);
            }
        }
        Planned {
            report,
            plans,
            runnable,
            notes,
        }
    }

    /// Step 2: run the planned repairs under `limits`, rescan, and mark
    /// what was repaired.
    pub fn repair(
        &mut self,
        planned: Planned,
        policy: &CheckPolicy,
        limits: &Limits,
        stop: &AtomicBool,
    ) -> Round {
        let Planned {
            report,
            plans,
            runnable,
            mut notes,
        } = planned;
        // One group per container, in finding order: a container's repairs
        // never run at the same time.
        let mut groups: Vec<(Option<String>, Vec<usize>)> = Vec::new();
        for &j in &runnable {
            let c = plans[j].id.container.clone();
            match groups.iter_mut().find(|(k, _)| *k == c) {
                Some((_, g)) => g.push(j),
                None => groups.push((c, vec![j])),
            }
        }
        if runnable.is_empty() {
            return Round {
                report: annotate(report, notes),
                plans,
                attempts: Vec::new(),
                abandoned: 0,
            };
        }
        let _lock = match repair_lock(&self.opts, limits.lock_wait, stop) {
            Ok(l) => l,
            Err(why) => {
                tracing::warn!(reason = %why, "repairs not run");
                let abandoned = runnable.len();
                for &j in &runnable {
                    notes[plans[j].finding] = Some(RepairNote {
                        applied: false,
                        text: why.clone(),
                    });
                }
                return Round {
                    report: annotate(report, notes),
                    plans,
                    attempts: Vec::new(),
                    abandoned,
                };
            }
        };
        let opts = &self.opts;
        // One systemd connection for the round, shared by its workers.
        let systemd = SystemdSession::new(opts.ports.systemd.clone());
        let results = run_groups(
            groups.into_iter().map(|(_, g)| g).collect(),
            limits.max_concurrent,
            stop,
            |j| apply_one(&plans[j], opts, &systemd),
        );
        let mut ran = Vec::new();
        let mut abandoned = 0;
        for (j, note) in results {
            let i = plans[j].finding;
            match note {
                Some(n) => {
                    notes[i] = Some(n);
                    ran.push(i);
                }
                None => {
                    abandoned += 1;
                    notes[i] = Some(RepairNote {
                        applied: false,
                        text: if stop.load(Ordering::SeqCst) {
                            "abandoned: stopping".into()
                        } else {
                            "abandoned".into()
                        },
                    });
                }
            }
        }
        if ran.is_empty() {
            return Round {
                report: annotate(report, notes),
                plans,
                attempts: Vec::new(),
                abandoned,
            };
        }
        let second = self.scan_only(policy);
        let unverified: std::collections::HashSet<usize> = ran
            .iter()
            .copied()
            .filter(|&i| {
                let id = report.findings[i].id();
                !second.findings.iter().any(|g| g.id() == id) && not_evaluated(&second, &id)
            })
            .collect();
        // An applied repair spends its container's budget once per round,
        // verified or not: each may have frozen it.
        let applied: std::collections::BTreeSet<String> = ran
            .iter()
            .filter(|&&i| notes[i].as_ref().is_some_and(|n| n.applied))
            .filter_map(|&i| report.findings[i].container.as_ref().map(|c| c.id.clone()))
            .collect();
        let report = verify(report, notes, second);
        let now = Instant::now();
        for c in &applied {
            self.budget.spend(c, now);
        }
        let attempts = ran
            .into_iter()
            .map(|i| {
                // verify keeps the first scan's findings in place.
                let f = report.findings[i].clone();
                let result = if f.repaired {
                    self.backoff.succeeded(&f.id());
                    AttemptResult::Repaired
                } else {
                    self.backoff.failed(f.id(), now);
                    if unverified.contains(&i) {
                        AttemptResult::Unverified
                    } else {
                        AttemptResult::Failed
                    }
                };
                Attempt {
                    note: f.repair_note.clone().unwrap_or_default(),
                    finding: f,
                    result,
                }
            })
            .collect();
        Round {
            report,
            plans,
            attempts,
            abandoned,
        }
    }
}

fn plan_one(report: &ScanReport, i: usize, f: &Finding, policy: &CheckPolicy) -> PlannedRepair {
    let container = f
        .container
        .as_ref()
        .and_then(|r| report.discovered.iter().find(|c| c.id == r.id));
    let (plan, not_planned) =
        match repair::plan(f, container, &report.snapshot, &report.host, policy) {
            Ok(p) => (Some(p), None),
            Err(e) => (None, Some(crate::error::chain(&e))),
        };
    PlannedRepair {
        finding: i,
        id: f.id(),
        check: f.check,
        plan,
        not_planned,
    }
}

/// Apply one plan, or note why there is none.
fn apply_one(p: &PlannedRepair, opts: &ScanOptions, systemd: &SystemdSession) -> RepairNote {
    let Some(plan) = &p.plan else {
        return RepairNote {
            applied: false,
            text: p.not_planned.clone().unwrap_or_default(),
        };
    };
    let _span = tracing::info_span!("repair", finding = %p.id).entered();
    match repair::apply(plan, opts, systemd) {
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
            tracing::warn!(error = %crate::error::chain(&e), "repair failed");
            RepairNote {
                applied: false,
                text: format!("repair failed: {}", crate::error::chain(&e)),
            }
        }
    }
}

/// Whether `scan` could not make the check of `id` (for its container, or
/// for every container), or passed over its container while it may still
/// run (state caught half-written, `/proc` unreadable). A container that
/// exited is no longer there to have the problem: its finding is gone (a
/// killed stuck init is repaired that way).
fn not_evaluated(scan: &ScanReport, id: &FindingId) -> bool {
    scan.not_evaluated.contains(&(id.check, None))
        || id.container.as_ref().is_some_and(|c| {
            scan.not_evaluated.contains(&(id.check, Some(c.clone()))) || passed_over(scan, c)
        })
}

/// Whether `scan` passed over container `id` while it may still run (its
/// state dir is named after it, as runc, crun and containerd name them).
fn passed_over(scan: &ScanReport, id: &str) -> bool {
    scan.skipped
        .iter()
        .any(|s| s.transient && s.state_dir.file_name().is_some_and(|n| n == id))
}

/// Fold the repair notes (by finding index of `first`) and a scan made after
/// the repairs into one report: the first scan's findings are kept (so the
/// report says what was wrong) and marked repaired when their plan applied
/// and the second scan no longer shows them (same [`FindingId`]) although it
/// could make their check; findings only the second scan shows are added.
pub fn verify(first: ScanReport, notes: Vec<Option<RepairNote>>, second: ScanReport) -> ScanReport {
    let still: std::collections::HashSet<FindingId> =
        second.findings.iter().map(Finding::id).collect();
    let mut findings = first.findings;
    for (f, note) in findings.iter_mut().zip(notes) {
        let id = f.id();
        match note {
            Some(RepairNote {
                applied: true,
                text,
            }) if !still.contains(&id) && not_evaluated(&second, &id) => {
                f.repair_note = Some(format!(
                    "applied ({text}) but not verified: the check could not be made after the \
                     repair (systemd or the container's state could not be read, or it exited)"
                ));
            }
            Some(RepairNote {
                applied: true,
                text,
            }) if !still.contains(&id) => {
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
    let known: std::collections::HashSet<FindingId> = findings.iter().map(Finding::id).collect();
    let extra: Vec<Finding> = second
        .findings
        .iter()
        .filter(|g| !known.contains(&g.id()))
        .cloned()
        .collect();
    findings.extend(extra);
    ScanReport { findings, ..second }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Severity;
    use crate::discovery::ContainerRef;
    use crate::testing::fixtures::{finding, scan_with};

    fn c(id: &str) -> Option<ContainerRef> {
        Some(ContainerRef {
            id: id.into(),
            runtime: "runc".into(),
            pod_namespace: None,
            pod_name: None,
            container_name: None,
        })
    }

    fn applied(text: &str) -> Option<RepairNote> {
        Some(RepairNote {
            applied: true,
            text: text.into(),
        })
    }

    #[test]
    fn verify_marks_repaired_only_what_the_rescan_could_check_and_no_longer_shows() {
        let broken = |id| finding(CheckId::DeviceAccessBroken, Severity::Error, c(id));
        let latent = |id| finding(CheckId::DeviceRulesLatent, Severity::Error, c(id));
        let first = scan_with(vec![
            broken("a"),
            broken("b"),
            latent("c"),
            broken("d"),
            broken("f"),
            broken("g"),
        ]);
        let mut second = scan_with(vec![broken("b"), broken("e")]);
        // f's state was caught half-written: passed over by the rescan.
        second.skipped.push(crate::discovery::Skipped {
            state_dir: "/run/runc/f".into(),
            reason: "parse /run/runc/f/state.json".into(),
            transient: true,
        });
        // g's init was killed (a stuck runtime init): it exited.
        second.skipped.push(crate::discovery::Skipped {
            state_dir: "/run/runc/g".into(),
            reason: "exited (pid 7 is a zombie, not reaped yet)".into(),
            transient: false,
        });
        // systemd did not answer in the rescan: c's check was not made.
        second
            .not_evaluated
            .insert((CheckId::DeviceRulesLatent, Some("c".into())));
        let notes = vec![
            applied("1 allow write"),
            applied("1 allow write"),
            applied("DeviceAllow rewritten"),
            Some(RepairNote {
                applied: false,
                text: "repair failed: EPERM".into(),
            }),
            applied("1 allow write"),
            applied("killed pid 7"),
        ];
        let r = verify(first, notes, second);
        let by = |id: &str| {
            r.findings
                .iter()
                .find(|f| f.container.as_ref().is_some_and(|x| x.id == id))
                .expect("kept")
                .clone()
        };
        assert!(by("a").repaired, "gone after an applied repair");
        assert!(!by("b").repaired, "still there");
        assert!(by("b")
            .repair_note
            .as_deref()
            .unwrap_or("")
            .contains("still fails"));
        assert!(!by("c").repaired, "not verifiable is not repaired");
        assert!(by("c")
            .repair_note
            .as_deref()
            .unwrap_or("")
            .contains("not verified"));
        assert!(!by("d").repaired);
        assert_eq!(by("d").repair_note.as_deref(), Some("repair failed: EPERM"));
        assert!(!by("e").repaired, "new in the rescan, added");
        assert!(
            !by("f").repaired,
            "a container the rescan passed over is not verified"
        );
        assert!(by("f")
            .repair_note
            .as_deref()
            .unwrap_or("")
            .contains("not verified"));
        assert!(by("g").repaired, "an exited container's problem is gone");
        assert_eq!(r.findings.len(), 7);
    }
}
