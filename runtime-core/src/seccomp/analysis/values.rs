//! `seccomp-invalid-value`: values no runtime accepts. Checked first, since
//! an invalid value makes every runtime refuse the whole profile.

use crate::checks::{CheckId, Severity};
use crate::seccomp::profile::{Action, Profile, FLAGS, OPERATORS};
use crate::seccomp::syscalls::Arch;

use super::{arch_strings, issue, Issue};

/// Values every runtime refuses: unknown actions, architectures, flags,
/// operators, argument indexes beyond the six syscall arguments.
pub(super) fn check_values(p: &Profile, out: &mut Vec<Issue>) {
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
