//! `warden check`: the whole node scan on one machine, no cluster.

mod args;
pub mod fix;
mod report;
mod table;

use std::io::Write;
use std::path::PathBuf;
use std::time::TryFromFloatSecsError;

use runtime_core::diagnose::{self, CheckPolicy, ScanOptions, ScanReport};

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
    let opts = options(args);
    let scan = scan(&opts, policy);
    if args.fix && loaded.audit {
        tracing::warn!("the policy's mode is Audit: --fix only plans, as --dry-run does");
    }
    let report = if args.fix || args.dry_run {
        let plans = fix::plan_all(&scan, policy);
        if args.fix && !loaded.audit {
            let scan = fix::apply_all(scan, &plans, &opts, policy);
            Report { scan, plans }
        } else {
            Report { scan, plans }
        }
    } else {
        Report {
            scan,
            plans: Vec::new(),
        }
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

/// Scan options from the command line.
pub fn options(args: &CheckArgs) -> ScanOptions {
    args.node.scan_options()
}

/// Scan the node, noting what a non-root run cannot see.
pub fn scan(opts: &ScanOptions, policy: &CheckPolicy) -> ScanReport {
    let mut report = diagnose::scan(opts, policy);
    if opts.root().is_real() && !runtime_core::host::running_as_root() {
        report.host.unreadable.push(runtime_core::host::Unreadable {
            what: "container state and cgroups".into(),
            path: None,
            error: "not running as root: containers, their cgroups and other users' \
                    processes cannot be inspected; run as root for a full scan"
                .into(),
        });
    }
    report
}
