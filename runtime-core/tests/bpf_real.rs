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
    build, kernel, DeviceAccess, DeviceVerdict, EffectivePrograms, Evaluator, Insn, Reg,
};
use runtime_core::devices::v1::V1DeviceCgroup;
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
    spawn_in_all(&[cg], script)
}

/// [`spawn_in`] for a task placed in several cgroups at once (one per
/// hierarchy: a v1 devices cgroup and a v2 one).
fn spawn_in_all(cgs: &[&Path], script: &str) -> Child {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("read go; {script}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sh");
    for cg in cgs {
        fs::write(cg.join("cgroup.procs"), child.id().to_string()).expect("move child");
    }
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
    probe_in(&[cg], op)
}

/// [`probe`] from a task in several cgroups.
fn probe_in(cgs: &[&Path], op: &str) -> Outcome {
    let script = format!("{op} && echo OK");
    // One operation and exit: nothing to kill if the test fails here (an
    // unreleased shell sees EOF on stdin when we die and ends too).
    let out = spawn_in_all(cgs, &script)
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

/// `bpftool prog dump xlated id N opcodes`, decoded into instructions.
fn bpftool_xlated(id: u32) -> Vec<Insn> {
    let out = Command::new("bpftool")
        .args([
            "-j",
            "prog",
            "dump",
            "xlated",
            "id",
            &id.to_string(),
            "opcodes",
        ])
        .output()
        .expect("run bpftool");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let hex = |x: &serde_json::Value| -> u8 {
        let s = x.as_str().expect("hex string");
        u8::from_str_radix(s.trim_start_matches("0x"), 16).expect("hex byte")
    };
    let le = |x: &serde_json::Value| -> Vec<u8> {
        x.as_array().expect("byte array").iter().map(hex).collect()
    };
    v.as_array()
        .expect("array")
        .iter()
        .map(|i| {
            let o = &i["opcodes"];
            let off = le(&o["off"]);
            let imm = le(&o["imm"]);
            Insn {
                code: hex(&o["code"]),
                dst: hex(&o["dst_reg"]),
                src: hex(&o["src_reg"]),
                off: i16::from_le_bytes([off[0], off[1]]),
                imm: i32::from_le_bytes([imm[0], imm[1], imm[2], imm[3]]),
            }
        })
        .collect()
}

#[test]
fn seed_003_programs_anded_in_the_kernel_deny_dev_null() {
    if !prerequisites("seed_003_programs_anded_in_the_kernel_deny_dev_null") {
        return;
    }
    let cg = TestCgroup::new(Path::new(UNIFIED), "seed003");
    let cgfd = cg.fd();
    // The runtime's own program: /dev/null is allowed.
    let ours = build(false, &testing::runtime_defaults_with_console());
    let runtime_prog = kernel::load_device_program(&ours).expect("load ours");
    kernel::attach_multi(cgfd.as_fd(), runtime_prog.as_fd()).expect("attach ours");
    assert_eq!(probe(&cg.path, &open_op("/dev/null", "rw")), Outcome::Ok);

    // daemon-reload: systemd attaches its program next to it.
    let sd = testing::seed_003_systemd_program();
    let sd_prog = kernel::load_device_program(&sd).expect("load systemd's");
    kernel::attach_multi(cgfd.as_fd(), sd_prog.as_fd()).expect("attach systemd's");

    let eff = EffectivePrograms::read(&cg.path).expect("effective");
    assert_eq!(eff.programs.len(), 2);
    // What the kernel runs is what was loaded, instruction for instruction
    // or at least in meaning (the verifier may rewrite).
    let sd_id = kernel::prog_info(sd_prog.as_fd()).expect("info").id;
    let sd_back = eff
        .programs
        .iter()
        .find(|p| p.id == sd_id)
        .expect("systemd's program is in effect");
    assert_same_semantics(&sd_back.insns, &sd);
    if sd_back.insns != sd {
        eprintln!("note: systemd program xlated differs from loaded:");
        for (i, (a, b)) in sd.iter().zip(&sd_back.insns).enumerate() {
            if a != b {
                eprintln!("  {i}: loaded {a} -> xlated {b}");
            }
        }
    }

    // bpftool reads the same translated instructions: byte for byte.
    if testing::require_tool(
        "seed_003_programs_anded_in_the_kernel_deny_dev_null",
        "bpftool",
    ) {
        assert_eq!(bpftool_xlated(sd_id), sd_back.insns);
    }
    let null_rw = DeviceAccess::char(1, 3, rw());
    let v = eff.verdict(&null_rw).expect("eval");
    assert!(!v.allowed);
    assert_eq!(v.denied_by.len(), 1, "only systemd's program denies");
    assert_eq!(probe(&cg.path, &open_op("/dev/null", "rw")), Outcome::Eperm);
    assert_eq!(
        probe(&cg.path, &open_op("/dev/urandom", "r")),
        Outcome::Eperm
    );
    // The v1 list of this process's devices cgroup allows all here; the
    // combined verdict is still a refusal, from v2.
    let combined = DeviceVerdict::new(Some(true), Some(v.allowed));
    assert!(!combined.allowed());
    assert_eq!(combined.refused_by(), vec!["v2"]);
}

#[test]
fn load_failure_carries_the_verifier_log() {
    if !prerequisites("load_failure_carries_the_verifier_log") {
        return;
    }
    // `exit` with r0 never written.
    let err = kernel::load_device_program(&[Insn::exit()]).expect_err("must be refused");
    match err {
        kernel::BpfError::Verifier { source, log } => {
            assert_eq!(source.raw_os_error(), Some(libc::EACCES), "{log}");
            assert!(log.contains("R0"), "log names the register: {log}");
        }
        other => panic!("expected a verifier error, got {other}"),
    }
}

#[test]
fn verifier_rewrites_in_xlated_code_keep_the_meaning() {
    if !prerequisites("verifier_rewrites_in_xlated_code_keep_the_meaning") {
        return;
    }
    // A branch the verifier proves never taken (r0 is 1): privileged loads
    // get it hard-wired, the dead block removed and the resulting no-op
    // jump dropped, so what the kernel gives back is shorter.
    let loaded = vec![
        Insn::mov32_imm(Reg::R0, 1),
        Insn::jeq_imm(Reg::R0, 0, 2),
        Insn::mov32_imm(Reg::R0, 1),
        Insn::exit(),
        Insn::mov32_imm(Reg::R0, 0),
        Insn::exit(),
    ];
    let prog = kernel::load_device_program(&loaded).expect("load");
    let info = kernel::prog_info(prog.as_fd()).expect("info");
    let back = info.xlated;
    eprintln!(
        "loaded {} insns, kernel gave back {}",
        loaded.len(),
        back.len()
    );
    for i in &back {
        eprintln!("  {i}");
    }
    assert!(back.len() < loaded.len(), "dead code is removed: {back:?}");
    // The rewrite is the kernel's: bpftool sees the same instructions.
    if testing::require_tool(
        "verifier_rewrites_in_xlated_code_keep_the_meaning",
        "bpftool",
    ) {
        assert_eq!(bpftool_xlated(info.id), back);
    }
    assert_same_semantics(&back, &loaded);
}

/// A shell in `cg` opening `dev` read-write in a loop until `stop` exists,
/// then printing "<opens> <failures>"; failures' messages go to `err`.
fn open_loop(cg: &Path, dev: &str, stop: &Path, err: &Path) -> Shell {
    let script = format!(
        "exec 2>{err}; echo ready; n=0; e=0; \
         while [ ! -e {stop} ]; do true <>{dev} || e=$((e+1)); n=$((n+1)); done; \
         echo \"$n $e\"",
        err = err.display(),
        stop = stop.display(),
    );
    Shell(spawn_in(cg, &script))
}

/// Read the loop's "ready" line (it runs from then on) and later its
/// counts.
fn read_line(r: &mut impl BufRead) -> String {
    let mut line = String::new();
    r.read_line(&mut line).expect("read child line");
    line.trim().to_string()
}

#[test]
fn atomic_replace_never_opens_a_window() {
    if !prerequisites("atomic_replace_never_opens_a_window") {
        return;
    }
    let cg = TestCgroup::new(Path::new(UNIFIED), "replace");
    let cgfd = cg.fd();
    let tmp = tempfile::tempdir().expect("tempdir");
    // A narrow program (only /dev/null and ptys: what a broken rule set
    // leaves) and the correct default set. /dev/null is in both.
    let narrow = build(
        false,
        &[
            allow(1, 3),
            DeviceRule {
                allow: true,
                kind: DeviceType::Char,
                major: Some(136),
                minor: None,
                access: Access::ALL,
            },
        ],
    );
    let correct = build(false, &testing::runtime_defaults_with_console());
    let mut current = kernel::load_device_program(&narrow).expect("load narrow");
    kernel::attach_multi(cgfd.as_fd(), current.as_fd()).expect("attach");
    assert_eq!(probe(&cg.path, &open_op("/dev/zero", "r")), Outcome::Eperm);

    let mut shell = open_loop(
        &cg.path,
        "/dev/null",
        &tmp.path().join("stop"),
        &tmp.path().join("err"),
    );
    let mut out = BufReader::new(shell.0.stdout.take().expect("stdout"));
    assert_eq!(read_line(&mut out), "ready");

    // Several hundred replaces, each loading a fresh program as a runtime's
    // update does, alternating narrow and correct.
    const REPLACES: usize = 400;
    for i in 0..REPLACES {
        let next = if i % 2 == 0 { &correct } else { &narrow };
        let new = kernel::load_device_program(next).expect("load next");
        kernel::replace(cgfd.as_fd(), new.as_fd(), current.as_fd()).expect("replace");
        current = new;
        // Exactly one program at every step: replaced, not added.
        if i % 50 == 0 {
            let ids = kernel::query(cgfd.as_fd(), false).expect("query").prog_ids;
            assert_eq!(ids.len(), 1, "after replace {i}");
        }
    }
    fs::write(tmp.path().join("stop"), "").expect("stop loop");
    let counts = read_line(&mut out);
    let mut it = counts
        .split_whitespace()
        .map(|x| x.parse::<u64>().expect("count"));
    let (opens, failures) = (it.next().expect("opens"), it.next().expect("failures"));
    let err = fs::read_to_string(tmp.path().join("err")).unwrap_or_default();
    eprintln!("{REPLACES} replaces during {opens} opens of /dev/null: {failures} failures");
    assert!(opens > 0, "the loop ran");
    assert_eq!(failures, 0, "EPERM during atomic replace: {err}");
    // The last replace installed `narrow` (REPLACES is even), which keeps
    // /dev/null and still refuses /dev/zero.
    let eff = EffectivePrograms::read(&cg.path).expect("effective");
    assert_same_semantics(&eff.programs[0].insns, &narrow);
    assert_eq!(probe(&cg.path, &open_op("/dev/zero", "r")), Outcome::Eperm);

    // The detector has teeth: the same loop under a program that refuses
    // /dev/null counts failures.
    let stop2 = tmp.path().join("stop2");
    let mut shell2 = open_loop(&cg.path, "/dev/null", &stop2, &tmp.path().join("err2"));
    let mut out2 = BufReader::new(shell2.0.stdout.take().expect("stdout"));
    assert_eq!(read_line(&mut out2), "ready");
    let deny = kernel::load_device_program(&build(false, &[])).expect("load deny-all");
    kernel::replace(cgfd.as_fd(), deny.as_fd(), current.as_fd()).expect("replace");
    std::thread::sleep(Duration::from_millis(50));
    fs::write(&stop2, "").expect("stop loop 2");
    let counts = read_line(&mut out2);
    let failures: u64 = counts
        .split_whitespace()
        .nth(1)
        .and_then(|x| x.parse().ok())
        .expect("failures");
    assert!(
        failures > 0,
        "a denying program is seen by the loop: {counts}"
    );
    let err2 = fs::read_to_string(tmp.path().join("err2")).unwrap_or_default();
    assert!(err2.contains("not permitted"), "{err2}");
    drop(shell);
}

#[test]
fn effective_programs_include_ancestors() {
    if !prerequisites("effective_programs_include_ancestors") {
        return;
    }
    let parent = TestCgroup::new(Path::new(UNIFIED), "ancestors");
    let child = TestCgroup::new(&parent.path, "child");
    let (pfd, cfd) = (parent.fd(), child.fd());
    // Parent: null and zero. Child: null and urandom. Effective: null only.
    let p_prog = kernel::load_device_program(&build(false, &[allow(1, 3), allow(1, 5)]))
        .expect("load parent's");
    let c_prog = kernel::load_device_program(&build(false, &[allow(1, 3), allow(1, 9)]))
        .expect("load child's");
    kernel::attach_multi(pfd.as_fd(), p_prog.as_fd()).expect("attach parent");
    kernel::attach_multi(cfd.as_fd(), c_prog.as_fd()).expect("attach child");
    let p_id = kernel::prog_info(p_prog.as_fd()).expect("info").id;
    let c_id = kernel::prog_info(c_prog.as_fd()).expect("info").id;

    assert_eq!(
        kernel::query(cfd.as_fd(), false).expect("q").prog_ids,
        vec![c_id]
    );
    let effective = kernel::query(cfd.as_fd(), true).expect("q").prog_ids;
    assert_eq!(effective.len(), 2);
    assert!(effective.contains(&p_id) && effective.contains(&c_id));

    let eff = EffectivePrograms::read(&child.path).expect("effective");
    for (dev, minor) in [("/dev/null", 3), ("/dev/zero", 5), ("/dev/urandom", 9)] {
        let predicted = eff
            .allows(&DeviceAccess::char(1, minor, Access::READ))
            .expect("eval");
        let expected = if predicted {
            Outcome::Ok
        } else {
            Outcome::Eperm
        };
        assert_eq!(probe(&child.path, &open_op(dev, "r")), expected, "{dev}");
    }
    assert!(eff.allows(&DeviceAccess::char(1, 3, rw())).expect("eval"));
    assert!(!eff
        .allows(&DeviceAccess::char(1, 5, Access::READ))
        .expect("eval"));
    assert!(!eff
        .allows(&DeviceAccess::char(1, 9, Access::READ))
        .expect("eval"));

    // Cross-check with bpftool: the child's own list and the effective one.
    if testing::require_tool("effective_programs_include_ancestors", "bpftool") {
        let ids = |extra: &[&str]| -> Vec<u64> {
            let out = Command::new("bpftool")
                .args(["-j", "cgroup", "list"])
                .arg(&child.path)
                .args(extra)
                .output()
                .expect("run bpftool");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
            v.as_array()
                .expect("array")
                .iter()
                .filter(|p| p["attach_type"] == "cgroup_device")
                .map(|p| p["id"].as_u64().expect("id"))
                .collect()
        };
        assert_eq!(ids(&[]), vec![u64::from(c_id)]);
        let mut eff_ids = ids(&["effective"]);
        eff_ids.sort_unstable();
        let mut want = vec![u64::from(p_id), u64::from(c_id)];
        want.sort_unstable();
        assert_eq!(eff_ids, want);
    }

    kernel::detach(cfd.as_fd(), c_prog.as_fd()).expect("detach child's");
    let eff = EffectivePrograms::read(&child.path).expect("effective");
    assert_eq!(
        eff.programs.iter().map(|p| p.id).collect::<Vec<_>>(),
        vec![p_id]
    );
    assert_eq!(probe(&child.path, &open_op("/dev/zero", "r")), Outcome::Ok);
}

#[test]
fn hybrid_task_needs_both_v1_list_and_v2_programs() {
    let test = "hybrid_task_needs_both_v1_list_and_v2_programs";
    let v1_root = Path::new("/sys/fs/cgroup/devices");
    if !prerequisites(test) || !testing::require_path(test, &v1_root.join("devices.allow")) {
        return;
    }
    // v1: an allow list of /dev/null and /dev/urandom.
    let v1 = TestCgroup::new(v1_root, "hybrid");
    fs::write(v1.path.join("devices.deny"), "a").expect("deny all (v1)");
    for line in ["c 1:3 rwm", "c 1:9 rwm"] {
        fs::write(v1.path.join("devices.allow"), line).expect("allow (v1)");
    }
    // v2: a program allowing /dev/null and /dev/zero.
    let v2 = TestCgroup::new(Path::new(UNIFIED), "hybrid");
    let prog =
        kernel::load_device_program(&build(false, &[allow(1, 3), allow(1, 5)])).expect("load");
    kernel::attach_multi(v2.fd().as_fd(), prog.as_fd()).expect("attach");

    let emu = V1DeviceCgroup::new(&v1.path)
        .read()
        .expect("read devices.list");
    let eff = EffectivePrograms::read(&v2.path).expect("effective");
    for (dev, minor, refused_by) in [
        ("/dev/null", 3, vec![]),
        ("/dev/zero", 5, vec!["v1"]),
        ("/dev/urandom", 9, vec!["v2"]),
        ("/dev/full", 7, vec!["v1", "v2"]),
    ] {
        let req = DeviceAccess::char(1, minor, Access::READ);
        let verdict = DeviceVerdict::evaluate(Some(&emu), Some(&eff), &req).expect("eval");
        assert_eq!(verdict.refused_by(), refused_by, "{dev}");
        let expected = if verdict.allowed() {
            Outcome::Ok
        } else {
            Outcome::Eperm
        };
        assert_eq!(
            probe_in(&[&v1.path, &v2.path], &open_op(dev, "r")),
            expected,
            "{dev}: predicted {verdict:?}"
        );
    }
}
