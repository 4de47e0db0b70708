//! The seccomp profile model and its JSON parser.
//!
//! One model covers both formats in the wild: the OCI runtime spec's
//! `linux.seccomp` object and the Kubernetes/Docker profile JSON
//! (`Localhost` profiles, Docker's `--security-opt seccomp=`). They share the
//! core fields; Docker adds a legacy single `name`, `comment`, `archMap` and
//! `includes`/`excludes` conditions. Fields this model does not name are kept
//! in `extra` maps (runtimes grow fields faster than linters), and strings with
//! a fixed vocabulary (actions, operators) are kept as written so the analysis
//! can report an unknown value as a finding instead of failing the parse.
//! Only malformed JSON, or a field of the wrong type, is an error, and the
//! error names the JSON path (`syscalls[3].args[0].index`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Extra fields kept verbatim, by name.
pub type Extra = BTreeMap<String, Value>;

/// A seccomp profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    /// Action for syscalls no rule matches (`SCMP_ACT_ERRNO`, `SCMP_ACT_ALLOW`, ...).
    pub default_action: String,
    /// errno returned by an `SCMP_ACT_ERRNO` default action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_errno_ret: Option<u32>,
    /// Architectures the filter covers (`SCMP_ARCH_X86_64`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub architectures: Vec<String>,
    /// Docker's architecture map: a main architecture and its sub-architectures.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arch_map: Vec<ArchMap>,
    /// Flags passed to seccomp(2) (`SECCOMP_FILTER_FLAG_LOG`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
    /// UNIX socket the runtime sends the notify fd to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_path: Option<String>,
    /// Opaque data the runtime passes to the listener with the fd.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_metadata: Option<String>,
    /// The rules, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub syscalls: Vec<SyscallRule>,
    /// Fields this model does not name, kept as written.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Docker's `archMap` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchMap {
    /// The main architecture (`SCMP_ARCH_X86_64`).
    pub architecture: String,
    /// Architectures added when the main one is native (`SCMP_ARCH_X86`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sub_architectures: Vec<String>,
    /// Fields this model does not name.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One rule: an action for a set of syscall names, maybe with argument
/// conditions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyscallRule {
    /// Syscall names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// Docker's legacy single name (used when `names` is absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Action when the rule matches.
    pub action: String,
    /// errno for `SCMP_ACT_ERRNO` (and `SCMP_ACT_TRACE`'s message value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno_ret: Option<u32>,
    /// Argument conditions; all must hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<ArgCondition>,
    /// Docker: apply only when these hold (capabilities, arches, kernel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub includes: Option<Value>,
    /// Docker: do not apply when these hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excludes: Option<Value>,
    /// Docker: free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Fields this model does not name.
    #[serde(flatten)]
    pub extra: Extra,
}

impl SyscallRule {
    /// The names this rule applies to: `names`, or the legacy `name`.
    pub fn all_names(&self) -> impl Iterator<Item = &str> {
        let legacy = if self.names.is_empty() {
            self.name.as_deref()
        } else {
            None
        };
        self.names.iter().map(String::as_str).chain(legacy)
    }

    /// The parsed action.
    pub fn action(&self) -> Action {
        Action::parse(&self.action)
    }

    /// Whether Docker `includes`/`excludes` conditions gate this rule.
    pub fn is_conditional(&self) -> bool {
        let non_empty = |v: &Option<Value>| {
            v.as_ref()
                .is_some_and(|v| v.as_object().is_none_or(|o| !o.is_empty()))
        };
        non_empty(&self.includes) || non_empty(&self.excludes)
    }
}

/// One argument condition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArgCondition {
    /// Argument index, 0..=5.
    pub index: u32,
    /// Value to compare with.
    pub value: u64,
    /// Second value (mask for `SCMP_CMP_MASKED_EQ`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub value_two: u64,
    /// Operator (`SCMP_CMP_EQ`, ...).
    pub op: String,
    /// Fields this model does not name.
    #[serde(flatten)]
    pub extra: Extra,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// A seccomp action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// `SCMP_ACT_KILL_PROCESS`.
    KillProcess,
    /// `SCMP_ACT_KILL_THREAD` (and its alias `SCMP_ACT_KILL`).
    KillThread,
    /// `SCMP_ACT_TRAP`.
    Trap,
    /// `SCMP_ACT_ERRNO`.
    Errno,
    /// `SCMP_ACT_TRACE`.
    Trace,
    /// `SCMP_ACT_ALLOW`.
    Allow,
    /// `SCMP_ACT_LOG`.
    Log,
    /// `SCMP_ACT_NOTIFY`: hand the call to a userspace agent.
    Notify,
    /// Anything else: runtimes refuse the profile.
    Unknown,
}

