#!/usr/bin/env bash
# The PySpark examples (examples/*.py), proven without Spark. Each must compile and be pyflakes
# clean; then tests/examples/run_examples.py runs them with Debian's confluent_kafka against the
# embedded broker and a fake of the PySpark objects they touch (tests/examples/fake_pyspark):
# the usage commands of their docstrings run in bash; the foreachBatch jobs (the library, the
# Kafka-to-Iceberg job, the Spark Connect job run as pickled to the server) post one notification
# per batch with key = query id, raise when Kafka does not acknowledge it, and do not append a
# re-run batch twice; the listener posts Spark's progress JSON, skips idle triggers and pickles.
# The notifications are consumed back and checked, and a windowseal engine attests every one.
set -u
WS=$1
. "$(dirname "$0")/lib.sh"
it_init it_examples
SRC=$(cd "$(dirname "$0")/.." && pwd)
export PYTHONDONTWRITEBYTECODE=1

flakes=yes
$PY -m pyflakes --version >/dev/null 2>&1 || { flakes=; bad "no pyflakes for $PY (apt-get install python3-pyflakes)"; }
for f in "$SRC"/examples/*.py; do
    n=examples/$(basename "$f")
    if out=$(PYTHONPYCACHEPREFIX="$T/pycache" $PY -m py_compile "$f" 2>&1); then ok "$n compiles"; else bad "$n: $out"; fi
    [ -n "$flakes" ] || continue
    if out=$($PY -m pyflakes "$f" 2>&1); then ok "$n is pyflakes clean"; else bad "$n: $out"; fi
done

# The broker, with the data topic made up front (4 partitions, as the progress fixtures say).
"$WS" broker --partitions 1 --topic orders:4 > "$T/broker.out" 2>"$T/broker.err" &
PIDS+=($!)
for _ in $(seq 100); do [ -s "$T/broker.out" ] && break; sleep 0.1; done
BOOT=$(head -1 "$T/broker.out")
[ -n "$BOOT" ] || { echo "it_examples: broker did not start: $(cat "$T/broker.err")"; exit 1; }

timeout 50 $PY "$SRC/tests/examples/run_examples.py" --bootstrap "$BOOT" --ws "$WS" --tmp "$T" \
    > "$T/driver.out" 2>&1
rc=$?
while IFS= read -r line; do
    case $line in
        "ok: "*) ok "${line#ok: }" ;;
        "FAIL: "*) bad "${line#FAIL: }" ;;
        %[0-7]\|*) ;; # librdkafka's own log lines (the unreachable-broker cases): in driver.out
        *) echo "  $line" ;;
    esac
done < "$T/driver.out"
case $rc in
    0 | 1) ;;
    124) bad "run_examples.py timed out" ;;
    *) bad "run_examples.py exited $rc" ;;
esac
it_done
