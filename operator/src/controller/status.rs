//! A policy's status from the nodes it selects and their reports (pure).

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use warden_api::merge::{selects, SelectorError};
use warden_api::policy::{condition, NodeCounts};
use warden_api::{NodeRuntimeReportSpec, RuntimePolicy, RuntimePolicyStatus};

/// How many node names a condition message lists before "and N more".
const NAMES_IN_MESSAGE: usize = 5;

/// A node as the aggregation needs it.
#[derive(Debug, Clone, Copy)]
pub struct NodeView<'a> {
    /// Node name (= its report's name).
    pub name: &'a str,
    /// Node labels.
    pub labels: &'a BTreeMap<String, String>,
}

/// The selected nodes, sorted into counts and named where it matters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// The counts that go into `status.nodes`.
    pub counts: NodeCounts,
    /// Selected nodes with unrepaired findings, sorted.
    pub with_findings: Vec<String>,
    /// Selected nodes without a fresh report, sorted.
    pub unreported: Vec<String>,
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Whether a report scanned within `stale_after` of `now`. A report from
/// the future (clock skew between node and operator) counts as fresh.
fn fresh(report: &NodeRuntimeReportSpec, now: Timestamp, stale_after: Duration) -> bool {
    let Some(scanned) = &report.last_scan_time else {
        return false;
    };
    let age: SignedDuration = now.duration_since(scanned.0);
    age.as_secs_f64() <= stale_after.as_secs_f64()
}

/// Sort the nodes `selector` selects by what their reports say.
pub fn tally<'a>(
    selector: &LabelSelector,
    nodes: impl IntoIterator<Item = NodeView<'a>>,
    reports: &BTreeMap<&str, &NodeRuntimeReportSpec>,
    now: Timestamp,
    stale_after: Duration,
) -> Result<Tally, SelectorError> {
    let mut t = Tally::default();
    let mut matched = 0;
    for node in nodes {
        if !selects(selector, node.labels)? {
            continue;
        }
        matched += 1;
        match reports.get(node.name) {
            Some(r) if fresh(r, now, stale_after) => {
                if r.has_findings() {
                    t.with_findings.push(node.name.to_owned());
                }
            }
            _ => t.unreported.push(node.name.to_owned()),
        }
    }
    t.with_findings.sort();
    t.unreported.sort();
    let compliant = matched - t.with_findings.len() - t.unreported.len();
    t.counts = NodeCounts {
        matched: count(matched),
        compliant: count(compliant),
        with_findings: count(t.with_findings.len()),
        unreported: count(t.unreported.len()),
    };
    Ok(t)
}

fn name_list(names: &[String]) -> String {
    let shown = names
        .iter()
        .take(NAMES_IN_MESSAGE)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    match names.len().saturating_sub(NAMES_IN_MESSAGE) {
        0 => shown,
        more => format!("{shown} and {more} more"),
    }
}

/// A condition as computed now, before transition times are reconciled.
struct Computed {
    type_: &'static str,
    status: &'static str,
    reason: &'static str,
    message: String,
}

