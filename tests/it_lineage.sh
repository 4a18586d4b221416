#!/usr/bin/env bash
# it_lineage.sh — OpenLineage end to end (issue 17, FORMAT.md §11): each attested window becomes
# a START and a COMPLETE RunEvent, over HTTP and over Kafka, and lineage never holds a window.
#
#   bash tests/it_lineage.sh PATH/TO/windowseal      (ctest runs it so)
#
# A loopback backend (tests/it/lineage_receiver.py) records every POST; tests/it/lineage_check.py
# posts the notifications and checks what arrived, independently of windowseal (run ids
# recomputed from the window ids; every event validated with Debian's python3-jsonschema against
# tests/data/openlineage/ (the official schemas) and the project's facet schema, $refs resolved offline, and a broken
# event shown to fail). Scenarios: three windows; the backend answering 500 three times (retried,
# same bytes); kill -9 right after a chain head (the window's lineage comes from the replayed
# notification after the restart) and a replayed batch (re-emitted byte-identical); the backend
# down (windows attested on time, lineage counted dropped); then kafka_topic, read back with
# confluent_kafka. Exit 77 without python3-jsonschema.
set -u
WS=${1:-}
SRC=${WS_SRC:-$(cd "$(dirname "$0")/.." && pwd)}
. "$SRC/tests/lib.sh"
$PY -c 'import jsonschema' 2>/dev/null || { echo "it_lineage: python3-jsonschema missing: skipped"; exit 77; }
it_init it_lineage
# the official schemas, vendored verbatim (tests/data/openlineage/README.md says from where)
OL=${WS_OPENLINEAGE_DIR:-$SRC/tests/data/openlineage}
[ -f "$OL/OpenLineage.json" ] || { echo "it_lineage: $OL/OpenLineage.json missing: skipped"; exit 77; }
FACET=$SRC/docs/openlineage/1-0-0/WindowsealAttestationRunFacet.json
CHK="$PY $SRC/tests/it/lineage_check.py"
Q=3f0c2a1e-5b7d-4e9f-8a6b-1c2d3e4f5a6b
NAME=orders-to-iceberg

start_receiver() {
    rm -f "$T/rx.port"
    $PY "$SRC/tests/it/lineage_receiver.py" "$T/rx.port" "$T/rx.log" "$T/rx.fail" 2>"$T/rx.err" &
    RX=$!
    PIDS+=($RX)
    wait_for "$T/rx.port" 10 || { bad "receiver did not start"; it_done; exit 1; }
    RXPORT=${RXPORT:-$(head -1 "$T/rx.port")}
}
# delivered POSTs so far
delivered() { [ -f "$T/rx.log" ] && grep -c '"status": 201' "$T/rx.log" || echo 0; }
wait_delivered() {
    for _ in $(seq $(( ${2:-30} * 10 ))); do [ "$(delivered)" -ge "$1" ] && return 0; sleep 0.1; done
    return 1
}
metric() {
    curl -s "http://127.0.0.1:$MPORT/metrics" |
        awk -v k="windowseal_lineage_events_total{result=\"$1\"}" '$1 == k {print $2}'
}
start_engine() { # extra env for the engine in $1 (may be empty)
    env OL_TOKEN=tok-1234 ${1:-} "$WS" run -c "$T/config.json" >/dev/null 2>>"$T/engine.log" &
    ENGINE=$!
    PIDS+=($ENGINE)
}
env_of() { echo "$T/att/$Q/$(printf '%020d' "$1").dsse.json"; }

echo 0 >"$T/rx.fail"
start_receiver
it_broker 1
"$WS" keygen --out "$T/k" >/dev/null 2>&1 || bad "keygen"
MPORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$T/config.json" <<JSON
{"kafka": {"bootstrap.servers": "$BOOT", "group.id": "it-lineage"},
 "signing": {"key": "$T/k"},
 "sinks": [{"type": "file", "path": "$T/att"}],
 "spool": {"path": "$T/spool"},
 "openlineage": {"url": "http://127.0.0.1:$RXPORT/", "api_key_env": "OL_TOKEN"},
 "engine": {"retry_base_ms": 100, "retry_max_ms": 200, "gap_wait_ms": 0},
 "metrics": {"listen": "127.0.0.1:$MPORT"},
 "log": {"level": "info"}}
JSON
"$WS" config check -c "$T/config.json" >"$T/cc.out" 2>&1 && ok "config with openlineage accepted" ||
    bad "config check: $(cat "$T/cc.out")"
"$WS" config check -c "$T/config.json" --set openlineage.kafka_topic=x >"$T/cc2.out" 2>&1
[ $? = 2 ] && grep -q 'two transports' "$T/cc2.out" && ok "url and kafka_topic together refused" ||
    bad "url + kafka_topic: $(cat "$T/cc2.out")"
"$WS" run -c "$T/config.json" >/dev/null 2>"$T/noenv.err" # OL_TOKEN unset
[ $? = 2 ] && grep -q 'OL_TOKEN is not set' "$T/noenv.err" && ok "api_key_env without the variable refused at start" ||
    bad "run without OL_TOKEN: $(tail -2 "$T/noenv.err")"

# 1. three windows
start_engine
for b in 0 1 2; do $CHK post --boot "$BOOT" --q $Q --name $NAME --batch $b || bad "post $b"; done
wait_delivered 6 60 && ok "6 events delivered for 3 windows" || bad "delivered: $(delivered)"
m=$(metric delivered); [ "${m%.*}" = 6 ] && ok "lineage_events_total{delivered} = 6" || bad "delivered metric '$m'"

