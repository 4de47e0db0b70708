//! Device-rule jitter benchmark (seed 000).
//!
//! For each mode, a fresh v1 devices cgroup and freezer cgroup hold a
//! separate process that opens `/dev/urandom` in a tight loop, while this
//! process makes N updates of the cgroup's device rules, alternating between
//! Docker's default list and the same list plus `/dev/fuse` (`c 10:229`):
//!
//! * `naive`: `a` to `devices.deny`, then every allow rule again (what
//!   systemd, crun and youki do on each update);
//! * `core`: runtime-core's `update_devices` (a minimal, never-narrowing
//!   transition: one write per update here, no freeze);
//! * `frozen`: the same transition with the freezer around the writes.
//!
//! It prints opens, EPERM count and update latency per mode, and last:
//! `device-jitter updates=N naive_eperm=X core_eperm=Y frozen_eperm=Z`.
//!
//! Usage (root): `device_jitter [--updates N]` (default 1000, or
//! `DEVICE_JITTER_UPDATES`). `device_jitter --opener` is the looping child.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use runtime_core::devices::v1::lines::{format_rule, parse_write};
use runtime_core::devices::v1::{update_devices_with, Emulator, UpdateOptions, V1Paths};
use runtime_core::devices::DeviceRule;

const DEVICES: &str = "/sys/fs/cgroup/devices";
const FREEZER: &str = "/sys/fs/cgroup/freezer";

/// Docker's default device rules (moby's default spec).
const DOCKER: &[&str] = &[
    "deny a",
    "allow c *:* m",
    "allow b *:* m",
    "allow c 1:3 rwm",
    "allow c 1:5 rwm",
    "allow c 1:7 rwm",
    "allow c 1:8 rwm",
    "allow c 1:9 rwm",
    "allow c 5:0 rwm",
    "allow c 5:1 rwm",
    "allow c 5:2 rwm",
    "allow c 136:* rwm",
    "allow c 10:200 rwm",
];
const FUSE: &str = "allow c 10:229 rwm";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Naive,
    Core,
    Frozen,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Naive => "naive",
            Mode::Core => "core",
            Mode::Frozen => "frozen",
        }
    }
}

/// One of the two rule sets, in both forms the modes need.
struct RuleSet {
    rules: Vec<DeviceRule>,
    target: Emulator,
}

impl RuleSet {
    fn new(lines: &[&str]) -> Result<Self> {
        let rules = lines
            .iter()
            .map(|l| parse_write(l).with_context(|| format!("rule {l}")))
            .collect::<Result<Vec<_>>>()?;
        let target = Emulator::from_rules(&rules)?;
        Ok(Self { rules, target })
    }
}

/// A cgroup made for one run: thawed, emptied and removed on drop.
struct Cgroup(PathBuf);

impl Cgroup {
    fn create(hierarchy: &str, mode: Mode) -> Result<Self> {
        let dir = Path::new(hierarchy).join(format!(
            "warden-jitter-{}-{}",
            std::process::id(),
            mode.name()
        ));
        fs::create_dir(&dir).with_context(|| format!("mkdir {}", dir.display()))?;
        Ok(Self(dir))
    }

    fn add(&self, pid: u32) -> Result<()> {
        let procs = self.0.join("cgroup.procs");
        fs::write(&procs, pid.to_string()).with_context(|| format!("write {}", procs.display()))
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        let _ = fs::write(self.0.join("freezer.state"), "THAWED");
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let pids = fs::read_to_string(self.0.join("cgroup.procs")).unwrap_or_default();
            if pids.trim().is_empty() {
                break;
            }
            for p in pids.split_whitespace().filter_map(|p| p.parse().ok()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(p),
                    nix::sys::signal::SIGKILL,
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
        let _ = fs::remove_dir(&self.0);
    }
}

/// What the opener counted.
#[derive(Default, Debug)]
struct Counts {
    opens: u64,
    eperm: u64,
    other: u64,
}

/// The looping child: wait for `go`, then open /dev/urandom until stdin
/// closes, then print the counts.
fn opener() -> Result<()> {
    let mut stdin = BufReader::new(std::io::stdin());
    let mut go = String::new();
    stdin.read_line(&mut go)?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    thread::spawn(move || {
        let mut rest = Vec::new();
        let _ = stdin.read_to_end(&mut rest);
        flag.store(true, Ordering::Relaxed);
    });
    let mut c = Counts::default();
    while !stop.load(Ordering::Relaxed) {
        c.opens += 1;
        match File::open("/dev/urandom") {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => c.eperm += 1,
            Err(_) => c.other += 1,
        }
    }
    println!("opens={} eperm={} other={}", c.opens, c.eperm, c.other);
    Ok(())
}

struct Opener {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Opener {
    fn start(cgroups: &[&Cgroup]) -> Result<Self> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg("--opener")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("spawn opener")?;
        for cg in cgroups {
            cg.add(child.id())?;
        }
        let mut stdin = child.stdin.take().context("opener stdin")?;
        stdin.write_all(b"go\n")?;
        Ok(Self {
            child,
            stdin: Some(stdin),
        })
    }

