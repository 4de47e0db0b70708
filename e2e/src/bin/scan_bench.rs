//! Scan benchmark: wall time and peak RSS of `warden check --output json`
//! (each run a fresh process, as an operator or the agent's timer runs it)
//! over
//!
//! * `real`: N real runc containers (default 50) under a runc root of
//!   their own, so the scan sees only them (plus the node's processes,
//!   which the seccomp and shim checks always walk);
//! * `synthetic`: a host tree of M containers (default 1000) on tmpfs,
//!   scanned with `--host-root`: half containerd-runc (namespace `k8s.io`,
//!   CRI annotations, one shim process each), 40 % runc, 10 % crun, each
//!   with its `/proc/<pid>` entries, state file, OCI config, v1 devices and
//!   freezer cgroups, plus device nodes, mountinfo and uptime.
//!
//! Each case is validated once (the report must list every container), then
//! run `--runs` times, each under a measuring child that runs nothing but
//! that one `warden` process. Per case: wall-time percentiles, median CPU
//! time (user + system: what other load on the machine does not inflate),
//! `rss_mib` = peak RSS from `getrusage(RUSAGE_CHILDREN)` (warden and the
//! processes it runs: on the real host, the runtimes' `--version` probes,
//! where `containerd --version` alone peaks at 32 MiB) and `warden_rss_mib`
//! = warden's own high-water mark (VmHWM, sampled every 0.5 ms). The
//! synthetic host has no runtime binaries, so both agree there.
//!
//! Prints one line per case, and last, for the synthetic case:
//! `scan containers=N p50_ms=X rss_mib=Y`.
//!
//! Usage (root): `scan_bench --warden target/release/warden [--real N]
//! [--synthetic M] [--runs K]`; `--real 0` skips the real case.

use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

struct Args {
    warden: PathBuf,
    real: usize,
    synthetic: usize,
    runs: usize,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        warden: PathBuf::from("target/release/warden"),
        real: 50,
        synthetic: 1000,
        runs: 15,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--warden" => a.warden = PathBuf::from(val()?),
            "--real" => a.real = val()?.parse().context("--real")?,
            "--synthetic" => a.synthetic = val()?.parse().context("--synthetic")?,
            "--runs" => a.runs = val()?.parse().context("--runs")?,
            other => bail!(
                "unknown argument {other:?}; usage: scan_bench [--warden PATH] [--real N] \
                 [--synthetic M] [--runs K]"
            ),
        }
    }
    if a.runs == 0 {
        bail!("--runs must be at least 1");
    }
    Ok(a)
}

fn main() -> Result<()> {
    let mut argv = std::env::args().skip(1);
    match argv.next().as_deref() {
        Some("measure") => return measure(argv.collect()),
        // `scan_bench tree M DIR`: build the synthetic host in DIR and keep
        // it, to profile `warden check --host-root DIR` by hand.
        Some("tree") => {
            let n: usize = argv.next().context("tree M DIR")?.parse().context("M")?;
            let dir = PathBuf::from(argv.next().context("tree M DIR")?);
            let tree = Synthetic::build_in(dir, n)?;
            std::mem::forget(tree);
            return Ok(());
        }
        _ => {}
    }
    let args = parse_args()?;
    if !args.warden.is_file() {
        bail!(
            "{} not found: build it with `cargo build --release -p warden`",
            args.warden.display()
        );
    }
    if !runtime_core::host::running_as_root() {
        bail!("the scan benchmark needs root (runc containers, device nodes, /proc of all)");
    }
    if args.real > 0 {
        let fleet = RealFleet::start(args.real)?;
        let r = bench(&args, &fleet.warden_args(), args.real)?;
        println!(
            "case real-runc containers={} runs={} p50_ms={:.1} p90_ms={:.1} max_ms={:.1} cpu_p50_ms={:.1} rss_mib={:.1} warden_rss_mib={:.1}",
            args.real,
            args.runs,
            r.p(50),
            r.p(90),
            r.p(100),
            r.cpu_p50_ms,
            r.rss_mib,
            r.own_rss_mib
        );
    }
    let tree = Synthetic::build(args.synthetic)?;
    let r = bench(&args, &tree.warden_args(), args.synthetic)?;
    println!(
        "case synthetic containers={} runs={} p50_ms={:.1} p90_ms={:.1} max_ms={:.1} cpu_p50_ms={:.1} rss_mib={:.1} warden_rss_mib={:.1}",
        args.synthetic,
        args.runs,
        r.p(50),
        r.p(90),
        r.p(100),
        r.cpu_p50_ms,
        r.rss_mib,
        r.own_rss_mib
    );
    drop(tree);
    println!(
        "scan containers={} p50_ms={:.1} rss_mib={:.1}",
        args.synthetic,
        r.p(50),
        r.rss_mib
    );
    Ok(())
}

