//! The OCI dialect: `linux.resources.devices` entries
//! ([`oci_spec::runtime::LinuxDeviceCgroup`]) to and from [`DeviceRule`].
//!
//! The runtime spec's defaults apply: no `type` means `a` (every device), no
//! `major` / `minor` means the wildcard, no `access` means `rwm`. An empty
//! `access` string is read the same way as none: the kernel cannot take an
//! empty access set, and runtimes that pass the string through would write a
//! line the kernel refuses. `-1` for a number is accepted as the wildcard,
//! as runc spells it internally.

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use crate::devices::v1::{Emulator, EmulatorError};
use crate::devices::{Access, DeviceRule, DeviceType};

/// An OCI device rule that has no meaning for the device controller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OciRuleError {
    /// `u` or `p` (or anything but `a`, `c`, `b`): the device cgroup has
    /// only those three.
    #[error("device rule type `{0}` is not one of a, c, b")]
    Type(String),
    /// A major or minor number outside `0..=u32::MAX` (other than `-1`).
    #[error("device rule {field} {value} is not a device number")]
    Number {
        /// `major` or `minor`.
        field: &'static str,
        /// The value given.
        value: i64,
    },
    /// Access with a letter other than `r`, `w`, `m`.
    #[error("device rule access `{0}` is not made of r, w, m")]
    Access(String),
    /// A rule the kernel would refuse to take.
    #[error(transparent)]
    Kernel(#[from] EmulatorError),
}

fn number(field: &'static str, value: Option<i64>) -> Result<Option<u32>, OciRuleError> {
    match value {
        None | Some(-1) => Ok(None),
        Some(v) => u32::try_from(v)
            .map(Some)
            .map_err(|_| OciRuleError::Number { field, value: v }),
    }
}

/// Parse `rwm` letters leniently (any order, repeats allowed, as runtimes
/// accept them).
fn access(s: Option<&str>) -> Result<Access, OciRuleError> {
    let s = match s {
        None | Some("") => return Ok(Access::ALL),
        Some(s) => s,
    };
    s.chars().try_fold(Access::NONE, |acc, c| {
        let bit = match c {
            'r' => Access::READ,
            'w' => Access::WRITE,
            'm' => Access::MKNOD,
            _ => return Err(OciRuleError::Access(s.to_string())),
        };
        Ok(acc.union(bit))
    })
}

/// The rule an OCI entry describes.
pub fn from_oci(rule: &LinuxDeviceCgroup) -> Result<DeviceRule, OciRuleError> {
    let kind = match rule.typ() {
        None | Some(LinuxDeviceType::A) => DeviceType::All,
        Some(LinuxDeviceType::C) => DeviceType::Char,
        Some(LinuxDeviceType::B) => DeviceType::Block,
        Some(other) => return Err(OciRuleError::Type(other.as_str().to_string())),
    };
    Ok(DeviceRule {
        allow: rule.allow(),
        kind,
        major: number("major", rule.major())?,
        minor: number("minor", rule.minor())?,
        access: access(rule.access().as_deref())?,
    })
}

/// The OCI entry for a rule: every field spelled out (type, numbers where
/// not wildcards, access), which is what runtimes and `runc spec` write.
pub fn to_oci(rule: &DeviceRule) -> LinuxDeviceCgroup {
    let mut out = LinuxDeviceCgroup::default();
    out.set_allow(rule.allow);
    out.set_typ(Some(match rule.kind {
        DeviceType::All => LinuxDeviceType::A,
        DeviceType::Char => LinuxDeviceType::C,
        DeviceType::Block => LinuxDeviceType::B,
    }));
    out.set_major(rule.major.map(i64::from));
    out.set_minor(rule.minor.map(i64::from));
    out.set_access(Some(rule.access.to_string()));
    out
}

/// Every entry of a `linux.resources.devices` list, in order.
pub fn rules_from_oci(rules: &[LinuxDeviceCgroup]) -> Result<Vec<DeviceRule>, OciRuleError> {
    rules.iter().map(from_oci).collect()
}

/// The device cgroup state a `linux.resources.devices` list asks for (start
/// from deny-all, apply each entry in order), ready for
/// [`crate::devices::v1::transition()`].
pub fn target_from_oci(rules: &[LinuxDeviceCgroup]) -> Result<Emulator, OciRuleError> {
    Ok(Emulator::from_rules(&rules_from_oci(rules)?)?)
}

