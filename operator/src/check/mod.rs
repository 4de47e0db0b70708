//! `warden check`: the whole node scan on one machine, no cluster.

mod args;
pub mod fix;
mod report;
mod table;

use std::io::Write;

use anyhow::Context;
use runtime_core::diagnose::{self, CheckPolicy, ScanOptions, ScanReport};

pub use args::{CheckArgs, OutputFormat};
// `report` computes the exit status from `super::Outcome`.
use crate::exit::Outcome;
use crate::policy_file::{self, LoadedPolicy};
pub use report::Report;

/// Run the scan (and repairs) and print the report.
pub fn run(args: &CheckArgs) -> anyhow::Result<Outcome> {
    if !args.node.host_root.is_dir() {
        anyhow::bail!(
            "--host-root {} is not a directory",
            args.node.host_root.display()
        );
    }
    let loaded = match &args.policy {
        Some(p) => policy_file::load(p)?,
        None => LoadedPolicy::default(),
    };
    let mut check_policy = loaded.check.clone();
    if let Some(secs) = args.stuck_after {
        check_policy.stuck_after = std::time::Duration::try_from_secs_f64(secs)
            .map_err(|e| anyhow::anyhow!("--stuck-after {secs}: {e}"))?;
    }
    let policy = &check_policy;
    let opts = options(args);
    let scan = scan(&opts, policy);
    if args.fix && loaded.audit {
        tracing::warn!("the policy's mode is Audit: --fix only plans, as --dry-run does");
    }
    let report = if args.fix || args.dry_run {
        let plans = fix::plan_all(&scan, &opts, policy);
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
            serde_json::to_writer_pretty(&mut buf, &report).context("encode JSON report")?;
            buf.push(b'\n');
        }
        OutputFormat::Table => table::write(&mut buf, &report).context("format report")?,
    }
    // A reader that stops early (`warden check | head`) is not an error of
    // the scan: the exit status still reports what was found.
    match std::io::stdout().lock().write_all(&buf) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            return Err(anyhow::Error::new(e).context("write report"))
        }
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
