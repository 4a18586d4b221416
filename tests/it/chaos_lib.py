#!/usr/bin/python3
"""chaos_lib.py — the stream, the engine processes and the end-state checker of tests/it_chaos*.sh.

DESIGN. The chaos scenarios (chaos_run.py) all end the same way: whatever was killed, refused
or corrupted on the way, the end state must be exactly the one a calm run produces. This module
holds what they share:

  Stream   posts a plan of N queries' batches (small records on a data topic per query, then a
           native notification), optionally with real missing batches (records produced, the
           notification never posted: the next window must carry a gap) and bad notifications
           (must be dead-lettered). State lives in a JSON file in tests/it/wsit.py's format, so
           wsit's independent recomputation (SPEC 3.1 encoding, 3.2 stream digest, RFC 6962
           roots, window log, DSSE signature, `windowseal verify --evidence`) is reused as is.
  Engine   one `windowseal run` process: start (optionally with WS_CRASH_AT), kill -9, SIGTERM,
           wait for log events, VmHWM.
  check()  the end state: every posted window exactly once in the file sink (and in S3 when
           given), on the attestations topic only with byte-identical copies (counted and
           reported), recomputed by wsit; no gap but the real ones; the chain heads in Kafka
           one per chain position (a second, different head for one position is a fork); the
           dead-letter topic holds exactly the bad notifications; every notification offset
           committed; `windowseal audit` exits 0. Every failure names the windows lost,
           duplicated or different.

Output: `ok   - ...` / `FAIL - ...` lines (counted by the shell script) and `# ...` notes.
"""
import atexit
import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wsit  # noqa: E402  (the independent checker of it_engine.sh)

import confluent_kafka as ck  # noqa: E402

NOTIF_TOPIC = wsit.NOTIF_TOPIC
ATT_TOPIC = wsit.ATT_TOPIC
DLQ_TOPIC = wsit.DLQ_TOPIC
HEADS_TOPIC = ATT_TOPIC + ".heads"

ok = wsit.ok


def fail(msg):
    wsit.fail(msg)


def note(msg):
    print("# " + msg, flush=True)


def fails():
    return wsit.FAILS


# ---------------------------------------------------------------------------------------------
# The stream


def produce_many(p, items):
    """items: list of (topic, kwargs); produce all, wait for every report; [(part, off)]."""
    box = [None] * len(items)

    def cb(i):
        return lambda err, m: box.__setitem__(i, (err, m))

    for i, (topic, kw) in enumerate(items):
        while True:
            try:
                p.produce(topic, on_delivery=cb(i), **kw)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    deadline = time.time() + 30
    while any(b is None for b in box) and time.time() < deadline:
        p.poll(0.05)
    out = []
    for i, b in enumerate(box):
        if b is None or b[0] is not None:
            raise RuntimeError("produce to %s failed: %s" % (items[i][0], b[0] if b else "timeout"))
        out.append((b[1].partition(), b[1].offset()))
    return out


