//! Which policies apply, and what they add up to.
//!
//! Several `RuntimePolicy` objects may select the same node (agent) or
//! namespace (webhook). Each setting is merged on its own, and the strictest
//! value wins:
//!
//! | field | strictest wins as |
//! |---|---|
//! | `mode` | `Enforce` over `Audit` |
//! | `devices.explicitRules` | `Always` over `Auto` over `Never` |
//! | `devices.required` | the union of all lists (sorted, without duplicates) |
//! | `seccomp.notify` | `Deny` over `Warn` over `Allow` |
//! | `exec.minProbePeriodSeconds` | the largest (fewest execs admitted) |
//! | `remediation.maxConcurrentRepairs` | the smallest (tightest rate limit) |
//! | `remediation.killStuckInits` | `true` only if every `Enforce` policy asks for it (Audit policies repair nothing and have no say) |
//!
//! Each rule is a maximum over a total order, a minimum, a set union or a
//! logical and/or: all commutative, associative and idempotent. So the result
//! does not depend on the order in which the API server lists policies, nor
//! on how they are grouped, and listing a policy twice changes nothing
//! (property-tested below). The names of the merged policies are kept,
//! sorted, so that a report can say where a setting came from.
//!
//! `killStuckInits` is the one setting where the strictest value is the
//! cautious one: a kill ends a container, so it happens only when every
//! policy that repairs (mode `Enforce`) asks for it. The CRD only admits
//! `true` together with `mode: Enforce`, so whenever it holds the merged
//! mode is `Enforce` too.
//!
//! No policy at all means the built-in defaults, which are the CRD's
//! defaults (`RuntimePolicySpec::default()`).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::core::{Selector, SelectorExt};
use kube::ResourceExt;

use crate::policy::{
    DevicePolicy, ExecPolicy, Mode, RemediationPolicy, RuntimePolicy, RuntimePolicySpec,
    SeccompPolicy,
};

/// The settings that apply to one node or namespace after merging every
/// policy that selects it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectivePolicy {
    /// Enforce when any selecting policy enforces.
    pub mode: Mode,
    /// Merged device settings.
    pub devices: DevicePolicy,
    /// Merged seccomp settings.
    pub seccomp: SeccompPolicy,
    /// Merged exec-probe settings.
    pub exec: ExecPolicy,
    /// Merged remediation limits.
    pub remediation: RemediationPolicy,
    /// Names of the merged policies, sorted and without duplicates; empty
    /// when the built-in defaults apply.
    pub sources: Vec<String>,
    /// (some merged policy enforces, every enforcing one asks to kill):
    /// what `remediation.kill_stuck_inits` is made of.
    kill_votes: (bool, bool),
}

impl Default for EffectivePolicy {
    /// The built-in defaults: what applies where no policy selects.
    fn default() -> Self {
        Self::from_spec(&RuntimePolicySpec::default(), Vec::new())
    }
}

impl EffectivePolicy {
    fn from_spec(spec: &RuntimePolicySpec, sources: Vec<String>) -> Self {
        let mut devices = spec.devices.clone();
        normalize_devices(&mut devices.required);
        let enforce = spec.mode == Mode::Enforce;
        let kill_votes = (enforce, !enforce || spec.remediation.kill_stuck_inits);
        let mut remediation = spec.remediation.clone();
        remediation.kill_stuck_inits = kill_votes.0 && kill_votes.1;
        Self {
            mode: spec.mode,
            devices,
            seccomp: spec.seccomp.clone(),
            exec: spec.exec.clone(),
            remediation,
            sources,
            kill_votes,
        }
    }

