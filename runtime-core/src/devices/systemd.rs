//! The systemd dialect: `DeviceAllow=` values and `DevicePolicy=`, parsed,
//! printed, and evaluated the way systemd turns them into a device program.
//!
//! One entry is a selector and access letters: `/dev/null rwm`,
//! `/dev/char/1:3 rw`, `char-pts rwm`, `char-* m`, `block-loop r`,
//! `char-136 rw`. Over D-Bus the same pair is one `(ss)` of the `a(ss)`
//! property. What systemd makes of each (checked against its sources,
//! `bpf-devices.c` and `path-util.c`, and on the real-systemd tier):
//!
//! * A `/dev/...` path is `stat()`ed at every daemon-reload; a missing path or
//!   one that is not a device node is skipped with a warning. From v240,
//!   `/dev/char/M:m` and `/dev/block/M:m` are parsed instead, so they need no
//!   node at all; older versions stat them like any path.
//! * `char-*` / `block-*` allow every device of the type; `char-NAME` is a
//!   shell glob matched against the names in `/proc/devices` and allows every
//!   minor of each major whose name matches. From v240 a number
//!   (`char-136`) is taken as the major directly.
//! * Paths outside `/dev/` (and `/run/systemd/inaccessible/`) are refused
//!   (`EINVAL` over D-Bus, ignored in unit files): `/sys/dev/char/1:3` is
//!   *not* a systemd form, though runc 1.1.5 checks it to decide whether to
//!   emit `/dev/char/1:3`. It parses here so that it can be reported.
//! * A request is allowed when one single entry matches the device and holds
//!   every requested bit (`O_RDWR` asks for `rw` at once).
//! * `DevicePolicy=closed` (and `auto` once any entry exists) adds the
//!   standard pseudo devices; `auto` with no entry allows everything.

use std::fmt;
use std::path::Path;

use serde::Serialize;

use crate::devices::host_devices::{parse_major_minor, DeviceId, HostDevices};
use crate::devices::{Access, DeviceType};

/// systemd's first version that parses `/dev/char/M:m` without the node and
/// takes numeric `char-M` classes (commit 8e8b5d2e, v240).
pub const SYSTEMD_PARSES_DEVICE_NUMBERS: u32 = 240;

/// A `DeviceAllow=` value or `DevicePolicy=` that is not systemd syntax.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DialectError {
    /// The path part is empty.
    #[error("DeviceAllow entry has no device")]
    Empty,
    /// Access letters other than `r`, `w`, `m`.
    #[error("DeviceAllow access `{0}` is not made of r, w, m")]
    Access(String),
    /// More than two words.
    #[error("DeviceAllow value `{0}` has more than a device and access letters")]
    Trailing(String),
    /// Not `auto`, `closed` or `strict`.
    #[error("DevicePolicy `{0}` is not auto, closed or strict")]
    Policy(String),
}

/// What `char-...` / `block-...` names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum DeviceClass {
    /// `*`: every device of the type.
    All,
    /// A number: that major (systemd >= 240 only; older ones match it as a
    /// name, and no driver is called `136`).
    Major(u32),
    /// A glob over `/proc/devices` names (`pts`, `tty*`).
    Name(String),
}

/// The device part of a `DeviceAllow=` entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum DeviceSelector {
    /// A node path that systemd `stat()`s: `/dev/null`, `/dev/net/tun`.
    Node(String),
    /// `/dev/char/M:m` or `/dev/block/M:m`.
    Number {
        /// [`DeviceType::Char`] or [`DeviceType::Block`].
        kind: DeviceType,
        /// Major.
        major: u32,
        /// Minor.
        minor: u32,
    },
    /// `/sys/dev/char/M:m` or `/sys/dev/block/M:m`: not accepted by systemd.
    SysNumber {
        /// [`DeviceType::Char`] or [`DeviceType::Block`].
        kind: DeviceType,
        /// Major.
        major: u32,
        /// Minor.
        minor: u32,
    },
    /// `char-CLASS` or `block-CLASS`.
    Class {
        /// [`DeviceType::Char`] or [`DeviceType::Block`].
        kind: DeviceType,
        /// Which majors.
        class: DeviceClass,
    },
    /// Anything else (`/sys/...`, a relative path): systemd refuses it.
    Other(String),
}

