#!/usr/bin/env bash
# it_prove.sh — `windowseal prove`: inclusion proofs for every record of windows of sizes 1, 2, 3,
# 7, 8, 9 and 1000; consistency proofs between every pair of attestations of a 20-window chain;
# rejections (another window's proof, a changed path element, index, size, record or root;
# chains of different queries; a window re-signed with a different statement); signed checkpoints
# checked against an independent signed-note implementation (tests/it/audit_note.py, which first
# reproduces Go's sumdb/note example vector).
#
# The chains come from tests/it/audit_gen.py, an independent producer that also records every
# expected root, so each proof is checked twice: by `windowseal prove check` against the signed
# envelope, and by the generator's own RFC 9162 verifier against roots it computed itself.
# Exit 0 all passed, 1 something failed, 77 skipped (binary or Python packages missing).
set -u

WS=${1:-}
if [ -z "$WS" ] || [ ! -x "$WS" ]; then
    echo "usage: it_prove.sh WINDOWSEAL_BINARY (skipped: no binary)"
    exit 77
fi
SRC=${WS_SRC:-$(cd "$(dirname "$0")/.." && pwd)}
PY=/usr/bin/python3
GEN="$PY $SRC/tests/it/audit_gen.py"
NOTE="$PY $SRC/tests/it/audit_note.py"
if ! $PY -c "import cryptography" 2>/dev/null || ! command -v lz4 >/dev/null; then
    echo "it_prove: skipped (needs /usr/bin/python3 with cryptography, and lz4)"
    exit 77
fi

