#!/usr/bin/env bash
# it_chaos.sh — reliability under crashes, broker/store/disk faults and hostile input (issue 9).
#
#   bash tests/it_chaos.sh PATH/TO/windowseal      (ctest runs it so; WS_SRC, WS_BUILD set)
#
# Six independent lanes run in parallel, each with its own `windowseal broker`, key, group and
# directories (tests/it/chaos_run.py; the end state is checked by tests/it/chaos_lib.py, which
# reuses tests/it/wsit.py's independent recomputation of every window):
#   kill-a, kill-b  a 50-batch stream over 5 queries each (2 real missing batches, 3 bad
#                   notifications), 10 kill -9 each: at named crash points inside the engine
#                   (WS_CRASH_AT, disk/testhook.h: mid-fetch, mid-spool, before the spool's
#                   rename, between evidence and envelope, between sinks, between the chain head
#                   and the commit, between a dead letter and its commit, mid spool cleanup) and
#                   at random moments; then every window exactly once in the sink, on the topic
#                   only as byte-identical copies (counted), no gap but the real ones, one chain
#                   head per position, everything committed, `windowseal audit` exit 0
#   failover        two instances, 10 queries: kill -9 one, the other continues its chains;
#                   the reverse; kill -9 and restart (recovery time, default session timeout)
#   hostile         tests/data/hostile/ + generated giants: all dead-lettered with a reason, good
#                   batches between them attested, the engine alive, VmHWM bounded
#   s3              the s3 sink behind a fault proxy: 500s, kill -9, flaky, 10 s down (s3rver;
#                   skipped without node/npm)
#   disk            the spool on a full tmpfs: intake pauses, resumes, nothing lost (skipped if
#                   mount is not permitted)
# Needs a -DWS_TEST_HOOKS=ON build for the named crash points (scripts/test.sh builds so); other
# builds get random kills only. Bounded: WS_IT_LIMIT, default 280 s. WS_IT_KEEP=1
# keeps the temp dir. Each lane is bounded by `timeout`. Exit 0 all passed, 1 something failed, 77 skipped (binary or Python
# packages missing).
set -u

WS=${1:-}
if [ -z "$WS" ] || [ ! -x "$WS" ]; then
    echo "it_chaos: windowseal binary '${WS}' not found: skipped"
    exit 77
fi
WS=$(cd "$(dirname "$WS")" && pwd)/$(basename "$WS")
SRC=${WS_SRC:-$(cd "$(dirname "$0")/.." && pwd)}
BUILD=${WS_BUILD:-$(dirname "$WS")}
PY=/usr/bin/python3 # Debian's interpreter: it has confluent_kafka, cryptography, botocore
for t in lz4 timeout "$PY"; do
    command -v "$t" >/dev/null || { echo "it_chaos: $t missing: skipped"; exit 77; }
done
$PY -c 'import confluent_kafka, cryptography' 2>/dev/null ||
    { echo "it_chaos: python confluent_kafka/cryptography missing: skipped"; exit 77; }

T=$(mktemp -d /tmp/it_chaos.XXXXXX)
STARTED=$SECONDS
LIMIT=${WS_IT_LIMIT:-280}
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do
        kill -TERM "$p" 2>/dev/null
    done
    wait 2>/dev/null # a lane stops its own engines and broker on SIGTERM (chaos_lib.py)
    grep -q " $T/" /proc/mounts 2>/dev/null && umount -l "$T"/disk/spoolfs 2>/dev/null
    if [ "${WS_IT_KEEP:-0}" = 1 ]; then
        echo "# kept $T"
    else
        rm -rf "$T"
    fi
}
trap cleanup EXIT
trap 'echo "it_chaos: interrupted"; exit 130' INT TERM

pass=0
fail=0
skipped=0
ok() { pass=$((pass + 1)); echo "ok   - $*"; }
bad() { fail=$((fail + 1)); echo "FAIL - $*"; }

HOOKS=1
if ! grep -q WS_CRASH_AT "$WS"; then
    HOOKS=0
    echo "# $WS was built without -DWS_TEST_HOOKS=ON: random kills only"
