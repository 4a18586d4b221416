#!/usr/bin/env bash
# it_s3.sh — the s3 sink against a real S3-compatible server on loopback (issue 5).
#
#   bash tests/it_s3.sh PATH/TO/windowseal      (ctest runs it so; WS_SRC, WS_BUILD set)
#
# s3rver (npm, version pinned below) is installed into $WS_BUILD/node on first use and started
# on a free port with a temporary directory and the bucket `attest`. A `windowseal broker`, a key
# from `windowseal keygen`, and `windowseal run` with a file sink AND an s3 sink (prefix it/);
# records and native notifications are posted with confluent_kafka (tests/it/s3_tool.py), and
# the bucket is read back with botocore.
#
#   1  s3rver ignores If-None-Match on PUT (why the sink GETs before it PUTs)
#   2  5 windows: every envelope and evidence in the bucket, bytes equal to the file sink's
#   3  outage: s3rver stopped for 10 s in the middle of a 30-batch stream, then started again:
#      all 30 windows in the bucket, each once, equal to the file sink; each attested once;
#      `windowseal audit` of the file sink exits 0
#   4  write-once on the real store: a foreign object under a window's name stops that query's
#      chain (permanent, logged) and is not overwritten
#   5  the secret access key appears in no log; SIGTERM stops the engine cleanly
# Exit 0 all passed, 1 something failed, 77 skipped (no node/npm, no network for npm, Python
# packages missing). WS_IT_KEEP=1 keeps the temp dir.
set -u

S3RVER_VERSION=3.7.1 # pinned: `npm view s3rver versions` (latest of the 3.x line)

WS=${1:-}
if [ -z "$WS" ] || [ ! -x "$WS" ]; then
    echo "it_s3: windowseal binary '${WS}' not found: skipped"
    exit 77
fi
WS=$(cd "$(dirname "$WS")" && pwd)/$(basename "$WS")
SRC=${WS_SRC:-$(cd "$(dirname "$0")/.." && pwd)}
BUILD=${WS_BUILD:-$(dirname "$WS")}
PY=/usr/bin/python3 # Debian's interpreter: it has confluent_kafka and botocore
TOOL="$PY $SRC/tests/it/s3_tool.py"
for t in node npm curl timeout "$PY"; do
    command -v "$t" >/dev/null || { echo "it_s3: $t missing: skipped"; exit 77; }
done
$PY -c 'import confluent_kafka, botocore' 2>/dev/null ||
    { echo "it_s3: python confluent_kafka/botocore missing: skipped"; exit 77; }

NODE_DIR="$BUILD/node"
S3RVER="$NODE_DIR/node_modules/s3rver/bin/s3rver.js"
have=$(node -p "require('$NODE_DIR/node_modules/s3rver/package.json').version" 2>/dev/null)
if [ "$have" != "$S3RVER_VERSION" ]; then
    mkdir -p "$NODE_DIR"
    if ! timeout 180 npm install --prefix "$NODE_DIR" "s3rver@$S3RVER_VERSION" --no-audit \
        --no-fund --no-save --fetch-retries=1 --fetch-timeout=30000 --loglevel=error \
        >"$NODE_DIR/npm.log" 2>&1; then
        echo "it_s3: npm install s3rver@$S3RVER_VERSION failed (no network?): skipped"
        sed 's/^/    | /' "$NODE_DIR/npm.log" | tail -5
        exit 77
    fi
fi
[ -f "$S3RVER" ] || { echo "it_s3: $S3RVER missing after npm install: skipped"; exit 77; }

T=$(mktemp -d /tmp/it_s3.XXXXXX)
BROKER_PID=""
S3_PID=""
ENGINE_PID=""
FEED_PID=""
STARTED=$SECONDS

