//! Detection benchmark of `warden agent` (issue 8).
//!
//! Starts C busybox containers under a private runc root and one
//! `warden agent --standalone` in Enforce mode (release build, default 30 s
//! timer unless `--interval`), measures the agent's idle CPU and RSS over
//! `--idle` seconds, then breaks running containers N times, alternating the
//! two seed-003 breakages (v1: /dev/null and /dev/urandom denied in
//! `devices.deny`; v2: a narrower device program attached beside the
//! runtime's), one at a time, at random moments (so the timer's phase is
//! sampled, not fixed). For each it records the time from the breakage to
//!
//! - the finding in the report file (`detect`), polled every 2 ms;
//! - the repair in the kernel (`repair`): the v1 list allows the devices
//!   again / the narrow program is detached, polled every 2 ms.
//!
//! Usage (root): `detect [--breakages N] [--containers C] [--idle SECS]
//! [--interval DUR] [-- AGENT-FLAGS...]` (e.g. `-- --no-watch` for a
//! timer-only agent). Last line:
//! `detect breakages=N p50_ms=X p99_ms=Y repair_p99_ms=Z`.

mod fleet;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use fleet::{findings_for, policy_file, Agent, Ctr};

struct Opts {
    breakages: usize,
    containers: usize,
    idle: u64,
    interval: String,
    agent_flags: Vec<String>,
}

fn parse() -> Result<Opts> {
    let mut o = Opts {
        breakages: 20,
        containers: 50,
        idle: 60,
        interval: "30s".into(),
        agent_flags: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--breakages" => o.breakages = val()?.parse()?,
            "--containers" => o.containers = val()?.parse()?,
            "--idle" => o.idle = val()?.parse()?,
            "--interval" => o.interval = val()?,
            "--" => {
                o.agent_flags = args.by_ref().collect();
            }
            other => bail!("unknown argument {other}"),
        }
    }
    if o.containers < 2 {
        bail!("--containers must be at least 2");
    }
    Ok(o)
}

/// utime+stime (the agent itself) and cutime+cstime (children it waited
/// for: canary processes, runtime --version), in clock ticks.
fn cpu_ticks(pid: u32) -> Result<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).context("stat")?;
    let rest = stat.rsplit_once(')').context("stat format")?.1;
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(4)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    Ok((f[0] + f[1], f[2] + f[3]))
}

fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    // Nearest rank.
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

/// A small xorshift generator: random pauses between breakages, no crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn summary(name: &str, v: &[f64]) -> String {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    format!(
        "{name}: n={} min_ms={:.0} p50_ms={:.0} p99_ms={:.0} max_ms={:.0}",
        s.len(),
        s.first().copied().unwrap_or(f64::NAN),
        percentile(&s, 50.0),
        percentile(&s, 99.0),
        s.last().copied().unwrap_or(f64::NAN)
    )
}

