//! `--policy FILE`: a RuntimePolicy YAML, as applied to a cluster, mapped
//! onto the node-side [`CheckPolicy`].

use std::path::Path;

use anyhow::{bail, Context};
use runtime_core::diagnose::CheckPolicy;
use warden_api::policy::{Mode, RuntimePolicy};

/// The policy `warden check` runs under.
#[derive(Debug, Clone)]
pub struct LoadedPolicy {
    /// What the checks and repairs use.
    pub check: CheckPolicy,
    /// `mode: Audit`: report only, never repair.
    pub audit: bool,
}

impl Default for LoadedPolicy {
    fn default() -> Self {
        Self {
            check: CheckPolicy::default(),
            audit: false,
        }
    }
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
    let policy: RuntimePolicy = serde_saphyr::from_str(&text)
        .with_context(|| format!("parse policy {} as a RuntimePolicy", path.display()))?;
    Ok(from_spec(&policy.spec))
}

/// Map a policy spec onto the checks' settings.
pub fn from_spec(spec: &warden_api::policy::RuntimePolicySpec) -> LoadedPolicy {
    LoadedPolicy {
        check: CheckPolicy {
            required_devices: spec.devices.required.iter().map(Into::into).collect(),
            kill_stuck_inits: spec.remediation.kill_stuck_inits,
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
