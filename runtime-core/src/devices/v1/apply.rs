//! Applying a transition to a real v1 device cgroup directory: read
//! `devices.list`, plan, write `devices.allow` / `devices.deny`, read back and
//! check the kernel ended where the emulator says it must.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::devices::v1::emulator::{DefaultPolicy, Emulator, EmulatorError};
use crate::devices::v1::lines::{self, LineError, ALLOW_FILE, DENY_FILE, LIST_FILE};
use crate::devices::v1::transition::{transition, Transition};
use crate::devices::DeviceRule;
use crate::error::{IoContext, WrappedIoError};

/// Why applying device rules failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Reading `devices.list` (or opening a file) failed.
    #[error(transparent)]
    Io(#[from] WrappedIoError),
    /// `devices.list` held a line that is not in the v1 form.
    #[error("cannot parse {path}: {source}")]
    List {
        /// The `devices.list` path.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: LineError,
    },
    /// One write was refused. The writes before it were made; each prefix of
    /// a non-narrowing transition keeps the law, so the cgroup is safe but
    /// between the two states.
    #[error("write {index} (`{line}`) failed: {source}")]
    Write {
        /// Position of the failing write in the transition.
        index: usize,
        /// The write, spelled `allow c 1:3 rwm`.
        line: String,
        /// The kernel's answer.
        #[source]
        source: WrappedIoError,
    },
    /// The transition narrows and the caller did not take responsibility for
    /// it (by freezing the cgroup); nothing was written.
    #[error("refusing a narrowing device transition without a freeze: {reason}")]
    Narrowing {
        /// Why it narrows.
        reason: String,
    },
    /// After the writes the kernel's list differs from the emulator's
    /// prediction (another writer raced us, or the parent restricts us).
    #[error(
        "{path} after the update does not match the plan: expected {expected:?}, found {found:?}"
    )]
    Mismatch {
        /// The `devices.list` path.
        path: PathBuf,
        /// What the emulator predicted.
        expected: String,
        /// What the kernel printed.
        found: String,
    },
    /// The plan contained a write the kernel would refuse (a bug).
    #[error(transparent)]
    Emulator(#[from] EmulatorError),
}

/// One v1 device cgroup directory (`/sys/fs/cgroup/devices/...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V1DeviceCgroup {
    dir: PathBuf,
}

/// A transition planned against the state read from the cgroup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// The state read from `devices.list`.
    pub before: Emulator,
    /// The writes to get to the target.
    pub transition: Transition,
}

/// What an applied transition did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Applied {
    /// The state read before writing.
    pub before: Emulator,
    /// The writes made.
    pub transition: Transition,
    /// The state read back afterwards (equal to the emulator's prediction).
    pub after: Emulator,
}

impl V1DeviceCgroup {
    /// The cgroup at `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The raw text of `devices.list`.
    pub fn read_list(&self) -> Result<String, ApplyError> {
        let path = self.dir.join(LIST_FILE);
        Ok(fs::read_to_string(&path).with_path("read", &path)?)
    }

    /// The current state, as `devices.list` shows it.
    pub fn read(&self) -> Result<Emulator, ApplyError> {
        let text = self.read_list()?;
        Emulator::from_devices_list(&text).map_err(|source| ApplyError::List {
            path: self.dir.join(LIST_FILE),
            source,
        })
    }

    fn open(&self, name: &str) -> Result<File, WrappedIoError> {
        let path = self.dir.join(name);
        OpenOptions::new()
            .write(true)
            .open(&path)
            .with_path("open", &path)
    }

    /// Make one write (one `write(2)` of one line).
    pub fn write(&self, rule: &DeviceRule) -> Result<(), WrappedIoError> {
        let name = lines::file_for(rule);
        let mut file = self.open(name)?;
        file.write_all(lines::format_rule(rule).as_bytes())
            .with_path("write", &self.dir.join(name))
    }

    /// Make the writes of `writes` in order, each file opened once.
    pub fn write_all(&self, writes: &[DeviceRule]) -> Result<(), ApplyError> {
        let mut allow: Option<File> = None;
        let mut deny: Option<File> = None;
        for (index, rule) in writes.iter().enumerate() {
            let name = if rule.allow { ALLOW_FILE } else { DENY_FILE };
            let slot = if rule.allow { &mut allow } else { &mut deny };
            let failed = |source| ApplyError::Write {
                index,
                line: lines::format_write(rule),
                source,
            };
            let file = match slot {
                Some(f) => f,
                None => slot.insert(self.open(name).map_err(failed)?),
            };
            file.write_all(lines::format_rule(rule).as_bytes())
                .with_path("write", &self.dir.join(name))
                .map_err(failed)?;
        }
        Ok(())
    }

