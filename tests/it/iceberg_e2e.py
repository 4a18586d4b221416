#!/usr/bin/python3
"""End-to-end Iceberg outputs through the engine (tests/it_iceberg.sh).

    iceberg_e2e.py notify --boot B --fixture DIR     post one window per chosen fixture case
    iceberg_e2e.py check  --att ATT --fixture DIR    check every attested window against it

The tables and the loopback REST catalog are tests/it/iceberg_catalog.py's (built from the
Iceberg table spec with python3-avro, checked with avrocat); DIR/expected.json holds, per case,
the exact `outputs[i].iceberg` object a resolver must produce, computed there with hashlib.
Here those cases go through the whole engine: a notification on Kafka names the table as an
output of catalog `ice`, the engine re-reads the batch's record, resolves the snapshot from the
catalog, hashes the files it added and signs; the statement in the file sink must carry exactly
the expected object, the added files as subjects with their digests (recomputed here from the
files), the job's forged list as a discrepancy, and a catalog that is down must hold only its
own query's window back.
"""
import argparse
import base64
import hashlib
import json
import os
import sys

# (query, batch, fixture case, overrides of the notification's output). Batches of a query are
# in order; the missing ones become gaps (the test runs with gap_wait_ms 0).
QA = "8c5e7f5a-0d4c-4b53-9d1e-6f1c2a3b4c5d"  # the fixture's stamps name this query id
QB = "0f7d3c2a-1b4e-4c5d-9e8f-7a6b5c4d3e2f"
QC = "5a4b3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d"
PLAN = [
    (QA, 0, "append-by-windowseal-stamps", {}),
    (QA, 1, "append-by-spark-stamps-lowest-seq", {}),
    (QA, 3, "merge-append-existing-and-inherited", {}),
    (QA, 4, "overwrite-deleted-and-delete-files", {}),
    (QA, 7, "append-by-snapshot-id", {}),
    (QB, 0, "forged-job-list", {"snapshotId": "1001"}),
    (QB, 1, "missing-snapshot", {}),
    (QB, 2, "corrupt-avro", {}),
    (QB, 3, "summary-mismatch", {}),
    (QB, 4, "manifest-list-outside-location", {}),
    (QC, 0, "catalog-503-retriable", {}),
    # only when the fixture was given --s3: a table in s3rver, read through the S3 client
    ("3c1d2e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f", 0, "s3-table-by-stamps", {}),
]


def ok(msg):
    print("ok   - " + msg, flush=True)


def fail(msg):
    print("FAIL - " + msg, flush=True)


def cases(fixture):
    with open(os.path.join(fixture, "expected.json")) as f:
        return {c["name"]: c for c in json.load(f)["cases"]}


def cmd_notify(a):
    from confluent_kafka import Producer

    cs = cases(a.fixture)
    p = Producer({"bootstrap.servers": a.boot, "linger.ms": 0})
    for q, batch, name, over in PLAN:
        if name not in cs:
            continue
        c = cs[name]
        box = []
        p.produce("orders", partition=0, key=b"k", value=b"%s/%d" % (q.encode(), batch),
                  on_delivery=lambda err, m: box.append((err, m)))
        p.flush(15)
        if not box or box[0][0] is not None:
            fail("produce to orders: %s" % (box[0][0] if box else "timeout"))
            return 1
        off = box[0][1].offset()
        out = {"name": c["output"]}
        if c.get("snapshotId"):
            out["snapshotId"] = c["snapshotId"]
        if c.get("files"):
            out["files"] = c["files"]
        out.update(over)
        note = {"queryId": q, "batchId": batch, "name": "it-iceberg",
                "sources": [{"topic": "orders", "partition": 0, "fromOffset": off,
                             "untilOffset": off + 1}],
                "outputs": [out]}
        p.produce("windowseal.batches", key=q.encode(), value=json.dumps(note).encode())
    p.flush(15)
    return 0


