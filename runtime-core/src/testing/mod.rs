//! Prerequisite checks for tests that need root, a kernel feature or a tool.
//!
//! A test that cannot run here skips *with a printed reason*. Where skipping
//! would hide a gap (CI, or the README test command, which sets
//! `WARDEN_NO_SKIP=1`), the same call fails the test instead.

use std::path::Path;

pub mod fakes;
pub mod fixtures;

pub use fakes::{Call, CallLog, FakePorts};

/// Whether skipping is forbidden in this run (`CI=true` or `WARDEN_NO_SKIP=1`).
pub fn skipping_forbidden() -> bool {
    std::env::var("WARDEN_NO_SKIP").is_ok_and(|v| v == "1")
        || std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Skip (return `false` after printing why) or, where skipping is forbidden,
/// panic with the reason. Use as `if !testing::require(cond, "why") { return; }`.
pub fn require(ok: bool, reason: &str) -> bool {
    if ok {
        return true;
    }
    if skipping_forbidden() {
        panic!("prerequisite missing and skipping is forbidden here: {reason}");
    }
    eprintln!("SKIPPED: {reason}");
    false
}

/// Whether this process runs with effective uid 0.
pub fn is_root() -> bool {
    crate::host::running_as_root()
}

/// Require root.
pub fn require_root(test: &str) -> bool {
    require(is_root(), &format!("{test}: needs root"))
}

/// Require an executable on `PATH` (or an absolute path).
pub fn require_tool(test: &str, tool: &str) -> bool {
    require(
        which(tool).is_some(),
        &format!("{test}: needs `{tool}` installed"),
    )
}

/// Require a path to exist (a cgroup hierarchy, a device node...).
pub fn require_path(test: &str, path: &Path) -> bool {
    require(path.exists(), &format!("{test}: needs {}", path.display()))
}

/// Look a tool up on `PATH`.
pub fn which(tool: &str) -> Option<std::path::PathBuf> {
    if tool.contains('/') {
        let p = Path::new(tool);
        return p.exists().then(|| p.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].iter().map(Into::into))
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// A cgroup made for one test (`<base>/warden-test-<pid>-<name>`), removed on
/// drop even when the test fails: thawed first, what is inside killed
/// (bounded), then the directory removed (retried while the kernel still
/// releases the last task).
#[derive(Debug)]
pub struct TestCgroup {
    /// The cgroup directory.
    pub dir: std::path::PathBuf,
}

impl TestCgroup {
    /// Create the cgroup under `base` (a v1 hierarchy or the v2 root).
    pub fn new(base: &str, test: &str) -> Self {
        let dir = Path::new(base).join(format!("warden-test-{}-{test}", std::process::id()));
        if let Err(e) = std::fs::create_dir(&dir) {
            panic!("mkdir {}: {e}", dir.display());
        }
        Self { dir }
    }

    /// Move process `pid` into it.
    pub fn add(&self, pid: u32) {
        if let Err(e) = std::fs::write(self.dir.join("cgroup.procs"), pid.to_string()) {
            panic!("move {pid} into {}: {e}", self.dir.display());
        }
    }

    /// The processes in it.
    pub fn procs(&self) -> Vec<i32> {
        std::fs::read_to_string(self.dir.join("cgroup.procs"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        use std::time::{Duration, Instant};
        // A frozen task cannot die: thaw whichever freezer this is.
        let _ = std::fs::write(self.dir.join("freezer.state"), "THAWED");
        let _ = std::fs::write(self.dir.join("cgroup.freeze"), "0");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let pids = self.procs();
            if pids.is_empty() || Instant::now() > deadline {
                break;
            }
            for p in pids {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(p),
                    nix::sys::signal::SIGKILL,
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        for _ in 0..100 {
            match std::fs::remove_dir(&self.dir) {
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => return,
            }
        }
        eprintln!("warning: could not remove {}", self.dir.display());
    }
}

/// systemd 252's program for `DeviceAllow=char-pts rwm`, `char-* m`,
/// `block-* m`, as `bpftool prog dump xlated` printed it in seed 003.
pub fn seed_003_systemd_program() -> Vec<crate::devices::bpf::Insn> {
    use crate::devices::bpf::{Insn, Reg as R};
    vec![
        Insn::load_u32(R::R2, R::R1, 0),
        Insn::and32_imm(R::R2, 65535),
        Insn::load_u32(R::R3, R::R1, 0),
        Insn::rsh32_imm(R::R3, 16),
        Insn::load_u32(R::R4, R::R1, 4),
        Insn::load_u32(R::R5, R::R1, 8),
        Insn::mov32_reg(R::R1, R::R3),
        Insn::and32_imm(R::R1, 1),
        Insn::jne_reg(R::R1, R::R3, 2),
        Insn::jne_imm(R::R2, 1, 1),
        Insn::ja(10),
        Insn::mov32_reg(R::R1, R::R3),
        Insn::and32_imm(R::R1, 1),
        Insn::jne_reg(R::R1, R::R3, 2),
        Insn::jne_imm(R::R2, 2, 1),
        Insn::ja(5),
        Insn::jne_imm(R::R2, 2, 2),
        Insn::jne_imm(R::R4, 0x88, 1),
        Insn::ja(2),
        Insn::mov64_imm(R::R0, 0),
        Insn::ja(1),
        Insn::mov64_imm(R::R0, 1),
        Insn::exit(),
    ]
}

/// The runtimes' default device rules ([`crate::devices::expected::runtime_defaults`])
/// plus `/dev/console` (`c 5:1 rwm`), which containerd's default spec adds.
pub fn runtime_defaults_with_console() -> Vec<crate::devices::DeviceRule> {
    let mut rules = crate::devices::expected::runtime_defaults();
    rules.push(crate::devices::DeviceRule::allow_char(
        5,
        1,
        crate::devices::Access::ALL,
    ));
    rules
}