    /// Read the current state and plan the way to `target`.
    pub fn plan(&self, target: &Emulator) -> Result<Plan, ApplyError> {
        let before = self.read()?;
        let transition = transition(&before, target);
        Ok(Plan { before, transition })
    }

    /// Make the plan's writes — narrowing or not: the caller decides — then
    /// read back and check the kernel's list against the emulator.
    pub fn execute(&self, plan: Plan, target: &Emulator) -> Result<Applied, ApplyError> {
        let Plan { before, transition } = plan;
        let expected = transition
            .states(&before)?
            .pop()
            .unwrap_or_else(|| before.clone());
        self.write_all(transition.writes())?;
        let found = self.read_list()?;
        let after = Emulator::from_devices_list(&found).map_err(|source| ApplyError::List {
            path: self.dir.join(LIST_FILE),
            source,
        })?;
        // Allow mode prints only `a *:* rwm`, so there only the mode can be
        // compared; a deny list is compared line for line, in order, and
        // then by meaning with the target.
        let matches = found == expected.devices_list()
            && (after.default_policy() == DefaultPolicy::Allow || after.same_permissions(target));
        if !matches {
            return Err(ApplyError::Mismatch {
                path: self.dir.join(LIST_FILE),
                expected: expected.devices_list(),
                found,
            });
        }
        Ok(Applied {
            before,
            transition,
            after,
        })
    }
}

/// Take the cgroup at `dir` to `target` if that can be done without ever
/// narrowing; a narrowing transition is refused with nothing written (use
/// `update_devices`, which freezes, for those).
pub fn apply_target(dir: &Path, target: &Emulator) -> Result<Applied, ApplyError> {
    let cg = V1DeviceCgroup::new(dir);
    let plan = cg.plan(target)?;
    if let Some(reason) = plan.transition.reason() {
        return Err(ApplyError::Narrowing {
            reason: reason.to_string(),
        });
    }
    cg.execute(plan, target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::v1::lines::parse_write;

    /// A fake cgroup directory: the files exist, but nothing interprets the
    /// writes, so only reading and the write sequence are checked here; the
    /// kernel's side is in tests/devices_v1_real.rs.
    #[test]
    fn writes_go_to_the_right_files_in_order_and_mismatch_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(LIST_FILE), "c 1:3 rwm\n").unwrap();
        fs::write(dir.path().join(ALLOW_FILE), "").unwrap();
        fs::write(dir.path().join(DENY_FILE), "").unwrap();
        let cg = V1DeviceCgroup::new(dir.path());
        assert_eq!(cg.read().unwrap().devices_list(), "c 1:3 rwm\n");
        let target = Emulator::from_rules(&[parse_write("allow c 1:5 rwm").unwrap()]).unwrap();
        let plan = cg.plan(&target).unwrap();
        assert_eq!(plan.transition.writes().len(), 2);
        // The fake list does not change, so the read-back check must fail.
        let err = cg.execute(plan, &target).unwrap_err();
        assert!(matches!(err, ApplyError::Mismatch { .. }), "{err}");
        // A regular file keeps the last write (opened once, appended).
        assert_eq!(
            fs::read_to_string(dir.path().join(ALLOW_FILE)).unwrap(),
            "c 1:5 rwm"
        );
        assert_eq!(
            fs::read_to_string(dir.path().join(DENY_FILE)).unwrap(),
            "c 1:3 rwm"
        );
    }

    #[test]
    fn narrowing_is_refused_before_any_write() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(LIST_FILE), "a *:* rwm\n").unwrap();
        let target = Emulator::from_rules(&[parse_write("allow c 1:5 rwm").unwrap()]).unwrap();
        // No allow/deny files exist: any write attempt would be an I/O error.
        let err = apply_target(dir.path(), &target).unwrap_err();
        assert!(matches!(err, ApplyError::Narrowing { .. }), "{err}");
    }

    #[test]
    fn errors_carry_paths() {
        let err = V1DeviceCgroup::new("/nonexistent/warden")
            .read()
            .unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/warden/devices.list"),
            "{err}"
        );
    }
}
