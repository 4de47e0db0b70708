//! The discovered container.

use std::collections::BTreeMap;
use std::path::PathBuf;

use oci_spec::runtime::Spec;
use serde::Serialize;

use super::PodIdentity;

/// Which container a finding is about, as reports name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize)]
pub struct ContainerRef {
    /// Runtime container id.
    pub id: String,
    /// Runtime that owns it (`runc`, `crun`, `containerd/runc`).
    pub runtime: String,
    /// Kubernetes pod namespace, from CRI annotations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_namespace: Option<String>,
    /// Kubernetes pod name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_name: Option<String>,
    /// Container name inside the pod.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
}

/// Which runtime (and where) a container was found.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum RuntimeSource {
    /// runc, run directly (`/run/runc`).
    Runc,
    /// runc driven by containerd's shim, in a containerd namespace
    /// (`k8s.io` for Kubernetes pods).
    ContainerdRunc {
        /// The containerd namespace.
        namespace: String,
    },
    /// crun (`/run/crun`).
    Crun,
}

impl RuntimeSource {
    /// Short name used in reports: `runc`, `containerd/runc`, `crun`.
    pub fn name(&self) -> &'static str {
        match self {
            RuntimeSource::Runc => "runc",
            RuntimeSource::ContainerdRunc { .. } => "containerd/runc",
            RuntimeSource::Crun => "crun",
        }
    }

    /// The containerd namespace, if any.
    pub fn namespace(&self) -> Option<&str> {
        match self {
            RuntimeSource::ContainerdRunc { namespace } => Some(namespace),
            _ => None,
        }
    }

    /// The OCI runtime binary that created the container.
    pub fn oci_runtime(&self) -> crate::host::RuntimeKind {
        match self {
            RuntimeSource::Runc | RuntimeSource::ContainerdRunc { .. } => {
                crate::host::RuntimeKind::Runc
            }
            RuntimeSource::Crun => crate::host::RuntimeKind::Crun,
        }
    }
}

/// Host paths of a container's cgroups.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ContainerCgroups {
    /// v1 controller (`devices`, `freezer`, `name=systemd`...) -> host
    /// directory.
    pub v1: BTreeMap<String, PathBuf>,
    /// The v2 cgroup directory (on a hybrid host, under
    /// `/sys/fs/cgroup/unified`).
    pub v2: Option<PathBuf>,
    /// The cgroup path as the kernel names it (`/kubepods/.../<id>`), from
    /// the devices controller or v2.
    pub path: Option<String>,
}

impl ContainerCgroups {
    /// The v1 directory of `controller`.
    pub fn v1(&self, controller: &str) -> Option<&PathBuf> {
        self.v1.get(controller)
    }
}

/// One live container.
#[derive(Debug, Clone, Serialize)]
pub struct Container {
    /// Runtime container id.
    pub id: String,
    /// Which runtime owns it.
    pub runtime: RuntimeSource,
    /// Host pid of the container's init.
    pub pid: i32,
    /// The runtime's state directory for it.
    pub state_dir: PathBuf,
    /// Bundle directory (host path), when known.
    pub bundle: Option<PathBuf>,
    /// The OCI config the container was created from, when readable.
    #[serde(skip)]
    pub config: Option<Box<Spec>>,
    /// Where its cgroups are.
    pub cgroups: ContainerCgroups,
    /// Whether the runtime drives cgroups through systemd (a `.scope` unit).
    pub systemd_cgroup: bool,
    /// Kubernetes identity from CRI annotations.
    pub pod: Option<PodIdentity>,
}

impl Container {
    /// The reference used in findings.
    pub fn reference(&self) -> ContainerRef {
        ContainerRef {
            id: self.id.clone(),
            runtime: self.runtime.name().to_string(),
            pod_namespace: self.pod.as_ref().map(|p| p.namespace.clone()),
            pod_name: self.pod.as_ref().map(|p| p.name.clone()),
            container_name: self.pod.as_ref().and_then(|p| p.container.clone()),
        }
    }

    /// The systemd unit holding the container, when it runs in a scope
    /// (`cri-containerd-<id>.scope`, `runc-<id>.scope`, `crun-<id>.scope`).
    pub fn systemd_unit(&self) -> Option<String> {
        let path = self
            .cgroups
            .v1("name=systemd")
            .map(|p| p.to_string_lossy().into_owned());
        let path = path.or_else(|| self.cgroups.path.clone())?;
        let last = path.rsplit('/').next()?;
        last.ends_with(".scope").then(|| last.to_string())
    }
}
