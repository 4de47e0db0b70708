//! Where a node keeps what the engine reads: the flags `warden check` and
//! `warden agent` share, and the scan options they make.

use std::path::PathBuf;

use clap::Args;
use runtime_core::diagnose::ScanOptions;
use runtime_core::discovery::StateDirs;
use runtime_core::ports::Ports;
use runtime_core::root::HostRoot;

/// Host root, runtime state directories and Warden's own state directory.
#[derive(Debug, Clone, Args)]
pub struct NodeArgs {
    /// Inspect a host whose root filesystem is mounted here instead of `/`
    /// (for example `/host` inside the agent's container).
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub host_root: PathBuf,
    /// runc state directories (`runc --root`). Repeatable.
    #[arg(long = "runc-root", value_name = "DIR", default_values = ["/run/runc"])]
    pub runc_roots: Vec<PathBuf>,
    /// crun state directories. Repeatable.
    #[arg(long = "crun-root", value_name = "DIR", default_values = ["/run/crun"])]
    pub crun_roots: Vec<PathBuf>,
    /// The runc root containerd's shim uses (one sub-directory per
    /// containerd namespace).
    #[arg(long, value_name = "DIR", default_value = "/run/containerd/runc")]
    pub containerd_runc_root: PathBuf,
    /// containerd's v2 task state directory (holds the bundles).
    #[arg(
        long,
        value_name = "DIR",
        default_value = "/run/containerd/io.containerd.runtime.v2.task"
    )]
    pub containerd_tasks: PathBuf,
    /// Where scans keep state between runs (shim eventfd counts) and where
    /// freeze markers live (`<DIR>/frozen/`): cgroups a dead agent left
    /// frozen are thawed when the agent starts.
    #[arg(long, value_name = "DIR", default_value = "/run/warden")]
    pub state_dir: PathBuf,
    /// Find and run the host's runtime binaries (runc, crun, containerd) in
    /// the mount namespace of this process: `1` in the agent's pod, which
    /// shares the host's PID namespace but not its filesystem. Without it
    /// they are looked up under `--host-root` and run from here.
    #[arg(long, value_name = "PID")]
    pub host_binaries_pid: Option<i32>,
}

impl NodeArgs {
    /// The host root.
    pub fn root(&self) -> HostRoot {
        HostRoot::new(&self.host_root)
    }

    /// Scan options for the engine.
    pub fn scan_options(&self) -> ScanOptions {
        // Canary processes and eBPF reads only make sense on the machine we
        // run on: the ports of another root leave them out.
        ScanOptions {
            ports: Ports::for_root(self.root(), self.host_binaries_pid),
            state_dirs: StateDirs {
                runc: self.runc_roots.clone(),
                crun: self.crun_roots.clone(),
                containerd_runc: self.containerd_runc_root.clone(),
                containerd_tasks: self.containerd_tasks.clone(),
            },
            state_dir: Some(self.state_dir.clone()),
        }
    }

    /// Host path of the directory holding freeze markers.
    pub fn marker_dir(&self) -> PathBuf {
        self.root().join(self.state_dir.join("frozen"))
    }
}