fi

# s3rver, pinned and installed as tests/it_s3.sh does (same directory: installed once)
S3RVER_VERSION=3.7.1
S3RVER="$BUILD/node/node_modules/s3rver/bin/s3rver.js"
if command -v node >/dev/null && command -v npm >/dev/null; then
    have=$(node -p "require('$BUILD/node/node_modules/s3rver/package.json').version" 2>/dev/null)
    if [ "$have" != "$S3RVER_VERSION" ]; then
        mkdir -p "$BUILD/node"
        timeout 180 npm install --prefix "$BUILD/node" "s3rver@$S3RVER_VERSION" --no-audit \
            --no-fund --no-save --fetch-retries=1 --fetch-timeout=30000 --loglevel=error \
            >"$BUILD/node/npm.log" 2>&1 || echo "# npm install s3rver failed: the s3 lane skips"
    fi
fi
[ -f "$S3RVER" ] || S3RVER=""

export AWS_ACCESS_KEY_ID=S3RVER
export AWS_SECRET_ACCESS_KEY="it-chaos-secret-$$"
unset AWS_SESSION_TOKEN WS_CRASH_AT

lane() { # NAME ARGS...: run one lane in the background, output to $T/NAME.out
    local name=$1
    shift
    mkdir -p "$T/$name"
    timeout $((LIMIT - 20)) $PY "$SRC/tests/it/chaos_run.py" "$@" --ws "$WS" --dir "$T/$name" \
        --hooks-enabled "$HOOKS" >"$T/$name.out" 2>&1 &
    PIDS+=($!)
    echo "$name $!" >>"$T/lanes"
}

# Hostile configuration and key files that tests/it_cli.sh does not cover: each must end in exit
# 2 with a message naming the file, at once (a FIFO used to block in open(2) forever).
echo "# ---- configuration and key files (sequential, before the lanes)"
C="$T/cfg"
mkdir -p "$C"
"$WS" keygen --out "$C/k" >/dev/null 2>&1
cfgcase() { # DESCRIPTION PATTERN -- command...
    local desc=$1 pat=$2 out rc
    shift 3
    out=$(timeout 10 "$@" 2>&1)
    rc=$?
    if [ "$rc" = 2 ] && echo "$out" | grep -qE -- "$pat"; then
        ok "$desc: exit 2, \"$(echo "$out" | head -1 | cut -c1-90)\""
    else
        bad "$desc: exit $rc$([ "$rc" = 124 ] && echo ' (hung)'), want 2 and /$pat/: $(echo "$out" | head -2)"
    fi
}
mkdir "$C/dir.json"
: >"$C/empty.json"
head -c 3000 /dev/urandom >"$C/bin.json"
$PY -c 'print("{\"a\":" * 100000 + "1" + "}" * 100000)' >"$C/deep.json"
$PY -c 'import json; print(json.dumps({"kafka": {"group.id": "x" * (10 << 20)}}))' >"$C/big.json"
printf '{"kafka":{"group.id":"a\\u0000b"}}' >"$C/nul.json"
printf '{"kafka":{"group.id":"a","group.id":"b"}}' >"$C/dupkey.json"
printf '{"engine":{"gap_wait_ms":99999999999999999999999}}' >"$C/bigint.json"
mkfifo "$C/fifo.json"
for f in nonexistent dir empty bin deep big nul dupkey bigint fifo; do
    cfgcase "config file: $f" "$f.json" -- "$WS" config check -c "$C/$f.json"
done
keycase() { # NAME: a config naming key file $C/NAME
    printf '{"signing":{"key":"%s"},"spool":{"path":"%s/spool"},"sinks":[]}' "$C/$1" "$C" \
        >"$C/key-$1.json"
    cfgcase "signing key file: $2" "$1" -- "$WS" run -c "$C/key-$1.json"
}
: >"$C/emptykey" && chmod 600 "$C/emptykey" && keycase emptykey "empty"
mkdir -m 700 "$C/dirkey" && keycase dirkey "a directory"
ln -s /dev/zero "$C/zerokey" && keycase zerokey "a symlink to /dev/zero"
{ cat "$C/k"; echo trailing; } >"$C/trailkey" && chmod 600 "$C/trailkey" &&
    keycase trailkey "garbage after the PEM block"
