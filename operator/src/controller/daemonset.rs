//! The agent DaemonSet the operator applies (pure: flags in, object out).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    DaemonSet, DaemonSetSpec, DaemonSetUpdateStrategy, RollingUpdateDaemonSet,
};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, HostPathVolumeSource,
    ObjectFieldSelector, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SecurityContext,
    Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::agent::config::DEFAULT_METRICS_PORT;
use crate::cli::{OperatorArgs, PullPolicy};

/// Name of the agent container's metrics port, which the probes refer to.
const METRICS_PORT_NAME: &str = "metrics";
/// The agent must keep running under the node pressure (memory, PID) that
/// is often part of the runtime problem it repairs: without this class the
/// kubelet evicts it among the first.
const PRIORITY_CLASS: &str = "system-node-critical";

/// What the agent DaemonSet is made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentConfig {
    /// Namespace of the DaemonSet.
    pub namespace: String,
    /// Name of the DaemonSet.
    pub name: String,
    /// Agent image.
    pub image: String,
    /// Agent image pull policy.
    pub pull_policy: PullPolicy,
    /// Service account of the agent pods.
    pub service_account: String,
    /// CPU request per agent pod.
    pub cpu_request: String,
    /// Memory request per agent pod.
    pub memory_request: String,
    /// Memory limit per agent pod.
    pub memory_limit: String,
}

impl AgentConfig {
    /// The agent's configuration from `warden operator`'s flags.
    pub fn from_args(args: &OperatorArgs) -> Self {
        Self {
            namespace: args.namespace.clone(),
            name: args.agent_name.clone(),
            image: args.agent_image.clone(),
            pull_policy: args.agent_image_pull_policy,
            service_account: args.agent_service_account.clone(),
            cpu_request: args.agent_cpu_request.clone(),
            memory_request: args.agent_memory_request.clone(),
            memory_limit: args.agent_memory_limit.clone(),
        }
    }
}

/// Labels that select the agent pods. Part of the DaemonSet's immutable
/// selector: never change them.
fn selector_labels() -> BTreeMap<String, String> {
    [
        ("app.kubernetes.io/name", "runtime-warden"),
        ("app.kubernetes.io/component", "agent"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// Host paths the agent needs, mounted at the same path inside the
/// container so that paths in runtime state, cgroup files and unit files
/// mean the same thing on both sides: (volume name, host path, read-only).
const HOST_MOUNTS: [(&str, &str, bool); 4] = [
    // Container cgroups: device programs, v1 device lists, freezer.
    ("cgroup", "/sys/fs/cgroup", false),
    // Runtime state (runc, crun, containerd), systemd's bus socket and
    // transient unit drop-ins.
    ("run", "/run", false),
    // Device nodes: what DeviceAllow= entries and canary opens refer to.
    ("dev", "/dev", false),
    // The kubelet's Localhost seccomp profiles, checked for notify hazards.
    ("seccomp", "/var/lib/kubelet/seccomp", true),
];

/// `Directory` for what every Linux node has: if one is missing the pod
/// stays pending, visible in the DaemonSet's status, instead of running
/// blind. The kubelet's seccomp directory exists only once a profile was
/// installed; an empty one is what the kubelet itself would create.
fn host_path_type(volume: &str) -> &'static str {
    if volume == "seccomp" {
        "DirectoryOrCreate"
    } else {
        "Directory"
    }
}

fn pull_policy(p: PullPolicy) -> &'static str {
    match p {
        PullPolicy::Always => "Always",
        PullPolicy::IfNotPresent => "IfNotPresent",
        PullPolicy::Never => "Never",
    }
}

fn value_env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.to_owned()),
        ..EnvVar::default()
    }
}

/// An HTTP GET probe of `path` on the metrics port.
fn probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String(METRICS_PORT_NAME.into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(5),
        failure_threshold: Some(failures),
        ..Probe::default()
    }
}

fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.to_owned(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

/// The agent DaemonSet: one privileged pod per node, in the host's PID
/// namespace, tolerating every taint (a node that is tainted is often the
/// one with a runtime problem), with the host paths it inspects and repairs.
pub fn agent_daemonset(c: &AgentConfig) -> DaemonSet {
    let mut labels = selector_labels();
    labels.insert(
        "app.kubernetes.io/managed-by".into(),
        "warden-operator".into(),
    );

    let volumes = HOST_MOUNTS
        .iter()
        .map(|(name, path, _)| Volume {
            name: (*name).to_owned(),
            host_path: Some(HostPathVolumeSource {
                path: (*path).to_owned(),
                type_: Some(host_path_type(name).into()),
            }),
            ..Volume::default()
        })
        .collect();
    let volume_mounts = HOST_MOUNTS
        .iter()
        .map(|(name, path, read_only)| VolumeMount {
            name: (*name).to_owned(),
            mount_path: (*path).to_owned(),
            read_only: read_only.then_some(true),
            // Cgroups created and runtime state written after the pod
            // started must be visible to it.
            mount_propagation: Some("HostToContainer".into()),
            ..VolumeMount::default()
        })
        .collect();

    let resources = ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_owned(), Quantity(c.cpu_request.clone())),
            ("memory".to_owned(), Quantity(c.memory_request.clone())),
        ])),
        limits: Some(BTreeMap::from([(
            "memory".to_owned(),
            Quantity(c.memory_limit.clone()),
        )])),
        ..ResourceRequirements::default()
    };

    let agent = Container {
        name: "agent".into(),
        image: Some(c.image.clone()),
        image_pull_policy: Some(pull_policy(c.pull_policy).into()),
        // hostPID: the host's runtime binaries are found and run in PID 1's
        // mount namespace, not in this image.
        args: Some(vec![
            "agent".into(),
            "--host-binaries-pid".into(),
            "1".into(),
        ]),
        env: Some(vec![
            field_env("NODE_NAME", "spec.nodeName"),
            field_env("POD_NAMESPACE", "metadata.namespace"),
            // Log pipelines parse JSON; `info` shows repairs and report
            // writes (the default would be the same, but explicit here so
            // an operator can edit it in place).
            value_env("WARDEN_LOG_FORMAT", "json"),
            value_env("RUST_LOG", "info"),
        ]),
        ports: Some(vec![ContainerPort {
            name: Some(METRICS_PORT_NAME.into()),
            container_port: i32::from(DEFAULT_METRICS_PORT),
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        }]),
        // Liveness is lenient (a long repair must not get the agent
        // killed mid-write); readiness follows /readyz closely.
        liveness_probe: Some(probe("/healthz", 20, 3)),
        readiness_probe: Some(probe("/readyz", 10, 1)),
        security_context: Some(SecurityContext {
            // bpf(2) on device programs, cgroup writes, the freezer, and
            // entering containers' namespaces for canary opens.
            privileged: Some(true),
            run_as_user: Some(0),
            ..SecurityContext::default()
        }),
        resources: Some(resources),
        volume_mounts: Some(volume_mounts),
        ..Container::default()
    };

    DaemonSet {
        metadata: ObjectMeta {
            name: Some(c.name.clone()),
            namespace: Some(c.namespace.clone()),
            labels: Some(labels.clone()),
            ..ObjectMeta::default()
        },
        spec: Some(DaemonSetSpec {
            selector: LabelSelector {
                match_labels: Some(selector_labels()),
                ..LabelSelector::default()
            },
            update_strategy: Some(DaemonSetUpdateStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDaemonSet {
                    max_unavailable: Some(IntOrString::String("10%".into())),
                    ..RollingUpdateDaemonSet::default()
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(c.service_account.clone()),
                    priority_class_name: Some(PRIORITY_CLASS.into()),
                    host_pid: Some(true),
                    node_selector: Some(BTreeMap::from([(
                        "kubernetes.io/os".to_owned(),
                        "linux".to_owned(),
                    )])),
                    // `operator: Exists` with no key tolerates every taint,
                    // NoExecute included.
                    tolerations: Some(vec![Toleration {
                        operator: Some("Exists".into()),
                        ..Toleration::default()
                    }]),
                    containers: vec![agent],
                    volumes: Some(volumes),
                    termination_grace_period_seconds: Some(30),
                    ..PodSpec::default()
                }),
            },
            ..DaemonSetSpec::default()
        }),
        ..DaemonSet::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> AgentConfig {
        AgentConfig {
            namespace: "runtime-warden".into(),
            name: "warden-agent".into(),
            image: "runtime-warden:0.1.0".into(),
            pull_policy: PullPolicy::IfNotPresent,
            service_account: "warden-agent".into(),
            cpu_request: "20m".into(),
            memory_request: "64Mi".into(),
            memory_limit: "256Mi".into(),
        }
    }

    /// The applied object, as YAML a reviewer can read. To accept a change:
    /// `WARDEN_UPDATE_SNAPSHOTS=1 cargo test -p warden daemonset`.
    #[test]
    fn daemonset_matches_snapshot() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src/controller/testdata/agent-daemonset.yaml"
        );
        let actual = serde_saphyr::to_string(&agent_daemonset(&config())).unwrap();
        if std::env::var_os("WARDEN_UPDATE_SNAPSHOTS").is_some() {
            std::fs::write(path, &actual).unwrap();
        }
        let expected = std::fs::read_to_string(path).unwrap();
        assert_eq!(
            actual, expected,
            "agent DaemonSet changed; if intended, rerun with WARDEN_UPDATE_SNAPSHOTS=1"
        );
    }

    #[test]
    fn daemonset_has_what_the_agent_needs() {
        let ds = agent_daemonset(&config());
        let v = serde_json::to_value(&ds).unwrap();
        assert_eq!(v["apiVersion"], "apps/v1");
        assert_eq!(v["kind"], "DaemonSet");
        let pod = &v["spec"]["template"]["spec"];
        assert_eq!(pod["hostPID"], true);
        assert_eq!(
            pod["tolerations"],
            serde_json::json!([{"operator": "Exists"}])
        );
        let c = &pod["containers"][0];
        assert_eq!(c["image"], "runtime-warden:0.1.0");
        assert_eq!(c["imagePullPolicy"], "IfNotPresent");
        assert_eq!(c["securityContext"]["privileged"], true);
        assert_eq!(c["resources"]["requests"]["cpu"], "20m");
        let mounts: Vec<&str> = c["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["mountPath"].as_str().unwrap())
            .collect();
        assert_eq!(
            mounts,
            ["/sys/fs/cgroup", "/run", "/dev", "/var/lib/kubelet/seccomp"]
        );
        // The pod template's labels include the selector's.
        let sel = &v["spec"]["selector"]["matchLabels"];
        for (k, val) in sel.as_object().unwrap() {
            assert_eq!(&v["spec"]["template"]["metadata"]["labels"][k], val);
        }
    }

    /// The port the DaemonSet declares and probes is the one the agent
    /// listens on by default.
    #[test]
    fn probes_target_the_agents_default_metrics_port() {
        let v = serde_json::to_value(agent_daemonset(&config())).unwrap();
        let pod = &v["spec"]["template"]["spec"];
        assert_eq!(pod["priorityClassName"], "system-node-critical");
        let c = &pod["containers"][0];
        assert_eq!(c["ports"][0]["name"], "metrics");
        assert_eq!(
            c["ports"][0]["containerPort"],
            i64::from(crate::agent::config::DEFAULT_METRICS_PORT)
        );
        assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
        assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
        for probe in ["livenessProbe", "readinessProbe"] {
            assert_eq!(c[probe]["httpGet"]["port"], c["ports"][0]["name"]);
        }
        let env: Vec<(&str, &str)> = c["env"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| Some((e["name"].as_str()?, e["value"].as_str()?)))
            .collect();
        assert!(env.contains(&("WARDEN_LOG_FORMAT", "json")));
        assert!(env.contains(&("RUST_LOG", "info")));
    }

    #[test]
    fn pull_policy_and_image_come_from_flags() {
        let mut c = config();
        c.image = "registry.example/warden@sha256:abc".into();
        c.pull_policy = PullPolicy::Always;
        let v = serde_json::to_value(agent_daemonset(&c)).unwrap();
        let container = &v["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["image"], "registry.example/warden@sha256:abc");
        assert_eq!(container["imagePullPolicy"], "Always");
    }
}
