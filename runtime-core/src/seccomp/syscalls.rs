//! Syscall names per architecture, to tell a typo from a real syscall.
//!
//! Runtimes resolve each rule's names with libseccomp for every architecture
//! in the filter and skip names no architecture knows, so a misspelt name in
//! a profile silently protects nothing. The tables come from the `syscalls`
//! crate (generated from the kernel's syscall tables); libseccomp's
//! `scmp_sys_resolver` cross-checks them in this module's tests.

use syscalls::{
    aarch64, arm, loongarch64, mips, mips64, powerpc, powerpc64, riscv64, s390x, x86, x86_64,
};

/// An architecture a profile can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Arch {
    /// `SCMP_ARCH_X86`.
    X86,
    /// `SCMP_ARCH_X86_64`.
    X86_64,
    /// `SCMP_ARCH_X32` (x86_64 names).
    X32,
    /// `SCMP_ARCH_ARM`.
    Arm,
    /// `SCMP_ARCH_AARCH64`.
    Aarch64,
    /// `SCMP_ARCH_MIPS`, `SCMP_ARCH_MIPSEL` (o32).
    Mips,
    /// `SCMP_ARCH_MIPS64`, `SCMP_ARCH_MIPSEL64`, and the n32 variants.
    Mips64,
    /// `SCMP_ARCH_PPC`.
    Ppc,
    /// `SCMP_ARCH_PPC64`, `SCMP_ARCH_PPC64LE`.
    Ppc64,
    /// `SCMP_ARCH_S390`, `SCMP_ARCH_S390X`.
    S390x,
    /// `SCMP_ARCH_RISCV64`.
    Riscv64,
    /// `SCMP_ARCH_LOONGARCH64`.
    Loongarch64,
    /// An architecture libseccomp knows but this module has no table for
    /// (`SCMP_ARCH_PARISC`, `SCMP_ARCH_M68K`, `SCMP_ARCH_SH`...): its names
    /// cannot be checked.
    Unchecked,
}

impl Arch {
    /// Parse an `SCMP_ARCH_*` string; `None` when libseccomp does not know it
    /// either (runtimes refuse such a profile).
    pub fn parse(s: &str) -> Option<Arch> {
        Some(match s {
            "SCMP_ARCH_X86" => Arch::X86,
            "SCMP_ARCH_X86_64" => Arch::X86_64,
            "SCMP_ARCH_X32" => Arch::X32,
            "SCMP_ARCH_ARM" => Arch::Arm,
            "SCMP_ARCH_AARCH64" => Arch::Aarch64,
            "SCMP_ARCH_MIPS" | "SCMP_ARCH_MIPSEL" => Arch::Mips,
            "SCMP_ARCH_MIPS64"
            | "SCMP_ARCH_MIPSEL64"
            | "SCMP_ARCH_MIPS64N32"
            | "SCMP_ARCH_MIPSEL64N32" => Arch::Mips64,
            "SCMP_ARCH_PPC" => Arch::Ppc,
            "SCMP_ARCH_PPC64" | "SCMP_ARCH_PPC64LE" => Arch::Ppc64,
            "SCMP_ARCH_S390" | "SCMP_ARCH_S390X" => Arch::S390x,
            "SCMP_ARCH_RISCV64" => Arch::Riscv64,
            "SCMP_ARCH_LOONGARCH64" => Arch::Loongarch64,
            "SCMP_ARCH_PARISC" | "SCMP_ARCH_PARISC64" | "SCMP_ARCH_M68K" | "SCMP_ARCH_SH"
            | "SCMP_ARCH_SHEB" => Arch::Unchecked,
            _ => return None,
        })
    }

    /// Parse a Docker `includes.arches` / `excludes.arches` name (Go-style:
    /// `amd64`, `arm64`, `ppc64le`...).
    pub fn parse_docker(s: &str) -> Option<Arch> {
        Some(match s {
            "x86" | "386" => Arch::X86,
            "amd64" => Arch::X86_64,
            "x32" => Arch::X32,
            "arm" => Arch::Arm,
            "arm64" => Arch::Aarch64,
            "mips" | "mipsel" => Arch::Mips,
            "mips64" | "mips64le" | "mips64n32" | "mips64len32" => Arch::Mips64,
            "ppc" => Arch::Ppc,
            "ppc64" | "ppc64le" => Arch::Ppc64,
            "s390" | "s390x" => Arch::S390x,
            "riscv64" => Arch::Riscv64,
            "loong64" | "loongarch64" => Arch::Loongarch64,
            _ => return None,
        })
    }