def statement(att, q, batch):
    path = os.path.join(att, q, "%020d.dsse.json" % batch)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.loads(base64.b64decode(json.load(f)["payload"]))


def sha256_file(uri, fixture):
    if uri.startswith("s3://"):  # the fixture's local copy of what it uploaded
        path = os.path.join(fixture, "s3", uri[5:].split("/", 1)[1])
    else:
        path = uri[7:] if uri.startswith("file://") else uri
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def cmd_check(a):
    cs = cases(a.fixture)
    n_ok = n_files = 0
    for q, batch, name, over in PLAN:
        if name not in cs:
            print("# %s: not in this fixture (no S3 store): skipped" % name)
            continue
        c = cs[name]
        st = statement(a.att, q, batch)
        if c.get("retriable"):
            if st is None:
                ok("%s: window %s/%d not signed while the catalog answers 503 (it waits)"
                   % (name, q[:8], batch))
                n_ok += 1
            else:
                fail("%s: window signed although the catalog is down" % name)
            continue
        if st is None:
            fail("%s: window %s/%d not attested" % (name, q[:8], batch))
            continue
        outs = st["predicate"].get("outputs", [])
        if len(outs) != 1 or outs[0].get("name") != c["output"]:
            fail("%s: outputs %s" % (name, outs))
            continue
        o = outs[0]
        ice = o.get("iceberg")
        if "files" in o:
            fail("%s: a resolved Iceberg output must not carry the job's files" % name)
            continue
        if c.get("error"):
            if ice and c["error"] in ice.get("error", "") and "addedDataFiles" not in ice:
                ok("%s: iceberg.error \"%s\"" % (name, ice["error"][:70]))
                n_ok += 1
            else:
                fail("%s: wanted iceberg.error with '%s', got %s" % (name, c["error"], ice))
            continue
        if ice != c["expect"]:
            fail("%s: iceberg object differs:\n  got  %s\n  want %s"
                 % (name, json.dumps(ice, sort_keys=True), json.dumps(c["expect"], sort_keys=True)))
            continue
        want_disc = c.get("discrepancy")
        if o.get("discrepancy") != want_disc:
            fail("%s: discrepancy %s, want %s" % (name, o.get("discrepancy"), want_disc))
            continue
        if over.get("snapshotId", c.get("snapshotId")) != o.get("snapshotId"):
            fail("%s: outputs[0].snapshotId %s is not what the job sent" % (name,
                                                                          o.get("snapshotId")))
            continue
        subjects = {s["name"]: s["digest"]["sha256"] for s in st["subject"][1:]}
        bad = []
        for f in ice.get("addedDataFiles", []):
            if "sha256" not in f:
                continue
            if f["sha256"] != sha256_file(f["path"], a.fixture) or \
                    subjects.get(f["path"]) != f["sha256"]:
                bad.append(f["path"])
            n_files += 1
        reported = {f["path"] for f in ice.get("addedDataFiles", []) if "sha256" in f}
        if bad or set(subjects) != reported:
            fail("%s: subjects %s vs added files %s (bad digests: %s)"
                 % (name, sorted(subjects), sorted(reported), bad))
            continue
        ok("%s: iceberg object exactly as the fixture computed (snapshot %s, %d added files, "
           "digests recomputed, subjects)%s" % (name, ice["snapshotId"],
                                                len(ice.get("addedDataFiles", [])),
                                                ", discrepancy %s" % json.dumps(want_disc)
                                                if want_disc else ""))
        n_ok += 1
    print("# %d cases checked, %d data files re-hashed" % (n_ok, n_files))
    return 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    n = sub.add_parser("notify")
    n.add_argument("--boot", required=True)
    n.add_argument("--fixture", required=True)
    c = sub.add_parser("check")
    c.add_argument("--att", required=True)
    c.add_argument("--fixture", required=True)
    a = ap.parse_args()
    return {"notify": cmd_notify, "check": cmd_check}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
