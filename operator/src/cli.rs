//! Command-line definitions.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Runtime Warden keeps container runtimes on Kubernetes nodes from hurting the
/// workloads they run: it finds device-rule, freezer, seccomp-notify and shim
/// hazards on a node and repairs broken containers without restarting them.
#[derive(Debug, Parser)]
#[command(name = "warden", version, propagate_version = true)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "WARDEN_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// More log detail (-v debug, -vv trace). `RUST_LOG` overrides it.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log line format.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object a line, for log pipelines.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Scan this node: host facts, containers, hazards. No cluster needed.
    ///
    /// Exit status: 0 when nothing at warning or above was found, 1 when
    /// something was, 2 when the scan itself failed. Without root the scan
    /// still runs and lists what it could not inspect.
    Check(CheckArgs),
}

/// Arguments of `warden check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Output format: a table for people, JSON for machines.
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// Inspect a host whose root filesystem is mounted here instead of `/`
    /// (for example `/host` inside the agent's container).
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub host_root: PathBuf,
}

/// Report format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned text for a terminal.
    Table,
    /// `{"host": {...}, "findings": [...]}`.
    Json,
}