    /// The two common node architectures.
    pub const DEFAULT: [Arch; 2] = [Arch::X86_64, Arch::Aarch64];

    /// Every architecture with a table.
    pub const TABLED: [Arch; 12] = [
        Arch::X86,
        Arch::X86_64,
        Arch::X32,
        Arch::Arm,
        Arch::Aarch64,
        Arch::Mips,
        Arch::Mips64,
        Arch::Ppc,
        Arch::Ppc64,
        Arch::S390x,
        Arch::Riscv64,
        Arch::Loongarch64,
    ];

    /// Whether `name` is a syscall on this architecture; `None` for
    /// [`Arch::Unchecked`].
    pub fn knows(self, name: &str) -> Option<bool> {
        fn has<T: std::str::FromStr>(name: &str) -> bool {
            name.parse::<T>().is_ok()
        }
        Some(match self {
            Arch::X86 => has::<x86::Sysno>(name),
            Arch::X86_64 | Arch::X32 => has::<x86_64::Sysno>(name),
            Arch::Arm => has::<arm::Sysno>(name) || ARM_PRIVATE.contains(&name),
            Arch::Aarch64 => has::<aarch64::Sysno>(name) && !generic_32bit_only(name),
            Arch::Mips => has::<mips::Sysno>(name),
            Arch::Mips64 => has::<mips64::Sysno>(name),
            Arch::Ppc => has::<powerpc::Sysno>(name),
            Arch::Ppc64 => has::<powerpc64::Sysno>(name),
            Arch::S390x => has::<s390x::Sysno>(name),
            Arch::Riscv64 => {
                (has::<riscv64::Sysno>(name) && !generic_32bit_only(name))
                    || RISCV_PRIVATE.contains(&name)
            }
            Arch::Loongarch64 => has::<loongarch64::Sysno>(name) && !generic_32bit_only(name),
            Arch::Unchecked => return None,
        })
    }
}

/// The `syscalls` crate's tables for the 64-bit "generic" architectures
/// (arm64, riscv64, loongarch64) carry entries the kernel's generic table
/// defines only for 32-bit builds: the `*time64` calls and `fstatat` (which
/// is `newfstatat` on 64-bit). libseccomp, and so every runtime, does not
/// resolve them there; the libseccomp cross-check test found them.
fn generic_32bit_only(name: &str) -> bool {
    name.ends_with("time64") || name == "fstatat"
}

/// ARM-private syscalls (`__ARM_NR_*`), which libseccomp resolves by these
/// names but the generic tables omit.
const ARM_PRIVATE: &[&str] = &[
    "breakpoint",
    "cacheflush",
    "usr26",
    "usr32",
    "set_tls",
    "get_tls",
];

/// RISC-V private syscall that libseccomp resolves.
const RISCV_PRIVATE: &[&str] = &["riscv_flush_icache", "riscv_hwprobe"];

