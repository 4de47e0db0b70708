//! The agent's Prometheus metrics, registered once ([`Metrics::register`]).
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `warden_findings` | gauge: unrepaired findings in the last scan | `check`, `severity` |
//! | `warden_repairs_total` | counter | `check`, `result` (`repaired`, `failed`) |
//! | `warden_scan_duration_seconds` | histogram | |
//! | `warden_scans_total` | counter | `trigger` (`start`, `change`, `timer`, `policy`) |
//! | `warden_containers` | gauge: containers in the last scan | |
//! | `warden_build_info` | info | `version` |

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};
use runtime_core::diagnose::ScanReport;

use runtime_core::engine::Attempt;

/// Labels of `warden_findings`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FindingLabels {
    check: String,
    severity: String,
}

/// Labels of `warden_repairs_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RepairLabels {
    check: String,
    result: String,
}

/// Labels of `warden_scans_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScanLabels {
    trigger: String,
}

/// What started a scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The first scan.
    Start,
    /// A watch or the program poll saw a change.
    Change,
    /// The slow timer.
    Timer,
    /// The policy changed.
    Policy,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::Start => "start",
            Trigger::Change => "change",
            Trigger::Timer => "timer",
            Trigger::Policy => "policy",
        }
    }
}

/// Handles to every metric (cheap to clone: each is shared).
#[derive(Debug, Clone)]
pub struct Metrics {
    findings: Family<FindingLabels, Gauge>,
    repairs: Family<RepairLabels, Counter>,
    scan_duration: Histogram,
    scans: Family<ScanLabels, Counter>,
    containers: Gauge,
}

impl Metrics {
    /// Create every metric and register it in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            findings: Family::default(),
            repairs: Family::default(),
            // 5 ms to ~20 s.
            scan_duration: Histogram::new(exponential_buckets(0.005, 2.0, 13)),
            scans: Family::default(),
            containers: Gauge::default(),
        };
        registry.register(
            "warden_findings",
            "Unrepaired findings in the last scan, by check and severity",
            m.findings.clone(),
        );
        registry.register(
            "warden_repairs",
            "Repairs the agent ran, by check and result",
            m.repairs.clone(),
        );
        registry.register_with_unit(
            "warden_scan_duration",
            "How long one scan of the node took",
            Unit::Seconds,
            m.scan_duration.clone(),
        );
        registry.register(
            "warden_scans",
            "Scans, by what started them",
            m.scans.clone(),
        );
        registry.register(
            "warden_containers",
            "Containers inspected in the last scan",
            m.containers.clone(),
        );
        registry.register(
            "warden_build",
            "The agent's version",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        m
    }

    /// Record one scan: its duration, what started it, the containers.
    pub fn scanned(&self, trigger: Trigger, took: Duration, report: &ScanReport) {
        self.scan_duration.observe(took.as_secs_f64());
        self.scans
            .get_or_create(&ScanLabels {
                trigger: trigger.as_str().into(),
            })
            .inc();
        self.containers
            .set(i64::try_from(report.containers.len()).unwrap_or(i64::MAX));
        self.findings(report);
    }

    /// Set `warden_findings` to the unrepaired findings of `report`.
    pub fn findings(&self, report: &ScanReport) {
        // Checks that no longer fire must drop to nothing, not linger at
        // their last value.
        self.findings.clear();
        for f in report.findings.iter().filter(|f| !f.repaired) {
            self.findings
                .get_or_create(&FindingLabels {
                    check: f.check.to_string(),
                    severity: f.severity.to_string(),
                })
                .inc();
        }
    }

    /// Count the repairs of one round.
    pub fn repaired(&self, attempts: &[Attempt]) {
        for a in attempts {
            self.repairs
                .get_or_create(&RepairLabels {
                    check: a.finding.check.to_string(),
                    result: a.result.as_str().into(),
                })
                .inc();
        }
    }
}

/// The registry in the Prometheus text format.
pub fn encode(registry: &Registry) -> Result<String, std::fmt::Error> {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use runtime_core::diagnose::{CheckId, ContainerRef, Severity};
    use runtime_core::engine::AttemptResult;
    use runtime_core::testing::fixtures::{finding, scan_with as scan};

    #[test]
    fn metrics_have_the_documented_names_and_labels() {
        let mut registry = Registry::default();
        let m = Metrics::register(&mut registry);
        let c1 = ContainerRef {
            id: "c1".into(),
            runtime: "runc".into(),
            pod_namespace: None,
            pod_name: None,
            container_name: None,
        };
        let broken = finding(CheckId::DeviceAccessBroken, Severity::Error, Some(c1));
        let mut fixed = broken.clone();
        fixed.repaired = true;
        m.scanned(
            Trigger::Change,
            Duration::from_millis(40),
            &scan(vec![
                broken.clone(),
                finding(CheckId::DeviceUpdateJitter, Severity::Warning, None),
            ]),
        );
        m.repaired(&[Attempt {
            finding: fixed.clone(),
            result: AttemptResult::Repaired,
            note: String::new(),
        }]);
        let text = encode(&registry).unwrap();
        for want in [
            "warden_findings{check=\"device-access-broken\",severity=\"error\"} 1",
            "warden_findings{check=\"device-update-jitter\",severity=\"warning\"} 1",
            "warden_repairs_total{check=\"device-access-broken\",result=\"repaired\"} 1",
            "warden_scan_duration_seconds_count 1",
            "warden_scans_total{trigger=\"change\"} 1",
            "warden_containers 0",
            "warden_build_info{version=\"",
            "# EOF",
        ] {
            assert!(text.contains(want), "missing {want:?} in:\n{text}");
        }
        // After the repair the finding is gone from the gauge.
        m.findings(&scan(vec![fixed]));
        let text = encode(&registry).unwrap();
        assert!(!text.contains("warden_findings{"), "{text}");
    }
}