    /// Fold `other` into `self`, strictest value per field.
    fn absorb(&mut self, other: &EffectivePolicy) {
        self.mode = self.mode.max(other.mode);
        self.devices.explicit_rules = self
            .devices
            .explicit_rules
            .max(other.devices.explicit_rules);
        self.devices
            .required
            .extend(other.devices.required.iter().cloned());
        normalize_devices(&mut self.devices.required);
        self.seccomp.notify = self.seccomp.notify.max(other.seccomp.notify);
        self.exec.min_probe_period_seconds = self
            .exec
            .min_probe_period_seconds
            .max(other.exec.min_probe_period_seconds);
        self.remediation.max_concurrent_repairs = self
            .remediation
            .max_concurrent_repairs
            .min(other.remediation.max_concurrent_repairs);
        self.kill_votes = (
            self.kill_votes.0 || other.kill_votes.0,
            self.kill_votes.1 && other.kill_votes.1,
        );
        self.remediation.kill_stuck_inits = self.kill_votes.0 && self.kill_votes.1;
        self.sources.extend(other.sources.iter().cloned());
        self.sources.sort();
        self.sources.dedup();
    }
}

fn normalize_devices(required: &mut Vec<String>) {
    required.sort();
    required.dedup();
}

/// Merge policy specs, strictest value per field (see the module docs). No
/// specs gives the built-in defaults.
pub fn merge_specs<'a>(specs: impl IntoIterator<Item = &'a RuntimePolicySpec>) -> EffectivePolicy {
    fold(
        specs
            .into_iter()
            .map(|s| EffectivePolicy::from_spec(s, Vec::new())),
    )
}

/// Merge policies, strictest value per field (see the module docs), keeping
/// their names in [`EffectivePolicy::sources`]. No policies gives the
/// built-in defaults.
pub fn merge<'a>(policies: impl IntoIterator<Item = &'a RuntimePolicy>) -> EffectivePolicy {
    fold(
        policies
            .into_iter()
            .map(|p| EffectivePolicy::from_spec(&p.spec, vec![p.name_any()])),
    )
}

fn fold(mut parts: impl Iterator<Item = EffectivePolicy>) -> EffectivePolicy {
    // The defaults are the answer for no policy, not the identity of the
    // merge: folding them in would, for example, raise every policy's
    // minProbePeriodSeconds to at least the default.
    let Some(mut acc) = parts.next() else {
        return EffectivePolicy::default();
    };
    for p in parts {
        acc.absorb(&p);
    }
    acc
}

/// A label selector that cannot be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid label selector: {0}")]
pub struct SelectorError(String);

/// Whether `selector` selects an object with `labels`. An empty selector
/// selects everything. Operators are checked as the API server checks them
/// on built-in kinds (and as the CRD's CEL rule does): `In`/`NotIn` need
/// values, `Exists`/`DoesNotExist` take none.
pub fn selects(
    selector: &LabelSelector,
    labels: &BTreeMap<String, String>,
) -> Result<bool, SelectorError> {
    for e in selector.match_expressions.iter().flatten() {
        let n = e.values.as_ref().map_or(0, Vec::len);
        let ok = match e.operator.as_str() {
            "In" | "NotIn" => n > 0,
            "Exists" | "DoesNotExist" => n == 0,
            _ => false,
        };
        if !ok {
            return Err(SelectorError(format!(
                "key {:?}: operator {:?} with {n} values",
                e.key, e.operator
            )));
        }
    }
    let parsed = Selector::try_from(selector.clone()).map_err(|e| SelectorError(e.0))?;
    Ok(parsed.matches(labels))
}

/// The policies whose `nodeSelector` selects a node with `labels`. A policy
/// with an invalid selector selects nothing (the CRD's CEL rule keeps such
/// selectors out; the operator reports any that got in before it).
pub fn for_node<'a>(
    policies: impl IntoIterator<Item = &'a RuntimePolicy>,
    labels: &'a BTreeMap<String, String>,
) -> impl Iterator<Item = &'a RuntimePolicy> {
    policies
        .into_iter()
        .filter(move |p| selects(&p.spec.node_selector, labels).unwrap_or(false))
}