impl Action {
    /// Parse an `SCMP_ACT_*` string; unknown strings give [`Action::Unknown`].
    pub fn parse(s: &str) -> Action {
        match s {
            "SCMP_ACT_KILL_PROCESS" => Action::KillProcess,
            "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => Action::KillThread,
            "SCMP_ACT_TRAP" => Action::Trap,
            "SCMP_ACT_ERRNO" => Action::Errno,
            "SCMP_ACT_TRACE" => Action::Trace,
            "SCMP_ACT_ALLOW" => Action::Allow,
            "SCMP_ACT_LOG" => Action::Log,
            "SCMP_ACT_NOTIFY" => Action::Notify,
            _ => Action::Unknown,
        }
    }

    /// Whether `errnoRet` means something for this action.
    pub fn takes_errno(self) -> bool {
        matches!(self, Action::Errno | Action::Trace)
    }
}

/// Comparison operators runtimes accept.
pub const OPERATORS: &[&str] = &[
    "SCMP_CMP_NE",
    "SCMP_CMP_LT",
    "SCMP_CMP_LE",
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_MASKED_EQ",
];

/// Filter flags in the OCI runtime spec.
pub const FLAGS: &[&str] = &[
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
];

/// Where a profile came from; decides which runtime quirks apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProfileSource {
    /// A standalone profile (Kubernetes `Localhost`, Docker): the container
    /// engine translates it, so Docker-only fields are legitimate.
    Standalone,
    /// The `linux.seccomp` object of an OCI runtime config: the runtime reads
    /// it as is.
    OciConfig {
        /// `process.noNewPrivileges`, which decides when runtimes install the
        /// filter (and so which of their own syscalls it sees).
        no_new_privileges: Option<bool>,
    },
}

/// A parsed input file: the profile (if any) and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedInput {
    /// The profile; `None` for an OCI config without `linux.seccomp`.
    pub profile: Option<Profile>,
    /// Which format it was.
    pub source: ProfileSource,
}

/// Why a profile did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message} (line {line}, column {column})", if path.is_empty() { "." } else { path.as_str() })]
pub struct ParseError {
    /// JSON path of the offending value (`syscalls[3].args[0].index`); empty
    /// for the document itself.
    pub path: String,
    /// What was wrong.
    pub message: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

impl Profile {
    /// Parse a standalone profile (Kubernetes/Docker JSON, or the bare OCI
    /// `linux.seccomp` object).
    pub fn from_json(text: &str) -> Result<Profile, ParseError> {
        parse_at::<Profile>(text, "")
    }

    /// Every notify rule's names with their rule index.
    pub fn notify_names(&self) -> impl Iterator<Item = (usize, &str)> {
        self.syscalls
            .iter()
            .enumerate()
            .filter(|(_, r)| r.action() == Action::Notify)
            .flat_map(|(i, r)| r.all_names().map(move |n| (i, n)))
    }

    /// Whether any rule, or the default, notifies.
    pub fn uses_notify(&self) -> bool {
        Action::parse(&self.default_action) == Action::Notify
            || self.syscalls.iter().any(|r| r.action() == Action::Notify)
    }
}

/// Parse a file that is either a standalone profile or an OCI runtime config
/// (recognised by `ociVersion` or a `linux`/`process` object at the top).
pub fn parse_input(text: &str) -> Result<ParsedInput, ParseError> {
    let doc: Value = parse_at(text, "")?;
    let is_oci = doc.as_object().is_some_and(|o| {
        o.contains_key("ociVersion")
            || (o.contains_key("linux") && !o.contains_key("defaultAction"))
    });
    if !is_oci {
        return Ok(ParsedInput {
            profile: Some(Profile::from_json(text)?),
            source: ProfileSource::Standalone,
        });
    }
    let no_new_privileges = match doc.pointer("/process/noNewPrivileges") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(other) => {
            return Err(ParseError {
                path: "process.noNewPrivileges".into(),
                message: format!("expected a boolean, found {other}"),
                line: 0,
                column: 0,
            })
        }
    };
    let profile = match doc.pointer("/linux/seccomp") {
        None | Some(Value::Null) => None,
        Some(v) => Some(from_value_at(v.clone(), "linux.seccomp")?),
    };
    Ok(ParsedInput {
        profile,
        source: ProfileSource::OciConfig { no_new_privileges },
    })
}

fn parse_at<T: serde::de::DeserializeOwned>(text: &str, prefix: &str) -> Result<T, ParseError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| path_error(e, prefix))?;
    de.end().map_err(|e| ParseError {
        path: prefix.to_string(),
        message: strip_position(&e.to_string()),
        line: e.line(),
        column: e.column(),
    })?;
    Ok(value)
}

