#!/usr/bin/python3
"""spark_corpus.py — the Kafka client and checker behind tests/it_spark.sh.

Replays the corpus of real Spark StreamingQueryProgress JSON in tests/data/spark/ (see
SOURCES.md there) through a running engine and checks every file's outcome against
MANIFEST.tsv, which states what SPEC 2.3 makes of it (key rule, idle trigger, source rules,
batch 0, in that order):

  attested   an envelope exists for (id, batchId); its statement has the expected recordCount,
             reportedInputRows (absent for "-"), the ranges the notification names, and the
             non-Kafka sources in window.ignoredSources; it verifies; no dead letter
  idle       no envelope for that batch, no dead letter, offset committed, counted
  dlq        a dead letter carrying the posted value, its windowseal.reason containing the
             reason substring (case-insensitive)

plus the key rule (a valid notification posted with a null key and with another key, and an
idle trigger with another key: dead-lettered, the reason naming both), the idle-trigger
sequence (batch 0, an idle trigger carrying batch id 1, batch 1: one unbroken chain), the
envelopes on the engine's attestations topic and the engine's counters. Every expected value
comes from the corpus files, MANIFEST.tsv and the records this script produced, never from what
the engine wrote. Output: `ok   - ...` / `FAIL - ...` lines; exit 1 if any failed.

MANIFEST.tsv's last column says which engine a file is posted to: `reject` (the default
notifications.initial_offsets) or `earliest`. Under `earliest` a batch 0 with a null start
(also "None" / "null") is expected as SPEC 2.3 says: numInputRows 0 -> every range
[endOffset, endOffset); otherwise every range starts at the partition's low watermark (the
records are produced from offset 0) and is attested only if it holds exactly numInputRows
records. Each `earliest` file names topics of its own, so [low watermark, endOffset) holds
exactly the records this script produced there.

    spark_corpus.py selfcheck --corpus DIR
    spark_corpus.py topics --corpus DIR      "--topic=NAME:PARTITIONS" per data topic, for
                                             `windowseal broker` (auto-created topics get 4)
    spark_corpus.py post  --boot B --corpus DIR --state FILE [--mode M] [--notif-topic T]
    spark_corpus.py check --boot B --corpus DIR --state FILE --group G --att DIR
                          --ws BIN --pub PUB --metrics URL [--timeout S] [--mode M]
                          [--notif-topic T] [--att-topic T] [--not-in T]...
      --mode         reject (default) or earliest: which MANIFEST.tsv rows are posted/checked
      --notif-topic  the engine's kafka.notifications.topic (dead letters: <topic>.dlq)
      --att-topic    the engine's kafka.attestations.topic: holds exactly the attested batches
      --not-in       another engine's topic: holds nothing of this phase's queries
"""
import argparse
import base64
import json
import os
import re
import subprocess
import sys
import time
import urllib.request

import confluent_kafka as ck

NOTIF_TOPIC = "windowseal.batches"
MODES = ("reject", "earliest")  # notifications.initial_offsets
AMBIGUOUS = re.compile(r"Spark read (\d+) rows, the earliest offsets hold (\d+)")
KAFKA_PREFIXES = ("KafkaV2[", "KafkaSource[")
MAX_OFFSET = 500  # records per partition the test produces stay below this
MAX_PARTITIONS = 8  # partitions per data topic, at most (the broker pre-creates them)
WRONG_KEY = "spk-not-the-query-id"

FAILS = 0


def ok(msg):
    print("ok   - " + msg, flush=True)


def fail(msg):
    global FAILS
    FAILS += 1
    print("FAIL - " + msg, flush=True)


def check(cond, msg, why=""):
    if cond:
        ok(msg)
    else:
        fail(msg + (": " + why if why else ""))
    return cond


# ---------------------------------------------------------------------------------------------
# The corpus


def load_manifest(corpus):
    rows = []
    with open(os.path.join(corpus, "MANIFEST.tsv")) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            cols = line.split("\t")
            if len(cols) != 7:
                raise SystemExit("MANIFEST.tsv: 7 columns expected: %r" % line)
            name, outcome, reason, records, reported, seq, mode = cols
            rows.append({"file": name, "outcome": outcome,
                         "reason": None if reason == "-" else reason,
                         "records": None if records == "-" else int(records),
                         "reported": None if reported == "-" else int(reported),
                         "seq": seq == "seq", "mode": mode})
    return rows


