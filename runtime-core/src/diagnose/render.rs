//! Messages and evidence rendered from a [`Cause`]: the only place finding
//! text is made. The texts are the stable ones reports have always shown.

use std::collections::BTreeMap;

use super::cause::{Cause, JitterRuntime};

fn pairs<const N: usize>(p: [(&str, String); N]) -> BTreeMap<String, String> {
    p.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

fn joined<T: ToString>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The one-sentence message of a finding with this cause.
pub(super) fn message(cause: &Cause) -> String {
    match cause {
        Cause::DeviceAccess(c) => {
            let names: Vec<String> = c
                .refused
                .iter()
                .map(|r| r.path.display().to_string())
                .collect();
            format!("container cannot open {}", names.join(", "))
        }
        Cause::UnitDevices(u) => {
            let names: Vec<String> = u
                .view
                .lost
                .iter()
                .map(|l| {
                    l.path
                        .as_ref()
                        .map_or_else(|| l.to_string(), |p| p.display().to_string())
                })
                .collect();
            format!(
                "systemd unit {} would deny {} once systemd re-applies it (daemon-reload): its \
                 DeviceAllow lacks entries the container's OCI config allows",
                u.view.unit,
                names.join(", ")
            )
        }
        Cause::Stuck(s) if s.runtime_init => format!(
            "runtime init {} is blocked in a seccomp notification before execve; the container \
             cannot start and only SIGKILL ends it",
            s.task
        ),
        Cause::Stuck(s) => format!(
            "{} has been waiting in a seccomp notification for more than {}s: its notify agent is \
             not answering",
            s.task, s.stuck_after_secs
        ),
        Cause::ShimLeak(s) => format!(
            "shim pid {} ({}) holds {} eventfds, {} more than when first seen ({:.1} per minute): it \
             leaks one per exec; frequent exec probes will exhaust its fd limit",
            s.pid,
            s.comm,
            s.count,
            s.count.saturating_sub(s.first_count),
            s.per_minute
        ),
        Cause::FreezeBlocked(b) => format!(
            "{} task(s) in uninterruptible sleep: a freeze would fail, so device updates must not \
             rely on it",
            b.tasks.len()
        ),
        Cause::Jitter(j) => match j.runtime {
            JitterRuntime::Crun => format!(
                "{} crun container(s): crun replays device rules as deny-all then allow on every \
                 update on cgroup v1: workloads opening devices at high frequency can get EPERM \
                 during updates",
                j.containers
            ),
            JitterRuntime::SystemdRunc => format!(
                "{} runc container(s) use the systemd cgroup driver on cgroup v1: systemd replays \
                 DeviceAllow as deny-all then allow on every update",
                j.containers
            ),
        },
        Cause::VersionHazard { hazard, .. } => hazard.message().to_string(),
        Cause::AttachRace { .. } => "kernel in [4.8, 6.1): joining a cgroup fails with EINVAL \
             while a thread is TASK_NEW; exec probes can fail spuriously with runtimes that do not \
             retry"
            .to_string(),
        Cause::Profile(p) => p.message.clone(),
    }
}

/// The facts behind a finding with this cause, as key/value text.
pub(super) fn evidence(cause: &Cause) -> BTreeMap<String, String> {
    match cause {
        Cause::DeviceAccess(c) => {
            let mut ev = BTreeMap::new();
            for r in &c.refused {
                let (_, major, minor) = r.device;
                if !r.by.is_empty() {
                    let by: Vec<&str> = r.by.iter().map(|l| l.as_str()).collect();
                    ev.insert(
                        format!("refused:{}", r.path.display()),
                        format!("{major}:{minor} rw refused by {}", by.join("+")),
                    );
                }
                if r.canary {
                    ev.insert(format!("canary:{}", r.path.display()), "EPERM".into());
                }
            }
            if let Some(e) = &c.canary_error {
                ev.insert("canary".into(), format!("not run: {e}"));
            }
            if let Some(d) = &c.v1_cgroup {
                ev.insert("v1_cgroup".into(), d.display().to_string());
            }
            if let Some(d) = &c.v2_cgroup {
                ev.insert("v2_cgroup".into(), d.display().to_string());
            }
            ev
        }
        Cause::UnitDevices(u) => {
            let v = &u.view;
            let mut ev = pairs([
                ("unit", v.unit.clone()),
                ("device_policy", v.policy().to_string()),
                ("device_allow", joined(&v.current.allow)),
                ("devices_lost", joined(&v.lost)),
                (
                    "systemd_version",
                    v.version
                        .map_or_else(|| "unknown".into(), |n| n.to_string()),
                ),
            ]);
            if v.lost_without_node > 0 {
                ev.insert(
                    "lost_without_host_node".into(),
                    v.lost_without_node.to_string(),
                );
            }
            ev
        }
        Cause::Stuck(s) => pairs([
            ("pid", s.pid.to_string()),
            ("tid", s.tid.to_string()),
            ("comm", s.comm.clone()),
            ("start_time", s.start_time.to_string()),
            ("cgroup", s.cgroup.clone().unwrap_or_default()),
            ("runtime_init", s.runtime_init.to_string()),
        ]),
        Cause::ShimLeak(s) => pairs([
            ("pid", s.pid.to_string()),
            ("eventfds", s.count.to_string()),
            ("eventfds_first_seen", s.first_count.to_string()),
            ("growth_per_minute", format!("{:.2}", s.per_minute)),
        ]),
        Cause::FreezeBlocked(b) => pairs([
            ("tasks", b.tasks.join("; ")),
            ("cgroup", b.cgroup.display().to_string()),
        ]),
        Cause::Jitter(j) => {
            let version = j.version.as_deref().unwrap_or("?");
            match j.runtime {
                JitterRuntime::Crun => pairs([
                    ("runtime", format!("crun {version}")),
                    ("crun_containers", j.containers.to_string()),
                ]),
                JitterRuntime::SystemdRunc => pairs([
                    ("runtime", format!("runc {version}")),
                    ("systemd_driver_containers", j.containers.to_string()),
                ]),
            }
        }
        Cause::VersionHazard { hazard, dev_char } => pairs([
            ("hazard", hazard.as_str().to_string()),
            ("dev_char", dev_char.to_string()),
        ]),
        Cause::AttachRace { kernel } => pairs([("kernel", kernel.clone())]),
        Cause::Profile(p) => p.evidence.clone(),
    }
}