fn from_value_at<T: serde::de::DeserializeOwned>(v: Value, prefix: &str) -> Result<T, ParseError> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = join_path(prefix, &e.path().to_string());
        ParseError {
            path,
            message: e.into_inner().to_string(),
            line: 0,
            column: 0,
        }
    })
}

fn path_error(e: serde_path_to_error::Error<serde_json::Error>, prefix: &str) -> ParseError {
    let path = join_path(prefix, &e.path().to_string());
    let inner = e.into_inner();
    ParseError {
        path,
        message: strip_position(&inner.to_string()),
        line: inner.line(),
        column: inner.column(),
    }
}

/// serde_path_to_error prints `.` for the root and `a.b[0]` otherwise.
fn join_path(prefix: &str, path: &str) -> String {
    let path = if path == "." { "" } else { path };
    match (prefix.is_empty(), path.is_empty()) {
        (_, true) => prefix.to_string(),
        (true, false) => path.to_string(),
        (false, false) if path.starts_with('[') => format!("{prefix}{path}"),
        (false, false) => format!("{prefix}.{path}"),
    }
}

/// serde_json appends " at line L column C"; the error carries those apart.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_oci_object_with_unknown_fields_kept() {
        let text = r#"{
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": "/run/agent.sock",
            "listenerMetadata": "m",
            "futureField": {"x": 1},
            "syscalls": [
                {"names": ["sendmsg"], "action": "SCMP_ACT_NOTIFY", "note": "kept"},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ", "later": true}]}
            ]
        }"#;
        let p = Profile::from_json(text).unwrap();
        assert_eq!(p.listener_path.as_deref(), Some("/run/agent.sock"));
        assert_eq!(p.extra["futureField"], serde_json::json!({"x": 1}));
        assert_eq!(p.syscalls[0].extra["note"], "kept");
        assert_eq!(p.syscalls[1].args[0].extra["later"], true);
        assert_eq!(p.notify_names().collect::<Vec<_>>(), vec![(0, "sendmsg")]);
        // Round trip keeps everything, including the unknown fields.
        let again = Profile::from_json(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(again, p);
    }

    #[test]
    fn docker_shape_parses() {
        let text = r#"{
            "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
            "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]}],
            "syscalls": [
                {"name": "accept", "action": "SCMP_ACT_ALLOW"},
                {"names": ["clone"], "action": "SCMP_ACT_ALLOW", "comment": "c",
                 "includes": {"caps": ["CAP_SYS_ADMIN"]}, "excludes": {}}
            ]
        }"#;
        let p = Profile::from_json(text).unwrap();
        assert_eq!(
            p.syscalls[0].all_names().collect::<Vec<_>>(),
            vec!["accept"]
        );
        assert!(p.syscalls[1].is_conditional());
        assert!(!p.syscalls[0].is_conditional());
        assert_eq!(p.arch_map[0].sub_architectures, vec!["SCMP_ARCH_X86"]);
    }

    #[test]
    fn errors_name_the_json_path() {
        let cases = [
            (
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["a"], "action": "SCMP_ACT_ALLOW"}, {"names": ["b"], "action": "SCMP_ACT_ALLOW", "args": [{"index": "zero", "value": 1, "op": "SCMP_CMP_EQ"}]}]}"#,
                "syscalls[1].args[0].index",
            ),
            (r#"{"defaultAction": 3}"#, "defaultAction"),
            (r#"{"syscalls": []}"#, ""),
            (
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": "read", "action": "SCMP_ACT_ALLOW"}]}"#,
                "syscalls[0].names",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": -1}"#,
                "defaultErrnoRet",
            ),
        ];
        for (text, want) in cases {
            let e = Profile::from_json(text).unwrap_err();
            assert_eq!(e.path, want, "{text}: {e}");
            assert!(e.line >= 1, "{e:?}");
        }
        let e = Profile::from_json(r#"{"defaultAction": "SCMP_ACT_ALLOW""#).unwrap_err();
        assert!(e.message.contains("EOF"), "{e}");
        let e = Profile::from_json(r#"{"defaultAction": "SCMP_ACT_ALLOW"} trailing"#).unwrap_err();
        assert!(e.message.contains("trailing"), "{e}");
    }

    #[test]
    fn oci_config_is_recognised() {
        let text = r#"{"ociVersion": "1.0.2", "process": {"noNewPrivileges": false},
            "linux": {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW",
              "syscalls": [{"names": ["close"], "action": "SCMP_ACT_NOTIFY"}]}}}"#;
        let p = parse_input(text).unwrap();
        assert_eq!(
            p.source,
            ProfileSource::OciConfig {
                no_new_privileges: Some(false)
            }
        );
        assert!(p.profile.unwrap().uses_notify());

        let none = parse_input(r#"{"ociVersion": "1.0.2", "linux": {}}"#).unwrap();
        assert!(none.profile.is_none());

        let bad = parse_input(r#"{"ociVersion": "1", "linux": {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": [1], "action": "x"}]}}}"#)
            .unwrap_err();
        assert_eq!(bad.path, "linux.seccomp.syscalls[0].names[0]");

        let standalone = parse_input(r#"{"defaultAction": "SCMP_ACT_ERRNO"}"#).unwrap();
        assert_eq!(standalone.source, ProfileSource::Standalone);
    }

    mod laws {
        use proptest::prelude::*;

        use super::super::*;

        fn word() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("SCMP_ACT_ALLOW".to_string()),
                Just("SCMP_ACT_NOTIFY".to_string()),
                Just("SCMP_ACT_ERRNO".to_string()),
                "[a-z_0-9]{0,12}",
                ".{0,8}",
            ]
        }

        fn extra() -> impl Strategy<Value = Extra> {
            let value = prop_oneof![
                any::<i64>().prop_map(Value::from),
                any::<bool>().prop_map(Value::from),
                ".{0,6}".prop_map(Value::from),
                Just(Value::Null),
                prop::collection::vec(any::<u32>().prop_map(Value::from), 0..3)
                    .prop_map(Value::from),
            ];
            // Unknown fields never share a name with a known one.
            prop::collection::btree_map("x[A-Za-z]{0,6}", value, 0..3)
        }

        fn rule() -> impl Strategy<Value = SyscallRule> {
            let arg = (0u32..8, any::<u64>(), any::<u64>(), word(), extra()).prop_map(
                |(index, value, value_two, op, extra)| ArgCondition {
                    index,
                    value,
                    value_two,
                    op,
                    extra,
                },
            );
            (
                prop::collection::vec(word(), 0..4),
                prop::option::of(word()),
                word(),
                prop::option::of(any::<u32>()),
                prop::collection::vec(arg, 0..3),
                prop::option::of(prop_oneof![
                    Just(serde_json::json!({"caps": ["CAP_SYS_ADMIN"]})),
                    Just(serde_json::json!({}))
                ]),
                prop::option::of(".{0,10}"),
                extra(),
            )
                .prop_map(
                    |(names, name, action, errno_ret, args, includes, comment, extra)| {
                        SyscallRule {
                            names,
                            name,
                            action,
                            errno_ret,
                            args,
                            includes: includes.clone(),
                            excludes: includes,
                            comment,
                            extra,
                        }
                    },
                )
        }

        fn profile() -> impl Strategy<Value = Profile> {
            (
                word(),
                prop::option::of(any::<u32>()),
                prop::collection::vec(word(), 0..3),
                prop::collection::vec(word(), 0..2),
                prop::option::of(".{0,12}"),
                prop::option::of(".{0,12}"),
                prop::collection::vec(rule(), 0..5),
                extra(),
            )
                .prop_map(
                    |(
                        default_action,
                        default_errno_ret,
                        architectures,
                        flags,
                        listener_path,
                        listener_metadata,
                        syscalls,
                        extra,
                    )| {
                        Profile {
                            default_action,
                            default_errno_ret,
                            architectures,
                            arch_map: Vec::new(),
                            flags,
                            listener_path,
                            listener_metadata,
                            syscalls,
                            extra,
                        }
                    },
                )
        }

        proptest! {
            /// Whatever a profile holds, writing it out and reading it back
            /// gives the same profile: the linter never loses a field a user
            /// wrote, known or not.
            #[test]
            fn serialize_then_parse_is_identity(p in profile()) {
                let text = serde_json::to_string_pretty(&p).unwrap();
                prop_assert_eq!(Profile::from_json(&text).unwrap(), p);
            }

            /// Analysis is total: any parsed profile gives findings, never a panic.
            #[test]
            fn analysis_never_panics(p in profile()) {
                let _ = crate::seccomp::analyze(&p, &crate::seccomp::Context::default());
            }
        }
    }

    #[test]
    fn actions_parse() {
        assert_eq!(Action::parse("SCMP_ACT_KILL"), Action::KillThread);
        assert_eq!(Action::parse("SCMP_ACT_NOTIFY"), Action::Notify);
        assert_eq!(Action::parse("scmp_act_allow"), Action::Unknown);
        assert!(Action::Errno.takes_errno() && !Action::Allow.takes_errno());
    }
}
