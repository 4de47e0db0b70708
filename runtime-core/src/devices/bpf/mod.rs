//! cgroup v2 device programs (`BPF_PROG_TYPE_CGROUP_DEVICE`).
//!
//! Pure at the core: [`program`] turns a v1-style device state into plain
//! instructions ([`insn`]), [`interp`] evaluates any device program in
//! userspace. The kernel is reached only through [`kernel`] (load, attach,
//! replace, query, read back, detach), and [`effective`] combines the two to
//! answer what a cgroup may really open.

pub mod effective;
pub mod insn;
pub mod interp;
pub mod kernel;
pub mod program;

pub use effective::{AttachedProgram, DeviceVerdict, EffectiveError, EffectivePrograms};
pub use insn::{Insn, Reg};
pub use interp::{DeviceAccess, Evaluator, InterpError};
pub use program::build;

#[cfg(test)]
mod tests;
