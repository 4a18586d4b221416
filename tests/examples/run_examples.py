#!/usr/bin/python3
"""run_examples.py — drives examples/*.py against a real broker, a fake pyspark, and the engine.

    run_examples.py --bootstrap HOST:PORT --ws WINDOWSEAL --tmp DIR

Spark cannot be installed, so tests/examples/fake_pyspark (the few PySpark objects the examples
touch, see pyspark/_fake.py) goes first on sys.path; confluent_kafka is Debian's, the broker is
`windowseal broker`. Each example runs as a job would: the fake streams batches of real Kafka
records (produced here, with their real offsets) into the foreachBatch functions, and Spark's own
progress JSON (spark_progress.py) into the listener. Then the notifications are consumed back and
checked (key = query id, shape, offsets, outputs), and a windowseal engine attests them all.
Prints `ok: ...` / `FAIL: ...` lines, counted by tests/it_examples.sh.
"""
import argparse
import base64
import json
import os
import pickle
import re
import signal
import socket
import subprocess
import sys
import time
import uuid

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
sys.path[:0] = [os.path.join(HERE, "fake_pyspark"), os.path.join(SRC, "examples"), HERE]

from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402

import pyspark  # noqa: E402
from pyspark import _fake  # noqa: E402
from pyspark.errors import StreamingQueryException  # noqa: E402
from pyspark.sql import SparkSession  # noqa: E402
from pyspark.sql.streaming.listener import (QueryProgressEvent, QueryStartedEvent,  # noqa: E402
                                            QueryTerminatedEvent)

import spark_progress  # noqa: E402

WORLD = _fake.WORLD
NOTIF = "windowseal.batches"
FAILS = 0


def ok(msg):
    print("ok: " + msg, flush=True)


def fail(msg):
    global FAILS
    FAILS += 1
    print("FAIL: " + msg, flush=True)


def check(cond, msg, detail=""):
    if cond:
        ok(msg)
    else:
        fail(msg + (f": {detail}" if detail else ""))
    return cond


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"127.0.0.1:{port}"


def raises(fn, exc_type):
    """(exception or None, seconds) of fn()."""
    t0 = time.monotonic()
    try:
        fn()
    except exc_type as e:
        return e, time.monotonic() - t0
    return None, time.monotonic() - t0


# --------------------------------------------------------------------------------------------
def produce_orders(boot):
    """orders p0 and p1, offsets 0-4 each; returns {(p, offset): row} as Spark's Kafka source has it."""
    p = Producer({"bootstrap.servers": boot})
    rows = {}

    def dr(err, msg):
        if err is not None:
            raise RuntimeError(err)
        _, ts = msg.timestamp()
        rows[(msg.partition(), msg.offset())] = {
            "key": msg.key(), "value": msg.value(), "topic": msg.topic(),
            "partition": msg.partition(), "offset": msg.offset(),
            "timestamp": ts, "timestampType": 0}

    for i in range(5):
        for part in (0, 1):
            p.produce("orders", partition=part, key=b"order-%d-%d" % (part, i),
                      value=json.dumps({"order": f"{part}-{i}", "amount": 10 * i + part}).encode(),
                      on_delivery=dr)
    if p.flush(15) or len(rows) != 10:
        raise RuntimeError("could not produce the orders records")
    return rows


def batch_rows(rows, spans):
    """spans: {partition: (first, last)} inclusive -> the batch DataFrame's rows."""
    return [rows[(p, o)] for p, (a, b) in sorted(spans.items()) for o in range(a, b + 1)]


def expected_sources(spans):
    return [{"topic": "orders", "partition": p, "fromOffset": a, "untilOffset": b + 1}
            for p, (a, b) in sorted(spans.items())]


SPANS = [{0: (0, 2), 1: (0, 1)}, {0: (3, 4), 1: (2, 4)}]  # batch 0, batch 1 (as spark_progress)


def stamped(table, qid, batch_id):
    return [s for s in WORLD.tables[table].snapshots
            if s["summary"].get("windowseal.query-id") == qid
            and s["summary"].get("windowseal.batch-id") == str(batch_id)]


