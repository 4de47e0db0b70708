//! `warden check`: the whole node scan on one machine, no cluster.

mod args;
mod report;
mod table;

use std::io::Write;
use std::path::PathBuf;
use std::time::TryFromFloatSecsError;

use std::sync::atomic::AtomicBool;

use runtime_core::diagnose::ScanOptions;
use runtime_core::engine::{Engine, Limits, Mode};

pub use args::{CheckArgs, OutputFormat};
// `report` computes the exit status from `super::Outcome`.
use crate::exit::Outcome;
use crate::policy_file::{self, LoadedPolicy, PolicyFileError};
pub use report::Report;

/// Why `warden check` could not scan or print its report (exit status 2).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// `--host-root` does not name a directory.
    #[error("--host-root {} is not a directory", path.display())]
    HostRoot {
        /// The path given.
        path: PathBuf,
    },
    /// The `--policy` file is unusable (the error names the file).
    #[error(transparent)]
    Policy(#[from] PolicyFileError),
    /// `--stuck-after` is negative, not a number or too large.
    #[error("--stuck-after {secs}")]
    StuckAfter {
        /// The value given.
        secs: f64,
        /// Why it is no duration.
        #[source]
        source: TryFromFloatSecsError,
    },
    /// The report could not be encoded as JSON.
    #[error("encode the JSON report")]
    Json(#[source] serde_json::Error),
    /// The table could not be formatted.
    #[error("format the report")]
    Format(#[source] std::io::Error),
    /// The report could not be written to stdout.
    #[error("write the report to stdout")]
    Write(#[source] std::io::Error),
}

/// Run the scan (and repairs) and print the report.
pub fn run(args: &CheckArgs) -> Result<Outcome, CheckError> {
    if !args.node.host_root.is_dir() {
        return Err(CheckError::HostRoot {
            path: args.node.host_root.clone(),
        });
    }
    let loaded = match &args.policy {
        Some(p) => policy_file::load(p)?,
        None => LoadedPolicy::default(),
    };
    let mut check_policy = loaded.check.clone();
    if let Some(secs) = args.stuck_after {
        check_policy.stuck_after = std::time::Duration::try_from_secs_f64(secs)
            .map_err(|source| CheckError::StuckAfter { secs, source })?;
    }
    let policy = &check_policy;
    if args.fix && loaded.audit {
        tracing::warn!("the policy's mode is Audit: --fix only plans, as --dry-run does");
    }
    let mode = match (args.fix, args.dry_run) {
        (true, _) if !loaded.audit => Mode::Enforce,
        (true, _) | (false, true) => Mode::DryRun,
        (false, false) => Mode::Report,
    };
    // The same two engine steps the agent runs, once: scan and plan, then
    // (with --fix) repair, rescan and mark what was repaired.
    let mut engine = Engine::new(options(args));
    let planned = engine.scan(policy, mode);
    let round = if mode == Mode::Enforce {
        // Ctrl-C or SIGTERM while repairing: the running repair finishes
        // (and thaws what it froze), the rest is abandoned, and the report
        // is printed, instead of dying inside a freeze.
        let stop = stop_on_signals();
        engine.repair(planned, policy, &Limits::default(), &stop)
    } else {
        planned.into_round()
    };
    let report = Report {
        scan: round.report,
        plans: round.plans,
    };
    let mut buf = Vec::new();
    match args.output {
        OutputFormat::Json => {
            serde_json::to_writer_pretty(&mut buf, &report).map_err(CheckError::Json)?;
            buf.push(b'\n');
        }
        OutputFormat::Table => table::write(&mut buf, &report).map_err(CheckError::Format)?,
    }
    // A reader that stops early (`warden check | head`) is not an error of
    // the scan: the exit status still reports what was found.
    match std::io::stdout().lock().write_all(&buf) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(CheckError::Write(e)),
        _ => {}
    }
    Ok(report.outcome())
}

/// A flag set by the first SIGINT or SIGTERM (watched by a small thread of
/// its own, as `check` has no async runtime of its own).
fn stop_on_signals() -> std::sync::Arc<AtomicBool> {
    use std::sync::atomic::Ordering;
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let flag = std::sync::Arc::clone(&stop);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    match rt {
        Ok(rt) => {
            std::thread::spawn(move || {
                rt.block_on(async move {
                    use tokio::signal::unix::{signal, SignalKind};
                    let (Ok(mut term), Ok(mut int)) = (
                        signal(SignalKind::terminate()),
                        signal(SignalKind::interrupt()),
                    ) else {
                        let _ = ready_tx.send(());
                        return;
                    };
                    let _ = ready_tx.send(());
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                    flag.store(true, Ordering::SeqCst);
                    eprintln!(
                        "warden: stopping: the running repair finishes and thaws what it froze; \
                         the others are not started"
                    );
                });
            });
            // The handlers are in place before any repair starts.
            let _ = ready_rx.recv_timeout(std::time::Duration::from_secs(1));
        }
        Err(e) => tracing::warn!(error = %e, "no signal handling: Ctrl-C ends repairs abruptly"),
    }
    stop
}

/// Scan options from the command line.
pub fn options(args: &CheckArgs) -> ScanOptions {
    args.node.scan_options()
}
