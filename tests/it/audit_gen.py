#!/usr/bin/python3
"""audit_gen.py — an independent windowseal chain generator and proof checker for it_prove.sh and
it_audit.sh, written from SPEC.md alone (shares no code with windowseal, like
tests/interop/producer.py, whose encodings it follows).

    audit_gen.py chain --key PRIV.pem --out DIR --query Q --sizes 1,2,3 [--gap-before B]
                       [--fork-at B --fork-out FILE]
        writes DIR/Q/<batch20>.dsse.json and .evidence.lz4 for batches 0.. (one per size; with
        --gap-before B, batch ids jump by one before window index B and the gap is declared),
        and DIR/Q.windows.json: per batch its records (topic, partition, offset, encoding hex),
        Merkle root, stream digest, chainLength and logRoot — all computed here.
        --fork-at B also signs a different statement for batch B (other record values, same
        offsets, chain fields correct over the forked history) into FILE.
    audit_gen.py check-inclusion PROOF.json... --windows DIR/Q.windows.json
        checks inclusion proofs with this file's own RFC 9162 verifier against the roots
        computed here; exit 0/1.
    audit_gen.py check-consistency PROOF.json... --windows DIR/Q.windows.json
        the same for a consistency proof between two chain lengths.
    audit_gen.py resign ENV --key OTHER.pem --out ENV2
        the same statement signed by another key (collector.keyid updated).
"""
import argparse
import base64
import hashlib
import json
import os
import random
import struct
import subprocess
import sys

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

PAYLOAD_TYPE = "application/vnd.in-toto+json"


def sha(b):
    return hashlib.sha256(b).digest()


def leaf(b):
    return sha(b"\x00" + b)


def node(l, r):
    return sha(b"\x01" + l + r)


def mth(hashes):
    """RFC 6962 MTH over leaf hashes."""
    if not hashes:
        return sha(b"")
    if len(hashes) == 1:
        return hashes[0]
    k = 1
    while k * 2 < len(hashes):
        k *= 2
    return node(mth(hashes[:k]), mth(hashes[k:]))


def encode_record(topic, part, off, ts, key, value, headers):
    t = topic.encode()
    out = bytearray(b"\x01")
    out += struct.pack(">H", len(t)) + t
    out += struct.pack(">iqqB", part, off, ts, 1 if ts >= 0 else 0)
    for blob in (key, value):
        out += struct.pack(">i", -1) if blob is None else struct.pack(">i", len(blob)) + blob
    out += struct.pack(">I", len(headers))
    for name, val in headers:
        n = name.encode()
        out += struct.pack(">H", len(n)) + n
        out += struct.pack(">i", -1) if val is None else struct.pack(">i", len(val)) + val
    return bytes(out)


def rfc3339_ms(ms):
    import datetime
    t = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
    t += datetime.timedelta(milliseconds=ms)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + ".%03dZ" % (ms % 1000)


def load_key(path):
    with open(path, "rb") as f:
        sk = serialization.load_pem_private_key(f.read(), password=None)
    assert isinstance(sk, Ed25519PrivateKey)
    pk = sk.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return sk, hashlib.sha256(pk).hexdigest()


def envelope(sk, keyid, body):
    t = PAYLOAD_TYPE.encode()
    pae = b"DSSEv1 %d %s %d %s" % (len(t), t, len(body), body)
    env = {"payload": base64.b64encode(body).decode(), "payloadType": PAYLOAD_TYPE,
           "signatures": [{"keyid": keyid, "sig": base64.b64encode(sk.sign(pae)).decode()}]}
    return json.dumps(env, sort_keys=True, separators=(",", ":")).encode()


def make_window(rnd, size, offsets, salt):
    """size records over orders/0, orders/1, pay/0 in window-stream order; offsets advance."""
    parts = [("orders", 0), ("orders", 1), ("pay", 0)]
    counts = [0, 0, 0]
    for i in range(size):
        counts[i % 3] += 1
    recs, sources = [], []
    for (topic, part), n in zip(parts, counts):
        start = offsets[(topic, part)]
        for off in range(start, start + n):
            ts = 1763781500000 + off * 10 if off % 5 else -1
            key = None if off % 4 == 0 else b"k%d" % off
            value = b"%s-%d-%d-%s" % (topic.encode(), part, off, salt)
            value += bytes(rnd.randrange(256) for _ in range(rnd.randrange(0, 24)))
            headers = [("h", b"v%d" % off)] if off % 3 == 0 else []
            recs.append(dict(topic=topic, partition=part, offset=off, ts=ts,
                             enc=encode_record(topic, part, off, ts, key, value, headers)))
        offsets[(topic, part)] = start + n
        sources.append(dict(topic=topic, partition=part, fromOffset=start,
                            untilOffset=start + n, recordCount=n,
                            bytes=sum(len(r["enc"]) for r in recs
                                      if r["topic"] == topic and r["partition"] == part)))
    recs.sort(key=lambda r: (r["topic"].encode(), r["partition"], r["offset"]))
    return recs, sources


