//! The syscall seam for cgroup device programs: raw `bpf(2)`.
//!
//! Seven commands and nothing else: `BPF_PROG_LOAD`, `BPF_PROG_ATTACH`
//! (with `BPF_F_ALLOW_MULTI`, and `BPF_F_REPLACE` for atomic replacement),
//! `BPF_PROG_DETACH`, `BPF_PROG_QUERY`, `BPF_PROG_GET_FD_BY_ID` and
//! `BPF_OBJ_GET_INFO_BY_FD`. Raw syscalls rather than `aya`: aya is built
//! around ELF objects and links, and (as of 0.13) exposes neither
//! `BPF_F_REPLACE` on program attach nor `xlated_prog_insns`, the two things
//! this module exists for; the attributes below are a few fixed uapi layouts.
//!
//! Every file descriptor is an [`OwnedFd`]; all `unsafe` in the bpf module
//! lives here, each block with its `// SAFETY:` argument.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

use super::insn::{decode, encode, Insn, INSN_SIZE};
use crate::error::{IoContext, WrappedIoError};

// enum bpf_cmd.
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_PROG_QUERY: libc::c_long = 16;

/// `BPF_PROG_TYPE_CGROUP_DEVICE`.
pub const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
/// `BPF_CGROUP_DEVICE`, the attach type of device programs.
pub const BPF_CGROUP_DEVICE: u32 = 6;
/// `BPF_F_ALLOW_OVERRIDE`: a descendant's program replaces this one.
pub const BPF_F_ALLOW_OVERRIDE: u32 = 1;
/// `BPF_F_ALLOW_MULTI`: programs of this cgroup and its ancestors all run,
/// and all must allow.
pub const BPF_F_ALLOW_MULTI: u32 = 2;
/// `BPF_F_REPLACE`: swap `replace_bpf_fd` for the new program in place.
pub const BPF_F_REPLACE: u32 = 4;
/// `BPF_F_QUERY_EFFECTIVE`: list the programs that actually run for this
/// cgroup (its own and inherited ones), in run order.
pub const BPF_F_QUERY_EFFECTIVE: u32 = 1;

/// Name given to programs we load; `bpftool prog` shows it.
pub const PROGRAM_NAME: &str = "warden_devices";

/// A `bpf(2)` failure.
#[derive(Debug, thiserror::Error)]
pub enum BpfError {
    /// A command failed.
    #[error("bpf({cmd}) on {target}: {source}")]
    Syscall {
        /// The command (`BPF_PROG_ATTACH`, ...).
        cmd: &'static str,
        /// What it was applied to ("cgroup fd 5", "prog id 42").
        target: String,
        /// The errno.
        #[source]
        source: io::Error,
    },
    /// The verifier refused a program; its log says why.
    #[error("BPF_PROG_LOAD refused the device program: {source}\nverifier log:\n{log}")]
    Verifier {
        /// The errno.
        #[source]
        source: io::Error,
        /// The verifier's log (level 1).
        log: String,
    },
    /// The cgroup directory could not be opened.
    #[error(transparent)]
    Open(#[from] WrappedIoError),
    /// The kernel answered with something this module cannot read.
    #[error("bpf({cmd}): {detail}")]
    Unexpected {
        /// The command.
        cmd: &'static str,
        /// What was wrong.
        detail: String,
    },
}

impl BpfError {
    /// A request this host cannot serve (no bpf(2) on a fixture root).
    pub fn unsupported(what: &str) -> Self {
        BpfError::Unexpected {
            cmd: "none",
            detail: format!("not available: {what}"),
        }
    }

    /// The errno, where there is one.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            BpfError::Syscall { source, .. } | BpfError::Verifier { source, .. } => {
                source.raw_os_error()
            }
            BpfError::Open(e) => e.source.raw_os_error(),
            BpfError::Unexpected { .. } => None,
        }
    }
}

// The `union bpf_attr` members used here, with the uapi field order.

