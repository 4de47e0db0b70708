//! Pure tests: the builder's programs, run in the interpreter, against the
//! cgroup v1 semantics over every class of request; and real programs from
//! runc and systemd (seed 003) run in the same interpreter.

use super::insn::{Insn, Reg};
use super::interp::{DeviceAccess, Evaluator};
use super::program::{build, build_from_rules};
use crate::devices::v1::{DefaultPolicy, Emulator, Exception, Pattern};
use crate::devices::{Access, DeviceRule, DeviceType};
use proptest::prelude::*;

/// Majors worth probing: 0, the usual char/block majors, wildcard-only
/// values, and numbers at the sign boundary of a 32-bit immediate.
const MAJORS: [u32; 8] = [0, 1, 5, 136, 254, 4095, 1 << 31, u32::MAX];
const MINORS: [u32; 6] = [0, 3, 5, 200, (1 << 20) - 1, u32::MAX];

/// Every request class: both types, the interesting numbers, every
/// non-empty access combination (the kernel never asks with none).
fn all_requests() -> Vec<DeviceAccess> {
    let mut out = Vec::new();
    for kind in [DeviceType::Char, DeviceType::Block] {
        for &major in &MAJORS {
            for &minor in &MINORS {
                for bits in 1..8u8 {
                    out.push(DeviceAccess {
                        kind,
                        major,
                        minor,
                        access: Access::from_bits(bits),
                    });
                }
            }
        }
    }
    out
}

/// The v1 emulator's answer for a state given by its parts.
fn v1_reference(default_allow: bool, exceptions: &[DeviceRule], req: &DeviceAccess) -> bool {
    emulator_state(default_allow, exceptions).allows(req.kind, req.major, req.minor, req.access)
}

fn emulator_state(default_allow: bool, exceptions: &[DeviceRule]) -> Emulator {
    let policy = if default_allow {
        DefaultPolicy::Allow
    } else {
        DefaultPolicy::Deny
    };
    let exceptions: Vec<Exception> = exceptions
        .iter()
        .filter(|e| !e.access.is_empty())
        .map(|e| Exception {
            pattern: Pattern::new(e.kind, e.major, e.minor),
            access: e.access,
        })
        .collect();
    Emulator::with_exceptions(policy, &exceptions)
}

fn assert_builder_matches(default_allow: bool, exceptions: &[DeviceRule]) {
    let prog = build(default_allow, exceptions);
    let ev = Evaluator::new(&prog).expect("builder output must be runnable");
    for req in all_requests() {
        let got = ev.allows(&req).expect("evaluate");
        let want = v1_reference(default_allow, exceptions, &req);
        assert_eq!(
            got, want,
            "default_allow={default_allow} exceptions={exceptions:?} request {req}"
        );
    }
}

/// An ordered OCI rule list: the program built from it answers every
/// request class as the emulator does after applying the same writes.
fn assert_rules_match(rules: &[DeviceRule]) {
    let emu = Emulator::from_rules(rules).expect("valid rules");
    let prog = build_from_rules(rules).expect("valid rules");
    let ev = Evaluator::new(&prog).expect("builder output must be runnable");
    for req in all_requests() {
        assert_eq!(
            ev.allows(&req).expect("evaluate"),
            emu.allows(req.kind, req.major, req.minor, req.access),
            "rules={rules:?} request {req}"
        );
    }
}

fn rule(kind: DeviceType, major: Option<u32>, minor: Option<u32>, access: &str) -> DeviceRule {
    DeviceRule {
        allow: true,
        kind,
        major,
        minor,
        access: Access::parse(access).expect("access"),
    }
}

/// The default device set container runtimes grant (runc's / containerd's
/// list), with containerd's `/dev/console` on top.
fn runtime_default_exceptions() -> Vec<DeviceRule> {
    crate::testing::runtime_defaults_with_console()
}

#[test]
fn deny_all_and_allow_all_programs() {
    assert_builder_matches(false, &[]);
    assert_builder_matches(true, &[]);
    let deny = build(false, &[]);
    let allow = build(true, &[]);
    for req in all_requests() {
        assert!(!Evaluator::new(&deny)
            .expect("test value")
            .allows(&req)
            .expect("test value"));
        assert!(Evaluator::new(&allow)
            .expect("test value")
            .allows(&req)
            .expect("test value"));
    }
}

#[test]
fn runtime_default_set_matches_v1_over_every_class() {
    assert_builder_matches(false, &runtime_default_exceptions());
}

