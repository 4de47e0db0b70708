#!/usr/bin/env bash
# Runtime Warden's whole test suite on this machine, from a fresh clone:
#   1. installs what the tests need when it is missing (Debian packages only),
#   2. prepares the host (the hugetlb v1 mount crun needs on a hybrid layout),
#   3. checks formatting and lints,
#   4. builds, then runs unit, real-kernel and real-runtime tests.
# Idempotent: safe to run twice. As root, nothing may skip (WARDEN_NO_SKIP=1):
# a missing prerequisite fails the run instead of hiding a gap.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf '==> %s\n' "$*" >&2; }

# Debian packages the real-kernel and real-runtime tiers use.
PACKAGES=(runc crun containerd bpftool busybox-static systemd-container debootstrap dbus gcc seccomp)

if [ "$(id -u)" = 0 ]; then
    missing=()
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        log "installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi

    # crun joins every v1 controller it knows; on a hybrid layout without a
    # v1 hugetlb hierarchy it fails to start containers (DESIGN §7).
    if mountpoint -q /sys/fs/cgroup/unified 2>/dev/null && ! mountpoint -q /sys/fs/cgroup/hugetlb 2>/dev/null; then
        log "mounting the v1 hugetlb hierarchy for crun"
        mkdir -p /sys/fs/cgroup/hugetlb
        mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb
    fi
    export WARDEN_NO_SKIP=1
else
    log "not root: packages are not installed and tests that need root will print SKIPPED"
fi

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
log "building"
cargo build --workspace --all-targets --locked
log "running tests"
cargo test --workspace --locked
