//! The [`SystemdClient`] trait and the property plans sent through it.
//!
//! Repairs are pure up to here: they compute a list of [`UnitProperty`]
//! values, and one `SetUnitProperties` call carries them. systemd applies the
//! properties of one call in order and realizes the cgroup once afterwards,
//! so "reset `DeviceAllow`, then the new entries" in one call replaces the
//! device program in one step, with no moment where the unit has only the
//! reset (deny-all under `DevicePolicy=strict`).

use std::time::Duration;

use crate::devices::systemd::{DeviceAllowEntry, DevicePolicy, DialectError, UnitDevices};

/// Errors talking to systemd.
#[derive(Debug, thiserror::Error)]
pub enum SystemdError {
    /// systemd does not run on this host (`/run/systemd/system` is absent).
    #[error("systemd is not running on this host")]
    NotRunning,
    /// Neither the system bus socket nor systemd's private socket exists.
    #[error("no systemd socket: none of {0:?} exists")]
    NoSocket(Vec<std::path::PathBuf>),
    /// A socket exists but connecting or authenticating failed.
    #[error("connect to {path}: {message}")]
    Connect {
        /// The socket.
        path: std::path::PathBuf,
        /// What went wrong (for a fallback, both attempts).
        message: String,
    },
    /// No answer in time.
    #[error("{what}: no answer from systemd within {after:?}")]
    Timeout {
        /// The step that timed out.
        what: String,
        /// The timeout.
        after: Duration,
    },
    /// systemd (or the bus) answered with an error.
    #[error("{method}: {source}")]
    Call {
        /// The method called (`GetUnit`, `SetUnitProperties`, ...).
        method: &'static str,
        /// The D-Bus error.
        #[source]
        source: Box<zbus::Error>,
    },
    /// A reply that does not have the expected shape.
    #[error("{method}: unexpected reply: {message}")]
    Reply {
        /// The method called.
        method: &'static str,
        /// What was wrong with it.
        message: String,
    },
    /// A device setting that is not systemd syntax.
    #[error(transparent)]
    Dialect(#[from] DialectError),
}

impl SystemdError {
    /// Whether systemd said the unit does not exist (or is not loaded).
    pub fn is_no_such_unit(&self) -> bool {
        match self {
            SystemdError::Call { source, .. } => match source.as_ref() {
                zbus::Error::MethodError(name, _, _) => {
                    name.as_str() == "org.freedesktop.systemd1.NoSuchUnit"
                }
                _ => false,
            },
            _ => false,
        }
    }
}

/// A unit property runtime-core sets.
///
/// `BPFProgram=device:<pinned>` (systemd >= 249, what crun hands systemd at
/// unit creation) is deliberately absent: systemd 252 answers
/// `SetUnitProperties` for it on a running scope with "Cannot set property
/// BPFProgram, or unknown property" (checked on the real-systemd tier), so it
/// cannot repair an existing container; only the runtime can pass it, in
/// `StartTransientUnit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnitProperty {
    /// `DeviceAllow=`: an empty list resets it; a non-empty one is added to
    /// what the unit has (systemd merges entries for the same path).
    DeviceAllow(Vec<DeviceAllowEntry>),
    /// `DevicePolicy=`.
    DevicePolicy(DevicePolicy),
}

impl UnitProperty {
    /// The property name on the bus.
    pub fn name(&self) -> &'static str {
        match self {
            UnitProperty::DeviceAllow(_) => "DeviceAllow",
            UnitProperty::DevicePolicy(_) => "DevicePolicy",
        }
    }
}

/// The properties that replace a unit's device settings in one call:
/// the policy (when given), a reset of `DeviceAllow`, then `entries`.
pub fn replace_devices_plan(
    policy: Option<DevicePolicy>,
    entries: &[DeviceAllowEntry],
) -> Vec<UnitProperty> {
    let mut out = Vec::with_capacity(3);
    if let Some(p) = policy {
        out.push(UnitProperty::DevicePolicy(p));
    }
    out.push(UnitProperty::DeviceAllow(Vec::new()));
    if !entries.is_empty() {
        out.push(UnitProperty::DeviceAllow(entries.to_vec()));
    }
    out
}

/// What runtime-core asks of systemd.
pub trait SystemdClient {
    /// The manager's version string (`252.39-1~deb12u2`).
    fn version_string(&self) -> Result<String, SystemdError>;

    /// The major version number (`252`).
    fn version(&self) -> Result<u32, SystemdError> {
        let s = self.version_string()?;
        parse_systemd_version(&s).ok_or(SystemdError::Reply {
            method: "Version",
            message: format!("version `{s}` has no leading number"),
        })
    }

    /// A loaded unit's `DevicePolicy` and `DeviceAllow` as systemd holds
    /// them now.
    fn unit_devices(&self, unit: &str) -> Result<UnitDevices, SystemdError>;

    /// The unit's `ControlGroup` (`/system.slice/runc-c1.scope`): which
    /// cgroup it manages, to check a unit's identity before writing to it.
    fn unit_control_group(&self, unit: &str) -> Result<String, SystemdError> {
        Err(SystemdError::Reply {
            method: "Get",
            message: format!("{unit}: ControlGroup not available from this client"),
        })
    }

    /// `SetUnitProperties(unit, runtime, properties)`: one call, applied in
    /// order. `runtime = true` writes under `/run` (gone at reboot), which is
    /// what a transient scope has anyway.
    fn set_unit_properties(
        &self,
        unit: &str,
        runtime: bool,
        properties: &[UnitProperty],
    ) -> Result<(), SystemdError>;

    /// `daemon-reload` (the manager's `Reload`): returns once systemd has
    /// reloaded.
    fn reload(&self) -> Result<(), SystemdError>;

    /// Replace a unit's device settings in one call (see
    /// [`replace_devices_plan`]), at runtime.
    fn replace_devices(
        &self,
        unit: &str,
        policy: Option<DevicePolicy>,
        entries: &[DeviceAllowEntry],
    ) -> Result<(), SystemdError> {
        self.set_unit_properties(unit, true, &replace_devices_plan(policy, entries))
    }
}

/// The leading number of a systemd version string: `252` from
/// `252.39-1~deb12u2`, `239` from `239 (239-78.el8)`, `255` from `v255`.
pub fn parse_systemd_version(s: &str) -> Option<u32> {
    let s = s.trim();
    let s = s.strip_prefix('v').unwrap_or(s);
    let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(parse_systemd_version("252.39-1~deb12u2"), Some(252));
        assert_eq!(parse_systemd_version("239 (239-78.el8)"), Some(239));
        assert_eq!(parse_systemd_version("v255"), Some(255));
        assert_eq!(parse_systemd_version("x"), None);
    }

    #[test]
    fn replace_plan_resets_first_in_one_call() {
        let e = DeviceAllowEntry::parse("/dev/null rwm").unwrap();
        let plan = replace_devices_plan(Some(DevicePolicy::Strict), std::slice::from_ref(&e));
        assert_eq!(
            plan,
            vec![
                UnitProperty::DevicePolicy(DevicePolicy::Strict),
                UnitProperty::DeviceAllow(vec![]),
                UnitProperty::DeviceAllow(vec![e]),
            ]
        );
        assert_eq!(
            replace_devices_plan(None, &[]),
            vec![UnitProperty::DeviceAllow(vec![])]
        );
        assert_eq!(plan[1].name(), "DeviceAllow");
    }
}
