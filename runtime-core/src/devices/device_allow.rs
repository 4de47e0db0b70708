//! Explicit per-device `DeviceAllow=` from OCI device rules: the repair for
//! seed 003.
//!
//! The rules mean what the OCI runtime spec and runc make of them: applied
//! in order from deny-all, last match wins ([`Emulator::from_rules`]). Each
//! allowed pattern becomes the systemd entry that works on the most systemd
//! versions and needs the least from the host:
//!
//! * one device (`c 1:3`): its real node path on the host (`/dev/null`),
//!   found by scanning `/dev` for that number; else `/dev/char/1:3` where that
//!   link exists; else, only when systemd is known to be v240 or newer,
//!   `/dev/char/1:3` anyway (parsed, never stat()ed there);
//! * every minor of a major (`c 136:*`): `char-NAME` when `/proc/devices`
//!   gives that major a name no other major shares; else, on v240+,
//!   `char-136`;
//! * every device of a type (`c *:*`): `char-*`.
//!
//! Whatever cannot be written that way (a device with no node and no link on
//! an older or unknown systemd, a wildcard major with a concrete minor, a
//! nameless major on an older systemd) is returned in
//! [`ExplicitDeviceAllow::unexpressed`], never dropped silently: for those
//! the systemd program will be narrower than the rules. An allow-by-default
//! rule set can only be written as `char-* rwm` + `block-* rwm`; its denies
//! are returned in [`ExplicitDeviceAllow::broadened`]. Broader is the safe
//! side here: systemd's program is ANDed with the runtime's own, which still
//! holds the denies.

use serde::Serialize;

use crate::devices::host_devices::{is_literal_class_name, DeviceId, HostDevices};
use crate::devices::systemd::{
    DeviceAllowEntry, DeviceClass, DevicePolicy, DeviceSelector, SystemdDevices,
    SYSTEMD_PARSES_DEVICE_NUMBERS,
};
use crate::devices::v1::emulator::{DefaultPolicy, Emulator, EmulatorError, Pattern};
use crate::devices::{Access, DeviceRule, DeviceType};

/// Why part of the rules has no systemd entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnexpressedReason {
    /// One device with no node under the host's `/dev`, no `/dev/char/M:m`
    /// link, and a systemd that is older than v240 or of unknown version.
    NoNode,
    /// `c *:3`: systemd has no form for "this minor of every major".
    WildcardMajor,
    /// `c M:*` where `/proc/devices` names major `M` with no name of its
    /// own (absent, shared with another major, or not a literal glob), on a
    /// systemd older than v240 or of unknown version.
    NoClassName,
}

/// A pattern and access the systemd entries do not allow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unexpressed {
    /// The devices.
    pub pattern: Pattern,
    /// The access the rules allow on them.
    pub access: Access,
    /// Why no entry carries it.
    pub reason: UnexpressedReason,
}

/// A deny the systemd entries cannot carry (systemd has only allows).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Broadened {
    /// The denied devices.
    pub pattern: Pattern,
    /// The denied access.
    pub access: Access,
}

/// The explicit form of a rule set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExplicitDeviceAllow {
    /// Always [`DevicePolicy::Strict`]: the entries are the whole list, as
    /// runc sets it.
    pub policy: DevicePolicy,
    /// The entries, to replace the unit's list (reset, then these).
    pub entries: Vec<DeviceAllowEntry>,
    /// Allowed by the rules, not by the entries.
    pub unexpressed: Vec<Unexpressed>,
    /// Denied by the rules, allowed by the entries.
    pub broadened: Vec<Broadened>,
}

impl ExplicitDeviceAllow {
    /// Whether the entries allow exactly what the rules allow.
    pub fn is_exact(&self) -> bool {
        self.unexpressed.is_empty() && self.broadened.is_empty()
    }
}

/// What the generator may assume about the systemd that will read the
/// entries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExplicitOptions {
    /// systemd's version, when known. `None` means: write only what every
    /// version reads the same way.
    pub systemd_version: Option<u32>,
}

