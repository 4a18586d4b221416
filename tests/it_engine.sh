#!/usr/bin/env bash
# shellcheck disable=SC2015 # `cond && ok ... || bad ...`: ok only echoes, it never fails
# it_engine.sh — the engine end to end (issue 3): a real broker process, a real Kafka client
# (confluent_kafka) producing data and notifications, `windowseal run` instances started,
# stopped, restarted and killed, and every attestation checked against values recomputed
# independently in Python (tests/it/wsit.py: SPEC 3.1 encoding, 3.2 order and stream digest,
# RFC 6962 roots, window log, DSSE signature).
#
#   bash tests/it_engine.sh PATH/TO/windowseal      (ctest runs it so; WS_SRC = source dir)
#
# Steps: 1 broker + key + config; 2-3 data and notifications (native and Spark progress shapes)
# posted before the engine first runs; 4 attestations checked (file sink, attestations topic,
# recomputed roots, windowseal verify); 5 bad notifications dead-lettered while later batches
# are attested; 6 a gap; 7 SIGTERM (engine 1, logging at debug, has a window_timing line with
# every stage for each window it attested) and restart: the chains continue; 8 failover between two
# instances of one group after a kill -9; 9 windowseal audit, and a flipped evidence byte;
# 10 windowseal demo. Bounded (< 3 minutes); WS_IT_KEEP=1 keeps the temp dir for a post-mortem.
# Not covered: a notification naming a topic that does not exist. The embedded broker (librdkafka's
# mock) creates any topic a client asks metadata for, so such a range just never completes (it is
# retried, as it must be on a broker that auto-creates topics); step 5 uses a partition the topic
# does not have instead, which the broker does report as unknown.
# Exit 0 all passed, 1 something failed, 77 skipped (binary or Python packages missing).
set -u

WS=${1:-}
if [ -z "$WS" ] || [ ! -x "$WS" ]; then
    echo "it_engine: windowseal binary '${WS}' not found: skipped"
    exit 77
fi
WS=$(cd "$(dirname "$WS")" && pwd)/$(basename "$WS")
SRC=${WS_SRC:-$(cd "$(dirname "$0")/.." && pwd)}
PY=/usr/bin/python3 # Debian's interpreter: it has confluent_kafka and cryptography
for t in lz4 timeout "$PY"; do
    command -v "$t" >/dev/null || { echo "it_engine: $t missing: skipped"; exit 77; }
done
$PY -c 'import confluent_kafka, cryptography' 2>/dev/null ||
    { echo "it_engine: python confluent_kafka/cryptography missing: skipped"; exit 77; }

T=$(mktemp -d /tmp/it_engine.XXXXXX)
BROKER_PID=""
E1=""
E2=""
WATCHDOG=""
CHILD=""
STARTED=$SECONDS
LIMIT=${WS_IT_LIMIT:-170} # seconds: the whole test stays under 3 minutes

stop_pid() { # pid: TERM, then KILL after 5 s
    local pid=$1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
}
cleanup() {
    [ -n "$WATCHDOG" ] && kill "$WATCHDOG" 2>/dev/null
    stop_pid "$CHILD"
    stop_pid "$E1"
    stop_pid "$E2"
    stop_pid "$BROKER_PID"
    wait 2>/dev/null
    if [ "${WS_IT_KEEP:-0}" = 1 ]; then
        echo "# kept $T"
    else
        rm -rf "$T"
    fi
}
# fd 3 is the script's stdout: a trap may run inside a function whose output is redirected.
exec 3>&1
trap cleanup EXIT
trap 'echo "it_engine: interrupted" >&3; exit 130' INT
# The watchdog's TERM: fail loudly, name the step, and let the EXIT trap clean up.
trap 'echo "FAIL - time limit: not done after $LIMIT s (during: $STEP)" >&3
      echo "it_engine: $pass passed, $((fail + 1)) failed" >&3; exit 1' TERM
STEP="setup"

pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok   - $*"; }
bad() { fail=$((fail + 1)); echo "FAIL - $*"; }

# run_child CMD...: run CMD in the background and wait for it: the builtin wait returns at once
# when the watchdog's TERM arrives (a foreground command would delay the trap until it ends).
run_child() {
    "$@" &
    CHILD=$!
    wait "$CHILD"
    local rc=$?
    CHILD=""
    return $rc
}