# --------------------------------------------------------------------------------------------
def test_static_usage(tmp):
    """The usage commands in the docstrings, run by bash with fake spark-submit / python / sbin."""
    import kafka_to_iceberg
    import spark_connect

    bindir = os.path.join(tmp, "fakebin")
    spark_home = os.path.join(tmp, "spark_home")
    os.makedirs(bindir, exist_ok=True)
    os.makedirs(os.path.join(spark_home, "sbin"), exist_ok=True)
    argv_log = os.path.join(tmp, "argv.json")
    recorder = ("#!/usr/bin/python3\nimport json, os, sys\n"
                "open(%r, 'w').write(json.dumps([os.path.basename(sys.argv[0])] + sys.argv[1:]))\n"
                % argv_log)
    for path in (os.path.join(bindir, "spark-submit"), os.path.join(bindir, "python"),
                 os.path.join(spark_home, "sbin", "start-connect-server.sh")):
        with open(path, "w") as f:
            f.write(recorder)
        os.chmod(path, 0o755)

    def commands(doc, first):
        """Blocks of the docstring that start with `first` and continue with trailing '\\'."""
        lines, out, i = doc.splitlines(), [], 0
        while i < len(lines):
            if lines[i].strip().startswith(first):
                block = [lines[i].strip()]
                while block[-1].endswith("\\"):
                    i += 1
                    block.append(lines[i].strip())
                out.append("\n".join(block))
            i += 1
        return out

    def run(cmd):
        if os.path.exists(argv_log):
            os.remove(argv_log)
        env = dict(os.environ, PATH=bindir + ":" + os.environ["PATH"], SPARK_HOME=spark_home)
        r = subprocess.run(["bash", "-c", cmd], cwd=SRC, env=env, capture_output=True, text=True)
        if r.returncode or not os.path.exists(argv_log):
            return None, r.stderr
        return json.load(open(argv_log)), ""

    def options(argv):
        """spark-submit style: (packages, {conf k: v}, py_files, rest)."""
        packages, confs, py_files, i = [], {}, [], 1
        while i < len(argv) and argv[i].startswith("--"):
            opt, val = argv[i], argv[i + 1]
            if opt == "--packages":
                packages += val.split(",")
            elif opt == "--conf":
                k, _, v = val.partition("=")
                confs[k] = v
            elif opt == "--py-files":
                py_files += val.split(",")
            i += 2
        return packages, confs, py_files, argv[i:]

    def check_packages(label, packages, want):
        coords = {}
        for p in packages:
            m = re.fullmatch(r"org\.apache\.(spark|iceberg):([\w.-]+?)_(2\.1[23]):(\d+\.\d+\.\d+)", p)
            if not m:
                fail(f"{label}: package {p!r} is not group:artifact_scala:version")
                return
            coords[m.group(2)] = (m.group(3), m.group(4))
        for a in want:
            check(a in coords, f"{label}: --packages has {a} with a version", packages)
        scalas = {s for s, _ in coords.values()}
        check(len(scalas) == 1, f"{label}: one Scala version across packages", scalas)
        spark_versions = {v for a, (_, v) in coords.items() if a.startswith("spark-")}
        check(len(spark_versions) == 1, f"{label}: Spark packages of one Spark version",
              spark_versions)
        rt = [a for a in coords if a.startswith("iceberg-spark-runtime-")]
        if rt and spark_versions:
            mm = ".".join(next(iter(spark_versions)).split(".")[:2])
            check(rt[0] == f"iceberg-spark-runtime-{mm}", f"{label}: Iceberg runtime for Spark {mm}",
                  rt[0])

    def check_catalog(label, confs, table):
        cat = table.split(".")[0]
        pre = f"spark.sql.catalog.{cat}"
        check(confs.get(pre) == "org.apache.iceberg.spark.SparkCatalog",
              f"{label}: catalog {cat} of {table} is an Iceberg SparkCatalog", confs)
        check(confs.get(pre + ".type") == "rest" and confs.get(pre + ".uri", "").startswith("http")
              and confs.get(pre + ".warehouse"), f"{label}: catalog {cat} has type rest, uri, "
              "warehouse", confs)

    # kafka_to_iceberg.py: spark-submit
    cmds = commands(kafka_to_iceberg.__doc__, "spark-submit")
    if check(len(cmds) == 1, "kafka_to_iceberg usage: one multi-line spark-submit command"):
        argv, err = run(cmds[0])
        if check(argv is not None, "kafka_to_iceberg usage: runs in bash as written", err):
            packages, confs, py_files, rest = options(argv)
            check_packages("kafka_to_iceberg usage", packages,
                           ["spark-sql-kafka-0-10", "iceberg-spark-runtime-3.5"])
            check(rest and rest[0] == "examples/kafka_to_iceberg.py" and
                  os.path.isfile(os.path.join(SRC, rest[0])),
                  "kafka_to_iceberg usage: submits examples/kafka_to_iceberg.py", rest)
            check(all(os.path.isfile(os.path.join(SRC, f)) for f in py_files) and
                  "examples/foreach_batch.py" in py_files,
                  "kafka_to_iceberg usage: ships foreach_batch.py (--py-files)", py_files)
            try:
                a = kafka_to_iceberg.parse_args(rest[1:])
                ok("kafka_to_iceberg usage: the job's arguments parse")
                check_catalog("kafka_to_iceberg usage", confs, a.table)
            except SystemExit:
                fail(f"kafka_to_iceberg usage: arguments {rest[1:]} do not parse")

    # spark_connect.py: the server, then the client
    cmds = commands(spark_connect.__doc__, "$SPARK_HOME/sbin/start-connect-server.sh")
    server_confs = {}
    if check(len(cmds) == 1, "spark_connect usage: one multi-line start-connect-server.sh command"):
        argv, err = run(cmds[0])
        if check(argv is not None, "spark_connect usage: server command runs in bash", err):
            packages, server_confs, _, _ = options(argv)
            check_packages("spark_connect usage", packages,
                           ["spark-connect", "spark-sql-kafka-0-10", "iceberg-spark-runtime-3.5"])
    cmds = commands(spark_connect.__doc__, "python examples/spark_connect.py")
    if check(len(cmds) == 1, "spark_connect usage: one multi-line client command"):
        argv, err = run(cmds[0])
        if check(argv is not None and argv[1] == "examples/spark_connect.py",
                 "spark_connect usage: client command runs in bash", err or argv):
            try:
                a = spark_connect.parse_args(argv[2:])
                check(a.remote.startswith("sc://"), "spark_connect usage: arguments parse, sc://")
                check_catalog("spark_connect usage", server_confs, a.table)
            except SystemExit:
                fail(f"spark_connect usage: arguments {argv[2:]} do not parse")


