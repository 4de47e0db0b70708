//! The shortest safe sequence of v1 writes from the rules a cgroup has to the
//! rules it should have.
//!
//! # The law
//!
//! At every step the set of allowed requests contains the intersection of
//! the sets before and after the update: a device the workload may use both
//! before and after never disappears in between, not even for one write.
//!
//! # How
//!
//! A v1 write changes one exception key in one direction, or (`a`) resets the
//! whole cgroup. So the writes are computed key by key, bit by bit, and
//! ordered so that everything the target *adds* is written first and
//! everything it *drops* afterwards:
//!
//! * deny list to deny list: `allow` each missing bit of each target
//!   exception, then `deny` each bit the target no longer grants. Every state
//!   in between contains the whole target. No `a` is ever written.
//! * deny list to deny list, or allow-all to allow-all, changes are counted
//!   *semantically*: an exception the target implies through a broader one
//!   (`c 1:3 m` under `c *:* m`) is neither added nor removed, because it
//!   changes no permission. Each write that remains is needed, so the count
//!   is minimal (see the property test).
//! * allow-all (with denies) to allow-all: remove the denies the target drops
//!   (`allow` writes), then add the new ones (`deny` writes); or, when it is
//!   shorter, `a` to `devices.allow` and the target's denies. Both keep the
//!   law. When the current denies are unknown (the state was read from
//!   `devices.list`, which prints only `a *:* rwm` in allow mode) the reset is
//!   the only way to get rid of them, and it never narrows.
//! * deny list to allow-all: `a` to `devices.allow` (which only widens), then
//!   the target's denies.
//! * Modes are not permissions: allow-all with `b *:* rwm` denied allows
//!   exactly what the allow list `c *:* rwm` allows. A target whose essential
//!   rules are all type-wide has a form in both modes, and every way that
//!   keeps the law is considered (key-by-key in the current mode, or a reset
//!   with `a` to `devices.allow`); the shortest wins, ties going to the one
//!   that does not change mode.
//! * allow-all to deny list: the one case v1 cannot do gently. The only write
//!   that leaves allow mode is `a` to `devices.deny`, which drops every
//!   exception at once; no `deny` of a key can take a bit away from a
//!   wildcard. The transition writes `a` to `devices.deny` and then the
//!   allow list, and is marked **narrowing** (with the reason and an example
//!   request that disappears) unless nothing is allowed both before and after,
//!   in which case the law holds anyway. Callers must freeze the cgroup
//!   around a narrowing transition, or not apply it.
//!
//! # Compared with the runtimes
//!
//! * runc (`Transition` in opencontainers/cgroups `devices_emulator.go`)
//!   diffs literal keys and writes the *drops before the gains*: replacing
//!   `c 1:* rwm` by `c 1:3 rwm` + `c 1:5 rwm`, or moving a bit from one key
//!   to another, takes away for a moment what both lists allow. Here gains
//!   always go first. runc also starts with an `a` rule whenever the source
//!   is allow-all or the default flips, so an allow-all to allow-all update
//!   rewrites every deny, and an allow-all to deny-list update narrows
//!   without telling its caller; here the former is minimal when the denies
//!   are known and the latter is reported as narrowing so that
//!   `update_devices` freezes or aborts. runc rewrites implied exceptions
//!   too; here they cost no write. (Where runc refuses a rule because v1
//!   cannot punch a hole in a wildcard, the emulator does what the kernel
//!   does: nothing.)
//! * youki and crun write `a` to `devices.deny` and then every rule on every
//!   update: every update narrows (the seed's jitter). Here an update that
//!   only adds or removes a device is a single write, and only the allow-all
//!   to deny-list case ever writes `a` to `devices.deny`.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::devices::v1::emulator::{DefaultPolicy, Emulator, EmulatorError, Exception, Pattern};
use crate::devices::{Access, DeviceRule, DeviceType};

/// A planned sequence of writes (each [`DeviceRule`] goes to `devices.allow`
/// when `allow` is true, else to `devices.deny`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Transition {
    writes: Vec<DeviceRule>,
    narrowing: bool,
    reason: Option<String>,
}

impl Transition {
    /// The writes, in the order they must be made.
    pub fn writes(&self) -> &[DeviceRule] {
        &self.writes
    }