stop_pid() { # pid: TERM, then KILL after 5 s
    local pid=$1 i
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null
    for i in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
}
cleanup() {
    stop_pid "$FEED_PID"
    stop_pid "$ENGINE_PID"
    stop_pid "$S3_PID"
    stop_pid "$BROKER_PID"
    wait 2>/dev/null
    if [ "${WS_IT_KEEP:-0}" = 1 ]; then
        echo "# kept $T"
    else
        rm -rf "$T"
    fi
}
trap cleanup EXIT
trap 'echo "it_s3: interrupted"; exit 130' INT TERM

pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok   - $*"; }
bad() { fail=$((fail + 1)); echo "FAIL - $*"; }
finish() {
    echo "it_s3: $pass passed, $fail failed ($((SECONDS - STARTED)) s)"
    [ "$fail" -eq 0 ]
    exit $?
}

# run s3_tool.py, echo its lines, count its ok/FAIL lines.
H() {
    local desc=$1 rc n_ok n_bad
    shift
    timeout 120 $TOOL "$@" >"$T/h.out" 2>&1
    rc=$?
    grep -E '^(ok   -|FAIL -) ' "$T/h.out"
    n_ok=$(grep -c '^ok   - ' "$T/h.out")
    n_bad=$(grep -c '^FAIL - ' "$T/h.out")
    pass=$((pass + n_ok))
    fail=$((fail + n_bad))
    if [ "$rc" -ne 0 ] && [ "$n_bad" -eq 0 ]; then
        bad "$desc: s3_tool.py exit $rc"
        sed 's/^/    | /' "$T/h.out" | tail -15
    fi
    return $rc
}

# wait_count FILE REGEX N SECONDS: true once N lines match.
wait_count() {
    local i
    for i in $(seq $(($4 * 10))); do
        [ "$(grep -Ec "$2" "$1" 2>/dev/null)" -ge "$3" ] && return 0
        sleep 0.1
    done
    return 1
}

