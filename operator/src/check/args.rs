//! `warden check`'s command line.
//!
//! Kept with the command rather than in `cli.rs` so that `check` depends on
//! nothing above it: `cli` names this type, and `check` never looks back.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

/// Arguments of `warden check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Output format: a table for people, JSON for machines.
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// Host root and runtime state directories.
    #[command(flatten)]
    pub node: crate::node_args::NodeArgs,
    /// Apply the repair of every repairable finding, then scan again and
    /// mark what was fixed. Repairs never narrow a container's device access
    /// and are safe to repeat.
    #[arg(long, conflicts_with = "dry_run")]
    pub fix: bool,
    /// Print the repair plans `--fix` would apply, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// A RuntimePolicy YAML file (as applied to a cluster); without it the
    /// built-in defaults, which equal the CRD defaults, are used.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// A task blocked in a seccomp notification longer than this many
    /// seconds is reported stuck (default 10). Not a policy field: an
    /// advanced knob for tests and for nodes that start containers slowly.
    #[arg(long, value_name = "SECONDS", hide = true)]
    pub stuck_after: Option<f64>,
}

/// Report format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned text for a terminal.
    Table,
    /// `{"host": {...}, "findings": [...]}`.
    Json,
}
