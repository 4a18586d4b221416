#!/usr/bin/python3
"""lineage_check.py — notifications in, OpenLineage events checked, for tests/it_lineage.sh.

    lineage_check.py post --boot B --q QID --name NAME --batch N      3 records + a notification
    lineage_check.py dup --boot B --q QID --name NAME --batch N       the same notification again
    lineage_check.py http --log F --windows QID/N,... [--token T]     the receiver's log checked
    lineage_check.py kafka --boot B --topic T --windows QID/N,... --ns NS --out F
    lineage_check.py validate --events F --schemas DIR --facet FILE   every event vs the schemas

Independent of windowseal: run ids are recomputed here from the window id (SHA-256, UUIDv8
layout, FORMAT.md §11); validation uses Debian's python3-jsonschema (4.10, RefResolver) with
every $ref resolved from local files, the network refused. Prints `ok   - ` / `FAIL - ` lines.
"""
import argparse
import glob
import hashlib
import json
import os
import re
import sys
import uuid

FAILS = 0


def ok(m):
    print("ok   - " + m, flush=True)


def fail(m):
    global FAILS
    FAILS += 1
    print("FAIL - " + m, flush=True)


def run_id(wid):
    h = bytearray(hashlib.sha256(b"windowseal.openlineage.run.v1\n" + wid.encode()).digest()[:16])
    h[6] = (h[6] & 0x0F) | 0x80
    h[8] = (h[8] & 0x3F) | 0x80
    return str(uuid.UUID(bytes=bytes(h)))


def spark_run(batch):
    return "5a1d9c0e-0000-4000-8000-%012d" % batch


def notif(a):
    return json.dumps({"queryId": a.q, "runId": spark_run(a.batch), "name": a.name,
                       "batchId": a.batch, "sources": [{"topic": "orders", "partition": 0,
                                                        "fromOffset": a.batch * 3,
                                                        "untilOffset": a.batch * 3 + 3}],
                       "outputs": []}, sort_keys=True).encode()


def produce(boot, topic, key, value):
    import confluent_kafka as ck
    p = ck.Producer({"bootstrap.servers": boot, "enable.idempotence": True})
    res = []
    p.produce(topic, key=key, value=value, partition=0,
              on_delivery=lambda e, m: res.append((e, m)))
    p.flush(15)
    if not res or res[0][0]:
        raise SystemExit("produce to %s failed: %s" % (topic, res))
    return res[0][1].offset()


def cmd_post(a):
    for i in range(3):
        off = produce(a.boot, "orders", b"k%d" % i, b"record %d of batch %d" % (i, a.batch))
        if off != a.batch * 3 + i:
            fail("orders[0]: offset %d, expected %d" % (off, a.batch * 3 + i))
    produce(a.boot, "windowseal.batches", a.q.encode(), notif(a))
    ok("batch %s/%d posted" % (a.q, a.batch))


def cmd_dup(a):
    produce(a.boot, "windowseal.batches", a.q.encode(), notif(a))
    ok("batch %s/%d posted again (a replay)" % (a.q, a.batch))


def check_pairs(events, windows, ns):
    """events: (body text, parsed) in arrival order. START before COMPLETE per window, run ids."""
    by_run = {}
    for text, ev in events:
        by_run.setdefault(ev["run"]["runId"], []).append((text, ev))
    for wid in windows:
        rid = run_id(wid)
        got = by_run.get(rid, [])
        types = [e["eventType"] for _, e in got]
        if "START" in types and "COMPLETE" in types and \
                types.index("START") < types.index("COMPLETE"):
            ok("%s: START then COMPLETE, run id %s recomputed from the window id" % (wid, rid))
        else:
            fail("%s: events %s for run id %s" % (wid, types, rid))
            continue
        for t in ("START", "COMPLETE"):
            bodies = {text for text, e in got if e["eventType"] == t}
            if len(bodies) != 1:
                fail("%s: %d different %s bodies" % (wid, len(bodies), t))
        c = [e for _, e in got if e["eventType"] == "COMPLETE"][0]
        f = c["run"]["facets"].get("windowseal_attestation", {})
        q, b = wid.rsplit("/", 1)
        want = {"queryId": q, "batchId": int(b), "windowId": wid, "sparkRunId": spark_run(int(b)),
                "envelope": "%s/%020d.dsse.json" % (q, int(b))}
        bad = {k: (f.get(k), v) for k, v in want.items() if f.get(k) != v}
        if bad or c["job"]["namespace"] != ns or c["run"]["facets"]["parent"]["run"]["runId"] != \
                spark_run(int(b)) or c["inputs"][0]["name"] != "orders":
            fail("%s: COMPLETE content: %s" % (wid, bad or c))
        else:
            ok("%s: COMPLETE names the window, its envelope, the Spark run and topic orders" % wid)
    return by_run


