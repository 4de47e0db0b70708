//! Builder for `BPF_PROG_TYPE_CGROUP_DEVICE` programs.
//!
//! The program enforces exactly the cgroup v1 devices model: a default
//! (allow-all or deny-all) plus a list of exceptions, as the v1 emulator
//! computes it from an ordered OCI rule list. Emitting the *emulated state*
//! rather than the raw rules (runc does the same; crun and youki compile the
//! raw list last-match-wins) means a container sees the same permissions
//! whether its node enforces v1 lists or v2 programs, and the builder can be
//! checked against the emulator class by class.
//!
//! Check semantics, as `security/device_cgroup.c` does for v1:
//! - deny-by-default: a request is allowed iff one exception matches its
//!   type, major and minor *and* holds every requested access bit;
//! - allow-by-default: a request is denied iff one exception matches its
//!   type, major and minor and shares *any* requested access bit.
//!   (runc's generated program requires every bit here too, so a request for
//!   `rw` slips past a `deny w` exception; the kernel's v1 check does not.)
//!
//! The context is `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major;
//! u32 minor; }` with the device type in the low 16 bits of `access_type`
//! and the access bits in the high 16.

use super::insn::{Insn, Reg};
use crate::devices::v1::{DefaultPolicy, Emulator, EmulatorError};
use crate::devices::{Access, DeviceRule, DeviceType};

/// `BPF_DEVCG_DEV_BLOCK`: type code of block devices in the context.
pub const DEVCG_DEV_BLOCK: u32 = 1;
/// `BPF_DEVCG_DEV_CHAR`: type code of character devices in the context.
pub const DEVCG_DEV_CHAR: u32 = 2;
/// `BPF_DEVCG_ACC_MKNOD`.
pub const DEVCG_ACC_MKNOD: u32 = 1;
/// `BPF_DEVCG_ACC_READ`.
pub const DEVCG_ACC_READ: u32 = 2;
/// `BPF_DEVCG_ACC_WRITE`.
pub const DEVCG_ACC_WRITE: u32 = 4;

/// Context type code for a device type; `None` for [`DeviceType::All`],
/// which matches every type and so needs no check.
pub fn devcg_type(kind: DeviceType) -> Option<u32> {
    match kind {
        DeviceType::All => None,
        DeviceType::Char => Some(DEVCG_DEV_CHAR),
        DeviceType::Block => Some(DEVCG_DEV_BLOCK),
    }
}

/// Map [`Access`] bits (r=1, w=2, m=4) to context access bits (m=1, r=2,
/// w=4). The orders differ, so a plain copy of the bits would swap read and
/// mknod.
pub fn devcg_access(access: Access) -> u32 {
    let mut bits = 0;
    if access.contains(Access::READ) {
        bits |= DEVCG_ACC_READ;
    }
    if access.contains(Access::WRITE) {
        bits |= DEVCG_ACC_WRITE;
    }
    if access.contains(Access::MKNOD) {
        bits |= DEVCG_ACC_MKNOD;
    }
    bits
}

/// The inverse of [`devcg_access`]; bits other than the three are dropped.
pub fn access_from_devcg(bits: u32) -> Access {
    let mut a = Access::NONE;
    if bits & DEVCG_ACC_READ != 0 {
        a = a.union(Access::READ);
    }
    if bits & DEVCG_ACC_WRITE != 0 {
        a = a.union(Access::WRITE);
    }
    if bits & DEVCG_ACC_MKNOD != 0 {
        a = a.union(Access::MKNOD);
    }
    a
}

// Register roles, fixed by the prologue.
const TYPE: Reg = Reg::R2;
const ACCESS: Reg = Reg::R3;
const MAJOR: Reg = Reg::R4;
const MINOR: Reg = Reg::R5;
const TMP: Reg = Reg::R1;

/// Build a device program from an ordered OCI / v1 rule list: the rules are
/// applied in order, from deny-all, by the v1 emulator, and the resulting
/// state is compiled with [`build_from_emulator`]. Fails where the kernel
/// would refuse a rule (no access letters).
pub fn build_from_rules(rules: &[DeviceRule]) -> Result<Vec<Insn>, EmulatorError> {
    Ok(build_from_emulator(&Emulator::from_rules(rules)?))
}

/// Build a device program enforcing exactly what a v1 devices cgroup in
/// this emulated state enforces. Deny exceptions that a `devices.list` read
/// cannot show ([`Emulator::hidden_denies_possible`]) are unknown and so
/// not in the program.
pub fn build_from_emulator(emu: &Emulator) -> Vec<Insn> {
    let exceptions: Vec<DeviceRule> = emu
        .exceptions()
        .iter()
        .map(|e| e.pattern.rule(true, e.access))
        .collect();
    build(emu.default_policy() == DefaultPolicy::Allow, &exceptions)
}

/// Build a device program from a v1 devices state given by its parts:
/// `default_allow` (the cgroup's default: `a *:* rwm` allowed or denied)
/// and the exceptions to it. Each exception's `allow` field is ignored: in
/// a v1 state every exception is the opposite of the default. Exceptions
/// with no access bits change nothing and are left out; a major or minor of
/// `u32::MAX` is the wildcard, as the kernel stores `*`; exceptions with the
/// same type, major and minor are one entry with the union of their bits,
/// as the kernel merges writes to the same key (so `b *:* m` and `b *:* r`
/// together allow `rm`).
pub fn build(default_allow: bool, exceptions: &[DeviceRule]) -> Vec<Insn> {
    let mut prog = vec![
        Insn::load_u32(TYPE, Reg::R1, 0),
        Insn::and32_imm(TYPE, 0xffff),
        Insn::load_u32(ACCESS, Reg::R1, 0),
        Insn::rsh32_imm(ACCESS, 16),
        Insn::load_u32(MAJOR, Reg::R1, 4),
        Insn::load_u32(MINOR, Reg::R1, 8),
    ];
    for ex in merge_keys(exceptions) {
        if ex.access.is_empty() {
            continue;
        }
        prog.extend(exception_block(default_allow, &ex));
    }
    prog.push(Insn::mov32_imm(Reg::R0, i32::from(default_allow)));
    prog.push(Insn::exit());
    prog
}

