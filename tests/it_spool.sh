#!/usr/bin/env bash
# it_spool.sh — the spool and output-file digests in a real `windowseal run`.
#
#   bash tests/it_spool.sh PATH/TO/windowseal        (ctest runs it so; WS_SRC = source dir)
#
# An embedded broker (`windowseal broker`), a key from `windowseal keygen`, source records and a
# native notification posted with Python's confluent_kafka, output files on local disk. Then:
# (a) `windowseal run` under `strace -f -e trace=io_uring_setup,io_uring_enter` with the default
#     configuration uses io_uring (a ring is set up and entered), logs backend=io_uring, attests
#     the window, and cleans the spool once the sinks hold it; the statement's output digests
#     equal sha256sum's, a missing file and a directory are reported with their error;
# (b) the same with --set spool.io_uring=off: no ring at all, backend=syscalls logged, and the
#     evidence archive is byte-identical to (a)'s (same records, other backend).
# Exit 0 all passed, 1 something failed, 77 skipped (binary, strace or Python packages missing).
set -u

WS=${1:-}
if [ -z "$WS" ] || [ ! -x "$WS" ]; then
    echo "it_spool: windowseal binary '${WS}' not found: skipped"
    exit 77
fi
WS=$(cd "$(dirname "$WS")" && pwd)/$(basename "$WS")
PY=/usr/bin/python3 # Debian's interpreter: it has confluent_kafka
for t in strace sha256sum lz4 "$PY"; do
    command -v "$t" >/dev/null || { echo "it_spool: $t missing: skipped"; exit 77; }
done
$PY -c 'import confluent_kafka' 2>/dev/null || { echo "it_spool: confluent_kafka missing: skipped"; exit 77; }
# LeakSanitizer cannot run under ptrace; a sanitizer build still checks everything else.
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0