/// A rule list as `linux.resources.devices` entries.
pub fn rules_to_oci(rules: &[DeviceRule]) -> Vec<LinuxDeviceCgroup> {
    rules.iter().map(to_oci).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oci(json: &str) -> LinuxDeviceCgroup {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn defaults_follow_the_runtime_spec() {
        let r = from_oci(&oci(r#"{"allow": false}"#)).unwrap();
        assert_eq!(
            r,
            DeviceRule {
                allow: false,
                kind: DeviceType::All,
                major: None,
                minor: None,
                access: Access::ALL
            }
        );
        let r = from_oci(&oci(
            r#"{"allow": true, "type": "c", "major": 136, "access": ""}"#,
        ))
        .unwrap();
        assert_eq!(r.kind, DeviceType::Char);
        assert_eq!((r.major, r.minor), (Some(136), None));
        assert_eq!(r.access, Access::ALL);
        let r = from_oci(&oci(
            r#"{"allow": true, "type": "b", "major": -1, "minor": -1, "access": "mr"}"#,
        ))
        .unwrap();
        assert_eq!((r.major, r.minor), (None, None));
        assert_eq!(r.access, Access::READ.union(Access::MKNOD));
    }

    #[test]
    fn refuses_what_the_device_cgroup_cannot_express() {
        assert!(matches!(
            from_oci(&oci(r#"{"allow": true, "type": "p"}"#)),
            Err(OciRuleError::Type(_))
        ));
        assert!(matches!(
            from_oci(&oci(r#"{"allow": true, "type": "u"}"#)),
            Err(OciRuleError::Type(_))
        ));
        assert!(matches!(
            from_oci(&oci(r#"{"allow": true, "type": "c", "major": -2}"#)),
            Err(OciRuleError::Number { field: "major", .. })
        ));
        assert!(matches!(
            from_oci(&oci(r#"{"allow": true, "type": "c", "minor": 4294967296}"#)),
            Err(OciRuleError::Number { field: "minor", .. })
        ));
        assert!(matches!(
            from_oci(&oci(r#"{"allow": true, "access": "rx"}"#)),
            Err(OciRuleError::Access(_))
        ));
    }

    /// containerd's and runc's default device section, as JSON.
    const DEFAULT_LIST: &str = r#"[
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "access": "m"},
        {"allow": true, "type": "b", "access": "m"},
        {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
        {"allow": true, "type": "c", "major": 136, "access": "rwm"},
        {"allow": false, "type": "c", "major": 10, "minor": 229, "access": "w"}
    ]"#;

    #[test]
    fn round_trips_rule_to_oci_to_rule() {
        let list: Vec<LinuxDeviceCgroup> = serde_json::from_str(DEFAULT_LIST).unwrap();
        let rules = rules_from_oci(&list).unwrap();
        assert_eq!(rules.len(), 7);
        assert_eq!(rules_from_oci(&rules_to_oci(&rules)).unwrap(), rules);
        // Every kind, number shape and access set.
        for kind in [DeviceType::All, DeviceType::Char, DeviceType::Block] {
            for (major, minor) in [(None, None), (Some(0), None), (Some(4095), Some(1048575))] {
                for bits in 0..=7 {
                    for allow in [true, false] {
                        let r = DeviceRule {
                            allow,
                            kind,
                            major,
                            minor,
                            access: Access::from_bits(bits),
                        };
                        let back = from_oci(&to_oci(&r)).unwrap();
                        // The one lossy spot: empty access reads back as rwm.
                        let want = if bits == 0 {
                            DeviceRule {
                                access: Access::ALL,
                                ..r
                            }
                        } else {
                            r
                        };
                        assert_eq!(back, want);
                    }
                }
            }
        }
    }

    #[test]
    fn round_trips_oci_to_rule_to_oci_in_normal_form() {
        let list: Vec<LinuxDeviceCgroup> = serde_json::from_str(DEFAULT_LIST).unwrap();
        let again = rules_to_oci(&rules_from_oci(&list).unwrap());
        // The normal form spells the type out; otherwise equal.
        assert_eq!(again[0].typ(), Some(LinuxDeviceType::A));
        for (a, b) in list.iter().zip(&again) {
            assert_eq!(a.allow(), b.allow());
            assert_eq!(a.major(), b.major());
            assert_eq!(a.minor(), b.minor());
            assert_eq!(a.access(), b.access());
            assert_eq!(a.typ().unwrap_or_default(), b.typ().unwrap_or_default());
        }
        let target = target_from_oci(&list).unwrap();
        assert_eq!(
            target.devices_list(),
            "c *:* m\nb *:* m\nc 1:3 rwm\nc 1:9 rwm\nc 136:* rwm\n",
            "the trailing deny of an absent key changes nothing"
        );
        let json = serde_json::to_value(&again).unwrap();
        let back: Vec<LinuxDeviceCgroup> = serde_json::from_value(json).unwrap();
        assert_eq!(back, again);
    }
}