# --------------------------------------------------------------------------------------------
def test_foreach_batch(boot, tmp, rows, expect):
    """The library, used as its docstring says, in a classic job."""
    import foreach_batch as fb

    table = "iceberg.ods.fb"
    WORLD.reset()
    WORLD.create_table(table, os.path.join(tmp, "warehouse", "ods", "fb"))
    WORLD.batches = [(0, batch_rows(rows, SPANS[0])), (1, batch_rows(rows, SPANS[1]))]
    spark = SparkSession.builder.appName("fb").getOrCreate()
    notifier = fb.WindowsealNotifier(boot, name="fb-query")
    seen = {}

    def write_batch(df, batch_id):
        query_id, _ = notifier.ids()
        seen["active_in_batch_session"] = list(df.sparkSession.streams.active)
        ranges = fb.batch_ranges(df)
        outputs = [fb.iceberg_append(df, table, query_id, batch_id)] if ranges else []
        notifier.notify(batch_id, ranges, outputs)

    query = (spark.readStream.format("kafka").option("kafka.bootstrap.servers", boot)
             .option("subscribe", "orders").load()
             .writeStream.queryName("fb-query")
             .option("checkpointLocation", os.path.join(tmp, "cp", "fb"))
             .foreachBatch(write_batch).start())
    raced = WORLD.first_batch_before_start_returned
    notifier.bind(query)
    try:
        query.awaitTermination()
        ok("foreach_batch: the job ran batches 0 and 1")
    except StreamingQueryException as e:
        fail(f"foreach_batch: the job failed: {e.__cause__!r}")
    check(raced, "foreach_batch: batch 0 began before start() returned (ids() waited for bind)")
    check(seen.get("active_in_batch_session") == [],
          "foreach_batch: the batch session's streams.active is empty (why bind() is needed)")
    expect[query.id] = {"label": "foreach_batch", "batches": [0, 1], "run_id": query.runId,
                        "name": "fb-query", "table": table}

    # Failure paths, called as the callback would be.
    dead = fb.WindowsealNotifier(closed_port(), name="fb-query",
                                 config={"message.timeout.ms": 1000}, flush_timeout=10)
    dead.bind(query)
    e, secs = raises(lambda: dead.notify(5, [("orders", 0, 0, 2)]), fb.NotificationError)
    check(e is not None, "foreach_batch: broker unreachable: notify() raises NotificationError",
          "it returned")
    check(e is not None and "Message timed out" in str(e) and secs < 8,
          "foreach_batch: ... from the delivery report (message.timeout.ms), not the flush timeout",
          f"{e} after {secs:.1f}s")
    slow = fb.WindowsealNotifier(closed_port(), config={"message.timeout.ms": 5000},
                                 flush_timeout=0.5)
    slow.bind(query)
    e, _ = raises(lambda: slow.notify(6, []), fb.NotificationError)
    check(e is not None and "still queued" in str(e),
          "foreach_batch: flush() left the message queued: raises", e)
    unbound = fb.WindowsealNotifier(boot, bind_timeout=0.3)
    e, _ = raises(lambda: unbound.notify(0, []), RuntimeError)
    check(e is not None and "bind" in str(e), "foreach_batch: never bound: raises, naming bind()", e)
    e, _ = raises(lambda: pickle.dumps(notifier), TypeError)
    check(e is not None and "spark_connect.py" in str(e),
          "foreach_batch: the notifier refuses to be pickled (Spark Connect), pointing to "
          "spark_connect.py", e)


