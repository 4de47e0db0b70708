//! Command-line definitions.
//!
//! The top of the module graph: it names each subcommand's `Args` type
//! (`check`, `agent` and `lint-profile` keep theirs next to their code) and
//! defines the others here. It imports nothing else from the subcommands,
//! and `check`, `agent` and `lint-profile` import nothing from it, so no
//! import cycle runs through it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Runtime Warden keeps container runtimes on Kubernetes nodes from hurting the
/// workloads they run: it finds device-rule, freezer, seccomp-notify and shim
/// hazards on a node and repairs broken containers without restarting them.
#[derive(Debug, Parser)]
#[command(name = "warden", version, propagate_version = true)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "WARDEN_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// More log detail (-v debug, -vv trace). `RUST_LOG` overrides it.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log line format.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object a line, for log pipelines.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Scan this node: host facts, containers, hazards. No cluster needed.
    ///
    /// Exit status: 0 when nothing at warning or above was found, 1 when
    /// something was, 2 when the scan itself failed. Without root the scan
    /// still runs and lists what it could not inspect.
    Check(crate::check::CheckArgs),
    /// Run the cluster operator: keep the agent DaemonSet applied and sum
    /// up the nodes' NodeRuntimeReports in each RuntimePolicy's status.
    ///
    /// Runs in the cluster (in-cluster service account) or against the
    /// current kubeconfig context. Only the replica holding the Lease acts.
    Operator(OperatorArgs),
    /// Print the CustomResourceDefinitions of RuntimePolicy and
    /// NodeRuntimeReport, as YAML generated from the Rust types.
    Crds(CrdsArgs),
    /// Check seccomp profiles for SCMP_ACT_NOTIFY hazards (notify on a syscall
    /// the runtime itself needs before execve, missing listener, notify as
    /// the default) and for what runtimes refuse or silently skip.
    ///
    /// Meant as a CI step: exit 0 clean, 1 with a finding at or above
    /// --fail-on, 2 when a file cannot be read or parsed.
    LintProfile(crate::lint_profile::LintProfileArgs),
    /// Run the node agent: the `check` engine continuously (a scan at
    /// start, on change and on a timer), repairs under the policy's mode and
    /// limits, the node's NodeRuntimeReport, Events, `/metrics`.
    ///
    /// In a cluster it follows the RuntimePolicies that select its node
    /// (NODE_NAME). `--standalone --policy FILE --report-file PATH` runs the
    /// same loop with no API server.
    Agent(crate::agent::AgentArgs),
}

/// Arguments of `warden operator`.
#[derive(Debug, Args)]
pub struct OperatorArgs {
    /// Image of the node agent (this same binary, run as `warden agent`).
    #[arg(long, env = "WARDEN_AGENT_IMAGE", value_name = "IMAGE")]
    pub agent_image: String,
    /// Pull policy of the agent image.
    #[arg(long, value_enum, default_value_t = PullPolicy::IfNotPresent, env = "WARDEN_AGENT_IMAGE_PULL_POLICY")]
    pub agent_image_pull_policy: PullPolicy,
    /// Namespace of the agent DaemonSet and the leader-election Lease
    /// (the operator's own namespace in a cluster).
    #[arg(long, env = "POD_NAMESPACE", default_value = "runtime-warden")]
    pub namespace: String,
    /// Name of the agent DaemonSet.
    #[arg(long, default_value = "warden-agent")]
    pub agent_name: String,
    /// Service account the agent pods run as.
    #[arg(long, default_value = "warden-agent")]
    pub agent_service_account: String,
    /// CPU the scheduler reserves for each agent pod.
    #[arg(long, default_value = "20m")]
    pub agent_cpu_request: String,
    /// Memory the scheduler reserves for each agent pod.
    #[arg(long, default_value = "64Mi")]
    pub agent_memory_request: String,
    /// Memory limit of each agent pod.
    #[arg(long, default_value = "256Mi")]
    pub agent_memory_limit: String,
    /// Name of the leader-election Lease.
    #[arg(long, default_value = "warden-operator")]
    pub lease_name: String,
    /// This replica's identity in the Lease (the pod name in a cluster).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// How long a Lease stays valid without renewal, in seconds.
    #[arg(long, default_value_t = 15)]
    pub lease_duration_seconds: u32,
    /// A leader that has not renewed for this long, in seconds, stops acting
    /// (must be shorter than the lease duration).
    #[arg(long, default_value_t = 10)]
    pub renew_deadline_seconds: u32,
    /// How often to try to acquire or renew the Lease, in seconds.
    #[arg(long, default_value_t = 2)]
    pub retry_period_seconds: u32,
    /// A NodeRuntimeReport older than this many seconds counts as missing.
    #[arg(long, default_value_t = 900)]
    pub report_stale_after_seconds: u32,
    /// Re-reconcile every policy at least this often, in seconds, so that
    /// stale reports are noticed without any change in the cluster.
    #[arg(long, default_value_t = 300)]
    pub resync_seconds: u32,
}

/// Image pull policy of the agent pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "PascalCase")]
pub enum PullPolicy {
    /// Pull on every pod start.
    Always,
    /// Pull only when the node lacks the image.
    IfNotPresent,
    /// Never pull; the image must be on the node.
    Never,
}

/// Arguments of `warden crds`.
#[derive(Debug, Args)]
pub struct CrdsArgs {
    /// Write one file per CRD into this directory (`crds/` of the
    /// repository) instead of printing both to stdout.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}
