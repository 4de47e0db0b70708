//! Real-kernel tests of cgroup v2 device programs (root, bpf(2), the
//! unified hierarchy at /sys/fs/cgroup/unified).
//!
//! Each test makes its own cgroup under the unified hierarchy, moves a
//! shell into it, and has that shell open devices: the kernel's answer is
//! compared with what the interpreter says about the programs read back.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use runtime_core::devices::bpf::{
    build, kernel, DeviceAccess, EffectivePrograms, Evaluator, Insn, Reg,
};
use runtime_core::devices::{Access, DeviceRule, DeviceType};
use runtime_core::testing;

const UNIFIED: &str = "/sys/fs/cgroup/unified";

/// Everything a test needs before touching the kernel; prints SKIPPED (or
/// fails where skipping is forbidden) otherwise.
fn prerequisites(test: &str) -> bool {
    testing::require_root(test)
        && testing::require_path(test, Path::new(UNIFIED).join("cgroup.procs").as_path())
        && testing::require_tool(test, "sh")
}

/// A cgroup v2 directory that is removed on drop, also when the test
/// fails. Programs attached to it go with it.
struct TestCgroup {
    path: PathBuf,
}

impl TestCgroup {
    fn new(parent: &Path, test: &str) -> Self {
        let path = parent.join(format!("warden-bpf-{}-{test}", std::process::id()));
        fs::create_dir(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        Self { path }
    }

    fn fd(&self) -> OwnedFd {
        kernel::open_cgroup(&self.path).expect("open cgroup")
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        for _ in 0..100 {
            match fs::remove_dir(&self.path) {
                Ok(()) => return,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        eprintln!("warning: could not remove {}", self.path.display());
    }
}

/// A shell child that is killed and reaped on drop.
struct Shell(Child);

impl Drop for Shell {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start `sh -c script` inside `cg`: the shell waits on stdin until it has
/// been moved, so everything the script does happens inside the cgroup.
fn spawn_in(cg: &Path, script: &str) -> Child {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("read go; {script}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sh");
    fs::write(cg.join("cgroup.procs"), child.id().to_string()).expect("move child");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"go\n").expect("release child");
    child
}

/// How a child's open ended.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Ok,
    Eperm,
    Other(String),
}

/// Have a process inside `cg` do one device operation: a shell
/// redirection (`<>/dev/null`, `</dev/zero`, `>/dev/full`) or a mknod.
fn probe(cg: &Path, op: &str) -> Outcome {
    let script = format!("{op} && echo OK");
    // One operation and exit: nothing to kill if the test fails here (an
    // unreleased shell sees EOF on stdin when we die and ends too).
    let out = spawn_in(cg, &script)
        .wait_with_output()
        .expect("wait probe");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stdout.contains("OK") {
        Outcome::Ok
    } else if stderr.contains("not permitted") {
        Outcome::Eperm
    } else {
        Outcome::Other(format!("stdout={stdout:?} stderr={stderr:?}"))
    }
}

fn open_op(dev: &str, access: &str) -> String {
    let redirect = match access {
        "r" => "<",
        "w" => ">",
        "rw" => "<>",
        other => panic!("no redirection for {other}"),
    };
    format!("true {redirect}{dev}")
}

fn rw() -> Access {
    Access::parse("rw").expect("rw")
}

fn allow(major: u32, minor: u32) -> DeviceRule {
    DeviceRule::allow_char(major, minor, Access::ALL)
}

/// Every request class the pure tests use, for comparing two programs.
fn all_requests() -> Vec<DeviceAccess> {
    let mut out = Vec::new();
    for kind in [DeviceType::Char, DeviceType::Block] {
        for major in [0, 1, 5, 8, 136, 254, 4095, u32::MAX] {
            for minor in [0, 3, 5, 7, 9, 200, u32::MAX] {
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

fn assert_same_semantics(a: &[Insn], b: &[Insn]) {
    let (ea, eb) = (
        Evaluator::new(a).expect("a runs"),
        Evaluator::new(b).expect("b runs"),
    );
    for req in all_requests() {
        assert_eq!(
            ea.allows(&req).expect("eval a"),
            eb.allows(&req).expect("eval b"),
            "programs disagree on {req}"
        );
    }
}

#[test]
fn attach_query_read_back_evaluate_and_detach() {
    if !prerequisites("attach_query_read_back_evaluate_and_detach") {
        return;
    }
    let cg = TestCgroup::new(Path::new(UNIFIED), "attach");
    let cgfd = cg.fd();
    // Allow /dev/null and mknod of char devices; everything else denied.
    let exceptions = [
        allow(1, 3),
        DeviceRule {
            allow: true,
            kind: DeviceType::Char,
            major: None,
            minor: None,
            access: Access::MKNOD,
        },
    ];
    let insns = build(false, &exceptions);
    let prog = kernel::load_device_program(&insns).expect("load");
    let info = kernel::prog_info(prog.as_fd()).expect("info");
    assert_eq!(info.prog_type, kernel::BPF_PROG_TYPE_CGROUP_DEVICE);
    assert_eq!(info.name, kernel::PROGRAM_NAME);

    assert_eq!(probe(&cg.path, &open_op("/dev/zero", "r")), Outcome::Ok);
    kernel::attach_multi(cgfd.as_fd(), prog.as_fd()).expect("attach");

    let own = kernel::query(cgfd.as_fd(), false).expect("query");
    assert_eq!(own.prog_ids, vec![info.id]);
    assert_eq!(own.attach_flags, kernel::BPF_F_ALLOW_MULTI);

    // Read back through the id, as for a program someone else attached.
    let by_id = kernel::prog_fd_by_id(info.id).expect("fd by id");
    let back = kernel::prog_info(by_id.as_fd()).expect("info by id");
    assert_eq!(back.id, info.id);
    assert_same_semantics(&back.xlated, &insns);
    if back.xlated != insns {
        eprintln!(
            "note: xlated differs from loaded ({} vs {} insns)",
            back.xlated.len(),
            insns.len()
        );
    }

    // The kernel and the interpreter agree on what the cgroup may do.
    let eff = EffectivePrograms::read(&cg.path).expect("effective");
    assert_eq!(eff.programs.len(), 1);
    for (dev, major, minor, access) in [
        ("/dev/null", 1, 3, "rw"),
        ("/dev/null", 1, 3, "r"),
        ("/dev/zero", 1, 5, "r"),
        ("/dev/full", 1, 7, "w"),
    ] {
        let req = DeviceAccess::char(major, minor, Access::parse(access).expect("acc"));
        let predicted = eff.allows(&req).expect("eval");
        let kernel_says = probe(&cg.path, &open_op(dev, access));
        let expected = if predicted {
            Outcome::Ok
        } else {
            Outcome::Eperm
        };
        assert_eq!(
            kernel_says, expected,
            "{dev} {access}: interpreter said {predicted}"
        );
    }
    assert!(eff.allows(&DeviceAccess::char(1, 3, rw())).expect("eval"));
    assert!(!eff
        .allows(&DeviceAccess::char(1, 5, Access::READ))
        .expect("eval"));

    // mknod: allowed by the char mknod exception, so the node is made.
    let tmp = tempfile::tempdir().expect("tempdir");
    let node = tmp.path().join("null");
    assert_eq!(
        probe(&cg.path, &format!("mknod {} c 1 3", node.display())),
        Outcome::Ok
    );
    assert!(node.exists());

    kernel::detach(cgfd.as_fd(), prog.as_fd()).expect("detach");
    assert!(kernel::query(cgfd.as_fd(), false)
        .expect("query")
        .prog_ids
        .is_empty());
    assert_eq!(probe(&cg.path, &open_op("/dev/zero", "r")), Outcome::Ok);
}
