//! An exact model of the kernel's cgroup v1 devices controller
//! (`security/device_cgroup.c`) for one cgroup.
//!
//! The kernel keeps a *default policy* ("behavior": allow or deny) and an
//! ordered *exception list* of `(type, major, minor, access)` entries whose
//! meaning depends on the default: denies in allow mode, allows in deny mode.
//! Every fact below is what the kernel does, not what a reader might expect:
//!
//! * Writing any line that starts with `a` to `devices.allow` or
//!   `devices.deny` resets: the default becomes allow or deny and the
//!   exception list is emptied. Whatever follows the `a` is ignored, so
//!   `a 1:3 r` is as total as `a *:* rwm`.
//! * Any other write names one exception *key* (type, major, minor, with `*`
//!   as its own value). If the write goes "with" the default (allow in allow
//!   mode, deny in deny mode) it clears the written access bits from the entry
//!   with exactly that key and deletes the entry once no bit is left; keys are
//!   compared literally, so `deny c 1:3 rwm` does nothing to `c 1:* rwm` (v1
//!   cannot punch a hole in a wildcard). A write "against" the default ORs the
//!   bits into the entry with that key, appending a new entry at the end of
//!   the list if there is none.
//! * Access check, deny mode: a request (a set of bits: an `O_RDWR` open asks
//!   for `rw` at once) is allowed only if **one single** exception matching
//!   the device holds every requested bit. `c 1:3 r` plus `c 1:* w` allows
//!   reading and writing `1:3` separately but not opening it `O_RDWR`.
//! * Access check, allow mode: a request is refused if any exception matching
//!   the device shares any bit with it (bits are independent here).
//! * `devices.list` prints the exception list in list order in deny mode; in
//!   allow mode it prints only `a *:* rwm`, hiding every deny exception.
//! * The kernel rejects a write with no access letters (`EINVAL`; the cgroup
//!   core strips trailing whitespace, so `c 1:3 ` is `c 1:3`).
//!
//! One simplification: in a child cgroup, `allow a` copies the *parent's*
//! exception list (denies, since the parent must be in allow mode). The
//! emulator models a cgroup whose parent has none, which holds for the root
//! cgroup and for the hierarchies container runtimes build; a parent's denies
//! would stay in force anyway, because they are the parent's.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::devices::{Access, DeviceRule, DeviceType};

/// The default policy of a v1 device cgroup (the kernel's "behavior").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DefaultPolicy {
    /// Everything is allowed except the exceptions (a deny list).
    Allow,
    /// Nothing is allowed except the exceptions (an allow list).
    Deny,
}

/// The key of an exception: a device type (`c` or `b`, never `a`) and a major
/// and minor number where `None` is the wildcard `*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Pattern {
    /// [`DeviceType::Char`] or [`DeviceType::Block`].
    pub kind: DeviceType,
    /// Major number, `None` for `*`.
    pub major: Option<u32>,
    /// Minor number, `None` for `*`.
    pub minor: Option<u32>,
}

impl Pattern {
    /// A pattern; `u32::MAX` is normalised to the wildcard because that is how
    /// the kernel stores `*` (`~0`).
    pub fn new(kind: DeviceType, major: Option<u32>, minor: Option<u32>) -> Self {
        Self {
            kind,
            major: major.filter(|&m| m != u32::MAX),
            minor: minor.filter(|&m| m != u32::MAX),
        }
    }

    /// Whether every device this pattern names is also named by `self`
    /// (`c 1:*` contains `c 1:3`; a pattern contains itself).
    pub fn contains(&self, other: &Pattern) -> bool {
        self.kind == other.kind
            && (self.major.is_none() || self.major == other.major)
            && (self.minor.is_none() || self.minor == other.minor)
    }

    /// Whether the kernel considers this exception to match a request for
    /// device `(kind, major, minor)`. A request of type [`DeviceType::All`]
    /// matches every exception type, as in the kernel's bit test.
    pub fn matches(&self, kind: DeviceType, major: u32, minor: u32) -> bool {
        let type_ok = match kind {
            DeviceType::All => true,
            k => k == self.kind,
        };
        type_ok && self.major.is_none_or(|m| m == major) && self.minor.is_none_or(|m| m == minor)
    }

