//! `seccomp-unknown-syscall`: syscall names that match nothing on the
//! architectures that matter.

use crate::checks::{CheckId, Severity};
use crate::seccomp::profile::Profile;
use crate::seccomp::syscalls::{known_on_any, Arch};

use super::{arch_strings, issue, Issue};

/// Names no architecture knows (a typo, usually): runtimes skip them, so the
/// rule protects nothing. A real name that exists on none of the
/// architectures a profile lists is only noted: one profile often serves
/// several architectures, and Docker gates such rules with `includes.arches`.
pub(super) fn check_names(p: &Profile, out: &mut Vec<Issue>) {
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
