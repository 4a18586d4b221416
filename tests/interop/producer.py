#!/usr/bin/python3
"""producer.py — an independent windowseal producer, written from SPEC.md alone.

It shares no code with windowseal: its own record encoding (SPEC 3.1), window stream and
stream digest (3.2), evidence archive made by the `lz4` CLI (3.3), RFC 6962 Merkle root (4),
window-log entry (5), statement JSON (6) and DSSE signature with `cryptography` (7). If
`windowseal verify --evidence` accepts what this script writes, the two implementations agree
on every byte that matters.

    producer.py --key PRIV.pem --out DIR [--query-id Q] [--batch N] [--seed S]

writes DIR/envelope.json, DIR/statement.json, DIR/evidence.lz4 and prints the stream digest.
"""
import argparse
import base64
import datetime
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


def encode_record(r):
    """windowseal.record.v1: big-endian, -1 lengths for null."""
    topic = r["topic"].encode()
    out = bytearray(b"\x01")
    out += struct.pack(">H", len(topic)) + topic
    out += struct.pack(">iqqB", r["partition"], r["offset"], r["timestamp"], r["ts_type"])
    for blob in (r["key"], r["value"]):
        if blob is None:
            out += struct.pack(">i", -1)
        else:
            out += struct.pack(">i", len(blob)) + blob
    out += struct.pack(">I", len(r["headers"]))
    for name, value in r["headers"]:
        n = name.encode()
        out += struct.pack(">H", len(n)) + n
        if value is None:
            out += struct.pack(">i", -1)
        else:
            out += struct.pack(">i", len(value)) + value
    return bytes(out)


def merkle_root(leaves):
    """RFC 6962 MTH over leaf data (not hashes)."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + merkle_root(leaves[:k]) + merkle_root(leaves[k:])).digest()


def rfc3339_ms(ms):
    t = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
    t += datetime.timedelta(milliseconds=ms)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + ".%03dZ" % (ms % 1000)


def make_records(seed):
    """A window over two topics: null keys/values, headers, a compacted-away offset, no-ts."""
    rnd = random.Random(seed)
    sources = [("orders", 0, 100, 112), ("orders", 1, 7, 12), ("pay\u00e9ments", 0, 0, 4)]
    records = []
    base_ts = 1763781500000 + seed * 1000
    for topic, part, start, until in sources:
        for off in range(start, until):
            if topic == "orders" and part == 0 and off == 105:
                continue  # compacted away: ranges hold the records that exist
            ts_type = rnd.choice([1, 2]) if off != start + 1 else 0
            records.append({
                "topic": topic, "partition": part, "offset": off,
                "timestamp": base_ts + rnd.randrange(0, 60000) if ts_type else -1,
                "ts_type": ts_type,
                "key": None if off % 4 == 0 else b"k-%d" % off,
                "value": None if off % 7 == 3 else bytes(rnd.randrange(256)
                                                         for _ in range(rnd.randrange(0, 200))),
                "headers": [("trace", b"t-%d" % off), ("empty", None)] if off % 3 == 0 else [],
            })
    records.sort(key=lambda r: (r["topic"].encode(), r["partition"], r["offset"]))
    return sources, records


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--key", required=True, help="PKCS#8 PEM written by windowseal keygen")
    ap.add_argument("--out", required=True)
    ap.add_argument("--query-id", default="7d1c2b3a-4e5f-4a6b-8c7d-9e0f1a2b3c4d")
    ap.add_argument("--batch", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    sources, records = make_records(args.seed)
    encodings = [encode_record(r) for r in records]
    stream = b"".join(struct.pack(">I", len(e)) + e for e in encodings)
    stream_digest = hashlib.sha256(stream).hexdigest()
    root = merkle_root(encodings)

    lz4 = subprocess.run(["lz4", "-c", "--no-frame-crc", "-q"], input=stream,
                         stdout=subprocess.PIPE, check=True)
    with open(os.path.join(args.out, "evidence.lz4"), "wb") as f:
        f.write(lz4.stdout)

    with open(args.key, "rb") as f:
        sk = serialization.load_pem_private_key(f.read(), password=None)
    assert isinstance(sk, Ed25519PrivateKey)
    pk_raw = sk.public_key().public_bytes(serialization.Encoding.Raw,
                                          serialization.PublicFormat.Raw)
    keyid = hashlib.sha256(pk_raw).hexdigest()

    window_id = "%s/%d" % (args.query_id, args.batch)
    entry = b"\x01" + struct.pack(">Q", args.batch) + root + bytes.fromhex(stream_digest)
    log_root = hashlib.sha256(b"\x00" + entry).hexdigest()  # a log of one entry
    src_json = []
    for topic, part, start, until in sorted(sources, key=lambda s: (s[0].encode(), s[1])):
        mine = [e for r, e in zip(records, encodings)
                if r["topic"] == topic and r["partition"] == part]
        src_json.append({"topic": topic, "partition": part, "fromOffset": start,
                         "untilOffset": until, "recordCount": len(mine),
                         "bytes": sum(len(e) for e in mine)})
    stamps = [r["timestamp"] for r in records if r["timestamp"] >= 0]
    window = {"type": "micro-batch", "id": window_id, "batchId": args.batch,
              "observedAt": rfc3339_ms(1763781600042), "sources": src_json}
    if stamps:
        window["start"] = rfc3339_ms(min(stamps))
        window["end"] = rfc3339_ms(max(stamps))
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "stream:" + window_id, "digest": {"sha256": stream_digest}}],
        "predicateType": "https://makoto.dev/stream-window/v1",
        "predicate": {
            "makotoLevel": "L2",
            "stream": {"id": args.query_id, "name": "interop-producer",
                       "topics": sorted({s[0] for s in sources}, key=lambda t: t.encode())},
            "window": window,
            "integrity": {
                "merkleTree": {"algorithm": "sha256", "scheme": "rfc6962",
                               "leafEncoding": "windowseal.record.v1",
                               "leafCount": len(encodings), "root": root.hex()},
                "chain": {"chainLength": 1, "logRoot": log_root, "genesisWindowId": window_id},
            },
            "aggregates": {"recordCount": len(encodings),
                           "bytes": sum(len(e) for e in encodings)},
            "collector": {"id": "windowseal:interop", "version": {"windowseal": "python"},
                          "keyid": keyid},
            "verification": {"merkleProofAvailable": True,
                             "evidence": {"name": "%s/%020d.evidence.lz4"
                                          % (args.query_id, args.batch),
                                          "compression": "lz4-frame"}},
        },
    }
    body = json.dumps(statement, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode()
    with open(os.path.join(args.out, "statement.json"), "wb") as f:
        f.write(body)
    sign_envelope(sk, keyid, body, os.path.join(args.out, "envelope.json"))
    print(stream_digest)


def pae(payload_type, body):
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(body), body)


def sign_envelope(sk, keyid, body, path):
    sig = sk.sign(pae(PAYLOAD_TYPE, body))
    env = {"payload": base64.b64encode(body).decode(), "payloadType": PAYLOAD_TYPE,
           "signatures": [{"keyid": keyid, "sig": base64.b64encode(sig).decode()}]}
    with open(path, "w") as f:
        f.write(json.dumps(env, sort_keys=True, separators=(",", ":")))


if __name__ == "__main__":
    sys.exit(main())
