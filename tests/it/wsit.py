#!/usr/bin/python3
"""wsit.py — the Kafka client and independent checker behind tests/it_engine.sh.

It talks to the broker with confluent_kafka only and shares no code with windowseal: record
encoding (SPEC 3.1), window-stream order and stream digest (3.2), RFC 6962 Merkle root (4),
window log root (5) and the DSSE signature check (7) are written here from the SPEC. Every
expected value is computed from records this script produced and reads back with its own
consumer, never taken from what the engine wrote.

    wsit.py --state FILE CMD [args]

State (what was produced, which windows must exist, which notifications must be dead-lettered)
lives in one JSON file so that the shell script can drive the scenario step by step. Each
check prints `ok   - ...` or `FAIL - ...` lines, which the shell script counts; the exit status
is 1 when any check failed.

Commands:
  init --boot B --qa ID --qb ID --out DIR    start a state file
  batch Q N [--counts a,b,..] [--shape native|spark-obj|spark-str] [--skip] [--gap F]
                                 produce new records for query Q (A or B), then post batch N's
                                 notification (--skip: produce, do not post: a gap)
  dup Q N                        post batch N's notification again, byte for byte
  bad LABEL [--q Q --batch N]    post one notification the engine must dead-letter
  wait [--timeout S]             until every expected envelope and dead letter exists
  check --ws BIN --pub PUB --att DIR    every assertion about windows, topic and DLQ
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
import time

import confluent_kafka as ck
from cryptography.hazmat.primitives import serialization

NOTIF_TOPIC = "windowseal.batches"
DLQ_TOPIC = "windowseal.batches.dlq"
ATT_TOPIC = "windowseal.attestations"
PAYLOAD_TYPE = "application/vnd.in-toto+json"

FAILS = 0


def ok(msg):
    print("ok   - " + msg, flush=True)


def fail(msg):
    global FAILS
    FAILS += 1
    print("FAIL - " + msg, flush=True)


# ---------------------------------------------------------------------------------------------
# SPEC 3, 4, 5 from scratch


def encode_record(r):
    """windowseal.record.v1; r: dict with topic, partition, offset, ts, tstype, key, value,
    headers (list of [name, value|None]), byte strings as bytes."""
    topic = r["topic"].encode()
    out = bytearray(b"\x01")
    out += struct.pack(">H", len(topic)) + topic
    out += struct.pack(">iqqB", r["partition"], r["offset"], r["ts"], r["tstype"])
    for blob in (r["key"], r["value"]):
        out += struct.pack(">i", -1) if blob is None else struct.pack(">i", len(blob)) + blob
    out += struct.pack(">I", len(r["headers"]))
    for name, value in r["headers"]:
        n = name.encode()
        out += struct.pack(">H", len(n)) + n
        out += struct.pack(">i", -1) if value is None else struct.pack(">i", len(value)) + value
    return bytes(out)


def mth(leaves):
    """RFC 6962 Merkle Tree Hash over leaf inputs."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:])).digest()


def log_entry(batch, root, digest):
    return b"\x01" + struct.pack(">Q", batch) + root + digest


def rfc3339_ms(ms):
    t = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
    t += datetime.timedelta(milliseconds=ms)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + ".%03dZ" % (ms % 1000)


def pae(ptype, body):
    t = ptype.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(body), body)


def b64d(s):
    s = s.replace("-", "+").replace("_", "/")
    return base64.b64decode(s + "=" * (-len(s) % 4))


# Self-test of mth against SPEC 4's conformance vectors (n=1, 3 and 8), so that a bug here
# cannot make the test agree with a matching bug in the engine.
_VEC = [bytes.fromhex(h) for h in ("", "00", "10", "2021", "3031", "40414243",
                                   "5051525354555657", "606162636465666768696a6b6c6d6e6f")]
assert mth(_VEC[:1]).hex() == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
assert mth(_VEC[:3]).hex() == "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77"
assert mth(_VEC[:8]).hex() == "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"

# ---------------------------------------------------------------------------------------------
# State


def h(b):
    return None if b is None else b.hex()


def unh(s):
    return None if s is None else bytes.fromhex(s)


def load(path):
    with open(path) as f:
        return json.load(f)


def save(path, st):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(st, f, indent=1)
    os.replace(tmp, path)


def producer(st):
    return ck.Producer({"bootstrap.servers": st["boot"], "linger.ms": 0,
                        "message.max.bytes": 2000000})


def consumer(st):
    return ck.Consumer({"bootstrap.servers": st["boot"], "group.id": "it-engine-reader",
                        "enable.auto.commit": False, "enable.partition.eof": True,
                        "auto.offset.reset": "error", "fetch.wait.max.ms": 10})


def produce_sync(p, topic, **kw):
    """Produce one message and wait for its delivery report: (partition, offset, timestamp)."""
    box = []
    p.produce(topic, on_delivery=lambda err, m: box.append((err, m)), **kw)
    deadline = time.time() + 15
    while not box and time.time() < deadline:
        p.poll(0.05)
    if not box or box[0][0] is not None:
        raise RuntimeError("produce to %s failed: %s" % (topic, box[0][0] if box else "timeout"))
    m = box[0][1]
    return m.partition(), m.offset(), m.timestamp()[1]


