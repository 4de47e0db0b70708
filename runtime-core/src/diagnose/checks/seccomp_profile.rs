//! `seccomp-notify-unsafe` (and the other notify checks) for the profile a
//! running container was created with: the analysis of [`crate::seccomp`],
//! judged against the runtime that actually runs the container.

use super::Ctx;
use crate::diagnose::cause::{Cause, ProfileCause};
use crate::diagnose::Finding;
use crate::discovery::Container;
use crate::seccomp::{analyze, parse_input, Context, Target};

pub(in crate::diagnose) fn check(ctx: &Ctx<'_>, c: &Container) -> Vec<Finding> {
    let Some(spec) = c.config.as_deref() else {
        return Vec::new();
    };
    if spec
        .linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
        .is_none()
    {
        return Vec::new();
    }
    // The analysis reads the OCI config as the runtime does (it needs
    // `process.noNewPrivileges` beside `linux.seccomp`).
    let Ok(text) = serde_json::to_string(spec) else {
        return Vec::new();
    };
    let parsed = match parse_input(&text) {
        Ok(p) => p,
        Err(e) => {
            tracing::debug!(container = %c.id, error = %e, "seccomp profile does not parse");
            return Vec::new();
        }
    };
    let Some(profile) = parsed.profile else {
        return Vec::new();
    };
    let targets = ctx
        .host
        .runtime(c.runtime.oci_runtime())
        .map(|r| vec![Target::from_runtime_info(r)])
        .unwrap_or_default();
    let actx = Context {
        source: parsed.source,
        targets,
        no_new_privileges: None,
    };
    analyze(&profile, &actx)
        .into_iter()
        // Only the notify family concerns a running container: the rest
        // (unknown names, duplicates) is for `warden lint-profile` before
        // deployment.
        .filter(|issue| issue.check.is_notify_profile_check())
        .map(|issue| {
            Finding::new(
                issue.check,
                issue.severity,
                Some(c.reference()),
                Cause::Profile(ProfileCause {
                    message: issue.message,
                    evidence: issue.evidence,
                }),
            )
        })
        .collect()
}
