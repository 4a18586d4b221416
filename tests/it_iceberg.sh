#!/usr/bin/env bash
# it_iceberg.sh — Kafka-to-Iceberg end to end (issue 16): the engine resolves each window's
# Iceberg output from a REST catalog and the table's own Avro metadata, not from the job's word.
#
#   bash tests/it_iceberg.sh PATH/TO/windowseal      (ctest runs it so)
#
# The tables and the loopback REST catalog are tests/it/iceberg_catalog.py's (written from the
# Iceberg table spec with Debian's python3-avro, every Avro file read back with avrocat); the
# embedded broker carries the notifications and the records; tests/it/iceberg_e2e.py posts one
# window per fixture case and checks every statement: the exact `iceberg` object the fixture
# computed, the added files as subjects with their digests recomputed, a forged file list as a
# discrepancy, errors recorded (missing snapshot, corrupt Avro, manifest list outside the table),
# a summary mismatch, and a catalog answering 503 holding back its own query only. Also: the
# discrepancies metric, and `windowseal audit` of the result. Exit 77 without python3-avro.
set -u
WS=${1:-}
SRC=${WS_SRC:-$(cd "$(dirname "$0")/.." && pwd)}
. "$SRC/tests/lib.sh"
$PY -c 'import avro.datafile' 2>/dev/null || { echo "it_iceberg: python3-avro missing: skipped"; exit 77; }
command -v avrocat >/dev/null || { echo "it_iceberg: avrocat (avro-bin) missing: skipped"; exit 77; }
it_init it_iceberg
[ "${WS_IT_KEEP:-0}" = 1 ] && KEEP=1

# s3rver (as tests/it_s3.sh installs it) holds one more table, read through the S3 client;
# without node/npm that table is left out and the rest runs
S3RVER_VERSION=3.7.1
BUILD=${WS_BUILD:-$(dirname "$WS")}
S3RVER="$BUILD/node/node_modules/s3rver/bin/s3rver.js"
if command -v node >/dev/null && command -v npm >/dev/null && $PY -c 'import botocore' 2>/dev/null; then
    have=$(node -p "require('$BUILD/node/node_modules/s3rver/package.json').version" 2>/dev/null)
    if [ "$have" != "$S3RVER_VERSION" ]; then
        mkdir -p "$BUILD/node"
        timeout 180 npm install --prefix "$BUILD/node" "s3rver@$S3RVER_VERSION" --no-audit \
            --no-fund --no-save --fetch-retries=1 --fetch-timeout=30000 --loglevel=error \
            >"$BUILD/node/npm.log" 2>&1 || true
    fi
fi
S3ARGS=()
OUTS3=""
export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY="it-iceberg-$$-secret"
unset AWS_SESSION_TOKEN AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3 AWS_REGION AWS_DEFAULT_REGION
if [ -f "$S3RVER" ]; then
    S3_PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    EP="http://127.0.0.1:$S3_PORT"
    mkdir -p "$T/s3data"
    NODE_OPTIONS=--openssl-legacy-provider node "$S3RVER" -d "$T/s3data" -a 127.0.0.1 \
        -p "$S3_PORT" --silent --configure-bucket warehouse >"$T/s3rver.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 100); do curl -s -o /dev/null "$EP/" && break; sleep 0.1; done
    S3ARGS=(--s3 "$EP" warehouse)
    OUTS3=", \"outputs\": {\"s3\": {\"endpoint\": \"$EP\", \"path_style\": true}}"
    ok "s3rver $S3RVER_VERSION on $EP for the table in an object store"
else
    echo "# no node/npm/s3rver: the table in an object store is left out"
fi

# the catalog: builds the tables under $T/fx, prints its port, serves until its stdin closes
mkfifo "$T/fx.in"
$PY "$SRC/tests/it/iceberg_catalog.py" "$T/fx" "${S3ARGS[@]}" <"$T/fx.in" >"$T/fx.port" \
    2>"$T/fx.err" &