    /// The write that names this pattern with `access`.
    pub fn rule(&self, allow: bool, access: Access) -> DeviceRule {
        DeviceRule {
            allow,
            kind: self.kind,
            major: self.major,
            minor: self.minor,
            access,
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let num = |n: Option<u32>| n.map_or_else(|| "*".to_string(), |n| n.to_string());
        write!(
            f,
            "{} {}:{}",
            self.kind.letter(),
            num(self.major),
            num(self.minor)
        )
    }
}

/// One entry of the exception list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Exception {
    /// Which devices.
    pub pattern: Pattern,
    /// Which access bits; never empty in a kernel list.
    pub access: Access,
}

impl fmt::Display for Exception {
    /// The `devices.list` line, without the newline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.pattern, self.access)
    }
}

/// A write the kernel would refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmulatorError {
    /// The kernel answers `EINVAL` to a `c`/`b` write without access letters.
    #[error("rule `{0}` has no access letters; the kernel refuses it (EINVAL)")]
    EmptyAccess(String),
}

/// The state of one v1 device cgroup, and the kernel's rules for changing
/// and checking it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Emulator {
    default: DefaultPolicy,
    exceptions: Vec<Exception>,
    hidden_denies: bool,
}

impl Emulator {
    /// Deny mode with no exceptions: what `a` to `devices.deny` leaves.
    pub fn deny_all() -> Self {
        Self {
            default: DefaultPolicy::Deny,
            exceptions: Vec::new(),
            hidden_denies: false,
        }
    }

    /// Allow mode with no exceptions: what `a` to `devices.allow` leaves (and
    /// what a new cgroup under the root starts with).
    pub fn allow_all() -> Self {
        Self {
            default: DefaultPolicy::Allow,
            ..Self::deny_all()
        }
    }

    /// The state a rule list describes, with the meaning runc and the OCI
    /// runtime spec give it: start from deny-all and apply each rule in order
    /// as a write (so a leading `allow a` makes it a deny list).
    pub fn from_rules(rules: &[DeviceRule]) -> Result<Self, EmulatorError> {
        let mut emu = Self::deny_all();
        for rule in rules {
            emu.apply(rule)?;
        }
        Ok(emu)
    }

    /// A state from its parts, with exceptions in list order (duplicates of a
    /// key are merged the way the kernel merges writes; entries without
    /// access are dropped, as the kernel never keeps one).
    pub fn with_exceptions(default: DefaultPolicy, exceptions: &[Exception]) -> Self {
        let mut emu = match default {
            DefaultPolicy::Allow => Self::allow_all(),
            DefaultPolicy::Deny => Self::deny_all(),
        };
        for e in exceptions.iter().filter(|e| !e.access.is_empty()) {
            emu.add(e.pattern, e.access);
        }
        emu
    }

    /// The default policy.
    pub fn default_policy(&self) -> DefaultPolicy {
        self.default
    }

    /// The exception list in the kernel's order.
    pub fn exceptions(&self) -> &[Exception] {
        &self.exceptions
    }

    /// Whether deny exceptions the emulator does not know of may be in force:
    /// true for an allow-mode state read from `devices.list`, which prints
    /// `a *:* rwm` whatever the denies are. A transition from such a state
    /// resets with `a` to `devices.allow` (a widening write) instead of
    /// trusting the empty list.
    pub fn hidden_denies_possible(&self) -> bool {
        self.hidden_denies
    }

    /// Mark the allow-mode denies as unknown (see
    /// [`Emulator::hidden_denies_possible`]). No effect in deny mode, whose
    /// list is always fully visible.
    pub fn set_hidden_denies_possible(&mut self, hidden: bool) {
        self.hidden_denies = hidden && self.default == DefaultPolicy::Allow;
    }

    /// Apply one write exactly as the kernel does: `rule.allow` selects
    /// `devices.allow` (true) or `devices.deny` (false).
    pub fn apply(&mut self, rule: &DeviceRule) -> Result<(), EmulatorError> {
        if rule.kind == DeviceType::All {
            *self = if rule.allow {
                Self::allow_all()
            } else {
                Self::deny_all()
            };
            return Ok(());
        }
        if rule.access.is_empty() {
            return Err(EmulatorError::EmptyAccess(format!(
                "{} {}:{}",
                rule.kind.letter(),
                rule.major.map_or_else(|| "*".into(), |m| m.to_string()),
                rule.minor.map_or_else(|| "*".into(), |m| m.to_string()),
            )));
        }
        let pattern = Pattern::new(rule.kind, rule.major, rule.minor);
        let with_default = rule.allow == (self.default == DefaultPolicy::Allow);
        if with_default {
            self.remove(pattern, rule.access);
        } else {
            self.add(pattern, rule.access);
        }
        Ok(())
    }

