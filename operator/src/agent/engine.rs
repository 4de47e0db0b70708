//! The engine: `warden check`'s scan and repairs (the same functions, not a
//! copy), run under the policy's mode and limits.
//!
//! A cycle is a scan and, in Enforce mode, the repairs it calls for:
//! - at most `maxConcurrentRepairs` repairs run at once (worker threads);
//! - a container's repairs run one after another on one worker, and cycles
//!   never overlap, so two repairs never touch one container at once;
//! - a repair that fails (or applies but leaves the check failing) is not
//!   retried before its backoff ends (10 s, doubling to 10 min), so a
//!   container that cannot be repaired does not cost a repair every scan;
//! - when the agent is asked to stop, repairs not yet started are abandoned;
//!   the one running finishes (a repair is a few writes or bpf calls and
//!   never freezes anything: it only widens access).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use runtime_core::diagnose::{Finding, ScanOptions, ScanReport};

use super::config::AgentPolicy;
use crate::check;
use crate::check::fix::{self, PlannedRepair, RepairNote};

/// First backoff after a failed repair.
const BACKOFF_BASE: Duration = Duration::from_secs(10);
/// Longest backoff.
const BACKOFF_MAX: Duration = Duration::from_secs(600);

/// A finding's identity across scans: the container (none for the host) and
/// the check.
pub type FindingKey = (Option<String>, String);

/// The key of `f`.
pub fn key(f: &Finding) -> FindingKey {
    (
        f.container.as_ref().map(|c| c.id.clone()),
        f.check.to_string(),
    )
}

/// Per-finding backoff after failed repairs.
#[derive(Debug, Default)]
pub struct Backoff {
    entries: HashMap<FindingKey, (u32, Instant)>,
}

impl Backoff {
    /// Whether a repair of `k` may run at `now`; `Err(failures)` while
    /// backing off.
    pub fn ready(&self, k: &FindingKey, now: Instant) -> Result<(), u32> {
        match self.entries.get(k) {
            Some((n, until)) if now < *until => Err(*n),
            _ => Ok(()),
        }
    }

    /// Record a failed repair of `k`.
    pub fn failed(&mut self, k: FindingKey, now: Instant) {
        let n = self.entries.get(&k).map_or(0, |e| e.0) + 1;
        let delay = BACKOFF_BASE
            .saturating_mul(1u32 << (n - 1).min(16))
            .min(BACKOFF_MAX);
        self.entries.insert(k, (n, now + delay));
    }

    /// Record a successful repair of `k`.
    pub fn succeeded(&mut self, k: &FindingKey) {
        self.entries.remove(k);
    }

    /// Forget findings the last scan no longer shows (a deleted container,
    /// a problem that went away), so the table does not grow.
    pub fn retain(&mut self, live: impl Fn(&FindingKey) -> bool) {
        self.entries.retain(|k, _| live(k));
    }
}

/// How one repair ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptResult {
    /// Applied, and the rescan no longer shows the finding.
    Repaired,
    /// Failed to apply, or applied and the check still fails.
    Failed,
}

