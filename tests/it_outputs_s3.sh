#!/usr/bin/env bash
# it_outputs_s3.sh — output files in an object store, and the auditor reading a bucket (issue 16,
# deliverables 1 and 4), against a real S3 server (s3rver, as tests/it_s3.sh installs it) on
# loopback.
#
#   bash tests/it_outputs_s3.sh PATH/TO/windowseal      (ctest runs it so; WS_SRC, WS_BUILD set)
#
# Between the engine's output reads and s3rver sits a small fault proxy (tests/it/outputs_s3.py
# proxy): it answers 403 (s3rver cannot) and, while told to, 500 for chosen keys. The engine
# runs with a file sink (to read the statements) and an s3 sink straight to s3rver.
#
#   1  s3:// and s3a:// outputs hashed: digest and bytes equal the objects' SHA-256, subjects
#      too; 404 NoSuchKey and 403 AccessDenied are the files' `error`, the window attested
#   2  a 200 MB object hashed; the engine's peak RSS grows by less than 64 MB meanwhile
#   3  500 for one output file: the window waits (window_retry, nothing attested), then is
#      attested with the right digest once the store answers again
#   4  `windowseal audit s3://attest/it/` of what the s3 sink wrote exits 0 (with 1100 more
#      keys under the query's prefix, so the listing takes two ListObjectsV2 pages), and
#      `prove consistency --log s3://...` makes a proof that `prove check` accepts
#   5  a tampered evidence object in the bucket: audit exits 1 naming the window
# Exit 0 all passed, 1 something failed, 77 skipped (no node/npm, npm offline, no botocore).
# WS_IT_KEEP=1 keeps the temp dir.
set -u
S3RVER_VERSION=3.7.1 # as tests/it_s3.sh

WS=${1:-}
SRC=${WS_SRC:-$(cd "$(dirname "$0")/.." && pwd)}
# shellcheck source=tests/lib.sh
. "$SRC/tests/lib.sh"
for t in node npm curl timeout; do
    command -v "$t" >/dev/null || { echo "it_outputs_s3: $t missing: skipped"; exit 77; }
done
$PY -c 'import botocore' 2>/dev/null || { echo "it_outputs_s3: botocore missing: skipped"; exit 77; }
it_init it_outputs_s3
[ "${WS_IT_KEEP:-0}" = 1 ] && KEEP=1
BUILD=${WS_BUILD:-$(dirname "$WS")}
H="$PY $SRC/tests/it/outputs_s3.py"

NODE_DIR="$BUILD/node"
S3RVER="$NODE_DIR/node_modules/s3rver/bin/s3rver.js"
have=$(node -p "require('$NODE_DIR/node_modules/s3rver/package.json').version" 2>/dev/null)
if [ "$have" != "$S3RVER_VERSION" ]; then
    mkdir -p "$NODE_DIR"
    timeout 180 npm install --prefix "$NODE_DIR" "s3rver@$S3RVER_VERSION" --no-audit --no-fund \
        --no-save --fetch-retries=1 --fetch-timeout=30000 --loglevel=error \
        >"$NODE_DIR/npm.log" 2>&1 || { echo "it_outputs_s3: npm install failed: skipped"; exit 77; }
fi
[ -f "$S3RVER" ] || { echo "it_outputs_s3: no s3rver: skipped"; exit 77; }

free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_http() { # url pid
    for _ in $(seq 100); do
        curl -s -o /dev/null "$1" && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}
# wait_count FILE REGEX N SECONDS
wait_count() {
    for _ in $(seq $(($4 * 10))); do
        [ "$(grep -Ec "$2" "$1" 2>/dev/null)" -ge "$3" ] && return 0
        sleep 0.1
    done
    return 1
}
hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
check() { # args for `outputs_s3.py check`; counts its ok/FAIL lines
    $H check --att "$T/att" --qid "$Q" "$@" >"$T/check.out" 2>&1
    cat "$T/check.out"
    pass=$((pass + $(grep -c '^ok   - ' "$T/check.out")))
    fail=$((fail + $(grep -c '^FAIL - ' "$T/check.out")))
    grep -q -e '^ok   - ' -e '^FAIL - ' "$T/check.out" || bad "check: $(tail -3 "$T/check.out")"
}

