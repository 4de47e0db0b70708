//! Notify-safety analysis: a [`Profile`] in, [`Issue`]s out.
//!
//! Pure: no I/O, no runtime calls. The runtimes a profile will meet are given
//! as [`Target`]s (from host facts on a node, from `--runtime` in a CI lint,
//! or every known runtime at any version when nothing is known).
//!
//! This module holds the inputs and output ([`Target`], [`Context`],
//! [`Issue`]) and [`analyze`], which runs one module per family of checks:
//! `values` (invalid values), `runtime_compat` (what one runtime refuses
//! and another accepts), `notify_setup` (default action and listener),
//! `notify_syscalls` (which syscalls are notified), `names` (unknown
//! syscalls) and `duplicates` (repeated and conflicting rules).

mod duplicates;
mod names;
mod notify_setup;
mod notify_syscalls;
mod runtime_compat;
#[cfg(test)]
mod tests;
mod values;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::checks::{CheckId, Severity};
use crate::host::{RuntimeInfo, RuntimeKind};

use super::profile::{Profile, ProfileSource};
use super::runtimes::Version;

use duplicates::check_duplicates;
use names::check_names;
use notify_setup::check_notify_setup;
use notify_syscalls::check_notify_syscalls;
use runtime_compat::check_runtime_compat;
use values::check_values;

/// One thing a profile gets wrong, before any container uses it: what the
/// analysis knows from the profile and its targets alone. Diagnosis turns the
/// ones that concern a running container into findings about that container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Issue {
    /// Which check found it (one of the seccomp profile ids, see the module
    /// docs of [`crate::seccomp`]).
    pub check: CheckId,
    /// How bad it is.
    pub severity: Severity,
    /// One sentence a profile author can act on.
    pub message: String,
    /// Facts that back it (JSON path, syscall, per-runtime effect), as
    /// key/value text.
    pub evidence: BTreeMap<String, String>,
}

/// A runtime the profile will be used with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Target {
    /// Which runtime.
    pub kind: RuntimeKind,
    /// Its version; `None` means "any version" (every row applies).
    pub version: Option<Version>,
}

impl Target {
    /// The OCI runtimes the table knows, at any version: the default when a
    /// profile is linted away from any node.
    pub fn all_known() -> Vec<Target> {
        [RuntimeKind::Runc, RuntimeKind::Crun]
            .into_iter()
            .map(|kind| Target {
                kind,
                version: None,
            })
            .collect()
    }

    /// The target for a runtime found on a host.
    pub fn from_runtime_info(info: &RuntimeInfo) -> Target {
        Target {
            kind: info.kind,
            version: info.semver(),
        }
    }

    /// `runc`, `crun@1.8.1`, `runc@1.1` (missing parts are 0).
    pub fn parse(s: &str) -> Result<Target, String> {
        let (name, ver) = match s.split_once('@') {
            Some((n, v)) => (n, Some(v)),
            None => (s, None),
        };
        let kind = match name {
            "runc" => RuntimeKind::Runc,
            "crun" => RuntimeKind::Crun,
            other => return Err(format!("unknown runtime {other:?} (runc, crun)")),
        };
        let version = match ver {
            None => None,
            Some(v) => {
                let mut parts = v.trim_start_matches('v').split('.').map(str::parse::<u32>);
                let mut next = || {
                    parts
                        .next()
                        .transpose()
                        .map_err(|e| format!("version {v:?}: {e}"))
                };
                let major = next()?.ok_or_else(|| format!("version {v:?} is empty"))?;
                Some((major, next()?.unwrap_or(0), next()?.unwrap_or(0)))
            }
        };
        Ok(Target { kind, version })
    }

    fn label(&self) -> String {
        match self.version {
            Some((a, b, c)) => format!("{} {a}.{b}.{c}", self.kind.binary()),
            None => self.kind.binary().to_string(),
        }
    }
}

/// What the analysis knows besides the profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    /// Where the profile came from.
    pub source: ProfileSource,
    /// Runtimes to judge it against; empty means [`Target::all_known`].
    pub targets: Vec<Target>,
    /// `noNewPrivileges` of the containers, when known from outside the
    /// profile (a pod's `allowPrivilegeEscalation: false`); overrides an OCI
    /// config's own. `None` with a standalone profile: both settings count.
    pub no_new_privileges: Option<bool>,
}

impl Default for Context {
    fn default() -> Self {
        Context {
            source: ProfileSource::Standalone,
            targets: Target::all_known(),
            no_new_privileges: None,
        }
    }
}

/// Analyse `profile`; issues come in rule order, document-level first.
pub fn analyze(profile: &Profile, ctx: &Context) -> Vec<Issue> {
    let targets = if ctx.targets.is_empty() {
        Target::all_known()
    } else {
        ctx.targets.clone()
    };
    let nnp = ctx.no_new_privileges.or(match ctx.source {
        ProfileSource::OciConfig { no_new_privileges } => no_new_privileges,
        ProfileSource::Standalone => None,
    });
    // One family after the other: the report lists what makes every runtime
    // refuse the profile first, and noise (duplicates) last.
    let mut out = Vec::new();
    check_values(profile, &mut out);
    check_runtime_compat(profile, ctx, &targets, &mut out);
    check_notify_setup(profile, ctx, &targets, &mut out);
    check_notify_syscalls(profile, &targets, nnp, &mut out);
    check_names(profile, &mut out);
    check_duplicates(profile, &mut out);
    out
}

/// An issue whose evidence is given as pairs, so each check can list it
/// inline; the map sorts the keys.
fn issue(
    check: CheckId,
    severity: Severity,
    message: String,
    evidence: &[(&str, String)],
) -> Issue {
    Issue {
        check,
        severity,
        message,
        evidence: evidence
            .iter()
            .map(|(k, v)| ((*k).to_string(), v.clone()))
            .collect(),
    }
}

/// The architecture strings a profile names, with their JSON paths.
fn arch_strings(p: &Profile) -> Vec<(String, &str)> {
    let mut v: Vec<(String, &str)> = p
        .architectures
        .iter()
        .enumerate()
        .map(|(i, a)| (format!("architectures[{i}]"), a.as_str()))
        .collect();
    for (i, m) in p.arch_map.iter().enumerate() {
        v.push((
            format!("archMap[{i}].architecture"),
            m.architecture.as_str(),
        ));
        for (j, s) in m.sub_architectures.iter().enumerate() {
            v.push((format!("archMap[{i}].subArchitectures[{j}]"), s.as_str()));
        }
    }
    v
}
