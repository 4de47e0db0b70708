//! Where a cgroup lives on disk: the directory of a cgroup path in a v1
//! controller's hierarchy or in the v2 hierarchy, and the directories of a
//! running process.
//!
//! Cgroup paths come from container state and `/proc/<pid>/cgroup`, which
//! are not ours; a path that climbs out of its hierarchy (`..`) is refused
//! rather than joined.

use std::path::{Component, Path, PathBuf};

use super::CgroupLayout;
use crate::procfs::{Procfs, ProcfsError};

/// A hierarchy-relative cgroup path (`/docker/abc`) as a relative path, or
/// `None` when it holds `..` (or anything but plain names).
fn relative(cgroup: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in Path::new(cgroup).components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// The host directory of `cgroup` in the v1 hierarchy that holds
/// `controller` (`freezer`, `devices`, `cpu`): `/sys/fs/cgroup/freezer/docker/abc`.
/// `None` when no v1 hierarchy has that controller, or the path is unsafe.
pub fn v1_dir(layout: &CgroupLayout, controller: &str, cgroup: &str) -> Option<PathBuf> {
    Some(layout.v1_mount(controller)?.join(relative(cgroup)?))
}

/// The host directory of `cgroup` in the v2 hierarchy:
/// `/sys/fs/cgroup/unified/docker/abc` on a hybrid host. `None` without a v2
/// hierarchy, or when the path is unsafe.
pub fn v2_dir(layout: &CgroupLayout, cgroup: &str) -> Option<PathBuf> {
    Some(layout.v2.as_ref()?.mount_point.join(relative(cgroup)?))
}

/// The directory of process `pid`'s cgroup in the v1 hierarchy holding
/// `controller`, from `/proc/<pid>/cgroup`. Paths there are relative to the
/// reader's cgroup namespace, so call this from the host's.
pub fn process_v1_dir(
    layout: &CgroupLayout,
    procfs: &Procfs,
    pid: i32,
    controller: &str,
) -> Result<Option<PathBuf>, ProcfsError> {
    let line = procfs
        .cgroups(pid)?
        .into_iter()
        .find(|c| c.hierarchy != 0 && c.controllers.iter().any(|k| k == controller));
    Ok(line.and_then(|c| v1_dir(layout, controller, &c.path)))
}

/// The directory of process `pid`'s v2 cgroup, from `/proc/<pid>/cgroup`.
pub fn process_v2_dir(
    layout: &CgroupLayout,
    procfs: &Procfs,
    pid: i32,
) -> Result<Option<PathBuf>, ProcfsError> {
    Ok(procfs.v2_cgroup(pid)?.and_then(|p| v2_dir(layout, &p)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::root::HostRoot;
    use std::fs;

    const MOUNTINFO: &str = "\
30 25 0:26 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:5 - cgroup2 cgroup2 rw
31 25 0:27 / /sys/fs/cgroup/freezer rw,nosuid,nodev,noexec,relatime shared:6 - cgroup cgroup rw,freezer
32 25 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:7 - cgroup cgroup rw,cpu,cpuacct
";

    fn layout() -> CgroupLayout {
        CgroupLayout::from_mountinfo(MOUNTINFO).expect("layout")
    }

    #[test]
    fn dirs_join_hierarchy_relative_paths() {
        let l = layout();
        assert_eq!(
            v1_dir(&l, "freezer", "/docker/abc"),
            Some(PathBuf::from("/sys/fs/cgroup/freezer/docker/abc"))
        );
        assert_eq!(
            v1_dir(&l, "cpuacct", "/kubepods/pod1"),
            Some(PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/kubepods/pod1"))
        );
        assert_eq!(
            v1_dir(&l, "freezer", "/"),
            Some(PathBuf::from("/sys/fs/cgroup/freezer"))
        );
        assert_eq!(
            v1_dir(&l, "devices", "/x"),
            None,
            "no devices hierarchy here"
        );
        assert_eq!(
            v2_dir(&l, "/a/b"),
            Some(PathBuf::from("/sys/fs/cgroup/unified/a/b"))
        );
    }

    #[test]
    fn paths_that_climb_out_are_refused() {
        let l = layout();
        assert_eq!(v1_dir(&l, "freezer", "/docker/../../etc"), None);
        assert_eq!(v2_dir(&l, "../x"), None);
    }

    #[test]
    fn process_dirs_come_from_proc_pid_cgroup() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("proc/77");
        fs::create_dir_all(&p).expect("mkdir");
        fs::write(
            p.join("cgroup"),
            "5:freezer:/docker/abc\n4:cpu,cpuacct:/docker/abc\n0::/system.slice/docker-abc.scope\n",
        )
        .expect("write");
        let procfs = Procfs::new(HostRoot::new(d.path()));
        let l = layout();
        assert_eq!(
            process_v1_dir(&l, &procfs, 77, "freezer").expect("read"),
            Some(PathBuf::from("/sys/fs/cgroup/freezer/docker/abc"))
        );
        assert_eq!(
            process_v2_dir(&l, &procfs, 77).expect("read"),
            Some(PathBuf::from(
                "/sys/fs/cgroup/unified/system.slice/docker-abc.scope"
            ))
        );
        assert_eq!(
            process_v1_dir(&l, &procfs, 77, "devices").expect("read"),
            None
        );
        assert!(process_v1_dir(&l, &procfs, 78, "freezer")
            .expect_err("gone")
            .is_gone());
    }

    #[test]
    fn real_process_dirs_exist() {
        let Ok(l) = CgroupLayout::detect(&HostRoot::real()) else {
            assert!(crate::testing::require(
                false,
                "real_process_dirs_exist: no cgroups mounted"
            ));
            return;
        };
        let me = std::process::id() as i32;
        let procfs = Procfs::real();
        for h in &l.v1 {
            let Some(c) = h.controllers.first() else {
                continue;
            };
            let dir = process_v1_dir(&l, &procfs, me, c)
                .expect("read")
                .expect("a v1 dir");
            assert!(dir.join("cgroup.procs").exists(), "{}", dir.display());
        }
        if l.v2.is_some() {
            let dir = process_v2_dir(&l, &procfs, me)
                .expect("read")
                .expect("a v2 dir");
            assert!(dir.join("cgroup.procs").exists(), "{}", dir.display());
        }
    }
}