class Stream:
    """A plan of windows over nq queries; query i reads data topic chaos-d<i>, partitions 0 and 1
    (the mock auto-creates 4), and posts its notifications to partition i % notif_parts."""

    def __init__(self, path):
        self.path = path
        self.st = wsit.load(path)

    @staticmethod
    def init(path, boot, out, nq, notif_parts, prefix="chaos"):
        st = {"boot": boot, "out": out, "queries": {}, "produced": {}, "windows": [],
              "skipped": [], "bad": [], "dups": [], "env_sha": {}, "posted": 0,
              "notif_parts": notif_parts}
        for i in range(nq):
            q = "Q%d" % i
            topics = [["%s-d%d" % (prefix, i), 0], ["%s-d%d" % (prefix, i), 1]]
            st["queries"][q] = {"id": "%s-q%d" % (prefix, i), "topics": topics,
                                "name": "%s query %d" % (prefix, i),
                                "notif_partition": i % notif_parts,
                                "cursor": {"%s/%d" % (t, p): 0 for t, p in topics},
                                "next_batch": 0, "pending_gap": None}
        os.makedirs(out, exist_ok=True)
        wsit.save(path, st)
        return Stream(path)

    def save(self):
        wsit.save(self.path, self.st)

    def qids(self):
        return [self.st["queries"][q]["id"] for q in sorted(self.st["queries"])]

    def post_batch(self, p, q, skip=False, counts=None, seed=0, big=None):
        """Produce the records of q's next batch, then (unless skip) its notification.
        big: a size; every record's value is then that many random bytes (incompressible)."""
        st = self.st
        qs = st["queries"][q]
        n = qs["next_batch"]
        rnd = random.Random("%s/%d/%d" % (q, n, seed))
        counts = counts or [rnd.randrange(0, 4) for _ in qs["topics"]]
        items = []
        for (topic, part), cnt in zip(qs["topics"], counts):
            for j in range(cnt):
                key = rnd.choice([b"k%d" % rnd.randrange(100), None, b""])
                value = rnd.choice([None, b"", bytes(rnd.randrange(256)
                                                     for _ in range(rnd.randrange(1, 64)))])
                if big:
                    value = os.urandom(big)
                kw = {"partition": part, "key": key, "value": value}
                if rnd.random() < 0.3:
                    kw["headers"] = [("h", b"\x00\x01"), ("nul", None)]
                items.append((topic, kw))
        offs = produce_many(p, items)
        ranges = []
        k = 0
        for (topic, part), cnt in zip(qs["topics"], counts):
            cur = "%s/%d" % (topic, part)
            frm = qs["cursor"][cur]
            got = [o for (_, o) in offs[k:k + cnt]]
            k += cnt
            if got != list(range(frm, frm + cnt)):
                raise RuntimeError("%s: offsets %s, expected from %d" % (cur, got, frm))
            qs["cursor"][cur] = frm + cnt
            ranges.append([topic, part, frm, frm + cnt])
        wid = "%s/%d" % (qs["id"], n)
        notif = {"queryId": qs["id"], "runId": "c0ffee00-0000-4000-8000-%012d" % n,
                 "name": qs["name"], "batchId": n,
                 "sources": [{"topic": t, "partition": pp, "fromOffset": f, "untilOffset": u}
                             for t, pp, f, u in ranges]}
        value = json.dumps(notif)
        rec = {"q": q, "qid": qs["id"], "batch": n, "wid": wid, "ranges": ranges, "ignored": [],
               "outputs": [], "value": value, "shape": "native", "name": qs["name"],
               "run_id": notif["runId"], "gap": None}
        qs["next_batch"] = n + 1
        if skip:
            st["skipped"].append(rec)
            if qs["pending_gap"] is None:
                qs["pending_gap"] = n
            return rec
        if qs["pending_gap"] is not None:
            rec["gap"] = [qs["pending_gap"], n]
            qs["pending_gap"] = None
        [(part, off)] = produce_many(p, [(NOTIF_TOPIC, {"key": qs["id"].encode(),
                                                         "value": value.encode(),
                                                         "partition": qs["notif_partition"]})])
        rec.update({"notif_partition": part, "notif_offset": off})
        st["windows"].append(rec)
        st["posted"] += 1
        return rec

    def post_bad(self, p, label, value, reason, key=None, partition=0):
        """A notification the engine must dead-letter; reason: text the DLQ reason must hold."""
        vb = value.encode() if isinstance(value, str) else value
        key = key if key is not None else notification_key(vb, "chaos-bad-%s" % label)
        kb = key.encode() if isinstance(key, str) else key
        [(part, off)] = produce_many(p, [(NOTIF_TOPIC, {"key": kb, "value": vb,
                                                         "partition": partition})])
        self.st["bad"].append({"label": label, "key": kb.hex(), "value_sha": sha(vb),
                               "reason": reason, "partition": part, "offset": off,
                               "len": -1 if vb is None else len(vb),
                               "sha256": hashlib.sha256(vb or b"").hexdigest()})
        return part, off


def notification_key(value, fallback):
    """The key a well-behaved producer gives: the query id (the engine's key rule comes first,
    so a hostile notification keyed otherwise would be refused for its key, not its flaw)."""
    try:
        doc = json.loads(value)
        qid = doc.get("queryId", doc.get("id")) if isinstance(doc, dict) else None
    except (ValueError, TypeError, RecursionError):
        qid = None
    return qid if isinstance(qid, str) and qid else fallback


def sha(b):
    return hashlib.sha256(b if b is not None else b"\x00null").hexdigest()


