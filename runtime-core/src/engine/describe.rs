//! A repair plan in plain words, one line per action, for people (the
//! `REPAIRS` section of `warden check`; `--output json` keeps the full plan).

use crate::repair::RepairAction;

/// What `action` will do, one line per step.
pub fn describe(action: &RepairAction) -> Vec<String> {
    match action {
        RepairAction::V1Allow { cgroup, writes, .. } => writes
            .iter()
            .map(|w| {
                format!(
                    "write \"{w}\" to {}",
                    cgroup.join("devices.allow").display()
                )
            })
            .collect(),
        RepairAction::V2Replace {
            cgroup,
            attach,
            detach,
            already_attached,
            ..
        } => {
            let mut out = Vec::new();
            match attach {
                Some(rules) if !already_attached => out.push(format!(
                    "attach a device program of {} rules (the OCI rules plus every device the \
                     container can open now) to {}",
                    rules.len(),
                    cgroup.display()
                )),
                _ => {}
            }
            out.extend(
                detach
                    .iter()
                    .map(|id| format!("detach program {id} from {}", cgroup.display())),
            );
            out
        }
        RepairAction::SystemdDeviceAllow {
            unit,
            entries,
            freeze,
            ..
        } => {
            let list: Vec<String> = entries.iter().map(ToString::to_string).collect();
            vec![format!(
                "set DeviceAllow={} on {unit}{}",
                list.join(", "),
                if freeze.is_some() { " (frozen)" } else { "" }
            )]
        }
        RepairAction::Kill { pid, start_time } => vec![format!(
            "SIGKILL pid {pid} if it is still the process that started at tick {start_time}"
        )],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn each_action_reads_as_plain_steps() {
        let v1 = RepairAction::V1Allow {
            cgroup: PathBuf::from("/sys/fs/cgroup/devices/nc1"),
            add: Vec::new(),
            writes: vec!["allow c 1:3 rwm".into()],
        };
        assert_eq!(
            describe(&v1),
            ["write \"allow c 1:3 rwm\" to /sys/fs/cgroup/devices/nc1/devices.allow"]
        );
        let v2 = RepairAction::V2Replace {
            cgroup: PathBuf::from("/sys/fs/cgroup/unified/nc1"),
            attach: None,
            detach: vec![41],
            already_attached: false,
            based_on: vec![41],
        };
        assert_eq!(
            describe(&v2),
            ["detach program 41 from /sys/fs/cgroup/unified/nc1"]
        );
        let kill = RepairAction::Kill {
            pid: 7,
            start_time: 99,
        };
        assert!(describe(&kill)[0].starts_with("SIGKILL pid 7"));
    }
}