#[repr(C)]
#[derive(Clone, Copy)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
    prog_attach_flags: u64,
    link_ids: u64,
    link_attach_flags: u64,
    // Written back by kernels with multi-prog revisions (6.6+); it must lie
    // inside the buffer we pass.
    revision: u64,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct GetIdAttr {
    id: u32,
    next_id: u32,
    open_flags: u32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// `union bpf_attr`, zero-filled to a size larger than any kernel's, so
/// that fields the kernel writes back always land inside it and every byte
/// we do not set is the zero the kernel demands.
#[repr(C, align(8))]
union Attr {
    raw: [u64; 32],
    load: ProgLoadAttr,
    attach: AttachAttr,
    query: QueryAttr,
    get_id: GetIdAttr,
    info: InfoAttr,
}

impl Attr {
    fn zeroed() -> Attr {
        Attr { raw: [0; 32] }
    }
}

/// The leading part of `struct bpf_prog_info` (uapi order). The kernel
/// copies back only `info_len` bytes, so a prefix is enough.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct RawProgInfo {
    prog_type: u32,
    id: u32,
    tag: [u8; 8],
    jited_prog_len: u32,
    xlated_prog_len: u32,
    jited_prog_insns: u64,
    xlated_prog_insns: u64,
    load_time: u64,
    created_by_uid: u32,
    nr_map_ids: u32,
    map_ids: u64,
    name: [u8; 16],
}

/// Issue one `bpf(2)` command; the return value on success.
fn sys_bpf(cmd: libc::c_long, attr: &mut Attr) -> io::Result<libc::c_long> {
    let size = std::mem::size_of::<Attr>() as libc::c_long;
    // SAFETY: `attr` is a live, exclusively borrowed, 8-aligned buffer of
    // `size` bytes; the kernel reads at most `size` bytes and writes only
    // fields of the command's member, all inside it. Pointers stored in the
    // attributes are set by the callers to buffers that outlive this call.
    let ret = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut Attr, size) };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Wrap a new fd returned by the kernel.
fn owned_fd(ret: libc::c_long, cmd: &'static str) -> Result<OwnedFd, BpfError> {
    let fd = i32::try_from(ret).map_err(|_| BpfError::Unexpected {
        cmd,
        detail: format!("returned {ret}, not a file descriptor"),
    })?;
    // SAFETY: on success these commands return a new file descriptor that
    // nothing else in this process owns; wrapping it makes us its only
    // owner, so it is closed exactly once.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Open a cgroup v2 directory as an attach/query target.
pub fn open_cgroup(dir: &Path) -> Result<OwnedFd, BpfError> {
    let f = std::fs::File::open(dir).with_path("open cgroup", dir)?;
    Ok(f.into())
}

/// Load a device program. On refusal the load is repeated with the
/// verifier log on, and the error carries the log.
pub fn load_device_program(insns: &[Insn]) -> Result<OwnedFd, BpfError> {
    match load(insns, None) {
        Ok(ret) => owned_fd(ret, "BPF_PROG_LOAD"),
        Err(first) => {
            let mut log = vec![0u8; 256 * 1024];
            match load(insns, Some(&mut log)) {
                // The retry passing is unexpected but harmless: use it.
                Ok(ret) => owned_fd(ret, "BPF_PROG_LOAD"),
                Err(_) => {
                    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
                    Err(BpfError::Verifier {
                        source: first,
                        log: String::from_utf8_lossy(&log[..end]).into_owned(),
                    })
                }
            }
        }
    }
}

/// One `BPF_PROG_LOAD`; the new fd number on success.
fn load(insns: &[Insn], log: Option<&mut Vec<u8>>) -> io::Result<libc::c_long> {
    let code = encode(insns);
    // The license matters only for GPL-only helpers, which device programs
    // do not call; it must still be a valid string.
    let license = CString::new("Apache-2.0").map_err(io::Error::other)?;
    let mut name = [0u8; 16];
    name[..PROGRAM_NAME.len()].copy_from_slice(PROGRAM_NAME.as_bytes());
    let (log_level, log_size, log_buf) = match log {
        Some(buf) => (1, buf.len() as u32, buf.as_mut_ptr() as u64),
        None => (0, 0, 0),
    };
    let mut attr = Attr::zeroed();
    attr.load = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: insns.len() as u32,
        insns: code.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level,
        log_size,
        log_buf,
        kern_version: 0,
        prog_flags: 0,
        prog_name: name,
        prog_ifindex: 0,
        expected_attach_type: BPF_CGROUP_DEVICE,
    };
    sys_bpf(BPF_PROG_LOAD, &mut attr)
}

fn attach_raw(
    cgroup: BorrowedFd<'_>,
    prog: BorrowedFd<'_>,
    flags: u32,
    replace: Option<BorrowedFd<'_>>,
) -> Result<(), BpfError> {
    let mut attr = Attr::zeroed();
    attr.attach = AttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: flags,
        replace_bpf_fd: replace.map_or(0, |r| r.as_raw_fd() as u32),
    };
    sys_bpf(BPF_PROG_ATTACH, &mut attr)
        .map(drop)
        .map_err(|source| BpfError::Syscall {
            cmd: "BPF_PROG_ATTACH",
            target: format!("cgroup fd {}", cgroup.as_raw_fd()),
            source,
        })
}