def read_partition(c, topic, part, timeout=15.0):
    """Every message of topic[part] from the low to the high watermark, as dicts."""
    tp = ck.TopicPartition(topic, part)
    lo, hi = c.get_watermark_offsets(tp, timeout=5)
    out = []
    if hi <= lo:
        return out, lo, hi
    c.assign([ck.TopicPartition(topic, part, lo)])
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            m = c.poll(0.2)
            if m is None:
                continue
            if m.error():
                if m.error().code() == ck.KafkaError._PARTITION_EOF and out and \
                        out[-1]["offset"] >= hi - 1:
                    break
                continue
            tstype, ts = m.timestamp()
            out.append({"topic": m.topic(), "partition": m.partition(), "offset": m.offset(),
                        "ts": ts if tstype != ck.TIMESTAMP_NOT_AVAILABLE else -1,
                        "tstype": tstype, "key": m.key(), "value": m.value(),
                        "headers": [list(x) for x in (m.headers() or [])]})
            if m.offset() >= hi - 1:
                break
        else:
            raise RuntimeError("reading %s[%d] %d..%d timed out" % (topic, part, lo, hi))
    finally:
        c.unassign()
    return out, lo, hi


def read_topic(c, topic):
    md = c.list_topics(topic, timeout=5)
    msgs = []
    for p in sorted(md.topics[topic].partitions):
        msgs += read_partition(c, topic, p)[0]
    return msgs


# ---------------------------------------------------------------------------------------------
# Producing data and notifications

QUERY_PLANS = {
    # query A: native foreachBatch notifications, three partitions of `orders`, with outputs
    "A": {"topics": [["orders", 0], ["orders", 1], ["orders", 2]], "notif_partition": 0,
          "name": "orders-to-iceberg"},
    # query B: Spark progress JSON over `clicks` (two partitions) and `Zclicks` ("Z" < "c" in
    # bytes: window-stream order is by topic bytes, not by a case-insensitive collation)
    "B": {"topics": [["clicks", 0], ["clicks", 1], ["Zclicks", 0]], "notif_partition": 1,
          "name": "clicks-per-minute"},
}


def gen_record(rnd, n):
    """Keys, null keys, empty keys, binary; values likewise; headers with null values."""
    key = rnd.choice([b"user-%d" % rnd.randrange(1000), None, b"",
                      bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 24)))])
    value = rnd.choice([
        json.dumps({"n": n, "amount": rnd.randrange(10 ** 6), "note": "caf\u00e9"}).encode(),
        None, b"", bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 600)))])
    headers = rnd.choice([None, [],
                          [("trace", bytes(rnd.randrange(256) for _ in range(8))),
                           ("nullable", None), ("trace", b"")],
                          [("cl\u00e9", b"\x00\xff"), ("empty", b"")]])
    kw = {"key": key, "value": value}
    if headers is not None:
        kw["headers"] = headers
    if rnd.random() < 0.2:
        kw["timestamp"] = 1500000000000 + rnd.randrange(10 ** 9)  # an explicit, old time
    return kw


def cmd_init(a):
    st = {"boot": a.boot, "out": a.out, "queries": {}, "produced": {}, "windows": [],
          "skipped": [], "bad": [], "dups": [], "env_sha": {}}
    for q, qid in (("A", a.qa), ("B", a.qb)):
        plan = QUERY_PLANS[q]
        st["queries"][q] = {"id": qid, "topics": plan["topics"], "name": plan["name"],
                            "notif_partition": plan["notif_partition"],
                            "cursor": {"%s/%d" % (t, p): 0 for t, p in plan["topics"]}}
    os.makedirs(os.path.join(a.out, "warehouse"), exist_ok=True)
    save(a.state, st)
    ok("state initialised: query A = %s, query B = %s" % (a.qa, a.qb))


def spark_progress(st, q, batch, ranges, as_string):
    qs = st["queries"][q]
    start, end = {}, {}
    for t, p, f, u in ranges:
        start.setdefault(t, {})[str(p)] = f
        end.setdefault(t, {})[str(p)] = u
    # partition keys out of order, as Spark writes them from a hash map
    start = {t: dict(sorted(m.items(), key=lambda kv: -int(kv[0]))) for t, m in start.items()}
    end = {t: dict(sorted(m.items(), key=lambda kv: -int(kv[0]))) for t, m in end.items()}
    if as_string:
        start, end = json.dumps(start), json.dumps(end)
    nrows = sum(u - f for _, _, f, u in ranges)
    rate_desc = "RateStreamV2[rowsPerSecond=5, rampUpTimeSeconds=0, numPartitions=default"
    return {
        "id": qs["id"], "runId": "0e4c5d6a-1111-4222-8333-%012d" % batch, "name": qs["name"],
        "timestamp": "2026-01-01T00:00:%02d.000Z" % (batch % 60), "batchId": batch,
        "numInputRows": nrows, "inputRowsPerSecond": 0.0, "processedRowsPerSecond": 0.0,
        "durationMs": {"addBatch": 12, "triggerExecution": 30},
        "stateOperators": [],
        "sources": [
            {"description": "KafkaV2[Subscribe[Zclicks,clicks]]", "startOffset": start,
             "endOffset": end, "latestOffset": end, "numInputRows": nrows,
             "inputRowsPerSecond": 0.0, "processedRowsPerSecond": 0.0,
             "metrics": {"avgOffsetsBehindLatest": "0.0"}},
            {"description": rate_desc, "startOffset": batch * 5, "endOffset": batch * 5 + 5,
             "latestOffset": None, "numInputRows": 5},
        ],
        "sink": {"description": "ForeachBatchSink", "numOutputRows": -1},
    }, [rate_desc]