# 2. the backend answers 500 three times: retried with the same bytes, nothing lost
echo 3 >"$T/rx.fail"
$CHK post --boot "$BOOT" --q $Q --name $NAME --batch 3 || bad "post 3"
wait_delivered 8 30 && ok "window 3's events delivered after three 500s" || bad "after 500s: $(delivered)"
m=$(metric retried); [ "${m%.*}" = 3 ] && ok "lineage_events_total{retried} = 3" || bad "retried metric '$m'"

# 3. kill -9 right after window 4's chain head (lineage not sent, offset not committed), restart:
#    the notification comes again, is a duplicate, and its lineage is emitted from the envelope;
#    then batch 1 is replayed (as Spark does after its own restart): re-emitted, same bytes
kill -TERM $ENGINE; wait $ENGINE 2>/dev/null
start_engine "WS_CRASH_AT=head_published:1"
$CHK post --boot "$BOOT" --q $Q --name $NAME --batch 4 || bad "post 4"
wait $ENGINE 2>/dev/null
[ $? = 137 ] && grep -q 'SIGKILL at head_published' "$T/engine.log" && ok "engine killed -9 after window 4's head" ||
    bad "crash hook did not fire"
[ "$(delivered)" = 8 ] && ok "no lineage of window 4 before the kill" || bad "delivered before restart: $(delivered)"
start_engine
wait_delivered 10 60 && ok "window 4's lineage delivered after the restart" || bad "after restart: $(delivered)"
$CHK dup --boot "$BOOT" --q $Q --name $NAME --batch 1 || bad "dup 1"
wait_delivered 12 30 && ok "replayed batch 1 re-emitted" || bad "after replay: $(delivered)"
grep -q 'event=duplicate query='$Q' batch=1' "$T/engine.log" && ok "batch 1 seen as a duplicate" || bad "no duplicate log"

$CHK http --log "$T/rx.log" --windows $Q/0,$Q/1,$Q/2,$Q/3,$Q/4 --token tok-1234 --retried $Q/3 \
    --twice $Q/1 --out "$T/http.events" >"$T/http.out" 2>&1
cat "$T/http.out"
pass=$((pass + $(grep -c '^ok   - ' "$T/http.out"))); fail=$((fail + $(grep -c '^FAIL - ' "$T/http.out")))

# 4. the backend down: windows attested as fast as before, lineage counted dropped
kill -KILL $RX; wait $RX 2>/dev/null
t0=$(date +%s%N)
for b in 5 6; do $CHK post --boot "$BOOT" --q $Q --name $NAME --batch $b >/dev/null || bad "post $b"; done
if wait_for "$(env_of 6)" 15; then
    ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    ok "windows 5, 6 attested with the backend down (${ms} ms from the first post)"
else
    bad "window 6 not attested with the backend down"
fi
for _ in $(seq 200); do m=$(metric dropped); [ "${m%.*}" = 4 ] && break; sleep 0.1; done
[ "${m%.*}" = 4 ] && ok "lineage_events_total{dropped} = 4 (attempts spent)" || bad "dropped metric '$m'"
grep -q 'event=lineage_lost .*result=dropped' "$T/engine.log" && ok "lost lineage logged" || bad "no lineage_lost log"
kill -TERM $ENGINE; wait $ENGINE 2>/dev/null
"$WS" audit "$T/att" --pubkey "$T/k.pub" >"$T/audit.out" 2>&1 &&
    ok "windowseal audit: $(tail -1 "$T/audit.out")" || bad "audit: $(tail -3 "$T/audit.out")"

# 5. kafka_topic: the engine's producer, read back with confluent_kafka
Q2=9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b
cat >"$T/config.json" <<JSON
{"kafka": {"bootstrap.servers": "$BOOT", "group.id": "it-lineage"},
 "signing": {"key": "$T/k"},
 "sinks": [{"type": "file", "path": "$T/att"}],
 "spool": {"path": "$T/spool"},
 "openlineage": {"kafka_topic": "lineage.events", "namespace": "akko"},
 "engine": {"retry_base_ms": 100, "retry_max_ms": 200, "gap_wait_ms": 0},
 "metrics": {"listen": "127.0.0.1:$MPORT"},
 "log": {"level": "info"}}
JSON
start_engine
for b in 7 8; do $CHK post --boot "$BOOT" --q $Q2 --name clicks --batch $b >/dev/null || bad "post $b"; done
$CHK kafka --boot "$BOOT" --topic lineage.events --windows $Q2/7,$Q2/8 --ns akko --name clicks \
    --out "$T/kafka.events" >"$T/kafka.out" 2>&1
cat "$T/kafka.out"
pass=$((pass + $(grep -c '^ok   - ' "$T/kafka.out"))); fail=$((fail + $(grep -c '^FAIL - ' "$T/kafka.out")))
for _ in $(seq 50); do m=$(metric delivered); [ "${m%.*}" = 4 ] && break; sleep 0.1; done
[ "${m%.*}" = 4 ] && ok "kafka: lineage_events_total{delivered} = 4 (delivery reports)" || bad "kafka delivered metric '$m'"
kill -TERM $ENGINE; wait $ENGINE 2>/dev/null

# 6. every event seen, against the official schemas and ours
cat "$T/http.events" "$T/kafka.events" >"$T/all.events"
$CHK validate --events "$T/all.events" --schemas "$OL" --facet "$FACET" >"$T/val.out" 2>&1
cat "$T/val.out"
pass=$((pass + $(grep -c '^ok   - ' "$T/val.out"))); fail=$((fail + $(grep -c '^FAIL - ' "$T/val.out")))
grep -q "ERROR: AddressSanitizer\|runtime error:" "$T/engine.log" && bad "sanitizer report in the engine log"
it_done
