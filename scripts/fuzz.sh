#!/usr/bin/env bash
# Build the libFuzzer targets (clang, ASan+UBSan, instrumented libraries) and run each one for a
# bounded time on its seed corpus (tests/fuzz/corpus/<name>/).
#   scripts/fuzz.sh [SECONDS_PER_TARGET]     default 30; CI uses a short run, releases a long one
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-30}
BUILD=build-fuzz
CC=clang cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Debug -DWS_FUZZ=ON -DWS_SANITIZE=ON >/dev/null
cmake --build "$BUILD" -j"$(nproc)" >/dev/null
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
total=0
for f in tests/fuzz/fuzz_*.c; do
    name=$(basename "$f" .c)
    seeds=tests/fuzz/corpus/${name#fuzz_}
    work=$(mktemp -d)
    [ -d "$seeds" ] && cp -r "$seeds"/. "$work"/
    out=$("$BUILD/$name" -max_total_time="$SECS" -rss_limit_mb=2048 -max_len=1048576 \
          -print_final_stats=1 "$work" 2>&1) || { echo "$out" | tail -40; echo "$name: FAILED"; exit 1; }
    runs=$(echo "$out" | sed -n 's/^stat::number_of_executed_units: *//p')
    echo "$name: $runs executions in ${SECS}s, no crash"
    total=$((total + runs))
    rm -rf "$work"
done
echo "fuzz: $total executions in all"
