//! `--policy FILE`: a RuntimePolicy YAML, as applied to a cluster, mapped
//! onto the node-side [`CheckPolicy`].

use std::path::Path;

use anyhow::{bail, Context};
use runtime_core::diagnose::{CheckPolicy, ExplicitRules};
use warden_api::policy::{Mode, RuntimePolicy};

/// The policy `warden check` runs under. Without `--policy` it is the
/// built-in defaults with repairs allowed: `--fix` is itself the operator's
/// explicit request (a policy file saying `mode: Audit` still wins).
#[derive(Debug, Clone, Default)]
pub struct LoadedPolicy {
    /// What the checks and repairs use.
    pub check: CheckPolicy,
    /// `mode: Audit`: report only, never repair.
    pub audit: bool,
}

/// The type fields every Kubernetes object starts with.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct TypeHead {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
}

/// Read a RuntimePolicy from `path`.
pub fn load(path: &Path) -> anyhow::Result<LoadedPolicy> {
    Ok(from_spec(&load_policy(path)?.spec))
}

/// Read and type-check a RuntimePolicy YAML file (`warden agent
/// --standalone --policy` keeps the whole spec: it also needs the
/// remediation limits).
pub fn load_policy(path: &Path) -> anyhow::Result<RuntimePolicy> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("read policy {}", path.display()))?;
    let head: TypeHead = serde_saphyr::from_str(&text)
        .with_context(|| format!("parse policy {}", path.display()))?;
    let want = format!("{}/{}", warden_api::GROUP, warden_api::VERSION);
    if head.api_version != want || head.kind != "RuntimePolicy" {
        bail!(
            "{}: expected apiVersion {want}, kind RuntimePolicy; found {} {}",
            path.display(),
            head.api_version,
            head.kind
        );
    }
    serde_saphyr::from_str(&text)
        .with_context(|| format!("parse policy {} as a RuntimePolicy", path.display()))
}

/// Map a policy spec onto the checks' settings.
pub fn from_spec(spec: &warden_api::policy::RuntimePolicySpec) -> LoadedPolicy {
    LoadedPolicy {
        check: CheckPolicy {
            required_devices: spec.devices.required.iter().map(Into::into).collect(),
            kill_stuck_inits: spec.remediation.kill_stuck_inits,
            explicit_rules: match spec.devices.explicit_rules {
                warden_api::policy::ExplicitRules::Auto => ExplicitRules::Auto,
                warden_api::policy::ExplicitRules::Always => ExplicitRules::Always,
                warden_api::policy::ExplicitRules::Never => ExplicitRules::Never,
            },
            ..CheckPolicy::default()
        },
        audit: spec.mode == Mode::Audit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_crd_defaults_and_files_parse() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("p.yaml");
        std::fs::write(
            &p,
            "apiVersion: runtimewarden.io/v1alpha1\nkind: RuntimePolicy\nmetadata:\n  name: x\nspec:\n  mode: Enforce\n  \
             devices:\n    required: [/dev/null]\n  remediation:\n    killStuckInits: true\n",
        )
        .expect("write");
        let l = load(&p).expect("load");
        assert!(!l.audit);
        assert!(l.check.kill_stuck_inits);
        assert_eq!(
            l.check.required_devices,
            vec![std::path::PathBuf::from("/dev/null")]
        );

        let empty = from_spec(&Default::default());
        assert_eq!(
            empty.check,
            CheckPolicy::default(),
            "CRD defaults == built-in defaults"
        );

        std::fs::write(
            &p,
            "kind: Pod\napiVersion: v1\nmetadata: {name: x}\nspec: {}\n",
        )
        .expect("write");
        assert!(load(&p).is_err(), "a Pod is not a policy");
        std::fs::write(&p, "spec: [unclosed").expect("write");
        let e = load(&p).expect_err("malformed YAML");
        assert!(format!("{e:#}").contains("p.yaml"), "{e:#}");
    }
}
