#!/usr/bin/env bash
# Adopting existing envelopes (SPEC 9) across a key rotation. Engine 1 (key A) attests batches
# 0-1 into a file sink. Engine 2 (key B, its own chain state) then meets the same windows: its
# envelopes differ (other key), so it must adopt A's envelopes — they verify with a configured
# key and state the same roots, digests and chain positions — and sign batch 2 itself, linked to
# A's batch 1. Without A's key configured, the same situation stops the query's chain loudly.
set -u
WS=$1
. "$(dirname "$0")/lib.sh"
it_init it_adopt
it_broker 1
"$WS" keygen --out "$T/a" >/dev/null 2>&1
"$WS" keygen --out "$T/b" >/dev/null 2>&1
conf() { # name key group attestations-topic sink-dir [verify_keys-json]
    cat > "$T/$1.json" <<JSON
{"kafka": {"bootstrap.servers": "$BOOT", "group.id": "$3", "attestations.topic": "$4"},
 "signing": {"key": "$T/$2", "verify_keys": ${6:-[]}},
 "sinks": [{"type": "file", "path": "$5"}],
 "spool": {"path": "$T/spool-$1"}, "engine": {"gap_wait_ms": 200}}
JSON
}
post() { # batch ids...
    $PY - "$BOOT" "$@" <<'PYX'
import sys, json
from confluent_kafka import Producer
p = Producer({'bootstrap.servers': sys.argv[1]})
for b in map(int, sys.argv[2:]):
    p.produce('ad-data', partition=0, key=b'k', value=b'record %d' % b)
    p.flush(10)
    p.produce('windowseal.batches', key=b'q-adopt', value=json.dumps(
        {"queryId": "q-adopt", "batchId": b,
         "sources": [{"topic": "ad-data", "partition": 0, "fromOffset": b, "untilOffset": b + 1}]}))
p.flush(10)
PYX
}
D=$T/att/q-adopt

conf one a g1 att1 "$T/att"
post 0 1
"$WS" run -c "$T/one.json" 2>"$T/one.log" & ENG=$!; PIDS+=($ENG)
wait_for "$D/00000000000000000001.dsse.json" && ok "key A attested batches 0-1" || bad "engine 1"
kill -TERM $ENG; wait $ENG; ENG=
cp "$D/00000000000000000000.dsse.json" "$T/a0"; cp "$D/00000000000000000001.dsse.json" "$T/a1"

# Without A's key: refused, loudly, and nothing new is written.
conf two b g2 att2 "$T/att"
"$WS" run -c "$T/two.json" 2>"$T/two.log" & ENG=$!; PIDS+=($ENG)
for _ in $(seq 100); do grep -q query_stopped "$T/two.log" && break; sleep 0.1; done
kill -TERM $ENG; wait $ENG; ENG=
grep -q 'event=query_stopped' "$T/two.log" && ok "unverifiable existing envelope stops the chain" || bad "no query_stopped"
grep -q 'cannot be adopted' "$T/two.log" && ok "reason says it cannot be adopted" || bad "reason"
cmp -s "$T/a0" "$D/00000000000000000000.dsse.json" && ok "existing envelope untouched" || bad "envelope overwritten"

# With A's key configured: adopted; batch 2 signed by B and linked to A's batch 1.
conf three b g3 att3 "$T/att" "[\"$T/a.pub\"]"
post 2
"$WS" run -c "$T/three.json" 2>"$T/three.log" & ENG=$!; PIDS+=($ENG)
wait_for "$D/00000000000000000002.dsse.json" && ok "batch 2 attested after adoption" || bad "batch 2 missing: $(tail -3 "$T/three.log")"
kill -TERM $ENG; wait $ENG; ENG=
[ "$(grep -c 'event=envelope_adopted' "$T/three.log")" = 2 ] && ok "two envelopes adopted" || bad "adoptions: $(grep -c envelope_adopted "$T/three.log")"
cmp -s "$T/a0" "$D/00000000000000000000.dsse.json" && cmp -s "$T/a1" "$D/00000000000000000001.dsse.json" && ok "adopted envelopes unchanged" || bad "adopted envelopes changed"
"$WS" verify "$D/00000000000000000002.dsse.json" --pubkey "$T/b.pub" --evidence "$D/00000000000000000002.evidence.lz4" >/dev/null && ok "batch 2 signed by key B" || bad "batch 2 signature"
"$WS" audit "$T/att" --pubkey "$T/a.pub" --pubkey "$T/b.pub" > "$T/audit.out" 2>&1 && ok "chain across the rotation audits" || { bad "audit"; cat "$T/audit.out"; }
"$WS" audit "$T/att" --pubkey "$T/b.pub" >/dev/null 2>&1 && bad "audit without key A passed" || ok "audit without key A fails"
it_done