# s3rver checks no signature: any key pair works; a distinctive secret to look for in logs.
export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY="it-outputs-s3-$$-secret"
unset AWS_SESSION_TOKEN AWS_ENDPOINT_URL AWS_REGION AWS_DEFAULT_REGION
# s3rver 3.7.1 makes continuation tokens with a cipher Node 18 keeps in its legacy provider.
export NODE_OPTIONS=--openssl-legacy-provider

S3_PORT=$(free_port)
EP="http://127.0.0.1:$S3_PORT"
mkdir -p "$T/s3data"
node "$S3RVER" -d "$T/s3data" -a 127.0.0.1 -p "$S3_PORT" --silent --configure-bucket attest \
    --configure-bucket warehouse >"$T/s3rver.log" 2>&1 &
PIDS+=($!)
wait_http "$EP/" "${PIDS[-1]}" && ok "s3rver $S3RVER_VERSION on $EP" ||
    { bad "s3rver did not start: $(tail -3 "$T/s3rver.log")"; it_done; exit 1; }
PX_PORT=$(free_port)
PX="http://127.0.0.1:$PX_PORT"
: >"$T/faults"
echo "forbidden 403" >"$T/faults"
$H proxy --port "$PX_PORT" --upstream "$EP" --faults "$T/faults" 2>"$T/proxy.log" &
PIDS+=($!)
wait_http "$PX/" "${PIDS[-1]}" && ok "fault proxy on $PX" ||
    { bad "proxy did not start: $(tail -3 "$T/proxy.log")"; it_done; exit 1; }

