//! Kubernetes pod identity from CRI annotations on the OCI config.

use std::collections::HashMap;

use serde::Serialize;

/// Which pod (and which container in it) a runtime container belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PodIdentity {
    /// Pod namespace.
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// Pod UID.
    pub uid: Option<String>,
    /// Container name in the pod spec; `None` for the sandbox (pause).
    pub container: Option<String>,
}

/// Annotation keys (namespace, name, uid, container) of containerd's CRI
/// plugin and of CRI-O, in that order of preference.
const KEYS: [[&str; 4]; 2] = [
    [
        "io.kubernetes.cri.sandbox-namespace",
        "io.kubernetes.cri.sandbox-name",
        "io.kubernetes.cri.sandbox-uid",
        "io.kubernetes.cri.container-name",
    ],
    [
        "io.kubernetes.pod.namespace",
        "io.kubernetes.pod.name",
        "io.kubernetes.pod.uid",
        "io.kubernetes.container.name",
    ],
];

impl PodIdentity {
    /// Read the identity from OCI annotations; `None` for containers not
    /// created through CRI.
    pub fn from_annotations(a: &HashMap<String, String>) -> Option<Self> {
        KEYS.iter().find_map(|[ns, name, uid, ctr]| {
            Some(Self {
                namespace: a.get(*ns)?.clone(),
                name: a.get(*name)?.clone(),
                uid: a.get(*uid).cloned(),
                container: a.get(*ctr).cloned(),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containerd_and_crio_annotations() {
        let mut a = HashMap::new();
        a.insert("io.kubernetes.cri.sandbox-namespace".into(), "prod".into());
        a.insert("io.kubernetes.cri.sandbox-name".into(), "web-0".into());
        a.insert("io.kubernetes.cri.sandbox-uid".into(), "u-1".into());
        a.insert("io.kubernetes.cri.container-name".into(), "app".into());
        let p = PodIdentity::from_annotations(&a).expect("pod");
        assert_eq!((p.namespace.as_str(), p.name.as_str()), ("prod", "web-0"));
        assert_eq!(p.container.as_deref(), Some("app"));

        let mut b = HashMap::new();
        b.insert("io.kubernetes.pod.namespace".into(), "ns".into());
        b.insert("io.kubernetes.pod.name".into(), "p".into());
        let p = PodIdentity::from_annotations(&b).expect("pod");
        assert_eq!(p.uid, None);
        assert_eq!(p.container, None);

        assert!(PodIdentity::from_annotations(&HashMap::new()).is_none());
    }
}