def cmd_http(a):
    lines = [json.loads(l) for l in open(a.log)]
    okd = [l for l in lines if l["status"] == 201]
    events = [(l["body"], json.loads(l["body"])) for l in okd]
    windows = a.windows.split(",")
    check_pairs(events, windows, a.ns)
    paths = {l["path"] for l in lines}
    ctypes = {l["ctype"] for l in lines}
    auths = {l["auth"] for l in lines}
    if paths == {"/api/v1/lineage"} and ctypes == {"application/json"}:
        ok("every POST to /api/v1/lineage with Content-Type application/json (%d)" % len(lines))
    else:
        fail("paths %s content types %s" % (paths, ctypes))
    if auths == {"Bearer " + a.token}:
        ok("every POST carried the bearer token from api_key_env")
    else:
        fail("Authorization headers seen: %s" % auths)
    if a.retried:  # the window posted while the backend answered 500
        rid = run_id(a.retried)
        tries = [l for l in lines if json.loads(l["body"])["run"]["runId"] == rid]
        st = [l["status"] for l in tries]
        bodies = {l["body"] for l in tries if json.loads(l["body"])["eventType"] == "START"}
        if st.count(500) >= 3 and st[-1] == 201 and len(bodies) == 1:
            ok("%s: answered %s, the START retried with the same bytes until 201" % (a.retried, st))
        else:
            fail("%s: statuses %s, %d START bodies" % (a.retried, st, len(bodies)))
    if a.twice:  # a window whose events must have come twice, identical
        rid = run_id(a.twice)
        got = [l["body"] for l in okd if json.loads(l["body"])["run"]["runId"] == rid]
        if len(got) >= 4 and len(set(got)) == 2:
            ok("%s: re-emitted after the restart, %d events, byte-identical to the first" %
               (a.twice, len(got)))
        else:
            fail("%s: %d events delivered, %d distinct" % (a.twice, len(got), len(set(got))))
    with open(a.out, "w") as f:
        for text, _ in events:
            f.write(text + "\n")