def cmd_batch(a):
    st = load(a.state)
    q = a.q
    qs = st["queries"][q]
    rnd = random.Random("%s/%d/%s" % (q, a.n, a.seed))
    counts = [int(x) for x in a.counts.split(",")] if a.counts else \
        [rnd.randrange(0, 7) for _ in qs["topics"]]
    p = producer(st)
    ranges = []
    for (topic, part), cnt in zip(qs["topics"], counts):
        cur = "%s/%d" % (topic, part)
        last = None
        for i in range(cnt):
            kw = gen_record(rnd, i)
            _, off, _ = produce_sync(p, topic, partition=part, **kw)
            hdrs = [[n, v] for n, v in kw.get("headers") or []]
            st["produced"].setdefault(cur, {})[str(off)] = {
                "key": h(kw["key"]), "value": h(kw["value"]),
                "headers": [[n, h(v)] for n, v in hdrs], "ts": kw.get("timestamp")}
            if last is not None and off != last + 1:
                fail("%s: offsets not contiguous (%d after %d)" % (cur, off, last))
            last = off
        frm = qs["cursor"][cur]
        until = last + 1 if last is not None else frm
        if last is not None and last - cnt + 1 != frm:
            fail("%s: first offset %d, expected %d (someone else writes here?)"
                 % (cur, last - cnt + 1, frm))
        qs["cursor"][cur] = until
        ranges.append([topic, part, frm, until])
    wid = "%s/%d" % (qs["id"], a.n)
    outputs = []
    ignored = []
    if a.shape == "native":
        path = os.path.join(st["out"], "warehouse", "%s-%05d.parquet" % (q, a.n))
        with open(path, "wb") as f:
            f.write(("rows of window %s\n" % wid).encode() * (a.n + 1))
        outputs = [{"name": "iceberg.ods.orders", "snapshotId": str(5937117119577207000 + a.n),
                    "files": [path]}]
        notif = {"queryId": qs["id"], "runId": "5a1d9c0e-0000-4000-8000-%012d" % a.n,
                 "name": qs["name"], "batchId": a.n,
                 "sources": [{"topic": t, "partition": pp, "fromOffset": f, "untilOffset": u}
                             for t, pp, f, u in ranges],
                 "outputs": outputs}
    else:
        notif, ignored = spark_progress(st, q, a.n, ranges, a.shape == "spark-str")
    value = json.dumps(notif)
    rec = {"q": q, "qid": qs["id"], "batch": a.n, "wid": wid, "ranges": ranges,
           "ignored": ignored, "outputs": outputs, "value": value, "shape": a.shape,
           "name": qs["name"], "run_id": notif.get("runId"),
           "gap": [a.gap, a.n] if a.gap is not None else None}
    if a.skip:
        st["skipped"].append(rec)
        save(a.state, st)
        ok("batch %s produced (%s records) and deliberately not posted" % (wid, sum(counts)))
        return
    part, off, _ = produce_sync(p, NOTIF_TOPIC, key=qs["id"].encode(), value=value.encode(),
                                partition=qs["notif_partition"])
    rec.update({"notif_partition": part, "notif_offset": off})
    st["windows"].append(rec)
    save(a.state, st)
    ok("batch %s posted (%s shape, %d records, notification %s[%d]@%d)"
       % (wid, a.shape, sum(counts), NOTIF_TOPIC, part, off))


def find_window(st, q, n):
    for w in st["windows"] + st["skipped"]:
        if w["q"] == q and w["batch"] == n:
            return w
    raise SystemExit("no batch %s/%d in the state" % (q, n))