def reason_parts(e):
    """The substrings a dead letter's reason must contain (MANIFEST.tsv joins them by &&)."""
    return [r for r in (e["reason"] or "").split("&&") if r]


def as_offsets(v):
    """An offset as Spark (or a listener) gave it: a JSON value, or a string holding one.
    The strings "None" and "null" are JSON null (PySpark builds them with str())."""
    if isinstance(v, str):
        if v in ("None", "null"):
            return None
        try:
            return json.loads(v)
        except ValueError:
            return v  # not JSON (e.g. a Python repr): not an offset map
    return v


def is_offset_map(v):
    return isinstance(v, dict) and all(
        isinstance(parts, dict) and all(isinstance(o, int) for o in parts.values())
        for parts in v.values())


def is_kafka(src):
    return (str(src.get("description", "")).startswith(KAFKA_PREFIXES)
            or is_offset_map(as_offsets(src.get("endOffset"))))


def null_start_earliest(doc, src, mode):
    """A batch-0 source whose start initial_offsets=earliest resolves (SPEC 2.3)."""
    return (mode == "earliest" and doc.get("batchId") == 0 and
            as_offsets(src.get("startOffset")) is None)


def ranges_of(doc, mode="reject", lows=None):
    """[(topic, partition, from, until)] of the Kafka sources with offset maps at both ends;
    under mode earliest also those of batch 0 with a null start: [until, until) when the
    source's numInputRows is 0, else [low watermark, until), lows = {(topic, partition): low}
    (default 0: the records are produced from offset 0)."""
    out = []
    for src in doc.get("sources", []):
        if not is_kafka(src):
            continue
        start, end = as_offsets(src.get("startOffset")), as_offsets(src.get("endOffset"))
        if is_offset_map(end) and null_start_earliest(doc, src, mode):
            for topic, parts in end.items():
                for p, until in parts.items():
                    lo = until if src.get("numInputRows") == 0 else \
                        (lows or {}).get((topic, int(p)), 0)
                    out.append((topic, int(p), lo, until))
            continue
        if not (is_offset_map(start) and is_offset_map(end)):
            continue
        for topic, parts in end.items():
            for p, until in parts.items():
                out.append((topic, int(p), start[topic][p], until))
    return sorted(out)


def offsets_named(doc):
    """{(topic, partition): largest offset named anywhere} over the Kafka sources."""
    need = {}
    for src in doc.get("sources", []):
        if not is_kafka(src):
            continue
        for k in ("startOffset", "endOffset", "latestOffset"):
            m = as_offsets(src.get(k))
            if not is_offset_map(m):
                continue
            for topic, parts in m.items():
                for p, off in parts.items():
                    tp = (topic, int(p))
                    need[tp] = max(need.get(tp, 0), off)
    return need


def end_total(src):
    """Records in [0, endOffset) over a source's partitions (the records start at 0)."""
    end = as_offsets(src.get("endOffset"))
    return sum(o for parts in end.values() for o in parts.values()) if is_offset_map(end) \
        else None


def ignored_of(doc):
    return [s.get("description") for s in doc.get("sources", []) if not is_kafka(s)]


def load_corpus(corpus):
    entries = load_manifest(corpus)
    for e in entries:
        with open(os.path.join(corpus, e["file"]), "rb") as f:
            e["raw"] = f.read()
        e["doc"] = json.loads(e["raw"])
        e["qid"] = e["doc"]["id"]
        e["batch"] = e["doc"].get("batchId")
    return entries


# ---------------------------------------------------------------------------------------------
# selfcheck: the manifest agrees with the files


