//! `shim-fd-leak`: a containerd shim whose eventfd count keeps growing
//! (seed 002: an OOM-monitor eventfd leaked on every exec, one a second with
//! 1-second exec probes).
//!
//! A single scan cannot see growth, so each shim's eventfd count is kept
//! under the scan state directory (`/run/warden/shim-fds.json`), keyed by
//! pid *and* start time so a recycled pid starts afresh.

use std::collections::BTreeMap;
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};

use super::seccomp_stuck::node_processes;
use super::{state, Ctx};
use crate::checks::CheckId;
use crate::diagnose::cause::{Cause, ShimCause};
use crate::diagnose::{Finding, Severity};

/// Process names (`comm`, 15 bytes at most) of shims.
const SHIM_COMM_PREFIX: &str = "containerd-shim";

/// The persisted observation of one shim.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ShimSample {
    /// eventfds when first seen.
    pub first_count: usize,
    /// Unix seconds when first seen.
    pub first_seen: f64,
    /// eventfds at the previous scan.
    pub last_count: usize,
    /// Unix seconds of the previous scan.
    pub last_seen: f64,
    /// Unix seconds when the count last changed: the growth rate is taken
    /// over `first_seen..last_change`, so an unchanged count reports the
    /// same rate scan after scan (a report that changes every scan would be
    /// re-applied every scan).
    #[serde(default)]
    pub last_change: f64,
}

const STATE_FILE: &str = "shim-fds.json";

/// The most fds a shim's table is read for; past it, the table is not read
/// (a process that names itself a shim must not make every scan expensive).
const MAX_SHIM_FDS: usize = 65_536;

pub(in crate::diagnose) fn check(ctx: &Ctx<'_>) -> Vec<Finding> {
    let Some(path) = state::path(ctx, STATE_FILE) else {
        return Vec::new();
    };
    let mut previous: BTreeMap<String, ShimSample> = state::load(&path);
    let now = ctx
        .now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);

    let mut current = BTreeMap::new();
    let mut out = Vec::new();
    for p in node_processes(ctx) {
        // The node's process table holds each process's name and the start
        // time that keys the saved count.
        let (pid, main) = (p.pid, &p.stat);
        if !main.comm.starts_with(SHIM_COMM_PREFIX) {
            continue;
        }
        let start = main.start_time;
        let count = match ctx.procfs.eventfd_count_capped(pid, MAX_SHIM_FDS) {
            Ok(Some(n)) => n,
            Ok(None) => {
                ctx.unreadable(crate::host::Unreadable {
                    what: format!("fds of shim pid {pid} (shim-fd-leak not evaluated)"),
                    path: None,
                    error: format!("more than {MAX_SHIM_FDS} open: not enumerated"),
                });
                continue;
            }
            Err(_) => continue,
        };
        let key = format!("{pid}:{start}");
        let sample = match previous.remove(&key) {
            Some(p) => ShimSample {
                last_change: if count != p.last_count {
                    now
                } else {
                    p.last_change
                },
                last_count: count,
                last_seen: now,
                ..p
            },
            None => ShimSample {
                first_count: count,
                first_seen: now,
                last_count: count,
                last_seen: now,
                last_change: now,
            },
        };
        let growth = sample.last_count.saturating_sub(sample.first_count);
        if growth >= ctx.policy.shim_fd_growth as usize {
            let minutes = ((sample.last_change - sample.first_seen) / 60.0).max(1.0 / 60.0);
            out.push(Finding::new(
                CheckId::ShimFdLeak,
                Severity::Warning,
                None,
                Cause::ShimLeak(ShimCause {
                    pid,
                    comm: main.comm.clone(),
                    start_time: start,
                    count,
                    first_count: sample.first_count,
                    per_minute: growth as f64 / minutes,
                }),
            ));
        }
        current.insert(key, sample);
    }
    // Shims that exited are dropped from the state with `previous`.
    state::save(&path, &current);
    out
}
