//! The device rule model shared by every dialect (OCI, cgroup v1, systemd,
//! eBPF).

use serde::{Deserialize, Serialize};

/// Device type a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum DeviceType {
    /// Every type (`a` in cgroup v1; "all devices" in OCI).
    All,
    /// Character devices (`c`).
    Char,
    /// Block devices (`b`).
    Block,
}

impl DeviceType {
    /// The v1 / OCI letter: `a`, `c` or `b`.
    pub fn letter(self) -> char {
        match self {
            DeviceType::All => 'a',
            DeviceType::Char => 'c',
            DeviceType::Block => 'b',
        }
    }

    /// Parse `a`, `c` or `b`.
    pub fn from_letter(c: char) -> Option<Self> {
        match c {
            'a' => Some(DeviceType::All),
            'c' => Some(DeviceType::Char),
            'b' => Some(DeviceType::Block),
            _ => None,
        }
    }
}

/// Access bits: read, write, mknod. A small bit set rather than three bools
/// so that set algebra (union, intersection, subset) stays one operation.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Access(u8);

impl Access {
    /// No access.
    pub const NONE: Access = Access(0);
    /// `r`.
    pub const READ: Access = Access(1);
    /// `w`.
    pub const WRITE: Access = Access(2);
    /// `m`.
    pub const MKNOD: Access = Access(4);
    /// `rwm`.
    pub const ALL: Access = Access(7);

    /// The raw bits (r=1, w=2, m=4).
    pub fn bits(self) -> u8 {
        self.0
    }

    /// From raw bits; bits above `rwm` are dropped.
    pub fn from_bits(bits: u8) -> Self {
        Access(bits & 7)
    }

    /// Whether no bit is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether every bit of `other` is set here.
    pub fn contains(self, other: Access) -> bool {
        self.0 & other.0 == other.0
    }

    /// Bits set in either.
    pub fn union(self, other: Access) -> Access {
        Access(self.0 | other.0)
    }

    /// Bits set in both.
    pub fn intersection(self, other: Access) -> Access {
        Access(self.0 & other.0)
    }

    /// Bits set here but not in `other`.
    pub fn difference(self, other: Access) -> Access {
        Access(self.0 & !other.0)
    }

    /// Parse `rwm` letters in any order; `None` on any other character or a
    /// repeated letter. The empty string is [`Access::NONE`].
    pub fn parse(s: &str) -> Option<Access> {
        let mut a = 0u8;
        for c in s.chars() {
            let bit = match c {
                'r' => 1,
                'w' => 2,
                'm' => 4,
                _ => return None,
            };
            if a & bit != 0 {
                return None;
            }
            a |= bit;
        }
        Some(Access(a))
    }
}

impl std::fmt::Display for Access {
    /// Canonical order `rwm`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (bit, c) in [(1, 'r'), (2, 'w'), (4, 'm')] {
            if self.0 & bit != 0 {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// One device rule: allow or deny `access` to devices of `kind` with
/// `major:minor` (`None` is the wildcard `*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DeviceRule {
    /// Whether the rule allows (true) or denies (false).
    pub allow: bool,
    /// Device type.
    pub kind: DeviceType,
    /// Major number, `None` for every major.
    pub major: Option<u32>,
    /// Minor number, `None` for every minor.
    pub minor: Option<u32>,
    /// Access bits.
    pub access: Access,
}

impl DeviceRule {
    /// An allow rule for one character device.
    pub fn allow_char(major: u32, minor: u32, access: Access) -> Self {
        Self {
            allow: true,
            kind: DeviceType::Char,
            major: Some(major),
            minor: Some(minor),
            access,
        }
    }

    /// Whether this rule's (type, major, minor) pattern matches a concrete
    /// device of type `kind` (never [`DeviceType::All`]).
    pub fn matches(&self, kind: DeviceType, major: u32, minor: u32) -> bool {
        (self.kind == DeviceType::All || self.kind == kind)
            && self.major.is_none_or(|m| m == major)
            && self.minor.is_none_or(|m| m == minor)
    }
}

impl std::fmt::Display for DeviceRule {
    /// The rule as a cgroup v1 write spelled with its file:
    /// `allow c 1:3 rwm`, `deny a *:* rwm`, `allow b 8:* m`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let num = |n: Option<u32>| n.map_or_else(|| "*".to_string(), |n| n.to_string());
        write!(
            f,
            "{} {} {}:{} {}",
            if self.allow { "allow" } else { "deny" },
            self.kind.letter(),
            num(self.major),
            num(self.minor),
            self.access
        )
    }
}

impl std::str::FromStr for DeviceRule {
    type Err = crate::devices::v1::LineError;

    /// Parse the [`Display`](std::fmt::Display) form (`deny a` alone is
    /// accepted for `deny a *:* rwm`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        crate::devices::v1::lines::parse_write(s)
    }
}
