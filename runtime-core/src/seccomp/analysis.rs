//! Notify-safety analysis: a [`Profile`] in, [`Issue`]s out.
//!
//! Pure: no I/O, no runtime calls. The runtimes a profile will meet are given
//! as [`Target`]s (from host facts on a node, from `--runtime` in a CI lint,
//! or every known runtime at any version when nothing is known).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::checks::{CheckId, Severity};
use crate::host::{RuntimeInfo, RuntimeKind};

use super::profile::{Action, Profile, ProfileSource, SyscallRule, FLAGS, OPERATORS};
use super::runtimes::{self, NotifyEffect, NotifyRow, Version};
use super::syscalls::{known_on_any, Arch};

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

/// Analyse `profile`; findings come in rule order, document-level first.
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
    let mut out = Vec::new();
    check_values(profile, &mut out);
    check_runtime_compat(profile, ctx, &targets, &mut out);
    check_notify_setup(profile, ctx, &targets, &mut out);
    check_notify_syscalls(profile, &targets, nnp, &mut out);
    check_names(profile, &mut out);
    check_duplicates(profile, &mut out);
    out
}

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

/// Values every runtime refuses: unknown actions, architectures, flags,
/// operators, argument indexes beyond the six syscall arguments.
fn check_values(p: &Profile, out: &mut Vec<Issue>) {
    let invalid = |path: String, value: &str, what: &str| {
        issue(
            CheckId::SeccompInvalidValue,
            Severity::Error,
            format!(
                "{path}: {value:?} is not a valid seccomp {what}; runc and crun refuse the profile"
            ),
            &[("path", path.clone()), ("value", value.to_string())],
        )
    };
    if Action::parse(&p.default_action) == Action::Unknown {
        out.push(invalid("defaultAction".into(), &p.default_action, "action"));
    }
    for (path, a) in arch_strings(p) {
        if Arch::parse(a).is_none() {
            out.push(invalid(path, a, "architecture"));
        }
    }
    for (i, f) in p.flags.iter().enumerate() {
        if !FLAGS.contains(&f.as_str()) {
            out.push(invalid(format!("flags[{i}]"), f, "filter flag"));
        }
    }
    for (i, r) in p.syscalls.iter().enumerate() {
        if r.action() == Action::Unknown {
            out.push(invalid(
                format!("syscalls[{i}].action"),
                &r.action,
                "action",
            ));
        }
        for (j, a) in r.args.iter().enumerate() {
            if !OPERATORS.contains(&a.op.as_str()) {
                out.push(invalid(
                    format!("syscalls[{i}].args[{j}].op"),
                    &a.op,
                    "comparison operator",
                ));
            }
            if a.index > 5 {
                out.push(invalid(
                    format!("syscalls[{i}].args[{j}].index"),
                    &a.index.to_string(),
                    "argument index (0-5)",
                ));
            }
        }
    }
}

