//! Tests of every family of checks, all through [`analyze`]: which issues
//! come, in which order, with which evidence.

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
    assert!(
        f.iter()
            .any(|f| f.check == CheckId::SeccompRuntimeIncompatible
                && f.evidence["runtime"] == "runc")
    );
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
