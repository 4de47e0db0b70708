//! The device-program port: cgroup v2 bpf programs (query, attach, detach).

use std::os::fd::AsFd;
use std::path::Path;

use crate::devices::bpf::kernel::{self, BpfError};
use crate::devices::bpf::{EffectiveError, EffectivePrograms, Insn};
use crate::root::HostRoot;

/// cgroup v2 device programs (host paths).
pub trait DeviceProgramPort: Send + Sync {
    /// Every program in effect for `cgroup` (its own and its ancestors'),
    /// with instructions.
    fn effective(&self, cgroup: &Path) -> Result<EffectivePrograms, EffectiveError>;

    /// Ids of the programs attached at `cgroup` itself (not inherited).
    fn attached(&self, cgroup: &Path) -> Result<Vec<u32>, BpfError>;

    /// The instructions of program `id`; `None` when it is gone.
    fn instructions(&self, id: u32) -> Result<Option<Vec<Insn>>, BpfError>;

    /// Load `insns` as a device program and attach it at `cgroup`
    /// (`BPF_F_ALLOW_MULTI`: it runs beside what is there).
    fn attach(&self, cgroup: &Path, insns: &[Insn]) -> Result<(), BpfError>;

    /// Detach program `id` from `cgroup`; `false` when it was already gone.
    fn detach(&self, cgroup: &Path, id: u32) -> Result<bool, BpfError>;
}

/// bpf(2) on this machine.
#[derive(Debug, Clone)]
pub struct RealPrograms {
    root: HostRoot,
}

impl RealPrograms {
    /// Programs of the cgroups under `root` (this machine's `/`).
    pub fn new(root: HostRoot) -> Self {
        Self { root }
    }
}

fn gone(e: &BpfError) -> bool {
    e.raw_os_error() == Some(libc::ENOENT)
}

impl DeviceProgramPort for RealPrograms {
    fn effective(&self, cgroup: &Path) -> Result<EffectivePrograms, EffectiveError> {
        EffectivePrograms::read(&self.root.join(cgroup))
    }

    fn attached(&self, cgroup: &Path) -> Result<Vec<u32>, BpfError> {
        let cg = kernel::open_cgroup(&self.root.join(cgroup))?;
        Ok(kernel::query(cg.as_fd(), false)?.prog_ids)
    }

    fn instructions(&self, id: u32) -> Result<Option<Vec<Insn>>, BpfError> {
        match kernel::prog_fd_by_id(id) {
            Ok(fd) => Ok(Some(kernel::prog_info(fd.as_fd())?.xlated)),
            Err(e) if gone(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn attach(&self, cgroup: &Path, insns: &[Insn]) -> Result<(), BpfError> {
        let cg = kernel::open_cgroup(&self.root.join(cgroup))?;
        let prog = kernel::load_device_program(insns)?;
        kernel::attach_multi(cg.as_fd(), prog.as_fd())
    }

    fn detach(&self, cgroup: &Path, id: u32) -> Result<bool, BpfError> {
        let cg = kernel::open_cgroup(&self.root.join(cgroup))?;
        if !kernel::query(cg.as_fd(), false)?.prog_ids.contains(&id) {
            return Ok(false);
        }
        let fd = match kernel::prog_fd_by_id(id) {
            Ok(fd) => fd,
            Err(e) if gone(&e) => return Ok(false),
            Err(e) => return Err(e),
        };
        kernel::detach(cg.as_fd(), fd.as_fd())?;
        Ok(true)
    }
}

/// No programs anywhere: a fixture root, where bpf(2) would read this
/// machine's programs, not the fixture's. Reads are empty; changes fail.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPrograms;

impl DeviceProgramPort for NoPrograms {
    fn effective(&self, cgroup: &Path) -> Result<EffectivePrograms, EffectiveError> {
        EffectivePrograms::from_programs(cgroup.to_path_buf(), Vec::new())
    }
    fn attached(&self, _cgroup: &Path) -> Result<Vec<u32>, BpfError> {
        Ok(Vec::new())
    }
    fn instructions(&self, _id: u32) -> Result<Option<Vec<Insn>>, BpfError> {
        Ok(None)
    }
    fn attach(&self, _cgroup: &Path, _insns: &[Insn]) -> Result<(), BpfError> {
        Err(BpfError::unsupported(
            "device programs of a host that is not this machine",
        ))
    }
    fn detach(&self, _cgroup: &Path, _id: u32) -> Result<bool, BpfError> {
        Err(BpfError::unsupported(
            "device programs of a host that is not this machine",
        ))
    }
}