/// Things one runtime (version) refuses or silently drops that another
/// accepts: the profile works on one node and not the next.
fn check_runtime_compat(p: &Profile, ctx: &Context, targets: &[Target], out: &mut Vec<Issue>) {
    let oci = matches!(ctx.source, ProfileSource::OciConfig { .. });
    for t in targets {
        let inc = |message: String, ev: &[(&str, String)]| {
            let mut e = vec![("runtime", t.label())];
            e.extend(ev.iter().cloned());
            issue(
                CheckId::SeccompRuntimeIncompatible,
                Severity::Error,
                message,
                &e,
            )
        };
        match t.kind {
            RuntimeKind::Runc => {
                let before = |v: Version| t.version.is_none_or(|have| have < v);
                if !p.flags.is_empty() && before((1, 2, 0)) {
                    out.push(inc(
                        format!(
                            "{} refuses seccomp `flags` (\"not yet supported\"); support arrived in runc 1.2.0",
                            t.label()
                        ),
                        &[
                            ("path", "flags".into()),
                            ("versions", "< 1.2.0".into()),
                            ("basis", "measured: runc 1.1.5; runc history: opencontainers/runc#3390 in 1.2.0".into()),
                        ],
                    ));
                }
                if p.uses_notify() {
                    for row in unsupported_rows(t) {
                        out.push(inc(
                            format!(
                                "runc {} does not support SCMP_ACT_NOTIFY and refuses the profile",
                                row.versions
                            ),
                            &[
                                ("versions", row.versions.to_string()),
                                ("basis", row.basis.into()),
                            ],
                        ));
                    }
                }
            }
            RuntimeKind::Crun => {
                for (i, r) in p.syscalls.iter().enumerate() {
                    if r.errno_ret.is_some()
                        && !r.action().takes_errno()
                        && r.action() != Action::Unknown
                    {
                        out.push(inc(
                            format!(
                                "syscalls[{i}]: crun refuses `errnoRet` on {} (runc ignores it)",
                                r.action
                            ),
                            &[
                                ("path", format!("syscalls[{i}].errnoRet")),
                                ("basis", "measured: crun 1.8.1".into()),
                            ],
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    // In an OCI config the runtime reads the JSON itself: Docker's legacy
    // `name` is not part of the OCI spec.
    if oci {
        for (i, r) in p.syscalls.iter().enumerate() {
            if r.names.is_empty() && r.name.is_some() {
                out.push(issue(
                    CheckId::SeccompRuntimeIncompatible,
                    Severity::Error,
                    format!(
                        "syscalls[{i}] uses Docker's legacy `name` in an OCI config: crun refuses the config, runc ignores the rule"
                    ),
                    &[
                        ("path", format!("syscalls[{i}].name")),
                        ("basis", "measured: runc 1.1.5, crun 1.8.1".into()),
                    ],
                ));
            }
        }
    }
}

/// Rows saying a runtime version has no notify support at all. Only for a
/// known version: "runc at any version" would otherwise flag every notify
/// profile for the sake of releases from 2021.
fn unsupported_rows(t: &Target) -> impl Iterator<Item = &'static NotifyRow> + '_ {
    runtimes::NOTIFY_TABLE.iter().filter(move |r| {
        t.version.is_some()
            && r.runtime == t.kind
            && r.syscalls.is_empty()
            && r.versions.contains(t.version)
    })
}

/// Notify as the default, notify without a listener, a listener without notify.
fn check_notify_setup(p: &Profile, ctx: &Context, targets: &[Target], out: &mut Vec<Issue>) {
    let listener = p.listener_path.as_deref().filter(|s| !s.is_empty());
    let runtimes = targets
        .iter()
        .map(Target::label)
        .collect::<Vec<_>>()
        .join(", ");
    if Action::parse(&p.default_action) == Action::Notify {
        out.push(issue(
            CheckId::SeccompNotifyDefaultAction,
            Severity::Error,
            "defaultAction is SCMP_ACT_NOTIFY: every syscall the runtime makes after installing the filter \
             goes to the agent (runc refuses this; crun waits on the agent for each one)"
                .into(),
            &[
                ("path", "defaultAction".into()),
                ("basis", "measured: runc 1.1.5 refuses; crun 1.8.1 accepts".into()),
            ],
        ));
    }
    if p.uses_notify() && listener.is_none() {
        let (severity, why) = match ctx.source {
            ProfileSource::OciConfig { .. } => (
                Severity::Error,
                "runc refuses it (\"listenerPath is not set\"); crun starts with no agent, so every notified call fails with ENOSYS",
            ),
            ProfileSource::Standalone => (
                Severity::Warning,
                "unless the container engine supplies its own listener (CRI-O's seccomp notifier does), runc refuses it \
                 and crun starts with notified calls failing with ENOSYS",
            ),
        };
        out.push(issue(
            CheckId::SeccompNotifyNoListener,
            severity,
            format!("SCMP_ACT_NOTIFY is used but listenerPath is not set: {why}"),
            &[
                ("path", "listenerPath".into()),
                ("runtimes", runtimes.clone()),
                ("basis", "measured: runc 1.1.5, crun 1.8.1".into()),
            ],
        ));
    }
    if !p.uses_notify() && listener.is_some() {
        out.push(issue(
            CheckId::SeccompListenerWithoutNotify,
            Severity::Warning,
            "listenerPath is set but no rule uses SCMP_ACT_NOTIFY: crun still connects to the socket and fails \
             container start when no agent listens there"
                .into(),
            &[
                ("path", "listenerPath".into()),
                ("basis", "measured: crun 1.8.1 fails, runc 1.1.5 ignores it".into()),
            ],
        ));
    }
}

/// Notify on syscalls the runtime itself makes before `execve` (the table),
/// and on `execve` itself.
fn check_notify_syscalls(p: &Profile, targets: &[Target], nnp: Option<bool>, out: &mut Vec<Issue>) {
    let mut seen = std::collections::BTreeSet::new();
    for (i, name) in p.notify_names() {
        if !seen.insert(name) {
            continue;
        }
        let rule = &p.syscalls[i];
        let mut ev: BTreeMap<String, String> = BTreeMap::new();
        ev.insert("syscall".into(), name.to_string());
        ev.insert("path".into(), format!("syscalls[{i}]"));
        let mut effects = Vec::new();
        for t in targets {
            let rows: Vec<&NotifyRow> = runtimes::rows_for(t.kind, t.version, nnp, name)
                .filter(|r| !r.syscalls.is_empty())
                .collect();
            if rows.is_empty() {
                continue;
            }
            let text = rows
                .iter()
                .map(|r| row_text(r, t))
                .collect::<Vec<_>>()
                .join("; ");
            ev.insert(t.kind.binary().to_string(), text);
            effects.extend(rows.iter().map(|r| (t, r.effect, r.no_new_privileges)));
        }
        if !effects.is_empty() {
            let certain = effects.iter().any(|(_, e, _)| *e != NotifyEffect::MayHang);
            let conditional = !rule.args.is_empty() || rule.is_conditional();
            let severity = if certain && !conditional {
                Severity::Error
            } else {
                Severity::Warning
            };
            if conditional {
                ev.insert(
                    "note".into(),
                    "the rule has argument or include/exclude conditions; the runtime's own call may not match them".into(),
                );
            }
            let mut who: Vec<String> = Vec::new();
            for t in targets {
                let mut parts: Vec<String> = Vec::new();
                for (_, e, nnp) in effects.iter().filter(|(tt, _, _)| *tt == t) {
                    let q = match nnp {
                        None => "",
                        Some(true) => " (with noNewPrivileges)",
                        Some(false) => " (without noNewPrivileges)",
                    };
                    let s = format!("{}{q}", e.short());
                    if !parts.contains(&s) {
                        parts.push(s);
                    }
                }
                if !parts.is_empty() {
                    who.push(format!("{} {}", t.label(), parts.join(" or ")));
                }
            }
            let tail = if effects.iter().any(|(_, e, _)| *e == NotifyEffect::Deadlock) {
                "no agent can answer a call made before it has the listener fd"
            } else {
                "container start waits on the agent answering the runtime's own calls"
            };
            out.push(Issue {
                check: CheckId::SeccompNotifyUnsafe,
                severity,
                message: format!(
                    "SCMP_ACT_NOTIFY on `{name}`, which the runtime itself calls between installing the filter and \
                     execve: {}; {tail}",
                    who.join("; ")
                ),
                evidence: ev,
            });
        } else if runtimes::START_NEEDS_AGENT.contains(&name) {
            out.push(Issue {
                check: CheckId::SeccompNotifyNeedsAgent,
                severity: Severity::Warning,
                message: format!(
                    "SCMP_ACT_NOTIFY on `{name}`: the container's first program waits for the agent's answer, so every \
                     start (and every exec) needs a live, answering agent"
                ),
                evidence: ev,
            });
        }
    }
}

fn row_text(r: &NotifyRow, t: &Target) -> String {
    let nnp = match r.no_new_privileges {
        None => String::new(),
        Some(true) => ", with noNewPrivileges".into(),
        Some(false) => {
            ", without noNewPrivileges (Kubernetes' default: allowPrivilegeEscalation unset)".into()
        }
    };
    let extrapolated = match (t.version, runtimes::measured_version(t.kind)) {
        (Some(have), Some(measured)) if have > measured && r.basis.starts_with("measured") => {
            format!(
                " [extrapolated: measured on {}.{}.{}, not on {}.{}.{}]",
                measured.0, measured.1, measured.2, have.0, have.1, have.2
            )
        }
        _ => String::new(),
    };
    format!(
        "{} ({}{nnp}; {}){extrapolated}",
        r.effect.describe(),
        r.versions,
        r.basis
    )
}

/// Names no architecture knows (a typo, usually): runtimes skip them, so the
/// rule protects nothing. A real name that exists on none of the
/// architectures a profile lists is only noted: one profile often serves
/// several architectures, and Docker gates such rules with `includes.arches`.
fn check_names(p: &Profile, out: &mut Vec<Issue>) {
    let listed: Vec<Arch> = arch_strings(p)
        .into_iter()
        .filter_map(|(_, a)| Arch::parse(a))
        .collect();
    let arch_list = arch_strings(p)
        .into_iter()
        .map(|(_, a)| a.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let mut reported = std::collections::BTreeSet::new();
    for (i, r) in p.syscalls.iter().enumerate() {
        let gated = r
            .includes
            .as_ref()
            .and_then(|inc| inc.get("arches"))
            .is_some();
        for name in r.all_names() {
            if reported.contains(name) {
                continue;
            }
            let ev = |arches: String| {
                vec![
                    ("syscall", name.to_string()),
                    ("path", format!("syscalls[{i}]")),
                    ("architectures", arches),
                ]
            };
            if known_on_any(&Arch::TABLED, name) == Some(false) {
                reported.insert(name);
                out.push(issue(
                    CheckId::SeccompUnknownSyscall,
                    Severity::Warning,
                    format!(
                        "`{name}` is not a syscall on any architecture; runtimes skip it, so syscalls[{i}] does not \
                         apply to it (a typo?)"
                    ),
                    &ev("all".into()),
                ));
            } else if !listed.is_empty() && !gated && known_on_any(&listed, name) == Some(false) {
                reported.insert(name);
                out.push(issue(
                    CheckId::SeccompUnknownSyscall,
                    Severity::Info,
                    format!("`{name}` does not exist on the listed architectures; syscalls[{i}] does nothing for it"),
                    &ev(arch_list.clone()),
                ));
            }
        }
    }
}

/// The part of a rule that decides which calls it matches.
fn match_key(r: &SyscallRule) -> String {
    let args: Vec<String> = r
        .args
        .iter()
        .map(|a| format!("{}:{}:{}:{}", a.index, a.op, a.value, a.value_two))
        .collect();
    format!(
        "{}|{}|{}",
        args.join(","),
        r.includes
            .as_ref()
            .map(|v| v.to_string())
            .unwrap_or_default(),
        r.excludes
            .as_ref()
            .map(|v| v.to_string())
            .unwrap_or_default()
    )
}

/// The same syscall matched twice by identical conditions: with the same
/// outcome it is noise; with different outcomes the profile contradicts
/// itself and which rule wins is up to libseccomp.
fn check_duplicates(p: &Profile, out: &mut Vec<Issue>) {
    let mut first: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (i, r) in p.syscalls.iter().enumerate() {
        let key = match_key(r);
        let mut names: Vec<&str> = r.all_names().collect();
        names.sort_unstable();
        names.dedup();
        for name in names {
            let Some(&j) = first.get(&(name.to_string(), key.clone())) else {
                first.insert((name.to_string(), key.clone()), i);
                continue;
            };
            let prev = &p.syscalls[j];
            let same_outcome = prev.action() == r.action() && prev.errno_ret == r.errno_ret;
            let ev = [
                ("syscall", name.to_string()),
                ("first", format!("syscalls[{j}]")),
                ("path", format!("syscalls[{i}]")),
            ];
            if same_outcome {
                out.push(issue(
                    CheckId::SeccompDuplicateRule,
                    Severity::Info,
                    format!("`{name}` is matched again by syscalls[{i}] with the same conditions and action as syscalls[{j}]"),
                    &ev,
                ));
            } else {
                out.push(issue(
                    CheckId::SeccompConflictingRule,
                    Severity::Warning,
                    format!(
                        "`{name}` has contradicting rules: syscalls[{j}] says {}{} and syscalls[{i}] says {}{} under \
                         the same conditions; runtimes accept both and libseccomp decides which applies",
                        prev.action,
                        errno_suffix(prev),
                        r.action,
                        errno_suffix(r)
                    ),
                    &ev,
                ));
            }
        }
    }
}

fn errno_suffix(r: &SyscallRule) -> String {
    r.errno_ret
        .map(|e| format!(" (errno {e})"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lint(json: &str) -> Vec<Issue> {
        analyze(&Profile::from_json(json).unwrap(), &Context::default())
    }

    fn checks(f: &[Issue]) -> Vec<(CheckId, Severity)> {
        f.iter().map(|f| (f.check, f.severity)).collect()
    }

    fn notify(names: &str) -> String {
        format!(
            r#"{{"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock",
                "syscalls": [{{"names": [{names}], "action": "SCMP_ACT_NOTIFY"}}]}}"#
        )
    }

    #[test]
    fn notify_on_close_is_unsafe_for_both_runtimes() {
        let f = lint(&notify(r#""close""#));
        assert_eq!(
            checks(&f),
            vec![(CheckId::SeccompNotifyUnsafe, Severity::Error)]
        );
        assert!(
            f[0].evidence["runc"].contains("hangs"),
            "{:?}",
            f[0].evidence
        );
        assert!(
            f[0].evidence["crun"].contains("hangs"),
            "{:?}",
            f[0].evidence
        );
        assert_eq!(f[0].evidence["syscall"], "close");
    }

    #[test]
    fn sendmsg_depends_on_crun_version() {
        // Any version: the crun < 1.6 deadlock applies.
        let f = lint(&notify(r#""sendmsg""#));
        assert_eq!(
            checks(&f),
            vec![(CheckId::SeccompNotifyUnsafe, Severity::Error)]
        );
        assert!(f[0].evidence["crun"].contains("deadlock"));
        assert!(!f[0].evidence.contains_key("runc"));
        // On this project's versions it is safe.
        let p = Profile::from_json(&notify(r#""sendmsg""#)).unwrap();
        let ctx = Context {
            source: ProfileSource::Standalone,
            targets: vec![
                Target::parse("runc@1.1.5").unwrap(),
                Target::parse("crun@1.8.1").unwrap(),
            ],
            no_new_privileges: None,
        };
        assert!(analyze(&p, &ctx).is_empty());
    }

    #[test]
    fn no_new_privileges_from_an_oci_config_narrows_the_rows() {
        let p = Profile::from_json(&notify(r#""setresuid""#)).unwrap();
        let with = |nnp| Context {
            source: ProfileSource::OciConfig {
                no_new_privileges: Some(nnp),
            },
            targets: vec![Target::parse("crun@1.8.1").unwrap()],
            no_new_privileges: None,
        };
        assert!(analyze(&p, &with(true)).is_empty());
        assert_eq!(
            checks(&analyze(&p, &with(false))),
            vec![(CheckId::SeccompNotifyUnsafe, Severity::Error)]
        );
    }

    #[test]
    fn execve_needs_an_agent_and_futex_may_hang() {
        let f = lint(&notify(r#""execve", "execveat", "futex""#));
        assert_eq!(
            checks(&f),
            vec![
                (CheckId::SeccompNotifyNeedsAgent, Severity::Warning),
                (CheckId::SeccompNotifyNeedsAgent, Severity::Warning),
                (CheckId::SeccompNotifyUnsafe, Severity::Warning),
            ]
        );
    }

    #[test]
    fn conditional_notify_is_a_warning() {
        let f = lint(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/s",
                "syscalls": [{"names": ["close"], "action": "SCMP_ACT_NOTIFY",
                              "args": [{"index": 0, "value": 99, "op": "SCMP_CMP_EQ"}]}]}"#,
        );
        assert_eq!(
            checks(&f),
            vec![(CheckId::SeccompNotifyUnsafe, Severity::Warning)]
        );
        assert!(f[0].evidence.contains_key("note"));
    }

    #[test]
    fn notify_setup_findings() {
        let f = lint(r#"{"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/s"}"#);
        assert_eq!(
            checks(&f),
            vec![(CheckId::SeccompNotifyDefaultAction, Severity::Error)]
        );

        let f = lint(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}"#,
        );
        assert_eq!(
            checks(&f),
            vec![(CheckId::SeccompNotifyNoListener, Severity::Warning)]
        );
        let p = Profile::from_json(r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}"#).unwrap();
        let oci = Context {
            source: ProfileSource::OciConfig {
                no_new_privileges: Some(true),
            },
            targets: vec![],
            no_new_privileges: None,
        };
        assert_eq!(
            checks(&analyze(&p, &oci)),
            vec![(CheckId::SeccompNotifyNoListener, Severity::Error)]
        );

        let f = lint(r#"{"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/s"}"#);
        assert_eq!(
            checks(&f),
            vec![(CheckId::SeccompListenerWithoutNotify, Severity::Warning)]
        );

        // runc before 1.1 has no notify.
        let p = Profile::from_json(&notify(r#""mkdir""#)).unwrap();
        let old = Context {
            source: ProfileSource::Standalone,
            targets: vec![Target::parse("runc@1.0.3").unwrap()],
            no_new_privileges: None,
        };
        assert_eq!(
            checks(&analyze(&p, &old)),
            vec![(CheckId::SeccompRuntimeIncompatible, Severity::Error)]
        );
        // ... but "runc at any version" does not claim it.
        assert!(lint(&notify(r#""mkdir""#)).is_empty());
    }

    #[test]
    fn invalid_values_are_errors_with_paths() {
        let f = lint(
            r#"{"defaultAction": "SCMP_ACT_NOPE", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_FOO"],
                "flags": ["SECCOMP_FILTER_FLAG_FOO"],
                "syscalls": [{"names": ["read"], "action": "SCMP_ACT_BAR",
                              "args": [{"index": 6, "value": 0, "op": "SCMP_CMP_FOO"}]}]}"#,
        );
        let paths: Vec<&str> = f
            .iter()
            .filter(|f| f.check == CheckId::SeccompInvalidValue)
            .map(|f| f.evidence["path"].as_str())
            .collect();
        assert_eq!(
            paths,
            vec![
                "defaultAction",
                "architectures[1]",
                "flags[0]",
                "syscalls[0].action",
                "syscalls[0].args[0].op",
                "syscalls[0].args[0].index"
            ]
        );
        // Flags: runc before 1.2 refuses them.
        assert!(f
            .iter()
            .any(|f| f.check == CheckId::SeccompRuntimeIncompatible
                && f.evidence["runtime"] == "runc"));
    }

    #[test]
    fn unknown_names_depend_on_listed_architectures() {
        let f = lint(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read", "raed", "_llseek"], "action": "SCMP_ACT_ALLOW"}]}"#,
        );
        assert_eq!(
            checks(&f),
            vec![(CheckId::SeccompUnknownSyscall, Severity::Warning)]
        );
        assert_eq!(f[0].evidence["syscall"], "raed");
        let f = lint(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
                "syscalls": [{"names": ["read", "_llseek"], "action": "SCMP_ACT_ALLOW"}]}"#,
        );
        assert!(f.is_empty(), "{f:?}");
        let f = lint(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_AARCH64"],
                "syscalls": [{"names": ["read", "open", "raed"], "action": "SCMP_ACT_ALLOW"},
                             {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64"]}}]}"#,
        );
        assert_eq!(
            checks(&f),
            vec![
                (CheckId::SeccompUnknownSyscall, Severity::Info),
                (CheckId::SeccompUnknownSyscall, Severity::Warning)
            ]
        );
        assert_eq!(f[0].evidence["syscall"], "open");
    }

    #[test]
    fn duplicates_and_conflicts() {
        let f = lint(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
                {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["write"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
                {"names": ["clone"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
                {"names": ["clone"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1, "excludes": {"caps": ["CAP_SYS_ADMIN"]}}
            ]}"#,
        );
        assert_eq!(
            checks(&f),
            vec![
                (CheckId::SeccompDuplicateRule, Severity::Info),
                (CheckId::SeccompConflictingRule, Severity::Warning)
            ]
        );
        assert_eq!(f[1].evidence["first"], "syscalls[0]");
        assert_eq!(f[1].evidence["path"], "syscalls[2]");
    }

    #[test]
    fn crun_and_oci_quirks() {
        let f = lint(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "errnoRet": 1}]}"#,
        );
        assert_eq!(
            checks(&f),
            vec![(CheckId::SeccompRuntimeIncompatible, Severity::Error)]
        );
        assert_eq!(f[0].evidence["runtime"], "crun");

        let p = Profile::from_json(r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"name": "read", "action": "SCMP_ACT_ALLOW"}]}"#).unwrap();
        assert!(analyze(&p, &Context::default()).is_empty());
        let oci = Context {
            source: ProfileSource::OciConfig {
                no_new_privileges: None,
            },
            targets: vec![],
            no_new_privileges: None,
        };
        assert_eq!(
            checks(&analyze(&p, &oci)),
            vec![(CheckId::SeccompRuntimeIncompatible, Severity::Error)]
        );
    }

    #[test]
    fn targets_parse() {
        assert_eq!(
            Target::parse("crun@1.8.1"),
            Ok(Target {
                kind: RuntimeKind::Crun,
                version: Some((1, 8, 1))
            })
        );
        assert_eq!(
            Target::parse("runc@v1.2"),
            Ok(Target {
                kind: RuntimeKind::Runc,
                version: Some((1, 2, 0))
            })
        );
        assert_eq!(
            Target::parse("runc"),
            Ok(Target {
                kind: RuntimeKind::Runc,
                version: None
            })
        );
        assert!(Target::parse("youki").is_err());
        assert!(Target::parse("runc@x").is_err());
        assert!(Target::parse("runc@").is_err());
    }
}