fn type_word(kind: DeviceType) -> &'static str {
    match kind {
        DeviceType::Block => "block",
        _ => "char",
    }
}

impl DeviceSelector {
    /// Parse the device part.
    pub fn parse(s: &str) -> Result<Self, DialectError> {
        if s.is_empty() {
            return Err(DialectError::Empty);
        }
        for (prefix, kind) in [("char-", DeviceType::Char), ("block-", DeviceType::Block)] {
            if let Some(rest) = s.strip_prefix(prefix) {
                let class = if rest == "*" {
                    DeviceClass::All
                } else if let Some(n) = rest
                    .parse::<u32>()
                    .ok()
                    .filter(|_| rest.bytes().all(|b| b.is_ascii_digit()))
                {
                    DeviceClass::Major(n)
                } else {
                    DeviceClass::Name(rest.to_string())
                };
                return Ok(DeviceSelector::Class { kind, class });
            }
        }
        for (prefix, kind, sys) in [
            ("/dev/char/", DeviceType::Char, false),
            ("/dev/block/", DeviceType::Block, false),
            ("/sys/dev/char/", DeviceType::Char, true),
            ("/sys/dev/block/", DeviceType::Block, true),
        ] {
            if let Some((major, minor)) = s.strip_prefix(prefix).and_then(parse_major_minor) {
                return Ok(if sys {
                    DeviceSelector::SysNumber { kind, major, minor }
                } else {
                    DeviceSelector::Number { kind, major, minor }
                });
            }
        }
        if s.starts_with("/dev/") || s.starts_with("/run/systemd/inaccessible/") {
            Ok(DeviceSelector::Node(s.to_string()))
        } else {
            Ok(DeviceSelector::Other(s.to_string()))
        }
    }

    /// Whether systemd accepts this selector at all (its
    /// `valid_device_allow_pattern`): `/dev/` and
    /// `/run/systemd/inaccessible/` paths that are normalised, and every
    /// class.
    pub fn accepted_by_systemd(&self) -> bool {
        match self {
            DeviceSelector::Class { .. } | DeviceSelector::Number { .. } => true,
            DeviceSelector::Node(p) => {
                !p.ends_with('/')
                    && !p.contains("//")
                    && !p.split('/').any(|c| c == "." || c == "..")
                    && !p.contains(char::is_whitespace)
            }
            DeviceSelector::SysNumber { .. } | DeviceSelector::Other(_) => false,
        }
    }
}

impl fmt::Display for DeviceSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSelector::Node(p) | DeviceSelector::Other(p) => f.write_str(p),
            DeviceSelector::Number { kind, major, minor } => {
                write!(f, "/dev/{}/{major}:{minor}", type_word(*kind))
            }
            DeviceSelector::SysNumber { kind, major, minor } => {
                write!(f, "/sys/dev/{}/{major}:{minor}", type_word(*kind))
            }
            DeviceSelector::Class { kind, class } => {
                write!(f, "{}-", type_word(*kind))?;
                match class {
                    DeviceClass::All => f.write_str("*"),
                    DeviceClass::Major(m) => write!(f, "{m}"),
                    DeviceClass::Name(n) => f.write_str(n),
                }
            }
        }
    }
}

/// One `DeviceAllow=` entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct DeviceAllowEntry {
    /// Which devices.
    pub selector: DeviceSelector,
    /// Which access.
    pub access: Access,
}

impl DeviceAllowEntry {
    /// An entry from its parts.
    pub fn new(selector: DeviceSelector, access: Access) -> Self {
        Self { selector, access }
    }

    /// From the D-Bus pair `(path, access)`. Empty access means `rwm`, as
    /// systemd reads it.
    pub fn from_pair(path: &str, access: &str) -> Result<Self, DialectError> {
        let selector = DeviceSelector::parse(path)?;
        let access = if access.is_empty() {
            Access::ALL
        } else {
            Access::parse(access)
                .or_else(|| lenient_access(access))
                .ok_or_else(|| DialectError::Access(access.to_string()))?
        };
        Ok(Self { selector, access })
    }

