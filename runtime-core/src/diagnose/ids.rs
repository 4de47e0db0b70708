//! Stable check ids (DESIGN §2). Reports, metrics and policies key on them:
//! never rename one.

/// Device rules replaced by deny-all then re-allow on update (seed 000).
pub const DEVICE_UPDATE_JITTER: &str = "device-update-jitter";
/// Joining a cgroup fails with EINVAL while a thread is `TASK_NEW` (seed 001).
pub const CGROUP_ATTACH_RACE: &str = "cgroup-attach-race";
/// A shim leaks eventfds (seed 002).
pub const SHIM_FD_LEAK: &str = "shim-fd-leak";
/// systemd `DeviceAllow=` would deny what the OCI config allows on the next
/// re-apply (seed 003, latent).
pub const DEVICE_RULES_LATENT: &str = "device-rules-latent";
/// A container cannot open a required device now (seed 003, fired).
pub const DEVICE_ACCESS_BROKEN: &str = "device-access-broken";
/// A seccomp profile notifies a syscall the runtime needs (seed 004).
pub const SECCOMP_NOTIFY_UNSAFE: &str = "seccomp-notify-unsafe";
/// A container init or exec is blocked in a seccomp user notification.
pub const SECCOMP_NOTIFY_STUCK: &str = "seccomp-notify-stuck";
/// Tasks in uninterruptible sleep would make a freeze fail.
pub const FREEZE_BLOCKED: &str = "freeze-blocked";