def producer(boot, compression="none"):
    return ck.Producer({"bootstrap.servers": boot, "linger.ms": 0, "message.max.bytes": 30000000,
                        "enable.idempotence": True, "compression.type": compression,
                        "log_level": 3})


# ---------------------------------------------------------------------------------------------
# Engine processes


_CHILDREN = []  # every process started here: killed when the lane exits, however it exits


def _reap():
    for proc in _CHILDREN:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _on_term(signum, frame):
    raise SystemExit(128 + signum)  # `timeout` or the shell script: run the finally blocks


atexit.register(_reap)
signal.signal(signal.SIGTERM, _on_term)


def track(proc):
    _CHILDREN.append(proc)
    return proc


class Engine:
    """One `windowseal run`; stderr goes to log (appended per start of the same name)."""

    def __init__(self, ws, config, log, sets=(), crash_at=None, name="engine"):
        self.name = name
        self.log = log
        env = dict(os.environ)
        env.pop("WS_CRASH_AT", None)
        if crash_at:
            env["WS_CRASH_AT"] = crash_at
        args = [ws, "run", "-c", config]
        for s in sets:
            args += ["--set", s]
        self.logf = open(log, "ab")
        self.log_start = self.logf.tell()
        self.t0 = time.time()
        self.proc = track(subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=self.logf,
                                           env=env))

    def alive(self):
        return self.proc.poll() is None

    def lines(self):
        with open(self.log, "rb") as f:
            f.seek(self.log_start)
            return f.read().decode(errors="replace").splitlines()

    def events(self, event):
        pat = " event=%s " % event
        return [ln for ln in self.lines() if pat in ln + " "]

    def wait_event(self, event, count=1, timeout=30.0, while_alive=True):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if len(self.events(event)) >= count:
                return True
            if while_alive and not self.alive():
                return len(self.events(event)) >= count
            time.sleep(0.05)
        return False

    def vm_hwm_kb(self):
        try:
            with open("/proc/%d/status" % self.proc.pid) as f:
                for ln in f:
                    if ln.startswith("VmHWM:"):
                        return int(ln.split()[1])
        except OSError:
            pass
        return -1

    def kill9(self):
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.logf.close()

    def term(self, timeout=15):
        # run.c installs its SIGTERM handler right after logging `start`: before that, SIGTERM
        # just ends the process (nothing is in hand yet, but the exit status would be -15)
        if self.wait_event("start", 1, 10):
            time.sleep(0.2)
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
            rc = "still running %d s after SIGTERM (killed)" % timeout
        self.logf.close()
        return rc

    def wait_exit(self, timeout):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None


def attested_wids(log_paths):
    """window ids the logs say were attested (a window attested again after a crash counts
    twice: that is the duplicate figure of the logs)."""
    out = []
    for path in log_paths:
        with open(path, errors="replace") as f:
            for ln in f:
                m = re.search(r" event=window_attested .*window=(\S+)", ln)
                if m:
                    out.append(m.group(1))
    return out


def sanitizer_reports(paths):
    bad = []
    for path in paths:
        try:
            with open(path, errors="replace") as f:
                txt = f.read()
        except OSError:
            continue
        if re.search(r"ERROR: (Address|Leak)Sanitizer|runtime error:", txt):
            bad.append(os.path.basename(path))
    return bad


# ---------------------------------------------------------------------------------------------
# Waiting and checking


def wait_windows(stream, att, timeout, extra_ok="", logs=None):
    """Until every posted window's envelope is in the file sink — and, with logs, until the
    engine logged it attested: that line comes after the topic's and the head's delivery
    reports, a moment after the file sink holds the window, so a lane that counts
    window_attested lines next passes the logs."""
    t0 = time.time()
    while True:
        done = set(attested_wids(logs)) if logs else None
        missing = [w["wid"] for w in stream.st["windows"]
                   if not os.path.exists(wsit.env_path(att, w["qid"], w["batch"], ".dsse.json"))
                   or (done is not None and w["wid"] not in done)]
        if not missing:
            ok("all %d posted windows attested after %.1f s%s"
               % (len(stream.st["windows"]), time.time() - t0, extra_ok))
            return True
        if time.time() - t0 > timeout:
            fail("LOST? after %d s %d windows still not attested: %s"
                 % (timeout, len(missing), ", ".join(missing[:10])))
            return False
        time.sleep(0.2)


