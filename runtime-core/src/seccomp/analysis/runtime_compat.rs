//! `seccomp-runtime-incompatible`: what one runtime (version) refuses or
//! drops and another accepts, judged per [`Target`].

use crate::checks::{CheckId, Severity};
use crate::host::RuntimeKind;
use crate::seccomp::profile::{Action, Profile, ProfileSource};
use crate::seccomp::runtimes::{self, NotifyRow, Version};

use super::{issue, Context, Issue, Target};

/// Things one runtime (version) refuses or silently drops that another
/// accepts: the profile works on one node and not the next.
pub(super) fn check_runtime_compat(
    p: &Profile,
    ctx: &Context,
    targets: &[Target],
    out: &mut Vec<Issue>,
) {
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