def cmd_selfcheck(a):
    entries = load_corpus(a.corpus)
    listed = {e["file"] for e in entries}
    on_disk = {f for f in os.listdir(a.corpus) if f.endswith(".json")}
    check(listed == on_disk, "MANIFEST.tsv lists every corpus file (%d)" % len(on_disk),
          "unlisted %s, missing %s" % (sorted(on_disk - listed), sorted(listed - on_disk)))
    sources_md = open(os.path.join(a.corpus, "SOURCES.md")).read()
    check(all(f in sources_md for f in on_disk), "SOURCES.md names every corpus file",
          str(sorted(f for f in on_disk if f not in sources_md)))
    bad = []
    topic_files = {}
    for e in entries:
        for topic, _ in offsets_named(e["doc"]):
            topic_files.setdefault(topic, set()).add(e["file"])
    for e in entries:
        if e["mode"] not in MODES:
            bad.append("%s: unknown initial_offsets %s" % (e["file"], e["mode"]))
        if e["mode"] == "earliest":
            shared = sorted(f for t, _ in offsets_named(e["doc"]) for f in topic_files[t]
                            if f != e["file"])
            if shared:
                bad.append("%s: shares a topic with %s (each earliest file needs fresh "
                           "topics)" % (e["file"], shared))
            m = AMBIGUOUS.search(e["reason"] or "")
            if m:
                # what the engine must find: numInputRows against [0, endOffset) per source
                found = [(s.get("numInputRows"), end_total(s)) for s in e["doc"]["sources"]
                         if is_kafka(s) and null_start_earliest(e["doc"], s, "earliest")]
                want = (int(m.group(1)), int(m.group(2)))
                diff = [f for f in found if f[0] not in (None, 0) and f[0] != f[1]]
                if not diff or diff[0] != want:
                    bad.append("%s: reason says read %d, hold %d; the file gives %s" %
                               (e["file"], want[0], want[1], found))
        if e["outcome"] not in ("attested", "idle", "dlq"):
            bad.append("%s: unknown outcome %s" % (e["file"], e["outcome"]))
        if e["outcome"] == "dlq" and not e["reason"]:
            bad.append("%s: dlq without a reason" % e["file"])
        for (topic, p), off in offsets_named(e["doc"]).items():
            if off >= MAX_OFFSET or p >= MAX_PARTITIONS:
                bad.append("%s: %s[%d] offset %d" % (e["file"], topic, p, off))
        if e["outcome"] == "attested":
            n = sum(u - f for _, _, f, u in ranges_of(e["doc"], e["mode"]))
            if n != e["records"]:
                bad.append("%s: offsets give %d records, manifest %s" % (e["file"], n,
                                                                         e["records"]))
            rows = [s.get("numInputRows") for s in e["doc"]["sources"] if is_kafka(s)]
            want = sum(rows) if rows and None not in rows else None
            if want != e["reported"]:
                bad.append("%s: numInputRows give %s, manifest %s" % (e["file"], want,
                                                                      e["reported"]))
    ids = {}
    for e in entries:
        if not e["seq"]:
            ids.setdefault(e["qid"], []).append(e["file"])
    seq_ids = {e["qid"] for e in entries if e["seq"]}
    for qid, files in ids.items():
        if len(files) > 1 or qid in seq_ids:
            bad.append("query id %s shared by %s" % (qid, files))
    check(not bad, "corpus consistent with MANIFEST.tsv (outcomes, record counts, "
          "reportedInputRows, offsets < %d, distinct query ids, fresh topics and ambiguity "
          "counts of the initial_offsets=earliest files)" % MAX_OFFSET, "; ".join(bad))
    return 1 if FAILS else 0


def data_topics(entries):
    """{topic: partitions} over every offset map of the corpus."""
    parts = {}
    for e in entries:
        for topic, p in offsets_named(e["doc"]):
            parts[topic] = max(parts.get(topic, 0), p + 1)
    return parts


def cmd_topics(a):
    for topic, n in sorted(data_topics(load_corpus(a.corpus)).items()):
        print("--topic=%s:%d" % (topic, n))
    return 0


# ---------------------------------------------------------------------------------------------
# post: records for every partition the corpus names, then every notification


def produce_sync(p, topic, **kw):
    box = []
    p.produce(topic, on_delivery=lambda err, m: box.append((err, m)), **kw)
    deadline = time.time() + 15
    while not box and time.time() < deadline:
        p.poll(0.05)
    if not box or box[0][0] is not None:
        raise RuntimeError("produce to %s failed: %s" % (topic, box[0][0] if box else "timeout"))
    return box[0][1].partition(), box[0][1].offset()