    /// Whether some step allows less than both the current and the target
    /// rules (only when leaving allow-all mode for an allow list). Such a
    /// transition must run with the cgroup frozen, or not at all.
    pub fn narrowing(&self) -> bool {
        self.narrowing
    }

    /// Why the transition narrows, when it does.
    pub fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }

    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// The states the cgroup passes through, starting with `start` and ending
    /// with the state after the last write (`writes().len() + 1` states).
    pub fn states(&self, start: &Emulator) -> Result<Vec<Emulator>, EmulatorError> {
        let mut out = Vec::with_capacity(self.writes.len() + 1);
        let mut cur = start.clone();
        out.push(cur.clone());
        for w in &self.writes {
            cur.apply(w)?;
            out.push(cur.clone());
        }
        Ok(out)
    }
}

/// The writes that take a cgroup from `current` to the permissions of
/// `target`, never narrower than both unless v1 leaves no other way (then
/// [`Transition::narrowing`] is true). See the module documentation.
pub fn transition(current: &Emulator, target: &Emulator) -> Transition {
    let gentle = |writes| Transition {
        writes,
        narrowing: false,
        reason: None,
    };
    // The target in each mode it can be written in (a type-wide target such
    // as `c *:* rwm` has both forms: allow-all with `b *:* rwm` denied).
    let as_deny_list = target.as_deny_list();
    let as_allow_all = target.as_allow_all();
    // Every way that never writes `a` to devices.deny; each keeps the law.
    // Ties go to the first: key-by-key diffs before resets.
    let mut ways = Vec::new();
    match current.default_policy() {
        DefaultPolicy::Deny => {
            if let Some(t) = &as_deny_list {
                ways.push(deny_list_writes(current, t));
            }
            if let Some(t) = &as_allow_all {
                ways.push(reset_to_allow(t));
            }
        }
        DefaultPolicy::Allow => {
            if let Some(t) = &as_allow_all {
                // Unknown denies rule out the key-by-key way (one might stay
                // behind), unless the target denies everything anyway.
                if !current.hidden_denies_possible() || t.same_permissions(&Emulator::deny_all()) {
                    ways.push(allow_all_writes(current, t));
                }
                ways.push(reset_to_allow(t));
            }
        }
    }
    if let Some(shortest) = ways.into_iter().min_by_key(Vec::len) {
        return gentle(shortest);
    }
    // Left: allow-all now, and a target only an allow list can express.
    let Some(t) = as_deny_list else {
        return gentle(Vec::new()); // unreachable: a target has one form
    };
    let allow_list = t.essential();
    let mut writes = vec![DeviceRule {
        allow: false,
        kind: DeviceType::All,
        major: None,
        minor: None,
        access: Access::ALL,
    }];
    writes.extend(in_list_order(&t, &allow_list).map(|(p, a)| p.rule(true, a)));
    match shared_request(current, &allow_list) {
        None => gentle(writes),
        Some((pattern, bit)) => Transition {
            writes,
            narrowing: true,
            reason: Some(format!(
                "leaving allow-all mode for an allow list: cgroup v1 can only leave it by \
                 writing `a` to devices.deny, which drops every access at once (a deny \
                 cannot take a bit away from a wildcard); until the allow list is written \
                 back, requests allowed both before and after are refused (e.g. `{pattern} \
                 {bit}`)"
            )),
        },
    }
}

/// The target's essential exceptions in the target's list order.
fn in_list_order<'a>(
    target: &'a Emulator,
    essential: &'a BTreeMap<Pattern, Access>,
) -> impl Iterator<Item = (Pattern, Access)> + 'a {
    target
        .exceptions()
        .iter()
        .filter_map(|e| essential.get(&e.pattern).map(|&a| (e.pattern, a)))
}

fn keyed(exceptions: &[Exception]) -> BTreeMap<Pattern, Access> {
    let mut m = BTreeMap::new();
    for e in exceptions {
        let slot = m.entry(e.pattern).or_insert(Access::NONE);
        *slot = slot.union(e.access);
    }
    m
}

/// Bits of the target's entries strictly broader than `p` (what `p` may keep
/// without changing any permission).
fn broader_bits<'a>(
    p: &Pattern,
    essential: &'a BTreeMap<Pattern, Access>,
) -> impl Iterator<Item = Access> + 'a {
    let p = *p;
    essential
        .iter()
        .filter(move |(q, _)| **q != p && q.contains(&p))
        .map(|(_, a)| *a)
}

