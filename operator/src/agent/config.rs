//! `warden agent`'s command line, and the policy the engine runs under.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use runtime_core::diagnose::CheckPolicy;
use warden_api::policy::Mode;
use warden_api::{EffectivePolicy, RuntimePolicySpec};

use crate::policy_file::from_spec;

/// Port the agent serves `/metrics`, `/healthz` and `/readyz` on by
/// default. The operator's DaemonSet declares it and probes it, so both sides
/// take it from here.
pub const DEFAULT_METRICS_PORT: u16 = 9464;
/// `--metrics-addr`'s default: every address, [`DEFAULT_METRICS_PORT`]
/// (a test checks the two agree; clap needs the literal).
pub const DEFAULT_METRICS_ADDR: &str = "0.0.0.0:9464";

/// Arguments of `warden agent`.
#[derive(Debug, Clone, Args)]
pub struct AgentArgs {
    /// Run without an API server: the policy comes from `--policy` (or the
    /// built-in defaults, which only report), the report goes to
    /// `--report-file` and to the log, and no Events are recorded.
    #[arg(long)]
    pub standalone: bool,
    /// A RuntimePolicy YAML file (standalone mode only; in a cluster the
    /// agent merges the RuntimePolicy objects that select its node).
    #[arg(long, value_name = "FILE", requires = "standalone")]
    pub policy: Option<PathBuf>,
    /// Also write the NodeRuntimeReport, as JSON, to this file, replaced
    /// atomically each time its content changes.
    #[arg(long, value_name = "PATH")]
    pub report_file: Option<PathBuf>,
    /// Scan at least this often, even when nothing signalled a change (v1
    /// device lists changed through a path no watch covers, shim eventfd
    /// counts, stuck inits). `30s`, `500ms`, `2m`, or plain seconds.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub interval: Duration,
    /// Scan only on the timer: no inotify watches and no device-program
    /// polling. For nodes where watches are scarce, and to measure what the
    /// triggers buy.
    #[arg(long)]
    pub no_watch: bool,
    /// How often to compare each container's attached cgroup v2 device
    /// programs with the last look (a program attach makes no inotify event).
    /// `0` turns the poll off.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub bpf_poll: Duration,
    /// Serve `/metrics`, `/healthz` and `/readyz` here. `off` serves nothing.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_METRICS_ADDR, value_parser = parse_addr)]
    pub metrics_addr: MetricsAddr,
    /// This node's name (the downward API's `spec.nodeName`); in standalone
    /// mode the hostname when not given. Names the NodeRuntimeReport.
    #[arg(long, env = "NODE_NAME", value_name = "NAME")]
    pub node_name: Option<String>,
    /// Write the NodeRuntimeReport to the API server at most this often
    /// (changes in between are coalesced into one apply).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub report_min_interval: Duration,
    /// Re-apply an unchanged report this often, so that its `lastScanTime`
    /// shows the agent is alive (the operator counts reports older than 15
    /// minutes as missing).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub report_heartbeat: Duration,
    /// Host root and runtime state directories (shared with `warden check`).
    #[command(flatten)]
    pub node: crate::node_args::NodeArgs,
    /// systemd's transient unit directory (container scopes and their
    /// `DeviceAllow=` drop-ins); watched for changes.
    #[arg(long, value_name = "DIR", default_value = "/run/systemd/transient")]
    pub systemd_transient: PathBuf,
}

/// Where the HTTP endpoints listen, if anywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsAddr {
    /// Serve nothing.
    Off,
    /// Listen here (port 0 picks a free port; the log says which).
    On(SocketAddr),
}

fn parse_addr(s: &str) -> Result<MetricsAddr, String> {
    if s.eq_ignore_ascii_case("off") || s.eq_ignore_ascii_case("none") {
        return Ok(MetricsAddr::Off);
    }
    s.parse()
        .map(MetricsAddr::On)
        .map_err(|e| format!("{s:?}: {e} (HOST:PORT, or off)"))
}

