//! Effective device access of a cgroup v2 directory, and its combination
//! with the cgroup v1 devices list on hybrid hosts.
//!
//! The kernel runs, on every device access by a task, each program in the
//! task's v2 cgroup's *effective* array: with `BPF_F_ALLOW_MULTI` that is
//! the cgroup's own programs and its ancestors' (an `ALLOW_OVERRIDE`
//! program is dropped from the array under a descendant that attaches its
//! own). `BPF_F_QUERY_EFFECTIVE` returns exactly that array, so we read it,
//! fetch each program's translated instructions and run them all in the
//! interpreter: access is allowed iff every program allows. Then
//! `devcgroup_check_permission` consults the v1 devices list too, where the
//! v1 controller is mounted; [`DeviceVerdict`] combines both.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use super::interp::{DeviceAccess, Evaluator, InterpError};
use super::kernel::{self, BpfError};
use super::Insn;
use crate::devices::v1::Emulator;

/// One program that runs for a cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachedProgram {
    /// Kernel program id.
    pub id: u32,
    /// Load-time name (`sd_devices` for systemd's, ours is
    /// [`kernel::PROGRAM_NAME`]; runc's programs are unnamed).
    pub name: String,
    /// Program tag (hex in `bpftool`).
    pub tag: [u8; 8],
    /// Translated instructions, as read back from the kernel.
    pub insns: Vec<Insn>,
}

/// Why the effective programs could not be read or evaluated.
#[derive(Debug, thiserror::Error)]
pub enum EffectiveError {
    /// A `bpf(2)` step failed.
    #[error("reading device programs of {path}: {source}")]
    Bpf {
        /// The cgroup directory.
        path: PathBuf,
        /// The failing step.
        #[source]
        source: BpfError,
    },
    /// A program read back could not be evaluated.
    #[error("evaluating device program id {id} of {path}: {source}")]
    Interp {
        /// The cgroup directory.
        path: PathBuf,
        /// The program id.
        id: u32,
        /// The interpreter's error.
        #[source]
        source: InterpError,
    },
    /// Programs kept being detached while we read them.
    #[error("device programs of {path} kept changing while being read")]
    Unstable {
        /// The cgroup directory.
        path: PathBuf,
    },
}

/// The device programs in effect for a cgroup v2 directory, in run order.
#[derive(Debug, Clone)]
pub struct EffectivePrograms {
    /// The cgroup directory they were read from.
    pub cgroup: PathBuf,
    /// The programs, each ready to evaluate.
    pub programs: Vec<AttachedProgram>,
    evaluators: Vec<Evaluator>,
}

/// The v2 answer for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V2Verdict {
    /// Whether every program allows.
    pub allowed: bool,
    /// Ids of the programs that deny (empty when allowed).
    pub denied_by: Vec<u32>,
}

impl EffectivePrograms {
    /// Read every program in effect for `cgroup_dir` (needs root: program
    /// fds by id and their instructions are privileged).
    pub fn read(cgroup_dir: &Path) -> Result<Self, EffectiveError> {
        let bpf = |source| EffectiveError::Bpf {
            path: cgroup_dir.to_path_buf(),
            source,
        };
        let cg = kernel::open_cgroup(cgroup_dir).map_err(bpf)?;
        // A program listed by the query may be detached and freed before we
        // open it by id (a runtime replacing its program); list again then.
        'attempt: for _ in 0..5 {
            let listed = kernel::query(cg.as_fd(), true).map_err(bpf)?;
            let mut programs = Vec::with_capacity(listed.prog_ids.len());
            for id in listed.prog_ids {
                let fd = match kernel::prog_fd_by_id(id) {
                    Ok(fd) => fd,
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue 'attempt,
                    Err(e) => return Err(bpf(e)),
                };
                let info = kernel::prog_info(fd.as_fd()).map_err(bpf)?;
                programs.push(AttachedProgram {
                    id,
                    name: info.name,
                    tag: info.tag,
                    insns: info.xlated,
                });
            }
            return Self::from_programs(cgroup_dir.to_path_buf(), programs);
        }
        Err(EffectiveError::Unstable {
            path: cgroup_dir.to_path_buf(),
        })
    }

    /// Build from programs obtained elsewhere (fixtures, a previous read).
    pub fn from_programs(
        cgroup: PathBuf,
        programs: Vec<AttachedProgram>,
    ) -> Result<Self, EffectiveError> {
        let evaluators = programs
            .iter()
            .map(|p| {
                Evaluator::new(&p.insns).map_err(|source| EffectiveError::Interp {
                    path: cgroup.clone(),
                    id: p.id,
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            cgroup,
            programs,
            evaluators,
        })
    }

    /// Evaluate `req` in every program. With no program attached anywhere
    /// up the tree, v2 allows everything.
    pub fn verdict(&self, req: &DeviceAccess) -> Result<V2Verdict, EffectiveError> {
        let mut denied_by = Vec::new();
        for (p, ev) in self.programs.iter().zip(&self.evaluators) {
            let ok = ev.allows(req).map_err(|source| EffectiveError::Interp {
                path: self.cgroup.clone(),
                id: p.id,
                source,
            })?;
            if !ok {
                denied_by.push(p.id);
            }
        }
        Ok(V2Verdict {
            allowed: denied_by.is_empty(),
            denied_by,
        })
    }

    /// Whether every program allows `req`.
    pub fn allows(&self, req: &DeviceAccess) -> Result<bool, EffectiveError> {
        Ok(self.verdict(req)?.allowed)
    }
}

/// Device access of a task subject to both hierarchies, as
/// `devcgroup_check_permission` decides it: the v2 programs run first, then
/// the v1 devices list; either one's refusal is EPERM.
///
/// `None` means that hierarchy does not apply to the task (no v1 devices
/// controller mounted, or no v2 hierarchy), which allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceVerdict {
    /// The v1 devices list's answer (the v1 emulator over `devices.list`).
    pub v1: Option<bool>,
    /// The v2 programs' answer ([`EffectivePrograms::allows`]).
    pub v2: Option<bool>,
    /// The v1 state came from an allow-mode `devices.list`, which hides its
    /// deny exceptions: a v1 "allowed" is then only "not known to be
    /// refused".
    pub v1_hidden_denies: bool,
}