    fn add(&mut self, pattern: Pattern, access: Access) {
        match self.exceptions.iter_mut().find(|e| e.pattern == pattern) {
            Some(e) => e.access = e.access.union(access),
            None => self.exceptions.push(Exception { pattern, access }),
        }
    }

    fn remove(&mut self, pattern: Pattern, access: Access) {
        for e in self.exceptions.iter_mut().filter(|e| e.pattern == pattern) {
            e.access = e.access.difference(access);
        }
        self.exceptions.retain(|e| !e.access.is_empty());
    }

    /// Whether a task in this cgroup may access device `(kind, major, minor)`
    /// with every bit of `access` at once (an `O_RDWR` open is `rw`; mknod is
    /// `m`). Hidden denies (see [`Emulator::hidden_denies_possible`]) are not
    /// known and so not counted.
    pub fn allows(&self, kind: DeviceType, major: u32, minor: u32, access: Access) -> bool {
        let mut matching = self
            .exceptions
            .iter()
            .filter(|e| e.pattern.matches(kind, major, minor));
        match self.default {
            DefaultPolicy::Allow => !matching.any(|e| !e.access.intersection(access).is_empty()),
            DefaultPolicy::Deny => matching.any(|e| e.access.contains(access)),
        }
    }

    /// What `devices.list` shows for this state, newline-terminated lines.
    pub fn devices_list(&self) -> String {
        match self.default {
            DefaultPolicy::Allow => "a *:* rwm\n".to_string(),
            DefaultPolicy::Deny => self.exceptions.iter().map(|e| format!("{e}\n")).collect(),
        }
    }

    /// The exceptions that carry meaning, as a map from key to bits: an
    /// exception (or, in allow mode, a bit of one) that a broader exception
    /// already implies is dropped. Two states with the same default allow
    /// exactly the same requests if and only if these maps are equal (given
    /// that some major and minor numbers appear in no rule, which is true of
    /// any real list: wildcards reach numbers no finite list names).
    pub fn essential(&self) -> BTreeMap<Pattern, Access> {
        essential(self.default, &self.exceptions)
    }

    /// Whether both states allow exactly the same requests on every device.
    /// States in different modes can: allow mode with the single deny
    /// `b *:* rwm` allows what deny mode with `c *:* rwm` allows.
    pub fn same_permissions(&self, other: &Emulator) -> bool {
        let other = match (self.default, other.default) {
            (a, b) if a == b => Some(other.clone()),
            (DefaultPolicy::Allow, _) => other.as_allow_all(),
            (DefaultPolicy::Deny, _) => other.as_deny_list(),
        };
        other.is_some_and(|o| self.essential() == o.essential())
    }

    /// The same permissions as a deny-mode state (an allow list), if they can
    /// be written as one. An allow-mode state can only when all its essential
    /// denies are type-wide (`c *:* w`): a deny of anything narrower leaves
    /// allowed a set no finite allow list covers (v1 has no "all but").
    pub fn as_deny_list(&self) -> Option<Emulator> {
        if self.default == DefaultPolicy::Deny {
            return Some(self.clone());
        }
        self.type_wide_bits().map(|denied| {
            let allowed = denied.map(|(p, d)| Exception {
                pattern: p,
                access: Access::ALL.difference(d),
            });
            let allowed: Vec<Exception> = allowed.collect();
            Emulator::with_exceptions(DefaultPolicy::Deny, &allowed)
        })
    }

    /// The same permissions as an allow-mode state (a deny list), if they can
    /// be written as one: for a deny-mode state, only when its essential
    /// exceptions are all type-wide (`c *:* rwm`, `b *:* m`).
    pub fn as_allow_all(&self) -> Option<Emulator> {
        if self.default == DefaultPolicy::Allow {
            return Some(self.clone());
        }
        self.type_wide_bits().map(|allowed| {
            let denied = allowed.map(|(p, a)| Exception {
                pattern: p,
                access: Access::ALL.difference(a),
            });
            let denied: Vec<Exception> = denied.collect();
            Emulator::with_exceptions(DefaultPolicy::Allow, &denied)
        })
    }