    /// The D-Bus pair `(path, access)`.
    pub fn to_pair(&self) -> (String, String) {
        (self.selector.to_string(), self.access.to_string())
    }

    /// Parse a unit-file value: `PATH [ACCESS]` (access defaults to `rwm`).
    /// The empty value (a reset) is not an entry; see [`parse_unit_text`].
    pub fn parse(value: &str) -> Result<Self, DialectError> {
        let mut words = value.split_whitespace();
        let path = words.next().ok_or(DialectError::Empty)?;
        let access = words.next().unwrap_or("");
        if words.next().is_some() {
            return Err(DialectError::Trailing(value.to_string()));
        }
        Self::from_pair(path, access)
    }
}

/// systemd accepts repeated letters (`rrw`); the strict parser does not.
fn lenient_access(s: &str) -> Option<Access> {
    s.chars().try_fold(Access::NONE, |a, c| {
        Some(a.union(match c {
            'r' => Access::READ,
            'w' => Access::WRITE,
            'm' => Access::MKNOD,
            _ => return None,
        }))
    })
}

impl fmt::Display for DeviceAllowEntry {
    /// The unit-file value: `/dev/null rwm`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.selector, self.access)
    }
}

/// `DevicePolicy=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DevicePolicy {
    /// No program unless `DeviceAllow=` has entries; then like `closed`.
    #[default]
    Auto,
    /// The entries plus the standard pseudo devices.
    Closed,
    /// The entries only (what runc sets).
    Strict,
}

impl DevicePolicy {
    /// Parse `auto`, `closed` or `strict`.
    pub fn parse(s: &str) -> Result<Self, DialectError> {
        match s {
            "auto" => Ok(DevicePolicy::Auto),
            "closed" => Ok(DevicePolicy::Closed),
            "strict" => Ok(DevicePolicy::Strict),
            other => Err(DialectError::Policy(other.to_string())),
        }
    }

    /// The systemd word.
    pub fn as_str(self) -> &'static str {
        match self {
            DevicePolicy::Auto => "auto",
            DevicePolicy::Closed => "closed",
            DevicePolicy::Strict => "strict",
        }
    }
}

impl fmt::Display for DevicePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The device settings of a unit as a unit file (or the transient drop-ins
/// systemd writes, `50-DeviceAllow.conf`) states them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UnitDevices {
    /// The last `DevicePolicy=`, if any.
    pub policy: Option<DevicePolicy>,
    /// `DeviceAllow=` entries after resets, in order.
    pub allow: Vec<DeviceAllowEntry>,
}

/// Read `DevicePolicy=` and `DeviceAllow=` lines from unit-file text (other
/// lines and sections are ignored; an empty `DeviceAllow=` resets the list).
/// Texts of several drop-ins can be fed one after another by calling
/// [`UnitDevices::apply_text`] on the same value.
pub fn parse_unit_text(text: &str) -> Result<UnitDevices, DialectError> {
    let mut out = UnitDevices::default();
    out.apply_text(text)?;
    Ok(out)
}

impl UnitDevices {
    /// Apply the device lines of one more unit-file text.
    pub fn apply_text(&mut self, text: &str) -> Result<(), DialectError> {
        for line in text.lines() {
            let line = line.trim();
            if let Some(v) = line.strip_prefix("DeviceAllow=") {
                if v.trim().is_empty() {
                    self.allow.clear();
                } else {
                    self.allow.push(DeviceAllowEntry::parse(v)?);
                }
            } else if let Some(v) = line.strip_prefix("DevicePolicy=") {
                self.policy = Some(DevicePolicy::parse(v.trim())?);
            }
        }
        Ok(())
    }

