//! Seccomp profiles (OCI `linux.seccomp`, Kubernetes/Docker JSON) and their
//! notify-safety analysis.
//!
//! `SCMP_ACT_NOTIFY` hands a syscall to a userspace agent. The filter is
//! installed by the runtime's init *before* it `execve`s the workload, so any
//! syscall the runtime itself makes in between also goes to the agent: with
//! an agent that is not answering (not yet running, restarting, or written
//! only for the workload's calls) container start hangs, and on some runtime
//! versions it deadlocks outright (seed 004: crun before 1.6 sent the fd to the
//! agent with the very `sendmsg` it had just made notify). Which syscalls
//! those are differs per runtime, version and `noNewPrivileges`; the table in
//! [`runtimes`] holds what was measured (and what the runtimes' history says),
//! and the e2e seccomp matrix re-measures it against the installed runtimes.
//!
//! - [`profile`]: the model and parser ([`parse_input`] takes a standalone
//!   profile or a whole OCI config); unknown fields are kept; malformed input
//!   is a [`ParseError`] with the JSON path.
//! - [`analysis`]: [`analyze`] turns a profile into [`Issue`]s, each named
//!   by a [`CheckId`](crate::checks::CheckId) (no container: `warden check`
//!   makes findings of them for the containers that use the profile).
//! - [`syscalls`]: syscall names per architecture.
//!
//! # Check ids
//!
//! Stable: reports, metrics and policies use them. They are the
//! [`CheckId`](crate::checks::CheckId)s for which `is_profile_check()` holds.
//!
//! | id | severity | meaning |
//! |---|---|---|
//! | `seccomp-notify-unsafe` | error (warning if the rule has argument or include/exclude conditions, or the runtime hangs only sometimes) | notify on a syscall the target runtime makes between installing the filter and `execve`: it refuses, hangs, reports running with a stuck init, or deadlocks |
//! | `seccomp-notify-default-action` | error | `defaultAction` is `SCMP_ACT_NOTIFY`: every runtime syscall goes to the agent (runc refuses it) |
//! | `seccomp-notify-no-listener` | error in an OCI config, warning in a standalone profile | notify without `listenerPath` (runc refuses; crun's notified calls fail with ENOSYS); an engine may supply its own listener |
//! | `seccomp-notify-needs-agent` | warning | notify on `execve`/`execveat`: every start and exec waits for a live agent |
//! | `seccomp-listener-without-notify` | warning | `listenerPath` with no notify rule: crun still connects and fails start if nothing listens |
//! | `seccomp-runtime-incompatible` | error | a target runtime (version) refuses what another accepts: `flags` on runc < 1.2, `errnoRet` on a non-errno action on crun, Docker's legacy `name` in an OCI config, notify on runc < 1.1 |
//! | `seccomp-invalid-value` | error | unknown action, architecture, flag or operator, or an argument index above 5: every runtime refuses the profile |
//! | `seccomp-unknown-syscall` | warning | a name no listed architecture knows (runtimes skip it: the rule silently does nothing) |
//! | `seccomp-conflicting-rule` | warning | the same syscall under identical conditions with different actions |
//! | `seccomp-duplicate-rule` | info | the same syscall under identical conditions with the same action twice |

pub mod analysis;
pub mod profile;
pub mod runtimes;
pub mod syscalls;

pub use analysis::{analyze, Context, Issue, Target};
pub use profile::{
    parse_input, Action, ParseError, ParsedInput, Profile, ProfileSource, SyscallRule,
};
pub use runtimes::{NotifyEffect, NotifyRow, VersionRange, NOTIFY_TABLE};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::{CheckId, Severity};

    fn fixture(name: &str) -> String {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/seccomp")
            .join(name);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    fn lint(name: &str) -> Vec<Issue> {
        let input = parse_input(&fixture(name)).unwrap();
        let ctx = Context {
            source: input.source,
            targets: Target::all_known(),
            no_new_privileges: None,
        };
        analyze(&input.profile.unwrap(), &ctx)
    }

    #[test]
    fn docker_default_shape_lints_clean() {
        let f = lint("docker-default-shape.json");
        assert!(f.is_empty(), "{f:#?}");
        let p = parse_input(&fixture("docker-default-shape.json"))
            .unwrap()
            .profile
            .unwrap();
        assert!(p.syscalls.len() > 30 && p.syscalls[0].names.len() > 300);
    }

    #[test]
    fn notify_close_fixture_is_unsafe() {
        let f = lint("notify-close.json");
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(
            (f[0].check, f[0].severity),
            (CheckId::SeccompNotifyUnsafe, Severity::Error)
        );
    }

    #[test]
    fn seed_004_is_unsafe_on_old_crun_only() {
        let f = lint("seed-004-notify-sendmsg.json");
        assert_eq!(f.len(), 1, "{f:#?}");
        assert!(
            f[0].evidence["crun"].contains("< 1.6.0"),
            "{:?}",
            f[0].evidence
        );
        let p = parse_input(&fixture("seed-004-notify-sendmsg.json"))
            .unwrap()
            .profile
            .unwrap();
        let on = |t: &str| {
            analyze(
                &p,
                &Context {
                    source: ProfileSource::Standalone,
                    targets: vec![Target::parse(t).unwrap()],
                    no_new_privileges: None,
                },
            )
        };
        assert_eq!(on("crun@1.5").len(), 1);
        assert!(on("crun@1.6.0").is_empty());
        assert!(on("runc@1.1.4").is_empty());
    }

    #[test]
    fn oci_config_fixture_uses_its_no_new_privileges() {
        let f = lint("oci-config-notify-write.json");
        let unsafe_: Vec<&Issue> = f
            .iter()
            .filter(|f| f.check == CheckId::SeccompNotifyUnsafe)
            .collect();
        assert_eq!(unsafe_.len(), 1, "{f:#?}");
        assert_eq!(unsafe_[0].evidence["syscall"], "write");
        assert!(unsafe_[0].evidence["runc"].contains("refuses"));
        assert!(unsafe_[0].evidence["crun"].contains("without noNewPrivileges"));
        assert_eq!(f.len(), 1, "mkdirat is a legitimate agent target: {f:#?}");
    }

    #[test]
    fn agent_profile_is_clean_and_malformed_names_its_path() {
        assert!(lint("agent-mkdir-ok.json").is_empty());
        let e = parse_input(&fixture("malformed-args.json")).unwrap_err();
        assert_eq!(e.path, "syscalls[1].args[0].value");
        assert_eq!(e.line, 6);
    }

    #[test]
    fn every_id_is_documented_in_the_module_table() {
        let docs = include_str!("mod.rs");
        for id in CheckId::ALL.iter().filter(|c| c.is_profile_check()) {
            assert!(
                docs.contains(&format!("| `{id}` |")),
                "{id} missing from the table"
            );
        }
    }
}