head -c 5000000 /dev/urandom >"$C/hugekey" && chmod 600 "$C/hugekey" && keycase hugekey "5 MB"
mkfifo -m 600 "$C/fifokey" && keycase fifokey "a FIFO"
cfgcase "verify: the envelope is a FIFO" "fifokey" -- "$WS" verify "$C/fifokey" --pubkey "$C/k.pub"
cfgcase "verify: the public key is a FIFO" "fifokey" -- "$WS" verify "$C/k" --pubkey "$C/fifokey"

echo "# lanes start in parallel (limit $LIMIT s)"
lane kill-a kill --name a --seed 11 --kills 10 \
    --hooks fetch_record:2,spool_write:1,spool_rename:1,spool_envelope:2,sink_published:1,head_published:2,store_worker:3,topic_submitted:2
lane kill-b kill --name b --seed 22 --kills 10 \
    --hooks fetch_record:5,spool_write:3,spool_remove:1,sink_published:2,deadlettered:1,spool_rename:2,stored:2,head_submitted:3,build_worker:4
lane failover failover
lane hostile hostile --max-hwm-mb 256
lane s3 s3 --s3rver "$S3RVER"
lane disk disk

# wait for all lanes, each bounded by its own timeout
while read -r name pid; do
    wait "$pid"
    rc=$?
    out="$T/$name.out"
    echo "# ---- lane $name (exit $rc)"
    grep -E '^(ok   - |FAIL - |skip - |# )' "$out"
    n_ok=$(grep -c '^ok   - ' "$out")
    n_bad=$(grep -c '^FAIL - ' "$out")
    n_skip=$(grep -c '^skip - ' "$out")
    pass=$((pass + n_ok))
    fail=$((fail + n_bad))
    skipped=$((skipped + n_skip))
    if [ "$rc" -ne 0 ] && [ "$n_bad" -eq 0 ]; then
        bad "lane $name: exit $rc$([ "$rc" = 124 ] && echo ' (timed out)')"
        grep -vE '^(ok   - |FAIL - |skip - |# |figure )' "$out" | tail -15 | sed 's/^/    | /'
    fi
done <"$T/lanes"
PIDS=()

# every engine and broker log of every lane, sanitizer reports included (kills too)
if grep -lE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$T"/*/*.log "$T"/*/*.err \
    >"$T/san.out" 2>/dev/null; then
    bad "sanitizer reports in: $(tr '\n' ' ' <"$T/san.out")"
else
    ok "no sanitizer report in any log of any lane"
fi

sum() { grep -h "^figure $1 " "$T"/*.out | awk '{s += $3} END {print s + 0}'; }
echo "# ---- summary"
echo "# kills -9 survived: $(sum kills)"
echo "# faults injected (store 500s/outages, disk full): $(sum faults_injected)"
echo "# hostile inputs tried: $(sum inputs_tried); engine VmHWM $(grep -h '^figure vmhwm_mb' "$T"/*.out | awk '{print $3}') MB"
echo "# windows checked end to end: $(sum windows_checked)"
echo "# temporary files left in the file sink by kills (debris, not windows): $(sum sink_debris)"
echo "# restart -> first window, kill loop (session.timeout.ms 3000): $(grep -h '^figure recovery_s_' "$T"/*.out | awk '{print $3}' | tr '\n' ',' | sed 's/,$//') s"
echo "# restart -> first window after kill -9 (default session 6000): $(grep -h '^figure restart_recovery_s' "$T"/*.out | awk '{print $3}') s"
echo "# failover takeover after kill -9: $(grep -h '^figure takeover_s' "$T"/*.out | awk '{print $3}' | tr '\n' ' ')s"
echo "# $((SECONDS - STARTED)) s"
echo "it_chaos: $pass passed, $fail failed$([ "$skipped" -gt 0 ] && echo ", $skipped lanes skipped")"
[ "$fail" -eq 0 ]