def statement(qid, batch, recs, sources, keyid, prev, log_hashes, genesis, gaps):
    encs = [r["enc"] for r in recs]
    stream = b"".join(struct.pack(">I", len(e)) + e for e in encs)
    digest = sha(stream)
    root = mth([leaf(e) for e in encs])
    entry = b"\x01" + struct.pack(">Q", batch) + root + digest
    log = log_hashes + [leaf(entry)]
    wid = "%s/%d" % (qid, batch)
    window = {"type": "micro-batch", "id": wid, "batchId": batch,
              "observedAt": rfc3339_ms(1763781600000 + batch), "sources": sources}
    stamps = [r["ts"] for r in recs if r["ts"] >= 0]
    if stamps:
        window["start"] = rfc3339_ms(min(stamps))
        window["end"] = rfc3339_ms(max(stamps))
    chain = {"chainLength": len(log), "logRoot": mth(log).hex(),
             "genesisWindowId": genesis or wid}
    integ = {"merkleTree": {"algorithm": "sha256", "scheme": "rfc6962",
                            "leafEncoding": "windowseal.record.v1", "leafCount": len(encs),
                            "root": root.hex()},
             "chain": chain}
    if prev:
        integ["previousWindow"] = {"windowId": prev["wid"], "merkleRoot": prev["root"],
                                   "attestationDigest": prev["digest"]}
        chain.update(previousWindowId=prev["wid"], previousMerkleRoot=prev["root"],
                     previousAttestationDigest=prev["digest"])
    if gaps:
        integ["gaps"] = gaps
    st = {"_type": "https://in-toto.io/Statement/v1",
          "subject": [{"name": "stream:" + wid, "digest": {"sha256": digest.hex()}}],
          "predicateType": "https://makoto.dev/stream-window/v1",
          "predicate": {
              "makotoLevel": "L2",
              "stream": {"id": qid, "topics": sorted({r["topic"] for r in recs} or {"orders"})},
              "window": window, "integrity": integ,
              "aggregates": {"recordCount": len(encs), "bytes": sum(len(e) for e in encs)},
              "collector": {"id": "windowseal:audit-gen", "version": {"windowseal": "python"},
                            "keyid": keyid},
              "verification": {"merkleProofAvailable": True,
                               "evidence": {"name": "%s/%020d.evidence.lz4" % (qid, batch),
                                            "compression": "lz4-frame"}}}}
    body = json.dumps(st, sort_keys=True, separators=(",", ":")).encode()
    return body, stream, root, digest, log


def cmd_chain(a):
    sk, keyid = load_key(a.key)
    sizes = [int(s) for s in a.sizes.split(",")]
    qdir = os.path.join(a.out, a.query)
    os.makedirs(qdir, exist_ok=True)
    rnd = random.Random(a.query)
    offsets = {("orders", 0): 100, ("orders", 1): 0, ("pay", 0): 7}
    prev, log, genesis, info = None, [], None, []
    batch = 0
    for i, size in enumerate(sizes):
        gaps = None
        if a.gap_before is not None and i == a.gap_before and i > 0:
            gaps = [{"fromBatchId": batch, "untilBatchId": batch + 1}]
            batch += 1
        saved_offsets = dict(offsets)
        recs, sources = make_window(rnd, size, offsets, b"a")
        body, stream, root, digest, newlog = statement(a.query, batch, recs, sources, keyid, prev,
                                                       log, genesis, gaps)
        if a.fork_at is not None and batch == a.fork_at:
            frecs, fsources = make_window(random.Random(7), size, dict(saved_offsets), b"FORK")
            fbody = statement(a.query, batch, frecs, fsources, keyid, prev, log, genesis,
                              gaps)[0]
            with open(a.fork_out, "wb") as f:
                f.write(envelope(sk, keyid, fbody))
        name = os.path.join(qdir, "%020d" % batch)
        with open(name + ".dsse.json", "wb") as f:
            f.write(envelope(sk, keyid, body))
        lz = subprocess.run(["lz4", "-c", "--no-frame-crc", "-q"], input=stream,
                            stdout=subprocess.PIPE, check=True).stdout
        with open(name + ".evidence.lz4", "wb") as f:
            f.write(lz)
        log = newlog
        genesis = genesis or "%s/%d" % (a.query, batch)
        prev = {"wid": "%s/%d" % (a.query, batch), "root": root.hex(),
                "digest": hashlib.sha256(body).hexdigest()}
        info.append({"batch": batch, "root": root.hex(), "streamDigest": digest.hex(),
                     "chainLength": len(log), "logRoot": mth(log).hex(),
                     "records": [[r["topic"], r["partition"], r["offset"], r["enc"].hex()]
                                 for r in recs]})
        batch += 1
    with open(os.path.join(a.out, a.query + ".windows.json"), "w") as f:
        json.dump({"queryId": a.query, "windows": info,
                   "logLeaves": [h.hex() for h in log]}, f)
    return 0