def cmd_kafka(a):
    import confluent_kafka as ck
    c = ck.Consumer({"bootstrap.servers": a.boot, "group.id": "lineage-check",
                     "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([a.topic])
    events, windows = [], a.windows.split(",")
    keys = set()
    import time
    end = time.time() + 30
    while time.time() < end and len(events) < 2 * len(windows):
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        keys.add(m.key().decode())
        events.append((m.value().decode(), json.loads(m.value())))
    c.close()
    check_pairs(events, windows, a.ns)
    if keys == {"run:%s/%s.attest" % (a.ns, a.name)}:
        ok("every message keyed run:<namespace>/<job name>: %s" % keys)
    else:
        fail("message keys %s" % keys)
    with open(a.out, "w") as f:
        for text, _ in events:
            f.write(text + "\n")


def cmd_validate(a):
    from jsonschema import Draft202012Validator, FormatChecker, RefResolver
    from datetime import datetime
    store = {}
    for f in [os.path.join(a.schemas, "OpenLineage.json")] + \
            glob.glob(os.path.join(a.schemas, "facets", "*.json")) + [a.facet]:
        doc = json.load(open(f))
        store[doc["$id"]] = doc

    def offline(url):
        raise LookupError("not in the local store: " + url)

    checker = FormatChecker()

    @checker.checks("date-time", raises=ValueError)
    def date_time(s):  # RFC 3339 with a zone (4.10 checks no date-time without rfc3339-validator)
        if not isinstance(s, str):
            return True
        if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", s):
            raise ValueError(s)
        datetime.fromisoformat(s.replace("Z", "+00:00"))
        return True

    core = store["https://openlineage.io/spec/2-0-2/OpenLineage.json"]
    resolver = RefResolver.from_schema(core, store=store,
                                       handlers={"http": offline, "https": offline})

    def validator(ref):
        return Draft202012Validator({"$ref": ref}, resolver=resolver, format_checker=checker)

    run_event = validator("https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent")
    facet_files = {"parent": "https://openlineage.io/spec/facets/1-2-0/ParentRunFacet.json",
                   "jobType": "https://openlineage.io/spec/facets/2-0-4/JobTypeJobFacet.json",
                   "version": "https://openlineage.io/spec/facets/1-0-1/DatasetVersionDatasetFacet.json",
                   "windowseal_attestation": json.load(open(a.facet))["$id"]}
    facet_v = {k: validator(v) for k, v in facet_files.items()}
    events = [json.loads(l) for l in open(a.events) if l.strip()]
    n_ev = n_facet = 0
    for ev in events:
        errs = [e.message for e in run_event.iter_errors(ev)]
        facets = [("parent", ev["run"].get("facets", {}).get("parent")),
                  ("windowseal_attestation",
                   ev["run"].get("facets", {}).get("windowseal_attestation")),
                  ("jobType", ev["job"].get("facets", {}).get("jobType"))] + \
            [("version", d.get("facets", {}).get("version")) for d in ev.get("outputs", [])]
        for k, f in facets:
            if f is None:
                continue
            if f.get("_schemaURL", "").split("#")[0] != facet_files[k]:
                errs.append("%s: _schemaURL %s" % (k, f.get("_schemaURL")))
            errs += ["%s: %s" % (k, e.message) for e in facet_v[k].iter_errors({k: f})]
            n_facet += 1
        if errs:
            fail("event %s %s: %s" % (ev["run"]["runId"], ev["eventType"], errs[:3]))
        n_ev += 1
    if n_ev and not FAILS:
        ok("%d events valid against OpenLineage 2-0-2 RunEvent, %d facets against their "
           "schemas (ParentRunFacet 1-2-0, JobTypeJobFacet 2-0-4, windowseal 1-0-0)" %
           (n_ev, n_facet))
    elif not n_ev:
        fail("no events to validate")
    # the validation must be able to fail: a hand-broken event and facet
    broken = json.loads(json.dumps(events[-1]))
    del broken["run"]["runId"]
    if list(run_event.iter_errors(broken)):
        ok("a hand-broken event (no run.runId) fails the same validation")
    else:
        fail("an event without run.runId passed validation")
    f = json.loads(json.dumps([e for e in events if e["eventType"] == "COMPLETE"][-1]
                              ["run"]["facets"]["windowseal_attestation"]))
    f["statementDigest"] = "not hex"
    del f["logRoot"]
    if len(list(facet_v["windowseal_attestation"].iter_errors({"windowseal_attestation": f}))) >= 2:
        ok("a hand-broken windowseal_attestation facet fails its schema")
    else:
        fail("a broken windowseal_attestation facet passed its schema")
    t = json.loads(json.dumps(events[-1]))
    t["eventTime"] = "yesterday"
    if list(run_event.iter_errors(t)):
        ok("an eventTime that is not RFC 3339 fails (date-time checked)")
    else:
        fail("eventTime 'yesterday' passed")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    for n in ("post", "dup"):
        p = sub.add_parser(n)
        p.add_argument("--boot", required=True)
        p.add_argument("--q", required=True)
        p.add_argument("--name", required=True)
        p.add_argument("--batch", type=int, required=True)
    p = sub.add_parser("http")
    p.add_argument("--log", required=True)
    p.add_argument("--windows", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--ns", default="windowseal")
    p.add_argument("--retried")
    p.add_argument("--twice")
    p.add_argument("--out", required=True)
    p = sub.add_parser("kafka")
    p.add_argument("--boot", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--windows", required=True)
    p.add_argument("--ns", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--out", required=True)
    p = sub.add_parser("validate")
    p.add_argument("--events", required=True)
    p.add_argument("--schemas", required=True)
    p.add_argument("--facet", required=True)
    a = ap.parse_args()
    {"post": cmd_post, "dup": cmd_dup, "http": cmd_http, "kafka": cmd_kafka,
     "validate": cmd_validate}[a.cmd](a)
    sys.exit(1 if FAILS else 0)


main()