/// Wall times of the runs, the median CPU time (user + system, which other
/// load on the machine does not inflate) and the peak RSS over all runs.
struct Figures {
    ms: Vec<f64>,
    cpu_p50_ms: f64,
    /// Peak RSS of `warden` and the children it ran (getrusage).
    rss_mib: f64,
    /// Peak RSS of `warden` itself (VmHWM, sampled every 0.5 ms).
    own_rss_mib: f64,
}

impl Figures {
    /// The `q`-th percentile (nearest rank) of the run times.
    fn p(&self, q: usize) -> f64 {
        let mut v = self.ms.clone();
        v.sort_by(f64::total_cmp);
        let rank = (q * v.len()).div_ceil(100).clamp(1, v.len());
        v[rank - 1]
    }
}

/// Validate once, then time `runs` scans.
fn bench(args: &Args, extra: &[String], want: usize) -> Result<Figures> {
    let mut check: Vec<String> = vec!["check".into(), "--output".into(), "json".into()];
    check.extend_from_slice(extra);
    let out = Command::new(&args.warden)
        .args(&check)
        .stderr(Stdio::null())
        .output()
        .context("run warden")?;
    if !matches!(out.status.code(), Some(0 | 1)) {
        bail!("warden check failed: {}", out.status);
    }
    let report: Value = serde_json::from_slice(&out.stdout).context("parse report")?;
    let listed = report["containers"].as_array().map_or(0, Vec::len);
    if listed != want {
        bail!(
            "the scan lists {listed} containers, not {want}: the benchmark would measure the \
             wrong thing (skipped: {})",
            report["skipped"]
        );
    }
    let me = std::env::current_exe().context("current_exe")?;
    let mut ms = Vec::with_capacity(args.runs);
    let mut rss_kib = 0i64;
    let mut hwm_kib = 0i64;
    let mut cpu_ms = Vec::with_capacity(args.runs);
    for _ in 0..args.runs {
        let out = Command::new(&me)
            .arg("measure")
            .arg(&args.warden)
            .args(&check)
            .output()
            .context("run the measuring child")?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut f = text.split_whitespace();
        let (Some(us), Some(kib), Some(cpu_us), Some(hwm)) = (
            f.next().and_then(|x| x.parse::<u64>().ok()),
            f.next().and_then(|x| x.parse::<i64>().ok()),
            f.next().and_then(|x| x.parse::<i64>().ok()),
            f.next().and_then(|x| x.parse::<i64>().ok()),
        ) else {
            bail!(
                "measure: unexpected output {text:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        ms.push(us as f64 / 1000.0);
        cpu_ms.push(cpu_us as f64 / 1000.0);
        rss_kib = rss_kib.max(kib);
        hwm_kib = hwm_kib.max(hwm);
    }
    cpu_ms.sort_by(f64::total_cmp);
    Ok(Figures {
        ms,
        cpu_p50_ms: cpu_ms[(cpu_ms.len() - 1) / 2],
        rss_mib: rss_kib as f64 / 1024.0,
        own_rss_mib: hwm_kib as f64 / 1024.0,
    })
}

/// The measuring child: run the command once (stdout discarded), print
/// `<elapsed µs> <peak RSS KiB>`. Its only child is that command, so
/// `RUSAGE_CHILDREN`'s max RSS is that process's peak.
fn measure(cmd: Vec<String>) -> Result<()> {
    let (bin, rest) = cmd.split_first().context("measure needs a command")?;
    let t = Instant::now();
    let mut child = Command::new(bin)
        .args(rest)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("run {bin}"))?;
    // RUSAGE_CHILDREN's peak covers the command's own children too (the
    // runtimes' `--version` probes: `containerd --version` alone peaks at
    // 32 MiB). The command's own high-water mark is sampled from its
    // /proc status while it runs; the blocking wait keeps `elapsed` exact.
    let pid = child.id();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let done = std::sync::Arc::clone(&done);
        std::thread::spawn(move || {
            let mut hwm_kib = 0u64;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                if let Some(kib) = fs::read_to_string(format!("/proc/{pid}/status"))
                    .ok()
                    .and_then(|s| {
                        s.lines()
                            .find_map(|l| l.strip_prefix("VmHWM:"))
                            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                    })
                {
                    hwm_kib = hwm_kib.max(kib);
                }
                std::thread::sleep(std::time::Duration::from_micros(500));
            }
            hwm_kib
        })
    };
    let status = child.wait().context("wait")?;
    let elapsed = t.elapsed();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let hwm_kib = sampler.join().unwrap_or(0);
    if !matches!(status.code(), Some(0 | 1)) {
        bail!("{bin} failed: {status}");
    }
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
        .context("getrusage")?;
    let cpu = usage.user_time() + usage.system_time();
    let cpu_us = cpu.tv_sec() * 1_000_000 + cpu.tv_usec();
    println!(
        "{} {} {cpu_us} {hwm_kib}",
        elapsed.as_micros(),
        usage.max_rss()
    );
    Ok(())
}

