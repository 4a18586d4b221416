#!/usr/bin/python3
"""s3_tool.py — the Kafka feeder and the S3-side checker behind tests/it_s3.sh.

It uses confluent_kafka and botocore only, and shares no code with windowseal.

    s3_tool.py feed --boot B --qid Q --topic T --partition P --from N --to M [--interval S]
        for batch N..M-1: produce 1-9 records to T[P] (offsets read from the delivery reports),
        then post the native notification (SPEC 2.1) of exactly those offsets.
    s3_tool.py compare --endpoint E --bucket B --prefix P --att DIR --qid Q --batches N
        every <prefix><Q>/<batch20>.{evidence.lz4,dsse.json} for batch 0..N-1 is in the bucket
        with the bytes of the file sink's copy, and nothing else is listed under <prefix><Q>/.
    s3_tool.py put --endpoint E --bucket B --key K --data TEXT [--if-none-match]
        a plain PUT through botocore; prints the HTTP status.
    s3_tool.py get --endpoint E --bucket B --key K
        prints the object (or 'absent').

Checks print `ok   - ...` / `FAIL - ...`; exit 1 if any failed. Credentials come from the
AWS_* environment variables, as for windowseal.
"""
import argparse
import json
import os
import random
import sys
import time

FAILS = 0


def ok(msg):
    print("ok   - " + msg, flush=True)


def fail(msg):
    global FAILS
    FAILS += 1
    print("FAIL - " + msg, flush=True)


def batch20(n):
    return "%020d" % n


def s3_client(endpoint, region="us-east-1"):
    import botocore.session
    from botocore.config import Config

    sess = botocore.session.get_session()
    return sess.create_client(
        "s3", endpoint_url=endpoint, region_name=region,
        aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=os.environ.get("AWS_SESSION_TOKEN") or None,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2},
                      connect_timeout=5, read_timeout=10))


def cmd_feed(a):
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": a.boot, "linger.ms": 0, "enable.idempotence": True})

    def produce_sync(topic, **kw):
        box = []
        p.produce(topic, on_delivery=lambda err, m: box.append((err, m)), **kw)
        deadline = time.time() + 15
        while not box and time.time() < deadline:
            p.poll(0.05)
        if not box or box[0][0] is not None:
            raise RuntimeError("produce to %s: %s" % (topic, box[0][0] if box else "timeout"))
        return box[0][1].offset()

    rnd = random.Random(a.qid)
    for b in range(a.from_, a.to):
        offs = []
        for i in range(rnd.randrange(1, 10)):
            value = bytes(rnd.randrange(256) for _ in range(rnd.randrange(0, 300)))
            offs.append(produce_sync(a.topic, partition=a.partition, key=b"k%d" % (i % 3),
                                     value=value, headers=[("i", b"%d" % i)]))
        if offs != list(range(offs[0], offs[0] + len(offs))):
            sys.exit("offsets not contiguous: %s" % offs)
        note = {"queryId": a.qid, "runId": "run-1", "name": "it-s3", "batchId": b,
                "sources": [{"topic": a.topic, "partition": a.partition,
                             "fromOffset": offs[0], "untilOffset": offs[-1] + 1}]}
        produce_sync("windowseal.batches", key=a.qid.encode(), value=json.dumps(note).encode())
        print("posted %s/%d (%d records)" % (a.qid, b, len(offs)), flush=True)
        if a.interval:
            time.sleep(a.interval)
    p.flush(10)
    return 0


def cmd_compare(a):
    c = s3_client(a.endpoint)
    want = set()
    # every window's evidence and envelope, and the query's signed checkpoint (the file sink
    # holds the same checkpoint once the last window is everywhere)
    names = ["%s/%s%s" % (a.qid, batch20(b), suffix)
             for b in range(a.batches) for suffix in (".evidence.lz4", ".dsse.json")]
    names.append("%s/checkpoint" % a.qid)
    for name in names:
        key = a.prefix + name
        want.add(key)
        with open(os.path.join(a.att, name), "rb") as f:
            mine = f.read()
        try:
            theirs = c.get_object(Bucket=a.bucket, Key=key)["Body"].read()
        except c.exceptions.NoSuchKey:
            fail("s3://%s/%s is missing" % (a.bucket, key))
            continue
        if theirs != mine:
            fail("s3://%s/%s: %d bytes differ from the file sink's %d"
                 % (a.bucket, key, len(theirs), len(mine)))
    listed = []
    token = None
    while True:
        kw = {"Bucket": a.bucket, "Prefix": a.prefix + a.qid + "/"}
        if token:
            kw["ContinuationToken"] = token
        r = c.list_objects_v2(**kw)
        listed += [o["Key"] for o in r.get("Contents", [])]
        if not r.get("IsTruncated"):
            break
        token = r["NextContinuationToken"]
    if FAILS == 0:
        ok("%s: %d objects under s3://%s/%s%s/ equal the file sink's bytes"
           % (a.qid[:8], len(want), a.bucket, a.prefix, a.qid))
    if sorted(listed) == sorted(want) and len(listed) == len(set(listed)):
        ok("%s: the listing holds exactly those %d keys, each once" % (a.qid[:8], len(want)))
    else:
        extra = sorted(set(listed) - want)[:5]
        fail("%s: listing has %d keys (want %d); unexpected: %s"
             % (a.qid[:8], len(listed), len(want), extra))
    return 1 if FAILS else 0


def cmd_put(a):
    import botocore.exceptions

    c = s3_client(a.endpoint)

    def add_inm(request, **kw):
        request.headers["If-None-Match"] = "*"

    if a.if_none_match:
        c.meta.events.register("before-sign.s3.PutObject", add_inm)
    try:
        r = c.put_object(Bucket=a.bucket, Key=a.key, Body=a.data.encode())
        print(r["ResponseMetadata"]["HTTPStatusCode"])
    except botocore.exceptions.ClientError as e:
        print(e.response["ResponseMetadata"]["HTTPStatusCode"])
    return 0


def cmd_get(a):
    c = s3_client(a.endpoint)
    try:
        sys.stdout.buffer.write(c.get_object(Bucket=a.bucket, Key=a.key)["Body"].read())
    except c.exceptions.NoSuchKey:
        print("absent")
    return 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("feed")
    f.add_argument("--boot", required=True)
    f.add_argument("--qid", required=True)
    f.add_argument("--topic", required=True)
    f.add_argument("--partition", type=int, default=0)
    f.add_argument("--from", dest="from_", type=int, required=True)
    f.add_argument("--to", type=int, required=True)
    f.add_argument("--interval", type=float, default=0)
    c = sub.add_parser("compare")
    for o in ("--endpoint", "--bucket", "--att", "--qid"):
        c.add_argument(o, required=True)
    c.add_argument("--prefix", default="")
    c.add_argument("--batches", type=int, required=True)
    p = sub.add_parser("put")
    for o in ("--endpoint", "--bucket", "--key", "--data"):
        p.add_argument(o, required=True)
    p.add_argument("--if-none-match", action="store_true")
    g = sub.add_parser("get")
    for o in ("--endpoint", "--bucket", "--key"):
        g.add_argument(o, required=True)
    a = ap.parse_args()
    return {"feed": cmd_feed, "compare": cmd_compare, "put": cmd_put, "get": cmd_get}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
