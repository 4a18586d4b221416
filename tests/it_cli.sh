#!/usr/bin/env bash
# The command-line surface scripts rely on (SPEC 10): help, exit statuses, config check, and bad
# configuration and key files (each exit 2 with a message naming the problem).
set -u
WS=$1
[ -x "$WS" ] || exit 77
SRC=${WS_SRC:-$(dirname "$0")/..}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
# expect STATUS "grep pattern on stdout+stderr" -- command...
expect() {
    local want=$1 pat=$2; shift 3
    local out rc
    out=$("$@" 2>&1); rc=$?
    if [ "$rc" = "$want" ] && { [ -z "$pat" ] || echo "$out" | grep -qE -- "$pat"; }; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1)); echo "FAIL: $* -> exit $rc (want $want, /$pat/): $(echo "$out" | head -3)"
    fi
}

expect 0 "windowseal [0-9]" -- "$WS" --version
expect 0 "usage" -- "$WS" --help
expect 2 "usage" -- "$WS"
expect 2 "unknown command" -- "$WS" frobnicate
for c in run demo broker keygen verify audit config; do
    expect 0 "usage: windowseal $c" -- "$WS" "$c" --help
done
expect 2 "usage" -- "$WS" verify
expect 2 "usage" -- "$WS" keygen
expect 2 "usage" -- "$WS" run --bogus
expect 0 "^ok: " -- "$WS" config check -c "$SRC/examples/windowseal.json"
expect 0 "^ok: " -- env WINDOWSEAL_CONFIG="$SRC/examples/windowseal.json" "$WS" config check
expect 0 "^\| key \|" -- "$WS" config docs

# bad configuration files: exit 2, key and file named
cfg() { printf '%s' "$1" > "$T/c.json"; echo "$T/c.json"; }
expect 2 "c.json: kafka.group.id: expected string" -- "$WS" config check -c "$(cfg '{"kafka":{"group.id":1}}')"
expect 2 "c.json: kafka.nope: unknown key" -- "$WS" config check -c "$(cfg '{"kafka":{"nope":1}}')"
expect 2 "c.json: sinks\[0\].region: unknown key for a file sink" -- "$WS" config check -c "$(cfg '{"sinks":[{"type":"file","path":"x","region":"r"}]}')"
expect 2 'c.json: sinks\[0\].type: expected "file" or "s3"' -- "$WS" config check -c "$(cfg '{"sinks":[{"type":"ftp"}]}')"
expect 2 "c.json: sinks\[0\].bucket: required" -- "$WS" config check -c "$(cfg '{"sinks":[{"type":"s3","endpoint":"http://x"}]}')"
# the engine holds 7 configured sinks and the attestations topic: an 8th is refused, not dropped
sinks8=$(printf '{"type":"file","path":"d%s"},' 1 2 3 4 5 6 7 8)
expect 0 "^ok: .*\(7 sinks\)" -- "$WS" config check -c "$(cfg '{"sinks":['"${sinks8%,\{*}"']}')"
expect 2 "c.json: sinks: at most 7 sinks" -- "$WS" config check -c "$(cfg '{"sinks":['"${sinks8%,}"']}')"
expect 2 "c.json: spool.max_bytes: 1 is out of range" -- "$WS" config check -c "$(cfg '{"spool":{"max_bytes":1}}')"
expect 2 "c.json:1:" -- "$WS" config check -c "$(cfg '{"kafka": ')"
expect 2 "engine.gap_wait_ms" -- "$WS" config check -c "$(cfg '{}')" --set engine.gap_wait_ms=-5
expect 2 "signing.key: required" -- "$WS" run -c "$(cfg '{}')"

# keys
expect 0 "^[0-9a-f]{64}$" -- "$WS" keygen --out "$T/k"
[ "$(stat -c %a "$T/k")" = 600 ] && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL: key mode"; }
expect 2 "refusing to overwrite" -- "$WS" keygen --out "$T/k"
expect 2 "fetch.wait.max.mss" -- "$WS" config check -c "$(cfg '{}')" --set kafka.properties.fetch.wait.max.mss=1
expect 2 "fetch.wait.max.mss" -- \
    "$WS" run -c "$(cfg '{}')" --set signing.key="$T/k" --set kafka.properties.fetch.wait.max.mss=1
good='{"sinks":[{"type":"file","path":"'$T'/att"}],"spool":{"path":"'$T'/spool"},"kafka":{"bootstrap.servers":"127.0.0.1:1"}}'
cp "$T/k" "$T/open.key"; chmod 644 "$T/open.key"
expect 2 "mode 0644" -- "$WS" run -c "$(cfg "$good")" --set signing.key="$T/open.key"
expect 2 "public key" -- "$WS" run -c "$(cfg "$good")" --set signing.key="$T/k.pub"
head -c 60 "$T/k" > "$T/trunc.key"; chmod 600 "$T/trunc.key"
expect 2 "trunc.key" -- "$WS" run -c "$(cfg "$good")" --set signing.key="$T/trunc.key"
if openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out "$T/rsa.key" 2>/dev/null; then
    chmod 600 "$T/rsa.key"
    expect 2 "Ed25519" -- "$WS" run -c "$(cfg "$good")" --set signing.key="$T/rsa.key"
    expect 2 "Ed25519" -- "$WS" verify "$T/k.pub" --pubkey "$T/rsa.key"
fi
expect 2 "nonexistent" -- "$WS" verify "$T/nonexistent" --pubkey "$T/k.pub"
head -c 300 /dev/urandom > "$T/random"
expect 1 "invalid" -- "$WS" verify "$T/random" --pubkey "$T/k.pub"
expect 2 "" -- "$WS" verify "$T/random" --pubkey "$T/random"
expect 2 "" -- "$WS" audit "$T/nonexistent" --pubkey "$T/k.pub"

# broker --topic NAME:PARTITIONS: bad values exit 2; good ones pre-create topics a real client sees
expect 2 "not NAME:PARTITIONS" -- "$WS" broker --topic 'bad name:3'
expect 2 "not NAME:PARTITIONS" -- "$WS" broker --topic orders:0
expect 2 "not NAME:PARTITIONS" -- "$WS" broker --topic orders
expect 2 "given twice" -- "$WS" broker --topic a:1 --topic a:2
expect 0 "--topic NAME:PARTITIONS" -- "$WS" broker --help
if command -v kcat >/dev/null 2>&1; then
    "$WS" broker --topic orders:12 --topic windowseal.batches:3 > "$T/broker.out" 2>/dev/null &
    BPID=$!
    for _ in $(seq 50); do [ -s "$T/broker.out" ] && break; sleep 0.1; done
    meta=$(timeout 10 kcat -b "$(head -1 "$T/broker.out")" -L 2>&1)
    kill $BPID; wait $BPID 2>/dev/null
    for want in 'topic "orders" with 12 partitions' 'topic "windowseal.batches" with 3 partitions' \
                'topic "windowseal.attestations" with 1 partitions'; do
        if echo "$meta" | grep -q "$want"; then pass=$((pass + 1)); else
            fail=$((fail + 1)); echo "FAIL: broker --topic: kcat -L lacks '$want'"; fi
    done
fi

echo "it_cli: $pass passed, $fail failed"
[ "$fail" = 0 ]