/// Attach `prog` to `cgroup` with `BPF_F_ALLOW_MULTI`: it runs alongside
/// the cgroup's other programs and its ancestors', and all must allow.
pub fn attach_multi(cgroup: BorrowedFd<'_>, prog: BorrowedFd<'_>) -> Result<(), BpfError> {
    attach_raw(cgroup, prog, BPF_F_ALLOW_MULTI, None)
}

/// Atomically put `new` in the place of the attached `old`
/// (`BPF_F_ALLOW_MULTI | BPF_F_REPLACE`): the kernel swaps the entry in the
/// cgroup's program array, so every device check runs either the old or the
/// new program, never neither and never a gap. `EINVAL` where the kernel is
/// older than 5.6; `ENOENT` when `old` is not attached here.
pub fn replace(
    cgroup: BorrowedFd<'_>,
    new: BorrowedFd<'_>,
    old: BorrowedFd<'_>,
) -> Result<(), BpfError> {
    attach_raw(cgroup, new, BPF_F_ALLOW_MULTI | BPF_F_REPLACE, Some(old))
}

/// Detach `prog` from `cgroup`.
pub fn detach(cgroup: BorrowedFd<'_>, prog: BorrowedFd<'_>) -> Result<(), BpfError> {
    let mut attr = Attr::zeroed();
    attr.attach = AttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: 0,
        replace_bpf_fd: 0,
    };
    sys_bpf(BPF_PROG_DETACH, &mut attr)
        .map(drop)
        .map_err(|source| BpfError::Syscall {
            cmd: "BPF_PROG_DETACH",
            target: format!("cgroup fd {}", cgroup.as_raw_fd()),
            source,
        })
}

/// The device programs of a cgroup, as `BPF_PROG_QUERY` lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attached {
    /// The cgroup's attach flags for device programs (`BPF_F_ALLOW_MULTI`,
    /// ...; 0 when none is attached). For an effective query, the kernel
    /// reports the flags of this cgroup's own attachment.
    pub attach_flags: u32,
    /// Program ids, in the order the kernel runs them.
    pub prog_ids: Vec<u32>,
}

/// List the device programs attached to `cgroup`; with `effective`, every
/// program that runs for it, its ancestors' included (what the kernel
/// actually evaluates on a device access from a task in this cgroup).
pub fn query(cgroup: BorrowedFd<'_>, effective: bool) -> Result<Attached, BpfError> {
    let err = |source| BpfError::Syscall {
        cmd: "BPF_PROG_QUERY",
        target: format!("cgroup fd {}", cgroup.as_raw_fd()),
        source,
    };
    let query_flags = if effective { BPF_F_QUERY_EFFECTIVE } else { 0 };
    // Programs may be attached between the count and the listing; the
    // kernel then says ENOSPC with the new count, and we ask again.
    let mut cap = 8usize;
    for _ in 0..16 {
        let mut ids = vec![0u32; cap];
        let mut attr = Attr::zeroed();
        attr.query = QueryAttr {
            target_fd: cgroup.as_raw_fd() as u32,
            attach_type: BPF_CGROUP_DEVICE,
            query_flags,
            attach_flags: 0,
            prog_ids: ids.as_mut_ptr() as u64,
            prog_cnt: cap as u32,
            _pad: 0,
            prog_attach_flags: 0,
            link_ids: 0,
            link_attach_flags: 0,
            revision: 0,
        };
        let res = sys_bpf(BPF_PROG_QUERY, &mut attr);
        // SAFETY: `query` is the member just written and the one the kernel
        // wrote back into; every bit pattern is a valid `QueryAttr`.
        let out = unsafe { attr.query };
        match res {
            Ok(_) => {
                ids.truncate(out.prog_cnt as usize);
                return Ok(Attached {
                    attach_flags: out.attach_flags,
                    prog_ids: ids,
                });
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
                cap = (out.prog_cnt as usize).max(cap * 2);
            }
            Err(e) => return Err(err(e)),
        }
    }
    Err(BpfError::Unexpected {
        cmd: "BPF_PROG_QUERY",
        detail: "the program list kept growing".into(),
    })
}

