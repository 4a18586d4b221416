#!/usr/bin/env bash
# shellcheck disable=SC2015 # `cond && ok ... || bad ...`: ok only echoes, it never fails
# Real Spark progress JSON (SPEC 2.2, 2.3): the corpus in tests/data/spark/ — StreamingQueryProgress
# as Spark 2.1 to 4.x, Databricks, PySpark and Spark Connect listeners emit it (SOURCES.md says
# where each came from and what was changed) — is posted to a running engine, key = query id,
# after the Kafka records it names have been produced. Each file's outcome must be the one
# MANIFEST.tsv states: attested (record count, reportedInputRows, ranges, ignoredSources),
# idle trigger (skipped, committed, counted, not dead-lettered) or dead-lettered with a reason.
# Plus the key rule (null key, another key), an idle trigger between two real batches that
# leaves the chain unbroken, and the engine's counters. The checks live in tests/it/spark_corpus.py.
set -u
WS=$1
. "$(dirname "$0")/lib.sh"
it_init it_spark
SRC=${WS_SRC:-$(cd "$(dirname "$0")/.." && pwd)}
CORPUS=$SRC/tests/data/spark
HELPER=$SRC/tests/it/spark_corpus.py
GROUP=it-spark

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

helper post --boot "$BOOT" --corpus "$CORPUS" --state "$T/state.json"
helper check --boot "$BOOT" --corpus "$CORPUS" --state "$T/state.json" --group "$GROUP" \
    --att "$T/att" --ws "$WS" --pub "$T/k.pub" --metrics "http://127.0.0.1:$PORT/metrics" \
    --timeout 40

kill -TERM "$ENG" 2>/dev/null
wait "$ENG"
rc=$?
PIDS=("${PIDS[0]}") # the broker; the engine has exited
[ "$rc" = 0 ] && ok "engine exits 0 on SIGTERM" || bad "engine exit status $rc on SIGTERM"
if [ "$fail" != 0 ]; then
    echo "# engine log (last 40 lines):"
    tail -40 "$T/engine.log" | sed 's/^/#   /'
fi
it_done