def cmd_post(a):
    entries = [e for e in load_corpus(a.corpus) if e["mode"] == a.mode]
    p = ck.Producer({"bootstrap.servers": a.boot, "linger.ms": 5})
    need = {}
    for e in entries:
        for tp, off in offsets_named(e["doc"]).items():
            need[tp] = max(need.get(tp, 0), off)
    total = 0
    errors = []

    def delivered(err, m):
        if err is not None:
            errors.append("%s[%d]: %s" % (m.topic(), m.partition(), err))

    for (topic, part), n in sorted(need.items()):
        for i in range(n):
            p.produce(topic, partition=part, key=b"k%d" % (i % 7),
                      value=b"spk record %s[%d]@%d" % (topic.encode(), part, i),
                      on_delivery=delivered)
            total += 1
            if total % 1000 == 0:
                p.poll(0)
    left = p.flush(30)
    if left or errors:
        raise SystemExit("post: %d records not delivered, %d failed: %s" %
                         (left, len(errors), sorted(set(errors))[:5]))
    print("# %d records produced to %d partitions" % (total, len(need)), flush=True)

    posts = []
    for e in entries:
        part, off = produce_sync(p, a.notif_topic, key=e["qid"].encode(), value=e["raw"])
        posts.append({"file": e["file"], "kind": "corpus", "key": e["qid"],
                      "partition": part, "offset": off})
    # The key rule: the same valid notification with a null key and with another key, and an
    # idle trigger with another key (the key rule comes before the idle rule). Once, in the
    # reject phase.
    valid = next(e for e in entries if e["outcome"] == "attested" and not e["seq"])
    idle = next((e for e in entries if e["outcome"] == "idle" and not e["seq"]), None)
    keyed = [] if a.mode != "reject" else [
        (valid, None, "null key"), (valid, WRONG_KEY, "another key"),
        (idle, WRONG_KEY, "idle trigger, another key")]
    for e, key, label in keyed:
        kw = {"value": e["raw"]}
        if key is not None:
            kw["key"] = key.encode()
        part, off = produce_sync(p, a.notif_topic, **kw)
        posts.append({"file": e["file"], "kind": "key", "label": label, "key": key,
                      "partition": part, "offset": off})
    with open(a.state, "w") as f:
        json.dump({"posts": posts}, f, indent=1)
    print("# %d notifications posted to %s" % (len(posts), a.notif_topic), flush=True)
    return 0


# ---------------------------------------------------------------------------------------------
# check


def consumer(boot, group):
    return ck.Consumer({"bootstrap.servers": boot, "group.id": group,
                        "enable.auto.commit": False, "enable.partition.eof": True,
                        "auto.offset.reset": "earliest", "fetch.wait.max.ms": 10})


def read_topic(c, topic):
    md = c.list_topics(topic, timeout=5)
    out = []
    for part in sorted(md.topics[topic].partitions):
        tp = ck.TopicPartition(topic, part)
        lo, hi = c.get_watermark_offsets(tp, timeout=5)
        if hi <= lo:
            continue
        c.assign([ck.TopicPartition(topic, part, lo)])
        deadline = time.time() + 10
        got = 0
        while got < hi - lo and time.time() < deadline:
            m = c.poll(0.2)
            if m is None or m.error():
                continue
            out.append(m)
            got += 1
        c.unassign()
    return out


def wait_committed(a, posts):
    """Until the engine's group has committed past every posted notification."""
    last = {}
    for ps in posts:
        last[ps["partition"]] = max(last.get(ps["partition"], -1), ps["offset"])
    c = ck.Consumer({"bootstrap.servers": a.boot, "group.id": a.group,
                     "enable.auto.commit": False})
    tps = [ck.TopicPartition(a.notif_topic, p) for p in sorted(last)]
    start = time.time()
    behind = []
    try:
        while True:
            try:
                got = c.committed(tps, timeout=5)
            except ck.KafkaException:
                got = []
            done = {t.partition: t.offset for t in got}
            behind = [p for p in last if done.get(p, -1001) <= last[p]]
            if not behind or time.time() - start > a.timeout:
                break
            time.sleep(0.3)
    finally:
        c.close()
    check(not behind, "engine committed all %d notifications (%.1f s)" %
          (len(posts), time.time() - start),
          "partitions %s not committed past %s after %d s" %
          (behind, [last[p] for p in behind], a.timeout))
    return not behind