/// The policies whose `namespaceSelector` selects a namespace with
/// `labels`. Invalid selectors select nothing, as in [`for_node`].
pub fn for_namespace<'a>(
    policies: impl IntoIterator<Item = &'a RuntimePolicy>,
    labels: &'a BTreeMap<String, String>,
) -> impl Iterator<Item = &'a RuntimePolicy> {
    policies
        .into_iter()
        .filter(move |p| selects(&p.spec.namespace_selector, labels).unwrap_or(false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{ExplicitRules, NotifyAction};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
    use proptest::prelude::*;

    fn policy(name: &str, spec: RuntimePolicySpec) -> RuntimePolicy {
        RuntimePolicy::new(name, spec)
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn no_policy_means_the_crd_defaults() {
        let e = merge([]);
        assert_eq!(e.mode, Mode::Audit);
        assert_eq!(e.devices.explicit_rules, ExplicitRules::Auto);
        assert_eq!(
            e.devices.required,
            [
                "/dev/full",
                "/dev/null",
                "/dev/random",
                "/dev/tty",
                "/dev/urandom",
                "/dev/zero"
            ]
        );
        assert_eq!(e.seccomp.notify, NotifyAction::Deny);
        assert_eq!(e.exec.min_probe_period_seconds, 10);
        assert_eq!(e.remediation.max_concurrent_repairs, 1);
        assert!(!e.remediation.kill_stuck_inits);
        assert!(e.sources.is_empty());
    }

    #[test]
    fn kill_stuck_inits_needs_every_enforcing_policy_to_ask() {
        let spec = |mode, kill| RuntimePolicySpec {
            mode,
            remediation: RemediationPolicy {
                kill_stuck_inits: kill,
                ..RemediationPolicy::default()
            },
            ..RuntimePolicySpec::default()
        };
        let kill = |a: RuntimePolicySpec, b: RuntimePolicySpec| {
            merge(&[policy("a", a), policy("b", b)])
                .remediation
                .kill_stuck_inits
        };
        // The most destructive setting does not win: one enforcing policy
        // that does not ask keeps the kill off.
        assert!(!kill(spec(Mode::Enforce, true), spec(Mode::Enforce, false)));
        assert!(!kill(spec(Mode::Enforce, false), spec(Mode::Enforce, true)));
        assert!(kill(spec(Mode::Enforce, true), spec(Mode::Enforce, true)));
        // An Audit policy repairs nothing, so it has no say.
        assert!(kill(spec(Mode::Enforce, true), spec(Mode::Audit, false)));
        assert!(!kill(spec(Mode::Audit, false), spec(Mode::Audit, false)));
    }

    #[test]
    fn strictest_setting_wins_field_by_field() {
        let lax = RuntimePolicySpec {
            mode: Mode::Enforce,
            devices: DevicePolicy {
                explicit_rules: ExplicitRules::Never,
                required: vec!["/dev/null".into(), "/dev/fuse".into()],
            },
            seccomp: SeccompPolicy {
                notify: NotifyAction::Allow,
            },
            exec: ExecPolicy {
                min_probe_period_seconds: 30,
            },
            remediation: RemediationPolicy {
                max_concurrent_repairs: 4,
                kill_stuck_inits: true,
            },
            ..RuntimePolicySpec::default()
        };
        let other = RuntimePolicySpec {
            mode: Mode::Audit,
            devices: DevicePolicy {
                explicit_rules: ExplicitRules::Always,
                required: vec!["/dev/net/tun".into(), "/dev/null".into()],
            },
            seccomp: SeccompPolicy {
                notify: NotifyAction::Warn,
            },
            exec: ExecPolicy {
                min_probe_period_seconds: 5,
            },
            remediation: RemediationPolicy {
                max_concurrent_repairs: 2,
                kill_stuck_inits: false,
            },
            ..RuntimePolicySpec::default()
        };

        let e = merge(&[policy("b-lax", lax), policy("a-other", other)]);
        assert_eq!(e.mode, Mode::Enforce);
        assert_eq!(e.devices.explicit_rules, ExplicitRules::Always);
        assert_eq!(
            e.devices.required,
            ["/dev/fuse", "/dev/net/tun", "/dev/null"]
        );
        assert_eq!(e.seccomp.notify, NotifyAction::Warn);
        assert_eq!(e.exec.min_probe_period_seconds, 30);
        assert_eq!(e.remediation.max_concurrent_repairs, 2);
        assert!(e.remediation.kill_stuck_inits);
        assert_eq!(e.sources, ["a-other", "b-lax"]);
    }

    #[test]
    fn one_policy_is_taken_as_written_not_mixed_with_defaults() {
        let mut spec = RuntimePolicySpec::default();
        spec.exec.min_probe_period_seconds = 3;
        spec.devices.required = vec!["/dev/zero".into(), "/dev/null".into(), "/dev/zero".into()];
        let e = merge_specs([&spec]);
        assert_eq!(e.exec.min_probe_period_seconds, 3);
        assert_eq!(e.devices.required, ["/dev/null", "/dev/zero"]);
    }

    #[test]
    fn selectors_match_labels_like_the_api_server() {
        let node = labels(&[("pool", "gpu"), ("zone", "a")]);
        let empty = LabelSelector::default();
        assert_eq!(selects(&empty, &node), Ok(true));

        let by_label = LabelSelector {
            match_labels: Some(labels(&[("pool", "gpu")])),
            ..LabelSelector::default()
        };
        assert_eq!(selects(&by_label, &node), Ok(true));
        assert_eq!(selects(&by_label, &labels(&[("pool", "cpu")])), Ok(false));

        let expr = |key: &str, op: &str, values: Option<Vec<&str>>| LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: key.into(),
                operator: op.into(),
                values: values.map(|v| v.into_iter().map(String::from).collect()),
            }]),
            ..LabelSelector::default()
        };
        assert_eq!(
            selects(&expr("zone", "In", Some(vec!["a", "b"])), &node),
            Ok(true)
        );
        assert_eq!(
            selects(&expr("zone", "NotIn", Some(vec!["a"])), &node),
            Ok(false)
        );
        assert_eq!(
            selects(&expr("spot", "DoesNotExist", None), &node),
            Ok(true)
        );
        assert_eq!(selects(&expr("spot", "Exists", None), &node), Ok(false));
        assert!(selects(&expr("zone", "In", Some(vec![])), &node).is_err());
        assert!(selects(&expr("zone", "Exists", Some(vec!["a"])), &node).is_err());
        assert!(selects(&expr("zone", "Matches", Some(vec!["a"])), &node).is_err());
    }

    #[test]
    fn policies_are_chosen_by_node_and_namespace_selectors() {
        let mut gpu = RuntimePolicySpec::default();
        gpu.node_selector.match_labels = Some(labels(&[("pool", "gpu")]));
        gpu.namespace_selector.match_labels = Some(labels(&[("team", "ml")]));
        let mut broken = RuntimePolicySpec::default();
        broken.node_selector.match_expressions = Some(vec![LabelSelectorRequirement {
            key: "pool".into(),
            operator: "Bogus".into(),
            values: None,
        }]);
        let all = [
            policy("everywhere", RuntimePolicySpec::default()),
            policy("gpu", gpu),
            policy("broken", broken),
        ];
        let gpu_node = labels(&[("pool", "gpu")]);
        let names = |it: Vec<&RuntimePolicy>| it.iter().map(|p| p.name_any()).collect::<Vec<_>>();
        assert_eq!(
            names(for_node(&all, &gpu_node).collect()),
            ["everywhere", "gpu"]
        );
        assert_eq!(
            names(for_node(&all, &BTreeMap::new()).collect()),
            ["everywhere"]
        );
        let ml = labels(&[("team", "ml")]);
        assert_eq!(
            names(for_namespace(&all, &ml).collect()),
            ["everywhere", "gpu", "broken"]
        );
    }

    fn arb_spec() -> impl Strategy<Value = RuntimePolicySpec> {
        let devices = prop::collection::vec(
            prop::sample::select(vec![
                "/dev/null",
                "/dev/zero",
                "/dev/fuse",
                "/dev/net/tun",
                "/dev/kvm",
            ]),
            0..4,
        );
        (
            any::<bool>(),
            0..3u8,
            devices,
            0..3u8,
            1..100i32,
            1..17i32,
            any::<bool>(),
        )
            .prop_map(|(enforce, rules, devices, notify, period, repairs, kill)| {
                RuntimePolicySpec {
                    mode: if enforce { Mode::Enforce } else { Mode::Audit },
                    devices: DevicePolicy {
                        explicit_rules: [
                            ExplicitRules::Never,
                            ExplicitRules::Auto,
                            ExplicitRules::Always,
                        ][usize::from(rules)],
                        required: devices.into_iter().map(String::from).collect(),
                    },
                    seccomp: SeccompPolicy {
                        notify: [NotifyAction::Allow, NotifyAction::Warn, NotifyAction::Deny]
                            [usize::from(notify)],
                    },
                    exec: ExecPolicy {
                        min_probe_period_seconds: period,
                    },
                    remediation: RemediationPolicy {
                        max_concurrent_repairs: repairs,
                        kill_stuck_inits: kill && enforce,
                    },
                    ..RuntimePolicySpec::default()
                }
            })
    }

    fn arb_policies() -> impl Strategy<Value = Vec<RuntimePolicy>> {
        prop::collection::vec(arb_spec(), 1..6).prop_map(|specs| {
            specs
                .into_iter()
                .enumerate()
                .map(|(i, s)| policy(&format!("p{i}"), s))
                .collect()
        })
    }

    proptest! {
        #[test]
        fn merge_is_order_independent(
            (policies, order) in arb_policies().prop_flat_map(|p| {
                let n = p.len();
                (Just(p), Just((0..n).collect::<Vec<_>>()).prop_shuffle())
            })
        ) {
            let shuffled: Vec<&RuntimePolicy> = order.iter().map(|&i| &policies[i]).collect();
            prop_assert_eq!(merge(&policies), merge(shuffled));
        }

        #[test]
        fn merge_is_associative_and_idempotent(a in arb_policies(), b in arb_policies()) {
            // Merging in two steps gives the same as merging all at once.
            let mut stepwise = merge(&a);
            stepwise.absorb(&merge(&b));
            let all: Vec<&RuntimePolicy> = a.iter().chain(&b).collect();
            prop_assert_eq!(&stepwise, &merge(all));
            // Seeing a policy twice changes nothing.
            let twice: Vec<&RuntimePolicy> = a.iter().chain(&a).collect();
            prop_assert_eq!(merge(twice), merge(&a));
        }

        #[test]
        fn merge_is_at_least_as_strict_as_every_input(policies in arb_policies()) {
            let e = merge(&policies);
            for p in &policies {
                prop_assert!(e.mode >= p.spec.mode);
                prop_assert!(e.devices.explicit_rules >= p.spec.devices.explicit_rules);
                prop_assert!(p.spec.devices.required.iter().all(|d| e.devices.required.contains(d)));
                prop_assert!(e.seccomp.notify >= p.spec.seccomp.notify);
                prop_assert!(e.exec.min_probe_period_seconds >= p.spec.exec.min_probe_period_seconds);
                prop_assert!(e.remediation.max_concurrent_repairs <= p.spec.remediation.max_concurrent_repairs);
                if p.spec.mode == Mode::Enforce {
                    prop_assert!(!e.remediation.kill_stuck_inits || p.spec.remediation.kill_stuck_inits);
                }
            }
            // And never stricter than some input: every value comes from one.
            prop_assert!(policies.iter().any(|p| p.spec.mode == e.mode));
            prop_assert!(policies.iter().any(|p| p.spec.exec.min_probe_period_seconds == e.exec.min_probe_period_seconds));
            prop_assert!(policies.iter().any(|p| p.spec.remediation.max_concurrent_repairs == e.remediation.max_concurrent_repairs));
        }
    }
}