impl ExplicitOptions {
    fn parses_numbers(self) -> bool {
        self.systemd_version
            .is_some_and(|v| v >= SYSTEMD_PARSES_DEVICE_NUMBERS)
    }
}

/// The explicit `DeviceAllow=` form of OCI device rules on this host.
pub fn explicit_device_allow(
    rules: &[DeviceRule],
    host: &HostDevices,
    options: ExplicitOptions,
) -> Result<ExplicitDeviceAllow, EmulatorError> {
    let emu = Emulator::from_rules(rules)?;
    let mut out = ExplicitDeviceAllow {
        policy: DevicePolicy::Strict,
        entries: Vec::new(),
        unexpressed: Vec::new(),
        broadened: Vec::new(),
    };
    let essential = emu.essential();
    if emu.default_policy() == DefaultPolicy::Allow {
        for kind in [DeviceType::Char, DeviceType::Block] {
            out.entries.push(DeviceAllowEntry::new(
                DeviceSelector::Class {
                    kind,
                    class: DeviceClass::All,
                },
                Access::ALL,
            ));
        }
        out.broadened = essential
            .into_iter()
            .map(|(pattern, access)| Broadened { pattern, access })
            .collect();
        return Ok(out);
    }
    for (pattern, access) in essential {
        match entry_for(&pattern, host, options) {
            Ok(selector) => out.entries.push(DeviceAllowEntry::new(selector, access)),
            Err(reason) => out.unexpressed.push(Unexpressed {
                pattern,
                access,
                reason,
            }),
        }
    }
    Ok(out)
}

fn entry_for(
    p: &Pattern,
    host: &HostDevices,
    options: ExplicitOptions,
) -> Result<DeviceSelector, UnexpressedReason> {
    let kind = p.kind;
    match (p.major, p.minor) {
        (None, None) => Ok(DeviceSelector::Class {
            kind,
            class: DeviceClass::All,
        }),
        (None, Some(_)) => Err(UnexpressedReason::WildcardMajor),
        (Some(major), None) => {
            let pd = host.proc_devices();
            // A name is exact only when it matches this major and no other.
            let own = pd
                .names_of(kind, major)
                .find(|n| is_literal_class_name(n) && pd.majors_matching(kind, n).len() == 1);
            if let Some(name) = own.filter(|_| major > 0) {
                Ok(DeviceSelector::Class {
                    kind,
                    class: DeviceClass::Name(name.to_string()),
                })
            } else if options.parses_numbers() {
                Ok(DeviceSelector::Class {
                    kind,
                    class: DeviceClass::Major(major),
                })
            } else {
                Err(UnexpressedReason::NoClassName)
            }
        }
        (Some(major), Some(minor)) => {
            let dev = (kind, major, minor);
            let path = host
                .preferred_path(dev)
                .and_then(|p| p.to_str())
                .map(|s| DeviceSelector::Node(s.to_string()))
                .filter(DeviceSelector::accepted_by_systemd);
            if let Some(node) = path {
                Ok(node)
            } else if host.has_number_link(dev) || options.parses_numbers() {
                Ok(DeviceSelector::Number { kind, major, minor })
            } else {
                Err(UnexpressedReason::NoNode)
            }
        }
    }
}

/// A device and access the rules allow but a unit's systemd program would
/// not: what the next daemon-reload takes from the container.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct DeviceGap {
    /// The device.
    pub device: DeviceId,
    /// The access lost (one request: all bits at once).
    pub access: Access,
}