def cmd_dup(a):
    """Post batch N again: byte for byte, or (--rerun) as Spark re-running it after a failure
    posts it: same batch id and offsets, new runId, other JSON bytes (sources reordered, a
    string offset map given as an object)."""
    st = load(a.state)
    w = find_window(st, a.q, a.n)
    p = producer(st)
    value = w["value"]
    if a.rerun:
        notif = json.loads(value)
        notif["runId"] = "ffffffff-0000-4000-8000-000000000000"
        if "queryId" in notif:
            notif["sources"].reverse()
        else:
            for src in notif["sources"]:
                for k in ("startOffset", "endOffset"):
                    if isinstance(src.get(k), str):
                        src[k] = json.loads(src[k])
        value = json.dumps(notif, indent=1)
    part, off, _ = produce_sync(p, NOTIF_TOPIC, key=w["qid"].encode(), value=value.encode(),
                                partition=w["notif_partition"])
    st["dups"].append({"wid": w["wid"], "offset": off, "partition": part, "value": value})
    save(a.state, st)
    ok("%s of %s posted (%s[%d]@%d)" % ("re-run (new runId, other bytes)" if a.rerun else
                                        "byte-identical duplicate", w["wid"], NOTIF_TOPIC, part,
                                        off))


def fill_retention_topic(st, p, c):
    """~7 MiB of 100 KB values into a fresh partition: the mock keeps at most 5 MiB, so the
    low watermark moves past offset 0."""
    topic = "it-retention"
    blob = bytes(random.Random(7).randrange(256) for _ in range(100 * 1024))
    box = []
    for i in range(70):
        while True:
            try:
                p.produce(topic, partition=0, value=blob[i:] + blob[:i],
                          on_delivery=lambda e, m: box.append(e))
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    p.flush(30)
    errs = [e for e in box if e is not None]
    lo, hi = c.get_watermark_offsets(ck.TopicPartition(topic, 0), timeout=5)
    if len(box) != 70 or errs:
        fail("producing 7 MiB into %s[0]: %d reports, errors %s" % (topic, len(box), errs[:3]))
    elif lo > 0:
        ok("%s[0] after 7 MiB: low watermark %d, high %d (older records dropped)" % (topic, lo, hi))
    else:
        fail("%s[0] low watermark still 0 after 7 MiB (high %d): cannot test retention"
             % (topic, hi))
    return topic, hi


def cmd_bad(a):
    st = load(a.state)
    p = producer(st)
    label = a.label
    key = "it-%s" % label
    reason = None
    notif_part = 0
    if label == "malformed":
        value = '{"queryId": "it-malformed", "batchId": 0, "sources": [{"topic": "orders",'
        reason = "json"
    elif label == "unknown-shape":
        value = json.dumps({"hello": "world", "batch": 3})
        reason = "shape"
    elif label == "inverted":
        value = json.dumps({"queryId": key, "batchId": 0, "sources": [
            {"topic": "orders", "partition": 0, "fromOffset": 5, "untilOffset": 2}]})
        reason = "inverted range"
    elif label == "negative":
        value = json.dumps({"queryId": key, "batchId": 0, "sources": [
            {"topic": "orders", "partition": 0, "fromOffset": -1, "untilOffset": 2}]})
        reason = "negative offset"
    elif label == "unsafe-id":
        key = "../x"
        value = json.dumps({"queryId": "../x", "batchId": 0, "sources": [
            {"topic": "orders", "partition": 0, "fromOffset": 0, "untilOffset": 1}]})
        reason = "unsafe query id"
    elif label == "spark-null-start":
        value = json.dumps({"id": key, "runId": "r", "batchId": 0, "sources": [
            {"description": "KafkaV2[Subscribe[orders]]", "startOffset": None,
             "endOffset": {"orders": {"0": 1}}}]})
        reason = "startOffset null"
    elif label == "not-retained":
        c = consumer(st)
        topic, hi = fill_retention_topic(st, p, c)
        c.close()
        value = json.dumps({"queryId": key, "batchId": 0, "sources": [
            {"topic": topic, "partition": 0, "fromOffset": 0, "untilOffset": hi}]})
        reason = "no longer retained"
    elif label == "unknown-partition":
        # The mock broker auto-creates any topic a client names in a Metadata request (even a
        # consumer's), so a notification for a never-produced topic finds an empty topic and
        # waits for records forever (retriable "range not complete"), which is the right answer
        # for a broker that creates topics. An honest "unknown" is a partition the topic does
        # not have: `orders` has 4 (the mock's default), partition 9 does not exist.
        value = json.dumps({"queryId": key, "batchId": 0, "sources": [
            {"topic": "orders", "partition": 9, "fromOffset": 0, "untilOffset": 1}]})
        reason = "unknown"
    elif label == "conflict":
        w = find_window(st, a.q, a.batch)
        notif = json.loads(w["value"])
        key = w["qid"]
        notif_part = w["notif_partition"]
        if "queryId" in notif:
            notif["sources"].append({"topic": "orders", "partition": 3, "fromOffset": 0,
                                     "untilOffset": 0})
        else:
            src = notif["sources"][0]
            end = src["endOffset"]
            end = json.loads(end) if isinstance(end, str) else end
            end["Zclicks"]["0"] += 1
            src["endOffset"] = json.dumps(end) if isinstance(src["endOffset"], str) else end
        value = json.dumps(notif)
        reason = "conflict"
    elif label == "late":
        w = find_window(st, a.q, a.batch)
        key, value, notif_part = w["qid"], w["value"], QUERY_PLANS[a.q]["notif_partition"]
        reason = "recorded as a gap"
    else:
        raise SystemExit("unknown bad label " + label)
    part, off, _ = produce_sync(p, NOTIF_TOPIC, key=key.encode(), value=value.encode(),
                                partition=notif_part)
    st["bad"].append({"label": label, "key": key, "value": value, "reason": reason,
                      "partition": part, "offset": off})
    save(a.state, st)
    ok("bad notification '%s' posted (%s[%d]@%d)" % (label, NOTIF_TOPIC, part, off))