fn main() -> Result<()> {
    let o = parse()?;
    if !nix::unistd::Uid::effective().is_root() {
        bail!("run as root (containers, cgroups, bpf)");
    }
    let tmp = tempfile::tempdir().context("tempdir")?;
    let root = tmp.path().join("runc");
    std::fs::create_dir_all(&root)?;
    let t = Instant::now();
    let mut ctrs = Vec::new();
    for i in 0..o.containers {
        let id = format!("warden-bench-detect-{}-{i}", std::process::id());
        ctrs.push(Ctr::start(&root, tmp.path(), &id)?);
    }
    eprintln!("started {} containers in {:?}", ctrs.len(), t.elapsed());

    let policy = policy_file(tmp.path(), "Enforce")?;
    let mut flags: Vec<&str> = vec![
        "--policy",
        policy.to_str().context("utf-8")?,
        "--interval",
        &o.interval,
    ];
    flags.extend(o.agent_flags.iter().map(String::as_str));
    let mut agent = Agent::start(tmp.path(), &root, &flags)?;
    let pid = agent.pid().context("agent pid")?;
    let n = o.containers;
    agent.wait_report(Duration::from_secs(30), |r| {
        r["summary"]["containers"] == n as u64 && r["summary"]["findings"] == 0
    })?;

    // Idle: nothing changes; the timer and the program poll run.
    let ticks_per_s = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    let (self0, kids0) = cpu_ticks(pid)?;
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(o.idle));
    let (self1, kids1) = cpu_ticks(pid)?;
    let secs = t0.elapsed().as_secs_f64();
    let pct = |ticks: u64| 100.0 * ticks as f64 / ticks_per_s / secs;
    println!(
        "idle containers={n} seconds={:.0} interval={} cpu_pct={:.2} cpu_with_children_pct={:.2} rss_kib={} rss_peak_kib={}",
        secs,
        o.interval,
        pct(self1 - self0),
        pct(self1 - self0 + kids1 - kids0),
        status_kib(pid, "VmRSS:"),
        status_kib(pid, "VmHWM:"),
    );

    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    let mut rng = Rng(seed);
    let timeout = Duration::from_secs(120);
    let (mut detect, mut repair) = (Vec::new(), Vec::new());
    let (mut by_kind_detect, mut by_kind_repair) = ([vec![], vec![]], [vec![], vec![]]);
    for i in 0..o.breakages {
        // A random pause so that breakages land at every phase of the timer.
        std::thread::sleep(Duration::from_millis(300 + rng.next() % 1500));
        let c = &ctrs[i % n];
        let kind = i % 2;
        let start = Instant::now();
        let prog = if kind == 0 {
            c.break_v1()?;
            None
        } else {
            Some(c.break_v2()?)
        };
        let (mut seen, mut fixed) = (None, None);
        while seen.is_none() || fixed.is_none() {
            if start.elapsed() > timeout {
                bail!("breakage {i} not detected/repaired in {timeout:?}");
            }
            if seen.is_none()
                && agent.report().is_some_and(|r| {
                    findings_for(&r, &c.id)
                        .iter()
                        .any(|f| f["check"] == "device-access-broken")
                })
            {
                seen = Some(start.elapsed());
            }
            if fixed.is_none() {
                let ok = match prog {
                    None => c.v1_allows(),
                    Some(id) => !c.v2_attached(id),
                };
                if ok {
                    fixed = Some(start.elapsed());
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let (d, r) = (
            seen.unwrap_or_default().as_secs_f64() * 1e3,
            fixed.unwrap_or_default().as_secs_f64() * 1e3,
        );
        println!(
            "breakage {i} kind={} container={} detect_ms={d:.0} repair_ms={r:.0}",
            ["v1", "v2"][kind],
            c.id
        );
        detect.push(d);
        repair.push(r);
        by_kind_detect[kind].push(d);
        by_kind_repair[kind].push(r);
        // Settle: the report is clean for this container again.
        agent.wait_report(timeout, |rep| findings_for(rep, &c.id).is_empty())?;
    }
    let scans = agent.get("/metrics")?.1;
    for l in scans.lines().filter(|l| {
        l.starts_with("warden_scans_total")
            || l.starts_with("warden_scan_duration_seconds_sum")
            || l.starts_with("warden_scan_duration_seconds_count")
    }) {
        println!("{l}");
    }
    println!("{}", summary("detect v1", &by_kind_detect[0]));
    println!("{}", summary("detect v2", &by_kind_detect[1]));
    println!("{}", summary("repair v1", &by_kind_repair[0]));
    println!("{}", summary("repair v2", &by_kind_repair[1]));
    let status = agent.stop(Duration::from_secs(20))?;
    if !status.success() {
        bail!("agent exited with {status}");
    }
    drop(ctrs);
    detect.sort_by(f64::total_cmp);
    repair.sort_by(f64::total_cmp);
    println!(
        "detect breakages={} p50_ms={:.0} p99_ms={:.0} repair_p99_ms={:.0}",
        detect.len(),
        percentile(&detect, 50.0),
        percentile(&detect, 99.0),
        percentile(&repair, 99.0)
    );
    Ok(())
}
