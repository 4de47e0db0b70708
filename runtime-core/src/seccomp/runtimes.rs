//! What each runtime does when a profile notifies one of the syscalls the
//! runtime itself issues between installing the filter and `execve`.
//!
//! Every row comes from evidence: measured on this project's machines by the
//! e2e seccomp matrix (`e2e/tests/seccomp_matrix.rs`, which fails when a row
//! disagrees with the runtimes installed), or from the runtimes' own history
//! (fix commits and issues), which the row's `basis` names. Measured rows keep
//! applying to later versions than the ones measured ("open-ended"), because
//! a runtime's init sequence rarely drops syscalls; a finding says when it
//! rests on such an extrapolation.
//!
//! The listener in the measurements takes the notify fd and never answers.
//! With an agent that answers every notification, all of these start (except
//! what runc refuses outright): the hazard is that container start depends
//! on the agent answering the *runtime's* syscalls, which agents are not
//! written for, and that a slow or restarting agent stalls every start.

use serde::Serialize;

use crate::host::RuntimeKind;

/// A `(major, minor, patch)` version.
pub type Version = (u32, u32, u32);

/// Versions `[from, until)`; `None` bounds are open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct VersionRange {
    /// First affected version.
    pub from: Option<Version>,
    /// First version no longer affected.
    pub until: Option<Version>,
}

impl VersionRange {
    /// Every version.
    pub const ALL: VersionRange = VersionRange {
        from: None,
        until: None,
    };

    /// Whether `v` is in the range; an unknown version is in every range
    /// (the analysis must not miss a hazard because a version did not parse).
    pub fn contains(&self, v: Option<Version>) -> bool {
        let Some(v) = v else { return true };
        self.from.is_none_or(|f| v >= f) && self.until.is_none_or(|u| v < u)
    }
}

impl std::fmt::Display for VersionRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = |(a, b, c): Version| format!("{a}.{b}.{c}");
        match (self.from, self.until) {
            (None, None) => f.write_str("all versions"),
            (Some(a), None) => write!(f, ">= {}", v(a)),
            (None, Some(b)) => write!(f, "< {}", v(b)),
            (Some(a), Some(b)) => write!(f, ">= {}, < {}", v(a), v(b)),
        }
    }
}

/// What happens to container start when the runtime's own syscall is
/// notified and the agent does not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NotifyEffect {
    /// The runtime rejects the profile at create.
    Refused,
    /// `create`/`run` does not return; the init sleeps in
    /// `seccomp_do_user_notification` until answered or SIGKILLed.
    Hangs,
    /// `create`/`run` returns and the container shows as running, but its
    /// init is stuck before `execve`: the workload never starts.
    InitBlocked,
    /// The runtime needs the syscall to hand the fd to the agent in the
    /// first place: no agent can ever answer, start deadlocks.
    Deadlock,
    /// Issued by the runtime's language runtime at unpredictable times
    /// (runc's Go scheduler and `futex`): in some runs only, start hangs or
    /// the init is stuck before `execve` after create returned.
    MayHang,
}

impl NotifyEffect {
    /// A few words, for one-line messages.
    pub fn short(self) -> &'static str {
        match self {
            NotifyEffect::Refused => "refuses the profile",
            NotifyEffect::Hangs => "hangs at create",
            NotifyEffect::InitBlocked => {
                "shows the container running with its init stuck before execve"
            }
            NotifyEffect::Deadlock => "deadlocks",
            NotifyEffect::MayHang => "sometimes hangs at create",
        }
    }

    /// Short human phrase.
    pub fn describe(self) -> &'static str {
        match self {
            NotifyEffect::Refused => "refuses the profile at create",
            NotifyEffect::Hangs => "hangs at create until the agent answers the runtime's own call",
            NotifyEffect::InitBlocked => {
                "reports the container running while its init is stuck before execve until the agent answers"
            }
            NotifyEffect::Deadlock => "deadlocks: it needs this call to hand the listener fd to the agent",
            NotifyEffect::MayHang => "hangs at create in some runs (the call comes from the runtime's Go scheduler)",
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct NotifyRow {
    /// The runtime.
    pub runtime: RuntimeKind,
    /// Affected versions.
    pub versions: VersionRange,
    /// `process.noNewPrivileges` the row holds for; `None` for both. Runtimes
    /// install the filter later with it set (fewer of their own syscalls
    /// follow), earlier without (before dropping privileges).
    pub no_new_privileges: Option<bool>,
    /// Syscall names.
    pub syscalls: &'static [&'static str],
    /// What happens.
    pub effect: NotifyEffect,
    /// Where the row comes from.
    pub basis: &'static str,
}

