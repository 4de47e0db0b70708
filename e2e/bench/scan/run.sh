#!/bin/sh
# Scan benchmark: wall time and peak RSS of `warden check --output json`
# (release build, a fresh process per run) over
#   (a) N real runc containers (default 50) under a runc root of their own,
#   (b) a synthetic host tree of M containers (default 1000) on tmpfs
#       (/dev/shm), scanned with --host-root.
# Needs root. Target: (b) under 100 ms and under 30 MiB.
#
#   e2e/bench/scan/run.sh                          # 50 real, 1000 synthetic, 15 runs each
#   e2e/bench/scan/run.sh --real 0 --runs 30       # synthetic only
#   REAL=20 SYNTHETIC=2000 RUNS=10 e2e/bench/scan/run.sh
#
# The last line is:
#   scan containers=N p50_ms=X rss_mib=Y
set -eu
cd "$(dirname "$0")/../../.."
REAL="${REAL:-50}"
SYNTHETIC="${SYNTHETIC:-1000}"
RUNS="${RUNS:-15}"
cargo build --release --quiet -p warden --bin warden
cargo build --release --quiet -p warden-e2e --bin scan_bench
target_dir="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
target_dir="${target_dir:-target}"
exec "$target_dir/release/scan_bench" --warden "$target_dir/release/warden" \
    --real "$REAL" --synthetic "$SYNTHETIC" --runs "$RUNS" "$@"