free_port() {
    $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start_s3rver() {
    node "$S3RVER" -d "$T/s3data" -a 127.0.0.1 -p "$S3_PORT" --silent --configure-bucket attest \
        >>"$T/s3rver.log" 2>&1 &
    S3_PID=$!
    local i
    for i in $(seq 100); do
        curl -s -o /dev/null "http://127.0.0.1:$S3_PORT/" && return 0
        kill -0 "$S3_PID" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# The credentials s3rver knows (S3RVER); it does not check V4 signatures, so the secret is ours
# to choose: a distinctive one, to look for in the logs.
export AWS_ACCESS_KEY_ID=S3RVER
export AWS_SECRET_ACCESS_KEY="it-s3-secret-$$-never-logged"
unset AWS_SESSION_TOKEN

QA=0a5e7f5a-0d4c-4b53-9d1e-6f1c2a3b4c5d
QB=0b2b9c1e-7a6d-4e8f-b0c1-d2e3f4a5b6c7
QC=0c1c2b3a-4e5f-4a6b-8c7d-9e0f1a2b3c4d

echo "# step 0: s3rver $S3RVER_VERSION, broker, key, config"
mkdir -p "$T/s3data"
S3_PORT=$(free_port)
EP="http://127.0.0.1:$S3_PORT"
if start_s3rver; then
    ok "s3rver $S3RVER_VERSION listening on $EP with bucket attest"
else
    bad "s3rver did not start: $(tail -5 "$T/s3rver.log")"
    finish
fi
"$WS" broker --partitions 1 >"$T/broker.out" 2>"$T/broker.err" &
BROKER_PID=$!
for i in $(seq 100); do
    [ -s "$T/broker.out" ] && break
    sleep 0.1
done
BOOT=$(head -1 "$T/broker.out")
if [[ "$BOOT" =~ ^127\.0\.0\.1:[0-9]+$ ]]; then
    ok "windowseal broker at $BOOT"
else
    bad "windowseal broker printed '$BOOT' ($(head -3 "$T/broker.err"))"
    finish
fi
if "$WS" keygen --out "$T/k" >"$T/keygen.out" 2>&1; then ok "windowseal keygen"; else
    bad "windowseal keygen: $(cat "$T/keygen.out")"
    finish
fi
cat >"$T/config.json" <<EOF
{"kafka": {"bootstrap.servers": "$BOOT", "group.id": "it-s3"},
 "signing": {"key": "$T/k"},
 "sinks": [{"type": "file", "path": "$T/att"},
           {"type": "s3", "endpoint": "$EP", "bucket": "attest", "prefix": "it/",
            "region": "us-east-1", "path_style": true, "timeout_ms": 2000}],
 "spool": {"path": "$T/spool"},
 "engine": {"gap_wait_ms": 1000, "fetch_timeout_ms": 3000, "retry_base_ms": 100,
            "retry_max_ms": 1000},
 "log": {"level": "info"}}
EOF
if "$WS" config check -c "$T/config.json" >"$T/check.out" 2>&1; then
    ok "windowseal config check accepts a file sink and an s3 sink"
else
    bad "config check: $(cat "$T/check.out")"
fi

echo "# step 1: does s3rver honour If-None-Match on PUT?"
s1=$($TOOL put --endpoint "$EP" --bucket attest --key probe/inm --data one --if-none-match)
s2=$($TOOL put --endpoint "$EP" --bucket attest --key probe/inm --data two --if-none-match)
got=$($TOOL get --endpoint "$EP" --bucket attest --key probe/inm)
if [ "$s1" = 200 ] && [ "$s2" = 200 ] && [ "$got" = two ]; then
    ok "s3rver $S3RVER_VERSION ignores If-None-Match: * on PUT (second PUT 200, overwritten): the sink must GET first"
elif [ "$s1" = 200 ] && [ "$s2" = 412 ]; then
    ok "s3rver $S3RVER_VERSION answers 412 to a second conditional PUT"
else
    bad "conditional PUTs answered '$s1' then '$s2', object '$got'"
fi

echo "# step 2: 5 windows through the file sink and the s3 sink"
H feed-A feed --boot "$BOOT" --qid $QA --topic src-a --from 0 --to 5 >/dev/null
"$WS" run -c "$T/config.json" 2>"$T/engine.log" >/dev/null &
ENGINE_PID=$!
if wait_count "$T/engine.log" "event=window_attested query=$QA " 5 40; then
    ok "engine attested $QA/0..4"
else
    bad "engine attested $(grep -c "event=window_attested query=$QA " "$T/engine.log") of 5 windows of $QA"
    tail -5 "$T/engine.log" | sed 's/^/    | /'
fi
H compare-A compare --endpoint "$EP" --bucket attest --prefix it/ --att "$T/att" --qid $QA \
    --batches 5

echo "# step 3: s3rver stopped for 10 s in the middle of a 30-batch stream"
timeout 120 $TOOL feed --boot "$BOOT" --qid $QB --topic src-b --from 0 --to 30 --interval 0.25 \
    >"$T/feed-b.out" 2>&1 &
FEED_PID=$!
if wait_count "$T/engine.log" "event=window_attested query=$QB " 8 40; then
    ok "8 windows of $QB attested before the outage"
else
    bad "only $(grep -c "event=window_attested query=$QB " "$T/engine.log") windows of $QB before the outage"
fi
stop_pid "$S3_PID"
wait "$S3_PID" 2>/dev/null
down_at=$(grep -c "event=window_attested query=$QB " "$T/engine.log")
echo "# s3rver stopped after $down_at windows of $QB; sleeping 10 s"
sleep 10
during=$(grep -c "event=window_attested query=$QB " "$T/engine.log")
[ "$during" -eq "$down_at" ] && ok "no window of $QB attested while the store was down" ||
    bad "$((during - down_at)) windows of $QB attested while the store was down"
grep -q "event=sink_failed query=$QB .*sink=s3:.*class=retriable" "$T/engine.log" &&
    ok "the engine logged retriable s3 failures during the outage" ||
    bad "no retriable s3 sink_failed event for $QB"
if start_s3rver; then ok "s3rver started again on the same port and directory"; else
    bad "s3rver did not restart: $(tail -5 "$T/s3rver.log")"
fi
wait "$FEED_PID" && ok "feeder posted 30 batches of $QB" || bad "feeder failed: $(tail -3 "$T/feed-b.out")"
FEED_PID=""
if wait_count "$T/engine.log" "event=window_attested query=$QB " 30 60; then
    ok "all 30 windows of $QB attested after the store came back"
else
    bad "$(grep -c "event=window_attested query=$QB " "$T/engine.log") of 30 windows of $QB attested"
fi
H compare-B compare --endpoint "$EP" --bucket attest --prefix it/ --att "$T/att" --qid $QB \
    --batches 30
dups=$(grep -o "event=window_attested query=$QB window=[^ ]*" "$T/engine.log" | sort | uniq -d)
[ -z "$dups" ] && ok "each window of $QB attested once" || bad "attested twice: $dups"
! grep -q "event=query_stopped" "$T/engine.log" && ok "no query stopped" ||
    bad "a query stopped: $(grep event=query_stopped "$T/engine.log" | head -2)"
if "$WS" audit "$T/att" --pubkey "$T/k.pub" >"$T/audit.out" 2>&1; then
    ok "windowseal audit of the file sink exits 0 (chains intact)"
else
    bad "windowseal audit exit $?: $(tail -5 "$T/audit.out")"
fi

echo "# step 4: a foreign object under a window's name in the bucket"
$TOOL put --endpoint "$EP" --bucket attest --key "it/$QC/$(printf %020d 0).evidence.lz4" \
    --data "not ours" >/dev/null
H feed-C feed --boot "$BOOT" --qid $QC --topic src-c --from 0 --to 1 >/dev/null
if wait_count "$T/engine.log" "event=query_stopped query=$QC " 1 30; then
    ok "the engine stopped $QC's chain"
    grep "event=query_stopped query=$QC " "$T/engine.log" | grep -q "different content" &&
        ok "the reason names the different content" ||
        bad "query_stopped reason: $(grep "event=query_stopped query=$QC " "$T/engine.log")"
else
    bad "no query_stopped for $QC: $(grep "query=$QC" "$T/engine.log" | tail -3)"
fi
grep -q "event=sink_failed query=$QC .*sink=s3:.*class=permanent" "$T/engine.log" &&
    ok "logged as a permanent s3 failure" || bad "no permanent s3 sink_failed for $QC"
got=$($TOOL get --endpoint "$EP" --bucket attest --key "it/$QC/$(printf %020d 0).evidence.lz4")
[ "$got" = "not ours" ] && ok "the foreign object was not overwritten" || bad "object is now '$got'"
got=$($TOOL get --endpoint "$EP" --bucket attest --key "it/$QC/$(printf %020d 0).dsse.json")
[ "$got" = absent ] && ok "no envelope was written after the refused evidence" ||
    bad "an envelope of $QC is in the bucket"

echo "# step 5: secrets and shutdown"
if grep -rqF "$AWS_SECRET_ACCESS_KEY" "$T"/*.log "$T"/*.out 2>/dev/null; then
    bad "the secret access key appears in a log"
else
    ok "the secret access key appears in no log"
fi
kill -TERM "$ENGINE_PID"
for i in $(seq 100); do
    kill -0 "$ENGINE_PID" 2>/dev/null || break
    sleep 0.1
done
if kill -0 "$ENGINE_PID" 2>/dev/null; then
    bad "engine still running 10 s after SIGTERM"
else
    wait "$ENGINE_PID"
    rc=$?
    [ "$rc" = 0 ] && ok "engine exited 0 on SIGTERM" || bad "engine exit status $rc on SIGTERM"
fi
ENGINE_PID=""
finish