/// Deny list to deny list: gains (allow writes) first, then drops.
fn deny_list_writes(current: &Emulator, target: &Emulator) -> Vec<DeviceRule> {
    let have = keyed(current.exceptions());
    let want = target.essential();
    let literal = keyed(target.exceptions());
    let mut writes = Vec::new();
    for (p, a) in in_list_order(target, &want) {
        let gain = a.difference(have.get(&p).copied().unwrap_or_default());
        if !gain.is_empty() {
            writes.push(p.rule(true, gain));
        }
    }
    for e in current.exceptions() {
        let keep = match want.get(&e.pattern) {
            Some(&a) => a,
            // A current entry that one broader target entry covers grants
            // nothing extra: leave it.
            None if broader_bits(&e.pattern, &want).any(|b| b.contains(e.access)) => e.access,
            // Otherwise keep only what the target literally lists for this
            // key (implied by a broader entry, so harmless), drop the rest.
            None => literal.get(&e.pattern).copied().unwrap_or_default(),
        };
        let drop = e.access.difference(keep);
        if !drop.is_empty() {
            writes.push(e.pattern.rule(false, drop));
        }
    }
    writes
}

/// Allow-all to allow-all with known denies: widen first (allow writes
/// remove denies the target does not have), then narrow to the target.
fn allow_all_writes(current: &Emulator, target: &Emulator) -> Vec<DeviceRule> {
    let have = keyed(current.exceptions());
    let want = target.essential();
    let mut writes = Vec::new();
    for e in current.exceptions() {
        let may_keep = broader_bits(&e.pattern, &want).fold(
            want.get(&e.pattern).copied().unwrap_or_default(),
            Access::union,
        );
        let lift = e.access.difference(may_keep);
        if !lift.is_empty() {
            writes.push(e.pattern.rule(true, lift));
        }
    }
    for (p, a) in in_list_order(target, &want) {
        let add = a.difference(have.get(&p).copied().unwrap_or_default());
        if !add.is_empty() {
            writes.push(p.rule(false, add));
        }
    }
    writes
}

/// `a` to `devices.allow`, then the target's denies.
fn reset_to_allow(target: &Emulator) -> Vec<DeviceRule> {
    let want = target.essential();
    let mut writes = vec![DeviceRule {
        allow: true,
        kind: DeviceType::All,
        major: None,
        minor: None,
        access: Access::ALL,
    }];
    writes.extend(in_list_order(target, &want).map(|(p, a)| p.rule(false, a)));
    writes
}

