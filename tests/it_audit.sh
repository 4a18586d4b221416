#!/usr/bin/env bash
# it_audit.sh — `windowseal audit` on a tree written by the engine (`windowseal demo`): exit 0,
# then exit 1 naming the right window after each of: one evidence byte changed, one envelope
# deleted, two envelopes swapped, one envelope re-signed with another key, one evidence file
# deleted, the checkpoint rolled back, the chain truncated under its checkpoint. Then --json
# (parsed), --query, a declared gap (from tests/it/audit_gen.py), and the --html page rendered
# by headless Chromium: the right number of bars and rows per query, the verdict, and links that
# resolve to the artifacts.
# Exit 0 all passed, 1 something failed, 77 skipped (binary, Python packages or Chromium missing;
# the non-HTML checks still run and a failure among them still exits 1).
set -u

WS=${1:-}
if [ -z "$WS" ] || [ ! -x "$WS" ]; then
    echo "usage: it_audit.sh WINDOWSEAL_BINARY (skipped: no binary)"
    exit 77
fi
SRC=${WS_SRC:-$(cd "$(dirname "$0")/.." && pwd)}
PY=/usr/bin/python3
GEN="$PY $SRC/tests/it/audit_gen.py"
if ! $PY -c "import cryptography" 2>/dev/null || ! command -v lz4 >/dev/null; then
    echo "it_audit: skipped (needs /usr/bin/python3 with cryptography, and lz4)"
    exit 77
fi

