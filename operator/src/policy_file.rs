//! A RuntimePolicy YAML file, as applied to a cluster, read from disk and
//! mapped onto the node-side [`CheckPolicy`].
//!
//! Its own module because two commands read such files (`warden check
//! --policy` and `warden agent --standalone --policy`) and neither should
//! depend on the other to do it.

use std::io;
use std::path::{Path, PathBuf};

use runtime_core::diagnose::{CheckPolicy, ExplicitRules};
use warden_api::policy::{Mode, RuntimePolicy, RuntimePolicySpec};

/// Why a policy file could not be used. Every variant names the file: a
/// command may be given several paths, and "no such file" alone does not
/// say which.
#[derive(Debug, thiserror::Error)]
pub enum PolicyFileError {
    /// The file could not be read.
    #[error("read policy {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The file is not YAML, or its type fields are not strings.
    #[error("parse policy {} as YAML", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The YAML parser's error (it carries the line and column); boxed
        /// because it is large and errors travel by value.
        #[source]
        source: Box<serde_saphyr::DeserializeError>,
    },
    /// The file holds some other kind of object.
    #[error(
        "{}: expected apiVersion {}, kind RuntimePolicy; found apiVersion {found_api_version:?}, kind {found_kind:?}",
        path.display(),
        api_version()
    )]
    WrongKind {
        /// The file.
        path: PathBuf,
        /// Its `apiVersion` (empty when missing).
        found_api_version: String,
        /// Its `kind` (empty when missing).
        found_kind: String,
    },
    /// The file is a RuntimePolicy whose fields do not type-check.
    #[error("parse policy {} as a RuntimePolicy", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The deserializer's error (it names the field); boxed as above.
        #[source]
        source: Box<serde_saphyr::DeserializeError>,
    },
}

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

/// The `apiVersion` a RuntimePolicy file must carry.
fn api_version() -> String {
    format!("{}/{}", warden_api::GROUP, warden_api::VERSION)
}

/// Read a RuntimePolicy from `path` and map it onto the checks' settings.
pub fn load(path: &Path) -> Result<LoadedPolicy, PolicyFileError> {
    Ok(from_spec(&load_policy(path)?.spec))
}

/// Read and type-check a RuntimePolicy YAML file, keeping the whole object
/// (`warden agent --standalone --policy` also needs the remediation limits,
/// which [`LoadedPolicy`] leaves out).
pub fn load_policy(path: &Path) -> Result<RuntimePolicy, PolicyFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| PolicyFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    // The type fields first: "expected a RuntimePolicy, found a Pod" is a
    // better message than the first Pod field a RuntimePolicy lacks.
    let head: TypeHead =
        serde_saphyr::from_str(&text).map_err(|source| PolicyFileError::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })?;
    if head.api_version != api_version() || head.kind != "RuntimePolicy" {
        return Err(PolicyFileError::WrongKind {
            path: path.to_owned(),
            found_api_version: head.api_version,
            found_kind: head.kind,
        });
    }
    serde_saphyr::from_str(&text).map_err(|source| PolicyFileError::Invalid {
        path: path.to_owned(),
        source: Box::new(source),
    })
}

/// Map a policy spec onto the checks' settings.
pub fn from_spec(spec: &RuntimePolicySpec) -> LoadedPolicy {
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
    }

    #[test]
    fn each_failure_names_the_file_and_keeps_its_cause() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("p.yaml");

        let e = load(&p).expect_err("missing file");
        assert!(matches!(&e, PolicyFileError::Read { path, source }
            if path == &p && source.kind() == io::ErrorKind::NotFound));
        assert!(e.to_string().contains("p.yaml"), "{e}");

        std::fs::write(
            &p,
            "kind: Pod\napiVersion: v1\nmetadata: {name: x}\nspec: {}\n",
        )
        .expect("write");
        let e = load(&p).expect_err("a Pod is not a policy");
        assert!(
            matches!(&e, PolicyFileError::WrongKind { found_api_version, found_kind, .. }
                if found_api_version == "v1" && found_kind == "Pod"),
            "{e}"
        );

        std::fs::write(&p, "spec: [unclosed").expect("write");
        let e = load(&p).expect_err("malformed YAML");
        assert!(matches!(e, PolicyFileError::Parse { .. }), "{e}");
        assert!(e.to_string().contains("p.yaml"), "{e}");

        std::fs::write(
            &p,
            "apiVersion: runtimewarden.io/v1alpha1\nkind: RuntimePolicy\nmetadata: {name: x}\nspec: {mode: Sometimes}\n",
        )
        .expect("write");
        let e = load(&p).expect_err("no such mode");
        assert!(matches!(e, PolicyFileError::Invalid { .. }), "{e}");
    }
}