/// A request allowed both by the allow-mode `current` and by the deny-mode
/// target with essential entries `allow_list`, if there is one: one access
/// bit of a target entry that no current deny broad enough to cover the whole
/// entry takes away (a device with numbers no deny names then has it).
fn shared_request(
    current: &Emulator,
    allow_list: &BTreeMap<Pattern, Access>,
) -> Option<(Pattern, Access)> {
    allow_list.iter().find_map(|(p, a)| {
        let denied = current
            .exceptions()
            .iter()
            .filter(|e| e.pattern.contains(p))
            .fold(Access::NONE, |acc, e| acc.union(e.access));
        let left = a.difference(denied);
        [Access::READ, Access::WRITE, Access::MKNOD]
            .into_iter()
            .find(|b| left.contains(*b))
            .map(|b| (*p, b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::v1::lines::{format_write, parse_write};
    use proptest::prelude::*;

    fn writes(list: &[&str]) -> Vec<DeviceRule> {
        list.iter().map(|w| parse_write(w).unwrap()).collect()
    }

    fn state(list: &[&str]) -> Emulator {
        let mut e = Emulator::allow_all();
        for w in writes(list) {
            e.apply(&w).unwrap();
        }
        e
    }

    fn spelled(t: &Transition) -> Vec<String> {
        t.writes().iter().map(format_write).collect()
    }

    // ---- a finite universe in which every wildcard reaches a number that no
    // rule names (9), so permission equality over it is equality everywhere.

    const MAJORS: [u32; 3] = [1, 2, 9];
    const MINORS: [u32; 3] = [1, 2, 9];

    fn universe() -> impl Iterator<Item = (DeviceType, u32, u32, Access)> {
        [DeviceType::Char, DeviceType::Block]
            .into_iter()
            .flat_map(|k| {
                MAJORS.into_iter().flat_map(move |ma| {
                    MINORS
                        .into_iter()
                        .flat_map(move |mi| (1..=7).map(move |b| (k, ma, mi, Access::from_bits(b))))
                })
            })
    }

    /// Whether `step` allows every request both `a` and `b` allow.
    fn keeps_law(a: &Emulator, b: &Emulator, step: &Emulator) -> bool {
        universe().all(|(k, ma, mi, acc)| {
            !(a.allows(k, ma, mi, acc) && b.allows(k, ma, mi, acc)) || step.allows(k, ma, mi, acc)
        })
    }

    fn same_over_universe(a: &Emulator, b: &Emulator) -> bool {
        universe().all(|(k, ma, mi, acc)| a.allows(k, ma, mi, acc) == b.allows(k, ma, mi, acc))
    }

    fn overlap(a: &Emulator, b: &Emulator) -> bool {
        universe().any(|(k, ma, mi, acc)| a.allows(k, ma, mi, acc) && b.allows(k, ma, mi, acc))
    }

    /// runc's algorithm, as its source describes it, to compare against:
    /// a leading `a` (target default) when the source is allow-all or the
    /// default flips; then, over literal keys, removals of dropped bits, then
    /// additions of gained bits.
    fn runc_like(current: &Emulator, target: &Emulator) -> Vec<DeviceRule> {
        let target_allow = target.default_policy() == DefaultPolicy::Allow;
        let mut out = Vec::new();
        let mut old = keyed(current.exceptions());
        if current.default_policy() == DefaultPolicy::Allow
            || current.default_policy() != target.default_policy()
        {
            out.push(DeviceRule {
                allow: target_allow,
                kind: DeviceType::All,
                major: None,
                minor: None,
                access: Access::ALL,
            });
            old.clear();
        }
        let new = keyed(target.exceptions());
        for (p, a) in &old {
            let dropped = a.difference(new.get(p).copied().unwrap_or_default());
            if !dropped.is_empty() {
                out.push(p.rule(target_allow, dropped));
            }
        }
        for (p, a) in &new {
            let gained = a.difference(old.get(p).copied().unwrap_or_default());
            if !gained.is_empty() {
                out.push(p.rule(!target_allow, gained));
            }
        }
        out
    }

    fn law_broken_by(current: &Emulator, target: &Emulator, ws: &[DeviceRule]) -> bool {
        let mut s = current.clone();
        ws.iter().any(|w| {
            s.apply(w).unwrap();
            !keeps_law(current, target, &s)
        })
    }

    #[test]
    fn adding_one_device_is_one_allow_and_removing_it_one_deny() {
        let base = &[
            "deny a",
            "allow c *:* m",
            "allow b *:* m",
            "allow c 1:3 rwm",
            "allow c 1:9 rwm",
        ];
        let a = state(base);
        let mut with_fuse = base.to_vec();
        with_fuse.push("allow c 10:229 rwm");
        let b = state(&with_fuse);
        let up = transition(&a, &b);
        assert_eq!(spelled(&up), ["allow c 10:229 rwm"]);
        assert!(!up.narrowing());
        let down = transition(&b, &a);
        assert_eq!(spelled(&down), ["deny c 10:229 rwm"]);
        assert!(transition(&a, &a).is_empty());
    }

    #[test]
    fn splitting_a_wildcard_adds_before_it_removes_unlike_runc() {
        let a = state(&["deny a", "allow c 1:* rwm"]);
        let b = state(&["deny a", "allow c 1:1 rwm", "allow c 1:2 rwm"]);
        let t = transition(&a, &b);
        assert_eq!(
            spelled(&t),
            ["allow c 1:1 rwm", "allow c 1:2 rwm", "deny c 1:* rwm"]
        );
        assert!(!law_broken_by(&a, &b, t.writes()));
        let runc = runc_like(&a, &b);
        assert_eq!(runc.len(), t.writes().len());
        assert!(law_broken_by(&a, &b, &runc), "runc drops c 1:* first");
    }

    #[test]
    fn partial_access_changes_are_bit_precise() {
        let a = state(&["deny a", "allow c 1:3 rw", "allow c 1:5 r"]);
        let b = state(&["deny a", "allow c 1:3 rm", "allow c 1:5 r"]);
        let t = transition(&a, &b);
        assert_eq!(spelled(&t), ["allow c 1:3 m", "deny c 1:3 w"]);
        let last = t.states(&a).unwrap().pop().unwrap();
        assert_eq!(last.devices_list(), "c 1:3 rm\nc 1:5 r\n");
    }

    #[test]
    fn implied_exceptions_cost_no_write() {
        let a = state(&["deny a", "allow c *:* m", "allow c 1:3 rwm"]);
        let b = state(&[
            "deny a",
            "allow c *:* m",
            "allow c 1:3 rwm",
            "allow c 1:5 m",
        ]);
        assert!(transition(&a, &b).is_empty());
        assert!(transition(&b, &a).is_empty());
        assert!(!runc_like(&a, &b).is_empty());
    }

    #[test]
    fn allow_all_with_known_denies_changes_only_what_differs() {
        let a = state(&["deny c 1:3 rwm", "deny c 1:5 w", "deny b 8:* rwm"]);
        let b = state(&["deny c 1:5 w", "deny b 8:* rwm", "deny c 10:229 rwm"]);
        let t = transition(&a, &b);
        assert_eq!(spelled(&t), ["allow c 1:3 rwm", "deny c 10:229 rwm"]);
        assert!(!t.narrowing());
        assert_eq!(runc_like(&a, &b).len(), 4, "runc resets and rewrites");
    }

    #[test]
    fn allow_all_read_from_devices_list_resets_by_widening() {
        let truth = state(&["deny c 1:3 rwm"]);
        let seen = Emulator::from_devices_list(&truth.devices_list()).unwrap();
        let target = state(&["deny c 1:5 rwm"]);
        let t = transition(&seen, &target);
        assert_eq!(spelled(&t), ["allow a *:* rwm", "deny c 1:5 rwm"]);
        assert!(!t.narrowing());
        let end = t.states(&truth).unwrap().pop().unwrap();
        assert!(end.same_permissions(&target));
    }

    #[test]
    fn leaving_allow_all_narrows_and_says_why() {
        let a = Emulator::allow_all();
        let b = state(&["deny a", "allow c 1:3 rwm"]);
        let t = transition(&a, &b);
        assert!(t.narrowing());
        assert_eq!(spelled(&t), ["deny a *:* rwm", "allow c 1:3 rwm"]);
        assert!(t.reason().unwrap().contains("c 1:3 r"));
        // ...but not when nothing is shared.
        let disjoint = state(&["deny c 1:3 rwm"]);
        let t = transition(&disjoint, &b);
        assert!(!t.narrowing(), "{t:?}");
        assert!(!transition(&a, &Emulator::deny_all()).narrowing());
    }

    #[test]
    fn entering_allow_all_never_narrows() {
        let a = state(&["deny a", "allow c 1:3 rwm"]);
        let b = state(&["allow a", "deny c 1:5 r"]);
        let t = transition(&a, &b);
        assert_eq!(spelled(&t), ["allow a *:* rwm", "deny c 1:5 r"]);
        assert!(!t.narrowing());
    }

    // ---- property test

    fn rule_strategy() -> impl Strategy<Value = DeviceRule> {
        let kind = prop_oneof![
            1 => Just(DeviceType::All),
            4 => Just(DeviceType::Char),
            2 => Just(DeviceType::Block),
        ];
        let num = prop_oneof![Just(None), Just(Some(1u32)), Just(Some(2u32))];
        (any::<bool>(), kind, num.clone(), num, 1u8..=7).prop_map(
            |(allow, kind, major, minor, bits)| DeviceRule {
                allow,
                kind,
                major,
                minor,
                access: Access::from_bits(bits),
            },
        )
    }

    /// Half the states start allow-all, half deny-all, then take up to 8
    /// random writes (which may reset again).
    fn state_strategy() -> impl Strategy<Value = Emulator> {
        (any::<bool>(), prop::collection::vec(rule_strategy(), 0..8)).prop_map(
            |(allow_all, rules)| {
                let mut e = if allow_all {
                    Emulator::allow_all()
                } else {
                    Emulator::deny_all()
                };
                for r in &rules {
                    e.apply(r).unwrap();
                }
                e
            },
        )
    }

    /// Every single write over the universe's patterns (and both resets).
    fn all_single_writes() -> Vec<DeviceRule> {
        let nums = [None, Some(1), Some(2), Some(9)];
        let mut out = vec![];
        for allow in [true, false] {
            out.push(DeviceRule {
                allow,
                kind: DeviceType::All,
                major: None,
                minor: None,
                access: Access::ALL,
            });
            for kind in [DeviceType::Char, DeviceType::Block] {
                for major in nums {
                    for minor in nums {
                        for bits in 1..=7 {
                            out.push(DeviceRule {
                                allow,
                                kind,
                                major,
                                minor,
                                access: Access::from_bits(bits),
                            });
                        }
                    }
                }
            }
        }
        out
    }

    /// `truth` is the cgroup's real state, `seen` what the planner was told
    /// (equal, or read back from devices.list, which hides allow-mode denies).
    fn check(truth: &Emulator, seen: &Emulator, target: &Emulator) -> Result<(), TestCaseError> {
        let exact = truth == seen;
        let t = transition(seen, target);
        let states = t.states(truth).unwrap();
        let deny_all_written = t
            .writes()
            .iter()
            .any(|w| w.kind == DeviceType::All && !w.allow);
        let leaving_allow_all = truth.default_policy() == DefaultPolicy::Allow
            && target.default_policy() == DefaultPolicy::Deny;
        // `a` to devices.deny only where v1 leaves no other way.
        prop_assert!(!deny_all_written || leaving_allow_all, "{t:?}");
        if t.narrowing() {
            // Truly needed: every path out of allow mode passes through the
            // empty allow list, and something is allowed before and after.
            prop_assert!(leaving_allow_all);
            prop_assert!(t.reason().is_some());
            if exact {
                prop_assert!(
                    overlap(truth, target),
                    "narrowing reported needlessly: {t:?}"
                );
            } else {
                // Unknown denies: conservative, judged on what was seen.
                prop_assert!(overlap(seen, target));
            }
        } else {
            for (i, s) in states.iter().enumerate() {
                prop_assert!(
                    keeps_law(truth, target, s),
                    "step {i} of {:?} narrows\nfrom {truth:?}\nto {target:?}",
                    spelled(&t)
                );
            }
        }
        let end = states.last().unwrap();
        prop_assert!(
            same_over_universe(end, target),
            "end {end:?} != target {target:?}"
        );
        prop_assert!(end.same_permissions(target));
        // Never longer than runc's plan for the same change, except by the
        // one write it costs to avoid `a` to devices.deny where runc writes
        // it (two type-wide denies instead).
        let runc = runc_like(seen, target);
        let runc_denies_all = runc.iter().any(|w| w.kind == DeviceType::All && !w.allow);
        let slack = usize::from(runc_denies_all && !deny_all_written);
        prop_assert!(
            t.writes().len() <= runc.len() + slack,
            "{:?} is longer than runc's {:?}",
            spelled(&t),
            runc.iter().map(format_write).collect::<Vec<_>>()
        );
        if !exact {
            return Ok(());
        }
        // Minimal: nothing to do only when nothing changes, and no single
        // write (other than a forbidden `a` to devices.deny) reaches the
        // target when the plan has two.
        prop_assert_eq!(t.is_empty(), same_over_universe(truth, target));
        if t.writes().len() == 2 {
            for w in all_single_writes() {
                if w.kind == DeviceType::All && !w.allow && !deny_all_written {
                    continue;
                }
                let mut s = truth.clone();
                s.apply(&w).unwrap();
                prop_assert!(
                    !same_over_universe(&s, target),
                    "one write {} would do instead of {:?}",
                    format_write(&w),
                    spelled(&t)
                );
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        #[test]
        fn transition_keeps_the_law_reaches_the_target_and_is_short(
            current in state_strategy(),
            target in state_strategy(),
        ) {
            check(&current, &current, &target)?;
        }

        #[test]
        fn transition_from_a_read_back_list_is_safe_too(
            current in state_strategy(),
            target in state_strategy(),
        ) {
            // What apply() sees: devices.list hides allow-mode denies.
            let seen = Emulator::from_devices_list(&current.devices_list()).unwrap();
            check(&current, &seen, &target)?;
        }
    }
}