T=$(mktemp -d /tmp/it_spool.XXXXXX)
BROKER_PID=
cleanup() {
    [ -n "$BROKER_PID" ] && kill "$BROKER_PID" 2>/dev/null && wait "$BROKER_PID" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok   - $*"; }
bad() { fail=$((fail + 1)); echo "FAIL - $*"; }
# What a delivered window left in the spool: any file but the two lock files, and any non-empty file in
# .free (a delivered window's files that no sink links are recycled there, emptied: spool.c).
spool_left() {
    find "$T/spool" -path "$T/spool/.free" -prune -o -type f ! -name .lock ! -name .share -print
    find "$T/spool/.free" -type f -size +0 2>/dev/null || true
}
check() { # check DESCRIPTION command...
    local desc=$1
    shift
    if "$@" >"$T/last.out" 2>&1; then ok "$desc"; else bad "$desc"; sed 's/^/    | /' "$T/last.out" | head -20; fi
}

# ---------------------------------------------------------------------------------------------
# Broker, key, data

"$WS" broker --listen 127.0.0.1:0 >"$T/broker.out" 2>"$T/broker.err" &
BROKER_PID=$!
for _ in $(seq 100); do
    BOOT=$(head -n1 "$T/broker.out" 2>/dev/null)
    [ -n "$BOOT" ] && break
    sleep 0.1
done
if [ -z "${BOOT:-}" ]; then
    bad "windowseal broker printed its bootstrap address"
    cat "$T/broker.err"
    echo "it_spool: $pass passed, $fail failed"
    exit 1
fi
ok "windowseal broker listening on $BOOT"
check "windowseal keygen" "$WS" keygen --out "$T/ws.key"

mkdir -p "$T/warehouse/data/adir" "$T/spool" "$T/attest"
head -c 3000001 /dev/urandom >"$T/warehouse/data/part-00000.parquet"
: >"$T/warehouse/data/part-00001.parquet"
head -c 4097 /dev/urandom >"$T/warehouse/data/part 00002.parquet"

# post QUERY_ID: 200 records to orders[0] (once), then the native notification for them
cat >"$T/post.py" <<'EOF'
import json, sys
from confluent_kafka import Producer
boot, qid, warehouse, produce_records = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
p = Producer({"bootstrap.servers": boot, "linger.ms": 0})
errors = []
def cb(err, msg):
    if err is not None:
        errors.append(str(err))
if produce_records:
    for i in range(200):
        p.produce("orders", key=b"k%d" % (i % 7), value=b"order-%06d" % i * 3, partition=0,
                  headers=[("h", b"v%d" % i)], on_delivery=cb)
    p.flush(30)
note = {"queryId": qid, "runId": "run-1", "name": "it-spool", "batchId": 0,
        "sources": [{"topic": "orders", "partition": 0, "fromOffset": 0, "untilOffset": 200}],
        "outputs": [{"name": "iceberg.it.orders", "snapshotId": "42",
                     "files": [warehouse + "/data/part-00000.parquet",
                               warehouse + "/data/part-00001.parquet",
                               "file://" + warehouse + "/data/part%2000002.parquet",
                               warehouse + "/data/missing.parquet",
                               warehouse + "/data/adir",
                               "s3://bucket/elsewhere.parquet"]}]}
p.produce("windowseal.batches", key=qid.encode(), value=json.dumps(note).encode(), on_delivery=cb)
p.flush(30)
if errors:
    sys.exit("produce failed: " + "; ".join(errors))
EOF

cat >"$T/config.json" <<EOF
{"kafka": {"bootstrap.servers": "$BOOT", "group.id": "it-spool"},
 "signing": {"key": "$T/ws.key"},
 "sinks": [{"type": "file", "path": "$T/attest/"}],
 "spool": {"path": "$T/spool/"},
 "outputs": {"allowed_roots": ["$T/warehouse"]},
 "engine": {"fetch_timeout_ms": 5000, "gap_wait_ms": 0}}
EOF

# run_engine LABEL QUERY_ID [--set ...]: run until the window is attested, then SIGTERM.
run_engine() {
    local label=$1 qid=$2 env spid wpid rc
    shift 2
    env="$T/attest/$qid/00000000000000000000.dsse.json"
    strace -f -o "$T/$label.strace" -e trace=io_uring_setup,io_uring_enter \
        "$WS" run -c "$T/config.json" "$@" 2>"$T/$label.log" &
    spid=$!
    for _ in $(seq 600); do
        [ -f "$env" ] && grep -q window_attested "$T/$label.log" && break
        kill -0 "$spid" 2>/dev/null || break
        sleep 0.1
    done
    wpid=$(pgrep -P "$spid" | head -n1)
    [ -n "$wpid" ] && kill -TERM "$wpid" 2>/dev/null
    wait "$spid"
    rc=$?
    [ "$rc" = 0 ] && ok "$label: windowseal run stopped cleanly on SIGTERM" ||
        { bad "$label: windowseal run exit $rc"; tail -20 "$T/$label.log" | sed 's/^/    | /'; }
}

# check_window LABEL QUERY_ID: the attested window and its output digests
check_window() {
    local label=$1 qid=$2 d="$T/attest/$2" env ev
    env="$d/00000000000000000000.dsse.json"
    ev="$d/00000000000000000000.evidence.lz4"
    if [ -f "$env" ] && [ -f "$ev" ]; then ok "$label: envelope and evidence in the file sink"; else
        bad "$label: no envelope/evidence in $d"; tail -20 "$T/$label.log" | sed 's/^/    | /'; return; fi
    check "$label: windowseal verify --evidence accepts the window" \
        "$WS" verify "$env" --pubkey "$T/ws.key.pub" --evidence "$ev"
    left=$(spool_left | wc -l)
    [ "$left" = 0 ] && ok "$label: spool cleaned once every sink holds the window" ||
        bad "$label: $left files left in the spool: $(spool_left)"
    want0=$(sha256sum <"$T/warehouse/data/part-00000.parquet" | cut -c1-64)
    want1=$(sha256sum <"$T/warehouse/data/part-00001.parquet" | cut -c1-64)
    want2=$(sha256sum <"$T/warehouse/data/part 00002.parquet" | cut -c1-64)
    stream=$(lz4 -dc "$ev" | sha256sum | cut -c1-64)
    $PY - "$env" "$T/warehouse" "$want0" "$want1" "$want2" "$stream" >"$T/last.out" 2>&1 <<'EOF'
import base64, json, sys
env, wh, w0, w1, w2, stream = sys.argv[1:]
st = json.loads(base64.b64decode(json.load(open(env))["payload"]))
files = {f["name"]: f for o in st["predicate"]["outputs"] for f in o["files"]}
subj = {s["name"]: s["digest"]["sha256"] for s in st["subject"]}
fails = []
def want(c, msg):
    if not c:
        fails.append(msg)
want(st["subject"][0]["digest"]["sha256"] == stream, "subject[0] != lz4 -dc | sha256sum")
for name, digest, size in [(wh + "/data/part-00000.parquet", w0, 3000001),
                           (wh + "/data/part-00001.parquet", w1, 0),
                           ("file://" + wh + "/data/part%2000002.parquet", w2, 4097)]:
    f = files.get(name, {})
    want(f.get("sha256") == digest, "%s: sha256 %s != sha256sum %s" % (name, f.get("sha256"), digest))
    want(f.get("bytes") == size, "%s: bytes %s != %d" % (name, f.get("bytes"), size))
    want(subj.get(name) == digest, "%s: no subject entry with sha256sum's digest" % name)
for name, err in [(wh + "/data/missing.parquet", "No such file"), (wh + "/data/adir", "directory"),
                  ("s3://bucket/elsewhere.parquet", "not readable")]:
    f = files.get(name, {})
    want(err in f.get("error", "") and "sha256" not in f, "%s: error %r" % (name, f.get("error")))
    want(name not in subj, "%s: unreadable file has a subject entry" % name)
print("\n".join(fails))
sys.exit(1 if fails else 0)
EOF
    if [ $? = 0 ]; then ok "$label: output digests equal sha256sum's; missing file, directory and s3:// reported"
    else bad "$label: statement outputs"; sed 's/^/    | /' "$T/last.out"; fi
}

# ---------------------------------------------------------------------------------------------
# (a) default configuration: io_uring

check "post records and notification (query it-spool-a)" $PY "$T/post.py" "$BOOT" it-spool-a "$T/warehouse" 1
run_engine default it-spool-a
if grep -Eq '^[0-9]+ +io_uring_setup\(.*\) = [0-9]+' "$T/default.strace"; then
    ok "default: io_uring_setup succeeded ($(grep -c io_uring_setup "$T/default.strace") rings)"
else
    bad "default: no successful io_uring_setup under strace"; head -5 "$T/default.strace" | sed 's/^/    | /'
fi
n=$(grep -c 'io_uring_enter(' "$T/default.strace")
[ "$n" -gt 0 ] && ok "default: io_uring_enter called $n times" || bad "default: io_uring_enter never called"
grep -q 'spool_io.*backend=io_uring' "$T/default.log" && ok "default: log says backend=io_uring" ||
    bad "default: no spool_io backend=io_uring line in the log"
check_window default it-spool-a

# ---------------------------------------------------------------------------------------------
# (b) spool.io_uring=off: plain syscalls, same evidence bytes

check "post notification (query it-spool-b, same records)" $PY "$T/post.py" "$BOOT" it-spool-b "$T/warehouse" 0
run_engine off it-spool-b --set spool.io_uring=off
if grep -q 'io_uring_setup(' "$T/off.strace"; then bad "off: io_uring_setup called"; else ok "off: no io_uring ring"; fi
grep -q 'spool_io.*backend=syscalls mode=off' "$T/off.log" && ok "off: log says backend=syscalls mode=off" ||
    bad "off: no spool_io backend=syscalls line in the log"
check_window off it-spool-b
check "evidence archives byte-identical between io_uring and plain syscalls" \
    cmp "$T/attest/it-spool-a/00000000000000000000.evidence.lz4" \
        "$T/attest/it-spool-b/00000000000000000000.evidence.lz4"

# ---------------------------------------------------------------------------------------------
# (c) resume from the spool: a window spooled but not in every sink is delivered after a
#     restart without being recomputed (engine/build.c looks the window up in the spool).

SRC=${WS_SRC:-$(cd "$(dirname "$0")/.." && pwd)}
qid=it-spool-c
name=00000000000000000000
check "post notification (query $qid)" $PY "$T/post.py" "$BOOT" $qid "$T/warehouse" 0
: >"$T/attest/$qid" # a file where the sink wants a directory: every publish fails
"$WS" run -c "$T/config.json" 2>"$T/resume1.log" &
wpid=$!
for _ in $(seq 300); do
    [ -f "$T/spool/$qid/$name.dsse.json" ] && grep -q sink_failed "$T/resume1.log" && break
    sleep 0.1
done
kill -TERM "$wpid" 2>/dev/null
wait "$wpid"
if [ -f "$T/spool/$qid/$name.dsse.json" ] && [ -f "$T/spool/$qid/$name.evidence.lz4" ]; then
    ok "resume: window complete in the spool while the sink fails"
    cp "$T/spool/$qid/$name.dsse.json" "$T/spooled.dsse.json"
    cp "$T/spool/$qid/$name.evidence.lz4" "$T/spooled.evidence.lz4"
else
    bad "resume: window not in the spool"; tail -20 "$T/resume1.log" | sed 's/^/    | /'
fi
rm -f "$T/attest/$qid"
"$WS" run -c "$T/config.json" 2>"$T/resume2.log" &
wpid=$!
for _ in $(seq 300); do
    grep -q window_attested "$T/resume2.log" && break
    sleep 0.1
done
kill -TERM "$wpid" 2>/dev/null
wait "$wpid"
grep -q "window_resumed.*query=$qid" "$T/resume2.log" &&
    ok "resume: the restarted engine delivered the spooled window (window_resumed)" ||
    { bad "resume: no window_resumed in the log"; tail -20 "$T/resume2.log" | sed 's/^/    | /'; }
check "resume: the sink holds the spooled envelope, byte for byte" \
    cmp "$T/spooled.dsse.json" "$T/attest/$qid/$name.dsse.json"
check "resume: the sink holds the spooled evidence, byte for byte" \
    cmp "$T/spooled.evidence.lz4" "$T/attest/$qid/$name.evidence.lz4"
left=$(spool_left | wc -l)
[ "$left" = 0 ] && ok "resume: spool cleaned after delivery" || bad "resume: $left files left in the spool"

echo "it_spool: $pass passed, $fail failed"
[ "$fail" = 0 ]