impl DeviceVerdict {
    /// Combine two answers obtained elsewhere.
    pub fn new(v1: Option<bool>, v2: Option<bool>) -> Self {
        Self {
            v1,
            v2,
            v1_hidden_denies: false,
        }
    }

    /// Evaluate `req` against the task's v1 devices state (the emulator,
    /// typically read from its `devices.list`) and the programs in effect
    /// for its v2 cgroup; `None` for a hierarchy that does not apply.
    pub fn evaluate(
        v1: Option<&Emulator>,
        v2: Option<&EffectivePrograms>,
        req: &DeviceAccess,
    ) -> Result<Self, EffectiveError> {
        Ok(Self {
            v1: v1.map(|e| e.allows(req.kind, req.major, req.minor, req.access)),
            v2: v2.map(|p| p.allows(req)).transpose()?,
            v1_hidden_denies: v1.is_some_and(Emulator::hidden_denies_possible),
        })
    }

    /// Whether the access is allowed: neither hierarchy refuses it.
    pub fn allowed(&self) -> bool {
        self.v1.unwrap_or(true) && self.v2.unwrap_or(true)
    }

    /// Which hierarchies refuse, for reports: `"v1"`, `"v2"`, both, or none.
    pub fn refused_by(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.v1 == Some(false) {
            out.push("v1");
        }
        if self.v2 == Some(false) {
            out.push("v2");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::bpf::build;
    use crate::devices::{Access, DeviceRule};

    fn prog(id: u32, exceptions: &[DeviceRule]) -> AttachedProgram {
        AttachedProgram {
            id,
            name: "t".into(),
            tag: [0; 8],
            insns: build(false, exceptions),
        }
    }

    #[test]
    fn every_program_must_allow() {
        let rw = Access::parse("rw").expect("rw");
        let null = DeviceRule::allow_char(1, 3, rw);
        let zero = DeviceRule::allow_char(1, 5, rw);
        let urandom = DeviceRule::allow_char(1, 9, rw);
        let eff = EffectivePrograms::from_programs(
            "/x".into(),
            vec![prog(10, &[null, zero]), prog(11, &[null, urandom])],
        )
        .expect("programs");
        assert!(eff.allows(&DeviceAccess::char(1, 3, rw)).expect("eval"));
        let v = eff
            .verdict(&DeviceAccess::char(1, 5, Access::READ))
            .expect("eval");
        assert_eq!(v.denied_by, vec![11]);
        let v = eff
            .verdict(&DeviceAccess::char(1, 7, Access::READ))
            .expect("eval");
        assert_eq!(v.denied_by, vec![10, 11]);
    }

    #[test]
    fn no_program_allows_everything() {
        let eff = EffectivePrograms::from_programs("/x".into(), vec![]).expect("empty");
        assert!(eff
            .allows(&DeviceAccess::block(8, 0, Access::ALL))
            .expect("eval"));
    }

    #[test]
    fn evaluate_asks_both_hierarchies() {
        let rw = Access::parse("rw").expect("rw");
        let v1 = Emulator::from_rules(&[
            DeviceRule::allow_char(1, 3, rw),
            DeviceRule::allow_char(1, 9, rw),
        ])
        .expect("rules");
        let v2 = EffectivePrograms::from_programs(
            "/x".into(),
            vec![prog(
                1,
                &[
                    DeviceRule::allow_char(1, 3, rw),
                    DeviceRule::allow_char(1, 5, rw),
                ],
            )],
        )
        .expect("programs");
        let ask = |minor| {
            DeviceVerdict::evaluate(Some(&v1), Some(&v2), &DeviceAccess::char(1, minor, rw))
                .expect("eval")
        };
        assert!(ask(3).allowed());
        assert_eq!(ask(5).refused_by(), vec!["v1"]);
        assert_eq!(ask(9).refused_by(), vec!["v2"]);
        assert_eq!(ask(7).refused_by(), vec!["v1", "v2"]);
        let only_v2 =
            DeviceVerdict::evaluate(None, Some(&v2), &DeviceAccess::char(1, 5, rw)).expect("eval");
        assert!(only_v2.allowed());
        assert!(!only_v2.v1_hidden_denies);
    }

    #[test]
    fn verdict_combines_hierarchies() {
        assert!(DeviceVerdict::new(Some(true), Some(true)).allowed());
        assert!(DeviceVerdict::new(None, None).allowed());
        assert!(DeviceVerdict::new(None, Some(true)).allowed());
        let v = DeviceVerdict::new(Some(true), Some(false));
        assert!(!v.allowed());
        assert_eq!(v.refused_by(), vec!["v2"]);
        let v = DeviceVerdict::new(Some(false), None);
        assert!(!v.allowed());
        assert_eq!(v.refused_by(), vec!["v1"]);
    }
}