T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
PASS=0
FAIL=0
SKIPPED=0
ok() { PASS=$((PASS + 1)); echo "ok   - $*"; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL - $*"; }
expect() {
    local want=$1 desc=$2
    shift 2
    "$@" > "$T/last.out" 2> "$T/last.err"
    local rc=$?
    if [ "$rc" = "$want" ]; then
        ok "$desc (exit $rc)"
    else
        bad "$desc: exit $rc, expected $want: $(head -c 600 "$T/last.out" "$T/last.err")"
    fi
}
# has PATTERN DESC: the last output holds a line matching PATTERN (grep -E).
has() {
    if grep -qE -- "$1" "$T/last.out"; then ok "$2"; else
        bad "$2: no line matching '$1' in: $(head -c 800 "$T/last.out")"
    fi
}

echo "# a tree written by the engine"
expect 0 "windowseal demo --out $T/demo" "$WS" demo --out "$T/demo"
PUB=$T/demo/keys/windowseal.key.pub
KEY=$T/demo/keys/windowseal.key
mapfile -t QS < <(ls "$T/demo/attestations")
[ "${#QS[@]}" = 2 ] && ok "the demo wrote two queries" || { bad "queries: ${QS[*]}"; exit 1; }
QA=${QS[0]}
QB=${QS[1]}
"$WS" keygen --out "$T/other" > /dev/null 2>&1
W=$T/w
f() { printf '%s/%s/%020d.%s' "$W" "$1" "$2" "$3"; }
fresh() {
    rm -rf "$W"
    cp -a "$T/demo/attestations" "$W"
    for q in "$QA" "$QB"; do # checkpoints at the head of each chain, as the engine will write
        "$WS" prove checkpoint --envelope "$(f "$q" 4 dsse.json)" --key "$KEY" \
            --out "$W/$q/checkpoint" 2> /dev/null || bad "prove checkpoint $q"
    done
}

fresh
expect 0 "audit of the engine's tree with checkpoints" "$WS" audit "$W" --pubkey "$PUB"
has "^ok   $QA: 5 windows .*checkpoint: size 5 and root [0-9a-f]{64} match" "checkpoint of $QA matches"
has "^ok   $QB: 5 windows" "$QB verified"
has "^verdict: valid: 2 chains verified, 0 failed$" "verdict line"

echo "# tampering, one change at a time"
fresh
$PY -c "
import sys
p = sys.argv[1]; b = bytearray(open(p, 'rb').read()); b[len(b) // 2] ^= 0x01
open(p, 'wb').write(b)" "$(f "$QA" 3 evidence.lz4)"
expect 1 "one byte of $QA/3's evidence changed" "$WS" audit "$W" --pubkey "$PUB"
has "^FAIL $QA: 00000000000000000003.dsse.json \(window $QA/3\): evidence" "names window $QA/3"
has "^ok   $QB" "the other chain still passes"
[ "$(grep -c '^FAIL' "$T/last.out")" -ge 1 ] && [ "$(grep '^FAIL' "$T/last.out" | head -1 | grep -c '/3)')" = 1 ] &&
    ok "the first FAIL line is window 3" || bad "first FAIL: $(grep -m1 FAIL "$T/last.out")"

fresh
rm "$(f "$QA" 2 dsse.json)"
expect 1 "envelope $QA/2 deleted" "$WS" audit "$W" --pubkey "$PUB"
has "^FAIL $QA: 00000000000000000002.dsse.json \(window $QA/2\): missing: no envelope for batch 2.*envelope was removed" \
    "names the missing window $QA/2"

fresh
rm "$(f "$QA" 0 dsse.json)"
expect 1 "genesis envelope $QA/0 deleted" "$WS" audit "$W" --pubkey "$PUB"
has "^FAIL $QA: 00000000000000000000.dsse.json \(window $QA/0\): missing: no envelope for batch 0" \
    "names the missing genesis window $QA/0"

fresh
mv "$(f "$QA" 1 dsse.json)" "$T/tmp.json"
mv "$(f "$QA" 3 dsse.json)" "$(f "$QA" 1 dsse.json)"
mv "$T/tmp.json" "$(f "$QA" 3 dsse.json)"
expect 1 "envelopes $QA/1 and $QA/3 swapped" "$WS" audit "$W" --pubkey "$PUB"
has "^FAIL $QA: 00000000000000000001.dsse.json \(window $QA/1\): holds window $QA/3" \
    "names window $QA/1 as holding $QA/3"
has "^FAIL $QA: 00000000000000000003.dsse.json \(window $QA/3\): holds window $QA/1" \
    "and window $QA/3 as holding $QA/1"

fresh
$GEN resign "$(f "$QB" 2 dsse.json)" --key "$T/other" --out "$T/resigned.json"
cp "$T/resigned.json" "$(f "$QB" 2 dsse.json)"
expect 1 "envelope $QB/2 re-signed with another key" "$WS" audit "$W" --pubkey "$PUB"
has "^FAIL $QB: 00000000000000000002.dsse.json \(window $QB/2\): .*signature" \
    "names window $QB/2 (signature)"
has "^ok   $QA" "the other chain still passes"
expect 1 "...and with that other key also trusted" \
    "$WS" audit "$W" --pubkey "$PUB" --pubkey "$T/other.pub"
has "^FAIL $QB: 00000000000000000003.dsse.json \(window $QB/3\): previousWindow's merkleRoot or attestationDigest" \
    "the next window no longer links to it ($QB/3)"

fresh
rm "$(f "$QA" 1 evidence.lz4)"
expect 1 "evidence of $QA/1 deleted" "$WS" audit "$W" --pubkey "$PUB"
has "^FAIL $QA: 00000000000000000001.dsse.json \(window $QA/1\): evidence missing" \
    "names the missing evidence of $QA/1"

fresh
"$WS" prove checkpoint --envelope "$(f "$QB" 2 dsse.json)" --key "$KEY" --out "$W/$QB/checkpoint" 2> /dev/null
expect 1 "checkpoint of $QB rolled back to window 2" "$WS" audit "$W" --pubkey "$PUB"
has "^FAIL $QB: checkpoint: size 3 \(window $QB/2\) is behind the chain of 5 windows ending at $QB/4: rolled back$" \
    "names the rolled-back checkpoint's window $QB/2 and the head $QB/4"

fresh
rm "$(f "$QB" 4 dsse.json)" "$(f "$QB" 4 evidence.lz4)"
expect 1 "last window of $QB removed under its checkpoint" "$WS" audit "$W" --pubkey "$PUB"
has "^FAIL $QB: checkpoint: size 5, but the chain has only 4 windows \(last $QB/3\)" \
    "names the truncation after $QB/3"

fresh
printf 'windowseal/%s\n5\nnot-base64\n\n\xe2\x80\x94 windowseal AAAA\n' "$QB" > "$W/$QB/checkpoint"
expect 1 "a malformed checkpoint" "$WS" audit "$W" --pubkey "$PUB"
has "^FAIL $QB: checkpoint: .*root line" "says what is wrong with it"

echo "# --json, --query and a declared gap"
fresh
rm "$(f "$QA" 2 dsse.json)"
$GEN chain --key "$KEY" --out "$W" --query qgap --sizes 3,4,5,6 --gap-before 2 || exit 1
expect 1 "audit --json of a tree with a missing window and a declared gap" \
    "$WS" audit "$W" --pubkey "$PUB" --json
cp "$T/last.out" "$T/audit.json"
if $PY - "$T/audit.json" "$QA" "$QB" << 'EOF'; then ok "the JSON report says what it should"; else bad "JSON report: $(head -c 1500 "$T/audit.json")"; fi
import json, sys
r = json.load(open(sys.argv[1]))
qa, qb = sys.argv[2], sys.argv[3]
q = {x["queryId"]: x for x in r["queries"]}
assert r["verdict"] == "invalid" and r["chainsVerified"] == 2 and r["chainsFailed"] == 1, r
assert set(q) == {qa, qb, "qgap"}, q.keys()
assert q[qa]["verdict"] == "invalid" and "00000000000000000002.dsse.json" in q[qa]["firstBad"]
assert q[qa]["missingWindows"] == [{"fromBatchId": 2, "untilBatchId": 3}], q[qa]
assert q[qa]["problems"][0]["windowId"] == qa + "/2"
assert q[qb]["verdict"] == "valid" and q[qb]["windows"] == 5 and q[qb]["chainLength"] == 5
assert q[qb]["checkpoint"]["valid"] is True
assert q["qgap"]["verdict"] == "valid" and q["qgap"]["windows"] == 4
assert q["qgap"]["records"] == 18 and q["qgap"]["lastBatchId"] == 4
assert q["qgap"]["declaredGaps"] == [{"fromBatchId": 2, "untilBatchId": 3}], q["qgap"]
EOF
expect 0 "audit --query $QB --json" "$WS" audit "$W" --pubkey "$PUB" --query "$QB" --json
$PY -c "
import json, sys
r = json.load(open(sys.argv[1]))
assert [q['queryId'] for q in r['queries']] == [sys.argv[2]] and r['verdict'] == 'valid'
" "$T/last.out" "$QB" && ok "--query audits only that query" || bad "--query: $(cat "$T/last.out")"
expect 2 "audit --query of an unknown query" "$WS" audit "$W" --pubkey "$PUB" --query nope
expect 2 "audit without --pubkey" "$WS" audit "$W"

echo "# --html, rendered by headless Chromium"
mkdir -p "$T/report"
expect 1 "audit --html" "$WS" audit "$W" --pubkey "$PUB" --html "$T/report/audit.html"
has "^FAIL $QA: 00000000000000000002.dsse.json" "the text lines are still printed"
if ! grep -qE 'src=|href="https?:|@import|url\(http' "$T/report/audit.html"; then
    ok "the page loads no external resources"
else
    bad "external references: $(grep -oE 'src=[^ ]*|href="http[^"]*' "$T/report/audit.html" | head -3)"
fi
CHROME=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$CHROME" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium \
        > "$T/apt.log" 2>&1 || true
    CHROME=$(command -v chromium || true)
fi
if [ -z "$CHROME" ]; then
    echo "skip - Chromium is not installed and could not be installed"
    SKIPPED=1
else
    UD=$(mktemp -d)
    timeout 120 "$CHROME" --headless --no-sandbox --disable-gpu --disable-background-networking \
        --disable-component-update --disable-sync --no-first-run --user-data-dir="$UD" \
        --dump-dom "file://$T/report/audit.html" > "$T/dom.html" 2> "$T/chrome.err"
    rc=$?
    rm -rf "$UD"
    if [ $rc = 0 ] && [ -s "$T/dom.html" ]; then
        ok "Chromium rendered the page"
    else
        bad "Chromium exit $rc: $(tail -3 "$T/chrome.err")"
    fi
    if $PY - "$T/dom.html" "$T/report" "$QA" "$QB" << 'EOF'; then ok "the rendered page shows the right counts, statuses, verdict and links"; else bad "rendered page"; fi
import html.parser, os, sys
from urllib.parse import unquote
dom, base, qa, qb = sys.argv[1:5]

class P(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.sections, self.cur, self.verdict, self.in_rendered, self.in_verdict = {}, None, "", False, False
        self.links = []
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        cls = a.get("class", "")
        if tag == "section" and "query" in cls.split():
            self.cur = self.sections.setdefault(a["data-query"], {"attrs": a, "rects": [], "rows": 0, "rendered": ""})
        elif tag == "section" and a.get("id") == "verdict":
            self.in_verdict, self.vattrs = True, a
        elif tag == "rect" and "win" in cls.split() and self.cur is not None:
            self.cur["rects"].append(cls.split()[1])
        elif tag == "tr" and self.cur is not None and cls:
            self.cur["rows"] += 1
        elif tag == "p" and cls == "rendered":
            self.in_rendered = True
        elif tag == "a" and "href" in a:
            self.links.append(a["href"])
    def handle_endtag(self, tag):
        if tag == "section":
            self.cur, self.in_verdict = None, False
        if tag == "p":
            self.in_rendered = False
    def handle_data(self, d):
        if self.in_rendered and self.cur is not None:
            self.cur["rendered"] += d
        if self.in_verdict:
            self.verdict += d

p = P()
p.feed(open(dom, encoding="utf-8").read())
s = p.sections
def check(cond, what):
    if not cond:
        print("  page check failed: %s" % what)
        sys.exit(1)
check(set(s) == {qa, qb, "qgap"}, "sections %s" % list(s))
check("INVALID" in p.verdict and "2 chains verified, 1 failed" in p.verdict, "verdict %r" % p.verdict)
# qa: 0 ok, 1 ok, 2 missing, 3 and 4 checked alone after the break
check(s[qa]["rects"] == ["s-ok", "s-ok", "s-missing", "s-unchecked", "s-unchecked"], "qa bars %s" % s[qa]["rects"])
check(s[qa]["attrs"]["data-status"] == "invalid" and s[qa]["attrs"]["data-windows"] == "2", "qa attrs %s" % s[qa]["attrs"])
check(s[qb]["rects"] == ["s-ok"] * 5 and s[qb]["attrs"]["data-records"] == "1120", "qb %s" % s[qb])
check(s["qgap"]["rects"] == ["s-ok", "s-ok", "s-gap", "s-ok", "s-ok"], "qgap bars %s" % s["qgap"]["rects"])
check(s["qgap"]["attrs"]["data-records"] == "18", "qgap records")
# What the page's own script counted after layout: bars with a height, and table rows.
for q, n in ((qa, 5), (qb, 5), ("qgap", 5)):
    check(s[q]["rendered"] == "%d bars drawn, %d table rows" % (n, n), "%s rendered %r" % (q, s[q]["rendered"]))
    check(s[q]["rows"] == n, "%s rows %d" % (q, s[q]["rows"]))
# Links are relative and resolve to the artifacts.
check(len(p.links) == 2 * 4 + 1 + 2 * 5 + 2 * 4, "links %d" % len(p.links))
for h in p.links:
    check(not h.startswith("/") and "://" not in h, "relative link %s" % h)
    check(os.path.isfile(os.path.join(base, unquote(h))), "link %s resolves" % h)
EOF
fi

echo "it_audit: $PASS passed, $FAIL failed"
[ "$FAIL" = 0 ] || exit 1
[ "$SKIPPED" = 0 ] || exit 77
exit 0