PIDS+=($!)
exec 7>"$T/fx.in" # held open: the catalog serves until the test ends
for _ in $(seq 300); do [ -s "$T/fx.port" ] && break; sleep 0.1; done
PORT=$(head -1 "$T/fx.port")
if [ -n "$PORT" ]; then
    ok "test tables built and checked with avrocat, REST catalog on 127.0.0.1:$PORT"
else
    bad "catalog fixture did not start: $(tail -3 "$T/fx.err")"
    it_done
    exit 1
fi

it_broker 1
"$WS" keygen --out "$T/k" >/dev/null 2>&1 || bad "keygen"
MPORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$T/config.json" <<JSON
{"kafka": {"bootstrap.servers": "$BOOT", "group.id": "it-iceberg"},
 "signing": {"key": "$T/k"},
 "sinks": [{"type": "file", "path": "$T/att"}],
 "spool": {"path": "$T/spool"},
 "iceberg": {"catalogs": {"ice": {"uri": "http://127.0.0.1:$PORT", "prefix": "main"}}},
 "engine": {"retry_base_ms": 100, "retry_max_ms": 500, "gap_wait_ms": 0},
 "metrics": {"listen": "127.0.0.1:$MPORT"},
 "log": {"level": "info"}$OUTS3}
JSON
"$WS" config check -c "$T/config.json" >"$T/cc.out" 2>&1 && ok "config with iceberg.catalogs accepted" ||
    bad "config check: $(cat "$T/cc.out")"
"$WS" run -c "$T/config.json" >/dev/null 2>"$T/engine.log" &
ENGINE=$!
PIDS+=($ENGINE)

$PY "$SRC/tests/it/iceberg_e2e.py" notify --boot "$BOOT" --fixture "$T/fx" || bad "notify"
# the last window of the two queries that can finish
QA=8c5e7f5a-0d4c-4b53-9d1e-6f1c2a3b4c5d
QB=0f7d3c2a-1b4e-4c5d-9e8f-7a6b5c4d3e2f
if wait_for "$T/att/$QA/00000000000000000007.dsse.json" 60 &&
    wait_for "$T/att/$QB/00000000000000000004.dsse.json" 30 &&
    { [ -z "$OUTS3" ] || wait_for "$T/att/3c1d2e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f/00000000000000000000.dsse.json" 30; }; then
    ok "windows of the two reachable tables' queries attested"
else
    bad "windows not attested: $(grep -E 'level=(warn|error)' "$T/engine.log" | tail -3)"
fi
sleep 1 # the 503 query has retried meanwhile
$PY "$SRC/tests/it/iceberg_e2e.py" check --att "$T/att" --fixture "$T/fx" >"$T/check.out" 2>&1
cat "$T/check.out"
pass=$((pass + $(grep -c '^ok   - ' "$T/check.out")))
fail=$((fail + $(grep -c '^FAIL - ' "$T/check.out")))
if grep -q 'event=window_retry .*query=5a4b3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d .*503' "$T/engine.log"; then
    ok "the catalog's 503 logged as a window retry of its own query"
else
    bad "no window_retry naming the 503: $(grep 5a4b3c2d "$T/engine.log" | tail -2)"
fi
m=$(curl -s "http://127.0.0.1:$MPORT/metrics" | awk '/^windowseal_output_discrepancies_total/ {print $2}')
# the forged list (1) and the summary mismatch (1)
[ "${m%.*}" = 2 ] && ok "windowseal_output_discrepancies_total = 2" ||
    bad "windowseal_output_discrepancies_total = '$m', want 2"
"$WS" audit "$T/att" --pubkey "$T/k.pub" >"$T/audit.out" 2>&1 &&
    ok "windowseal audit: $(tail -1 "$T/audit.out")" || bad "audit: $(tail -3 "$T/audit.out")"
kill -TERM $ENGINE 2>/dev/null
wait $ENGINE 2>/dev/null
grep -q "ERROR: AddressSanitizer\|runtime error:" "$T/engine.log" && bad "sanitizer report in the engine log"
it_done
