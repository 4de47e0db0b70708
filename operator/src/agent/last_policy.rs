//! The last policy the agent followed, kept under the host's state
//! directory (`/run/warden/policy.json`, a hostPath the DaemonSet mounts):
//! an agent restarted while the API server does not answer keeps enforcing
//! what it enforced, instead of falling back to the built-in Audit until
//! the API server is back.

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

/// Keep `policies` (the ones that select this node) at `path`, atomically.
pub fn save(path: &Path, policies: &[RuntimePolicy]) -> Result<(), LastPolicyError> {
    let bytes = serde_json::to_vec(policies).map_err(LastPolicyError::Encode)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_path("create dir", dir)?;
    }
    let tmp: PathBuf = path.with_extension(format!("{}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes).with_path("write", &tmp)?;
    std::fs::rename(&tmp, path).with_path("rename into", path)?;
    Ok(())
}

/// The policies kept at `path`, if any could be read (a missing or
/// unreadable file is none: the built-in defaults apply, as before).
pub fn load(path: &Path) -> Option<Vec<RuntimePolicy>> {
    let bytes = std::fs::read(path).ok()?;
    match serde_json::from_slice(&bytes) {
        Ok(p) => Some(p),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "the last policy is unreadable; built-in defaults until the API server answers");
            None
        }
    }
}
