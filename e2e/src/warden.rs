//! Running the `warden` binary built from this workspace.

use std::path::PathBuf;
use std::process::{Command, Output};

use anyhow::{bail, Context, Result};

/// Path of the `warden` binary: `$WARDEN_BIN`, or `target/<profile>/warden`
/// next to this test executable (`target/<profile>/deps/<test>`). The README
/// test command builds it before the tests run.
pub fn bin() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("WARDEN_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().context("current_exe")?;
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .context("test executable has no target/<profile> parent")?;
    let p = profile_dir.join("warden");
    if !p.is_file() {
        bail!(
            "{} not found: build it first (`cargo build -p warden`) or set WARDEN_BIN",
            p.display()
        );
    }
    Ok(p)
}

/// Run `warden ARGS` and return its output.
pub fn run(args: &[&str]) -> Result<Output> {
    let bin = bin()?;
    Command::new(&bin)
        .args(args)
        .output()
        .with_context(|| format!("run {}", bin.display()))
}

/// `warden check --output json`, parsed. Exit statuses 0 and 1 are both
/// successful scans; 2 is an error.
pub fn check_json(extra: &[&str]) -> Result<serde_json::Value> {
    let mut args = vec!["check", "--output", "json"];
    args.extend_from_slice(extra);
    let out = run(&args)?;
    match out.status.code() {
        Some(0) | Some(1) => {}
        other => bail!(
            "warden check exited {other:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
    serde_json::from_slice(&out.stdout).context("parse warden check JSON")
}