/// Parse `500ms`, `30s`, `2m`, `1h` or plain (fractional) seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected a number with an optional unit (ms, s, m, h)"))?;
    let factor = match unit.trim() {
        "ms" => 0.001,
        "" | "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        other => return Err(format!("{s:?}: unknown unit {other:?} (ms, s, m, h)")),
    };
    Duration::try_from_secs_f64(n * factor).map_err(|e| format!("{s:?}: {e}"))
}

/// What the engine runs under: the merged RuntimePolicy mapped onto the
/// checks' settings (by the same function `warden check --policy` uses),
/// plus the limits only a long-running agent needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentPolicy {
    /// Settings of the checks and repair plans.
    pub check: CheckPolicy,
    /// Enforce: repair. Audit: report only.
    pub enforce: bool,
    /// At most this many repairs run at the same time (at least 1).
    pub max_concurrent_repairs: usize,
    /// Names of the policies merged into this one (empty: built-in defaults).
    pub sources: Vec<String>,
}

impl AgentPolicy {
    /// Map a merged policy onto the engine's settings.
    pub fn from_effective(e: &EffectivePolicy) -> Self {
        // Go through a spec so that `from_spec` stays the one mapping of
        // policy fields onto check settings.
        let spec = RuntimePolicySpec {
            mode: e.mode,
            devices: e.devices.clone(),
            seccomp: e.seccomp.clone(),
            exec: e.exec.clone(),
            remediation: e.remediation.clone(),
            ..RuntimePolicySpec::default()
        };
        let loaded = from_spec(&spec);
        Self {
            check: loaded.check,
            enforce: e.mode == Mode::Enforce && !loaded.audit,
            max_concurrent_repairs: usize::try_from(e.remediation.max_concurrent_repairs)
                .unwrap_or(1)
                .max(1),
            sources: e.sources.clone(),
        }
    }
}

impl Default for AgentPolicy {
    /// The built-in defaults: Audit, one repair at a time.
    fn default() -> Self {
        Self::from_effective(&EffectivePolicy::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_api::policy::RemediationPolicy;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("5d").is_err());
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn metrics_address_can_be_turned_off() {
        assert_eq!(parse_addr("off"), Ok(MetricsAddr::Off));
        assert_eq!(
            parse_addr("127.0.0.1:9464"),
            Ok(MetricsAddr::On("127.0.0.1:9464".parse().unwrap()))
        );
        assert!(parse_addr("localhost").is_err());
    }

    #[test]
    fn default_metrics_address_uses_the_shared_port() {
        #[derive(clap::Parser)]
        struct Wrap {
            #[command(flatten)]
            agent: AgentArgs,
        }
        let w = <Wrap as clap::Parser>::try_parse_from(["warden"]).unwrap();
        match w.agent.metrics_addr {
            MetricsAddr::On(a) => assert_eq!(a.port(), DEFAULT_METRICS_PORT),
            MetricsAddr::Off => panic!("metrics are on by default"),
        }
    }

    #[test]
    fn defaults_report_only_and_enforce_maps_limits() {
        let d = AgentPolicy::default();
        assert!(!d.enforce, "no policy means Audit");
        assert_eq!(d.max_concurrent_repairs, 1);
        // The same settings; the merge keeps device lists sorted.
        let mut want = CheckPolicy::default();
        want.required_devices.sort();
        assert_eq!(d.check, want);

        let spec = RuntimePolicySpec {
            mode: Mode::Enforce,
            remediation: RemediationPolicy {
                max_concurrent_repairs: 3,
                kill_stuck_inits: true,
            },
            ..RuntimePolicySpec::default()
        };
        let p = AgentPolicy::from_effective(&warden_api::merge::merge_specs([&spec]));
        assert!(p.enforce);
        assert_eq!(p.max_concurrent_repairs, 3);
        assert!(p.check.kill_stuck_inits);
    }
}
