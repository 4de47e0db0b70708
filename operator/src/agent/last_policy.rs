//! The last policy the agent followed, kept under the host's state
//! directory (`/run/warden/policy.json`, a hostPath the DaemonSet mounts):
//! an agent restarted while the API server does not answer keeps enforcing
//! what it enforced, instead of falling back to the built-in Audit until
//! the API server is back.
//!
//! The file lives on the host, where other privileged pods may write: it is
//! written 0600, read only when root owns it and it names this node, and
//! `killStuckInits` is never taken from it (a kill needs the API server's
//! word).

use std::path::{Path, PathBuf};

use runtime_core::error::{IoContext, WrappedIoError};
use warden_api::RuntimePolicy;

/// The file under the state directory.
pub const FILE: &str = "policy.json";

/// Why the last policy could not be kept.
#[derive(Debug, thiserror::Error)]
pub enum LastPolicyError {
    /// Writing it failed.
    #[error(transparent)]
    Io(#[from] WrappedIoError),
    /// Encoding it failed.
    #[error("encode the policies")]
    Encode(#[source] serde_json::Error),
}

/// What the file holds.
#[derive(serde::Serialize, serde::Deserialize)]
struct Kept {
    /// The node the policies were merged for.
    node: String,
    /// The policies that selected it.
    policies: Vec<RuntimePolicy>,
}

/// Keep `policies` (the ones that select `node`) at `path`, atomically,
/// through a temporary file created exclusively with mode 0600.
pub fn save(path: &Path, node: &str, policies: &[RuntimePolicy]) -> Result<(), LastPolicyError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let bytes = serde_json::to_vec(&Kept {
        node: node.to_string(),
        policies: policies.to_vec(),
    })
    .map_err(LastPolicyError::Encode)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_path("create dir", dir)?;
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let tmp: PathBuf = path.with_extension(format!("{}.{nanos:x}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .with_path("create", &tmp)?;
        f.write_all(&bytes).with_path("write", &tmp)?;
        std::fs::rename(&tmp, path).with_path("rename into", path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    Ok(result?)
}

/// The policies kept at `path` for `node`, if they can be trusted: the
/// file is owned by root and not writable by others, names this node and
/// parses. `killStuckInits` is cleared. Anything else is none: the built-in
/// defaults apply, as without the file.
pub fn load(path: &Path, node: &str) -> Option<Vec<RuntimePolicy>> {
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::symlink_metadata(path).ok()?;
    if !md.file_type().is_file() || md.uid() != 0 || md.mode() & 0o022 != 0 {
        tracing::warn!(path = %path.display(), "the last policy is not a root-owned private file: ignored");
        return None;
    }
    let bytes = std::fs::read(path).ok()?;
    match serde_json::from_slice::<Kept>(&bytes) {
        Ok(k) if k.node == node => Some(
            k.policies
                .into_iter()
                .map(|mut p| {
                    p.spec.remediation.kill_stuck_inits = false;
                    p
                })
                .collect(),
        ),
        Ok(k) => {
            tracing::warn!(path = %path.display(), kept_for = %k.node, "the last policy was kept for another node: ignored");
            None
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "the last policy is unreadable; built-in defaults until the API server answers");
            None
        }
    }
}