# ---------------------------------------------------------------------------------------------
# Waiting and checking


def env_path(att, qid, batch, suffix):
    return os.path.join(att, qid, "%020d%s" % (batch, suffix))


def dlq_by_value(c):
    out = {}
    for m in read_topic(c, DLQ_TOPIC):
        out.setdefault(m["value"], []).append(m)
    return out


def cmd_wait(a):
    st = load(a.state)
    c = consumer(st)
    deadline = time.time() + a.timeout
    start = time.time()
    while True:
        missing = [w["wid"] for w in st["windows"]
                   if not os.path.exists(env_path(a.att, w["qid"], w["batch"], ".dsse.json"))]
        dl = dlq_by_value(c) if st["bad"] else {}
        missing += ["dead letter '%s'" % b["label"] for b in st["bad"]
                    if b["value"].encode() not in dl]
        if not missing:
            ok("all %d windows attested and %d dead letters present after %.1f s"
               % (len(st["windows"]), len(st["bad"]), time.time() - start))
            break
        if time.time() > deadline:
            fail("after %d s still missing: %s" % (a.timeout, ", ".join(missing[:8])))
            break
        time.sleep(0.3)
    c.close()
    sys.exit(1 if FAILS else 0)


def keyid_of(pub_path):
    with open(pub_path, "rb") as f:
        pk = serialization.load_pem_public_key(f.read())
    raw = pk.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return pk, hashlib.sha256(raw).hexdigest()


def window_records(st, cache, c, w):
    """The window's records as read back by this script, in SPEC 3.2 order."""
    recs = []
    for t, p, f, u in w["ranges"]:
        if (t, p) not in cache:
            cache[(t, p)] = {m["offset"]: m for m in read_partition(c, t, p)[0]}
        for off in range(f, u):
            m = cache[(t, p)].get(off)
            if m is None:
                raise RuntimeError("record %s[%d]@%d not readable" % (t, p, off))
            recs.append(m)
    recs.sort(key=lambda r: (r["topic"].encode(), r["partition"], r["offset"]))
    return recs


def expect_eq(errs, what, got, want):
    if got != want:
        errs.append("%s: got %r, want %r" % (what, got, want))


