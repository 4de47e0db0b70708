//! `warden lint-profile FILE...`: check seccomp profiles before they reach a
//! node. Meant as a CI step in the repository that holds the profiles.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use runtime_core::checks::{CheckId, Severity, UnknownSeverity};
use runtime_core::host::{runtimes, HostRoot, RuntimeKind};
use runtime_core::seccomp::{self, Issue, ParseError, ProfileSource, Target};
use serde::{Serialize, Serializer};

use crate::exit::Outcome;

/// Arguments of `warden lint-profile`.
#[derive(Debug, Args)]
#[command(after_long_help = AFTER_HELP)]
pub struct LintProfileArgs {
    /// Profiles to check: Kubernetes/Docker seccomp JSON, a bare OCI
    /// `linux.seccomp` object, or a whole OCI `config.json` (its
    /// `linux.seccomp` is checked, with its `process.noNewPrivileges`).
    /// `-` reads standard input.
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = LintOutput::Text)]
    pub output: LintOutput,
    /// Exit 1 when a finding is at or above this severity: `info`,
    /// `warning` or `error`.
    #[arg(long, value_name = "SEVERITY", default_value = "error", value_parser = parse_severity)]
    pub fail_on: Severity,
    /// Judge the profiles for this runtime: `runc`, `crun`, or with a
    /// version, `crun@1.8.1`. Repeatable. `host` means the runtimes installed
    /// on this machine. Default: runc and crun at any version (every known
    /// hazard of every release).
    #[arg(long = "runtime", value_name = "RUNTIME[@VERSION]")]
    pub runtimes: Vec<String>,
    /// Assume the containers run with this `noNewPrivileges` (Kubernetes:
    /// `allowPrivilegeEscalation: false` sets it). Runtimes install the filter
    /// at different points with and without it, so different syscalls are
    /// hazards. Default: from the OCI config when the file is one, else
    /// both settings are considered.
    #[arg(long, value_name = "BOOL")]
    pub no_new_privileges: Option<bool>,
}

const AFTER_HELP: &str = "\
Exit status: 0 when no finding is at or above --fail-on, 1 when one is, \
2 when a file cannot be read or parsed (the others are still checked).

Check ids: seccomp-notify-unsafe, seccomp-notify-default-action, \
seccomp-notify-no-listener, seccomp-notify-needs-agent, \
seccomp-listener-without-notify, seccomp-runtime-incompatible, \
seccomp-invalid-value, seccomp-unknown-syscall, seccomp-conflicting-rule, \
seccomp-duplicate-rule.

