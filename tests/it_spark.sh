#!/usr/bin/env bash
# shellcheck disable=SC2015 # `cond && ok ... || bad ...`: ok only echoes, it never fails
# Real Spark progress JSON (SPEC 2.2, 2.3): the corpus in tests/data/spark/ — StreamingQueryProgress
# as Spark 2.1 to 4.x, Databricks, PySpark and Spark Connect listeners emit it (SOURCES.md says
# where each came from and what was changed) — is posted to a running engine, key = query id,
# after the Kafka records it names have been produced. Each file's outcome must be the one
# MANIFEST.tsv states: attested (record count, reportedInputRows, ranges, ignoredSources),
# idle trigger (skipped, committed, counted, not dead-lettered) or dead-lettered with a reason.
# Plus the key rule (null key, another key), an idle trigger between two real batches that
# leaves the chain unbroken, the attestations topic and the engine's counters.
# Phase 1 runs the engine with the default notifications.initial_offsets=reject (every real
# batch 0 with a null start dead-lettered, "configure notifications.initial_offsets"); phase 2
# runs a second engine on the same broker (its own group, notifications, dead-letter and
# attestations topics, sink and spool) with initial_offsets=earliest and posts the files
# MANIFEST.tsv marks `earliest`: batch 0 with a null start on fresh topics holding known
# records, attested from the low watermark only where that agrees with numInputRows, else
# dead-lettered ("initial offsets ambiguous"). The checks live in tests/it/spark_corpus.py.
set -u
WS=$1
. "$(dirname "$0")/lib.sh"
it_init it_spark
SRC=${WS_SRC:-$(cd "$(dirname "$0")/.." && pwd)}
CORPUS=$SRC/tests/data/spark
HELPER=$SRC/tests/it/spark_corpus.py
GROUP=it-spark
GROUP2=it-spark-earliest
NOTIF2=spk-earliest.batches
ATT2=spk-earliest.attestations

# helper ARGS...: run spark_corpus.py, show its lines, count its ok/FAIL lines
helper() {
    $PY "$HELPER" "$@" > "$T/h.out" 2>&1
    local rc=$?
    cat "$T/h.out"
    pass=$((pass + $(grep -c '^ok   - ' "$T/h.out")))
    fail=$((fail + $(grep -c '^FAIL - ' "$T/h.out")))
    if [ "$rc" != 0 ] && ! grep -q '^FAIL - ' "$T/h.out"; then
        bad "spark_corpus.py $1 exited $rc"
    fi
}

helper selfcheck --corpus "$CORPUS"

# The broker, with every data topic the corpus names pre-created with the partitions it needs
# (topics a client creates get 4). Like it_broker in lib.sh, plus the --topic options.
mapfile -t TOPICS < <($PY "$HELPER" topics --corpus "$CORPUS")
TOPICS+=("--topic=$NOTIF2:4" "--topic=$NOTIF2.dlq:4" "--topic=$ATT2:4")
"$WS" broker --partitions 4 "${TOPICS[@]}" > "$T/broker.out" 2>"$T/broker.err" &
PIDS+=($!)
for _ in $(seq 100); do [ -s "$T/broker.out" ] && break; sleep 0.1; done
BOOT=$(head -1 "$T/broker.out")
[ -n "$BOOT" ] || { echo "it_spark: broker did not start: $(cat "$T/broker.err")"; exit 1; }
PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$WS" keygen --out "$T/k" >/dev/null 2>&1
cat > "$T/c.json" <<JSON
{"kafka": {"bootstrap.servers": "$BOOT", "group.id": "$GROUP"},
 "signing": {"key": "$T/k"},
 "sinks": [{"type": "file", "path": "$T/att"}],
 "spool": {"path": "$T/spool"},
 "engine": {"gap_wait_ms": 200},
 "metrics": {"listen": "127.0.0.1:$PORT"}}
JSON
"$WS" run -c "$T/c.json" 2>"$T/engine.log" &
ENG=$!
PIDS+=("$ENG")

# stop ENGINE-PID LABEL LOG: SIGTERM, expect exit 0; keep only the broker in PIDS
stop() {
    kill -TERM "$1" 2>/dev/null
    wait "$1"
    local rc=$?
    PIDS=("${PIDS[0]}") # the broker; the engine has exited
    [ "$rc" = 0 ] && ok "$2: engine exits 0 on SIGTERM" || bad "$2: engine exit status $rc on SIGTERM"
    if [ "$fail" != 0 ]; then
        echo "# $2: engine log (last 40 lines):"
        tail -40 "$3" | sed 's/^/#   /'
    fi
}

echo "# phase 1: notifications.initial_offsets=reject (default)"
helper post --boot "$BOOT" --corpus "$CORPUS" --state "$T/state.json"
helper check --boot "$BOOT" --corpus "$CORPUS" --state "$T/state.json" --group "$GROUP" \
    --att "$T/att" --ws "$WS" --pub "$T/k.pub" --metrics "http://127.0.0.1:$PORT/metrics" \
    --timeout 40 --att-topic windowseal.attestations
stop "$ENG" "phase 1 (reject)" "$T/engine.log"

echo "# phase 2: notifications.initial_offsets=earliest, a second engine on $NOTIF2"
PORT2=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$WS" keygen --out "$T/k2" >/dev/null 2>&1
cat > "$T/c2.json" <<JSON
{"kafka": {"bootstrap.servers": "$BOOT", "group.id": "$GROUP2",
           "notifications.topic": "$NOTIF2", "attestations.topic": "$ATT2"},
 "notifications": {"initial_offsets": "earliest"},
 "signing": {"key": "$T/k2"},
 "sinks": [{"type": "file", "path": "$T/att2"}],
 "spool": {"path": "$T/spool2"},
 "engine": {"gap_wait_ms": 200},
 "metrics": {"listen": "127.0.0.1:$PORT2"}}
JSON
"$WS" run -c "$T/c2.json" 2>"$T/engine2.log" &
ENG2=$!
PIDS+=("$ENG2")
helper post --boot "$BOOT" --corpus "$CORPUS" --state "$T/state2.json" --mode earliest \
    --notif-topic "$NOTIF2"
helper check --boot "$BOOT" --corpus "$CORPUS" --state "$T/state2.json" --group "$GROUP2" \
    --att "$T/att2" --ws "$WS" --pub "$T/k2.pub" --metrics "http://127.0.0.1:$PORT2/metrics" \
    --timeout 30 --mode earliest --notif-topic "$NOTIF2" --att-topic "$ATT2" \
    --not-in windowseal.batches.dlq --not-in windowseal.attestations
stop "$ENG2" "phase 2 (earliest)" "$T/engine2.log"
it_done