/// N busybox containers under a runc root of their own; all killed and
/// deleted on drop.
struct RealFleet {
    dir: PathBuf,
    ids: Vec<String>,
}

impl RealFleet {
    fn root(&self) -> PathBuf {
        self.dir.join("runc")
    }

    fn start(n: usize) -> Result<Self> {
        let dir = PathBuf::from(format!("/run/warden-scan-bench-{}", std::process::id()));
        let mut fleet = Self {
            dir: dir.clone(),
            ids: Vec::new(),
        };
        fs::create_dir_all(dir.join("runc")).context("mkdir bench dir")?;
        // One read-only busybox rootfs shared by every bundle.
        let base = warden_e2e::Bundle::busybox(&dir.join("base"), "base", &["sleep", "600"])?;
        let rootfs = base.dir.join("rootfs");
        let started = Instant::now();
        for i in 0..n {
            let id = format!("wscan-{}-{i}", std::process::id());
            let bdir = dir.join("bundles").join(&id);
            fs::create_dir_all(&bdir).context("mkdir bundle")?;
            let mut config = base.config.clone();
            config["root"] = json!({"path": rootfs, "readonly": true});
            config["linux"]["cgroupsPath"] = json!(format!("/warden-scan-bench/{id}"));
            fs::write(bdir.join("config.json"), serde_json::to_vec(&config)?)
                .context("write config")?;
            fleet.ids.push(id.clone());
            let log = fs::File::create(bdir.join("runc.log")).context("log")?;
            let st = Command::new("runc")
                .arg("--root")
                .arg(fleet.root())
                .args(["run", "-d", "--bundle"])
                .arg(&bdir)
                .arg(&id)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .status()
                .context("runc run")?;
            if !st.success() {
                bail!(
                    "runc run {id}: {}",
                    fs::read_to_string(bdir.join("runc.log")).unwrap_or_default()
                );
            }
        }
        eprintln!(
            "started {n} runc containers in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        Ok(fleet)
    }

    fn warden_args(&self) -> Vec<String> {
        let none = self.dir.join("none").display().to_string();
        vec![
            "--runc-root".into(),
            self.root().display().to_string(),
            "--crun-root".into(),
            none.clone(),
            "--containerd-runc-root".into(),
            none.clone(),
            "--containerd-tasks".into(),
            none,
            "--state-dir".into(),
            self.dir.join("state").display().to_string(),
        ]
    }
}

impl Drop for RealFleet {
    fn drop(&mut self) {
        for id in &self.ids {
            let _ = Command::new("runc")
                .arg("--root")
                .arg(self.root())
                .args(["delete", "-f", id])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = fs::remove_dir("/sys/fs/cgroup/devices/warden-scan-bench");
        if let Ok(rd) = fs::read_dir("/sys/fs/cgroup") {
            for e in rd.flatten() {
                let _ = fs::remove_dir(e.path().join("warden-scan-bench"));
            }
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A synthetic host root on tmpfs; removed on drop.
struct Synthetic {
    root: PathBuf,
}

/// v1 controllers of the synthetic host, as mountinfo lists them.
const CONTROLLERS: &[&str] = &[
    "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "hugetlb",
];

/// runc's default device cgroup list of a container.
const DEVICES_LIST: &str = "c 1:3 rwm\nc 1:5 rwm\nc 1:7 rwm\nc 1:8 rwm\nc 1:9 rwm\nc 5:0 rwm\n\
c 5:1 rwm\nc 5:2 rwm\nc 136:* rwm\nc 10:200 rwm\nc *:* m\nb *:* m\n";

impl Synthetic {
    fn warden_args(&self) -> Vec<String> {
        vec!["--host-root".into(), self.root.display().to_string()]
    }

    fn build(n: usize) -> Result<Self> {
        let base = Path::new("/dev/shm");
        if !base.is_dir() {
            bail!("/dev/shm (tmpfs) is missing");
        }
        Self::build_in(
            base.join(format!("warden-scan-bench-{}", std::process::id())),
            n,
        )
    }

    fn build_in(root: PathBuf, n: usize) -> Result<Self> {
        if root.exists() {
            bail!("{} exists already", root.display());
        }
        let me = Self { root };
        let r = &me.root;
        let t = Instant::now();
        let spec = runc_spec(r)?;
        let mut mountinfo = String::from("22 1 0:21 / / rw,relatime - tmpfs tmpfs rw\n");
        for (i, c) in CONTROLLERS.iter().enumerate() {
            let _ = writeln!(
                mountinfo,
                "{} 30 0:{} / /sys/fs/cgroup/{c} rw,nosuid,nodev,noexec,relatime - cgroup cgroup rw,{c}",
                40 + i,
                40 + i
            );
        }
        mountinfo.push_str(
            "39 30 0:39 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n\
             60 30 0:60 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n",
        );
        write(r, "proc/self/mountinfo", &mountinfo)?;
        write(r, "proc/sys/kernel/osrelease", "6.1.0-bench\n")?;
        write(r, "proc/uptime", "86400.00 170000.00\n")?;
        make_devices(r)?;

        let shims = n / 2;
        let runcs = n * 2 / 5;
        for i in 0..n {
            let pid = 100_000 + i as i32;
            let start = 1_000_000 + i as u64;
            let id = format!("{:064x}", 0xbe7c_0000_u64 + i as u64);
            let (kind, cgroup) = if i < shims {
                ("k8s", format!("/kubepods/besteffort/pod{i:08}/{id}"))
            } else if i < shims + runcs {
                ("runc", format!("/warden/{id}"))
            } else {
                ("crun", format!("/warden/{id}"))
            };
            process(r, pid, "sleep", start, &cgroup, 0, 1)?;
            cgroup_dirs(r, &cgroup, pid)?;
            let mut config = spec.clone();
            config["linux"]["cgroupsPath"] = json!(cgroup);
            match kind {
                "k8s" => {
                    config["annotations"] = json!({
                        "io.kubernetes.cri.container-type": "container",
                        "io.kubernetes.cri.sandbox-namespace": "bench",
                        "io.kubernetes.cri.sandbox-name": format!("pod-{i}"),
                        "io.kubernetes.cri.sandbox-uid": format!("uid-{i}"),
                        "io.kubernetes.cri.container-name": "app",
                    });
                    let bundle =
                        format!("/run/containerd/io.containerd.runtime.v2.task/k8s.io/{id}");
                    write(r, &format!("{bundle}/config.json"), &config.to_string())?;
                    write(
                        r,
                        &format!("run/containerd/runc/k8s.io/{id}/state.json"),
                        &runc_state(&id, pid, start, &bundle, &cgroup).to_string(),
                    )?;
                    // Its shim: comm containerd-shim, a few eventfds.
                    process(
                        r,
                        200_000 + i as i32,
                        "containerd-shim",
                        start - 1,
                        "/",
                        4,
                        10,
                    )?;
                }
                "runc" => {
                    let bundle = format!("/var/lib/bench/bundles/{id}");
                    write(r, &format!("{bundle}/config.json"), &config.to_string())?;
                    write(
                        r,
                        &format!("run/runc/{id}/state.json"),
                        &runc_state(&id, pid, start, &bundle, &cgroup).to_string(),
                    )?;
                }
                _ => {
                    let status = json!({
                        "pid": pid,
                        "process-start-time": start,
                        "cgroup-path": cgroup,
                        "bundle": format!("/var/lib/bench/bundles/{id}"),
                        "rootfs": format!("/var/lib/bench/bundles/{id}/rootfs"),
                        "systemd-cgroup": false,
                        "created": "2026-01-01T00:00:00Z",
                        "detached": true,
                        "external_descriptors": "[\"/dev/null\",\"/dev/null\",\"/dev/null\"]",
                    });
                    write(r, &format!("run/crun/{id}/status"), &status.to_string())?;
                    write(
                        r,
                        &format!("run/crun/{id}/config.json"),
                        &config.to_string(),
                    )?;
                }
            }
        }
        eprintln!(
            "built a synthetic host of {n} containers in {:.1} s under {}",
            t.elapsed().as_secs_f64(),
            r.display()
        );
        Ok(me)
    }
}

impl Drop for Synthetic {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

fn write(root: &Path, rel: &str, text: &str) -> Result<()> {
    let p = root.join(rel.trim_start_matches('/'));
    if let Some(d) = p.parent() {
        fs::create_dir_all(d).with_context(|| format!("mkdir {}", d.display()))?;
    }
    fs::write(&p, text).with_context(|| format!("write {}", p.display()))
}

/// `runc spec`'s config (what real bundles start from), generated once.
fn runc_spec(root: &Path) -> Result<Value> {
    let dir = root.join("var/lib/bench/spec");
    fs::create_dir_all(&dir).context("mkdir spec dir")?;
    let out = Command::new("runc")
        .arg("spec")
        .current_dir(&dir)
        .output()
        .context("runc spec")?;
    if !out.status.success() {
        bail!("runc spec: {}", String::from_utf8_lossy(&out.stderr));
    }
    let text = fs::read_to_string(dir.join("config.json")).context("read spec")?;
    serde_json::from_str(&text).context("parse spec")
}

/// The required device nodes, as real character devices.
fn make_devices(root: &Path) -> Result<()> {
    use nix::sys::stat::{makedev, mknod, Mode, SFlag};
    fs::create_dir_all(root.join("dev")).context("mkdir dev")?;
    for (name, maj, min) in [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ] {
        let p = root.join("dev").join(name);
        mknod(
            &p,
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o666),
            makedev(maj, min),
        )
        .with_context(|| format!("mknod {}", p.display()))?;
    }
    Ok(())
}

/// `/proc/<pid>` of a single-threaded process: stat, status, cgroup, its
/// task, wchan, and an fd table with `eventfds` eventfds.
fn process(
    root: &Path,
    pid: i32,
    comm: &str,
    start: u64,
    cgroup: &str,
    eventfds: usize,
    threads: i32,
) -> Result<()> {
    let mut fields: Vec<String> = (3..=52).map(|i| i.to_string()).collect();
    fields[0] = "S".into();
    fields[1] = "1".into();
    fields[17] = threads.to_string();
    fields[19] = start.to_string();
    let stat = format!("{pid} ({comm}) {}\n", fields.join(" "));
    // Container processes run under the runtime's default filter; shims do not.
    let seccomp = if comm == "containerd-shim" { 0 } else { 2 };
    let base = format!("proc/{pid}");
    write(root, &format!("{base}/stat"), &stat)?;
    write(
        root,
        &format!("{base}/status"),
        &format!("Name:\t{comm}\nState:\tS (sleeping)\nTgid:\t{pid}\nPid:\t{pid}\nPPid:\t1\nThreads:\t{threads}\nSeccomp:\t{seccomp}\n"),
    )?;
    let mut cg = String::new();
    for (i, c) in CONTROLLERS.iter().enumerate() {
        let _ = writeln!(cg, "{}:{c}:{cgroup}", i + 2);
    }
    let _ = writeln!(cg, "1:name=systemd:{cgroup}\n0::{cgroup}");
    write(root, &format!("{base}/cgroup"), &cg)?;
    write(root, &format!("{base}/task/{pid}/stat"), &stat)?;
    write(
        root,
        &format!("{base}/task/{pid}/wchan"),
        "hrtimer_nanosleep",
    )?;
    write(root, &format!("{base}/wchan"), "hrtimer_nanosleep")?;
    // Further threads (a Go shim has about ten), parked in futex waits.
    for t in 1..threads {
        let tid = pid + 1_000_000 * t;
        let tstat = stat.replacen(&pid.to_string(), &tid.to_string(), 1);
        write(root, &format!("{base}/task/{tid}/stat"), &tstat)?;
        write(
            root,
            &format!("{base}/task/{tid}/wchan"),
            "futex_wait_queue",
        )?;
    }
    let fd = root.join(format!("{base}/fd"));
    fs::create_dir_all(&fd).context("mkdir fd")?;
    for (n, target) in ["/dev/null", "/dev/null", "/dev/null"].iter().enumerate() {
        symlink(target, fd.join(n.to_string())).context("fd link")?;
    }
    for e in 0..eventfds {
        symlink("anon_inode:[eventfd]", fd.join((3 + e).to_string())).context("fd link")?;
    }
    Ok(())
}

/// The container's v1 cgroup directories (devices list, freezer state and
/// members) and its v2 directory.
fn cgroup_dirs(root: &Path, cgroup: &str, pid: i32) -> Result<()> {
    let rel = cgroup.trim_start_matches('/');
    for c in CONTROLLERS.iter().chain(["systemd"].iter()) {
        let d = format!("sys/fs/cgroup/{c}/{rel}");
        write(root, &format!("{d}/cgroup.procs"), &format!("{pid}\n"))?;
        write(root, &format!("{d}/tasks"), &format!("{pid}\n"))?;
    }
    write(
        root,
        &format!("sys/fs/cgroup/devices/{rel}/devices.list"),
        DEVICES_LIST,
    )?;
    write(
        root,
        &format!("sys/fs/cgroup/freezer/{rel}/freezer.state"),
        "THAWED\n",
    )?;
    write(
        root,
        &format!("sys/fs/cgroup/unified/{rel}/cgroup.procs"),
        &format!("{pid}\n"),
    )?;
    Ok(())
}

/// A runc `state.json` of realistic size (runc writes its whole
/// libcontainer config into it: mounts, devices, namespaces, cgroups).
fn runc_state(id: &str, pid: i32, start: u64, bundle: &str, cgroup: &str) -> Value {
    let mount = |src: &str, dst: &str, dev: &str, flags: u64, data: &str| {
        json!({"source": src, "destination": dst, "device": dev, "flags": flags,
               "propagation_flags": null, "data": data, "relabel": "", "rec_attr": null,
               "extensions": 0, "premount_cmds": null, "postmount_cmds": null})
    };
    let dev = |path: &str, maj: u32, min: u32| {
        json!({"type": 99, "major": maj, "minor": min, "permissions": "rwm", "allow": true,
               "path": path, "file_mode": 438, "uid": 0, "gid": 0})
    };
    let rule = |maj: i64, min: i64, perm: &str| json!({"type": 99, "major": maj, "minor": min, "permissions": perm, "allow": true});
    let rel = cgroup.trim_start_matches('/');
    let mut paths = serde_json::Map::new();
    for c in CONTROLLERS {
        paths.insert((*c).into(), json!(format!("/sys/fs/cgroup/{c}/{rel}")));
    }
    paths.insert(
        "name=systemd".into(),
        json!(format!("/sys/fs/cgroup/systemd/{rel}")),
    );
    paths.insert(
        String::new(),
        json!(format!("/sys/fs/cgroup/unified/{rel}")),
    );
    json!({
        "id": id,
        "init_process_pid": pid,
        "init_process_start": start,
        "created": "2026-01-01T00:00:00.000000000Z",
        "config": {
            "no_pivot_root": false,
            "parent_death_signal": 0,
            "rootfs": format!("{bundle}/rootfs"),
            "umask": null,
            "readonlyfs": false,
            "rootPropagation": 0,
            "mounts": [
                mount("proc", "/proc", "proc", 0, ""),
                mount("tmpfs", "/dev", "tmpfs", 16_777_218, "mode=755,size=65536k"),
                mount("devpts", "/dev/pts", "devpts", 10, "newinstance,ptmxmode=0666,mode=0620,gid=5"),
                mount("shm", "/dev/shm", "tmpfs", 14, "mode=1777,size=65536k"),
                mount("mqueue", "/dev/mqueue", "mqueue", 14, ""),
                mount("sysfs", "/sys", "sysfs", 15, ""),
                mount("cgroup", "/sys/fs/cgroup", "cgroup", 2_097_167, ""),
            ],
            "devices": [
                dev("/dev/null", 1, 3), dev("/dev/random", 1, 8), dev("/dev/full", 1, 7),
                dev("/dev/tty", 5, 0), dev("/dev/zero", 1, 5), dev("/dev/urandom", 1, 9),
            ],
            "mount_label": "",
            "hostname": "bench",
            "namespaces": [{"type": "NEWPID", "path": ""}, {"type": "NEWNET", "path": ""},
                           {"type": "NEWIPC", "path": ""}, {"type": "NEWUTS", "path": ""},
                           {"type": "NEWNS", "path": ""}],
            "capabilities": {"Bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]},
            "networks": [{"type": "loopback", "name": "", "bridge": "", "mac_address": "",
                          "address": "", "gateway": "", "ipv6_address": "", "ipv6_gateway": "",
                          "mtu": 0, "txqueuelen": 0, "host_interface_name": "", "hairpin_mode": false}],
            "cgroups": {
                "path": cgroup,
                "scope_prefix": "",
                "Paths": null,
                "devices": [
                    {"type": 97, "major": -1, "minor": -1, "permissions": "rwm", "allow": false},
                    rule(1, 3, "rwm"), rule(1, 5, "rwm"), rule(1, 7, "rwm"), rule(1, 8, "rwm"),
                    rule(1, 9, "rwm"), rule(5, 0, "rwm"), rule(5, 1, "rwm"), rule(5, 2, "rwm"),
                    rule(136, -1, "rwm"), rule(10, 200, "rwm"),
                ],
                "memory": 0, "cpu_shares": 0, "pids_limit": 0, "oom_kill_disable": false,
                "freezer": "", "Systemd": false,
            },
            "oom_score_adj": null,
            "uid_mappings": null,
            "gid_mappings": null,
            "mask_paths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                           "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                           "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonly_paths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                               "/proc/sysrq-trigger"],
            "sysctl": null,
            "seccomp": null,
            "no_new_privileges": true,
            "Hooks": {"createContainer": null, "createRuntime": null, "poststart": null,
                      "poststop": null, "prestart": null, "startContainer": null},
            "version": "1.0.2-dev",
            "labels": [format!("bundle={bundle}")],
            "no_new_keyring": false,
        },
        "rootless": false,
        "cgroup_paths": paths,
        "namespace_paths": {
            "NEWCGROUP": format!("/proc/{pid}/ns/cgroup"),
            "NEWIPC": format!("/proc/{pid}/ns/ipc"),
            "NEWNET": format!("/proc/{pid}/ns/net"),
            "NEWNS": format!("/proc/{pid}/ns/mnt"),
            "NEWPID": format!("/proc/{pid}/ns/pid"),
            "NEWUSER": format!("/proc/{pid}/ns/user"),
            "NEWUTS": format!("/proc/{pid}/ns/uts"),
        },
        "external_descriptors": ["/dev/null", "/dev/null", "/dev/null"],
        "intel_rdt_path": "",
    })
}
