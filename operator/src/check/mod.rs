//! `warden check`: the whole node scan on one machine, no cluster.

mod report;
mod table;

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use runtime_core::diagnose::{self, CheckPolicy, ScanOptions};
use runtime_core::host::HostRoot;

use crate::cli::{CheckArgs, OutputFormat};
pub use report::Report;

/// How a check ended; each maps to one exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing at warning or above.
    Clean,
    /// At least one unrepaired finding at warning or above.
    Findings,
    /// The scan could not be done.
    Error,
}

impl From<Outcome> for ExitCode {
    fn from(o: Outcome) -> Self {
        ExitCode::from(match o {
            Outcome::Clean => 0,
            Outcome::Findings => 1,
            Outcome::Error => 2,
        })
    }
}

/// Run the scan and print the report.
pub fn run(args: &CheckArgs) -> anyhow::Result<Outcome> {
    if !args.host_root.is_dir() {
        anyhow::bail!(
            "--host-root {} is not a directory",
            args.host_root.display()
        );
    }
    let root = HostRoot::new(&args.host_root);
    let report = scan(&root, &CheckPolicy::default());
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

/// Gather everything `warden check` reports about the host under `root`.
pub fn scan(root: &HostRoot, policy: &CheckPolicy) -> Report {
    let opts = ScanOptions {
        root: root.clone(),
        // Live checks (canary processes, eBPF reads) only make sense on the
        // machine we run on.
        live: root.is_real(),
        ..ScanOptions::real()
    };
    let mut report = diagnose::scan(&opts, policy);
    if root.is_real() && !runtime_core::host::running_as_root() {
        report.host.unreadable.push(runtime_core::host::Unreadable {
            what: "container state and cgroups".into(),
            path: None,
            error: "not running as root: containers, their cgroups and other users' \
                    processes cannot be inspected; run as root for a full scan"
                .into(),
        });
    }
    Report(report)
}