# helper DESC ARGS...: run wsit.py, echo its lines, count its ok/FAIL lines.
H() {
    local desc=$1 rc n_ok n_bad
    shift
    run_child timeout 120 $PY "$SRC/tests/it/wsit.py" --state "$T/state.json" "$@" >"$T/h.out" 2>&1
    rc=$?
    cat "$T/h.out"
    n_ok=$(grep -c '^ok   - ' "$T/h.out")
    n_bad=$(grep -c '^FAIL - ' "$T/h.out")
    pass=$((pass + n_ok))
    fail=$((fail + n_bad))
    if [ "$rc" -ne 0 ] && [ "$n_bad" -eq 0 ]; then
        bad "$desc: wsit.py exit $rc"
        sed 's/^/    | /' "$T/h.out" | tail -15
    fi
    return $rc
}

# expect "0" / "1 2" DESCRIPTION command...: the exit status must be one of the listed ones.
expect() {
    local want=$1 desc=$2 rc
    shift 2
    run_child timeout 120 "$@" >"$T/last.out" 2>&1
    rc=$?
    if [[ " $want " == *" $rc "* ]]; then
        ok "$desc (exit $rc)"
    else
        bad "$desc: exit $rc, expected $want"
        sed 's/^/    | /' "$T/last.out" | tail -20
    fi
}

# start_engine LOG [--set ...]: PID = the engine's pid (a child of this shell, so that `wait`
# gets its exit status), once its start line is logged.
PID=""
start_engine() {
    local log=$1
    shift
    "$WS" run -c "$T/config.json" "$@" 2>"$log" >/dev/null &
    PID=$!
    for _ in $(seq 100); do
        grep -q 'event=start' "$log" 2>/dev/null && break
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.1
    done
}

