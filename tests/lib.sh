# tests/lib.sh — shared by the shell integration tests: sourced after `WS=$1`.
#   it_init NAME        temp dir $T, counters, cleanup of every started process on exit
#   ok MSG / bad MSG    count a passed / failed check
#   it_broker [N]       start `windowseal broker --partitions N`; sets $BOOT
#   wait_for FILE [S]   wait up to S seconds (default 30) for FILE to exist
#   it_done             print "NAME: P passed, F failed" and return the status
# Skips (exit 77) when the binary or Debian's confluent_kafka is missing.
PY=/usr/bin/python3
PIDS=()

it_init() {
    IT_NAME=$1
    [ -x "$WS" ] || exit 77
    $PY -c 'import confluent_kafka' 2>/dev/null || { echo "$IT_NAME: no confluent_kafka, skipped"; exit 77; }
    T=$(mktemp -d)
    pass=0 fail=0
    trap it_cleanup EXIT
}

it_cleanup() {
    [ ${#PIDS[@]} -gt 0 ] && kill "${PIDS[@]}" 2>/dev/null
    wait 2>/dev/null
    [ -n "${KEEP:-}" ] || rm -rf "$T"
}

ok() { echo "ok: $*"; pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }

it_broker() {
    "$WS" broker --partitions "${1:-1}" > "$T/broker.out" 2>"$T/broker.err" &
    PIDS+=($!)
    for _ in $(seq 100); do [ -s "$T/broker.out" ] && break; sleep 0.1; done
    BOOT=$(head -1 "$T/broker.out")
    [ -n "$BOOT" ] || { echo "$IT_NAME: broker did not start"; exit 1; }
}

wait_for() {
    local n=$(( ${2:-30} * 10 ))
    for _ in $(seq "$n"); do [ -e "$1" ] && return 0; sleep 0.1; done
    return 1
}

it_done() {
    echo "$IT_NAME: $pass passed, $fail failed"
    [ "$fail" = 0 ]
}