/// Whether any of `arches` knows `name`. `None` when no listed architecture
/// has a table (nothing can be said).
pub fn known_on_any(arches: &[Arch], name: &str) -> Option<bool> {
    let mut checked = false;
    for a in arches {
        match a.knows(name) {
            Some(true) => return Some(true),
            Some(false) => checked = true,
            None => {}
        }
    }
    checked.then_some(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    #[test]
    fn common_names_resolve() {
        for n in [
            "read",
            "close",
            "sendmsg",
            "execve",
            "execveat",
            "openat",
            "clone3",
            "close_range",
        ] {
            for a in [Arch::X86_64, Arch::Aarch64, Arch::X86, Arch::Arm] {
                assert_eq!(a.knows(n), Some(true), "{n} on {a:?}");
            }
        }
        // Legacy calls exist on x86_64 but not on the generic-table arm64.
        assert_eq!(Arch::X86_64.knows("open"), Some(true));
        assert_eq!(Arch::Aarch64.knows("open"), Some(false));
        assert_eq!(Arch::Aarch64.knows("futex_time64"), Some(false));
        assert_eq!(Arch::Arm.knows("futex_time64"), Some(true));
        // 32-bit-only names.
        assert_eq!(Arch::X86_64.knows("_llseek"), Some(false));
        assert_eq!(Arch::X86.knows("_llseek"), Some(true));
        assert_eq!(Arch::Arm.knows("arm_fadvise64_64"), Some(true));
        assert_eq!(Arch::Arm.knows("cacheflush"), Some(true));
        assert_eq!(
            known_on_any(&[Arch::X86_64, Arch::X86], "chown32"),
            Some(true)
        );
        assert_eq!(known_on_any(&Arch::DEFAULT, "sendmsgg"), Some(false));
        assert_eq!(known_on_any(&[Arch::Unchecked], "anything"), None);
        assert_eq!(Arch::parse("SCMP_ARCH_PPC64LE"), Some(Arch::Ppc64));
        assert_eq!(Arch::parse("SCMP_ARCH_FOO"), None);
    }

    /// The tables agree with libseccomp (what runtimes actually resolve with)
    /// for x86_64 and aarch64: every name libseccomp gives a real (non-negative)
    /// number is in our table, and every table name resolves in libseccomp.
    #[test]
    fn tables_agree_with_libseccomp_resolver() {
        if !testing::require_tool("tables_agree_with_libseccomp_resolver", "scmp_sys_resolver") {
            return;
        }
        assert_eq!(Arch::parse_docker("arm64"), Some(Arch::Aarch64));
        for (arch, scmp, mod_names) in [
            (
                Arch::X86_64,
                "x86_64",
                x86_64::Sysno::iter().map(|s| s.name()).collect::<Vec<_>>(),
            ),
            (
                Arch::Aarch64,
                "aarch64",
                aarch64::Sysno::iter().map(|s| s.name()).collect::<Vec<_>>(),
            ),
        ] {
            // Names the libseccomp here (2.5.x) predates are allowed to be
            // unknown to it; everything else must resolve.
            let mut unresolved = Vec::new();
            for name in mod_names.iter().filter(|n| arch.knows(n) == Some(true)) {
                let out = std::process::Command::new("scmp_sys_resolver")
                    .args(["-a", scmp, name])
                    .output()
                    .expect("run scmp_sys_resolver");
                let nr: i64 = String::from_utf8_lossy(&out.stdout)
                    .trim()
                    .parse()
                    .unwrap_or(-1);
                if nr < 0 {
                    unresolved.push(*name);
                }
            }
            let newer_than_libseccomp: std::collections::BTreeSet<&str> =
                NEWER_THAN_LIBSECCOMP_2_5.iter().copied().collect();
            let surprising: Vec<_> = unresolved
                .iter()
                .filter(|n| !newer_than_libseccomp.contains(**n))
                .collect();
            assert!(
                surprising.is_empty(),
                "{arch:?}: libseccomp does not resolve {surprising:?}"
            );
            // And the other way round, for names a profile commonly lists.
            for name in [
                "read",
                "write",
                "close",
                "sendmsg",
                "execve",
                "pidfd_getfd",
                "faccessat2",
                "epoll_pwait2",
            ] {
                assert_eq!(arch.knows(name), Some(true), "{name} on {arch:?}");
            }
            assert!(
                mod_names.len() > 250,
                "{arch:?}: only {} names",
                mod_names.len()
            );
        }
    }

    /// Syscalls added to Linux after libseccomp 2.5.4's tables (Debian
    /// bookworm), plus a few non-syscall table entries.
    const NEWER_THAN_LIBSECCOMP_2_5: &[&str] = &[
        "memfd_secret",
        "process_mrelease",
        "futex_waitv",
        "set_mempolicy_home_node",
        "cachestat",
        "fchmodat2",
        "map_shadow_stack",
        "futex_wake",
        "futex_wait",
        "futex_requeue",
        "statmount",
        "listmount",
        "lsm_get_self_attr",
        "lsm_set_self_attr",
        "lsm_list_modules",
        "mseal",
        "uretprobe",
        "setxattrat",
        "getxattrat",
        "listxattrat",
        "removexattrat",
        "open_tree_attr",
        "file_getattr",
        "file_setattr",
        "uprobe",
    ];
}