# wait_log FILE REGEX SECONDS: true once a line matches.
wait_log() {
    for _ in $(seq $(($3 * 10))); do
        grep -Eq "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# attested_by WINDOW_ID: which engine log says it attested the window. The log line comes
# after the sinks and the chain head, so wait a little for it.
attested_by() {
    local f who=""
    for _ in $(seq 50); do
        for f in "$T"/e*.log; do
            grep -q "event=window_attested .*window=$1 " "$f" && who="$who $(basename "$f" .log)"
        done
        [ -n "$who" ] && break
        sleep 0.1
    done
    echo "${who# }"
}

# engine_alive NAME PID
engine_alive() {
    if kill -0 "$2" 2>/dev/null; then ok "$1 still running"; else bad "$1 exited"; fi
}

QA=8c5e7f5a-0d4c-4b53-9d1e-6f1c2a3b4c5d # native notifications
QB=3f2b9c1e-7a6d-4e8f-b0c1-d2e3f4a5b6c7 # Spark StreamingQueryProgress JSON

# The watchdog also stops the broker, so that a helper waiting on it gives up at once.
# Its sleep is ended with it (no stray process holding ctest's output pipe).
(
    trap 'kill "$sp" 2>/dev/null; exit 0' TERM
    sleep "$LIMIT" &
    sp=$!
    wait "$sp"
    kill -TERM $$
    [ -s "$T/broker.pid" ] && kill -TERM "$(cat "$T/broker.pid")"
) >/dev/null 2>&1 &
WATCHDOG=$!
step() {
    STEP=$1
    echo "# step $1"
}

step "1: broker, key, config"
"$WS" broker --partitions 2 >"$T/broker.out" 2>"$T/broker.err" &
BROKER_PID=$!
echo "$BROKER_PID" >"$T/broker.pid"
for _ in $(seq 100); do
    [ -s "$T/broker.out" ] && break
    sleep 0.1
done
BOOT=$(head -1 "$T/broker.out")
if [[ "$BOOT" =~ ^127\.0\.0\.1:[0-9]+$ ]]; then
    ok "windowseal broker --partitions 2 prints its bootstrap first: $BOOT"
else
    bad "windowseal broker printed '$BOOT' (stderr: $(head -3 "$T/broker.err"))"
    echo "it_engine: $pass passed, $fail failed (no broker)"
    exit 1
fi
expect 0 "windowseal keygen --out $T/k" "$WS" keygen --out "$T/k"
cat >"$T/config.json" <<EOF
{"kafka": {"bootstrap.servers": "$BOOT", "group.id": "it-engine",
           "notifications.topic": "windowseal.batches",
           "attestations.topic": "windowseal.attestations",
           "properties": {"client.id": "it-engine"}},
 "signing": {"key": "$T/k"},
 "sinks": [{"type": "file", "path": "$T/att"}],
 "spool": {"path": "$T/spool"},
 "engine": {"gap_wait_ms": 1500, "fetch_timeout_ms": 3000, "retry_base_ms": 100,
            "retry_max_ms": 2000},
 "log": {"level": "debug"}}
EOF
expect 0 "windowseal config check accepts the config" "$WS" config check -c "$T/config.json"

step "2-3: data and notifications, posted before any engine has joined the group"
H init init --boot "$BOOT" --qa $QA --qb $QB --out "$T"
H "A/0" batch A 0 --counts 4,3,5
H "A/1" batch A 1
H "A/2" batch A 2 --counts 0,0,0 # an empty window
H "B/0" batch B 0 --shape spark-obj --counts 3,4,2
H "B/1" batch B 1 --shape spark-str
H "B/2" batch B 2 --shape spark-obj --counts 2,0,1 # clicks[1]: an empty range

step "4: windowseal run; attestations checked against my own recomputation"
start_engine "$T/e1.log"
E1=$PID
wait_log "$T/e1.log" 'event=start' 10 && ok "engine 1 started" || bad "engine 1 did not start: $(tail -3 "$T/e1.log")"
H wait wait --att "$T/att" --timeout 40
H check check --att "$T/att" --ws "$WS" --pub "$T/k.pub"

step "5: bad input while running; later batches still attested"
H dup-A2 dup A 2 # duplicate of the chain head: compared with the head's sources
H dup-B0 dup B 0 # duplicate of an older window: compared with the envelope read back
H rerun-B1 dup B 1 --rerun # Spark re-running batch 1 after a failure: new runId, same offsets
H rerun-A1 dup A 1 --rerun
H conflict bad conflict --q A --batch 1
for b in malformed unknown-shape inverted negative unsafe-id spark-null-start not-retained \
    unknown-partition; do
    H "$b" bad "$b"
done
H "A/3" batch A 3
H "B/3" batch B 3 --shape spark-str
sha_a1=$(sha256sum "$T/att/$QA/00000000000000000001.dsse.json" | cut -c1-64)
H wait wait --att "$T/att" --timeout 40
H check check --att "$T/att" --ws "$WS" --pub "$T/k.pub"
n=$(grep -c 'event=duplicate ' "$T/e1.log")
[ "$n" = 4 ] && ok "engine logged 4 duplicates (no-ops)" || bad "engine logged $n duplicates, expected 4"
grep -q "event=conflict query=$QA batch=1" "$T/e1.log" && ok "engine logged the conflict on $QA/1" ||
    bad "no conflict event for $QA/1 in the engine log"
[ "$(sha256sum "$T/att/$QA/00000000000000000001.dsse.json" | cut -c1-64)" = "$sha_a1" ] &&
    ok "the original envelope of $QA/1 is unchanged after the conflict" ||
    bad "the envelope of $QA/1 changed after the conflict"
[ ! -e "$T/att/x" ] && [ ! -e "$T/x" ] && ! compgen -G "$T/att/it-*" >/dev/null &&
    ok "no object for the unsafe or rejected query ids" || bad "objects for rejected queries: $(ls "$T/att")"
engine_alive "engine 1" "$E1"

step "6: a gap"
H "A/4 skipped" batch A 4 --skip
H "A/5 (gap)" batch A 5 --gap 4
H wait wait --att "$T/att" --timeout 30
grep -q "event=batch_ahead query=$QA batch=5 expected=4" "$T/e1.log" &&
    ok "engine held $QA/5 while waiting for batch 4" || bad "no batch_ahead event for $QA/5"
held=$($PY - "$T/e1.log" "$QA" <<'EOF'
import datetime, re, sys
ts = {}
for line in open(sys.argv[1]):
    m = re.match(r"ts=(\S+) level=\S+ event=(\S+) (.*)", line)
    if m and (m.group(2) == "batch_ahead" and "batch=5 " in m.group(3) or
              m.group(2) == "window_attested" and "window=%s/5 " % sys.argv[2] in m.group(3)):
        ts[m.group(2)] = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%fZ")
print(int((ts["window_attested"] - ts["batch_ahead"]).total_seconds() * 1000) if len(ts) == 2 else -1)
EOF
)
[ "$held" -ge 1500 ] && ok "$QA/5 was attested ${held} ms after it was held (gap_wait_ms 1500)" ||
    bad "$QA/5 attested ${held} ms after it was held, gap_wait_ms is 1500"
H "late A/4" bad late --q A --batch 4 # the skipped batch arriving after its gap was signed
H "A/6" batch A 6
H wait wait --att "$T/att" --timeout 30
H check check --att "$T/att" --ws "$WS" --pub "$T/k.pub"

step "7: SIGTERM, restart: the chains continue"
t0=$SECONDS
kill -TERM "$E1"
rc=""
for _ in $(seq 100); do
    kill -0 "$E1" 2>/dev/null || break
    sleep 0.1
done
if kill -0 "$E1" 2>/dev/null; then
    bad "engine 1 still running 10 s after SIGTERM"
else
    wait "$E1"
    rc=$?
    [ "$rc" = 0 ] && ok "engine 1 exited 0 after SIGTERM within $((SECONDS - t0)) s" ||
        bad "engine 1 exited $rc after SIGTERM"
fi
grep -q 'event=stop ' "$T/e1.log" && ok "engine 1 logged its stop line" || bad "no stop line in e1.log"
# Where each window's time went (debug): one window_timing line per attested window, every
# stage of a window built from Kafka, in order, adding up to its total.
timing=$($PY - "$T/e1.log" <<'EOF'
import re, sys
stages = ["wait", "read", "evidence", "seal", "envelope", "to_engine", "to_store", "store",
          "to_topic", "topic_ack", "head_ack"]
attested, timed, bad = set(), {}, []
for line in open(sys.argv[1]):
    m = re.search(r"event=window_attested query=(\S+) window=(\S+) ", line)
    if m:
        attested.add(m.group(2))
    m = re.search(r"event=window_timing query=(\S+) batch=(\d+) ms:(.*) total=([\d.]+)", line)
    if m:
        kv = re.findall(r" (\w+)=([\d.]+)", m.group(3))
        w = "%s/%s" % (m.group(1), m.group(2))
        timed[w] = kv
        total = sum(float(v) for _, v in kv)
        if [k for k, _ in kv] != stages:
            bad.append("%s: stages %s" % (w, [k for k, _ in kv]))
        elif abs(total - float(m.group(4))) > 0.01 * len(kv):
            bad.append("%s: stages add up to %.2f, total %s" % (w, total, m.group(4)))
missing = sorted(attested - set(timed))
print("%d %d %s" % (len(attested), len(missing) + len(bad), "; ".join(missing + bad)[:300]))
EOF
)
read -r n_attested n_wrong _ <<<"$timing"
[ "${n_attested:-0}" -gt 0 ] && [ "${n_wrong:-1}" = 0 ] &&
    ok "engine 1: a window_timing line with all 11 stages for each of its $n_attested attested windows" ||
    bad "window_timing lines: $timing"
start_engine "$T/e1b.log"
E1=$PID
H "A/7" batch A 7
H "B/4" batch B 4 --shape spark-obj
H "B/5" batch B 5 --shape spark-str --counts 0,0,0
H wait wait --att "$T/att" --timeout 40
H check check --att "$T/att" --ws "$WS" --pub "$T/k.pub"
if grep -q 'event=query_stopped' "$T"/e1*.log; then
    bad "an engine stopped a query: $(grep -h 'event=query_stopped' "$T"/e1*.log | head -2)"
else
    ok "no query_stopped after the restart: no window was re-signed differently"
fi
[ "$(attested_by "$QA/7")" = e1b ] && ok "the restarted engine attested $QA/7" ||
    bad "$QA/7 attested by '$(attested_by "$QA/7")'"
H "link A" link A 6 7 --att "$T/att" --why "across the restart"
H "link B" link B 3 4 --att "$T/att" --why "across the restart"

step "8: failover between two instances of the group"
start_engine "$T/e2.log" --set "spool.path=$T/spool2"
E2=$PID
# both members hold a partition once engine 2 has had an assignment and engine 1 a second one
wait_log "$T/e2.log" 'event=rebalance' 20 && ok "engine 2 joined the group" || bad "engine 2 never got an assignment"
sleep 1
H "A/8" batch A 8
H "B/6" batch B 6 --shape spark-obj
H wait wait --att "$T/att" --timeout 30
wa=$(attested_by "$QA/8")
wb=$(attested_by "$QB/6")
echo "# $QA/8 attested by $wa, $QB/6 by $wb"
if [ -n "$wa" ] && [ -n "$wb" ] && [ "$wa" != "$wb" ]; then
    ok "the group split the queries: $QA by $wa, $QB by $wb"
else
    echo "# note: one instance attested both ($wa, $wb): the group had not split yet"
fi
# kill -9 the instance that attested A's last window (it holds A's notification partition)
if [ "$wa" = e2 ]; then
    victim=$E2 vname=e2 survivor=$E1 sname=e1b
else
    victim=$E1 vname=e1b survivor=$E2 sname=e2
fi
disown "$victim" # no "Killed" job notice from bash
kill -KILL "$victim"
for _ in $(seq 50); do kill -0 "$victim" 2>/dev/null || break; sleep 0.1; done
[ "$vname" = e2 ] && E2="" || E1=""
ok "kill -9 $vname (pid $victim)"
H "A/9" batch A 9
H "B/7" batch B 7 --shape spark-str
H "A/10" batch A 10
H wait wait --att "$T/att" --timeout 45
for w in "$QA/9" "$QB/7" "$QA/10"; do
    [ "$(attested_by "$w")" = "$sname" ] && ok "$w attested by the survivor $sname" ||
        bad "$w attested by '$(attested_by "$w")', expected the survivor $sname"
done
H "link A" link A 8 9 --att "$T/att" --why "across the failover"
H "link B" link B 6 7 --att "$T/att" --why "across the failover"
H check check --att "$T/att" --ws "$WS" --pub "$T/k.pub"
if grep -q 'event=query_stopped' "$T"/e*.log; then
    bad "an engine stopped a query: $(grep -h 'event=query_stopped' "$T"/e*.log | head -2)"
else
    ok "no query_stopped in any engine log"
fi
engine_alive "survivor $sname" "$survivor"

step "9: windowseal audit"
expect 0 "windowseal audit $T/att" "$WS" audit "$T/att" --pubkey "$T/k.pub"
grep -q "2 chains verified, 0 failed" "$T/last.out" && ok "audit verified both chains" ||
    bad "audit output: $(tail -3 "$T/last.out")"
ev="$T/att/$QB/00000000000000000003.evidence.lz4"
cp "$ev" "$T/saved.lz4"
# a new file put in place, never the object rewritten: with the file sink's hard links the
# object may still be the spool's file too
$PY -c "
import os, sys
p = sys.argv[1]; b = bytearray(open(p, 'rb').read()); b[len(b) // 2] ^= 0x01
open(p + '.t', 'wb').write(b); os.replace(p + '.t', p)" "$ev"
expect 1 "windowseal audit with one flipped evidence byte in $QB/3" \
    "$WS" audit "$T/att" --pubkey "$T/k.pub"
if grep -q "FAIL $QB: 00000000000000000003.dsse.json" "$T/last.out"; then
    ok "audit names the broken window ($QB 00000000000000000003)"
else
    bad "audit does not name $QB/3: $(grep FAIL "$T/last.out" | head -2)"
fi
grep -q "ok   $QA" "$T/last.out" && ok "audit still passes the intact chain of $QA" ||
    bad "audit output lacks 'ok   $QA'"
cp "$T/saved.lz4" "$ev.t" && mv "$ev.t" "$ev"
expect 0 "windowseal audit after restoring the byte" "$WS" audit "$T/att" --pubkey "$T/k.pub"

step "10: windowseal demo"
expect 0 "windowseal demo --out $T/demo" "$WS" demo --out "$T/demo"
expect 0 "windowseal audit of the demo's attestations" \
    "$WS" audit "$T/demo/attestations" --pubkey "$T/demo/keys/windowseal.key.pub"

step "11: shutting down"
for pid in $E1 $E2; do
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    wait "$pid" 2>/dev/null
    rc=$?
    [ "$rc" = 0 ] && ok "survivor exited 0 after SIGTERM" || bad "survivor exited $rc after SIGTERM"
done
E1="" E2=""
kill -TERM "$BROKER_PID"
wait "$BROKER_PID"
rc=$?
BROKER_PID=""
[ "$rc" = 0 ] && ok "broker exited 0 after SIGTERM" || bad "broker exited $rc after SIGTERM"

# a sanitizer build (-DWS_SANITIZE=ON) reports into these logs, also from the killed instance
if grep -lE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$T"/e*.log "$T/broker.err" \
    >"$T/san.out" 2>/dev/null; then
    bad "sanitizer reports in: $(xargs -n1 basename <"$T/san.out" | tr '\n' ' ')"
else
    ok "no sanitizer report in any engine or broker log"
fi

echo "# $((SECONDS - STARTED)) s"
if [ "$fail" -ne 0 ]; then
    for f in "$T"/e*.log; do
        echo "# last lines of $(basename "$f"):"
        tail -8 "$f" | sed 's/^/#   /'
    done
fi
echo "it_engine: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