def test_kafka_to_iceberg(boot, tmp, rows, expect):
    import foreach_batch as fb
    import kafka_to_iceberg

    table = "iceberg.ods.orders"
    WORLD.reset()
    t = WORLD.create_table(table, os.path.join(tmp, "warehouse", "ods", "orders"))
    cp = os.path.join(tmp, "cp", "k2i")
    args = ["--bootstrap", boot, "--topic", "orders", "--table", table, "--checkpoint", cp,
            "--name", "k2i-query"]

    # Run 1: the notifications Kafka is unreachable: batch 0 is written, its post fails.
    WORLD.batches = [(0, batch_rows(rows, SPANS[0]))]
    e, _ = raises(lambda: kafka_to_iceberg.main(args + [
        "--notifications-bootstrap", closed_port(), "--producer-config", "message.timeout.ms=1000",
        "--flush-timeout", "10"]), StreamingQueryException)
    check(e is not None and isinstance(e.__cause__, fb.NotificationError),
          "kafka_to_iceberg: notification lost: the batch raises and the query fails",
          repr(e) if e else "main() returned")
    q1 = WORLD.queries[-1]
    check(q1.batches_run == [], "kafka_to_iceberg: batch 0 did not complete", q1.batches_run)
    check(len(stamped(table, q1.id, 0)) == 1, "kafka_to_iceberg: batch 0's snapshot was committed, "
          "stamped with query id and batch id")

    # Run 2: restart from the checkpoint: batch 0 again, 1 (another writer commits right after
    # this job's append, merging manifests), 2 (empty).
    def other_writer(name, batch):
        if any(r.get("partition") == 0 and r.get("offset") == 3 for r in batch):  # batch 1
            t.append([{"other": "writer"}], {}, merge_manifests=True)

    WORLD.batches = [(0, batch_rows(rows, SPANS[0])), (1, batch_rows(rows, SPANS[1])), (2, [])]
    WORLD.after_append = other_writer
    try:
        kafka_to_iceberg.main(args)
        ok("kafka_to_iceberg: restarted, ran batches 0 (again), 1 and 2 (empty)")
    except StreamingQueryException as e:
        fail(f"kafka_to_iceberg: restarted job failed: {e.__cause__!r}")
    q2 = WORLD.queries[-1]
    check(q2.id == q1.id and q2.runId != q1.runId,
          "kafka_to_iceberg: same query id across the restart, new run id")
    check(len(stamped(table, q1.id, 0)) == 1, "kafka_to_iceberg: re-run batch 0 appended nothing")
    check(len(stamped(table, q1.id, 1)) == 1 and not stamped(table, q1.id, 2),
          "kafka_to_iceberg: batch 1 committed one snapshot, empty batch 2 none")
    check(t.snapshots[-1]["summary"].get("windowseal.query-id") is None,
          "kafka_to_iceberg: the newest snapshot is the other writer's")
    expect[q1.id] = {"label": "kafka_to_iceberg", "batches": [0, 1, 2], "run_id": q2.runId,
                     "name": "k2i-query", "table": table, "empty": {2}}


