//! How a `warden` command ends: its exit status, and what it prints on
//! stderr when it fails.
//!
//! Every subcommand shares these, so they live apart from any one of them:
//! `lint-profile` and the daemons need no part of `check` to say "exit 2".

use std::error::Error;
use std::fmt;
use std::process::ExitCode;

use crate::error_chain;

/// What to do when no cluster configuration is usable. `operator` and
/// `agent` both need a cluster; the commands that do not are the way out.
pub const NO_CLUSTER_HINT: &str = "run inside a cluster, or set KUBECONFIG / ~/.kube/config; \
     for one node without a cluster use `warden check` or `warden agent --standalone`";

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

/// A failed command, as printed on stderr:
///
/// ```text
/// warden: error: connect to the cluster
///   caused by: failed to read kubeconfig ...
/// hint: run inside a cluster, ...
/// ```
///
/// Each cause is printed once (see [`error_chain::lines`]); the hint, when
/// there is one, says what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The error's message, then its distinct causes.
    lines: Vec<String>,
    /// What to do about it.
    hint: Option<&'static str>,
}

impl Failure {
    /// The failure `error` describes, without a hint.
    pub fn new(error: &(dyn Error + 'static)) -> Self {
        Self {
            lines: error_chain::lines(error),
            hint: None,
        }
    }

    /// Add advice to print after the causes.
    #[must_use]
    pub fn with_hint(mut self, hint: Option<&'static str>) -> Self {
        self.hint = hint;
        self
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut lines = self.lines.iter();
        if let Some(top) = lines.next() {
            writeln!(f, "warden: error: {top}")?;
        }
        for cause in lines {
            writeln!(f, "  caused by: {cause}")?;
        }
        if let Some(hint) = self.hint {
            writeln!(f, "hint: {hint}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("read policy p.yaml")]
    struct Read(#[source] std::io::Error);

    #[test]
    fn a_failure_prints_its_causes_then_the_hint() {
        let e = Read(std::io::Error::from(std::io::ErrorKind::NotFound));
        assert_eq!(
            Failure::new(&e).with_hint(Some("create it")).to_string(),
            "warden: error: read policy p.yaml\n  caused by: entity not found\nhint: create it\n"
        );
        assert_eq!(
            Failure::new(&e).to_string(),
            "warden: error: read policy p.yaml\n  caused by: entity not found\n"
        );
    }
}