/// Where a unit's `DevicePolicy=` / `DeviceAllow=` (as systemd at `version`
/// resolves them on this host) is narrower than the container's OCI rules:
/// the `device-rules-latent` check. Devices checked: every concrete device
/// the rules name, and every host node a wildcard rule covers; for each, the
/// full allowed access and each single bit. Empty when the unit is safe.
pub fn narrower_than_rules(
    rules: &[DeviceRule],
    policy: DevicePolicy,
    allow: &[DeviceAllowEntry],
    host: &HostDevices,
    version: Option<u32>,
) -> Result<Vec<DeviceGap>, EmulatorError> {
    let emu = Emulator::from_rules(rules)?;
    let Some(program) = (SystemdDevices { host, version }).program(policy, allow) else {
        return Ok(Vec::new()); // no program: systemd allows everything
    };
    let mut devices: Vec<DeviceId> = host.devices().collect();
    for (p, _) in emu.essential() {
        if let (Some(ma), Some(mi)) = (p.major, p.minor) {
            devices.push((p.kind, ma, mi));
        }
    }
    devices.sort();
    devices.dedup();
    let mut gaps = Vec::new();
    for dev in devices {
        for bits in [1u8, 2, 4, 3, 7] {
            let access = Access::from_bits(bits);
            if emu.allows(dev.0, dev.1, dev.2, access) && !program.allows(dev, access) {
                gaps.push(DeviceGap {
                    device: dev,
                    access,
                });
            }
        }
    }
    Ok(gaps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::host_devices::{DeviceId, ProcDevices};
    use crate::devices::systemd::SystemdDevices;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    const PROC_DEVICES: &str = "Character devices:\n  1 mem\n  4 /dev/vc/0\n  4 tty\n  4 ttyS\n  5 /dev/tty\n  5 /dev/console\n  5 /dev/ptmx\n 10 misc\n136 pts\n180 usb\n188 ttyUSB\n189 usb_device\n\nBlock devices:\n  7 loop\n  8 sd\n 65 sd\n259 blkext\n";

    fn host(dev_char: bool) -> HostDevices {
        let nodes: Vec<(std::path::PathBuf, DeviceId)> = vec![
            ("/dev/null".into(), (DeviceType::Char, 1, 3)),
            ("/dev/zero".into(), (DeviceType::Char, 1, 5)),
            ("/dev/full".into(), (DeviceType::Char, 1, 7)),
            ("/dev/random".into(), (DeviceType::Char, 1, 8)),
            ("/dev/urandom".into(), (DeviceType::Char, 1, 9)),
            ("/dev/tty".into(), (DeviceType::Char, 5, 0)),
            ("/dev/console".into(), (DeviceType::Char, 5, 1)),
            ("/dev/net/tun".into(), (DeviceType::Char, 10, 200)),
            ("/dev/pts/0".into(), (DeviceType::Char, 136, 0)),
            ("/dev/loop0".into(), (DeviceType::Block, 7, 0)),
            ("/dev/sda".into(), (DeviceType::Block, 8, 0)),
        ];
        let links: Vec<DeviceId> = if dev_char {
            nodes.iter().map(|(_, d)| *d).collect()
        } else {
            vec![]
        };
        HostDevices::from_parts(nodes, links, dev_char, ProcDevices::parse(PROC_DEVICES))
    }

    /// runc's default rule set (libcontainer/specconv AllowedDevices), plus
    /// a device that has no node here (`1:11`, kmsg).
    fn runc_default() -> Vec<DeviceRule> {
        let rwm = Access::ALL;
        let rw = Access::READ.union(Access::WRITE);
        let mut v = vec![
            DeviceRule {
                allow: false,
                kind: DeviceType::All,
                major: None,
                minor: None,
                access: rwm,
            },
            DeviceRule {
                allow: true,
                kind: DeviceType::Char,
                major: None,
                minor: None,
                access: Access::MKNOD,
            },
            DeviceRule {
                allow: true,
                kind: DeviceType::Block,
                major: None,
                minor: None,
                access: Access::MKNOD,
            },
        ];
        for (ma, mi) in [
            (1, 3),
            (1, 8),
            (1, 7),
            (5, 0),
            (1, 5),
            (1, 9),
            (5, 2),
            (10, 200),
        ] {
            v.push(DeviceRule::allow_char(ma, mi, rwm));
        }
        v.push(DeviceRule {
            allow: true,
            kind: DeviceType::Char,
            major: Some(136),
            minor: None,
            access: rwm,
        });
        v.push(DeviceRule::allow_char(1, 11, rw));
        v
    }

    fn strings(x: &ExplicitDeviceAllow) -> Vec<String> {
        x.entries.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn runc_defaults_become_node_paths_without_dev_char() {
        let x = explicit_device_allow(&runc_default(), &host(false), ExplicitOptions::default())
            .unwrap();
        let s = strings(&x);
        for want in [
            "char-* m",
            "block-* m",
            "/dev/null rwm",
            "/dev/urandom rwm",
            "/dev/tty rwm",
            "/dev/net/tun rwm",
            "char-pts rwm",
        ] {
            assert!(s.contains(&want.to_string()), "{want} missing from {s:?}");
        }
        assert!(!s.iter().any(|e| e.starts_with("/dev/char/")), "{s:?}");
        // 5:2 (ptmx) and 1:11 (kmsg) have no node in this fixture.
        let missing: BTreeSet<_> = x
            .unexpressed
            .iter()
            .map(|u| (u.pattern.to_string(), u.reason))
            .collect();
        assert_eq!(
            missing,
            BTreeSet::from([
                ("c 1:11".to_string(), UnexpressedReason::NoNode),
                ("c 5:2".to_string(), UnexpressedReason::NoNode),
            ])
        );
        assert!(x.broadened.is_empty());
        assert_eq!(x.policy, DevicePolicy::Strict);
    }

    #[test]
    fn dev_char_links_and_new_systemd_fill_the_gaps() {
        // With /dev/char links: node paths still win; 5:2 has no link either.
        let x = explicit_device_allow(&runc_default(), &host(true), ExplicitOptions::default())
            .unwrap();
        assert!(strings(&x).contains(&"/dev/null rwm".to_string()));
        assert_eq!(x.unexpressed.len(), 2);
        // systemd 252 parses /dev/char/M:m without a node.
        let x = explicit_device_allow(
            &runc_default(),
            &host(false),
            ExplicitOptions {
                systemd_version: Some(252),
            },
        )
        .unwrap();
        assert!(x.is_exact(), "{x:?}");
        let s = strings(&x);
        assert!(s.contains(&"/dev/char/5:2 rwm".to_string()));
        assert!(s.contains(&"/dev/char/1:11 rw".to_string()));
        assert!(s.contains(&"/dev/null rwm".to_string()));
    }

    #[test]
    fn classes_only_for_wildcards_and_only_exact_names() {
        let rule = |kind, major, minor| DeviceRule {
            allow: true,
            kind,
            major,
            minor,
            access: Access::READ,
        };
        let h = host(false);
        let old = ExplicitOptions {
            systemd_version: Some(239),
        };
        let new = ExplicitOptions {
            systemd_version: Some(252),
        };
        // tty is major 4's own name (ttyS too, but tty comes first).
        let x = explicit_device_allow(&[rule(DeviceType::Char, Some(4), None)], &h, old).unwrap();
        assert_eq!(strings(&x), ["char-tty r"]);
        // Block "sd" names two majors: not exact. Old systemd: unexpressed;
        // new: numeric.
        let r = [rule(DeviceType::Block, Some(8), None)];
        let x = explicit_device_allow(&r, &h, old).unwrap();
        assert!(x.entries.is_empty());
        assert_eq!(x.unexpressed[0].reason, UnexpressedReason::NoClassName);
        assert_eq!(
            strings(&explicit_device_allow(&r, &h, new).unwrap()),
            ["block-8 r"]
        );
        // Major 5's names are paths, not literal globs.
        let x = explicit_device_allow(&[rule(DeviceType::Char, Some(5), None)], &h, old).unwrap();
        assert_eq!(x.unexpressed[0].reason, UnexpressedReason::NoClassName);
        // A wildcard major with a concrete minor has no form.
        let x = explicit_device_allow(&[rule(DeviceType::Char, None, Some(3))], &h, new).unwrap();
        assert_eq!(x.unexpressed[0].reason, UnexpressedReason::WildcardMajor);
        // Concrete devices of both types become node paths.
        let x = explicit_device_allow(
            &[
                rule(DeviceType::Block, Some(7), Some(0)),
                rule(DeviceType::Char, Some(1), Some(3)),
            ],
            &h,
            old,
        )
        .unwrap();
        assert_eq!(strings(&x), ["/dev/null r", "/dev/loop0 r"]);
    }

    #[test]
    fn allow_all_is_written_as_both_classes_and_reports_denies() {
        let rules = [
            DeviceRule {
                allow: true,
                kind: DeviceType::All,
                major: None,
                minor: None,
                access: Access::ALL,
            },
            DeviceRule {
                allow: false,
                kind: DeviceType::Char,
                major: Some(1),
                minor: Some(3),
                access: Access::WRITE,
            },
        ];
        let x = explicit_device_allow(&rules, &host(false), ExplicitOptions::default()).unwrap();
        assert_eq!(strings(&x), ["char-* rwm", "block-* rwm"]);
        assert_eq!(x.broadened.len(), 1);
        assert_eq!(x.broadened[0].pattern.to_string(), "c 1:3");
        assert!(x.unexpressed.is_empty());
    }

    #[test]
    fn later_rules_win() {
        let rules = [
            DeviceRule::allow_char(1, 3, Access::ALL),
            DeviceRule {
                allow: false,
                kind: DeviceType::Char,
                major: Some(1),
                minor: Some(3),
                access: Access::WRITE,
            },
        ];
        let x = explicit_device_allow(&rules, &host(false), ExplicitOptions::default()).unwrap();
        assert_eq!(strings(&x), ["/dev/null rm"]);
    }

    #[test]
    fn seed_set_is_narrower_and_the_rewrite_is_not() {
        let h = host(false);
        let old: Vec<DeviceAllowEntry> = ["char-pts rwm", "char-* m", "block-* m"]
            .iter()
            .map(|s| DeviceAllowEntry::parse(s).unwrap())
            .collect();
        let rules = runc_default();
        let gaps = narrower_than_rules(&rules, DevicePolicy::Strict, &old, &h, Some(252)).unwrap();
        let rw = Access::READ.union(Access::WRITE);
        assert!(gaps.contains(&DeviceGap {
            device: (DeviceType::Char, 1, 3),
            access: rw
        }));
        assert!(gaps.contains(&DeviceGap {
            device: (DeviceType::Char, 1, 9),
            access: Access::READ
        }));
        assert!(
            !gaps.iter().any(|g| g.device.1 == 136),
            "ptys stay allowed: {gaps:?}"
        );
        let x = explicit_device_allow(
            &rules,
            &h,
            ExplicitOptions {
                systemd_version: Some(252),
            },
        )
        .unwrap();
        assert_eq!(
            narrower_than_rules(&rules, x.policy, &x.entries, &h, Some(252)).unwrap(),
            vec![]
        );
        // runc 1.1.5's own /dev/char/M:m form is fine on 252, not on 239
        // without /dev/char.
        let runc115: Vec<DeviceAllowEntry> =
            ["char-pts rwm", "/dev/char/1:3 rwm", "char-* m", "block-* m"]
                .iter()
                .map(|s| DeviceAllowEntry::parse(s).unwrap())
                .collect();
        let r = [DeviceRule::allow_char(1, 3, Access::ALL)];
        assert!(
            narrower_than_rules(&r, DevicePolicy::Strict, &runc115, &h, Some(252))
                .unwrap()
                .is_empty()
        );
        assert!(
            !narrower_than_rules(&r, DevicePolicy::Strict, &runc115, &h, Some(239))
                .unwrap()
                .is_empty()
        );
        assert!(
            narrower_than_rules(&r, DevicePolicy::Auto, &[], &h, Some(239))
                .unwrap()
                .is_empty()
        );
    }

    // ---- the law: never narrower, except what is reported ----

    fn universe(rules: &[DeviceRule], h: &HostDevices) -> Vec<DeviceId> {
        let mut majors: BTreeSet<u32> = [0, 1, 4, 5, 7, 8, 136, 4095].into();
        let mut minors: BTreeSet<u32> = [0, 1, 3, 9, 200, 1_048_575].into();
        for r in rules {
            majors.extend(r.major);
            minors.extend(r.minor);
        }
        for (_, ma, mi) in h.devices() {
            majors.insert(ma);
            minors.insert(mi);
        }
        let mut out = Vec::new();
        for kind in [DeviceType::Char, DeviceType::Block] {
            for &ma in &majors {
                for &mi in &minors {
                    out.push((kind, ma, mi));
                }
            }
        }
        out
    }

    fn check_law(rules: &[DeviceRule], h: &HostDevices, options: ExplicitOptions) {
        let Ok(x) = explicit_device_allow(rules, h, options) else {
            return;
        };
        let emu = Emulator::from_rules(rules).unwrap();
        let program = SystemdDevices {
            host: h,
            version: options.systemd_version,
        }
        .program(x.policy, &x.entries)
        .expect("strict policy always builds a program");
        assert!(
            program.skipped.is_empty(),
            "generated entries systemd skips: {:?}",
            program.skipped
        );
        for dev in universe(rules, h) {
            for bits in 1..=7u8 {
                let acc = Access::from_bits(bits);
                let oci = emu.allows(dev.0, dev.1, dev.2, acc);
                let sd = program.allows(dev, acc);
                if oci && !sd {
                    assert!(
                        x.unexpressed
                            .iter()
                            .any(|u| u.pattern.matches(dev.0, dev.1, dev.2)
                                && u.access.contains(acc)),
                        "narrower on {dev:?} {acc} without a report; rules {rules:?}, entries {:?}",
                        x.entries
                    );
                }
                if sd && !oci {
                    assert!(
                        x.broadened
                            .iter()
                            .any(|b| b.pattern.matches(dev.0, dev.1, dev.2)),
                        "broader on {dev:?} {acc} without a report; rules {rules:?}, entries {:?}",
                        x.entries
                    );
                }
            }
        }
    }

    fn arb_rule() -> impl Strategy<Value = DeviceRule> {
        (
            any::<bool>(),
            prop_oneof![
                Just(DeviceType::All),
                Just(DeviceType::Char),
                Just(DeviceType::Block)
            ],
            prop_oneof![
                Just(None),
                Just(Some(1)),
                Just(Some(4)),
                Just(Some(8)),
                Just(Some(136)),
                Just(Some(77))
            ],
            prop_oneof![
                Just(None),
                Just(Some(0)),
                Just(Some(3)),
                Just(Some(9)),
                Just(Some(11))
            ],
            1u8..=7,
        )
            .prop_map(|(allow, kind, major, minor, bits)| DeviceRule {
                allow,
                kind,
                major,
                minor,
                access: Access::from_bits(bits),
            })
    }

    proptest! {
        #[test]
        fn never_narrower_than_the_rules_unless_reported(
            rules in proptest::collection::vec(arb_rule(), 0..8),
            dev_char in any::<bool>(),
            version in prop_oneof![Just(None), Just(Some(219u32)), Just(Some(239)), Just(Some(240)), Just(Some(252))],
        ) {
            check_law(&rules, &host(dev_char), ExplicitOptions { systemd_version: version });
        }
    }

    #[test]
    fn runc_defaults_obey_the_law_everywhere() {
        for dev_char in [false, true] {
            for v in [None, Some(219), Some(252)] {
                check_law(
                    &runc_default(),
                    &host(dev_char),
                    ExplicitOptions { systemd_version: v },
                );
            }
        }
    }
}