/// The status `policy` should have, given the tally of its nodes. Conditions
/// keep their `lastTransitionTime` from `policy.status` when their status did
/// not change, so an unchanged cluster gives an identical status (and the
/// controller writes nothing).
pub fn status(
    policy: &RuntimePolicy,
    tally: &Result<Tally, SelectorError>,
    now: Time,
) -> RuntimePolicyStatus {
    let (counts, computed) = match tally {
        Err(e) => (
            NodeCounts::default(),
            [
                Computed {
                    type_: condition::READY,
                    status: "False",
                    reason: "InvalidSelector",
                    message: format!("nodeSelector: {e}"),
                },
                Computed {
                    type_: condition::DEGRADED,
                    status: "Unknown",
                    reason: "InvalidSelector",
                    message: "no node can be evaluated until the nodeSelector is fixed".into(),
                },
            ],
        ),
        Ok(t) => {
            let matched = t.counts.matched;
            let ready = if matched == 0 {
                Computed {
                    type_: condition::READY,
                    status: "True",
                    reason: "NoNodesSelected",
                    message: "the nodeSelector selects no node".into(),
                }
            } else if t.unreported.is_empty() {
                Computed {
                    type_: condition::READY,
                    status: "True",
                    reason: "AllNodesReporting",
                    message: format!("all {matched} selected nodes have a fresh report"),
                }
            } else {
                Computed {
                    type_: condition::READY,
                    status: "False",
                    reason: "ReportsMissing",
                    message: format!(
                        "{} of {matched} selected nodes have no fresh report: {}",
                        t.unreported.len(),
                        name_list(&t.unreported)
                    ),
                }
            };
            let degraded = if t.with_findings.is_empty() {
                Computed {
                    type_: condition::DEGRADED,
                    status: "False",
                    reason: "NoFindings",
                    message: "no selected node reports unrepaired findings".into(),
                }
            } else {
                Computed {
                    type_: condition::DEGRADED,
                    status: "True",
                    reason: "FindingsOnNodes",
                    message: format!(
                        "{} of {matched} selected nodes report unrepaired findings: {}",
                        t.with_findings.len(),
                        name_list(&t.with_findings)
                    ),
                }
            };
            (t.counts, [ready, degraded])
        }
    };

    let generation = policy.metadata.generation;
    let previous = policy
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let conditions = computed
        .into_iter()
        .map(|c| {
            let last_transition_time = previous
                .iter()
                .find(|p| p.type_ == c.type_ && p.status == c.status)
                .map_or_else(|| now.clone(), |p| p.last_transition_time.clone());
            Condition {
                type_: c.type_.to_owned(),
                status: c.status.to_owned(),
                reason: c.reason.to_owned(),
                message: c.message,
                observed_generation: generation,
                last_transition_time,
            }
        })
        .collect();

    RuntimePolicyStatus {
        observed_generation: generation,
        conditions,
        nodes: counts,
    }
}