def check_window(a, st, w, rec_list, notif_ts, chain, pk, keyid, attested):
    """All checks of one window; returns a list of problems."""
    errs = []
    base = env_path(a.att, w["qid"], w["batch"], "")
    with open(base + ".dsse.json", "rb") as f:
        env_bytes = f.read()
    env = json.loads(env_bytes)
    payload = b64d(env["payload"])
    expect_eq(errs, "payloadType", env.get("payloadType"), PAYLOAD_TYPE)
    sigs = env.get("signatures") or [{}]
    expect_eq(errs, "signatures[0].keyid", sigs[0].get("keyid"), keyid)
    try:
        pk.verify(b64d(sigs[0]["sig"]), pae(PAYLOAD_TYPE, payload))
    except Exception as e:  # noqa: BLE001 - any failure is a failed check
        errs.append("Ed25519 signature over the PAE does not verify (%s)" % type(e).__name__)
    stmt = json.loads(payload)
    pred = stmt.get("predicate", {})
    win = pred.get("window", {})
    integ = pred.get("integrity", {})

    # SPEC 3: my encoding, my ordering, my digest and root
    encs = [encode_record(r) for r in rec_list]
    stream = b"".join(struct.pack(">I", len(e)) + e for e in encs)
    digest = hashlib.sha256(stream).digest()
    root = mth(encs)
    subj = stmt.get("subject") or [{}]
    expect_eq(errs, "subject[0]", subj[0], {"name": "stream:" + w["wid"],
                                             "digest": {"sha256": digest.hex()}})
    tree = integ.get("merkleTree", {})
    expect_eq(errs, "merkleTree", tree, {"algorithm": "sha256", "scheme": "rfc6962",
                                          "leafEncoding": "windowseal.record.v1",
                                          "leafCount": len(encs), "root": root.hex()})
    expect_eq(errs, "aggregates", pred.get("aggregates"),
              {"recordCount": len(encs), "bytes": sum(len(e) for e in encs)})
    # evidence: lz4 -dc must give exactly my window stream
    dec = subprocess.run(["lz4", "-dc", base + ".evidence.lz4"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    if dec.returncode != 0 or dec.stdout != stream:
        errs.append("evidence: lz4 -dc gives %d bytes (exit %d), my window stream is %d bytes%s"
                    % (len(dec.stdout), dec.returncode, len(stream),
                       "" if dec.returncode else " and they differ"))

    # window
    srcs = []
    for t, p, f, u in sorted(w["ranges"], key=lambda r: (r[0].encode(), r[1])):
        mine = [e for e, r in zip(encs, rec_list) if r["topic"] == t and r["partition"] == p]
        srcs.append({"topic": t, "partition": p, "fromOffset": f, "untilOffset": u,
                     "recordCount": len(mine), "bytes": sum(len(e) for e in mine)})
    expect_eq(errs, "window.sources", win.get("sources"), srcs)
    expect_eq(errs, "window.id", win.get("id"), w["wid"])
    expect_eq(errs, "window.batchId", win.get("batchId"), w["batch"])
    expect_eq(errs, "window.type", win.get("type"), "micro-batch")
    expect_eq(errs, "window.observedAt", win.get("observedAt"), rfc3339_ms(notif_ts))
    tss = [r["ts"] for r in rec_list if r["ts"] >= 0]
    expect_eq(errs, "window.start", win.get("start"), rfc3339_ms(min(tss)) if tss else None)
    expect_eq(errs, "window.end", win.get("end"), rfc3339_ms(max(tss)) if tss else None)
    expect_eq(errs, "window.ignoredSources", win.get("ignoredSources"), w["ignored"] or None)
    expect_eq(errs, "stream.id", pred.get("stream", {}).get("id"), w["qid"])
    expect_eq(errs, "stream.name", pred.get("stream", {}).get("name"), w["name"])
    expect_eq(errs, "stream.runId", pred.get("stream", {}).get("runId"), w["run_id"])
    expect_eq(errs, "stream.topics", pred.get("stream", {}).get("topics"),
              sorted({t for t, _, _, _ in w["ranges"]}, key=lambda s: s.encode()))
    expect_eq(errs, "collector.keyid", pred.get("collector", {}).get("keyid"), keyid)
    # outputs: files the test wrote itself
    want_subj = [subj[0]]
    for o in w["outputs"]:
        for path in o["files"]:
            with open(path, "rb") as f:
                want_subj.append({"name": path, "digest": {"sha256":
                                                           hashlib.sha256(f.read()).hexdigest()}})
    expect_eq(errs, "subject[1..]", subj[1:], want_subj[1:])
    if w["outputs"]:
        outs = pred.get("outputs") or [{}]
        files = outs[0].get("files") or [{}]
        expect_eq(errs, "outputs[0].name", outs[0].get("name"), w["outputs"][0]["name"])
        expect_eq(errs, "outputs[0].snapshotId", outs[0].get("snapshotId"),
                  w["outputs"][0]["snapshotId"])
        expect_eq(errs, "outputs[0].files[0].sha256", files[0].get("sha256"),
                  want_subj[1]["digest"]["sha256"])
        expect_eq(errs, "outputs[0].files[0].bytes", files[0].get("bytes"),
                  os.path.getsize(w["outputs"][0]["files"][0]))

    # chain (SPEC 5, 6): against this script's own replay of the query's window log
    chain["leaves"].append(log_entry(w["batch"], root, digest))
    prev = chain.get("prev")
    want_chain = {"chainLength": len(chain["leaves"]), "logRoot": mth(chain["leaves"]).hex(),
                  "genesisWindowId": chain.setdefault("genesis", w["wid"])}
    if prev:
        want_chain.update({"previousWindowId": prev["wid"], "previousMerkleRoot": prev["root"],
                           "previousAttestationDigest": prev["stmt_digest"]})
        expect_eq(errs, "previousWindow", integ.get("previousWindow"),
                  {"windowId": prev["wid"], "merkleRoot": prev["root"],
                   "attestationDigest": prev["stmt_digest"]})
    elif "previousWindow" in integ:
        errs.append("previousWindow present on the first window of the chain")
    expect_eq(errs, "chain", integ.get("chain"), want_chain)
    want_gaps = [{"fromBatchId": w["gap"][0], "untilBatchId": w["gap"][1]}] if w["gap"] else None
    expect_eq(errs, "gaps", integ.get("gaps"), want_gaps)
    chain["prev"] = {"wid": w["wid"], "root": root.hex(),
                     "stmt_digest": hashlib.sha256(payload).hexdigest()}

    # once written, never different
    sha = hashlib.sha256(env_bytes).hexdigest()
    old = st["env_sha"].get(w["wid"])
    if old and old != sha:
        errs.append("envelope changed since the last check (%s -> %s)" % (old[:12], sha[:12]))
    st["env_sha"][w["wid"]] = sha

    # the attestations topic holds the same bytes, with the headers SPEC 9 names
    msgs = attested.get(w["wid"], [])
    if not msgs:
        errs.append("not on %s" % ATT_TOPIC)
    for m in msgs:
        hd = {n: v for n, v in m["headers"]}
        if m["value"] != env_bytes:
            errs.append("%s message at %d differs from the file sink's envelope"
                        % (ATT_TOPIC, m["offset"]))
        if m["key"] != w["qid"].encode():
            errs.append("%s message key %r is not the query id" % (ATT_TOPIC, m["key"]))
        if hd.get("windowseal.batch-id") != str(w["batch"]).encode():
            errs.append("header windowseal.batch-id = %r" % hd.get("windowseal.batch-id"))

    # windowseal's own verifier
    v = subprocess.run([a.ws, "verify", base + ".dsse.json", "--pubkey", a.pub, "--evidence",
                        base + ".evidence.lz4"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if v.returncode != 0:
        errs.append("windowseal verify --evidence exit %d: %s"
                    % (v.returncode, v.stdout.decode(errors="replace").strip()[:300]))
    return errs, len(encs), len(msgs)


def cmd_check(a):
    st = load(a.state)
    c = consumer(st)
    pk, keyid = keyid_of(a.pub)
    cache = {}

    # 1. my consumer reads back exactly what my producer wrote
    bad_rb = 0
    total = 0
    for cur, offs in st["produced"].items():
        t, p = cur.rsplit("/", 1)
        cache[(t, int(p))] = {m["offset"]: m for m in read_partition(c, t, int(p))[0]}
        for off, r in offs.items():
            m = cache[(t, int(p))].get(int(off))
            total += 1
            if m is None or m["key"] != unh(r["key"]) or m["value"] != unh(r["value"]) or \
                    m["headers"] != [[n, unh(v)] for n, v in r["headers"]] or \
                    (r["ts"] is not None and m["ts"] != r["ts"]) or m["tstype"] != 1:
                bad_rb += 1
    if bad_rb:
        fail("%d of %d produced records read back differently" % (bad_rb, total))
    else:
        ok("all %d produced records read back identically (keys, values, headers, timestamps)"
           % total)

    # 2. the attestations topic, by window id
    attested = {}
    for m in read_topic(c, ATT_TOPIC):
        hd = {n: v for n, v in m["headers"]}
        wid = (hd.get("windowseal.window-id") or b"").decode(errors="replace")
        attested.setdefault(wid, []).append(m)
    expected = {w["wid"] for w in st["windows"]}
    extra = sorted(set(attested) - expected)
    if extra:
        fail("%s has windows nobody posted (or that must not exist): %s" % (ATT_TOPIC, extra))
    else:
        ok("%s: %d messages, every window id one that was posted"
           % (ATT_TOPIC, sum(len(v) for v in attested.values())))

    # 3. per window, per query in attestation (batch) order. observedAt is the notification's
    # Kafka timestamp as stored, read back here (delivery reports from the mock broker carry a
    # placeholder timestamp, 1234, not the stored one)
    notif_ts = {(m["partition"], m["offset"]): m["ts"] for m in read_topic(c, NOTIF_TOPIC)}
    chains = {}
    for w in sorted(st["windows"], key=lambda w: (w["q"], w["batch"])):
        try:
            recs = window_records(st, cache, c, w)
            ts = notif_ts[(w["notif_partition"], w["notif_offset"])]
            errs, n, nmsg = check_window(a, st, w, recs, ts,
                                         chains.setdefault(w["q"], {"leaves": []}), pk, keyid,
                                         attested)
        except (OSError, ValueError, KeyError, RuntimeError) as e:
            errs, n, nmsg = ["cannot check: %s: %s" % (type(e).__name__, e)], 0, 0
        if errs:
            for e in errs:
                fail("window %s: %s" % (w["wid"], e))
        else:
            ok("window %s: %d records; stream digest, Merkle root, sources, chain%s, "
               "signature, evidence match my recomputation; on the topic (%dx, same bytes); "
               "windowseal verify --evidence exit 0"
               % (w["wid"], n, " with gap %s" % w["gap"] if w["gap"] else "", nmsg))

    # 4. nothing else in the file sink
    want = {}
    for w in st["windows"]:
        want.setdefault(w["qid"], set()).update(
            {"%020d.dsse.json" % w["batch"], "%020d.evidence.lz4" % w["batch"], "checkpoint"})
    have = {d: set(os.listdir(os.path.join(a.att, d))) for d in os.listdir(a.att)
            if os.path.isdir(os.path.join(a.att, d))}
    if have != want:
        diff = ["%s: extra %s missing %s" % (q, sorted(have.get(q, set()) - want.get(q, set())),
                                            sorted(want.get(q, set()) - have.get(q, set())))
                for q in sorted(set(have) | set(want)) if have.get(q) != want.get(q)]
        fail("file sink holds other objects than one envelope + evidence per posted window: "
             + "; ".join(diff))
    else:
        ok("file sink: exactly one envelope and one evidence per window, one checkpoint per query "
           "(%d windows, %d queries)"
           % (len(st["windows"]), len(want)))

    # 5. dead letters: every bad notification, with its reason; no valid one
    dl = dlq_by_value(c)
    for b in st["bad"]:
        ms = dl.get(b["value"].encode())
        if not ms:
            fail("dead letter '%s' not on %s" % (b["label"], DLQ_TOPIC))
            continue
        hd = {n: v for n, v in ms[0]["headers"]}
        reason = (hd.get("windowseal.reason") or b"").decode(errors="replace")
        srcoff = (hd.get("windowseal.source-offset") or b"").decode()
        if b["reason"].lower() not in reason.lower():
            fail("dead letter '%s': reason %r does not mention %r" % (b["label"], reason,
                                                                     b["reason"]))
        elif ms[0]["key"] != b["key"].encode() or srcoff != str(b["offset"]):
            fail("dead letter '%s': key %r / source offset %r, posted %r at %d"
                 % (b["label"], ms[0]["key"], srcoff, b["key"], b["offset"]))
        else:
            ok("dead letter '%s' (%dx): reason \"%s\"" % (b["label"], len(ms), reason[:110]))
    valid = {w["value"].encode() for w in st["windows"]}
    valid |= {d["value"].encode() for d in st["dups"]}
    wrong = [v for v in dl if v in valid]
    bad_vals = {b["value"].encode() for b in st["bad"]}
    unknown = [v for v in dl if v not in bad_vals and v not in valid]
    if wrong:
        fail("%d valid notifications (or their duplicates) were dead-lettered" % len(wrong))
    elif unknown:
        fail("%d unexpected dead letters: %r" % (len(unknown), [v[:80] for v in unknown]))
    else:
        ok("%s holds exactly the %d bad notifications (duplicates of attested batches: none)"
           % (DLQ_TOPIC, len(st["bad"])))
    c.close()
    save(a.state, st)
    sys.exit(1 if FAILS else 0)


def cmd_link(a):
    """Window N2 of query Q continues window N1: the link across a restart or a failover."""
    st = load(a.state)
    qid = st["queries"][a.q]["id"]
    stmts = []
    for n in (a.n1, a.n2):
        with open(env_path(a.att, qid, n, ".dsse.json"), "rb") as f:
            payload = b64d(json.load(f)["payload"])
        stmts.append((payload, json.loads(payload)["predicate"]["integrity"]))
    (p1, i1), (_, i2) = stmts
    want = {"windowId": "%s/%d" % (qid, a.n1), "merkleRoot": i1["merkleTree"]["root"],
            "attestationDigest": hashlib.sha256(p1).hexdigest()}
    if i2.get("previousWindow") != want:
        fail("%s/%d previousWindow %r, want %r" % (qid, a.n2, i2.get("previousWindow"), want))
    elif i2["chain"]["chainLength"] != i1["chain"]["chainLength"] + 1 or \
            i2["chain"]["genesisWindowId"] != i1["chain"]["genesisWindowId"]:
        fail("%s/%d chainLength %d / genesis %s after %s/%d's %d / %s"
             % (qid, a.n2, i2["chain"]["chainLength"], i2["chain"]["genesisWindowId"], qid, a.n1,
                i1["chain"]["chainLength"], i1["chain"]["genesisWindowId"]))
    else:
        ok("%s: window %d continues window %d (%s): previousWindow names it with its root and "
           "statement digest, chainLength %d -> %d" % (qid, a.n2, a.n1, a.why, i1["chain"]["chainLength"],
                                                       i2["chain"]["chainLength"]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--state", required=True)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("init")
    s.add_argument("--boot", required=True)
    s.add_argument("--qa", required=True)
    s.add_argument("--qb", required=True)
    s.add_argument("--out", required=True)
    s = sub.add_parser("batch")
    s.add_argument("q", choices=["A", "B"])
    s.add_argument("n", type=int)
    s.add_argument("--counts")
    s.add_argument("--shape", default="native", choices=["native", "spark-obj", "spark-str"])
    s.add_argument("--skip", action="store_true")
    s.add_argument("--gap", type=int)
    s.add_argument("--seed", default="1")
    s = sub.add_parser("dup")
    s.add_argument("q", choices=["A", "B"])
    s.add_argument("n", type=int)
    s.add_argument("--rerun", action="store_true")
    s = sub.add_parser("bad")
    s.add_argument("label")
    s.add_argument("--q", choices=["A", "B"])
    s.add_argument("--batch", type=int)
    s = sub.add_parser("link")
    s.add_argument("q", choices=["A", "B"])
    s.add_argument("n1", type=int)
    s.add_argument("n2", type=int)
    s.add_argument("--att", required=True)
    s.add_argument("--why", default="")
    for name in ("wait", "check"):
        s = sub.add_parser(name)
        s.add_argument("--att", required=True)
        s.add_argument("--timeout", type=float, default=30)
        s.add_argument("--ws")
        s.add_argument("--pub")
    a = ap.parse_args()
    {"init": cmd_init, "batch": cmd_batch, "dup": cmd_dup, "bad": cmd_bad, "wait": cmd_wait,
     "check": cmd_check, "link": cmd_link}[a.cmd](a)
    sys.exit(1 if FAILS else 0)


if __name__ == "__main__":
    main()
