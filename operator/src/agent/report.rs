//! From a scan to the node's `NodeRuntimeReport`, and when to write it.
//!
//! The conversion is where API stability is decided: `warden-api` does not
//! depend on runtime-core, so the engine's types can change without the
//! CRD changing.
//!
//! Writing: a report is current state, so an unchanged scan writes nothing;
//! "unchanged" ignores `lastScanTime`, which differs on every scan. A
//! [`ReportGate`] also spaces writes (at most one per `min_interval`, later
//! changes coalesced into the next write) and refreshes an unchanged report
//! every `heartbeat` so that its `lastScanTime` shows the agent is alive.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::Client;
use runtime_core::cgroups::CgroupMode as CoreCgroupMode;
use runtime_core::diagnose::{ScanReport, Severity as CoreSeverity};
use runtime_core::error::{IoContext, WrappedIoError};
use runtime_core::host::HostFacts as CoreHostFacts;
use tokio::sync::watch;
use warden_api::report::{
    CgroupFacts, CgroupMode, ContainerFinding, ContainerRef, Hazard, HostFacts, PodRef,
    RuntimeFacts, Severity, SystemdFacts, Unreadable, V1Hierarchy, V2Hierarchy,
};
use warden_api::{NodeRuntimeReport, NodeRuntimeReportSpec};

use crate::error_chain::Chain;

/// The field manager of the agent's server-side applies.
pub const FIELD_MANAGER: &str = "warden-agent";

fn severity(s: CoreSeverity) -> Severity {
    match s {
        CoreSeverity::Info => Severity::Info,
        CoreSeverity::Warning => Severity::Warning,
        CoreSeverity::Error => Severity::Error,
    }
}

fn path_text(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// The API's host facts from the engine's.
pub fn host_facts(h: &CoreHostFacts) -> HostFacts {
    HostFacts {
        kernel: h.kernel.clone(),
        attach_race_exposed: h.attach_race_exposed,
        cgroups: h.cgroups.as_ref().map(|l| CgroupFacts {
            mode: match l.mode {
                CoreCgroupMode::Legacy => CgroupMode::Legacy,
                CoreCgroupMode::Hybrid => CgroupMode::Hybrid,
                CoreCgroupMode::Unified => CgroupMode::Unified,
            },
            v1: l
                .v1
                .iter()
                .map(|v| V1Hierarchy {
                    controllers: v.controllers.clone(),
                    mount_point: path_text(&v.mount_point),
                })
                .collect(),
            v2: l.v2.as_ref().map(|v| V2Hierarchy {
                mount_point: path_text(&v.mount_point),
                controllers: v.controllers.clone(),
            }),
        }),
        dev_char: h.dev_char,
        systemd: SystemdFacts {
            running: h.systemd.running,
            version: h.systemd.version.and_then(|v| i32::try_from(v).ok()),
        },
        runtimes: h
            .runtimes
            .iter()
            .map(|r| RuntimeFacts {
                kind: r.kind.binary().to_owned(),
                path: path_text(&r.path),
                version: r.version.clone(),
                version_raw: r.version_raw.clone(),
            })
            .collect(),
        unreadable: h
            .unreadable
            .iter()
            .map(|u| Unreadable {
                what: u.what.clone(),
                path: u.path.as_deref().map(path_text),
                error: u.error.clone(),
            })
            .collect(),
    }
}

/// The report content of one scan (bounded and ordered by
/// [`NodeRuntimeReportSpec::from_scan`]).
pub fn to_spec(scan: &ScanReport, now: Time) -> NodeRuntimeReportSpec {
    let mut hazards = Vec::new();
    let mut findings = Vec::new();
    for f in &scan.findings {
        match &f.container {
            None => hazards.push(Hazard {
                check: f.check.to_string(),
                severity: severity(f.severity),
                message: f.message(),
                evidence: f.evidence(),
                repaired: f.repaired,
                repair_note: f.repair_note.clone(),
            }),
            Some(c) => {
                // The pod UID is on the container (CRI annotations), not on
                // the finding's reference.
                let uid = scan
                    .discovered
                    .iter()
                    .find(|d| d.id == c.id)
                    .and_then(|d| d.pod.as_ref())
                    .and_then(|p| p.uid.clone());
                let pod = match (&c.pod_namespace, &c.pod_name) {
                    (Some(ns), Some(name)) => Some(PodRef {
                        namespace: ns.clone(),
                        name: name.clone(),
                        uid,
                    }),
                    _ => None,
                };
                findings.push(ContainerFinding {
                    pod,
                    container: ContainerRef {
                        name: c.container_name.clone(),
                        id: c.id.clone(),
                        runtime: c.runtime.clone(),
                    },
                    check: f.check.to_string(),
                    severity: severity(f.severity),
                    message: f.message(),
                    evidence: f.evidence(),
                    repaired: f.repaired,
                    repair_note: f.repair_note.clone(),
                });
            }
        }
    }
    NodeRuntimeReportSpec::from_scan(
        host_facts(&scan.host),
        hazards,
        findings,
        scan.containers.len(),
        now,
        Some(env!("CARGO_PKG_VERSION").to_owned()),
    )
}

/// The report without its scan time: what "changed" compares.
fn content(spec: &NodeRuntimeReportSpec) -> NodeRuntimeReportSpec {
    NodeRuntimeReportSpec {
        last_scan_time: None,
        ..spec.clone()
    }
}

/// What to do with a new report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Same content as the last write, and the heartbeat is not due.
    Skip,
    /// Write it now.
    Now,
    /// Write it (or whatever is newest by then) at this instant.
    At(Instant),
}

