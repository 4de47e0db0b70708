//! eBPF instructions as plain data: the 8-byte wire format the kernel takes
//! (`struct bpf_insn`) and reads back, with the few constructors the device
//! program builder needs.
//!
//! Kept separate from any interpreter or loader so that the builder is pure
//! data in, data out, and so that instructions read back from the kernel
//! decode into the same type we load.

use std::fmt;

/// Size of one encoded instruction in bytes.
pub const INSN_SIZE: usize = 8;

// Instruction classes (low 3 bits of `code`).
/// `BPF_LDX`: load from memory into a register.
pub const CLASS_LDX: u8 = 0x01;
/// `BPF_ALU`: 32-bit arithmetic (results zero-extended).
pub const CLASS_ALU: u8 = 0x04;
/// `BPF_JMP`: 64-bit compare-and-jump, `exit`, `call`.
pub const CLASS_JMP: u8 = 0x05;
/// `BPF_JMP32`: compare the low 32 bits and jump.
pub const CLASS_JMP32: u8 = 0x06;
/// `BPF_ALU64`: 64-bit arithmetic.
pub const CLASS_ALU64: u8 = 0x07;

// Source operand (bit 3).
/// `BPF_K`: the immediate is the source operand.
pub const SRC_K: u8 = 0x00;
/// `BPF_X`: the `src` register is the source operand.
pub const SRC_X: u8 = 0x08;

// Memory access size and mode (for loads).
/// `BPF_W`: 32-bit access.
pub const SIZE_W: u8 = 0x00;
/// `BPF_MEM`: plain `dst = *(size *)(src + off)`.
pub const MODE_MEM: u8 = 0x60;

// ALU operations (high 4 bits).
/// `BPF_AND`.
pub const OP_AND: u8 = 0x50;
/// `BPF_RSH`.
pub const OP_RSH: u8 = 0x70;
/// `BPF_MOV`.
pub const OP_MOV: u8 = 0xb0;

// Jump operations (high 4 bits).
/// `BPF_JA`: unconditional jump.
pub const OP_JA: u8 = 0x00;
/// `BPF_JEQ`.
pub const OP_JEQ: u8 = 0x10;
/// `BPF_JNE`.
pub const OP_JNE: u8 = 0x50;
/// `BPF_EXIT`.
pub const OP_EXIT: u8 = 0x90;

/// A register number `r0`..`r10`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Reg(pub u8);

impl Reg {
    /// Return value.
    pub const R0: Reg = Reg(0);
    /// First argument: the context pointer on entry.
    pub const R1: Reg = Reg(1);
    /// Scratch.
    pub const R2: Reg = Reg(2);
    /// Scratch.
    pub const R3: Reg = Reg(3);
    /// Scratch.
    pub const R4: Reg = Reg(4);
    /// Scratch.
    pub const R5: Reg = Reg(5);
}

/// One eBPF instruction (`struct bpf_insn`).
///
/// `ld_imm64` occupies two consecutive `Insn`s, as on the wire; this type
/// does not hide that, so indices and jump offsets stay what the kernel sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Insn {
    /// Opcode: class | source | operation (or size | mode for memory ops).
    pub code: u8,
    /// Destination register (low nibble on the wire).
    pub dst: u8,
    /// Source register (high nibble on the wire).
    pub src: u8,
    /// Signed offset: jump distance in instructions, or memory offset.
    pub off: i16,
    /// Signed immediate.
    pub imm: i32,
}

impl Insn {
    /// `dst = *(u32 *)(src + off)`.
    pub fn load_u32(dst: Reg, src: Reg, off: i16) -> Insn {
        Insn {
            code: CLASS_LDX | MODE_MEM | SIZE_W,
            dst: dst.0,
            src: src.0,
            off,
            imm: 0,
        }
    }

    /// `wdst = imm` (32-bit move, upper half zeroed).
    pub fn mov32_imm(dst: Reg, imm: i32) -> Insn {
        Insn {
            code: CLASS_ALU | SRC_K | OP_MOV,
            dst: dst.0,
            src: 0,
            off: 0,
            imm,
        }
    }

    /// `dst = imm` (64-bit move, `imm` sign-extended). systemd's programs
    /// set their verdict this way.
    pub fn mov64_imm(dst: Reg, imm: i32) -> Insn {
        Insn {
            code: CLASS_ALU64 | SRC_K | OP_MOV,
            dst: dst.0,
            src: 0,
            off: 0,
            imm,
        }
    }

    /// `wdst = wsrc`.
    pub fn mov32_reg(dst: Reg, src: Reg) -> Insn {
        Insn {
            code: CLASS_ALU | SRC_X | OP_MOV,
            dst: dst.0,
            src: src.0,
            off: 0,
            imm: 0,
        }
    }

    /// `wdst &= imm`.
    pub fn and32_imm(dst: Reg, imm: i32) -> Insn {
        Insn {
            code: CLASS_ALU | SRC_K | OP_AND,
            dst: dst.0,
            src: 0,
            off: 0,
            imm,
        }
    }

    /// `wdst >>= imm` (logical).
    pub fn rsh32_imm(dst: Reg, imm: i32) -> Insn {
        Insn {
            code: CLASS_ALU | SRC_K | OP_RSH,
            dst: dst.0,
            src: 0,
            off: 0,
            imm,
        }
    }

    /// `if dst != imm goto +off` comparing all 64 bits; `imm` is sign-extended.
    pub fn jne_imm(dst: Reg, imm: i32, off: i16) -> Insn {
        Insn {
            code: CLASS_JMP | SRC_K | OP_JNE,
            dst: dst.0,
            src: 0,
            off,
            imm,
        }
    }