T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
PASS=0
FAIL=0
ok() { PASS=$((PASS + 1)); echo "ok   - $*"; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL - $*"; }
# expect RC DESCRIPTION CMD...: run, keep output in $T/last.out, compare the exit status.
expect() {
    local want=$1 desc=$2
    shift 2
    "$@" > "$T/last.out" 2> "$T/last.err"
    local rc=$?
    if [ "$rc" = "$want" ]; then
        ok "$desc (exit $rc)"
    else
        bad "$desc: exit $rc, expected $want: $(head -c 400 "$T/last.out" "$T/last.err")"
    fi
}
env_of() { printf '%s/att/%s/%020d.dsse.json' "$T" "$1" "$2"; }
ev_of() { printf '%s/att/%s/%020d.evidence.lz4' "$T" "$1" "$2"; }
# jq-free JSON edits: edit FILE OUT PYTHON-EXPR-ON-p
edit() { $PY -c "import json,sys; p=json.load(open(sys.argv[1])); $3; json.dump(p, open(sys.argv[2],'w'))" "$1" "$2"; }

"$WS" keygen --out "$T/k" > /dev/null 2>&1 || { echo "keygen failed"; exit 1; }
"$WS" keygen --out "$T/k2" > /dev/null 2>&1 || { echo "keygen failed"; exit 1; }
PUB=$T/k.pub

echo "# chains from the independent generator"
$GEN chain --key "$T/k" --out "$T/att" --query qa --sizes 1,2,3,7,8,9,1000 || exit 1
$GEN chain --key "$T/k" --out "$T/att" --query qb \
    --sizes 3,1,4,1,5,9,2,6,5,3,5,8,9,7,9,3,2,3,8,4 --fork-at 10 --fork-out "$T/fork10.json" ||
    exit 1
expect 0 "audit of the generated chains" "$WS" audit "$T/att" --pubkey "$PUB"

echo "# 1. inclusion proofs for every record"
mkdir -p "$T/proofs"
for b in 0 1 2 3 4 5 6; do
    env=$(env_of qa $b)
    ev=$(ev_of qa $b)
    n=0
    nbad=0
    while read -r rec; do
        out="$T/proofs/$b-$n.json"
        if ! "$WS" prove record --envelope "$env" --evidence "$ev" --record "$rec" \
            --pubkey "$PUB" > "$out" 2> "$T/last.err"; then
            nbad=$((nbad + 1))
            [ $nbad -le 3 ] && echo "  prove record $rec failed: $(cat "$T/last.err")"
        elif ! "$WS" prove check "$out" --envelope "$env" --pubkey "$PUB" > "$T/last.out"; then
            nbad=$((nbad + 1))
            [ $nbad -le 3 ] && echo "  prove check $rec failed: $(cat "$T/last.out")"
        fi
        n=$((n + 1))
    done < <($PY -c "
import json, sys
w = json.load(open(sys.argv[1]))['windows'][int(sys.argv[2])]
for t, p, o, _ in w['records']: print('%s:%d:%d' % (t, p, o))" "$T/att/qa.windows.json" $b)
    if [ $nbad = 0 ] && [ $n -gt 0 ]; then
        ok "window qa/$b: all $n records proved and checked"
    else
        bad "window qa/$b: $nbad of $n records did not prove or check"
    fi
done
if $GEN check-inclusion "$T"/proofs/*.json --windows "$T/att/qa.windows.json" > "$T/last.out"; then
    ok "independent verifier accepts all $(ls "$T/proofs" | wc -l) proofs against its own roots"
else
    bad "independent verifier: $(tail -3 "$T/last.out")"
fi
grep -q '"leafIndex": 0' "$T/proofs/0-0.json" && grep -q '"treeSize": 1' "$T/proofs/0-0.json" &&
    grep -q '"auditPath": \[\]' "$T/proofs/0-0.json" &&
    ok "a one-record window's proof has an empty path" || bad "size-1 proof: $(cat "$T/proofs/0-0.json")"

echo "# 1b. rejected inclusion proofs"
P6=$T/proofs/6-500.json
E5=$(env_of qa 5)
E6=$(env_of qa 6)
expect 1 "a proof for a record of window 6 checked against window 5" \
    "$WS" prove check "$P6" --envelope "$E5" --pubkey "$PUB"
grep -q "proof is for window qa/6" "$T/last.out" && ok "says which window the proof is for" ||
    bad "reason: $(cat "$T/last.out")"
expect 1 "a proof of window 5 checked against window 6" \
    "$WS" prove check "$T/proofs/5-4.json" --envelope "$E6" --pubkey "$PUB"
npath=$($PY -c "import json,sys; print(len(json.load(open(sys.argv[1]))['auditPath']))" "$P6")
nrej=0
for i in $(seq 0 $((npath - 1))); do
    edit "$P6" "$T/mod.json" "h=p['auditPath'][$i]; p['auditPath'][$i]=('0' if h[0]!='0' else '1')+h[1:]"
    "$WS" prove check "$T/mod.json" --envelope "$E6" --pubkey "$PUB" > /dev/null && continue
    nrej=$((nrej + 1))
done
[ "$nrej" = "$npath" ] && ok "each of the $npath path elements, changed, is rejected" ||
    bad "only $nrej of $npath modified path elements rejected"
edit "$P6" "$T/mod.json" "p['auditPath'].pop()"
expect 1 "a path one element short" "$WS" prove check "$T/mod.json" --envelope "$E6" --pubkey "$PUB"
edit "$P6" "$T/mod.json" "p['auditPath'].append(p['auditPath'][0])"
expect 1 "a path one element long" "$WS" prove check "$T/mod.json" --envelope "$E6" --pubkey "$PUB"
edit "$P6" "$T/mod.json" "p['leafIndex'] += 1"
expect 1 "a wrong leaf index" "$WS" prove check "$T/mod.json" --envelope "$E6" --pubkey "$PUB"
edit "$P6" "$T/mod.json" "p['leafIndex'] = 1000"
expect 1 "a leaf index past the end" "$WS" prove check "$T/mod.json" --envelope "$E6" --pubkey "$PUB"
edit "$P6" "$T/mod.json" "p['treeSize'] += 1"
expect 1 "a wrong tree size" "$WS" prove check "$T/mod.json" --envelope "$E6" --pubkey "$PUB"
edit "$T/proofs/3-3.json" "$T/mod.json" "p['treeSize'] = 8"
expect 1 "size 7 proof claiming size 8" \
    "$WS" prove check "$T/mod.json" --envelope "$(env_of qa 3)" --pubkey "$PUB"
edit "$P6" "$T/mod.json" "import hashlib; r=bytearray.fromhex(p['record']); r[-1]^=1; p['record']=r.hex(); p['leafHash']=hashlib.sha256(b'\\0'+bytes(r)).hexdigest()"
expect 1 "a changed record (leafHash recomputed)" \
    "$WS" prove check "$T/mod.json" --envelope "$E6" --pubkey "$PUB"
edit "$P6" "$T/mod.json" "p['root'] = json.load(open('$T/proofs/5-0.json'))['root']"
expect 1 "another root in the proof file" \
    "$WS" prove check "$T/mod.json" --envelope "$E6" --pubkey "$PUB"
expect 1 "checked with another key" "$WS" prove check "$P6" --envelope "$E6" --pubkey "$T/k2.pub"
expect 1 "a consistency check given an inclusion proof" \
    "$WS" prove check "$P6" --from "$E5" --to "$E6" --pubkey "$PUB"
expect 1 "prove record with another window's evidence" \
    "$WS" prove record --envelope "$E6" --evidence "$(ev_of qa 5)" --record orders:0:100 \
    --pubkey "$PUB"
[ ! -s "$T/last.out" ] || ! grep -q auditPath "$T/last.out" &&
    ok "no proof is printed from evidence that does not match" || bad "a proof was printed"
expect 1 "prove record for a record not in the window" \
    "$WS" prove record --envelope "$E6" --evidence "$(ev_of qa 6)" --record orders:0:1 \
    --pubkey "$PUB"
expect 2 "prove record with a malformed --record" \
    "$WS" prove record --envelope "$E6" --evidence "$(ev_of qa 6)" --record orders-0-1 \
    --pubkey "$PUB"

echo "# 2. consistency proofs between every pair of a 20-window chain"
mkdir -p "$T/cons"
nbad=0
npairs=0
for i in $(seq 0 19); do
    for j in $(seq "$i" 19); do
        out="$T/cons/$i-$j.json"
        npairs=$((npairs + 1))
        if ! "$WS" prove consistency --from "$(env_of qb "$i")" --to "$(env_of qb "$j")" \
            --log "$T/att" --pubkey "$PUB" > "$out" 2> "$T/last.err"; then
            nbad=$((nbad + 1))
            [ $nbad -le 3 ] && echo "  prove consistency $i $j: $(cat "$out" "$T/last.err")"
        elif ! "$WS" prove check "$out" --from "$(env_of qb "$i")" --to "$(env_of qb "$j")" \
            --pubkey "$PUB" > "$T/last.out"; then
            nbad=$((nbad + 1))
            [ $nbad -le 3 ] && echo "  prove check $i $j: $(cat "$T/last.out")"
        fi
    done
done
[ $nbad = 0 ] && ok "all $npairs pairs (i <= j) proved and checked" ||
    bad "$nbad of $npairs pairs failed"
if $GEN check-consistency "$T"/cons/*.json --windows "$T/att/qb.windows.json" > "$T/last.out"; then
    ok "independent verifier accepts all $npairs consistency proofs"
else
    bad "independent verifier: $(tail -3 "$T/last.out")"
fi

echo "# 2b. rejected consistency proofs"
C=$T/cons/4-13.json
expect 1 "a proof checked with the envelopes swapped" \
    "$WS" prove check "$C" --from "$(env_of qb 13)" --to "$(env_of qb 4)" --pubkey "$PUB"
expect 1 "a proof checked against other sizes" \
    "$WS" prove check "$C" --from "$(env_of qb 5)" --to "$(env_of qb 13)" --pubkey "$PUB"
edit "$C" "$T/mod.json" "h=p['proof'][0]; p['proof'][0]=('0' if h[0]!='0' else '1')+h[1:]"
expect 1 "a changed proof element" \
    "$WS" prove check "$T/mod.json" --from "$(env_of qb 4)" --to "$(env_of qb 13)" --pubkey "$PUB"
edit "$C" "$T/mod.json" "p['proof'].pop()"
expect 1 "a proof one element short" \
    "$WS" prove check "$T/mod.json" --from "$(env_of qb 4)" --to "$(env_of qb 13)" --pubkey "$PUB"
edit "$C" "$T/mod.json" "p['toSize'] = 13"
expect 1 "a wrong toSize" \
    "$WS" prove check "$T/mod.json" --from "$(env_of qb 4)" --to "$(env_of qb 13)" --pubkey "$PUB"
expect 1 "prove consistency between chains of different queries" \
    "$WS" prove consistency --from "$(env_of qa 2)" --to "$(env_of qb 5)" --log "$T/att" \
    --pubkey "$PUB"
grep -q "different queries" "$T/last.out" && ok "says the queries differ" ||
    bad "reason: $(cat "$T/last.out")"
expect 1 "a qb proof checked against qa's envelopes" \
    "$WS" prove check "$T/cons/1-3.json" --from "$(env_of qa 1)" --to "$(env_of qa 3)" \
    --pubkey "$PUB"
expect 1 "a qb proof with --from in qa" \
    "$WS" prove check "$T/cons/1-3.json" --from "$(env_of qa 1)" --to "$(env_of qb 3)" \
    --pubkey "$PUB"
expect 1 "--from later than --to" \
    "$WS" prove consistency --from "$(env_of qb 9)" --to "$(env_of qb 2)" --log "$T/att" \
    --pubkey "$PUB"

echo "# 2c. a window replaced by a re-signed, different statement"
cp "$T/fork10.json" "$T/forked.json"
expect 0 "the forked window alone has a valid signature" \
    "$WS" verify "$T/forked.json" --pubkey "$PUB"
expect 1 "a proof made before the fork, checked from the forked window" \
    "$WS" prove check "$T/cons/10-15.json" --from "$T/forked.json" --to "$(env_of qb 15)" \
    --pubkey "$PUB"
cp "$(env_of qb 10)" "$T/orig10.json"
cp "$T/forked.json" "$(env_of qb 10)"
expect 1 "prove consistency from the forked window to a later one" \
    "$WS" prove consistency --from "$(env_of qb 10)" --to "$(env_of qb 15)" --log "$T/att" \
    --pubkey "$PUB"
expect 1 "prove consistency across the forked window (5 -> 15)" \
    "$WS" prove consistency --from "$(env_of qb 5)" --to "$(env_of qb 15)" --log "$T/att" \
    --pubkey "$PUB"
grep -q "does not reproduce the logRoot of qb/15" "$T/last.out" &&
    ok "names the attestation whose history was rewritten" || bad "reason: $(cat "$T/last.out")"
expect 0 "the forked window still extends the common prefix (3 -> forked 10)" \
    "$WS" prove consistency --from "$(env_of qb 3)" --to "$(env_of qb 10)" --log "$T/att" \
    --pubkey "$PUB"
cp "$T/last.out" "$T/forkproof.json"
expect 1 "...and that proof does not make the forked 10 a prefix of the real 15" \
    "$WS" prove check "$T/forkproof.json" --from "$(env_of qb 3)" --to "$(env_of qb 15)" \
    --pubkey "$PUB"
cp "$T/orig10.json" "$(env_of qb 10)"
expect 0 "restored: 5 -> 15 proves again" \
    "$WS" prove consistency --from "$(env_of qb 5)" --to "$(env_of qb 15)" --log "$T/att" \
    --pubkey "$PUB"

echo "# 3. signed checkpoints against an independent signed-note implementation"
expect 0 "audit_note.py reproduces Go's sumdb/note example" $NOTE selftest
expect 0 "prove checkpoint for qb/19" \
    "$WS" prove checkpoint --envelope "$(env_of qb 19)" --key "$T/k" --out "$T/cp"
want=$($PY -c "
import json, sys
w = json.load(open(sys.argv[1]))['windows'][-1]
print('windowseal/qb %d %s' % (w['chainLength'], w['logRoot']))" "$T/att/qb.windows.json")
expect 0 "audit_note.py verifies windowseal's checkpoint" $NOTE verify "$T/cp" --pubkey "$PUB"
[ "$(cat "$T/last.out")" = "$want" ] && ok "it reads origin, size and root: $want" ||
    bad "read $(cat "$T/last.out"), expected $want"
expect 1 "audit_note.py refuses it with another key" $NOTE verify "$T/cp" --pubkey "$T/k2.pub"
sed 's/^20$/21/' "$T/cp" > "$T/cp-mod"
expect 1 "audit_note.py refuses it with the size changed" $NOTE verify "$T/cp-mod" --pubkey "$PUB"
[ "$($NOTE vkey --pubkey "$PUB")" = "$("$WS" prove vkey --pubkey "$PUB")" ] &&
    ok "prove vkey prints the same verifier key as the independent code" ||
    bad "vkey differs: $("$WS" prove vkey --pubkey "$PUB")"
root=$($PY -c "import json,sys; print(json.load(open(sys.argv[1]))['windows'][-1]['logRoot'])" \
    "$T/att/qb.windows.json")
$NOTE sign --key "$T/k" --origin windowseal/qb --size 20 --root "$root" > "$T/att/qb/checkpoint"
cmp -s "$T/att/qb/checkpoint" "$T/cp" && ok "both implementations sign byte-identical checkpoints" ||
    bad "checkpoints differ: $(diff "$T/att/qb/checkpoint" "$T/cp")"
expect 0 "audit accepts the checkpoint signed by audit_note.py" \
    "$WS" audit "$T/att" --pubkey "$PUB"
grep -q "checkpoint: size 20 and root" "$T/last.out" && ok "audit reports the matching checkpoint" ||
    bad "audit output: $(cat "$T/last.out")"
{ cat "$T/att/qb/checkpoint"; printf '\xe2\x80\x94 witness.example %s\n' \
    "$(head -c 68 /dev/urandom | base64 -w0)"; } > "$T/cp-cosigned"
cp "$T/cp-cosigned" "$T/att/qb/checkpoint"
expect 0 "a witness cosignature line does not disturb audit" "$WS" audit "$T/att" --pubkey "$PUB"
$NOTE sign --key "$T/k2" --origin windowseal/qb --size 20 --root "$root" > "$T/att/qb/checkpoint"
expect 1 "audit refuses a checkpoint signed by an unknown key" "$WS" audit "$T/att" --pubkey "$PUB"
$NOTE sign --key "$T/k" --origin windowseal/qa --size 20 --root "$root" > "$T/att/qb/checkpoint"
expect 1 "audit refuses a checkpoint for another query" "$WS" audit "$T/att" --pubkey "$PUB"
rm -f "$T/att/qb/checkpoint"

echo "it_prove: $PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
