//! Finding container runtimes on a host and reading their versions.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use super::Unreadable;
pub use crate::ports::exec::ProbeError;
use crate::ports::HostProgramPort;

/// A container runtime component this project knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuntimeKind {
    /// The OCI reference runtime.
    Runc,
    /// The C OCI runtime.
    Crun,
    /// The containerd daemon.
    Containerd,
    /// containerd's CLI client.
    Ctr,
    /// containerd's runc v2 shim.
    ContainerdShimRuncV2,
}

impl RuntimeKind {
    /// Every kind, in report order.
    pub const ALL: [RuntimeKind; 5] = [
        RuntimeKind::Runc,
        RuntimeKind::Crun,
        RuntimeKind::Containerd,
        RuntimeKind::Ctr,
        RuntimeKind::ContainerdShimRuncV2,
    ];

    /// The flag that makes the binary print its version.
    pub fn version_flag(self) -> &'static str {
        match self {
            // The shim has no --version; `-v` prints a "Version:" block.
            RuntimeKind::ContainerdShimRuncV2 => "-v",
            _ => "--version",
        }
    }

    /// The executable's name.
    pub fn binary(self) -> &'static str {
        match self {
            RuntimeKind::Runc => "runc",
            RuntimeKind::Crun => "crun",
            RuntimeKind::Containerd => "containerd",
            RuntimeKind::Ctr => "ctr",
            RuntimeKind::ContainerdShimRuncV2 => "containerd-shim-runc-v2",
        }
    }
}

/// One runtime binary found on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuntimeInfo {
    /// Which runtime.
    pub kind: RuntimeKind,
    /// Host path of the binary.
    pub path: PathBuf,
    /// Release version (`1.1.5`), without distribution suffixes.
    pub version: Option<String>,
    /// The full version as the binary printed it (`1.1.5+ds1`).
    pub version_raw: Option<String>,
}

impl RuntimeInfo {
    /// The version as (major, minor, patch), when it parses.
    pub fn semver(&self) -> Option<(u32, u32, u32)> {
        parse_semver(self.version.as_deref()?)
    }
}

/// Directories searched, in order; the first hit of each binary wins, as a
/// shell's `PATH` lookup would.
const SEARCH_DIRS: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// Find every known runtime on the host and ask each for its version,
/// through `programs` (which knows whether to look in another mount
/// namespace). Returns what was found and what could not be read.
pub fn discover(
    programs: &dyn HostProgramPort,
    timeout: Duration,
) -> (Vec<RuntimeInfo>, Vec<Unreadable>) {
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for kind in RuntimeKind::ALL {
        let Some(host_path) = SEARCH_DIRS
            .iter()
            .map(|d| Path::new(d).join(kind.binary()))
            .find(|p| programs.exists(p))
        else {
            continue;
        };
        let (version, version_raw) = match programs.run(&host_path, &[kind.version_flag()], timeout)
        {
            Ok(out) => {
                let raw = parse_version_output(kind, &out);
                (raw.as_deref().map(clean_version), raw)
            }
            Err(e) => {
                errors.push(Unreadable {
                    what: format!("{} version", kind.binary()),
                    path: Some(programs.location(&host_path)),
                    error: e.to_string(),
                });
                (None, None)
            }
        };
        found.push(RuntimeInfo {
            kind,
            path: host_path,
            version,
            version_raw,
        });
    }
    (found, errors)
}

/// Pull the version word out of a runtime's `--version` output.
///
/// - runc: `runc version 1.1.5+ds1`
/// - crun: `crun version 1.8.1`
/// - containerd: `containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+b1`
/// - ctr: `ctr github.com/containerd/containerd 1.6.20~ds1`
/// - containerd-shim-runc-v2 `-v`: a block with `  Version:  1.6.20~ds1`
pub fn parse_version_output(kind: RuntimeKind, out: &str) -> Option<String> {
    if kind == RuntimeKind::ContainerdShimRuncV2 {
        let line = out
            .lines()
            .find_map(|l| l.trim().strip_prefix("Version:"))?;
        return line.split_whitespace().next().map(str::to_owned);
    }
    let first = out.lines().find(|l| !l.trim().is_empty())?;
    let words: Vec<&str> = first.split_whitespace().collect();
    let word = match kind {
        RuntimeKind::Runc | RuntimeKind::Crun => {
            let i = words.iter().position(|w| *w == "version")?;
            words.get(i + 1)?
        }
        RuntimeKind::Containerd | RuntimeKind::Ctr | RuntimeKind::ContainerdShimRuncV2 => {
            words.iter().skip(1).find(|w| {
                w.trim_start_matches('v')
                    .starts_with(|c: char| c.is_ascii_digit())
            })?
        }
    };
    Some(word.to_string())
}

/// `1.1.5+ds1` -> `1.1.5`; `1.6.20~ds1` -> `1.6.20`; `v1.7.0` -> `1.7.0`.
pub fn clean_version(raw: &str) -> String {
    let v = raw.trim_start_matches('v');
    let end = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    v[..end].trim_end_matches('.').to_string()
}

/// `1.1.5` -> (1, 1, 5); a missing patch is 0.
pub fn parse_semver(v: &str) -> Option<(u32, u32, u32)> {
    let mut it = v.split('.');
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    let patch = it.next().map(|p| p.parse()).transpose().ok()?.unwrap_or(0);
    Some((major, minor, patch))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_for_each_runtime() {
        let cases = [
            (
                RuntimeKind::Runc,
                "runc version 1.1.5+ds1\ncommit: 1.1.5+ds1-1+deb12u1\nspec: 1.0.2-dev\n",
                "1.1.5",
            ),
            (
                RuntimeKind::Crun,
                "crun version 1.8.1\ncommit: f8a096b\n",
                "1.8.1",
            ),
            (
                RuntimeKind::Containerd,
                "containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+b1\n",
                "1.6.20",
            ),
            (
                RuntimeKind::Ctr,
                "ctr github.com/containerd/containerd 1.6.20~ds1\n",
                "1.6.20",
            ),
            (
                RuntimeKind::Containerd,
                "containerd containerd.io v1.7.0 abc\n",
                "1.7.0",
            ),
            (
                RuntimeKind::ContainerdShimRuncV2,
                "containerd-shim-runc-v2:\n  Version:  1.6.20~ds1\n  Revision: x\n",
                "1.6.20",
            ),
        ];
        for (kind, out, want) in cases {
            let raw = parse_version_output(kind, out).expect(out);
            assert_eq!(clean_version(&raw), want, "{out}");
        }
        assert_eq!(parse_version_output(RuntimeKind::Runc, "garbage"), None);
        assert_eq!(parse_semver("1.1.5"), Some((1, 1, 5)));
        assert_eq!(parse_semver("1.8"), Some((1, 8, 0)));
        assert_eq!(parse_semver("x"), None);
    }
}

#[cfg(test)]
mod serde_tests {
    use super::RuntimeKind;

    #[test]
    fn kinds_serialize_as_their_binary_names() {
        for k in RuntimeKind::ALL {
            assert_eq!(serde_json::to_value(k).expect("json"), k.binary());
        }
    }
}