/// The status of condition `type_`, if present.
pub fn condition_status<'a>(
    status: Option<&'a RuntimePolicyStatus>,
    type_: &str,
) -> Option<&'a str> {
    status?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_api::report::{ContainerFinding, ContainerRef, HostFacts, Severity};
    use warden_api::RuntimePolicySpec;

    const STALE: Duration = Duration::from_secs(900);

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn report(scanned: Timestamp, unrepaired_errors: usize) -> NodeRuntimeReportSpec {
        let findings = (0..unrepaired_errors)
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
                evidence: BTreeMap::new(),
                repaired: false,
                repair_note: None,
            })
            .collect();
        NodeRuntimeReportSpec::from_scan(
            HostFacts::default(),
            vec![],
            findings,
            3,
            Time(scanned),
            None,
        )
    }

    struct Cluster {
        nodes: Vec<(String, BTreeMap<String, String>)>,
        reports: BTreeMap<String, NodeRuntimeReportSpec>,
    }

    impl Cluster {
        fn tally(&self, selector: &LabelSelector, now: Timestamp) -> Result<Tally, SelectorError> {
            let reports = self.reports.iter().map(|(k, v)| (k.as_str(), v)).collect();
            let nodes = self
                .nodes
                .iter()
                .map(|(n, l)| NodeView { name: n, labels: l });
            tally(selector, nodes, &reports, now, STALE)
        }
    }

    fn cluster() -> Cluster {
        let gpu = labels(&[("pool", "gpu")]);
        let cpu = labels(&[("pool", "cpu")]);
        Cluster {
            nodes: vec![
                ("gpu-1".into(), gpu.clone()),
                ("gpu-2".into(), gpu.clone()),
                ("gpu-3".into(), gpu.clone()),
                ("gpu-4".into(), gpu),
                ("cpu-1".into(), cpu),
            ],
            reports: [
                ("gpu-1", report(at(0), 0)),
                ("gpu-2", report(at(0), 2)),
                // Scanned 20 minutes before `now`: stale.
                ("gpu-3", report(at(-1200), 0)),
                ("cpu-1", report(at(0), 1)),
                // A report whose node is gone: ignored.
                ("gone", report(at(0), 1)),
            ]
            .into_iter()
            .map(|(n, r)| (n.to_owned(), r))
            .collect(),
        }
    }

    fn gpu_selector() -> LabelSelector {
        LabelSelector {
            match_labels: Some(labels(&[("pool", "gpu")])),
            ..LabelSelector::default()
        }
    }

    #[test]
    fn nodes_are_sorted_into_compliant_findings_and_unreported() {
        let t = cluster().tally(&gpu_selector(), at(60)).unwrap();
        assert_eq!(
            t.counts,
            NodeCounts {
                matched: 4,
                compliant: 1,
                with_findings: 1,
                unreported: 2
            }
        );
        assert_eq!(t.with_findings, ["gpu-2"]);
        assert_eq!(t.unreported, ["gpu-3", "gpu-4"]);

        let all = cluster().tally(&LabelSelector::default(), at(60)).unwrap();
        assert_eq!(all.counts.matched, 5);
        assert_eq!(all.with_findings, ["cpu-1", "gpu-2"]);
    }

    #[test]
    fn a_report_from_the_future_is_fresh() {
        let mut c = cluster();
        c.reports.insert("gpu-4".into(), report(at(3600), 0));
        let t = c.tally(&gpu_selector(), at(60)).unwrap();
        assert_eq!(t.unreported, ["gpu-3"]);
    }

    fn policy(generation: i64) -> RuntimePolicy {
        let mut p = RuntimePolicy::new("gpu", RuntimePolicySpec::default());
        p.metadata.generation = Some(generation);
        p
    }

    #[test]
    fn conditions_say_which_nodes_and_keep_transition_times() {
        let c = cluster();
        let first = status(&policy(3), &c.tally(&gpu_selector(), at(60)), Time(at(60)));
        assert_eq!(first.observed_generation, Some(3));
        let ready = &first.conditions[0];
        assert_eq!(
            (ready.type_.as_str(), ready.status.as_str()),
            ("Ready", "False")
        );
        assert_eq!(ready.reason, "ReportsMissing");
        assert_eq!(
            ready.message,
            "2 of 4 selected nodes have no fresh report: gpu-3, gpu-4"
        );
        let degraded = &first.conditions[1];
        assert_eq!(
            (degraded.type_.as_str(), degraded.status.as_str()),
            ("Degraded", "True")
        );
        assert_eq!(
            degraded.message,
            "1 of 4 selected nodes report unrepaired findings: gpu-2"
        );
        assert!(first
            .conditions
            .iter()
            .all(|c| c.observed_generation == Some(3)));

        // Ten minutes later, gpu-2 is repaired: Degraded flips and gets a new
        // transition time; Ready does not flip and keeps its time.
        let mut p = policy(3);
        p.status = Some(first.clone());
        let mut later = cluster();
        later.reports.insert("gpu-2".into(), report(at(600), 0));
        let second = status(&p, &later.tally(&gpu_selector(), at(600)), Time(at(600)));
        assert_eq!(second.conditions[0].last_transition_time, Time(at(60)));
        assert_eq!(second.conditions[1].status, "False");
        assert_eq!(second.conditions[1].last_transition_time, Time(at(600)));

        // Nothing changes: the status is identical, so nothing is written.
        p.status = Some(second.clone());
        let third = status(&p, &later.tally(&gpu_selector(), at(600)), Time(at(660)));
        assert_eq!(third, second);
    }

    #[test]
    fn no_selected_node_is_ready_and_an_invalid_selector_is_not() {
        let none = LabelSelector {
            match_labels: Some(labels(&[("pool", "tpu")])),
            ..LabelSelector::default()
        };
        let s = status(&policy(1), &cluster().tally(&none, at(0)), Time(at(0)));
        assert_eq!(s.conditions[0].status, "True");
        assert_eq!(s.conditions[0].reason, "NoNodesSelected");
        assert_eq!(s.nodes, NodeCounts::default());

        let bad = LabelSelector {
            match_expressions: Some(vec![
                k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement {
                    key: "pool".into(),
                    operator: "Like".into(),
                    values: None,
                },
            ]),
            ..LabelSelector::default()
        };
        let s = status(&policy(1), &cluster().tally(&bad, at(0)), Time(at(0)));
        assert_eq!(
            (
                s.conditions[0].status.as_str(),
                s.conditions[0].reason.as_str()
            ),
            ("False", "InvalidSelector")
        );
        assert_eq!(s.conditions[1].status, "Unknown");
    }

    #[test]
    fn long_name_lists_are_cut() {
        let names: Vec<String> = (0..8).map(|i| format!("n{i}")).collect();
        assert_eq!(name_list(&names), "n0, n1, n2, n3, n4 and 3 more");
        assert_eq!(name_list(&names[..2]), "n0, n1");
    }

    #[test]
    fn condition_lookup() {
        let s = status(
            &policy(1),
            &cluster().tally(&gpu_selector(), at(60)),
            Time(at(60)),
        );
        assert_eq!(condition_status(Some(&s), "Degraded"), Some("True"));
        assert_eq!(condition_status(None, "Degraded"), None);
    }
}
