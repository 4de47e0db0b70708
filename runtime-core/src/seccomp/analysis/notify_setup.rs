//! How a profile sets notify up, apart from which syscalls it notifies:
//! `seccomp-notify-default-action`, `seccomp-notify-no-listener`,
//! `seccomp-listener-without-notify`.

use crate::checks::{CheckId, Severity};
use crate::seccomp::profile::{Action, Profile, ProfileSource};

use super::{issue, Context, Issue, Target};

/// Notify as the default, notify without a listener, a listener without notify.
pub(super) fn check_notify_setup(
    p: &Profile,
    ctx: &Context,
    targets: &[Target],
    out: &mut Vec<Issue>,
) {
    let listener = p.listener_path.as_deref().filter(|s| !s.is_empty());
    let runtimes = targets
        .iter()
        .map(Target::label)
        .collect::<Vec<_>>()
        .join(", ");
    if Action::parse(&p.default_action) == Action::Notify {
        out.push(issue(
            CheckId::SeccompNotifyDefaultAction,
            Severity::Error,
            "defaultAction is SCMP_ACT_NOTIFY: every syscall the runtime makes after installing the filter \
             goes to the agent (runc refuses this; crun waits on the agent for each one)"
                .into(),
            &[
                ("path", "defaultAction".into()),
                ("basis", "measured: runc 1.1.5 refuses; crun 1.8.1 accepts".into()),
            ],
        ));
    }
    if p.uses_notify() && listener.is_none() {
        let (severity, why) = match ctx.source {
            ProfileSource::OciConfig { .. } => (
                Severity::Error,
                "runc refuses it (\"listenerPath is not set\"); crun starts with no agent, so every notified call fails with ENOSYS",
            ),
            ProfileSource::Standalone => (
                Severity::Warning,
                "unless the container engine supplies its own listener (CRI-O's seccomp notifier does), runc refuses it \
                 and crun starts with notified calls failing with ENOSYS",
            ),
        };
        out.push(issue(
            CheckId::SeccompNotifyNoListener,
            severity,
            format!("SCMP_ACT_NOTIFY is used but listenerPath is not set: {why}"),
            &[
                ("path", "listenerPath".into()),
                ("runtimes", runtimes.clone()),
                ("basis", "measured: runc 1.1.5, crun 1.8.1".into()),
            ],
        ));
    }
    if !p.uses_notify() && listener.is_some() {
        out.push(issue(
            CheckId::SeccompListenerWithoutNotify,
            Severity::Warning,
            "listenerPath is set but no rule uses SCMP_ACT_NOTIFY: crun still connects to the socket and fails \
             container start when no agent listens there"
                .into(),
            &[
                ("path", "listenerPath".into()),
                ("basis", "measured: crun 1.8.1 fails, runc 1.1.5 ignores it".into()),
            ],
        ));
    }
}