A=$($H mkobj --endpoint "$EP" --bucket warehouse --key "db/t/data/ts_day=2024-01-01/00000-a.parquet" --size 300000 --seed a)
B=$($H mkobj --endpoint "$EP" --bucket warehouse --key db/t/data/00001-b.parquet --size 70001 --seed b)
F=$($H mkobj --endpoint "$EP" --bucket warehouse --key db/t/data/forbidden.parquet --size 10 --seed f)
FL=$($H mkobj --endpoint "$EP" --bucket warehouse --key db/t/data/flaky.parquet --size 123457 --seed l)
BIG=$($H mkobj --endpoint "$EP" --bucket warehouse --key db/t/big/200mb.bin --size 209715200 --seed big)
[ ${#A} = 64 ] && [ ${#BIG} = 64 ] && ok "objects in s3rver (one of 200 MB)" || bad "mkobj failed"

it_broker 1
"$WS" keygen --out "$T/k" >/dev/null 2>&1 || bad "keygen"
cat >"$T/config.json" <<EOF
{"kafka": {"bootstrap.servers": "$BOOT", "group.id": "it-outputs-s3"},
 "signing": {"key": "$T/k"},
 "sinks": [{"type": "file", "path": "$T/att"},
           {"type": "s3", "endpoint": "$EP", "bucket": "attest", "prefix": "it/",
            "path_style": true, "timeout_ms": 5000}],
 "spool": {"path": "$T/spool"},
 "outputs": {"s3": {"endpoint": "$PX", "region": "us-east-1", "path_style": true}},
 "engine": {"retry_base_ms": 200, "retry_max_ms": 1000, "gap_wait_ms": 1000},
 "log": {"level": "info"}}
EOF
"$WS" config check -c "$T/config.json" >"$T/cc.out" 2>&1 && ok "config with outputs.s3 accepted" ||
    bad "config check: $(cat "$T/cc.out")"
# The engine reads outputs.s3 once engine/build.c calls ws_outputs_hash_cfg; until then
# ws_outputs_hash takes the endpoint from the environment (the documented fallback). Both
# name the proxy, so the test holds either way.
"$WS" run -c "$T/config.json" >/dev/null 2>"$T/engine.log" &
ENGINE=$!
PIDS+=($ENGINE)
Q=5e0f1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b

echo "# 1: s3:// and s3a:// outputs, 404 and 403"
$H notify --boot "$BOOT" --qid $Q --batch 0 --topic orders \
    --file "s3://warehouse/db/t/data/ts_day=2024-01-01/00000-a.parquet" \
    --file "s3a://warehouse/db/t/data/00001-b.parquet" \
    --file "s3://warehouse/db/t/data/missing.parquet" \
    --file "s3://warehouse/db/t/data/forbidden.parquet" || bad "notify 0"
if wait_for "$T/att/$Q/00000000000000000000.dsse.json" 30; then
    check --batch 0 --expect "s3://warehouse/db/t/data/ts_day=2024-01-01/00000-a.parquet=$A" \
        --expect "s3a://warehouse/db/t/data/00001-b.parquet=$B" \
        --expect "s3://warehouse/db/t/data/missing.parquet=error:HTTP 404 NoSuchKey" \
        --expect "s3://warehouse/db/t/data/forbidden.parquet=error:HTTP 403 AccessDenied"
else
    bad "window 0 not attested: $(tail -3 "$T/engine.log")"
fi

echo "# 2: a 200 MB object, bounded memory"
before=$(hwm_kb $ENGINE)
$H notify --boot "$BOOT" --qid $Q --batch 1 --topic orders --file "s3://warehouse/db/t/big/200mb.bin" ||
    bad "notify 1"
if wait_for "$T/att/$Q/00000000000000000001.dsse.json" 120; then
    check --batch 1 --expect "s3://warehouse/db/t/big/200mb.bin=$BIG"
    after=$(hwm_kb $ENGINE)
    grow=$(((after - before) / 1024))
    [ "$grow" -lt 64 ] && ok "engine peak RSS grew by $grow MB hashing 200 MB (from $((before / 1024)) MB)" ||
        bad "engine peak RSS grew by $grow MB hashing a 200 MB object"
else
    bad "window 1 not attested: $(tail -3 "$T/engine.log")"
fi

echo "# 3: the store answers 500, then recovers"
echo "flaky 500" >>"$T/faults"
$H notify --boot "$BOOT" --qid $Q --batch 2 --topic orders --file "s3://warehouse/db/t/data/flaky.parquet" ||
    bad "notify 2"
if wait_count "$T/engine.log" "event=window_retry query=$Q batch=2 .*HTTP 500 InternalError" 2 30; then
    ok "window 2 waits: retried on HTTP 500 ($(grep -c "event=window_retry query=$Q batch=2 " "$T/engine.log") attempts so far)"
else
    bad "no window_retry on HTTP 500: $(grep "batch=2" "$T/engine.log" | tail -2)"
fi
[ ! -e "$T/att/$Q/00000000000000000002.dsse.json" ] && ok "window 2 not attested while the store fails" ||
    bad "window 2 attested during the outage"
sed -i '/flaky/d' "$T/faults"
if wait_for "$T/att/$Q/00000000000000000002.dsse.json" 30; then
    check --batch 2 --expect "s3://warehouse/db/t/data/flaky.parquet=$FL"
else
    bad "window 2 not attested after the store recovered"
fi
! grep -q "event=query_stopped" "$T/engine.log" && ok "no query stopped" ||
    bad "a query stopped: $(grep event=query_stopped "$T/engine.log" | head -1)"

echo "# 4: audit and prove consistency of the bucket"
# batch 3 so that the chain has 4 windows and the s3 sink has written all of them
$H notify --boot "$BOOT" --qid $Q --batch 3 --topic orders --file "s3://warehouse/db/t/data/00001-b.parquet"
wait_for "$T/att/$Q/00000000000000000003.dsse.json" 30 || bad "window 3 not attested"
wait_count "$T/engine.log" "event=window_attested query=$Q window=$Q/3" 1 30 || bad "window 3 not stored"
sleep 1 # the checkpoint follows the window into each store
$H pad --endpoint "$EP" --bucket attest --prefix "it/$Q/00000000000000000001.pad-" --count 1100 ||
    bad "pad objects"
if "$WS" audit "s3://attest/it/" --pubkey "$T/k.pub" --endpoint "$EP" >"$T/audit.out" 2>&1; then
    ok "audit s3://attest/it/ exits 0: $(grep "^ok   $Q" "$T/audit.out" | cut -c1-100)"
else
    bad "audit s3:// exit $?: $(tail -4 "$T/audit.out")"
fi
grep -q "^ok   $Q: 4 windows" "$T/audit.out" && ok "all 4 windows found across listing pages" ||
    bad "audit did not see 4 windows: $(grep "$Q" "$T/audit.out" | head -2)"
# and with the endpoint from the environment, on an s3a:// prefix without the trailing slash
AWS_ENDPOINT_URL_S3="$EP" "$WS" audit "s3a://attest/it" --pubkey "$T/k.pub" --json >"$T/audit.json" 2>&1 &&
    ok "audit s3a://attest/it (endpoint from AWS_ENDPOINT_URL_S3, --json) exits 0" ||
    bad "audit s3a:// --json: $(tail -3 "$T/audit.json")"
D=$T/att/$Q
if "$WS" prove consistency --from "$D/00000000000000000000.dsse.json" --to "$D/00000000000000000003.dsse.json" \
    --log "s3://attest/it/" --pubkey "$T/k.pub" --endpoint "$EP" >"$T/chain.json" 2>"$T/prove.err" &&
    "$WS" prove check "$T/chain.json" --from "$D/00000000000000000000.dsse.json" \
        --to "$D/00000000000000000003.dsse.json" --pubkey "$T/k.pub" >"$T/pcheck.out" 2>&1; then
    ok "prove consistency --log s3://attest/it/: proof 1 -> 4 made and checked"
else
    bad "prove consistency from the bucket: $(cat "$T/prove.err" "$T/pcheck.out" | tail -3)"
fi
"$WS" audit "s3://attest/it/" --pubkey "$T/k.pub" --endpoint "http://127.0.0.1:$(free_port)" >"$T/down.out" 2>&1
rc=$?
[ "$rc" = 3 ] && ok "audit of an unreachable store exits 3 (no verdict)" || bad "unreachable store: exit $rc"

echo "# 5: a tampered object"
WS_TESTS_IT="$SRC/tests/it" $PY -c "
import sys, os
sys.path.insert(0, os.environ['WS_TESTS_IT'])
from s3_tool import s3_client
c = s3_client('$EP')
k = 'it/$Q/00000000000000000002.evidence.lz4'
b = bytearray(c.get_object(Bucket='attest', Key=k)['Body'].read())
b[len(b) // 2] ^= 1
c.put_object(Bucket='attest', Key=k, Body=bytes(b))
" || bad "tamper"
"$WS" audit "s3://attest/it/" --pubkey "$T/k.pub" --endpoint "$EP" >"$T/audit2.out" 2>&1
rc=$?
if [ "$rc" = 1 ] && grep -q "^FAIL $Q: 00000000000000000002.dsse.json" "$T/audit2.out"; then
    ok "audit of the tampered bucket exits 1: $(grep "^FAIL" "$T/audit2.out" | head -1 | cut -c1-140)"
else
    bad "tampered bucket: exit $rc: $(head -3 "$T/audit2.out")"
fi

grep -rqF "$AWS_SECRET_ACCESS_KEY" "$T"/*.log "$T"/*.out 2>/dev/null && bad "the secret is in a log" ||
    ok "the secret access key appears in no log"
kill -TERM $ENGINE
for _ in $(seq 100); do kill -0 $ENGINE 2>/dev/null || break; sleep 0.1; done
wait $ENGINE && ok "engine exited 0 on SIGTERM" || bad "engine exit status $?"
it_done