/// Decides when a report is written (see the module docs).
#[derive(Debug, Clone)]
pub struct ReportGate {
    min_interval: Duration,
    heartbeat: Duration,
    last: Option<(NodeRuntimeReportSpec, Instant)>,
}

impl ReportGate {
    /// A gate spacing writes by `min_interval`, refreshing every
    /// `heartbeat`.
    pub fn new(min_interval: Duration, heartbeat: Duration) -> Self {
        Self {
            min_interval,
            heartbeat,
            last: None,
        }
    }

    /// Whether (and when) to write `spec`.
    pub fn decide(&self, spec: &NodeRuntimeReportSpec, now: Instant) -> Gate {
        let Some((last, at)) = &self.last else {
            return Gate::Now;
        };
        let age = now.saturating_duration_since(*at);
        if *last == content(spec) && age < self.heartbeat {
            return Gate::Skip;
        }
        if age >= self.min_interval {
            Gate::Now
        } else {
            Gate::At(*at + self.min_interval)
        }
    }

    /// Record that `spec` was written at `now`.
    pub fn written(&mut self, spec: &NodeRuntimeReportSpec, now: Instant) {
        self.last = Some((content(spec), now));
    }
}

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The report file could not be written.
    #[error(transparent)]
    Io(#[from] WrappedIoError),
    /// The report could not be encoded.
    #[error("encode report")]
    Encode(#[from] serde_json::Error),
    /// The API server refused or could not be reached.
    #[error("apply NodeRuntimeReport {name}")]
    Apply {
        /// The report's name.
        name: String,
        /// The error.
        #[source]
        source: kube::Error,
    },
    /// The node has no uid yet (it must own its report).
    #[error("node {0} has no uid: cannot own its report")]
    NodeWithoutUid(String),
    /// The API server did not answer in time.
    #[error("apply NodeRuntimeReport: no answer within {0:?}")]
    TimedOut(Duration),
}

/// Write `report` to `path` atomically: a temporary file in the same
/// directory, flushed, then renamed over the old one, so a reader sees the
/// old report or the new one, never half of one.
pub fn write_file(path: &Path, report: &NodeRuntimeReport) -> Result<(), ReportError> {
    let mut bytes = serde_json::to_vec_pretty(report)?;
    bytes.push(b'\n');
    let name = path
        .file_name()
        .map_or_else(|| "report".into(), |n| n.to_string_lossy().into_owned());
    // A fresh name created exclusively (O_CREAT|O_EXCL, which never follows
    // a link): whoever can write the directory cannot make the agent write
    // through a link planted at a predictable name.
    let (tmp, mut f) = create_fresh(path, &name)?;
    let result = (|| {
        f.write_all(&bytes).with_path("write", &tmp)?;
        f.sync_data().with_path("sync", &tmp)?;
        std::fs::rename(&tmp, path).with_path("rename into", path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(ReportError::Io)
}

/// Create a new temporary file beside `path`, never one that exists.
fn create_fresh(path: &Path, name: &str) -> Result<(PathBuf, std::fs::File), ReportError> {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut attempt = 0u32;
    loop {
        let tmp = path.with_file_name(format!(
            ".{name}.{}.{nanos:x}{attempt}.tmp",
            std::process::id()
        ));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
        {
            Ok(f) => return Ok((tmp, f)),
            // Taken (by a link someone planted, or an earlier crash):
            // another name, a few times.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 16 => {
                attempt += 1;
            }
            Err(source) => {
                return Err(ReportError::Io(WrappedIoError {
                    op: "create",
                    path: tmp,
                    source,
                }))
            }
        }
    }
}

/// Server-side apply `spec` as the report of `node` (owned by it), forcing
/// ownership of every field: the agent is the report's only writer.
pub async fn apply(
    client: &Client,
    node: &Node,
    spec: NodeRuntimeReportSpec,
) -> Result<(), ReportError> {
    let name = node.metadata.name.clone().unwrap_or_default();
    let report = NodeRuntimeReport::for_node(node, spec)
        .ok_or_else(|| ReportError::NodeWithoutUid(name.clone()))?;
    let api: Api<NodeRuntimeReport> = Api::all(client.clone());
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&report),
    )
    .await
    .map_err(|source| ReportError::Apply { name, source })?;
    Ok(())
}

/// First wait after a failed apply; doubles up to [`RETRY_MAX`].
const RETRY_BASE: Duration = Duration::from_secs(1);
/// Longest wait between apply attempts.
const RETRY_MAX: Duration = Duration::from_secs(60);
/// Longest wait for one apply's answer. A connection that hangs (a dead API
/// server endpoint, a half-open TCP connection) would otherwise stop every
/// later report write.
pub const APPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// Apply the newest report from `specs` whenever the gate lets it through,
/// once `node` is known (it owns the report); call `written` after each
/// successful apply. Retries with backoff, always with the newest report.
/// Each apply gets at most `apply_timeout` ([`APPLY_TIMEOUT`] outside
/// tests); one that takes longer counts as failed. Runs until `specs`'
/// sender is dropped.
pub async fn publish_loop(
    client: Client,
    mut node: watch::Receiver<Option<Node>>,
    mut specs: watch::Receiver<Option<NodeRuntimeReportSpec>>,
    mut gate: ReportGate,
    apply_timeout: Duration,
    written: impl Fn() + Send + 'static,
) {
    let mut retry = RETRY_BASE;
    while specs.changed().await.is_ok() {
        loop {
            let Some(spec) = specs.borrow_and_update().clone() else {
                break;
            };
            match gate.decide(&spec, Instant::now()) {
                Gate::Skip => break,
                Gate::At(t) => {
                    // Whatever is newest by then goes.
                    tokio::time::sleep_until(t.into()).await;
                    continue;
                }
                Gate::Now => {}
            }
            let owner = match node.wait_for(Option::is_some).await {
                Ok(n) => n.clone(),
                Err(_) => return,
            };
            let Some(owner) = owner else { continue };
            let applied = tokio::time::timeout(apply_timeout, apply(&client, &owner, spec.clone()))
                .await
                .unwrap_or(Err(ReportError::TimedOut(apply_timeout)));
            match applied {
                Ok(()) => {
                    gate.written(&spec, Instant::now());
                    retry = RETRY_BASE;
                    written();
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %Chain(&e), retry_in = ?retry, "report not applied");
                    tokio::time::sleep(retry).await;
                    retry = (retry * 2).min(RETRY_MAX);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;
    use warden_api::report::MAX_FINDINGS;

    fn spec(findings: usize, t: i64) -> NodeRuntimeReportSpec {
        let f = (0..findings)
            .map(|i| ContainerFinding {
                pod: None,
                container: ContainerRef {
                    name: None,
                    id: format!("c{i}"),
                    runtime: "runc".into(),
                },
                check: "device-access-broken".into(),
                severity: Severity::Error,
                message: "cannot open /dev/null".into(),
                evidence: Default::default(),
                repaired: false,
                repair_note: None,
            })
            .collect();
        NodeRuntimeReportSpec::from_scan(
            HostFacts::default(),
            vec![],
            f,
            3,
            Time(Timestamp::from_second(t).unwrap()),
            None,
        )
    }

    #[test]
    fn unchanged_content_is_not_written_again_until_the_heartbeat() {
        let mut g = ReportGate::new(Duration::from_secs(5), Duration::from_secs(300));
        let t0 = Instant::now();
        assert_eq!(g.decide(&spec(1, 100), t0), Gate::Now, "first report");
        g.written(&spec(1, 100), t0);
        // A later scan with the same findings: only the time differs.
        assert_eq!(
            g.decide(&spec(1, 130), t0 + Duration::from_secs(30)),
            Gate::Skip
        );
        assert_eq!(
            g.decide(&spec(1, 400), t0 + Duration::from_secs(300)),
            Gate::Now,
            "heartbeat"
        );
        // A change within the minimum interval waits for it.
        assert_eq!(
            g.decide(&spec(2, 101), t0 + Duration::from_secs(1)),
            Gate::At(t0 + Duration::from_secs(5))
        );
        assert_eq!(
            g.decide(&spec(2, 106), t0 + Duration::from_secs(6)),
            Gate::Now
        );
    }

    #[test]
    fn a_gate_without_minimum_writes_every_change_at_once() {
        let mut g = ReportGate::new(Duration::ZERO, Duration::from_secs(300));
        let t0 = Instant::now();
        g.written(&spec(1, 100), t0);
        assert_eq!(g.decide(&spec(0, 100), t0), Gate::Now);
    }

    #[test]
    fn report_file_is_replaced_whole() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("report.json");
        let big = NodeRuntimeReport::new("n1", spec(MAX_FINDINGS, 1));
        write_file(&p, &big).unwrap();
        let small = NodeRuntimeReport::new("n1", spec(1, 2));
        write_file(&p, &small).unwrap();
        let back: NodeRuntimeReport = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        assert_eq!(back, small);
        assert_eq!(
            std::fs::read_dir(d.path()).unwrap().count(),
            1,
            "no temporary file left behind"
        );
        let e = write_file(&d.path().join("missing/report.json"), &small).unwrap_err();
        assert!(Chain(&e).to_string().contains("missing"), "{e}");
    }

    #[test]
    fn the_temporary_file_never_follows_a_planted_link() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("report.json");
        let victim = d.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        // Whoever can write the report's directory plants links at the
        // names a predictable temporary file would take.
        for i in 0..64 {
            let _ = std::os::unix::fs::symlink(
                &victim,
                d.path()
                    .join(format!(".report.json.{}.tmp", std::process::id() + i - 32)),
            );
        }
        std::os::unix::fs::symlink(
            &victim,
            d.path()
                .join(format!(".report.json.{}.tmp", std::process::id())),
        )
        .ok();
        write_file(&p, &NodeRuntimeReport::new("n1", spec(1, 1))).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        let back: NodeRuntimeReport = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        assert_eq!(back.spec.summary.findings, 1);
    }
}
