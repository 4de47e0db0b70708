//! What checks keep between scans (under the scan state directory): small
//! JSON maps, written atomically so a crash never leaves a torn file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::Ctx;

/// The host path of state file `name`, when the scan keeps state.
pub(super) fn path(ctx: &Ctx<'_>, name: &str) -> Option<PathBuf> {
    let dir = ctx.opts.state_dir.as_ref()?;
    Some(ctx.opts.root().join(dir).join(name))
}

/// Load a map; a missing or unreadable file is an empty map (the first scan,
/// or a state dir wiped by a reboot).
pub(super) fn load<T: DeserializeOwned>(path: &Path) -> BTreeMap<String, T> {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Save a map: write a temporary file, then rename it over the old one.
pub(super) fn save<T: Serialize>(path: &Path, state: &BTreeMap<String, T>) {
    let result = (|| -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(state)?)?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        tracing::warn!(path = %path.display(), error = %e, "cannot keep check state between scans; growth and wait checks need it");
    }
}