const fn v(a: u32, b: u32, c: u32) -> Option<Version> {
    Some((a, b, c))
}

const MEASURED_RUNC: &str = "measured: runc 1.1.5 on Linux 6.18 (e2e seccomp matrix)";
const MEASURED_CRUN: &str = "measured: crun 1.8.1 on Linux 6.18 (e2e seccomp matrix)";

/// The table. Rows for the same runtime may overlap; the analysis reports
/// every row that applies.
pub const NOTIFY_TABLE: &[NotifyRow] = &[
    // runc: notify support arrived in 1.1.0, with a guard against `write`,
    // which its init needs to pass the fd number to the parent.
    NotifyRow {
        runtime: RuntimeKind::Runc,
        versions: VersionRange { from: None, until: v(1, 1, 0) },
        no_new_privileges: None,
        syscalls: &[],
        effect: NotifyEffect::Refused,
        basis: "runc history: SCMP_ACT_NOTIFY support added in 1.1.0 (opencontainers/runc#2682)",
    },
    NotifyRow {
        runtime: RuntimeKind::Runc,
        versions: VersionRange { from: v(1, 1, 0), until: None },
        no_new_privileges: None,
        syscalls: &["write"],
        effect: NotifyEffect::Refused,
        basis: MEASURED_RUNC,
    },
    NotifyRow {
        runtime: RuntimeKind::Runc,
        versions: VersionRange { from: v(1, 1, 0), until: None },
        no_new_privileges: None,
        syscalls: &["close", "epoll_ctl", "fstatfs", "getdents64", "getpid", "openat", "read"],
        effect: NotifyEffect::Hangs,
        basis: MEASURED_RUNC,
    },
    NotifyRow {
        runtime: RuntimeKind::Runc,
        versions: VersionRange { from: v(1, 1, 0), until: None },
        no_new_privileges: Some(false),
        syscalls: &[
            "capget",
            "capset",
            "chdir",
            "faccessat2",
            "fcntl",
            "fstat",
            "getcwd",
            "getppid",
            "newfstatat",
            "prctl",
            "setgid",
            "setgroups",
            "setuid",
        ],
        effect: NotifyEffect::Hangs,
        basis: MEASURED_RUNC,
    },
    NotifyRow {
        runtime: RuntimeKind::Runc,
        versions: VersionRange { from: v(1, 1, 0), until: None },
        no_new_privileges: None,
        syscalls: &["futex"],
        effect: NotifyEffect::MayHang,
        basis: "measured: runc 1.1.5 hung in 12 of 18 starts, with and without noNewPrivileges, and in other runs returned with its init stuck in futex before execve (e2e seccomp matrix)",
    },
    // crun: before 1.6 the init sent the fd to the agent itself with
    // sendmsg(2) after installing the filter.
    NotifyRow {
        runtime: RuntimeKind::Crun,
        versions: VersionRange { from: None, until: v(1, 6, 0) },
        no_new_privileges: None,
        syscalls: &["sendmsg"],
        effect: NotifyEffect::Deadlock,
        basis: "crun history: fixed in 1.6 by sending the fd from a CLONE_FILES helper (containers/crun#1002, #1004)",
    },
    NotifyRow {
        runtime: RuntimeKind::Crun,
        versions: VersionRange::ALL,
        no_new_privileges: Some(false),
        syscalls: &[
            "capset",
            "close",
            "kill",
            "munmap",
            "prctl",
            "rt_sigaction",
            "rt_sigprocmask",
            "setresgid",
            "setresuid",
            "wait4",
            "write",
        ],
        effect: NotifyEffect::Hangs,
        basis: MEASURED_CRUN,
    },
    NotifyRow {
        runtime: RuntimeKind::Crun,
        versions: VersionRange::ALL,
        no_new_privileges: Some(true),
        syscalls: &["close", "kill", "munmap", "wait4"],
        effect: NotifyEffect::InitBlocked,
        basis: MEASURED_CRUN,
    },
];

/// Syscalls whose notification every container start waits on by design:
/// the workload's own `execve`. Not a runtime bug, but start needs a live,
/// answering agent.
pub const START_NEEDS_AGENT: &[&str] = &["execve", "execveat"];

/// The versions each row was measured on, for extrapolation notes.
pub fn measured_version(kind: RuntimeKind) -> Option<Version> {
    match kind {
        RuntimeKind::Runc => Some((1, 1, 5)),
        RuntimeKind::Crun => Some((1, 8, 1)),
        _ => None,
    }
}