def test_spark_connect(boot, tmp, rows, expect):
    import spark_connect

    WORLD.reset()
    table = "iceberg.ods.connect"
    WORLD.create_table(table, os.path.join(tmp, "warehouse", "ods", "connect"))
    cp = os.path.join(tmp, "cp", "connect")
    args = ["--remote", "sc://localhost:15002", "--bootstrap", boot, "--topic", "orders",
            "--table", table, "--checkpoint", cp, "--name", "connect-query"]

    WORLD.batches = [(0, batch_rows(rows, SPANS[0]))]
    e, _ = raises(lambda: spark_connect.main(args + [
        "--notifications-bootstrap", closed_port(), "--producer-config", "message.timeout.ms=1000",
        "--flush-timeout", "10"]), StreamingQueryException)
    check(e is not None and "not delivered" in str(e.__cause__),
          "spark_connect: notification lost: the server-side function raises, the query fails",
          repr(e) if e else "main() returned")
    q1 = WORLD.queries[-1]

    WORLD.batches = [(0, batch_rows(rows, SPANS[0])), (1, batch_rows(rows, SPANS[1]))]
    try:
        spark_connect.main(args)
        ok("spark_connect: the function ran as pickled to the server (no module globals), "
           "batches 0 (again) and 1")
    except StreamingQueryException as e:
        fail(f"spark_connect: the job failed: {e.__cause__!r}")
    q2 = WORLD.queries[-1]
    check(len(stamped(table, q1.id, 0)) == 1 and len(stamped(table, q1.id, 1)) == 1,
          "spark_connect: one stamped snapshot per batch, none appended twice")
    expect[q1.id] = {"label": "spark_connect", "batches": [0, 1], "run_id": q2.runId,
                     "name": "connect-query", "table": table}

    # A newer server: the batch runs on the stream's cloned session (no streams to ask).
    WORLD_TABLES.update(WORLD.tables)
    WORLD.reset()
    table = "iceberg.ods.connect2"
    WORLD.create_table(table, os.path.join(tmp, "warehouse", "ods", "connect2"))
    WORLD.connect_cloned_session = True
    WORLD.batches = [(0, batch_rows(rows, SPANS[0]))]
    args = ["--remote", "sc://localhost:15002", "--bootstrap", boot, "--topic", "orders",
            "--table", table, "--checkpoint", os.path.join(tmp, "cp", "connect2"),
            "--name", "connect2-query"]
    try:
        spark_connect.main(args)
        ok("spark_connect: batch on a cloned session: ran")
    except StreamingQueryException as e:
        fail(f"spark_connect: cloned session: the job failed: {e.__cause__!r}")
    q = WORLD.queries[-1]
    expect[q.id] = {"label": "spark_connect (cloned session)", "batches": [0], "run_id": None,
                    "name": "connect2-query", "table": table}


def test_listener(boot, expect):
    import progress_listener as pl

    listener = pl.WindowsealListener(boot)
    try:
        blob = pickle.dumps(listener)
        ok("progress_listener: picklable before its first event")
    except Exception as e:  # noqa: BLE001
        fail(f"progress_listener: pickle.dumps before the first event: {e!r}")
        return
    server_copy = pickle.loads(blob)  # what Spark Connect 3.5 runs next to the server
    server_copy.onQueryStarted(QueryStartedEvent(spark_progress.QUERY_ID, spark_progress.RUN_ID,
                                                 "orders-listener", "2026-01-15T10:00:00.000Z"))
    for text in (spark_progress.BATCH0, spark_progress.BATCH1, spark_progress.IDLE):
        try:
            server_copy.onQueryProgress(QueryProgressEvent(text))
        except Exception as e:  # noqa: BLE001
            fail(f"progress_listener: onQueryProgress raised {e!r}")
    server_copy.onQueryTerminated(QueryTerminatedEvent(spark_progress.QUERY_ID,
                                                       spark_progress.RUN_ID))
    try:
        pickle.dumps(server_copy)
        ok("progress_listener: still picklable after events (the Producer is not pickled)")
    except Exception as e:  # noqa: BLE001
        fail(f"progress_listener: pickle.dumps after events: {e!r}")
    expect[spark_progress.QUERY_ID] = {"label": "progress_listener", "batches": [0, 1],
                                       "progress": [QueryProgressEvent(spark_progress.BATCH0),
                                                    QueryProgressEvent(spark_progress.BATCH1)]}

    dead = pl.WindowsealListener(closed_port(), config={"message.timeout.ms": 1000},
                                 flush_timeout=10)
    t0 = time.monotonic()
    r = dead.onQueryProgress(QueryProgressEvent(spark_progress.IDLE))
    check(r is None and dead._producer is None and time.monotonic() - t0 < 0.5,
          "progress_listener: idle trigger skipped at once, without producing")
    e, _ = raises(lambda: dead.onQueryProgress(QueryProgressEvent(spark_progress.BATCH1)),
                  pl.NotificationError)
    check(e is not None, "progress_listener: broker unreachable: onQueryProgress raises", "returned")


