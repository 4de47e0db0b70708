//! `seccomp-duplicate-rule` and `seccomp-conflicting-rule`: one syscall
//! matched more than once under identical conditions.

use std::collections::BTreeMap;

use crate::checks::{CheckId, Severity};
use crate::seccomp::profile::{Profile, SyscallRule};

use super::{issue, Issue};

/// The same syscall matched twice by identical conditions: with the same
/// outcome it is noise; with different outcomes the profile contradicts
/// itself and which rule wins is up to libseccomp.
pub(super) fn check_duplicates(p: &Profile, out: &mut Vec<Issue>) {
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

fn errno_suffix(r: &SyscallRule) -> String {
    r.errno_ret
        .map(|e| format!(" (errno {e})"))
        .unwrap_or_default()
}
