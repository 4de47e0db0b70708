//! Prerequisite checks for tests that need root, a kernel feature or a tool.
//!
//! A test that cannot run here skips *with a printed reason*. Where skipping
//! would hide a gap (CI, or the README test command, which sets
//! `WARDEN_NO_SKIP=1`), the same call fails the test instead.

use std::path::Path;

/// Whether skipping is forbidden in this run (`CI=true` or `WARDEN_NO_SKIP=1`).
pub fn skipping_forbidden() -> bool {
    std::env::var("WARDEN_NO_SKIP").is_ok_and(|v| v == "1")
        || std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Skip (return `false` after printing why) or, where skipping is forbidden,
/// panic with the reason. Use as `if !testing::require(cond, "why") { return; }`.
pub fn require(ok: bool, reason: &str) -> bool {
    if ok {
        return true;
    }
    if skipping_forbidden() {
        panic!("prerequisite missing and skipping is forbidden here: {reason}");
    }
    eprintln!("SKIPPED: {reason}");
    false
}

/// Whether this process runs with effective uid 0.
pub fn is_root() -> bool {
    crate::host::running_as_root()
}

/// Require root.
pub fn require_root(test: &str) -> bool {
    require(is_root(), &format!("{test}: needs root"))
}

/// Require an executable on `PATH` (or an absolute path).
pub fn require_tool(test: &str, tool: &str) -> bool {
    require(
        which(tool).is_some(),
        &format!("{test}: needs `{tool}` installed"),
    )
}

/// Require a path to exist (a cgroup hierarchy, a device node...).
pub fn require_path(test: &str, path: &Path) -> bool {
    require(path.exists(), &format!("{test}: needs {}", path.display()))
}

/// Look a tool up on `PATH`.
pub fn which(tool: &str) -> Option<std::path::PathBuf> {
    if tool.contains('/') {
        let p = Path::new(tool);
        return p.exists().then(|| p.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].iter().map(Into::into))
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}
