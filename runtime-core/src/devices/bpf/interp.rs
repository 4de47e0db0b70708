//! Userspace evaluation of cgroup device programs.
//!
//! Any device program — ours, runc's, crun's, systemd's `sd_devices`, or
//! whatever the kernel hands back as `xlated_prog_insns` — runs here on a
//! `struct bpf_cgroup_dev_ctx` built from a [`DeviceAccess`]. This answers
//! "may this cgroup open c 1:3 rw?" without entering the cgroup.
//!
//! The interpreter is the `rbpf` crate: it executes the whole eBPF
//! instruction set these programs use (ALU32/ALU64, JMP and JMP32, 32-bit
//! context loads) and bounds-checks every memory access against the
//! 12-byte context, so a program we misread fails loudly instead of reading
//! stray memory. It does not know kernel helpers; a device program calling
//! one (none of the runtimes' do) is reported as not evaluable.

use super::insn::{encode, Insn};
use super::program::{devcg_access, devcg_type};
use crate::devices::{Access, DeviceType};

/// One access request, as the kernel presents it to a device program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeviceAccess {
    /// Device type: [`DeviceType::Char`] or [`DeviceType::Block`]. A
    /// request for [`DeviceType::All`] encodes type 0, which no real
    /// request carries.
    pub kind: DeviceType,
    /// Major number.
    pub major: u32,
    /// Minor number.
    pub minor: u32,
    /// Requested access; the kernel never asks with no bits set.
    pub access: Access,
}

impl DeviceAccess {
    /// A request on a character device.
    pub fn char(major: u32, minor: u32, access: Access) -> Self {
        Self {
            kind: DeviceType::Char,
            major,
            minor,
            access,
        }
    }

    /// A request on a block device.
    pub fn block(major: u32, minor: u32, access: Access) -> Self {
        Self {
            kind: DeviceType::Block,
            major,
            minor,
            access,
        }
    }

    /// The 12-byte `struct bpf_cgroup_dev_ctx` in native byte order.
    pub fn ctx_bytes(&self) -> [u8; 12] {
        let access_type = devcg_type(self.kind).unwrap_or(0) | (devcg_access(self.access) << 16);
        let mut b = [0u8; 12];
        b[0..4].copy_from_slice(&access_type.to_ne_bytes());
        b[4..8].copy_from_slice(&self.major.to_ne_bytes());
        b[8..12].copy_from_slice(&self.minor.to_ne_bytes());
        b
    }
}

impl std::fmt::Display for DeviceAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}:{} {}",
            self.kind.letter(),
            self.major,
            self.minor,
            self.access
        )
    }
}

/// Why a program could not be evaluated.
#[derive(Debug, thiserror::Error)]
pub enum InterpError {
    /// The interpreter refused the program before running it (malformed
    /// instruction, jump out of range, unknown opcode).
    #[error("device program rejected by the interpreter: {0}")]
    Rejected(#[source] std::io::Error),
    /// The program jumps backwards at instruction `at`: it could loop, and
    /// the interpreter has no step budget of its own. Device programs that
    /// runtimes and systemd attach never do; only forward jumps are
    /// evaluated, which bounds a run by the program's length.
    #[error("device program has a backward jump at instruction {at}: not evaluated")]
    BackwardJump {
        /// The instruction's index.
        at: usize,
    },
    /// Execution failed (out-of-bounds context access, helper call).
    #[error("device program failed on {request}: {source}")]
    Execution {
        /// The request being evaluated.
        request: DeviceAccess,
        /// The interpreter's error.
        #[source]
        source: std::io::Error,
    },
}

/// A device program ready to evaluate many requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluator {
    bytes: Vec<u8>,
}

impl Evaluator {
    /// Prepare `insns` for evaluation, rejecting programs the interpreter
    /// cannot run.
    pub fn new(insns: &[Insn]) -> Result<Self, InterpError> {
        // The step budget: with forward jumps only, no run is longer than
        // the program (a program read from the kernel could be anything a
        // root process attached).
        if let Some(at) = insns.iter().position(|i| i.is_jump() && i.off < 0) {
            return Err(InterpError::BackwardJump { at });
        }
        let bytes = encode(insns);
        rbpf::EbpfVmRaw::new(Some(&bytes)).map_err(InterpError::Rejected)?;
        Ok(Self { bytes })
    }

    /// The program's return value for `req`.
    pub fn run(&self, req: &DeviceAccess) -> Result<u64, InterpError> {
        let vm = rbpf::EbpfVmRaw::new(Some(&self.bytes)).map_err(InterpError::Rejected)?;
        let mut ctx = req.ctx_bytes();
        vm.execute_program(&mut ctx)
            .map_err(|source| InterpError::Execution {
                request: *req,
                source,
            })
    }

    /// Whether the program allows `req`. The kernel treats a return of 0 as
    /// EPERM and anything else as allowed (its verifier only lets device
    /// programs return 0 or 1).
    pub fn allows(&self, req: &DeviceAccess) -> Result<bool, InterpError> {
        Ok(self.run(req)? != 0)
    }
}

/// One-shot: whether `insns` allows `req`.
pub fn allows(insns: &[Insn], req: &DeviceAccess) -> Result<bool, InterpError> {
    Evaluator::new(insns)?.allows(req)
}

#[cfg(test)]
mod budget_tests {
    use super::*;
    use crate::devices::bpf::Reg;

    #[test]
    fn a_program_that_loops_is_refused_not_run_forever() {
        let looping = vec![Insn::mov64_imm(Reg::R0, 1), Insn::ja(-1), Insn::exit()];
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let r = Evaluator::new(&looping)
                .and_then(|e| e.allows(&DeviceAccess::char(1, 3, crate::devices::Access::READ)));
            let _ = tx.send(r);
        });
        match rx.recv_timeout(std::time::Duration::from_secs(5)) {
            Ok(Err(InterpError::BackwardJump { at: 1 })) => {}
            Ok(other) => panic!("{other:?}"),
            Err(_) => panic!("the interpreter did not stop"),
        }
    }
}