def consumer(boot, group="chaos-checker"):
    return ck.Consumer({"bootstrap.servers": boot, "group.id": group,
                        "enable.auto.commit": False, "enable.partition.eof": True,
                        "auto.offset.reset": "error", "fetch.wait.max.ms": 10,
                        "fetch.message.max.bytes": 30000000,
                        "receive.message.max.bytes": 100000000, "log_level": 3})


def committed_offsets(boot, group, topic, nparts):
    c = ck.Consumer({"bootstrap.servers": boot, "group.id": group,
                     "enable.auto.commit": False})
    try:
        res = c.committed([ck.TopicPartition(topic, p) for p in range(nparts)], timeout=10)
        return {tp.partition: tp.offset for tp in res}
    finally:
        c.close()


def check(stream, att, ws, pub, group, s3=None, deadletters=True, verbose_reasons=False):
    """The end state (see the module comment). s3: (client, bucket, prefix) or None.
    Returns the number of windows checked."""
    st = stream.st
    boot = st["boot"]
    c = consumer(boot)

    class A:  # what wsit.check_window reads from its argparse namespace
        pass

    a = A()
    a.att, a.ws, a.pub = att, ws, pub
    pk, keyid = wsit.keyid_of(pub)

    # the attestations topic by window id
    attested = {}
    for m in wsit.read_topic(c, ATT_TOPIC):
        hd = {n: v for n, v in m["headers"]}
        wid = (hd.get("windowseal.window-id") or b"").decode(errors="replace")
        attested.setdefault(wid, []).append(m)
    expected = {w["wid"] for w in st["windows"]}
    extra = sorted(set(attested) - expected)
    if extra:
        fail("UNEXPECTED windows on %s (never posted, or a skipped batch signed): %s"
             % (ATT_TOPIC, extra[:10]))
    missing_topic = sorted(expected - set(attested))
    if missing_topic:
        fail("LOST from %s: %s" % (ATT_TOPIC, missing_topic[:10]))
    dups = {wid: len(ms) for wid, ms in attested.items() if len(ms) > 1}
    differing = [wid for wid, ms in attested.items() if len({m["value"] for m in ms}) > 1]
    if differing:
        fail("RE-SIGNED: windows on %s more than once with DIFFERENT bytes: %s"
             % (ATT_TOPIC, differing[:10]))
    else:
        ok("%s: %d messages for %d windows; %d windows there more than once, all "
           "byte-identical copies%s" % (ATT_TOPIC, sum(len(v) for v in attested.values()),
                                        len(attested), len(dups),
                                        (": " + ", ".join("%s x%d" % kv for kv in
                                                          sorted(dups.items())[:8]))
                                        if dups else ""))

    # per window, recomputed independently (wsit), per query in batch order
    notif_ts = {(m["partition"], m["offset"]): m["ts"] for m in wsit.read_topic(c, NOTIF_TOPIC)}
    chains, cache = {}, {}
    nbad = 0
    real_gaps = 0
    for w in sorted(st["windows"], key=lambda w: (w["q"], w["batch"])):
        try:
            recs = wsit.window_records(st, cache, c, w)
            errs, _, _ = wsit.check_window(a, st, w, recs,
                                           notif_ts[(w["notif_partition"], w["notif_offset"])],
                                           chains.setdefault(w["q"], {"leaves": []}), pk, keyid,
                                           attested)
        except (OSError, ValueError, KeyError, RuntimeError) as e:
            errs = ["cannot check (LOST?): %s: %s" % (type(e).__name__, e)]
        real_gaps += 1 if w["gap"] else 0
        if errs:
            nbad += 1
            for e in errs[:4]:
                fail("window %s: %s" % (w["wid"], e))
    if not nbad:
        ok("%d windows of %d queries recomputed independently (stream digest, Merkle root, "
           "sources, signature, evidence, chain links, `windowseal verify --evidence`): all "
           "match; gaps exactly the %d real missing batches"
           % (len(st["windows"]), len(chains), real_gaps))

    # the file sink: exactly one envelope + one evidence per posted window, nothing else
    want = {}
    for w in st["windows"]:
        want.setdefault(w["qid"], set()).update(
            {"%020d.dsse.json" % w["batch"], "%020d.evidence.lz4" % w["batch"]})
    have = {}
    debris = []
    for d in os.listdir(att):
        if os.path.isdir(os.path.join(att, d)):
            names = os.listdir(os.path.join(att, d))
            # sinks/file.c writes <name>.tmp.<pid> then renames: a kill -9 in between leaves
            # the temporary file behind (another pid never reuses it): reported, not a window
            debris += ["%s/%s" % (d, f) for f in names if re.search(r"\.tmp\.\d+$", f)]
            have[d] = {f for f in names if f != "checkpoint" and not re.search(r"\.tmp\.\d+$", f)}
    if debris:
        note("file sink: %d temporary files left by kills (not windows; sinks/file.c does not "
             "clean them up): %s" % (len(debris), debris[:4]))
        print("figure sink_debris %d" % len(debris), flush=True)
    lost = sorted("%s/%s" % (q, f) for q in want for f in want[q] - have.get(q, set()))
    extra = sorted("%s/%s" % (q, f) for q in have for f in have[q] - want.get(q, set()))
    if lost or extra:
        fail("file sink: LOST %s; EXTRA %s" % (lost[:8] or "none", extra[:8] or "none"))
    else:
        ok("file sink: exactly one envelope and one evidence per window (%d windows)"
           % len(st["windows"]))

    if s3:
        check_s3(st, att, *s3)

    # chain heads: one head per chain position; two different heads for one position = fork
    heads = {}
    for m in wsit.read_topic(c, HEADS_TOPIC):
        try:
            h = json.loads(m["value"])
        except (TypeError, ValueError):
            fail("heads topic: unreadable head at %d" % m["offset"])
            continue
        heads.setdefault(h.get("queryId"), {}).setdefault(h.get("logSize"), set()).add(m["value"])
    by_q = {}
    for w in st["windows"]:
        by_q.setdefault(w["qid"], []).append(w["batch"])
    forks, short, rep = [], [], 0
    for qid, batches in by_q.items():
        hq = heads.get(qid, {})
        for size, vals in hq.items():
            if len(vals) > 1:
                forks.append("%s@%s" % (qid, size))
        sizes = sorted(s for s in hq if isinstance(s, int))
        if sizes != list(range(1, len(batches) + 1)):
            short.append("%s: head sizes %s for %d windows" % (qid, sizes[-3:], len(batches)))
        else:
            last = json.loads(next(iter(hq[len(batches)])))
            if last.get("lastBatchId") != max(batches):
                short.append("%s: last head at batch %s, last window %d"
                             % (qid, last.get("lastBatchId"), max(batches)))
        rep += sum(1 for v in hq.values() if v)
    if forks:
        fail("FORK: two different chain heads for one chain position: %s" % forks[:8])
    elif short:
        fail("chain heads do not match the windows: %s" % short[:5])
    else:
        ok("%s: one head per chain position for every query, each chain %s windows long, no fork"
           % (HEADS_TOPIC, "/".join(str(len(v)) for _, v in sorted(by_q.items()))))

    # dead letters, by the source partition and offset their headers name
    if deadletters:
        dl = {}
        for m in wsit.read_topic(c, DLQ_TOPIC):
            hd = {n: v for n, v in m["headers"]}
            src = ((hd.get("windowseal.source-partition") or b"").decode(),
                   (hd.get("windowseal.source-offset") or b"").decode())
            dl.setdefault(src, []).append((m, hd))
        valid = {(str(w["notif_partition"]), str(w["notif_offset"])) for w in st["windows"]}
        bads = {(str(b["partition"]), str(b["offset"])) for b in st["bad"]}
        nok = ndropped = 0
        for b in st["bad"]:
            ms = dl.get((str(b["partition"]), str(b["offset"])))
            if not ms:
                fail("dead letter '%s' (%s[%d]@%d, %d bytes) LOST: not on %s"
                     % (b["label"], NOTIF_TOPIC, b["partition"], b["offset"], b["len"],
                        DLQ_TOPIC))
                continue
            m, hd = ms[0]
            reason = (hd.get("windowseal.reason") or b"").decode(errors="replace")
            dropped = (hd.get("windowseal.dropped") or b"").decode(errors="replace")
            if not reason or b["reason"].lower() not in reason.lower():
                fail("dead letter '%s': reason %r lacks %r" % (b["label"], reason[:120],
                                                              b["reason"]))
            elif dropped and "sha256 %s" % b["sha256"] not in dropped:
                fail("dead letter '%s': key and value dropped, but %r does not name the "
                     "value's sha256" % (b["label"], dropped[:160]))
            elif not dropped and hashlib.sha256(m["value"] or b"").hexdigest() != b["sha256"]:
                fail("dead letter '%s': its value differs from the notification's" % b["label"])
            else:
                nok += 1
                ndropped += 1 if dropped else 0
                if verbose_reasons:
                    note("  %-34s -> %s%s" % (b["label"], reason[:110],
                                              " [key+value dropped: too large]" if dropped
                                              else ""))
        wrong = [k for k in dl if k in valid]
        unknown = [k for k in dl if k not in valid and k not in bads]
        dldups = sum(len(v) - 1 for v in dl.values())
        if wrong:
            fail("%d valid notifications were dead-lettered: %s" % (len(wrong), wrong[:5]))
        elif unknown:
            fail("%d unexpected dead letters (source partition, offset): %s"
                 % (len(unknown), unknown[:5]))
        elif nok == len(st["bad"]):
            ok("%s: each of the %d bad notifications with its reason (%d repeated after a "
               "crash, %d too large to copy: dropped with their sha256), no valid one"
               % (DLQ_TOPIC, len(st["bad"]), dldups, ndropped))

    # offsets: everything done is committed, nothing is left behind
    nparts = st["notif_parts"]
    ends = {}
    for pnum in range(nparts):
        _, hi = c.get_watermark_offsets(ck.TopicPartition(NOTIF_TOPIC, pnum), timeout=10)
        ends[pnum] = hi
    com = committed_offsets(boot, group, NOTIF_TOPIC, nparts)
    off = {pnum: (com.get(pnum), ends[pnum]) for pnum in ends if com.get(pnum) != ends[pnum]
           and ends[pnum] > 0}
    if off:
        fail("committed offsets differ from the end of %s (partition: (committed, end)): %s"
             % (NOTIF_TOPIC, off))
    else:
        ok("group %s committed every partition of %s up to its end %s"
           % (group, NOTIF_TOPIC, [ends[pn] for pn in sorted(ends)]))
    c.close()

    # the auditor
    r = subprocess.run([ws, "audit", att, "--pubkey", pub], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
    out = r.stdout.decode(errors="replace")
    if r.returncode == 0:
        m = re.search(r"(\d+) chains verified, 0 failed", out)
        ok("windowseal audit: exit 0 (%s)" % (m.group(0) if m else out.strip()[-80:]))
    else:
        fail("windowseal audit exit %d: %s" % (r.returncode, out.strip()[-300:]))
    stream.save()
    return len(st["windows"])


def check_s3(st, att, client, bucket, prefix):
    """Every window's two objects in the bucket with the file sink's bytes, nothing else."""
    keys = set()
    token = None
    while True:
        kw = {"Bucket": bucket, "Prefix": prefix}
        if token:
            kw["ContinuationToken"] = token
        r = client.list_objects_v2(**kw)
        keys |= {o["Key"] for o in r.get("Contents", [])}
        if not r.get("IsTruncated"):
            break
        token = r["NextContinuationToken"]
    want = set()
    lost, differ = [], []
    for w in st["windows"]:
        for suf in (".dsse.json", ".evidence.lz4"):
            key = "%s%s/%020d%s" % (prefix, w["qid"], w["batch"], suf)
            want.add(key)
            if key not in keys:
                lost.append(key)
                continue
            body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
            with open(wsit.env_path(att, w["qid"], w["batch"], suf), "rb") as f:
                if f.read() != body:
                    differ.append(key)
    extra = sorted(k for k in keys - want if not k.endswith("/checkpoint"))
    if lost or differ or extra:
        fail("s3: LOST %s; DIFFERENT from the file sink %s; EXTRA %s"
             % (lost[:6] or "none", differ[:6] or "none", extra[:6] or "none"))
    else:
        ok("s3 bucket: exactly the %d windows' envelopes and evidence, byte-equal to the file "
           "sink" % len(st["windows"]))
