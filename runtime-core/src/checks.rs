//! The stable vocabulary every layer shares: which check found something
//! ([`CheckId`]) and how bad it is ([`Severity`]).
//!
//! It sits below every other module (the seccomp analysis, the systemd
//! version history and diagnosis all name checks), so that none of them has
//! to import diagnosis to say what it found. Ids are stable (DESIGN §2):
//! reports, metrics and policies key on their strings; never rename one.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! check_ids {
    ($( $(#[$doc:meta])* $variant:ident => $text:literal, )*) => {
        /// A check, by its stable id (serialised as the id string).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum CheckId {
            $( $(#[$doc])* $variant, )*
        }

        impl CheckId {
            /// Every check id, in declaration order.
            pub const ALL: &'static [CheckId] = &[ $( CheckId::$variant, )* ];

            /// The stable id string (`device-access-broken`).
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( CheckId::$variant => $text, )*
                }
            }
        }

        impl FromStr for CheckId {
            type Err = UnknownCheckId;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $( $text => Ok(CheckId::$variant), )*
                    other => Err(UnknownCheckId(other.to_string())),
                }
            }
        }
    };
}

check_ids! {
    /// Device rules replaced by deny-all then re-allow on update (seed 000).
    DeviceUpdateJitter => "device-update-jitter",
    /// Joining a cgroup fails with EINVAL while a thread is `TASK_NEW`
    /// (seed 001).
    CgroupAttachRace => "cgroup-attach-race",
    /// A shim leaks eventfds (seed 002).
    ShimFdLeak => "shim-fd-leak",
    /// systemd `DeviceAllow=` would deny what the OCI config allows on the
    /// next re-apply (seed 003, latent).
    DeviceRulesLatent => "device-rules-latent",
    /// A container cannot open a required device now (seed 003, fired).
    DeviceAccessBroken => "device-access-broken",
    /// Tasks in uninterruptible sleep would make a freeze fail.
    FreezeBlocked => "freeze-blocked",
    /// A container init or exec is blocked in a seccomp user notification.
    SeccompNotifyStuck => "seccomp-notify-stuck",
    /// A seccomp profile notifies a syscall the runtime needs (seed 004).
    SeccompNotifyUnsafe => "seccomp-notify-unsafe",
    /// `defaultAction` is `SCMP_ACT_NOTIFY`.
    SeccompNotifyDefaultAction => "seccomp-notify-default-action",
    /// Notify with no `listenerPath`.
    SeccompNotifyNoListener => "seccomp-notify-no-listener",
    /// Notify on `execve`/`execveat`: every start waits for a live agent.
    SeccompNotifyNeedsAgent => "seccomp-notify-needs-agent",
    /// `listenerPath` without any notify rule.
    SeccompListenerWithoutNotify => "seccomp-listener-without-notify",
    /// A target runtime refuses or drops part of the profile.
    SeccompRuntimeIncompatible => "seccomp-runtime-incompatible",
    /// A value every runtime refuses.
    SeccompInvalidValue => "seccomp-invalid-value",
    /// A syscall name no listed architecture knows.
    SeccompUnknownSyscall => "seccomp-unknown-syscall",
    /// Contradicting rules for one syscall.
    SeccompConflictingRule => "seccomp-conflicting-rule",
    /// A rule repeated.
    SeccompDuplicateRule => "seccomp-duplicate-rule",
}

impl CheckId {
    /// The ids `warden lint-profile` reports (the seccomp profile family).
    pub fn is_profile_check(self) -> bool {
        self.as_str().starts_with("seccomp-") && self != CheckId::SeccompNotifyStuck
    }

    /// The profile checks that concern a running container (the notify
    /// family); the rest (unknown names, duplicates) is for `lint-profile`
    /// before deployment.
    pub fn is_notify_profile_check(self) -> bool {
        self.is_profile_check() && self.as_str().starts_with("seccomp-notify")
    }
}

impl fmt::Display for CheckId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for CheckId {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for CheckId {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Serialize for CheckId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for CheckId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A string that is not a known check id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown check id {0:?}")]
pub struct UnknownCheckId(pub String);

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; nothing will break because of it.
    Info,
    /// A latent hazard: something will break when a trigger happens.
    Warning,
    /// Broken now, or certain to break.
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// A string that is not a severity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown severity {0:?} (info, warning, error)")]
pub struct UnknownSeverity(pub String);

impl FromStr for Severity {
    type Err = UnknownSeverity;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "info" => Ok(Severity::Info),
            "warning" | "warn" => Ok(Severity::Warning),
            "error" => Ok(Severity::Error),
            other => Err(UnknownSeverity(other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_as_their_stable_strings() {
        for id in CheckId::ALL {
            let json = serde_json::to_string(id).expect("serialise");
            assert_eq!(json, format!("\"{}\"", id.as_str()));
            assert_eq!(serde_json::from_str::<CheckId>(&json).expect("parse"), *id);
            assert_eq!(id.as_str().parse::<CheckId>(), Ok(*id));
        }
        assert!("device-access".parse::<CheckId>().is_err());
        assert_eq!(CheckId::DeviceAccessBroken, "device-access-broken");
    }

    #[test]
    fn the_profile_family_is_the_seccomp_ids_but_the_stuck_check() {
        let profile: Vec<&str> = CheckId::ALL
            .iter()
            .filter(|c| c.is_profile_check())
            .map(|c| c.as_str())
            .collect();
        assert_eq!(profile.len(), 10, "{profile:?}");
        assert!(!CheckId::SeccompNotifyStuck.is_profile_check());
        assert!(CheckId::SeccompNotifyNoListener.is_notify_profile_check());
        assert!(!CheckId::SeccompUnknownSyscall.is_notify_profile_check());
    }

    #[test]
    fn severity_orders_and_parses() {
        assert!(Severity::Error > Severity::Warning && Severity::Warning > Severity::Info);
        assert_eq!("WARN".parse::<Severity>(), Ok(Severity::Warning));
        assert!("fatal".parse::<Severity>().is_err());
    }
}
