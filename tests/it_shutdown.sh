#!/usr/bin/env bash
# SIGTERM during a large window: the engine either completes the window (envelope + evidence in
# the sink, offset committed) or leaves it uncommitted (nothing in the sink) — never half — and
# exits 0 within a bounded time. A restart then attests it exactly once and the chain audits.
set -u
WS=$1
. "$(dirname "$0")/lib.sh"
it_init it_shutdown
it_broker 1
"$WS" keygen --out "$T/k" >/dev/null 2>&1
cat > "$T/c.json" <<JSON
{"kafka": {"bootstrap.servers": "$BOOT", "group.id": "it-shutdown"},
 "signing": {"key": "$T/k"},
 "sinks": [{"type": "file", "path": "$T/att"}],
 "spool": {"path": "$T/spool"}}
JSON

# 160 000 records of 60-byte values over 4 partitions (the mock keeps 5 MiB per partition), then one notification for batch 0 and a small
# batch 1 after it.
$PY - "$BOOT" <<'PYX'
import sys, json
from confluent_kafka import Producer
p = Producer({'bootstrap.servers': sys.argv[1], 'linger.ms': 20, 'queue.buffering.max.messages': 1000000})
hi = {}
def dr(err, msg):
    assert err is None, err
    hi[msg.partition()] = max(hi.get(msg.partition(), -1), msg.offset())
for i in range(160000):
    while True:
        try:
            p.produce('big', partition=i % 4, key=b'k', value=b'x' * 60, on_delivery=dr)
            break
        except BufferError:
            p.poll(0.05)
    if i % 10000 == 0:
        p.poll(0)
p.flush(60)
srcs = [{"topic": "big", "partition": q, "fromOffset": 0, "untilOffset": hi[q] + 1} for q in range(4)]
p.produce('windowseal.batches', key=b'q-big', value=json.dumps({"queryId": "q-big", "batchId": 0, "sources": srcs}))
p.produce('windowseal.batches', key=b'q-big', value=json.dumps({"queryId": "q-big", "batchId": 1,
          "sources": [{"topic": "big", "partition": 0, "fromOffset": 0, "untilOffset": 10}]}))
p.flush(10)
PYX

"$WS" run -c "$T/c.json" 2>"$T/e1.log" &
ENG=$!; PIDS+=($ENG)
# Wait until the engine has taken the big notification (it logs nothing until done at info level,
# so wait for the spool's in-progress file), then stop it mid-window.
for _ in $(seq 300); do ls "$T"/spool/q-big/*.tmp >/dev/null 2>&1 && break; sleep 0.05; done
ls "$T"/spool/q-big/*.tmp >/dev/null 2>&1 && ok "engine was mid-window at SIGTERM" || echo "note: window not observed in progress"
start=$(date +%s%N)
kill -TERM "$ENG"
for _ in $(seq 300); do kill -0 "$ENG" 2>/dev/null || break; sleep 0.05; done
wait "$ENG"; rc=$?; ENG=
ms=$(( ($(date +%s%N) - start) / 1000000 ))
[ "$rc" = 0 ] && ok "SIGTERM -> exit 0 after ${ms} ms" || bad "SIGTERM exit $rc"
[ "$ms" -lt 15000 ] && ok "stopped within 15 s" || bad "stop took ${ms} ms"
env0=$T/att/q-big/00000000000000000000.dsse.json
ev0=$T/att/q-big/00000000000000000000.evidence.lz4
if [ -f "$env0" ]; then
    [ -f "$ev0" ] && ok "window completed before exit (envelope and evidence)" || bad "envelope without evidence"
    cp "$env0" "$T/first.dsse.json"
else
    [ ! -f "$ev0" ] && ok "window left uncommitted (nothing in the sink)" || ok "evidence without envelope: incomplete window, envelope absent"
fi
ls "$T"/att/q-big/ 2>/dev/null | grep -q '\.tmp' && bad "temporary file left in the sink" || ok "no temporary files in the sink"

"$WS" run -c "$T/c.json" 2>"$T/e2.log" &
ENG=$!; PIDS+=($ENG)
wait_for "$T/att/q-big/00000000000000000001.dsse.json" 60
kill -TERM "$ENG"; wait "$ENG"; ENG=
[ -f "$T/att/q-big/00000000000000000001.dsse.json" ] && ok "restart attested the rest" || bad "batch 1 not attested after restart"
[ ! -f "$T/first.dsse.json" ] || cmp -s "$T/first.dsse.json" "$env0" && ok "window 0 attested once (same bytes)" || bad "window 0 changed"
n=$(ls "$T"/att/q-big/*.dsse.json | wc -l)
[ "$n" = 2 ] && ok "exactly 2 envelopes" || bad "$n envelopes"
"$WS" audit "$T/att" --pubkey "$T/k.pub" > "$T/audit.out" 2>&1 && ok "audit: chain valid" || { bad "audit"; cat "$T/audit.out"; }
grep -q 'records' "$T/audit.out" && grep -q '160010 records' "$T/audit.out" && ok "160010 records attested" || bad "record count: $(cat "$T/audit.out")"
grep -qE 'ERROR: (Address|Undefined)Sanitizer|runtime error:' "$T"/e*.log && bad "sanitizer report in engine log" || ok "no sanitizer reports"
it_done
