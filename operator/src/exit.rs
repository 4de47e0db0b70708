//! How a `warden` command ends: its exit status.
//!
//! Every subcommand shares it, so it lives apart from any one of them:
//! `lint-profile` and the daemons need no part of `check` to say "exit 2".

use std::process::ExitCode;

/// How a command ended; each maps to one exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing at warning or above (status 0).
    Clean,
    /// At least one unrepaired finding at warning or above (status 1).
    Findings,
    /// The command could not do its work (status 2).
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
