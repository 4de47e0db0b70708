//! The kernel release, parsed, and the kernel ranges that matter to runtime
//! hazards.
//!
//! Ranges are those of *upstream* kernels. Distribution kernels backport
//! fixes (and sometimes regressions), so a range check is a hint for a
//! report, not proof: a finding built on it says which release it read.

use std::cmp::Ordering;
use std::fmt;

use serde::Serialize;

/// A kernel version: `6.18.44-fc-v509` -> 6.18.44.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct KernelVersion {
    /// Major number (`6`).
    pub major: u32,
    /// Minor number (`18`).
    pub minor: u32,
    /// Patch level (`44`); `0` when the release has none (`4.19-rc1`).
    pub patch: u32,
}

impl KernelVersion {
    /// A version from its three numbers.
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Self {
            major,
            minor,
            patch,
        }
    }

    /// Parse a release string as `uname -r` prints it: `6.18.44-fc-v509`,
    /// `5.4.0-150-generic`, `3.10.0-1160.el7.x86_64`, `4.19`, `6.1.0+`.
    /// `None` when it does not start with `MAJOR.MINOR`.
    pub fn parse(release: &str) -> Option<Self> {
        let release = release.trim();
        // The numeric head ends at the first character that is neither a
        // digit nor a dot: `-`, `+`, `_`, a letter.
        let head_len = release
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(release.len());
        let mut nums = release[..head_len].split('.');
        let major = nums.next()?.parse().ok()?;
        let minor = nums.next()?.parse().ok()?;
        let patch = match nums.next() {
            Some("") | None => 0,
            Some(p) => p.parse().ok()?,
        };
        Some(Self::new(major, minor, patch))
    }
}

impl PartialOrd for KernelVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for KernelVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.major, self.minor, self.patch).cmp(&(other.major, other.minor, other.patch))
    }
}

impl fmt::Display for KernelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// First kernel where joining a cpu cgroup can fail with `EINVAL` because a
/// thread of the moving process is still `TASK_NEW` (seed 001,
/// `cgroup-attach-race`).
///
/// Introduced by 7dc603c9028e "sched/fair: Fix PELT integrity for new tasks"
/// (v4.8), which added the `TASK_NEW` state and made
/// `cpu_cgroup_can_attach()` refuse any task set holding a `TASK_NEW` task.
pub const ATTACH_RACE_FIRST: KernelVersion = KernelVersion::new(4, 8, 0);

/// First kernel where that refusal is gone.
///
/// Removed by df16b71c686c "sched/fair: Allow changing cgroup of new forked
/// task" (Chengming Zhou, applied to tip sched/core on 2022-08-23, after
/// v6.0-rc1, so first released in v6.1): the `TASK_NEW` test moved from
/// `cpu_cgroup_can_attach()` into `task_change_group_fair()`, which now
/// skips the detach/attach of a not-yet-woken task instead of failing the
/// whole move, and `can_attach` is only built with `CONFIG_RT_GROUP_SCHED`.
/// The earlier "sched: Fix yet more sched_fork() races" (b1e8206582f9,
/// v5.17) reorganised `sched_cgroup_fork()` but left the refusal in place.
///
/// Measured on this project's kernel 6.x: 20,000 moves of a thread-spawning
/// process between two v1 cpu cgroups, 0 `EINVAL`.
pub const ATTACH_RACE_FIXED: KernelVersion = KernelVersion::new(6, 1, 0);

/// First kernel with `clone3()` `CLONE_INTO_CGROUP` (v5.7), which starts a
/// process directly in a v2 cgroup and so never races a `cgroup.procs` write.
pub const CLONE_INTO_CGROUP_SINCE: KernelVersion = KernelVersion::new(5, 7, 0);

/// Whether an upstream kernel of version `v` refuses to move a process with a
/// `TASK_NEW` thread into a cpu cgroup (`[4.8, 6.1)`).
pub fn attach_race_exposed(v: KernelVersion) -> bool {
    ATTACH_RACE_FIRST <= v && v < ATTACH_RACE_FIXED
}

/// Whether kernel `v` supports `CLONE_INTO_CGROUP`.
pub fn supports_clone_into_cgroup(v: KernelVersion) -> bool {
    v >= CLONE_INTO_CGROUP_SINCE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_parse() {
        let v = |s| KernelVersion::parse(s);
        assert_eq!(v("6.18.44-fc-v509"), Some(KernelVersion::new(6, 18, 44)));
        assert_eq!(v("5.4.0-150-generic"), Some(KernelVersion::new(5, 4, 0)));
        assert_eq!(
            v("3.10.0-1160.el7.x86_64"),
            Some(KernelVersion::new(3, 10, 0))
        );
        assert_eq!(v("4.19"), Some(KernelVersion::new(4, 19, 0)));
        assert_eq!(v("4.19-rc1"), Some(KernelVersion::new(4, 19, 0)));
        assert_eq!(v("6.1.0+"), Some(KernelVersion::new(6, 1, 0)));
        assert_eq!(
            v(" 6.6.87.2-microsoft-standard-WSL2\n"),
            Some(KernelVersion::new(6, 6, 87))
        );
        assert_eq!(v("6"), None);
        assert_eq!(v("linux"), None);
        assert_eq!(v(""), None);
        assert_eq!(KernelVersion::new(6, 18, 44).to_string(), "6.18.44");
    }

    #[test]
    fn versions_order_numerically() {
        assert!(KernelVersion::new(4, 10, 0) > KernelVersion::new(4, 9, 300));
        assert!(KernelVersion::new(5, 0, 0) > KernelVersion::new(4, 20, 17));
        assert!(KernelVersion::new(6, 1, 0) > KernelVersion::new(6, 0, 19));
    }

    #[test]
    fn attach_race_range_is_4_8_to_6_1() {
        let exposed = |s| attach_race_exposed(KernelVersion::parse(s).expect("parse"));
        assert!(!exposed("4.4.0-210-generic"));
        assert!(!exposed("4.7.10"));
        assert!(exposed("4.8.0"));
        assert!(exposed("4.19.0-26-amd64"));
        assert!(exposed("5.4.0-150-generic"));
        assert!(exposed("5.15.0-91-generic"));
        assert!(exposed("6.0.19"));
        assert!(!exposed("6.1.0-18-amd64"));
        assert!(!exposed("6.18.44-fc-v509"));
    }

    #[test]
    fn clone_into_cgroup_from_5_7() {
        assert!(!supports_clone_into_cgroup(KernelVersion::new(5, 6, 19)));
        assert!(supports_clone_into_cgroup(KernelVersion::new(5, 7, 0)));
        assert!(supports_clone_into_cgroup(KernelVersion::new(6, 18, 44)));
    }
}