/// An fd for the program with this id (needs CAP_SYS_ADMIN). `ENOENT` when
/// it is gone.
pub fn prog_fd_by_id(id: u32) -> Result<OwnedFd, BpfError> {
    let mut attr = Attr::zeroed();
    attr.get_id = GetIdAttr {
        id,
        next_id: 0,
        open_flags: 0,
    };
    let ret = sys_bpf(BPF_PROG_GET_FD_BY_ID, &mut attr).map_err(|source| BpfError::Syscall {
        cmd: "BPF_PROG_GET_FD_BY_ID",
        target: format!("prog id {id}"),
        source,
    })?;
    owned_fd(ret, "BPF_PROG_GET_FD_BY_ID")
}

/// What the kernel says about a loaded program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgInfo {
    /// Program id (what `bpftool prog` and `BPF_PROG_QUERY` show).
    pub id: u32,
    /// `enum bpf_prog_type`.
    pub prog_type: u32,
    /// The program tag (hash of its original instructions).
    pub tag: [u8; 8],
    /// Name given at load time (empty for unnamed programs).
    pub name: String,
    /// The instructions as the verifier left them (`xlated_prog_insns`):
    /// what the kernel runs before JIT. These may differ from what was
    /// loaded (dead code removed, branches rewritten).
    pub xlated: Vec<Insn>,
}

fn get_info(prog: BorrowedFd<'_>, info: &mut RawProgInfo) -> Result<(), BpfError> {
    let mut attr = Attr::zeroed();
    attr.info = InfoAttr {
        bpf_fd: prog.as_raw_fd() as u32,
        info_len: std::mem::size_of::<RawProgInfo>() as u32,
        info: info as *mut RawProgInfo as u64,
    };
    sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)
        .map(drop)
        .map_err(|source| BpfError::Syscall {
            cmd: "BPF_OBJ_GET_INFO_BY_FD",
            target: format!("prog fd {}", prog.as_raw_fd()),
            source,
        })
}

/// Read a program's id, type, name and translated instructions.
pub fn prog_info(prog: BorrowedFd<'_>) -> Result<ProgInfo, BpfError> {
    // First ask for the sizes only (every length 0: nothing is copied).
    let mut first = RawProgInfo::default();
    get_info(prog, &mut first)?;
    let len = first.xlated_prog_len as usize;
    let mut buf = vec![0u8; len];
    let mut info = RawProgInfo {
        xlated_prog_len: len as u32,
        xlated_prog_insns: buf.as_mut_ptr() as u64,
        ..RawProgInfo::default()
    };
    get_info(prog, &mut info)?;
    // A program's instructions never change after load; a different length
    // means we misread the layout, and a zero one that the kernel withheld
    // them (no CAP_BPF / CAP_SYS_ADMIN).
    if len == 0 || info.xlated_prog_len as usize != len {
        return Err(BpfError::Unexpected {
            cmd: "BPF_OBJ_GET_INFO_BY_FD",
            detail: format!(
                "xlated length {} then {} (instructions withheld?)",
                len, info.xlated_prog_len
            ),
        });
    }
    let xlated = decode(&buf).ok_or_else(|| BpfError::Unexpected {
        cmd: "BPF_OBJ_GET_INFO_BY_FD",
        detail: format!("xlated length {len} is not a multiple of {INSN_SIZE}"),
    })?;
    let name_end = info.name.iter().position(|&b| b == 0).unwrap_or(16);
    Ok(ProgInfo {
        id: info.id,
        prog_type: info.prog_type,
        tag: info.tag,
        name: String::from_utf8_lossy(&info.name[..name_end]).into_owned(),
        xlated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attr_layouts_match_uapi_offsets() {
        use std::mem::{offset_of, size_of};
        assert_eq!(offset_of!(ProgLoadAttr, log_buf), 32);
        assert_eq!(offset_of!(ProgLoadAttr, prog_name), 48);
        assert_eq!(offset_of!(ProgLoadAttr, expected_attach_type), 68);
        assert_eq!(offset_of!(AttachAttr, replace_bpf_fd), 16);
        assert_eq!(offset_of!(QueryAttr, prog_ids), 16);
        assert_eq!(offset_of!(QueryAttr, prog_cnt), 24);
        assert_eq!(offset_of!(QueryAttr, revision), 56);
        assert_eq!(offset_of!(InfoAttr, info), 8);
        assert_eq!(offset_of!(RawProgInfo, xlated_prog_insns), 32);
        assert_eq!(offset_of!(RawProgInfo, name), 64);
        assert_eq!(size_of::<Attr>(), 256);
    }
}