#[test]
fn wildcards_partial_access_and_blacklists_match_v1() {
    use DeviceType::{Block, Char};
    let cases: Vec<(bool, Vec<DeviceRule>)> = vec![
        // Whitelists with every wildcard shape and partial access.
        (false, vec![rule(Char, Some(1), None, "r")]),
        (false, vec![rule(Char, None, Some(3), "w")]),
        (false, vec![rule(Block, None, None, "rw")]),
        (false, vec![rule(Char, Some(5), Some(5), "rm")]),
        // Two exceptions each holding part of a request: v1 needs one
        // exception with every bit, so `rw` on 1:3 stays denied.
        (
            false,
            vec![
                rule(Char, Some(1), None, "r"),
                rule(Char, Some(1), Some(3), "w"),
            ],
        ),
        // Numbers at the i32 sign boundary.
        (
            false,
            vec![rule(Char, Some(1 << 31), Some(u32::MAX), "rwm")],
        ),
        (false, vec![rule(Block, Some(u32::MAX), None, "w")]),
        // Blacklists: any shared bit denies.
        (true, vec![rule(Char, Some(1), Some(3), "w")]),
        (
            true,
            vec![
                rule(Char, None, None, "m"),
                rule(Block, Some(8), None, "rw"),
            ],
        ),
        (true, vec![rule(Block, None, Some(0), "rwm")]),
        // An exception with no access bits changes nothing.
        (false, vec![rule(Char, Some(1), Some(3), "")]),
        (true, vec![rule(Char, Some(1), Some(3), "")]),
    ];
    for (default_allow, exceptions) in cases {
        assert_builder_matches(default_allow, &exceptions);
    }
}

#[test]
fn oci_lists_the_runtimes_write_match_the_emulator() {
    use DeviceType::{All, Block, Char};
    let deny_all = DeviceRule {
        allow: false,
        ..rule(All, None, None, "rwm")
    };
    let mut containerd = vec![deny_all];
    containerd.extend(runtime_default_exceptions());
    assert_rules_match(&containerd);
    // Privileged: allow everything.
    assert_rules_match(&[rule(All, None, None, "rwm")]);
    // Allow-all then deny one device: a deny list.
    assert_rules_match(&[
        rule(All, None, None, "rwm"),
        DeviceRule {
            allow: false,
            ..rule(Char, Some(1), Some(3), "w")
        },
    ]);
    // A deny that v1 cannot apply (a hole in a wildcard) changes nothing
    // in v1, and so nothing in the program either.
    assert_rules_match(&[
        rule(Char, Some(1), None, "rwm"),
        DeviceRule {
            allow: false,
            ..rule(Char, Some(1), Some(3), "rwm")
        },
        rule(Block, Some(8), Some(0), "r"),
    ]);
    // Empty list: deny-all.
    assert_rules_match(&[]);
}

fn arb_exception() -> impl Strategy<Value = DeviceRule> {
    arb_rule(false)
}