def env_path(att, qid, batch, suffix):
    return os.path.join(att, qid, "%020d%s" % (batch, suffix))


def statement(path):
    with open(path) as f:
        env = json.load(f)
    return json.loads(base64.b64decode(env["payload"]))


def scrape(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            text = r.read().decode()
    except OSError as err:
        return None, str(err)
    series = {}
    for line in text.splitlines():
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$", line)
        if m and not line.startswith("#"):
            series[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return series, None


def low_watermarks(a, doc):
    """{(topic, partition): low watermark} of every partition the notification names."""
    c = ck.Consumer({"bootstrap.servers": a.boot, "group.id": "it-spark-reader"})
    try:
        return {tp: c.get_watermark_offsets(ck.TopicPartition(tp[0], tp[1]), timeout=5)[0]
                for tp in offsets_named(doc)}
    finally:
        c.close()


def check_initial(e, win, lows):
    """initial_offsets=earliest, batch 0 with a null start: the ranges SPEC 2.3 resolves."""
    name, doc = e["file"], e["doc"]
    have = {(s.get("topic"), s.get("partition")): (s.get("fromOffset"), s.get("untilOffset"))
            for s in win.get("sources", [])}
    for i, src in enumerate(doc.get("sources", [])):
        if not (is_kafka(src) and null_start_earliest(doc, src, "earliest")):
            continue
        end = as_offsets(src.get("endOffset"))
        tps = sorted((t, int(p), o) for t, parts in end.items() for p, o in parts.items())
        start = src.get("startOffset")
        how = "startOffset %s" % ("null" if start is None else json.dumps(start))
        if src.get("numInputRows") == 0:
            bad = ["%s[%d]: %s" % (t, p, have.get((t, p))) for t, p, o in tps
                   if have.get((t, p)) != (o, o)]
            check(not bad, "%s: sources[%d] (%s, numInputRows 0): every range is [endOffset, "
                  "endOffset) %s" % (name, i, how, ["%s[%d]@%d" % x for x in tps]),
                  "; ".join(bad))
        else:
            bad = ["%s[%d]: %s, low watermark %s" % (t, p, have.get((t, p)), lows.get((t, p)))
                   for t, p, o in tps if have.get((t, p)) != (lows.get((t, p)), o)]
            check(not bad, "%s: sources[%d] (%s, numInputRows %s): every range is [low "
                  "watermark, endOffset) %s" %
                  (name, i, how, src.get("numInputRows"),
                   ["%s[%d] [%d,%d)" % (t, p, lows.get((t, p), -1), o) for t, p, o in tps]),
                  "; ".join(bad))


def check_attested(a, e, dead):
    name = e["file"]
    env = env_path(a.att, e["qid"], e["batch"], ".dsse.json")
    if not check(os.path.exists(env), "%s: attested (envelope for batch %d)" % (name, e["batch"]),
                 "no %s" % env):
        return
    r = subprocess.run([a.ws, "verify", env, "--pubkey", a.pub, "--evidence",
                        env_path(a.att, e["qid"], e["batch"], ".evidence.lz4")],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    check(r.returncode == 0, "%s: envelope and evidence verify" % name,
          r.stdout.decode(errors="replace").strip()[-300:])
    pred = statement(env)["predicate"]
    win = pred.get("window", {})
    got = pred.get("aggregates", {}).get("recordCount")
    check(got == e["records"], "%s: recordCount %s" % (name, e["records"]), "got %s" % got)
    if e["reported"] is None:
        check("reportedInputRows" not in win, "%s: no reportedInputRows" % name,
              "got %s" % win.get("reportedInputRows"))
    else:
        check(win.get("reportedInputRows") == e["reported"],
              "%s: reportedInputRows %d" % (name, e["reported"]),
              "got %s" % win.get("reportedInputRows"))
    lows = low_watermarks(a, e["doc"]) if e["mode"] == "earliest" else None
    if lows is not None:
        check_initial(e, win, lows)
    want = ranges_of(e["doc"], e["mode"], lows)
    have = sorted((s.get("topic"), s.get("partition"), s.get("fromOffset"), s.get("untilOffset"))
                  for s in win.get("sources", []))
    check(have == want, "%s: window.sources are the notification's %d ranges" % (name, len(want)),
          "got %s, want %s" % (have, want))
    ign = ignored_of(e["doc"])
    if ign:
        check(sorted(win.get("ignoredSources") or []) == sorted(ign),
              "%s: ignoredSources %s" % (name, ign), "got %s" % win.get("ignoredSources"))
    else:
        check("ignoredSources" not in win, "%s: no ignoredSources" % name,
              "got %s" % win.get("ignoredSources"))
    check(win.get("batchId") == e["batch"] and pred.get("stream", {}).get("id") == e["qid"],
          "%s: statement names query and batch" % name,
          "got %s/%s" % (pred.get("stream", {}).get("id"), win.get("batchId")))
    check(not dead, "%s: not dead-lettered" % name, "reason %r" % dead[:1])


def headers(m):
    return {k: (v or b"").decode(errors="replace") for k, v in (m.headers() or [])}


def check_topics(a, entries, posts):
    """The attestations topic holds exactly this phase's attested batches (key = query id,
    windowseal.batch-id header); another engine's topics hold nothing of this phase."""
    c = consumer(a.boot, "it-spark-reader")
    try:
        if a.att_topic:
            want = {(e["qid"], e["batch"]) for e in entries.values() if e["outcome"] == "attested"}
            got = set()
            for m in read_topic(c, a.att_topic):
                try:
                    got.add(((m.key() or b"").decode(), int(headers(m).get("windowseal.batch-id"))))
                except (TypeError, ValueError):
                    got.add(((m.key() or b"").decode(), None))
            check(got == want, "attestations topic %s: one envelope per attested batch (%d), "
                  "key = query id" % (a.att_topic, len(want)),
                  "missing %s, unexpected %s" % (sorted(want - got), sorted(got - want)))
        qids = {e["qid"].encode() for e in entries.values()}
        raws = {entries[ps["file"]]["raw"] for ps in posts}
        for topic in a.not_in:
            found = [m.offset() for m in read_topic(c, topic)
                     if m.key() in qids or m.value() in raws]
            check(not found, "%s holds nothing of this phase's %d queries" % (topic, len(qids)),
                  "offsets %s" % found[:10])
    finally:
        c.close()


def cmd_check(a):
    entries = {e["file"]: e for e in load_corpus(a.corpus) if e["mode"] == a.mode}
    with open(a.state) as f:
        posts = json.load(f)["posts"]
    wait_committed(a, posts)
    dlq_topic = a.notif_topic + ".dlq"

    c = consumer(a.boot, "it-spark-reader")
    dlq = {}
    for m in read_topic(c, dlq_topic):
        hd = headers(m)
        try:
            where = (int(hd.get("windowseal.source-partition", "-1")),
                     int(hd.get("windowseal.source-offset", "-1")))
        except ValueError:
            where = (-1, -1)
        if hd.get("windowseal.source-topic") != a.notif_topic:
            where = (-2, m.offset())  # from another topic: a stray
        dlq.setdefault(where, []).append((m.value(), hd.get("windowseal.reason", "")))
    c.close()

    expected_dlq = set()
    n_idle = 0
    for ps in posts:
        e = entries[ps["file"]]
        where = (ps["partition"], ps["offset"])
        dead = [r for _, r in dlq.get(where, [])]
        if ps["kind"] == "key":
            expected_dlq.add(where)
            mine = dlq.get(where, [])
            reason = mine[0][1] if mine else ""
            want = ["null", e["qid"]] if ps["key"] is None else [ps["key"], e["qid"]]
            check(mine and mine[0][0] == e["raw"] and
                  all(w.lower() in reason.lower() for w in want),
                  "key rule, %s (%s): dead-lettered, reason names %s" %
                  (ps["label"], e["file"], " and ".join(want)),
                  "reason %r" % reason if mine else "no dead letter at %s[%d]@%d" %
                  (a.notif_topic, where[0], where[1]))
            continue
        if e["outcome"] == "dlq":
            expected_dlq.add(where)
            mine = dlq.get(where, [])
            reason = mine[0][1] if mine else ""
            check(mine and mine[0][0] == e["raw"] and
                  all(r.lower() in reason.lower() for r in reason_parts(e)),
                  "%s: dead-lettered to %s, reason contains \"%s\"" %
                  (e["file"], dlq_topic, "\" and \"".join(reason_parts(e))),
                  ("reason %r" % reason if mine[0][0] == e["raw"] else "value differs")
                  if mine else "no dead letter")
            if e["batch"] is not None and isinstance(e["batch"], int) and e["batch"] >= 0:
                env = env_path(a.att, e["qid"], e["batch"], ".dsse.json")
                check(not os.path.exists(env), "%s: nothing attested" % e["file"], env)
        elif e["outcome"] == "idle":
            n_idle += 1
            check(not dead, "%s: idle trigger not dead-lettered" % e["file"], "reason %r" % dead[:1])
            twin = any(o["qid"] == e["qid"] and o["batch"] == e["batch"] and
                       o["outcome"] == "attested" for o in entries.values())
            if not twin:  # in the sequence the same batch id is attested by the real batch
                env = env_path(a.att, e["qid"], e["batch"], ".dsse.json")
                check(not os.path.exists(env), "%s: idle trigger not attested" % e["file"], env)
        else:
            check_attested(a, e, dead)
    stray = sorted((w, [r for _, r in v]) for w, v in dlq.items() if w not in expected_dlq)
    check(not stray, "no other dead letters (%d expected)" % len(expected_dlq),
          "; ".join("%s[%d]@%d: %s" % (a.notif_topic, w[0], w[1], r[0][:160]) for w, r in stray))
    check_topics(a, entries, posts)

    # The sequence: batch 0, an idle trigger carrying batch id 1, batch 1 — one unbroken chain.
    seq = [e for e in entries.values() if e["seq"]]
    if seq:
        qid = seq[0]["qid"]
        env1 = env_path(a.att, qid, 1, ".dsse.json")
        if check(os.path.exists(env_path(a.att, qid, 0, ".dsse.json")) and os.path.exists(env1),
                 "sequence: batches 0 and 1 attested"):
            integ = statement(env1)["predicate"].get("integrity", {})
            check("gaps" not in integ, "sequence: batch 1 records no gap (the idle trigger "
                  "is not a batch)", "gaps %s" % integ.get("gaps"))
            check(integ.get("chain", {}).get("chainLength") == 2,
                  "sequence: chainLength 2 at batch 1",
                  "got %s" % integ.get("chain", {}).get("chainLength"))
            check(integ.get("previousWindow", {}).get("windowId") == "%s/0" % qid,
                  "sequence: batch 1 links to batch 0",
                  "got %s" % integ.get("previousWindow"))

    # Counters
    series, err = scrape(a.metrics)
    if check(series is not None, "metrics scraped", err or ""):
        idle = series.get("windowseal_idle_triggers_total")
        check(idle == n_idle, "windowseal_idle_triggers_total = %d idle triggers posted" % n_idle,
              "got %s" % idle)
        mism = series.get("windowseal_input_rows_mismatch_total")
        want = sum(1 for e in entries.values() if e["outcome"] == "attested" and
                   e["reported"] is not None and e["reported"] != e["records"])
        check(mism is not None, "windowseal_input_rows_mismatch_total present")
        check(mism == want, "windowseal_input_rows_mismatch_total = %d" % want, "got %s" % mism)
    return 1 if FAILS else 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("selfcheck")
    s.add_argument("--corpus", required=True)
    s = sub.add_parser("topics")
    s.add_argument("--corpus", required=True)
    s = sub.add_parser("post")
    for k in ("--boot", "--corpus", "--state"):
        s.add_argument(k, required=True)
    s.add_argument("--mode", choices=MODES, default="reject")
    s.add_argument("--notif-topic", default=NOTIF_TOPIC)
    s = sub.add_parser("check")
    for k in ("--boot", "--corpus", "--state", "--group", "--att", "--ws", "--pub", "--metrics"):
        s.add_argument(k, required=True)
    s.add_argument("--timeout", type=float, default=40)
    s.add_argument("--mode", choices=MODES, default="reject")
    s.add_argument("--notif-topic", default=NOTIF_TOPIC)
    s.add_argument("--att-topic", default=None)
    s.add_argument("--not-in", action="append", default=[])
    a = ap.parse_args()
    return {"selfcheck": cmd_selfcheck, "topics": cmd_topics, "post": cmd_post, "check": cmd_check}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
