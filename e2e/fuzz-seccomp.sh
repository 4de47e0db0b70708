#!/usr/bin/env bash
# Bounded fuzz run of the seccomp profile parser and analysis
# (fuzz/fuzz_targets/seccomp_profile.rs). Not part of the default test
# command: it needs a nightly toolchain and cargo-fuzz, and takes as long as
# you give it.
#
#   e2e/fuzz-seccomp.sh [SECONDS]      (default 60; or FUZZ_SECONDS)
#
# Seeds the corpus with the seccomp fixtures, runs libFuzzer with the
# profile vocabulary as a dictionary, and prints executions, rate, corpus
# size and crashes. Exit status: 0 no crash, 1 crash found (the input is in
# fuzz/artifacts/seccomp_profile/), 2 setup failure.
set -euo pipefail

seconds=${1:-${FUZZ_SECONDS:-60}}
here=$(cd "$(dirname "$0")/.." && pwd)
fuzz="$here/fuzz"
target=seccomp_profile

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    echo "fuzz-seccomp: needs a nightly toolchain (rustup toolchain install nightly)" >&2
    exit 2
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "fuzz-seccomp: installing cargo-fuzz from crates.io" >&2
    cargo install cargo-fuzz --locked >&2 || { echo "fuzz-seccomp: cannot install cargo-fuzz" >&2; exit 2; }
fi

corpus="$fuzz/corpus/$target"
artifacts="$fuzz/artifacts/$target"
mkdir -p "$corpus" "$artifacts"
cp "$here"/runtime-core/tests/fixtures/seccomp/*.json "$corpus/"
crashes_before=$(find "$artifacts" -type f | wc -l)

log=$(mktemp)
trap 'rm -f "$log"' EXIT
cd "$fuzz"
set +e
cargo +nightly fuzz run "$target" "$corpus" -- \
    -max_total_time="$seconds" -dict="$fuzz/seccomp.dict" -max_len=16384 \
    -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1
status=$?
set -e

stat() { grep -E "^stat::$1:" "$log" | awk '{print $2}' | tail -1; }
execs=$(stat number_of_executed_units)
rate=$(stat average_exec_per_sec)
peak=$(stat peak_rss_mb)
crashes_after=$(find "$artifacts" -type f | wc -l)
new_crashes=$((crashes_after - crashes_before))
corpus_size=$(find "$corpus" -type f | wc -l)

echo "fuzz-seccomp: target=$target seconds=$seconds executions=${execs:-?} exec_per_sec=${rate:-?} peak_rss_mb=${peak:-?} corpus=$corpus_size new_crashes=$new_crashes libfuzzer_status=$status"
if [ "$new_crashes" -gt 0 ] || { [ "$status" -ne 0 ] && grep -qE "ERROR: libFuzzer|panicked|deadly signal" "$log"; }; then
    grep -E "panicked|ERROR|Test unit written" "$log" | head -20 >&2
    exit 1
fi
if [ "$status" -ne 0 ]; then
    tail -30 "$log" >&2
    exit 2
fi
