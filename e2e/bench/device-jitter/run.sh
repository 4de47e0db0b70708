#!/bin/sh
# Device-rule jitter benchmark (seed 000): a process in a fresh v1 devices +
# freezer cgroup opens /dev/urandom in a tight loop while its rules are
# updated N times per mode (naive deny-all + replay, runtime-core's minimal
# transition, and the same under the freezer). Needs root and cgroup v1
# devices and freezer hierarchies under /sys/fs/cgroup.
#
#   e2e/bench/device-jitter/run.sh                 # 1000 updates per mode
#   e2e/bench/device-jitter/run.sh --updates 200   # or UPDATES=200
#
# The last line is:
#   device-jitter updates=N naive_eperm=X core_eperm=Y frozen_eperm=Z
set -eu
cd "$(dirname "$0")/../../.."
UPDATES="${UPDATES:-1000}"
cargo build --release --quiet -p warden-e2e --bin device_jitter
target_dir="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
exec "${target_dir:-target}/release/device_jitter" --updates "$UPDATES" "$@"