# RFC 9162 2.1.3.2 and 2.1.4.2, written from the RFC text.
def verify_inclusion(index, size, leaf_hash, path, root):
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf_hash
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(n1, n2, r1, r2, proof):
    if n1 > n2:
        return False
    if n1 == n2:
        return not proof and r1 == r2
    if n1 == 0:
        return not proof
    if not proof:
        return False
    if n1 & (n1 - 1) == 0:
        proof = [r1] + list(proof)
    fn, sn = n1 - 1, n2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node(c, fr), node(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == r1 and sr == r2


def cmd_check_inclusion(a):
    """Each proof: the record is the one generated at that index, the root the one computed
    here, and the path leads there (verifier above)."""
    w = json.load(open(a.windows))
    bad = 0
    for path in a.proof:
        p = json.load(open(path))
        win = next(x for x in w["windows"]
                   if "%s/%d" % (w["queryId"], x["batch"]) == p["windowId"])
        encs = [bytes.fromhex(r[3]) for r in win["records"]]
        want = encs[p["leafIndex"]]
        ok = (p["record"] == want.hex() and p["treeSize"] == len(encs)
              and p["root"] == win["root"] and p["leafHash"] == leaf(want).hex()
              and verify_inclusion(p["leafIndex"], p["treeSize"], leaf(want),
                                   [bytes.fromhex(h) for h in p["auditPath"]],
                                   bytes.fromhex(win["root"])))
        if not ok:
            bad += 1
            print("independent check FAILED: %s" % path)
    print("independent check: %d proofs, %d failed" % (len(a.proof), bad))
    return 1 if bad else 0


def cmd_check_consistency(a):
    w = json.load(open(a.windows))
    leaves = [bytes.fromhex(h) for h in w["logLeaves"]]
    bad = 0
    for path in a.proof:
        p = json.load(open(path))
        n1, n2 = p["fromSize"], p["toSize"]
        r1, r2 = mth(leaves[:n1]), mth(leaves[:n2])
        ok = (p["queryId"] == w["queryId"] and p["fromRoot"] == r1.hex()
              and p["toRoot"] == r2.hex()
              and verify_consistency(n1, n2, r1, r2, [bytes.fromhex(h) for h in p["proof"]]))
        if not ok:
            bad += 1
            print("independent check FAILED: %s" % path)
    print("independent check: %d proofs, %d failed" % (len(a.proof), bad))
    return 1 if bad else 0


def cmd_resign(a):
    sk, keyid = load_key(a.key)
    env = json.load(open(a.env))
    st = json.loads(base64.b64decode(env["payload"]))
    st["predicate"]["collector"]["keyid"] = keyid
    body = json.dumps(st, sort_keys=True, separators=(",", ":")).encode()
    with open(a.out, "wb") as f:
        f.write(envelope(sk, keyid, body))
    return 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("chain")
    c.add_argument("--key", required=True)
    c.add_argument("--out", required=True)
    c.add_argument("--query", required=True)
    c.add_argument("--sizes", required=True)
    c.add_argument("--gap-before", type=int)
    c.add_argument("--fork-at", type=int)
    c.add_argument("--fork-out")
    for name in ("check-inclusion", "check-consistency"):
        c = sub.add_parser(name)
        c.add_argument("proof", nargs="+")
        c.add_argument("--windows", required=True)
    c = sub.add_parser("resign")
    c.add_argument("env")
    c.add_argument("--key", required=True)
    c.add_argument("--out", required=True)
    a = ap.parse_args()
    return {"chain": cmd_chain, "check-inclusion": cmd_check_inclusion,
            "check-consistency": cmd_check_consistency, "resign": cmd_resign}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