    /// For a state whose essential exceptions are all `c *:*` / `b *:*`, the
    /// bits of each of the two (empty where absent); else `None`.
    fn type_wide_bits(&self) -> Option<impl Iterator<Item = (Pattern, Access)>> {
        let essential = self.essential();
        if essential
            .keys()
            .any(|p| p.major.is_some() || p.minor.is_some())
        {
            return None;
        }
        let bits = [DeviceType::Char, DeviceType::Block].map(|kind| {
            let p = Pattern::new(kind, None, None);
            (p, essential.get(&p).copied().unwrap_or_default())
        });
        Some(bits.into_iter())
    }
}

/// See [`Emulator::essential`].
pub(crate) fn essential(
    default: DefaultPolicy,
    exceptions: &[Exception],
) -> BTreeMap<Pattern, Access> {
    let mut out = BTreeMap::new();
    for e in exceptions {
        let broader = exceptions
            .iter()
            .filter(|f| f.pattern != e.pattern && f.pattern.contains(&e.pattern));
        let kept = match default {
            // A deny-mode entry is implied when one broader entry holds all of
            // its bits (the kernel needs one entry covering the whole request).
            DefaultPolicy::Deny => {
                let mut broader = broader;
                if broader.any(|f| f.access.contains(e.access)) {
                    Access::NONE
                } else {
                    e.access
                }
            }
            // Allow-mode bits are independent: drop each bit a broader deny has.
            DefaultPolicy::Allow => broader.fold(e.access, |acc, f| acc.difference(f.access)),
        };
        if !kept.is_empty() {
            let slot = out.entry(e.pattern).or_insert(Access::NONE);
            *slot = slot.union(kept);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(s: &str) -> DeviceRule {
        crate::devices::v1::lines::parse_write(s).unwrap()
    }

    fn emu(writes: &[&str]) -> Emulator {
        let mut e = Emulator::allow_all();
        for w in writes {
            e.apply(&rule(w)).unwrap();
        }
        e
    }

    const R: Access = Access::READ;
    const W: Access = Access::WRITE;
    const C: DeviceType = DeviceType::Char;

    #[test]
    fn allow_mode_lists_only_a_wildcard_and_denies_by_any_shared_bit() {
        let e = emu(&["deny c 1:3 r"]);
        assert_eq!(e.devices_list(), "a *:* rwm\n");
        assert!(!e.allows(C, 1, 3, R));
        assert!(!e.allows(C, 1, 3, R.union(W)));
        assert!(e.allows(C, 1, 3, W));
        assert!(e.allows(C, 1, 4, R));
        assert!(e.allows(DeviceType::Block, 1, 3, R));
    }

    #[test]
    fn allow_in_allow_mode_removes_bits_of_the_exact_key_only() {
        let mut e = emu(&["deny c 1:* rw", "deny c 1:3 rw", "allow c 1:3 r"]);
        assert_eq!(e.exceptions().len(), 2);
        assert!(!e.allows(C, 1, 3, R), "still denied through c 1:*");
        e.apply(&rule("allow c 1:* rw")).unwrap();
        assert!(e.allows(C, 1, 3, R));
        assert!(!e.allows(C, 1, 3, W));
    }

    #[test]
    fn deny_a_resets_to_an_empty_allow_list() {
        let e = emu(&["deny a", "allow c 1:3 rw", "allow c 1:* m", "allow b 8:* m"]);
        assert_eq!(e.devices_list(), "c 1:3 rw\nc 1:* m\nb 8:* m\n");
        let again = emu(&["deny c 1:3 r", "deny a *:* rwm"]);
        assert_eq!(again.devices_list(), "");
        assert_eq!(again.default_policy(), DefaultPolicy::Deny);
    }

    #[test]
    fn a_with_any_numbers_is_still_a_reset() {
        let e = emu(&["deny a", "allow c 1:3 rw", "allow a 1:3 r"]);
        assert_eq!(e, Emulator::allow_all());
    }

    #[test]
    fn deny_mode_needs_one_exception_covering_the_whole_request() {
        let e = emu(&["deny a", "allow c 1:3 r", "allow c 1:* w"]);
        assert!(e.allows(C, 1, 3, R));
        assert!(e.allows(C, 1, 3, W));
        assert!(!e.allows(C, 1, 3, R.union(W)));
        assert!(e.allows(C, 1, 7, W));
        assert!(!e.allows(C, 1, 7, R));
    }

    #[test]
    fn deny_of_partial_access_removes_bits_and_merges_on_allow() {
        let mut e = emu(&["deny a", "allow c 1:3 r", "allow c 1:3 wm"]);
        assert_eq!(e.devices_list(), "c 1:3 rwm\n");
        e.apply(&rule("deny c 1:3 rm")).unwrap();
        assert_eq!(e.devices_list(), "c 1:3 w\n");
        e.apply(&rule("deny c 1:3 w")).unwrap();
        assert_eq!(e.devices_list(), "");
    }

    #[test]
    fn deny_cannot_punch_a_hole_in_a_wildcard() {
        let e = emu(&["deny a", "allow c 1:* rwm", "deny c 1:3 rwm"]);
        assert_eq!(e.devices_list(), "c 1:* rwm\n");
        assert!(e.allows(C, 1, 3, Access::ALL));
    }

    #[test]
    fn empty_access_is_refused_like_the_kernel() {
        let mut e = Emulator::deny_all();
        let r = DeviceRule {
            access: Access::NONE,
            ..DeviceRule::allow_char(1, 3, R)
        };
        assert!(matches!(e.apply(&r), Err(EmulatorError::EmptyAccess(_))));
        assert_eq!(e, Emulator::deny_all());
    }

    #[test]
    fn from_rules_starts_from_deny_all() {
        let e = Emulator::from_rules(&[DeviceRule::allow_char(1, 3, Access::ALL)]).unwrap();
        assert_eq!(e.devices_list(), "c 1:3 rwm\n");
        let allow = Emulator::from_rules(&[rule("allow a")]).unwrap();
        assert_eq!(allow.devices_list(), "a *:* rwm\n");
    }

    #[test]
    fn essential_drops_implied_exceptions() {
        let a = emu(&[
            "deny a",
            "allow c 1:* rwm",
            "allow c 1:3 r",
            "allow c *:* m",
        ]);
        let b = emu(&[
            "deny a",
            "allow c *:* m",
            "allow c 1:* rwm",
            "allow c 1:5 m",
        ]);
        assert!(a.same_permissions(&b));
        assert_eq!(a.essential().len(), 2);
        let c = emu(&["deny a", "allow c 1:* r", "allow c 1:3 rw"]);
        assert_eq!(c.essential().len(), 2, "rw on 1:3 needs its own entry");
        let d = emu(&["deny c 1:* r", "deny c 1:3 rw"]);
        assert_eq!(
            d.essential().get(&Pattern::new(C, Some(1), Some(3))),
            Some(&W)
        );
    }

    #[test]
    fn type_wide_states_have_a_twin_in_the_other_mode() {
        let chars = emu(&["deny a", "allow c *:* rwm"]);
        let no_blocks = emu(&["deny b *:* rwm"]);
        assert!(chars.same_permissions(&no_blocks));
        assert!(no_blocks.same_permissions(&chars));
        assert_eq!(chars.as_allow_all().unwrap().devices_list(), "a *:* rwm\n");
        assert_eq!(
            no_blocks.as_deny_list().unwrap().devices_list(),
            "c *:* rwm\n"
        );
        let everything = emu(&["deny a", "allow c *:* rwm", "allow b *:* rwm"]);
        assert!(everything.same_permissions(&Emulator::allow_all()));
        let docker_like = emu(&["deny a", "allow c *:* m", "allow c 1:3 rwm"]);
        assert!(docker_like.as_allow_all().is_none());
        assert!(emu(&["deny c 1:3 r"]).as_deny_list().is_none());
        assert!(!docker_like.same_permissions(&Emulator::allow_all()));
    }

    #[test]
    fn u32_max_is_the_kernel_wildcard() {
        let p = Pattern::new(C, Some(u32::MAX), Some(3));
        assert_eq!(p.major, None);
        assert_eq!(p.to_string(), "c *:3");
    }
}