/// Normalise `u32::MAX` to the wildcard and merge exceptions with equal
/// keys, keeping first-seen order.
fn merge_keys(exceptions: &[DeviceRule]) -> Vec<DeviceRule> {
    let mut out: Vec<DeviceRule> = Vec::with_capacity(exceptions.len());
    for ex in exceptions {
        let ex = DeviceRule {
            major: ex.major.filter(|&m| m != u32::MAX),
            minor: ex.minor.filter(|&m| m != u32::MAX),
            ..*ex
        };
        match out
            .iter_mut()
            .find(|o| (o.kind, o.major, o.minor) == (ex.kind, ex.major, ex.minor))
        {
            Some(o) => o.access = o.access.union(ex.access),
            None => out.push(ex),
        }
    }
    out
}

/// A compare against a 32-bit device number. Numbers that fit a positive
/// `i32` use the plain 64-bit compare every kernel with device programs
/// accepts; larger ones would be sign-extended there, so they compare the
/// low 32 bits with `BPF_JMP32` (kernel 5.1+). Real device numbers (12-bit
/// majors, 20-bit minors) never need it.
fn jne_u32(reg: Reg, value: u32, off: i16) -> Insn {
    match i32::try_from(value) {
        Ok(v) => Insn::jne_imm(reg, v, off),
        Err(_) => Insn::jne32_imm(reg, value as i32, off),
    }
}

/// One exception: a run of "goto next block unless this field matches"
/// checks followed by the exception's verdict. Jump targets are filled in
/// once the block length is known.
fn exception_block(default_allow: bool, ex: &DeviceRule) -> Vec<Insn> {
    // Each check is built with a placeholder offset, then patched to jump
    // just past the block's `exit`.
    let mut block: Vec<Insn> = Vec::new();
    if let Some(t) = devcg_type(ex.kind) {
        block.push(jne_u32(TYPE, t, 0));
    }
    if let Some(major) = ex.major {
        block.push(jne_u32(MAJOR, major, 0));
    }
    if let Some(minor) = ex.minor {
        block.push(jne_u32(MINOR, minor, 0));
    }
    let acc = devcg_access(ex.access) as i32;
    if ex.access != Access::ALL {
        block.push(Insn::mov32_reg(TMP, ACCESS));
        block.push(Insn::and32_imm(TMP, acc));
        if default_allow {
            // Deny exception: it applies when any requested bit is in it.
            block.push(Insn::jeq_imm(TMP, 0, 0));
        } else {
            // Allow exception: it applies only if it covers every bit.
            block.push(Insn::jne_reg(TMP, ACCESS, 0));
        }
    }
    // The verdict of a matching exception is the opposite of the default.
    block.push(Insn::mov32_imm(Reg::R0, i32::from(!default_allow)));
    block.push(Insn::exit());
    let len = block.len();
    for (i, insn) in block.iter_mut().enumerate() {
        if insn.is_jump() {
            // Relative to the next instruction; lands on the first
            // instruction after this block. Blocks are a handful of
            // instructions, far below i16::MAX.
            insn.off = (len - i - 1) as i16;
        }
    }
    block
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_bits_are_remapped_not_copied() {
        assert_eq!(devcg_access(Access::READ), DEVCG_ACC_READ);
        assert_eq!(devcg_access(Access::WRITE), DEVCG_ACC_WRITE);
        assert_eq!(devcg_access(Access::MKNOD), DEVCG_ACC_MKNOD);
        assert_eq!(devcg_access(Access::ALL), 7);
        for bits in 0..8u8 {
            let a = Access::from_bits(bits);
            assert_eq!(access_from_devcg(devcg_access(a)), a);
        }
    }

    #[test]
    fn deny_all_is_prologue_and_return_zero() {
        let p = build(false, &[]);
        assert_eq!(p.len(), 8);
        assert_eq!(p[6], Insn::mov32_imm(Reg::R0, 0));
        assert_eq!(p[7], Insn::exit());
    }

    #[test]
    fn block_jumps_land_on_next_block() {
        let ex = DeviceRule::allow_char(1, 3, Access::parse("rw").expect("rw"));
        let p = build(false, &[ex]);
        // prologue 6 + type, major, minor, mov, and, jne, mov, exit = 14,
        // then the default's mov+exit at 14, 15.
        assert_eq!(p.len(), 16);
        for (i, insn) in p.iter().enumerate().filter(|(_, i)| i.is_jump()) {
            assert_eq!(i as i64 + 1 + i64::from(insn.off), 14, "insn {i}: {insn}");
        }
    }

    #[test]
    fn huge_device_numbers_use_jmp32() {
        let ex = DeviceRule::allow_char(u32::MAX - 1, 7, Access::ALL);
        let p = build(false, &[ex]);
        assert!(p.contains(&Insn::jne32_imm(MAJOR, -2, 3)));
        assert!(p.contains(&Insn::jne_imm(MINOR, 7, 2)));
    }

    #[test]
    fn all_ones_is_the_wildcard() {
        let p = build(
            false,
            &[DeviceRule::allow_char(u32::MAX, u32::MAX, Access::ALL)],
        );
        let q = build(
            false,
            &[DeviceRule {
                major: None,
                minor: None,
                ..DeviceRule::allow_char(0, 0, Access::ALL)
            }],
        );
        assert_eq!(p, q);
    }
}