    /// The unit-file lines for these settings, starting with a reset so that
    /// they replace whatever came before.
    pub fn to_unit_text(&self) -> String {
        let mut out = String::new();
        if let Some(p) = self.policy {
            out.push_str(&format!("DevicePolicy={p}\n"));
        }
        out.push_str("DeviceAllow=\n");
        for e in &self.allow {
            out.push_str(&format!("DeviceAllow={e}\n"));
        }
        out
    }
}

/// What one pattern of a resolved entry allows: a type, a major (`None` is
/// every major) and a minor (`None` is every minor).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct AllowPattern {
    /// [`DeviceType::Char`] or [`DeviceType::Block`].
    pub kind: DeviceType,
    /// Major, `None` for all.
    pub major: Option<u32>,
    /// Minor, `None` for all.
    pub minor: Option<u32>,
    /// Access the pattern allows.
    pub access: Access,
}

impl AllowPattern {
    fn device(dev: DeviceId, access: Access) -> Self {
        AllowPattern {
            kind: dev.0,
            major: Some(dev.1),
            minor: Some(dev.2),
            access,
        }
    }

    /// Whether the pattern allows `access` (every bit at once) on the device.
    pub fn allows(&self, dev: DeviceId, access: Access) -> bool {
        self.kind == dev.0
            && self.major.is_none_or(|m| m == dev.1)
            && self.minor.is_none_or(|m| m == dev.2)
            && self.access.contains(access)
    }
}

/// Why systemd drops an entry when it builds the program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Skipped {
    /// systemd refuses the selector (`/sys/...`).
    NotAccepted,
    /// `stat()` finds no node at the path (systemd < 240 for
    /// `/dev/char/M:m`, every version for other paths).
    NoNode,
    /// A class name that matches no `/proc/devices` name.
    NoSuchClass,
}

/// What systemd makes of one entry on a given host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Resolved {
    /// These patterns go into the program.
    Allows(Vec<AllowPattern>),
    /// Nothing does, and why.
    Skipped(Skipped),
}

/// What systemd, at a given version, builds from `DeviceAllow=` on a host.
#[derive(Debug, Clone, Copy)]
pub struct SystemdDevices<'a> {
    /// The host's device table (systemd stats host paths).
    pub host: &'a HostDevices,
    /// systemd's version; `None` is treated as older than 240 (the
    /// conservative reading: paths must exist).
    pub version: Option<u32>,
}

impl SystemdDevices<'_> {
    fn parses_numbers(&self) -> bool {
        self.version
            .is_some_and(|v| v >= SYSTEMD_PARSES_DEVICE_NUMBERS)
    }

    /// Resolve one entry.
    pub fn resolve(&self, entry: &DeviceAllowEntry) -> Resolved {
        let access = entry.access;
        match &entry.selector {
            DeviceSelector::SysNumber { .. } | DeviceSelector::Other(_) => {
                Resolved::Skipped(Skipped::NotAccepted)
            }
            s if !s.accepted_by_systemd() => Resolved::Skipped(Skipped::NotAccepted),
            DeviceSelector::Number { kind, major, minor } if self.parses_numbers() => {
                Resolved::Allows(vec![AllowPattern::device((*kind, *major, *minor), access)])
            }
            sel @ (DeviceSelector::Number { .. } | DeviceSelector::Node(_)) => {
                match self.host.stat(Path::new(&sel.to_string())) {
                    Some(dev) => Resolved::Allows(vec![AllowPattern::device(dev, access)]),
                    None => Resolved::Skipped(Skipped::NoNode),
                }
            }
            DeviceSelector::Class { kind, class } => {
                let majors = match class {
                    DeviceClass::All => {
                        return Resolved::Allows(vec![AllowPattern {
                            kind: *kind,
                            major: None,
                            minor: None,
                            access,
                        }])
                    }
                    DeviceClass::Major(m) if self.parses_numbers() => [*m].into(),
                    DeviceClass::Major(m) => self
                        .host
                        .proc_devices()
                        .majors_matching(*kind, &m.to_string()),
                    DeviceClass::Name(n) => self.host.proc_devices().majors_matching(*kind, n),
                };
                if majors.is_empty() {
                    return Resolved::Skipped(Skipped::NoSuchClass);
                }
                Resolved::Allows(
                    majors
                        .into_iter()
                        .map(|m| AllowPattern {
                            kind: *kind,
                            major: Some(m),
                            minor: None,
                            access,
                        })
                        .collect(),
                )
            }
        }
    }

    /// The program systemd would attach for a unit with these settings:
    /// `None` when it attaches none (everything allowed), else the patterns.
    pub fn program(&self, policy: DevicePolicy, allow: &[DeviceAllowEntry]) -> Option<AllowList> {
        if policy == DevicePolicy::Auto && allow.is_empty() {
            return None;
        }
        let mut patterns = Vec::new();
        let mut skipped = Vec::new();
        if policy != DevicePolicy::Strict {
            for (path, acc) in CLOSED_POLICY_DEVICES {
                let e = DeviceAllowEntry::new(DeviceSelector::Node((*path).into()), *acc);
                if let Resolved::Allows(p) = self.resolve(&e) {
                    patterns.extend(p);
                }
            }
            let pts = DeviceAllowEntry::new(
                DeviceSelector::Class {
                    kind: DeviceType::Char,
                    class: DeviceClass::Name("pts".into()),
                },
                Access::READ.union(Access::WRITE),
            );
            if let Resolved::Allows(p) = self.resolve(&pts) {
                patterns.extend(p);
            }
        }
        for e in allow {
            match self.resolve(e) {
                Resolved::Allows(p) => patterns.extend(p),
                Resolved::Skipped(why) => skipped.push((e.clone(), why)),
            }
        }
        Some(AllowList { patterns, skipped })
    }
}