    fn stop(mut self) -> Result<Counts> {
        drop(self.stdin.take());
        let mut out = String::new();
        self.child
            .stdout
            .take()
            .context("opener stdout")?
            .read_to_string(&mut out)?;
        let status = self.child.wait()?;
        if !status.success() {
            bail!("opener exited with {status}");
        }
        let mut c = Counts::default();
        for field in out.split_whitespace() {
            let (k, v) = field.split_once('=').context("opener output")?;
            let v: u64 = v.parse()?;
            match k {
                "opens" => c.opens = v,
                "eperm" => c.eperm = v,
                "other" => c.other = v,
                _ => {}
            }
        }
        Ok(c)
    }
}

impl Drop for Opener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Write one line to a cgroup file, opening it for this write only (as
/// systemd and the runtimes do).
fn write_line(path: &Path, line: &str) -> Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .open(path)
        .with_context(|| format!("open {}", path.display()))?;
    f.write_all(line.as_bytes())
        .with_context(|| format!("write {line:?} to {}", path.display()))
}

/// Deny all, then replay every allow rule.
fn naive_update(dir: &Path, set: &RuleSet) -> Result<()> {
    write_line(&dir.join("devices.deny"), "a")?;
    for rule in set.rules.iter().filter(|r| r.allow) {
        write_line(&dir.join("devices.allow"), &format_rule(rule))?;
    }
    Ok(())
}

struct ModeResult {
    mode: Mode,
    counts: Counts,
    p50: Duration,
    p99: Duration,
    writes: usize,
}

fn run_mode(mode: Mode, updates: usize, sets: &[RuleSet; 2]) -> Result<ModeResult> {
    let devices = Cgroup::create(DEVICES, mode)?;
    let freezer = Cgroup::create(FREEZER, mode)?;
    // The starting rules go in before the workload does.
    naive_update(&devices.0, &sets[0])?;
    let opener = Opener::start(&[&devices, &freezer])?;
    thread::sleep(Duration::from_millis(50));

    let paths = V1Paths {
        devices: devices.0.clone(),
        freezer: Some(freezer.0.clone()),
    };
    let options = UpdateOptions {
        always_freeze: mode == Mode::Frozen,
        ..UpdateOptions::default()
    };
    let mut latencies = Vec::with_capacity(updates);
    let mut writes = 0;
    for i in 0..updates {
        let set = &sets[(i + 1) % 2];
        let start = Instant::now();
        match mode {
            Mode::Naive => {
                naive_update(&devices.0, set)?;
                writes += 1 + set.rules.iter().filter(|r| r.allow).count();
            }
            Mode::Core | Mode::Frozen => {
                let done = update_devices_with(&paths, &set.target, &options)
                    .with_context(|| format!("{} update {i}", mode.name()))?;
                if (mode == Mode::Frozen) != done.frozen_for.is_some() {
                    bail!("{} update {i}: unexpected freeze state", mode.name());
                }
                writes += done.applied.transition.writes().len();
            }
        }
        latencies.push(start.elapsed());
    }
    thread::sleep(Duration::from_millis(20));
    let counts = opener.stop()?;
    let final_list = fs::read_to_string(devices.0.join("devices.list"))?;
    let expected = sets[updates % 2].target.devices_list();
    let mut got: Vec<&str> = final_list.lines().collect();
    let mut want: Vec<&str> = expected.lines().collect();
    got.sort_unstable();
    want.sort_unstable();
    if got != want {
        bail!(
            "{}: final devices.list {final_list:?} is not the target {expected:?}",
            mode.name()
        );
    }
    latencies.sort_unstable();
    let pick = |q: usize| {
        latencies
            .get((latencies.len() * q / 100).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Ok(ModeResult {
        mode,
        counts,
        p50: pick(50),
        p99: pick(99),
        writes,
    })
}

fn parse_updates() -> Result<usize> {
    let mut updates = match std::env::var("DEVICE_JITTER_UPDATES") {
        Ok(v) => v.parse().context("DEVICE_JITTER_UPDATES")?,
        Err(_) => 1000,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--updates" | "-n" => {
                updates = args
                    .next()
                    .context("--updates needs a number")?
                    .parse()
                    .context("--updates")?;
            }
            "-h" | "--help" => {
                println!(
                    "usage: device_jitter [--updates N]   (root; cgroup v1 devices + freezer)"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(updates)
}

fn main() -> Result<()> {
    if std::env::args().nth(1).as_deref() == Some("--opener") {
        return opener();
    }
    let updates = parse_updates()?;
    if !nix::unistd::geteuid().is_root() {
        bail!("device_jitter needs root (it creates v1 cgroups)");
    }
    for h in [DEVICES, FREEZER] {
        if !Path::new(h).join("cgroup.procs").exists() {
            bail!("no cgroup v1 hierarchy at {h}");
        }
    }
    let without = RuleSet::new(DOCKER)?;
    let mut with_fuse: Vec<&str> = DOCKER.to_vec();
    with_fuse.push(FUSE);
    let with = RuleSet::new(&with_fuse)?;
    let sets = [without, with];

    println!(
        "device-jitter: {updates} updates per mode, alternating docker defaults with and without c 10:229 (fuse)"
    );
    println!(
        "{:<7} {:>10} {:>8} {:>7} {:>9} {:>9} {:>7}",
        "mode", "opens", "eperm", "other", "p50_us", "p99_us", "writes"
    );
    let mut results = Vec::new();
    for mode in [Mode::Naive, Mode::Core, Mode::Frozen] {
        let r = run_mode(mode, updates, &sets)?;
        println!(
            "{:<7} {:>10} {:>8} {:>7} {:>9.1} {:>9.1} {:>7}",
            r.mode.name(),
            r.counts.opens,
            r.counts.eperm,
            r.counts.other,
            r.p50.as_secs_f64() * 1e6,
            r.p99.as_secs_f64() * 1e6,
            r.writes
        );
        results.push(r);
    }
    let eperm = |m: Mode| {
        results
            .iter()
            .find(|r| r.mode == m)
            .map_or(0, |r| r.counts.eperm)
    };
    println!(
        "device-jitter updates={updates} naive_eperm={} core_eperm={} frozen_eperm={}",
        eperm(Mode::Naive),
        eperm(Mode::Core),
        eperm(Mode::Frozen)
    );
    Ok(())
}
