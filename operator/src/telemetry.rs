//! Logging set-up. Logs go to stderr so that stdout stays the report.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::cli::{Command, LogFormat};

/// Whether `command` prints its result on stdout (a report, YAML) and so
/// should log only warnings by default.
pub fn quiet(command: &Command) -> bool {
    match command {
        Command::Check(_) | Command::LintProfile(_) | Command::Crds(_) => true,
        Command::Operator(_) | Command::Agent(_) => false,
    }
}

/// Install the global subscriber. `RUST_LOG` wins over `-v`.
///
/// `quiet` is for one-shot commands whose stdout is the report (`check`,
/// `lint-profile`): they log only warnings by default. The long-running
/// `operator` and `agent` log at `info`, so that leadership changes, repairs
/// and status writes show without `-v`.
pub fn init(format: LogFormat, verbose: u8, quiet: bool) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(default_level(verbose, quiet)));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Escape codes are noise in files and log collectors.
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    // A second init (tests) is harmless: keep the first subscriber.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// The filter used when `RUST_LOG` is not set.
fn default_level(verbose: u8, quiet: bool) -> &'static str {
    match (verbose, quiet) {
        (0, true) => "warn",
        (0, false) => "info",
        (1, _) => "debug",
        _ => "trace",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daemons_log_info_and_reports_stay_quiet() {
        assert_eq!(default_level(0, false), "info");
        assert_eq!(default_level(0, true), "warn");
        assert_eq!(default_level(1, true), "debug");
        assert_eq!(default_level(2, false), "trace");
    }
}