# --------------------------------------------------------------------------------------------
def consume_all(boot, want, timeout=20):
    c = Consumer({"bootstrap.servers": boot, "group.id": "it-examples-" + uuid.uuid4().hex,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    parts = c.list_topics(NOTIF, timeout=10).topics[NOTIF].partitions
    c.assign([TopicPartition(NOTIF, p, 0) for p in parts])
    msgs, deadline, quiet_since = [], time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        m = c.poll(0.2)
        if m is None:
            if len(msgs) >= want:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since > 1.0:
                    break
            continue
        if m.error():
            continue
        quiet_since = None
        msgs.append(m)
    c.close()
    return msgs


def check_notifications(boot, expect):
    want = sum(len(e["batches"]) for e in expect.values())
    msgs = consume_all(boot, want)
    check(len(msgs) == want, f"{want} notifications on {NOTIF}, one per batch",
          f"{len(msgs)}: {[(m.key(), m.value()[:80]) for m in msgs]}")
    by_query = {}
    for m in msgs:
        try:
            v = json.loads(m.value())
        except ValueError:
            fail(f"notification is not JSON: {m.value()[:100]!r}")
            continue
        qid = v.get("queryId", v.get("id"))
        if not check(m.key() is not None and m.key().decode() == qid,
                     f"key = query id ({qid}, batch {v.get('batchId')})", m.key()):
            continue
        by_query.setdefault(qid, []).append((v, m.value()))
    for qid, e in expect.items():
        got = sorted(by_query.get(qid, []), key=lambda vr: vr[0]["batchId"])
        label = e["label"]
        check([v["batchId"] for v, _ in got] == e["batches"],
              f"{label}: batches {e['batches']} posted, each once", [v["batchId"] for v, _ in got])
        for v, raw in got:
            b = v["batchId"]
            if "progress" in e:  # the listener posts Spark's JSON unchanged
                check(raw.decode() == e["progress"][b].progress.json,
                      f"{label}: batch {b}: the value is event.progress.json, unchanged", raw[:80])
                continue
            want_sources = [] if b in e.get("empty", ()) else expected_sources(SPANS[b])
            check(v.get("queryId") == qid and v.get("sources") == want_sources,
                  f"{label}: batch {b}: native shape, queryId, sources from the batch's offsets",
                  v)
            check(v.get("runId") == e["run_id"] and v.get("name") == e["name"],
                  f"{label}: batch {b}: runId {'of this run' if e['run_id'] else 'left out'}, name",
                  (v.get("runId"), v.get("name")))
            if b in e.get("empty", ()):
                check("outputs" not in v, f"{label}: batch {b} (empty): no outputs", v)
                continue
            snaps = stamped(e["table"], qid, b) if e["table"] in WORLD_TABLES else []
            snap = snaps[0] if snaps else None
            outs = v.get("outputs") or [{}]
            check(len(v.get("outputs", [])) == 1 and snap is not None and
                  outs[0] == {"name": e["table"], "snapshotId": str(snap["snapshot_id"]),
                              "files": [snap["_file"]["file_path"]]},
                  f"{label}: batch {b}: output = the stamped snapshot and exactly the file it added",
                  outs)
            e.setdefault("files", {})[b] = snap["_file"] if snap else None
    return by_query


WORLD_TABLES = {}


# --------------------------------------------------------------------------------------------
def run_engine(ws, boot, tmp, expect):
    key = os.path.join(tmp, "ws.key")
    subprocess.run([ws, "keygen", "--out", key], check=True, capture_output=True)
    att = os.path.join(tmp, "att")
    conf = os.path.join(tmp, "engine.json")
    with open(conf, "w") as f:
        json.dump({"kafka": {"bootstrap.servers": boot, "group.id": "it-examples"},
                   "signing": {"key": key}, "sinks": [{"type": "file", "path": att}],
                   "spool": {"path": os.path.join(tmp, "spool")},
                   "engine": {"gap_wait_ms": 500},
                   "notifications": {"initial_offsets": "earliest"}}, f)
    log = open(os.path.join(tmp, "engine.log"), "w")
    eng = subprocess.Popen([ws, "run", "-c", conf], stdout=log, stderr=log)
    paths = {(q, b): os.path.join(att, q, f"{b:020d}.dsse.json")
             for q, e in expect.items() for b in e["batches"]}
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline and not all(os.path.exists(p) for p in paths.values()):
            if eng.poll() is not None:
                break
            time.sleep(0.2)
    finally:
        if eng.poll() is None:
            eng.send_signal(signal.SIGTERM)
            try:
                eng.wait(15)
            except subprocess.TimeoutExpired:
                eng.kill()
        log.close()
    text = open(os.path.join(tmp, "engine.log")).read()
    missing = [f"{expect[q]['label']}/{b}" for (q, b), p in paths.items() if not os.path.exists(p)]
    check(not missing, f"engine attested all {len(paths)} batches", f"missing {missing}; log tail: "
          + " | ".join(text.splitlines()[-5:]))
    dl = [ln for ln in text.splitlines() if "event=deadlettered" in ln]
    check(not dl, "engine dead-lettered none of the notifications", dl[:3])
    idle = [ln for ln in text.splitlines() if "event=idle_trigger" in ln]
    check(not idle, "engine saw no idle trigger (the listener skipped it)", idle[:2])
    pub = key + ".pub"
    for (q, b), p in sorted(paths.items(), key=lambda kv: (expect[kv[0][0]]["label"], kv[0][1])):
        if not os.path.exists(p):
            continue
        e = expect[q]
        label = f"{e['label']}/{b}"
        ev = p.replace(".dsse.json", ".evidence.lz4")
        r = subprocess.run([ws, "verify", p, "--pubkey", pub, "--evidence", ev],
                           capture_output=True, text=True)
        check(r.returncode == 0, f"engine: {label} verifies with its evidence", r.stdout + r.stderr)
        st = json.loads(base64.b64decode(json.load(open(p))["payload"]))
        pred = st["predicate"]
        n = 0 if b in e.get("empty", ()) else sum(y - x + 1 for x, y in SPANS[b].values())
        check(pred["aggregates"]["recordCount"] == n,
              f"engine: {label}: {n} records re-read from Kafka", pred["aggregates"])
        f = e.get("files", {}).get(b)
        if f:
            outs = pred.get("outputs", [])
            files = outs[0].get("files", []) if outs else []
            check(len(files) == 1 and files[0].get("name") == f["file_path"] and
                  files[0].get("sha256") == f["sha256"],
                  f"engine: {label}: the output file is hashed into the statement", outs)


# --------------------------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--ws", required=True)
    ap.add_argument("--tmp", required=True)
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(124))  # `timeout`: still stop the engine

    check(pyspark.__file__.startswith(os.path.join(HERE, "fake_pyspark")),
          "the fake pyspark is the one imported", pyspark.__file__)
    rows = produce_orders(a.bootstrap)
    expect = {}
    test_static_usage(a.tmp)
    for name, fn in (("foreach_batch", lambda: test_foreach_batch(a.bootstrap, a.tmp, rows, expect)),
                     ("kafka_to_iceberg",
                      lambda: test_kafka_to_iceberg(a.bootstrap, a.tmp, rows, expect)),
                     ("spark_connect", lambda: test_spark_connect(a.bootstrap, a.tmp, rows, expect)),
                     ("progress_listener", lambda: test_listener(a.bootstrap, expect))):
        try:
            fn()
        except Exception as e:  # noqa: BLE001
            import traceback
            traceback.print_exc()
            fail(f"{name}: the test itself crashed: {e!r}")
        WORLD_TABLES.update(WORLD.tables)  # WORLD.reset() between jobs: keep every table
    _fake.WORLD.tables = WORLD_TABLES
    check_notifications(a.bootstrap, expect)
    run_engine(a.ws, a.bootstrap, a.tmp, expect)
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