/// Rows that apply to `syscall` on `runtime` at `version` with
/// `no_new_privileges` (`None`: unknown, rows for either setting apply).
/// A row with no syscalls (notify unsupported) applies to every syscall.
pub fn rows_for(
    runtime: RuntimeKind,
    version: Option<Version>,
    no_new_privileges: Option<bool>,
    syscall: &str,
) -> impl Iterator<Item = &'static NotifyRow> + '_ {
    NOTIFY_TABLE.iter().filter(move |r| {
        r.runtime == runtime
            && r.versions.contains(version)
            && (r.syscalls.is_empty() || r.syscalls.contains(&syscall))
            && match (r.no_new_privileges, no_new_privileges) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    })
}

/// The single effect expected for an exact configuration (known version and
/// `noNewPrivileges`), the strongest when several rows apply. `None`: the
/// container starts. This is what the e2e matrix compares with reality.
pub fn expected_effect(
    runtime: RuntimeKind,
    version: Version,
    no_new_privileges: bool,
    syscall: &str,
) -> Option<NotifyEffect> {
    rows_for(runtime, Some(version), Some(no_new_privileges), syscall)
        .map(|r| r.effect)
        .min()
}

/// Every syscall name the table mentions (sorted, deduplicated).
pub fn table_syscalls() -> Vec<&'static str> {
    let mut all: Vec<&str> = NOTIFY_TABLE
        .iter()
        .flat_map(|r| r.syscalls.iter().copied())
        .collect();
    all.sort_unstable();
    all.dedup();
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let r = VersionRange {
            from: v(1, 1, 0),
            until: v(1, 2, 0),
        };
        assert!(r.contains(Some((1, 1, 5))));
        assert!(!r.contains(Some((1, 2, 0))));
        assert!(!r.contains(Some((1, 0, 9))));
        assert!(r.contains(None));
        assert_eq!(r.to_string(), ">= 1.1.0, < 1.2.0");
        assert_eq!(VersionRange::ALL.to_string(), "all versions");
    }

    #[test]
    fn seed_and_design_facts_hold() {
        // DESIGN §2: close hangs on runc 1.1.5 and crun 1.8.1 (no NNP, as
        // Kubernetes defaults); write is refused by runc, hangs crun;
        // sendmsg starts on both; execve is not a runtime hazard.
        let runc = (1, 1, 5);
        let crun = (1, 8, 1);
        assert_eq!(
            expected_effect(RuntimeKind::Runc, runc, false, "close"),
            Some(NotifyEffect::Hangs)
        );
        assert_eq!(
            expected_effect(RuntimeKind::Crun, crun, false, "close"),
            Some(NotifyEffect::Hangs)
        );
        assert_eq!(
            expected_effect(RuntimeKind::Runc, runc, true, "write"),
            Some(NotifyEffect::Refused)
        );
        assert_eq!(
            expected_effect(RuntimeKind::Crun, crun, false, "write"),
            Some(NotifyEffect::Hangs)
        );
        assert_eq!(
            expected_effect(RuntimeKind::Crun, crun, true, "write"),
            None
        );
        for nnp in [true, false] {
            assert_eq!(
                expected_effect(RuntimeKind::Runc, runc, nnp, "sendmsg"),
                None
            );
            assert_eq!(
                expected_effect(RuntimeKind::Crun, crun, nnp, "sendmsg"),
                None
            );
            assert_eq!(
                expected_effect(RuntimeKind::Runc, runc, nnp, "execve"),
                None
            );
        }
        // The seed: crun before 1.6 deadlocks on sendmsg.
        assert_eq!(
            expected_effect(RuntimeKind::Crun, (1, 5, 0), true, "sendmsg"),
            Some(NotifyEffect::Deadlock)
        );
        // runc before 1.1 has no notify at all.
        assert_eq!(
            expected_effect(RuntimeKind::Runc, (1, 0, 3), true, "mkdir"),
            Some(NotifyEffect::Refused)
        );
    }

    #[test]
    fn table_is_well_formed() {
        for r in NOTIFY_TABLE {
            assert!(!r.basis.is_empty());
            let mut names = r.syscalls.to_vec();
            names.sort_unstable();
            assert_eq!(names, r.syscalls, "keep row names sorted: {r:?}");
            for n in r.syscalls {
                assert_eq!(
                    super::super::syscalls::known_on_any(&super::super::syscalls::Arch::DEFAULT, n),
                    Some(true),
                    "{n}"
                );
            }
        }
        assert!(table_syscalls().contains(&"close"));
    }
}
