#!/usr/bin/env bash
# Metrics during a real run: `windowseal broker`, `windowseal run` with metrics.listen, records
# and notifications posted with a real client (confluent_kafka); the Prometheus exposition is
# scraped, parsed, and its counters must move as windows are attested and notifications
# dead-lettered. Also /healthz and /readyz, and SIGTERM -> exit 0.
set -u
WS=$1
. "$(dirname "$0")/lib.sh"
it_init it_metrics
it_broker 1
PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$WS" keygen --out "$T/k" >/dev/null 2>&1
cat > "$T/c.json" <<JSON
{"kafka": {"bootstrap.servers": "$BOOT", "group.id": "it-metrics"},
 "signing": {"key": "$T/k"},
 "sinks": [{"type": "file", "path": "$T/att"}],
 "spool": {"path": "$T/spool"},
 "engine": {"gap_wait_ms": 500},
 "metrics": {"listen": "127.0.0.1:$PORT"}}
JSON
"$WS" run -c "$T/c.json" 2>"$T/engine.log" &
ENG=$!; PIDS+=($ENG)

scrape() { curl -sf "http://127.0.0.1:$PORT/metrics"; }
# value of a series in a scrape file: metric name + exact label text ('' for none)
value() {
    $PY - "$1" "$2" "$3" <<'PYX'
import sys, re
name, labels = sys.argv[1], sys.argv[2]
text = open(sys.argv[3]).read()
seen_type = False
for line in text.splitlines():
    if line.startswith('# TYPE '):
        continue
    if line.startswith('#') or not line.strip():
        continue
    m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? (\S+)$', line)
    if not m:
        print('BADLINE ' + line); sys.exit(0)
    if m.group(1) == name and (m.group(3) or '') == labels:
        print(float(m.group(4))); sys.exit(0)
print('absent')
PYX
}

for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$PORT/healthz" | grep -q ok && ok "/healthz" || bad "/healthz"
scrape > "$T/m0" || bad "first scrape"
grep -q '^# TYPE windowseal_window_latency_seconds histogram' "$T/m0" && ok "exposition has TYPE lines" || bad "TYPE lines"
if grep -vE '^(#|$)' "$T/m0" | grep -qvE '^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? [-+0-9.eE]+(Inf)?$'; then
    bad "exposition lines parse"
else
    ok "every exposition line parses"
fi

$PY - "$BOOT" <<'PYX'
import sys, json
from confluent_kafka import Producer
p = Producer({'bootstrap.servers': sys.argv[1]})
offs = []
def dr(err, msg):
    assert err is None, err
    offs.append(msg.offset())
for i in range(30):
    p.produce('m-data', partition=0, key=b'k%d' % i, value=b'v' * 50, headers=[('h', b'x')], on_delivery=dr)
p.flush(10)
lo, hi = min(offs), max(offs) + 1
for b, (a, z) in enumerate([(lo, lo + 10), (lo + 10, hi)]):
    p.produce('windowseal.batches', key=b'q-metrics', value=json.dumps(
        {"queryId": "q-metrics", "batchId": b,
         "sources": [{"topic": "m-data", "partition": 0, "fromOffset": a, "untilOffset": z}]}))
p.produce('windowseal.batches', key=b'bad', value=b'{not json')
p.produce('windowseal.batches', key=b'q-metrics', value=json.dumps(
    {"queryId": "q-metrics", "batchId": 5,
     "sources": [{"topic": "m-data", "partition": 0, "fromOffset": 9, "untilOffset": 3}]}))
p.flush(10)
PYX

for _ in $(seq 150); do
    scrape > "$T/m1" 2>/dev/null
    [ "$(value windowseal_windows_attested_total '' "$T/m1")" = "2.0" ] &&
        [ "$(value windowseal_deadlettered_total 'error="WS_ERR_INVALID"' "$T/m1")" = "1.0" ] && break
    sleep 0.2
done
[ "$(value windowseal_windows_attested_total '' "$T/m1")" = "2.0" ] && ok "windows_attested_total = 2" || bad "windows_attested_total: $(value windowseal_windows_attested_total '' "$T/m1")"
[ "$(value windowseal_records_attested_total '' "$T/m1")" = "30.0" ] && ok "records_attested_total = 30" || bad "records_attested_total"
[ "$(value windowseal_deadlettered_total 'error="WS_ERR_MALFORMED"' "$T/m1")" = "1.0" ] && ok "dead-lettered malformed = 1" || bad "dead-lettered malformed"
[ "$(value windowseal_deadlettered_total 'error="WS_ERR_INVALID"' "$T/m1")" = "1.0" ] && ok "dead-lettered inverted range = 1" || bad "dead-lettered invalid"
[ "$(value windowseal_idle_triggers_total '' "$T/m1")" = "0.0" ] && ok "idle_triggers_total exported at 0" || bad "idle_triggers_total: $(value windowseal_idle_triggers_total '' "$T/m1")"
[ "$(value windowseal_input_rows_mismatch_total '' "$T/m1")" = "0.0" ] && ok "input_rows_mismatch_total exported at 0" || bad "input_rows_mismatch_total"
[ "$(value windowseal_chain_length 'query="q-metrics"' "$T/m1")" = "2.0" ] && ok "chain_length{q-metrics} = 2" || bad "chain_length"
[ "$(value windowseal_window_latency_seconds_count '' "$T/m1")" = "2.0" ] && ok "latency histogram counted 2" || bad "latency histogram"
v=$(value windowseal_sink_publishes_total "sink=\"file:$T/att\"" "$T/m1")
[ "$v" = "2.0" ] && ok "sink_publishes_total{file} = 2" || bad "sink_publishes_total{file}: $v"
for _ in $(seq 30); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.2; done
curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && ok "/readyz 200" || bad "/readyz"

kill -TERM "$ENG"
for _ in $(seq 100); do kill -0 "$ENG" 2>/dev/null || break; sleep 0.1; done
wait "$ENG"; rc=$?
[ "$rc" = 0 ] && ok "SIGTERM -> exit 0" || bad "SIGTERM exit $rc"
grep -q 'event=start ' "$T/engine.log" && ok "startup banner logged" || bad "startup banner"
it_done
