//! What device access a container is entitled to: the rules its runtime
//! derived from its OCI config when it created the container.
//!
//! runc and crun both take `linux.resources.devices` in order, then allow
//! every node listed in `linux.devices`, then append their own default set
//! (null, zero, full, random, urandom, tty, ptmx, pts, tun, and `m` on every
//! char and block device). Appended last, the defaults win over a config
//! that denies them: that is what a running container really had, so it is
//! what a repair restores.

use oci_spec::runtime::{LinuxDeviceType, Spec};

use super::oci::{from_oci, OciRuleError};
use super::{Access, DeviceRule, DeviceType};

/// The runtimes' default allowed devices (runc's `AllowedDevices`, crun's
/// equivalent): `(type, major, minor, access)`, `None` for a wildcard.
pub const RUNTIME_DEFAULTS: &[(DeviceType, Option<u32>, Option<u32>, &str)] = &[
    (DeviceType::Char, None, None, "m"),
    (DeviceType::Block, None, None, "m"),
    (DeviceType::Char, Some(1), Some(3), "rwm"), // /dev/null
    (DeviceType::Char, Some(1), Some(8), "rwm"), // /dev/random
    (DeviceType::Char, Some(1), Some(7), "rwm"), // /dev/full
    (DeviceType::Char, Some(5), Some(0), "rwm"), // /dev/tty
    (DeviceType::Char, Some(1), Some(5), "rwm"), // /dev/zero
    (DeviceType::Char, Some(1), Some(9), "rwm"), // /dev/urandom
    (DeviceType::Char, Some(5), Some(2), "rwm"), // /dev/ptmx
    (DeviceType::Char, Some(136), None, "rwm"),  // /dev/pts/*
    (DeviceType::Char, Some(10), Some(200), "rwm"), // /dev/net/tun
];

/// The runtime defaults as rules.
pub fn runtime_defaults() -> Vec<DeviceRule> {
    RUNTIME_DEFAULTS
        .iter()
        .map(|&(kind, major, minor, access)| DeviceRule {
            allow: true,
            kind,
            major,
            minor,
            access: Access::parse(access).unwrap_or(Access::ALL),
        })
        .collect()
}

/// The ordered rule list the runtime applied for `spec` (start from
/// deny-all, last match wins).
pub fn expected_rules(spec: &Spec) -> Result<Vec<DeviceRule>, OciRuleError> {
    let mut rules = Vec::new();
    let linux = spec.linux().as_ref();
    if let Some(devs) = linux
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.devices().as_ref())
    {
        for d in devs {
            rules.push(from_oci(d)?);
        }
    }
    if let Some(nodes) = linux.and_then(|l| l.devices().as_ref()) {
        for n in nodes {
            let kind = match n.typ() {
                LinuxDeviceType::B => DeviceType::Block,
                LinuxDeviceType::C | LinuxDeviceType::U => DeviceType::Char,
                // FIFOs and "all" are not device-cgroup subjects.
                _ => continue,
            };
            rules.push(DeviceRule {
                allow: true,
                kind,
                major: u32::try_from(n.major()).ok(),
                minor: u32::try_from(n.minor()).ok(),
                access: Access::ALL,
            });
        }
    }
    rules.extend(runtime_defaults());
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::v1::Emulator;

    #[test]
    fn a_deny_all_config_still_gets_the_defaults() {
        let spec: Spec = serde_json::from_str(
            r#"{"ociVersion":"1.0.2","linux":{"resources":{"devices":[{"allow":false,"access":"rwm"}]},
                "devices":[{"path":"/dev/fuse","type":"c","major":10,"minor":229}]}}"#,
        )
        .expect("spec");
        let emu = Emulator::from_rules(&expected_rules(&spec).expect("rules")).expect("emulator");
        assert!(emu.allows(DeviceType::Char, 1, 3, Access::ALL), "/dev/null");
        assert!(
            emu.allows(DeviceType::Char, 1, 9, Access::READ),
            "/dev/urandom"
        );
        assert!(
            emu.allows(DeviceType::Char, 10, 229, Access::ALL),
            "linux.devices node"
        );
        assert!(emu.allows(DeviceType::Block, 8, 0, Access::MKNOD));
        assert!(!emu.allows(DeviceType::Block, 8, 0, Access::READ));
        assert!(!emu.allows(DeviceType::Char, 4, 1, Access::READ));
    }
}