Examples:
  warden lint-profile profiles/*.json
  warden lint-profile --runtime crun@1.8.1 --fail-on warning agent.json
  warden lint-profile --output json bundle/config.json";

/// Output format of `lint-profile`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LintOutput {
    /// One block per file, for people.
    Text,
    /// `{"failOn": ..., "files": [{"path", "status", "findings", "error"}]}`.
    Json,
}

fn parse_severity(s: &str) -> Result<Severity, String> {
    s.parse().map_err(|e: UnknownSeverity| e.to_string())
}

/// One file's result.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct FileReport {
    path: String,
    /// `clean`, `findings` or `unreadable`.
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    format: Option<&'static str>,
    #[serde(serialize_with = "as_findings")]
    findings: Vec<Issue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<FileError>,
}

/// One issue in the JSON report, in the shape the report has always had
/// (that of a `warden check` finding without a container, never repaired),
/// so scripts reading `--output json` see no change.
#[derive(Debug, Serialize)]
struct JsonFinding<'a> {
    check: CheckId,
    severity: Severity,
    message: &'a str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    evidence: &'a BTreeMap<String, String>,
    repaired: bool,
}

fn as_findings<S: Serializer>(issues: &[Issue], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(issues.iter().map(|i| JsonFinding {
        check: i.check,
        severity: i.severity,
        message: &i.message,
        evidence: &i.evidence,
        repaired: false,
    }))
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct FileError {
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    json_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    column: Option<usize>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    fail_on: Severity,
    runtimes: Vec<String>,
    files: Vec<FileReport>,
}

/// Why `warden lint-profile` could not lint or print its report (exit
/// status 2). A file that cannot be read or parsed is not one: it is
/// reported with the others and the exit status says so.
#[derive(Debug, thiserror::Error)]
pub enum LintError {
    /// `--runtime host` on a machine without runc or crun.
    #[error("--runtime host: neither runc nor crun is installed here")]
    NoHostRuntime,
    /// A `--runtime` value that names no known runtime or version.
    #[error("--runtime {spec}: {reason}")]
    Runtime {
        /// The value given.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The JSON report could not be written.
    #[error("write the JSON report to stdout")]
    Json(#[source] serde_json::Error),
    /// The text report could not be written.
    #[error("write the report to stdout")]
    Write(#[source] std::io::Error),
}

/// Lint every file and print the report.
pub fn run(args: &LintProfileArgs) -> Result<Outcome, LintError> {
    let targets = resolve_targets(&args.runtimes)?;
    let mut files = Vec::new();
    for path in &args.files {
        files.push(lint_file(path, &targets, args.no_new_privileges));
    }
    let report = Report {
        fail_on: args.fail_on,
        runtimes: targets.iter().map(target_label).collect(),
        files,
    };
    let mut out = std::io::stdout().lock();
    match args.output {
        LintOutput::Json => {
            serde_json::to_writer_pretty(&mut out, &report).map_err(LintError::Json)?;
            writeln!(out).map_err(LintError::Write)?;
        }
        LintOutput::Text => write_text(&mut out, &report).map_err(LintError::Write)?,
    }
    Ok(outcome(&report))
}

fn outcome(r: &Report) -> Outcome {
    if r.files.iter().any(|f| f.error.is_some()) {
        Outcome::Error
    } else if r
        .files
        .iter()
        .flat_map(|f| &f.findings)
        .any(|f| f.severity >= r.fail_on)
    {
        Outcome::Findings
    } else {
        Outcome::Clean
    }
}

fn resolve_targets(specs: &[String]) -> Result<Vec<Target>, LintError> {
    if specs.is_empty() {
        return Ok(Target::all_known());
    }
    let mut out = Vec::new();
    for s in specs {
        if s == "host" {
            let (found, _) = runtimes::discover(
                &runtime_core::ports::RealHostPrograms::new(HostRoot::new("/"), None),
                Duration::from_secs(5),
            );
            let host: Vec<Target> = found
                .iter()
                .filter(|r| matches!(r.kind, RuntimeKind::Runc | RuntimeKind::Crun))
                .map(Target::from_runtime_info)
                .collect();
            if host.is_empty() {
                return Err(LintError::NoHostRuntime);
            }
            out.extend(host);
        } else {
            out.push(Target::parse(s).map_err(|reason| LintError::Runtime {
                spec: s.clone(),
                reason,
            })?);
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn target_label(t: &Target) -> String {
    match t.version {
        Some((a, b, c)) => format!("{}@{a}.{b}.{c}", t.kind.binary()),
        None => t.kind.binary().to_string(),
    }
}

fn lint_file(path: &PathBuf, targets: &[Target], nnp: Option<bool>) -> FileReport {
    let shown = path.display().to_string();
    let text = if shown == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).map(|_| s)
    } else {
        std::fs::read_to_string(path)
    };
    let unreadable = |error: FileError| FileReport {
        path: shown.clone(),
        status: "unreadable",
        format: None,
        findings: Vec::new(),
        error: Some(error),
    };
    let text = match text {
        Ok(t) => t,
        Err(e) => {
            return unreadable(FileError {
                message: format!("read {shown}: {e}"),
                json_path: None,
                line: None,
                column: None,
            })
        }
    };
    let input = match seccomp::parse_input(&text) {
        Ok(i) => i,
        Err(e) => return unreadable(parse_error(e)),
    };
    let format = match (&input.profile, &input.source) {
        (None, _) => "oci-config-without-seccomp",
        (Some(_), ProfileSource::OciConfig { .. }) => "oci-config",
        (Some(_), ProfileSource::Standalone) => "profile",
    };
    let findings = match &input.profile {
        None => Vec::new(),
        Some(p) => seccomp::analyze(
            p,
            &seccomp::Context {
                source: input.source.clone(),
                targets: targets.to_vec(),
                no_new_privileges: nnp,
            },
        ),
    };
    FileReport {
        path: shown,
        status: if findings.is_empty() {
            "clean"
        } else {
            "findings"
        },
        format: Some(format),
        findings,
        error: None,
    }
}

fn parse_error(e: ParseError) -> FileError {
    FileError {
        message: format!("not a seccomp profile: {e}"),
        json_path: Some(if e.path.is_empty() {
            ".".into()
        } else {
            e.path.clone()
        }),
        line: (e.line > 0).then_some(e.line),
        column: (e.column > 0).then_some(e.column),
    }
}

fn write_text(out: &mut impl Write, r: &Report) -> std::io::Result<()> {
    let mut counts: BTreeMap<Severity, usize> = BTreeMap::new();
    for f in &r.files {
        if let Some(e) = &f.error {
            writeln!(out, "{}: cannot check: {}", f.path, e.message)?;
            continue;
        }
        if f.findings.is_empty() {
            let note = if f.format == Some("oci-config-without-seccomp") {
                " (OCI config without linux.seccomp)"
            } else {
                ""
            };
            writeln!(out, "{}: clean{note}", f.path)?;
            continue;
        }
        writeln!(out, "{}: {} finding(s)", f.path, f.findings.len())?;
        for x in &f.findings {
            *counts.entry(x.severity).or_default() += 1;
            let at = x
                .evidence
                .get("path")
                .map(|p| format!(" [{p}]"))
                .unwrap_or_default();
            writeln!(out, "  {:<7} {}{at}", x.severity.to_string(), x.check)?;
            writeln!(out, "          {}", x.message)?;
            for (k, v) in &x.evidence {
                if k != "path" {
                    writeln!(out, "          {k}: {v}")?;
                }
            }
        }
    }
    let unreadable = r.files.iter().filter(|f| f.error.is_some()).count();
    let failing: usize = counts
        .iter()
        .filter(|(s, _)| **s >= r.fail_on)
        .map(|(_, n)| n)
        .sum();
    let by_sev: Vec<String> = counts
        .iter()
        .rev()
        .map(|(s, n)| format!("{n} {s}"))
        .collect();
    writeln!(
        out,
        "\n{} file(s), runtimes {}: {}; {failing} at or above {}{}",
        r.files.len(),
        r.runtimes.join(", "),
        if by_sev.is_empty() {
            "no findings".to_string()
        } else {
            by_sev.join(", ")
        },
        r.fail_on,
        if unreadable > 0 {
            format!("; {unreadable} unreadable")
        } else {
            String::new()
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../runtime-core/tests/fixtures/seccomp")
            .join(name)
    }

    fn report(files: &[PathBuf], fail_on: Severity, nnp: Option<bool>) -> Report {
        Report {
            fail_on,
            runtimes: vec![],
            files: files
                .iter()
                .map(|p| lint_file(p, &Target::all_known(), nnp))
                .collect(),
        }
    }

    #[test]
    fn outcomes_follow_fail_on_and_unreadable_files() {
        let clean = fixture("docker-default-shape.json");
        let close = fixture("notify-close.json");
        let bad = fixture("malformed-args.json");
        assert_eq!(
            outcome(&report(std::slice::from_ref(&clean), Severity::Error, None)),
            Outcome::Clean
        );
        assert_eq!(
            outcome(&report(
                &[clean.clone(), close.clone()],
                Severity::Error,
                None
            )),
            Outcome::Findings
        );
        assert_eq!(
            outcome(&report(
                &[close.clone(), bad.clone()],
                Severity::Error,
                None
            )),
            Outcome::Error
        );
        assert_eq!(
            outcome(&report(
                &[PathBuf::from("/nonexistent/p.json")],
                Severity::Error,
                None
            )),
            Outcome::Error
        );
        // execve is a warning: clean at error, failing at warning.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("execve.json");
        std::fs::write(&p, r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/s","syscalls":[{"names":["execve"],"action":"SCMP_ACT_NOTIFY"}]}"#).unwrap();
        assert_eq!(
            outcome(&report(std::slice::from_ref(&p), Severity::Error, None)),
            Outcome::Clean
        );
        assert_eq!(
            outcome(&report(&[p], Severity::Warning, None)),
            Outcome::Findings
        );
    }

    #[test]
    fn text_report_names_files_checks_and_paths() {
        let r = report(
            &[fixture("notify-close.json"), fixture("malformed-args.json")],
            Severity::Error,
            None,
        );
        let mut buf = Vec::new();
        write_text(&mut buf, &r).unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert!(text.contains("notify-close.json: 1 finding(s)"), "{text}");
        assert!(
            text.contains("error   seccomp-notify-unsafe [syscalls[0]]"),
            "{text}"
        );
        assert!(text.contains("malformed-args.json: cannot check: not a seccomp profile: syscalls[1].args[0].value"), "{text}");
        assert!(
            text.contains("1 error; 1 at or above error; 1 unreadable"),
            "{text}"
        );
    }

    #[test]
    fn an_unknown_runtime_is_refused_with_its_value() {
        let e = resolve_targets(&["runc".into(), "podman".into()]).unwrap_err();
        assert!(
            matches!(&e, LintError::Runtime { spec, .. } if spec == "podman"),
            "{e}"
        );
        assert!(e.to_string().starts_with("--runtime podman: "), "{e}");
    }

    #[test]
    fn no_new_privileges_flag_narrows_a_standalone_profile() {
        // Without a listener: a warning for a standalone profile even when
        // NNP is given (the engine may supply a listener).
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("p.json");
        std::fs::write(&p, r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["setresuid"],"action":"SCMP_ACT_NOTIFY"}]}"#).unwrap();
        let checks = |nnp| -> Vec<(CheckId, Severity)> {
            lint_file(&p, &[Target::parse("crun@1.8.1").unwrap()], nnp)
                .findings
                .into_iter()
                .map(|f| (f.check, f.severity))
                .collect()
        };
        assert_eq!(
            checks(Some(true)),
            vec![(CheckId::SeccompNotifyNoListener, Severity::Warning)]
        );
        assert_eq!(
            checks(Some(false)),
            vec![
                (CheckId::SeccompNotifyNoListener, Severity::Warning),
                (CheckId::SeccompNotifyUnsafe, Severity::Error),
            ]
        );
    }
}