    /// `if wdst != imm goto +off` comparing the low 32 bits only.
    pub fn jne32_imm(dst: Reg, imm: i32, off: i16) -> Insn {
        Insn {
            code: CLASS_JMP32 | SRC_K | OP_JNE,
            dst: dst.0,
            src: 0,
            off,
            imm,
        }
    }

    /// `if dst == imm goto +off` (64-bit compare).
    pub fn jeq_imm(dst: Reg, imm: i32, off: i16) -> Insn {
        Insn {
            code: CLASS_JMP | SRC_K | OP_JEQ,
            dst: dst.0,
            src: 0,
            off,
            imm,
        }
    }

    /// `if dst != src goto +off` (64-bit compare).
    pub fn jne_reg(dst: Reg, src: Reg, off: i16) -> Insn {
        Insn {
            code: CLASS_JMP | SRC_X | OP_JNE,
            dst: dst.0,
            src: src.0,
            off,
            imm: 0,
        }
    }

    /// `goto +off`.
    pub fn ja(off: i16) -> Insn {
        Insn {
            code: CLASS_JMP | OP_JA,
            dst: 0,
            src: 0,
            off,
            imm: 0,
        }
    }

    /// `exit` (return `r0`).
    pub fn exit() -> Insn {
        Insn {
            code: CLASS_JMP | OP_EXIT,
            dst: 0,
            src: 0,
            off: 0,
            imm: 0,
        }
    }

    /// The instruction class (`code & 7`).
    pub fn class(&self) -> u8 {
        self.code & 0x07
    }

    /// Whether this is a conditional or unconditional jump (not `exit` or
    /// `call`), i.e. whether `off` is a jump distance.
    pub fn is_jump(&self) -> bool {
        let op = self.code & 0xf0;
        matches!(self.class(), CLASS_JMP | CLASS_JMP32) && op != OP_EXIT && op != 0x80
    }

    /// The 8 wire bytes (little-endian, as on every architecture Linux runs
    /// cgroup programs on that this project supports).
    pub fn to_bytes(&self) -> [u8; INSN_SIZE] {
        let off = self.off.to_le_bytes();
        let imm = self.imm.to_le_bytes();
        [
            self.code,
            (self.dst & 0x0f) | ((self.src & 0x0f) << 4),
            off[0],
            off[1],
            imm[0],
            imm[1],
            imm[2],
            imm[3],
        ]
    }

    /// Decode one instruction from its 8 wire bytes.
    pub fn from_bytes(b: [u8; INSN_SIZE]) -> Insn {
        Insn {
            code: b[0],
            dst: b[1] & 0x0f,
            src: b[1] >> 4,
            off: i16::from_le_bytes([b[2], b[3]]),
            imm: i32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        }
    }
}

impl fmt::Display for Insn {
    /// A compact `code dst src off imm` form for logs and test failures; not
    /// a disassembler.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "({:02x}) dst=r{} src=r{} off={} imm={}",
            self.code, self.dst, self.src, self.off, self.imm
        )
    }
}

/// Encode a program to the byte string `BPF_PROG_LOAD` takes.
pub fn encode(insns: &[Insn]) -> Vec<u8> {
    insns.iter().flat_map(|i| i.to_bytes()).collect()
}

/// Decode a byte string (e.g. `xlated_prog_insns` read back from the
/// kernel). `None` when the length is not a multiple of [`INSN_SIZE`].
pub fn decode(bytes: &[u8]) -> Option<Vec<Insn>> {
    if !bytes.len().is_multiple_of(INSN_SIZE) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(INSN_SIZE)
            .map(|c| {
                let mut b = [0u8; INSN_SIZE];
                b.copy_from_slice(c);
                Insn::from_bytes(b)
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_format_matches_kernel_layout() {
        // `r2 = *(u32 *)(r1 +4)` is 61 12 04 00 00 00 00 00 in bpftool's
        // `opcodes` dump: dst in the low nibble, src in the high one.
        assert_eq!(
            Insn::load_u32(Reg::R2, Reg::R1, 4).to_bytes(),
            [0x61, 0x12, 0x04, 0, 0, 0, 0, 0]
        );
        // `if r4 != 0x88 goto pc+2` is 55 04 02 00 88 00 00 00.
        assert_eq!(
            Insn::jne_imm(Reg::R4, 0x88, 2).to_bytes(),
            [0x55, 0x04, 0x02, 0, 0x88, 0, 0, 0]
        );
        // `w0 = 1` / `exit`.
        assert_eq!(
            Insn::mov32_imm(Reg::R0, 1).to_bytes(),
            [0xb4, 0, 0, 0, 1, 0, 0, 0]
        );
        assert_eq!(Insn::exit().to_bytes(), [0x95, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn encode_decode_round_trip_keeps_negative_fields() {
        let prog = vec![
            Insn::jne32_imm(Reg::R5, -2, -7),
            Insn::mov32_reg(Reg::R1, Reg::R3),
            Insn::ja(-1),
            Insn::exit(),
        ];
        let bytes = encode(&prog);
        assert_eq!(bytes.len(), 4 * INSN_SIZE);
        assert_eq!(decode(&bytes), Some(prog));
        assert_eq!(decode(&bytes[..7]), None);
    }

    #[test]
    fn jump_classification() {
        assert!(Insn::ja(0).is_jump());
        assert!(Insn::jne32_imm(Reg::R2, 1, 1).is_jump());
        assert!(!Insn::exit().is_jump());
        assert!(!Insn::mov32_imm(Reg::R0, 0).is_jump());
    }
}
