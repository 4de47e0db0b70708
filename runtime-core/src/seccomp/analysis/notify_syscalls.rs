//! Which syscalls a profile notifies: `seccomp-notify-unsafe` (one the
//! runtime itself makes before `execve`, per the runtimes table) and
//! `seccomp-notify-needs-agent` (`execve` itself).

use std::collections::BTreeMap;

use crate::checks::{CheckId, Severity};
use crate::seccomp::profile::Profile;
use crate::seccomp::runtimes::{self, NotifyEffect, NotifyRow};

use super::{Issue, Target};

/// Notify on syscalls the runtime itself makes before `execve` (the table),
/// and on `execve` itself.
pub(super) fn check_notify_syscalls(
    p: &Profile,
    targets: &[Target],
    nnp: Option<bool>,
    out: &mut Vec<Issue>,
) {
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