impl AttemptResult {
    /// The metric label value.
    pub fn as_str(&self) -> &'static str {
        match self {
            AttemptResult::Repaired => "repaired",
            AttemptResult::Failed => "failed",
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

/// A scan with its repair plans, before any repair.
#[derive(Debug)]
pub struct Planned {
    /// The scan.
    pub report: ScanReport,
    /// Plans that will run (Enforce mode, not backing off).
    runnable: Vec<PlannedRepair>,
    /// Notes for findings that will not be repaired this cycle (no plan,
    /// backing off), indexed like `report.findings`.
    notes: Vec<Option<RepairNote>>,
}

impl Planned {
    /// Whether some repair will run.
    pub fn has_work(&self) -> bool {
        !self.runnable.is_empty()
    }

    /// The report with the notes of findings left alone, for a cycle that
    /// repairs nothing.
    pub fn into_report(self) -> ScanReport {
        annotate(self.report, self.notes)
    }
}

fn annotate(mut report: ScanReport, notes: Vec<Option<RepairNote>>) -> ScanReport {
    for (f, n) in report.findings.iter_mut().zip(notes) {
        if let Some(n) = n {
            f.repair_note = Some(n.text);
        }
    }
    report
}

/// What a repair round produced.
#[derive(Debug)]
pub struct RepairRound {
    /// The report after the repairs (`warden check --fix`'s shape: first
    /// scan's findings marked repaired or not, plus what only the rescan
    /// shows).
    pub report: ScanReport,
    /// The repairs that ran.
    pub attempts: Vec<Attempt>,
    /// Repairs not started because the agent is stopping.
    pub abandoned: usize,
}

/// The engine's state between cycles.
#[derive(Debug)]
pub struct Engine {
    opts: ScanOptions,
    backoff: Backoff,
}

impl Engine {
    /// An engine scanning with `opts`.
    pub fn new(opts: ScanOptions) -> Self {
        Self {
            opts,
            backoff: Backoff::default(),
        }
    }

    /// Scan, and in Enforce mode plan the repairs (the same functions as
    /// `warden check --fix`).
    pub fn scan(&mut self, policy: &AgentPolicy) -> Planned {
        let report = check::scan(&self.opts, &policy.check);
        self.backoff
            .retain(|k| report.findings.iter().any(|f| &key(f) == k));
        let mut notes = vec![None; report.findings.len()];
        let mut runnable = Vec::new();
        if policy.enforce {
            let now = Instant::now();
            for p in fix::plan_all(&report, &policy.check) {
                let i = p.finding;
                if p.plan.is_none() {
                    notes[i] = Some(fix::apply_one(&p, &self.opts));
                    continue;
                }
                match self.backoff.ready(&key(&report.findings[i]), now) {
                    Ok(()) => runnable.push(p),
                    Err(n) => {
                        notes[i] = Some(RepairNote {
                            applied: false,
                            text: format!(
                                "not retried yet: backing off after {n} failed repair(s)"
                            ),
                        })
                    }
                }
            }
        }
        Planned {
            report,
            runnable,
            notes,
        }
    }

    /// Run the planned repairs under the policy's limits, rescan, and mark
    /// what was repaired.
    pub fn repair(
        &mut self,
        planned: Planned,
        policy: &AgentPolicy,
        stop: &AtomicBool,
    ) -> RepairRound {
        let Planned {
            report,
            runnable,
            mut notes,
        } = planned;
        // One group per container, in finding order.
        let mut groups: Vec<(Option<String>, Vec<usize>)> = Vec::new();
        for (j, p) in runnable.iter().enumerate() {
            let c = key(&report.findings[p.finding]).0;
            match groups.iter_mut().find(|(k, _)| *k == c) {
                Some((_, g)) => g.push(j),
                None => groups.push((c, vec![j])),
            }
        }
        let opts = &self.opts;
        let results = run_groups(
            groups.into_iter().map(|(_, g)| g).collect(),
            policy.max_concurrent_repairs,
            stop,
            |j| fix::apply_one(&runnable[j], opts),
        );
        let mut ran = Vec::new();
        let mut abandoned = 0;
        for (j, note) in results {
            let i = runnable[j].finding;
            match note {
                Some(n) => {
                    notes[i] = Some(n);
                    ran.push(i);
                }
                None => {
                    abandoned += 1;
                    notes[i] = Some(RepairNote {
                        applied: false,
                        text: "abandoned: the agent is shutting down".into(),
                    });
                }
            }
        }
        if ran.is_empty() {
            return RepairRound {
                report: annotate(report, notes),
                attempts: Vec::new(),
                abandoned,
            };
        }
        let second = check::scan(&self.opts, &policy.check);
        let report = fix::mark_repaired(report, notes, second);
        let now = Instant::now();
        let attempts = ran
            .into_iter()
            .map(|i| {
                // mark_repaired keeps the first scan's findings in place.
                let f = report.findings[i].clone();
                let result = if f.repaired {
                    self.backoff.succeeded(&key(&f));
                    AttemptResult::Repaired
                } else {
                    self.backoff.failed(key(&f), now);
                    AttemptResult::Failed
                };
                Attempt {
                    note: f.repair_note.clone().unwrap_or_default(),
                    finding: f,
                    result,
                }
            })
            .collect();
        RepairRound {
            report,
            attempts,
            abandoned,
        }
    }
}

/// Run `groups` of jobs on at most `max` worker threads: the jobs of one
/// group in order on one worker, groups in parallel. Jobs not started once
/// `stop` is set come back as `None`.
pub fn run_groups<T: Send>(
    groups: Vec<Vec<usize>>,
    max: usize,
    stop: &AtomicBool,
    job: impl Fn(usize) -> T + Sync,
) -> Vec<(usize, Option<T>)> {
    let workers = max.max(1).min(groups.len());
    let queue = Mutex::new(VecDeque::from(groups));
    let out = Mutex::new(Vec::new());
    let next = || {
        queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop_front()
    };
    let push = |j: usize, r: Option<T>| {
        out.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((j, r));
    };
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                while let Some(group) = next() {
                    for j in group {
                        if stop.load(Ordering::SeqCst) {
                            push(j, None);
                        } else {
                            push(j, Some(job(j)));
                        }
                    }
                }
            });
        }
    });
    let mut out = out
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    out.sort_by_key(|(j, _)| *j);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn groups_run_in_parallel_up_to_the_limit_and_never_overlap_per_container() {
        // 6 containers with 3 repairs each; job j belongs to container j / 3.
        let groups: Vec<Vec<usize>> = (0..6).map(|c| (c * 3..c * 3 + 3).collect()).collect();
        for max in [1usize, 2, 4] {
            let running = AtomicUsize::new(0);
            let peak = AtomicUsize::new(0);
            let busy = Mutex::new(HashSet::new());
            let stop = AtomicBool::new(false);
            let out = run_groups(groups.clone(), max, &stop, |j| {
                let c = j / 3;
                assert!(
                    busy.lock().unwrap().insert(c),
                    "two repairs on container {c} at once"
                );
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(20));
                running.fetch_sub(1, Ordering::SeqCst);
                busy.lock().unwrap().remove(&c);
                j * 10
            });
            assert_eq!(out.len(), 18);
            assert!(out.iter().all(|(j, r)| *r == Some(j * 10)));
            let p = peak.load(Ordering::SeqCst);
            assert!(p <= max, "max {max}, peak {p}");
            if max > 1 {
                assert!(p > 1, "max {max}: repairs of different containers overlap");
            }
        }
    }

    #[test]
    fn a_stop_abandons_what_has_not_started() {
        let stop = AtomicBool::new(false);
        let out = run_groups(vec![vec![0, 1, 2]], 1, &stop, |j| {
            if j == 0 {
                stop.store(true, Ordering::SeqCst);
            }
            j
        });
        assert_eq!(out, vec![(0, Some(0)), (1, None), (2, None)]);
    }

    #[test]
    fn backoff_doubles_and_resets() {
        let mut b = Backoff::default();
        let k: FindingKey = (Some("c1".into()), "device-access-broken".into());
        let t0 = Instant::now();
        assert_eq!(b.ready(&k, t0), Ok(()));
        b.failed(k.clone(), t0);
        assert_eq!(b.ready(&k, t0 + Duration::from_secs(9)), Err(1));
        assert_eq!(b.ready(&k, t0 + Duration::from_secs(10)), Ok(()));
        b.failed(k.clone(), t0);
        assert_eq!(b.ready(&k, t0 + Duration::from_secs(19)), Err(2));
        for _ in 0..20 {
            b.failed(k.clone(), t0);
        }
        assert_eq!(b.ready(&k, t0 + BACKOFF_MAX), Ok(()), "capped");
        b.succeeded(&k);
        assert_eq!(b.ready(&k, t0), Ok(()));
        b.failed(k.clone(), t0);
        b.retain(|_| false);
        assert_eq!(b.ready(&k, t0), Ok(()), "gone findings are forgotten");
    }
}