/// The devices `DevicePolicy=closed` adds (systemd's static list; the
/// `/run/systemd/inaccessible` nodes are left out: they are `0:0`).
const CLOSED_POLICY_DEVICES: &[(&str, Access)] = &[
    ("/dev/null", Access::ALL),
    ("/dev/zero", Access::ALL),
    ("/dev/full", Access::ALL),
    ("/dev/random", Access::ALL),
    ("/dev/urandom", Access::ALL),
    ("/dev/tty", Access::ALL),
    ("/dev/ptmx", Access::ALL),
];

/// A resolved device program: allow patterns, default deny.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AllowList {
    /// What the program allows.
    pub patterns: Vec<AllowPattern>,
    /// Entries that contributed nothing, and why.
    pub skipped: Vec<(DeviceAllowEntry, Skipped)>,
}

impl AllowList {
    /// Whether the program allows `access` (all bits at once) on a device.
    pub fn allows(&self, dev: DeviceId, access: Access) -> bool {
        self.patterns.iter().any(|p| p.allows(dev, access))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::host_devices::ProcDevices;

    fn e(s: &str) -> DeviceAllowEntry {
        DeviceAllowEntry::parse(s).unwrap()
    }

    #[test]
    fn every_form_round_trips() {
        for s in [
            "/dev/null rwm",
            "/dev/net/tun rw",
            "char-pts rwm",
            "char-* m",
            "block-* m",
            "block-loop r",
            "char-136 rw",
            "char-tty* w",
            "/dev/char/1:3 rw",
            "/dev/block/7:0 r",
            "/sys/dev/char/1:3 rwm",
            "/run/systemd/inaccessible/chr rwm",
        ] {
            let entry = e(s);
            assert_eq!(entry.to_string(), s);
            let (p, a) = entry.to_pair();
            assert_eq!(DeviceAllowEntry::from_pair(&p, &a).unwrap(), entry);
        }
    }

    #[test]
    fn selectors_are_classified() {
        assert_eq!(
            e("/dev/null").selector,
            DeviceSelector::Node("/dev/null".into())
        );
        assert_eq!(e("/dev/null").access, Access::ALL);
        assert_eq!(
            e("/dev/char/10:200 rw").selector,
            DeviceSelector::Number {
                kind: DeviceType::Char,
                major: 10,
                minor: 200
            }
        );
        assert_eq!(
            e("/sys/dev/char/1:3").selector,
            DeviceSelector::SysNumber {
                kind: DeviceType::Char,
                major: 1,
                minor: 3
            }
        );
        assert_eq!(
            e("char-pts rw").selector,
            DeviceSelector::Class {
                kind: DeviceType::Char,
                class: DeviceClass::Name("pts".into())
            }
        );
        assert_eq!(
            e("block-* m").selector,
            DeviceSelector::Class {
                kind: DeviceType::Block,
                class: DeviceClass::All
            }
        );
        assert_eq!(
            e("char-136").selector,
            DeviceSelector::Class {
                kind: DeviceType::Char,
                class: DeviceClass::Major(136)
            }
        );
        // Not M:m: a plain node path under /dev/char.
        assert_eq!(
            e("/dev/char/x").selector,
            DeviceSelector::Node("/dev/char/x".into())
        );
        assert_eq!(
            e("/sys/foo").selector,
            DeviceSelector::Other("/sys/foo".into())
        );
        assert!(!e("/sys/dev/char/1:3").selector.accepted_by_systemd());
        assert!(!e("/dev/../etc/x").selector.accepted_by_systemd());
        assert!(e("/dev/null").selector.accepted_by_systemd());
        assert_eq!(e("/dev/null rrw").access, Access::READ.union(Access::WRITE));
    }

    #[test]
    fn malformed_values_are_errors() {
        assert_eq!(DeviceAllowEntry::parse(""), Err(DialectError::Empty));
        assert!(matches!(
            DeviceAllowEntry::parse("/dev/null rwx"),
            Err(DialectError::Access(_))
        ));
        assert!(matches!(
            DeviceAllowEntry::parse("/dev/null rw m"),
            Err(DialectError::Trailing(_))
        ));
        assert!(matches!(
            DevicePolicy::parse("open"),
            Err(DialectError::Policy(_))
        ));
    }

    /// The seed's two transient drop-ins: the broken one runc 1.1.4 wrote
    /// without /dev/char, and the healthy one.
    #[test]
    fn seed_drop_ins_parse() {
        let broken = "# /run/systemd/transient/docker-x.scope.d/50-DeviceAllow.conf\n\
                      [Scope]\nDeviceAllow=\nDeviceAllow=char-pts rwm\nDeviceAllow=char-* m\nDeviceAllow=block-* m\n";
        let u = parse_unit_text(broken).unwrap();
        assert_eq!(u.policy, None);
        assert_eq!(
            u.allow,
            vec![e("char-pts rwm"), e("char-* m"), e("block-* m")]
        );
        let mut u2 =
            parse_unit_text("[Scope]\nDevicePolicy=strict\nDeviceAllow=/dev/null rw\n").unwrap();
        u2.apply_text(broken).unwrap();
        assert_eq!(u2.policy, Some(DevicePolicy::Strict));
        assert_eq!(
            u2.allow.len(),
            3,
            "the reset in the later drop-in clears earlier entries"
        );
        let text = u2.to_unit_text();
        assert_eq!(parse_unit_text(&text).unwrap(), u2);
    }

    fn host(dev_char: bool) -> HostDevices {
        HostDevices::from_parts(
            [
                ("/dev/null".into(), (DeviceType::Char, 1, 3)),
                ("/dev/urandom".into(), (DeviceType::Char, 1, 9)),
                ("/dev/ptmx".into(), (DeviceType::Char, 5, 2)),
            ],
            if dev_char {
                vec![(DeviceType::Char, 1, 3)]
            } else {
                vec![]
            },
            dev_char,
            ProcDevices::parse(
                "Character devices:\n  1 mem\n  5 /dev/ptmx\n136 pts\n\nBlock devices:\n  7 loop\n",
            ),
        )
    }

    #[test]
    fn resolution_follows_systemd_versions() {
        let h = host(false);
        let old = SystemdDevices {
            host: &h,
            version: Some(239),
        };
        let new = SystemdDevices {
            host: &h,
            version: Some(252),
        };
        let null = (DeviceType::Char, 1, 3);
        // Real node paths work on every version.
        for sd in [old, new] {
            assert_eq!(
                sd.resolve(&e("/dev/null rw")),
                Resolved::Allows(vec![AllowPattern::device(
                    null,
                    Access::READ.union(Access::WRITE)
                )])
            );
            assert_eq!(
                sd.resolve(&e("/dev/nonexistent rw")),
                Resolved::Skipped(Skipped::NoNode)
            );
            assert_eq!(
                sd.resolve(&e("/sys/dev/char/1:3 rw")),
                Resolved::Skipped(Skipped::NotAccepted)
            );
            assert_eq!(
                sd.resolve(&e("char-nosuch rw")),
                Resolved::Skipped(Skipped::NoSuchClass)
            );
        }
        // /dev/char/M:m without /dev/char: only v240+ parses it.
        assert_eq!(
            old.resolve(&e("/dev/char/1:3 rw")),
            Resolved::Skipped(Skipped::NoNode)
        );
        assert!(matches!(
            new.resolve(&e("/dev/char/1:3 rw")),
            Resolved::Allows(_)
        ));
        let with = host(true);
        let old_with = SystemdDevices {
            host: &with,
            version: Some(239),
        };
        assert!(matches!(
            old_with.resolve(&e("/dev/char/1:3 rw")),
            Resolved::Allows(_)
        ));
        // Numeric classes: v240+.
        assert_eq!(
            old.resolve(&e("char-136 rw")),
            Resolved::Skipped(Skipped::NoSuchClass)
        );
        assert!(matches!(
            new.resolve(&e("char-136 rw")),
            Resolved::Allows(_)
        ));
        assert_eq!(
            new.resolve(&e("char-pts rw")),
            Resolved::Allows(vec![AllowPattern {
                kind: DeviceType::Char,
                major: Some(136),
                minor: None,
                access: Access::READ.union(Access::WRITE)
            }])
        );
    }

    /// The seed: the old runc set allows mknod everywhere and ptys, and so
    /// no read of /dev/null; explicit paths fix it.
    #[test]
    fn seed_set_denies_dev_null() {
        let h = host(false);
        let sd = SystemdDevices {
            host: &h,
            version: Some(252),
        };
        let rw = Access::READ.union(Access::WRITE);
        let old = [e("char-pts rwm"), e("char-* m"), e("block-* m")];
        let p = sd.program(DevicePolicy::Strict, &old).unwrap();
        assert!(!p.allows((DeviceType::Char, 1, 3), Access::READ));
        assert!(p.allows((DeviceType::Char, 1, 3), Access::MKNOD));
        assert!(p.allows((DeviceType::Char, 136, 7), rw));
        let mut fixed = old.to_vec();
        fixed.push(e("/dev/null rwm"));
        fixed.push(e("/dev/urandom rwm"));
        let p = sd.program(DevicePolicy::Strict, &fixed).unwrap();
        assert!(p.allows((DeviceType::Char, 1, 3), rw));
        assert!(p.allows((DeviceType::Char, 1, 9), Access::READ));
        // One entry must hold every requested bit.
        let split = [e("/dev/null r"), e("/dev/null w")];
        let p = sd.program(DevicePolicy::Strict, &split).unwrap();
        assert!(p.allows((DeviceType::Char, 1, 3), Access::READ));
        assert!(!p.allows((DeviceType::Char, 1, 3), rw));
        // Policies.
        assert!(sd.program(DevicePolicy::Auto, &[]).is_none());
        let closed = sd.program(DevicePolicy::Closed, &[]).unwrap();
        assert!(closed.allows((DeviceType::Char, 1, 3), rw));
        assert!(closed.allows((DeviceType::Char, 136, 0), rw));
        assert!(!closed.allows((DeviceType::Char, 136, 0), Access::MKNOD));
        assert!(sd
            .program(DevicePolicy::Strict, &[])
            .unwrap()
            .patterns
            .is_empty());
        let skipped = sd
            .program(DevicePolicy::Strict, &[e("/sys/dev/char/1:3 rw")])
            .unwrap();
        assert_eq!(skipped.skipped.len(), 1);
    }
}