/// A rule over the interesting numbers; with `with_all`, also `a` (reset)
/// rules and deny rules, as in an OCI list.
fn arb_rule(with_all: bool) -> impl Strategy<Value = DeviceRule> {
    let num = |vals: &'static [u32]| {
        prop_oneof![Just(None), proptest::sample::select(vals).prop_map(Some)]
    };
    let kinds: &'static [DeviceType] = if with_all {
        &[DeviceType::Char, DeviceType::Block, DeviceType::All]
    } else {
        &[DeviceType::Char, DeviceType::Block]
    };
    (
        proptest::sample::select(kinds),
        any::<bool>().prop_map(move |a| a || !with_all),
        num(&MAJORS),
        num(&MINORS),
        1..8u8,
    )
        .prop_map(|(kind, allow, major, minor, bits)| DeviceRule {
            allow,
            kind,
            major,
            minor,
            access: Access::from_bits(bits),
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    /// Random v1 states over the interesting numbers: the program agrees
    /// with the v1 check on every request class.
    #[test]
    fn builder_agrees_with_v1_on_random_states(
        default_allow in any::<bool>(),
        exceptions in proptest::collection::vec(arb_exception(), 0..8),
    ) {
        assert_builder_matches(default_allow, &exceptions);
    }

    /// Random ordered OCI lists (allows, denies, `a` resets): the program
    /// agrees with the emulator that applied the same writes.
    #[test]
    fn builder_agrees_with_emulator_on_random_rule_lists(
        rules in proptest::collection::vec(arb_rule(true), 0..10),
    ) {
        assert_rules_match(&rules);
    }
}

use crate::testing::seed_003_systemd_program as seed_systemd_program;

/// runc's program from seed 003 (the blocks the write-up shows: block and
/// char mknod, c 1:3, c 1:5, c 136:*, then deny).
pub(crate) fn seed_runc_program() -> Vec<Insn> {
    use Reg as R;
    let mut p = vec![
        Insn::load_u32(R::R2, R::R1, 0),
        Insn::and32_imm(R::R2, 65535),
        Insn::load_u32(R::R3, R::R1, 0),
        Insn::rsh32_imm(R::R3, 16),
        Insn::load_u32(R::R4, R::R1, 4),
        Insn::load_u32(R::R5, R::R1, 8),
    ];
    for ty in [1, 2] {
        p.extend([
            Insn::jne_imm(R::R2, ty, 5),
            Insn::mov32_reg(R::R1, R::R3),
            Insn::and32_imm(R::R1, 1),
            Insn::jne_reg(R::R1, R::R3, 2),
            Insn::mov32_imm(R::R0, 1),
            Insn::exit(),
        ]);
    }
    for minor in [3, 5] {
        p.extend([
            Insn::jne_imm(R::R2, 2, 4),
            Insn::jne_imm(R::R4, 1, 3),
            Insn::jne_imm(R::R5, minor, 2),
            Insn::mov32_imm(R::R0, 1),
            Insn::exit(),
        ]);
    }
    p.extend([
        Insn::jne_imm(R::R2, 2, 3),
        Insn::jne_imm(R::R4, 0x88, 2),
        Insn::mov32_imm(R::R0, 1),
        Insn::exit(),
        Insn::mov32_imm(R::R0, 0),
        Insn::exit(),
    ]);
    p
}

#[test]
fn seed_003_systemd_program_denies_dev_null_but_not_ptys() {
    let sd = Evaluator::new(&seed_systemd_program()).expect("systemd program runs");
    let rw = Access::parse("rw").expect("test value");
    assert!(
        !sd.allows(&DeviceAccess::char(1, 3, rw))
            .expect("test value"),
        "/dev/null rw"
    );
    assert!(
        !sd.allows(&DeviceAccess::char(1, 9, Access::READ))
            .expect("test value"),
        "/dev/urandom r"
    );
    assert!(
        sd.allows(&DeviceAccess::char(136, 0, rw))
            .expect("test value"),
        "pts rw"
    );
    assert!(
        sd.allows(&DeviceAccess::char(1, 3, Access::MKNOD))
            .expect("test value"),
        "char mknod"
    );
    assert!(
        sd.allows(&DeviceAccess::block(8, 0, Access::MKNOD))
            .expect("test value"),
        "block mknod"
    );
    assert!(
        !sd.allows(&DeviceAccess::block(8, 0, Access::READ))
            .expect("test value"),
        "block read"
    );
    // mknod together with read is not "mknod only".
    assert!(!sd
        .allows(&DeviceAccess::char(
            1,
            3,
            Access::parse("rm").expect("test value")
        ))
        .expect("test value"));
}

#[test]
fn seed_003_runc_program_matches_the_rules_it_came_from() {
    use DeviceType::{Block, Char};
    let exceptions = vec![
        rule(Block, None, None, "m"),
        rule(Char, None, None, "m"),
        rule(Char, Some(1), Some(3), "rwm"),
        rule(Char, Some(1), Some(5), "rwm"),
        rule(Char, Some(136), None, "rwm"),
    ];
    let runc = Evaluator::new(&seed_runc_program()).expect("runc program runs");
    for req in all_requests() {
        assert_eq!(
            runc.allows(&req).expect("test value"),
            v1_reference(false, &exceptions, &req),
            "{req}"
        );
    }
}

#[test]
fn ctx_layout_puts_type_low_and_access_high() {
    let req = DeviceAccess::char(1, 3, Access::parse("rw").expect("test value"));
    let b = req.ctx_bytes();
    let access_type = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
    assert_eq!(access_type & 0xffff, 2, "char");
    assert_eq!(access_type >> 16, 2 | 4, "read|write");
    assert_eq!(u32::from_ne_bytes([b[4], b[5], b[6], b[7]]), 1);
    assert_eq!(u32::from_ne_bytes([b[8], b[9], b[10], b[11]]), 3);
}

#[test]
fn malformed_programs_are_rejected_not_run() {
    // A jump past the end.
    let bad = vec![Insn::ja(5), Insn::exit()];
    assert!(Evaluator::new(&bad).is_err());
    // A load past the 12-byte context fails at run time, not silently.
    let oob = vec![Insn::load_u32(Reg::R0, Reg::R1, 12), Insn::exit()];
    let ev = Evaluator::new(&oob).expect("well-formed");
    assert!(ev.allows(&DeviceAccess::char(1, 3, Access::READ)).is_err());
}
