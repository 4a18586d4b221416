#!/usr/bin/python3
"""chaos_run.py — the scenarios ("lanes") of tests/it_chaos.sh; each runs alone, with its own
broker, key, directories and consumer group, so that the shell script can run them in parallel.

    chaos_run.py LANE --ws BIN --dir DIR [options]

  kill      a stream of --batches batches over --queries queries, with --kills restarts: each
            run of the engine ends in kill -9, either inside the engine at a named crash point
            (--hooks point:N,..., WS_CRASH_AT, needs a -DWS_TEST_HOOKS=ON build) or from outside
            at a random moment once it has joined the group. Two batches are really missing
            (records produced, no notification) and three notifications are bad. Then one calm
            run and the end-state check (chaos_lib.check).
  failover  two instances of one group, 10 queries on 4 notification partitions; kill -9 one,
            the other takes over; restart it, kill -9 the other; then kill -9 and restart the
            last one. Takeover and restart times measured with the default session timeout.
  hostile   the corpus tests/data/hostile (MANIFEST.tsv) and generated giants (10 MB value,
            a million sources, 14000 sources, 400000-deep nesting, null value), each followed by
            a good batch: every bad one dead-lettered with its reason, every good one attested,
            the engine alive, its VmHWM under --max-hwm-mb.
  s3        file sink + s3 sink through a fault proxy in front of s3rver: 500s, kill -9 during
            the 500s, restart with a quarter of the requests failing, a 10 s outage
            (connections refused), then everything in both sinks once.
  disk      the spool on a small tmpfs filled up: writes fail with ENOSPC, intake pauses,
            nothing is attested or dead-lettered while full; room made: everything attested.

Prints `ok   - ` / `FAIL - ` / `skip - ` / `# ` lines and `figure NAME VALUE` lines (collected
by the shell script for the summary). Exit 0 when nothing failed.
"""
import argparse
import datetime
import http.server
import json
import os
import random
import re
import shutil
import signal
import socket
import socketserver
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chaos_lib as L  # noqa: E402

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def figure(name, value):
    print("figure %s %s" % (name, value), flush=True)


def skip(msg):
    print("skip - " + msg, flush=True)


class Broker:
    def __init__(self, ws, d, partitions):
        self.out = open(os.path.join(d, "broker.out"), "w+")
        self.err = open(os.path.join(d, "broker.err"), "w")
        self.proc = L.track(subprocess.Popen([ws, "broker", "--partitions", str(partitions)],
                                             stdout=self.out, stderr=self.err))
        self.boot = None
        for _ in range(100):
            self.out.seek(0)
            line = self.out.readline().strip()
            if re.match(r"^127\.0\.0\.1:\d+$", line):
                self.boot = line
                break
            time.sleep(0.1)
        if not self.boot:
            raise RuntimeError("windowseal broker did not start")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def setup(a, partitions, group, engine=None, props=None, sinks=None, spool=None):
    """Broker, key, config; returns (broker, config path, att dir, pub)."""
    os.makedirs(a.dir, exist_ok=True)
    b = Broker(a.ws, a.dir, partitions)
    key = os.path.join(a.dir, "k")
    subprocess.run([a.ws, "keygen", "--out", key], check=True, stdout=subprocess.DEVNULL)
    att = os.path.join(a.dir, "att")
    eng = {"gap_wait_ms": 1000, "fetch_timeout_ms": 2000, "retry_base_ms": 50,
           "retry_max_ms": 500}
    eng.update(engine or {})
    cfg = {"kafka": {"bootstrap.servers": b.boot, "group.id": group,
                     "properties": dict(props or {})},
           "signing": {"key": key},
           "sinks": [{"type": "file", "path": att}] + (sinks or []),
           "spool": {"path": spool or os.path.join(a.dir, "spool")},
           "engine": eng, "log": {"level": "info"}}
    path = os.path.join(a.dir, "config.json")
    with open(path, "w") as f:
        json.dump(cfg, f, indent=1)
    return b, path, att, key + ".pub"


def wait_committed(boot, group, nparts, timeout):
    """Until the group has committed every notification partition to its end."""
    c = L.consumer(boot, "chaos-wm")
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            ends = {p: c.get_watermark_offsets(L.ck.TopicPartition(L.NOTIF_TOPIC, p),
                                               timeout=5)[1] for p in range(nparts)}
            com = L.committed_offsets(boot, group, L.NOTIF_TOPIC, nparts)
            if all(ends[p] == 0 or com.get(p) == ends[p] for p in ends):
                return True
            time.sleep(0.3)
    finally:
        c.close()
    return False


def first_event_delay(e, event):
    """Seconds from the process start to its first line of event, or None."""
    ev = e.events(event)
    m = re.match(r"ts=(\S+)", ev[0]) if ev else None
    if not m:
        return None
    t = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%fZ")
    return t.replace(tzinfo=datetime.timezone.utc).timestamp() - e.t0


def first_attest_delay(e):
    return first_event_delay(e, "window_attested")


def no_stopped_queries(logs):
    bad = []
    for p in logs:
        with open(p, errors="replace") as f:
            bad += [ln.strip()[:200] for ln in f if re.search(r"event=(query_stopped|conflict) ",
                                                              ln)]
    if bad:
        L.fail("an engine stopped a query or saw a conflict: %s" % bad[:3])
    else:
        L.ok("no query_stopped and no conflict in any engine log")


def finish(a, logs, extra=()):
    san = L.sanitizer_reports(list(logs) + list(extra))
    if san:
        L.fail("sanitizer reports in: %s" % ", ".join(san))
    else:
        L.ok("no sanitizer report in %d engine/broker logs" % (len(logs) + len(extra)))
    sys.exit(1 if L.fails() else 0)


# ---------------------------------------------------------------------------------------------
# kill


BAD = [("malformed", '{"queryId": "chaos-bad-malformed", "batchId": 0, "sources": [', "json"),
       ("inverted", json.dumps({"queryId": "chaos-bad-inv", "batchId": 0, "sources": [
           {"topic": "chaos-d0", "partition": 0, "fromOffset": 5, "untilOffset": 2}]}),
        "inverted"),
       ("unsafe-id", json.dumps({"queryId": "../x", "batchId": 0, "sources": []}), "unsafe")]


def lane_kill(a):
    rnd = random.Random(a.seed)
    group = "chaos-kill-%s" % a.name
    # A short session timeout (the mock needs >= 3 s): each restart waits for the dead
    # member's session to expire, so this is what keeps 10 restarts in about a minute.
    b, cfg, att, pub = setup(a, 2, group, props={"session.timeout.ms": "3000",
                                                 "heartbeat.interval.ms": "500"})
    log = os.path.join(a.dir, "engine.log")
    s = L.Stream.init(os.path.join(a.dir, "state.json"), b.boot, a.dir, a.queries, 2,
                      prefix="chaos")
    p = L.producer(b.boot)
    plan = [("Q%d" % (k % a.queries), k // a.queries) for k in range(a.batches)]
    skips = {("Q2", 4), ("Q4", 7)}
    hooks = [h for h in a.hooks.split(",") if h] if a.hooks_enabled else []
    modes = hooks + ["random"] * (a.kills - len(hooks))
    rnd.shuffle(modes)
    bad_at = {1: 0, a.kills // 2: 1, a.kills - 2: 2}
    for i, mode in enumerate(modes):
        if mode.startswith("deadlettered"):
            bad_at.setdefault(i, len(bad_at) % len(BAD))
    bad_n = 0
    landed = {}
    recov = []
    posted = 0
    t_loop = time.time()
    try:
        for i, mode in enumerate(modes):
            lo, hi = i * len(plan) // a.kills, (i + 1) * len(plan) // a.kills
            for q, n in plan[lo:hi]:
                s.post_batch(p, q, skip=(q, n) in skips)
                posted += 1
            if i in bad_at:
                label, value, reason = BAD[bad_at[i]]
                s.post_bad(p, "%s-%d" % (label, bad_n), value.replace('"batchId": 0',
                                                                      '"batchId": %d' % bad_n),
                           reason)
                bad_n += 1
            s.save()
            crash = mode if mode != "random" else None
            e = L.Engine(a.ws, cfg, log, crash_at=crash)
            if crash:
                rc = e.wait_exit(25)
                if rc is None:
                    e.kill9()
                    where = "%s not reached in 25 s: killed from outside" % crash
                elif rc == -9 and any("ws_test_hook: SIGKILL at" in ln for ln in e.lines()):
                    where = "inside at %s" % crash
                else:
                    where = "exit %s before %s (unexpected)" % (rc, crash)
                    L.fail("run %d: engine exited %s before its crash point %s: %s"
                           % (i, rc, crash, e.lines()[-3:]))
            else:
                # a random moment while it works: after a random number k of windows (k = 0:
                # up to 1.5 s after the assignment), then up to 50 ms more
                if not e.wait_event("rebalance", 1, 25):
                    L.fail("run %d: no group assignment in 25 s" % i)
                todo = sum(1 for w in s.st["windows"] if not os.path.exists(
                    L.wsit.env_path(att, w["qid"], w["batch"], ".dsse.json")))
                k = rnd.randrange(0, max(1, todo))
                if k:
                    e.wait_event("window_attested", k, 20)
                else:
                    time.sleep(rnd.uniform(0.0, 1.5))
                time.sleep(rnd.uniform(0.0, 0.05))
                e.kill9()
                files = [f for d, _, fs in os.walk(os.path.join(a.dir, "spool")) for f in fs
                         if not f.startswith(".") and os.path.basename(d) != ".free"]
                where = "outside %.2f s after the assignment: %d windows attested in this run; " \
                    "left in the spool: %d complete files, %d temporary" % (
                        time.time() - e.t0 - (first_event_delay(e, "rebalance") or 0),
                        len(e.events("window_attested")),
                        sum(1 for f in files if not f.endswith(".tmp")),
                        sum(1 for f in files if f.endswith(".tmp")))
            d = first_attest_delay(e)
            if d is not None:
                recov.append(d)
            landed[i] = where
            L.note("run %2d: kill -9 %s" % (i, where))
        L.ok("%d kills (%d at named crash points inside the engine, %d at random moments) "
             "while %d batches and %d bad notifications were posted, in %.0f s"
             % (len(modes), sum(1 for m in modes if m != "random"),
                sum(1 for m in modes if m == "random"), posted, bad_n, time.time() - t_loop))
        # the calm run
        e = L.Engine(a.ws, cfg, log)
        t0 = time.time()
        L.wait_windows(s, att, 60)
        d = first_attest_delay(e)
        if d is not None:
            recov.append(d)
        if wait_committed(b.boot, group, 2, 30):
            L.ok("the calm run committed every notification after %.1f s" % (time.time() - t0))
        else:
            L.fail("not every notification committed 30 s after the calm run started")
        rc = e.term()
        if rc == 0:
            L.ok("the calm run exits 0 on SIGTERM")
        else:
            L.fail("the calm run: exit %s on SIGTERM" % rc)
        if recov:
            figure("recovery_s_%s" % a.name, ",".join("%.1f" % x for x in recov))
            L.note("restart -> first window attested: min %.1f s, median %.1f s, max %.1f s over "
                   "%d restarts (session.timeout.ms=3000)"
                   % (min(recov), statistics.median(recov), max(recov), len(recov)))
        n = L.check(s, att, a.ws, pub, group)
        dup_logs = len(L.attested_wids([log])) - len(set(L.attested_wids([log])))
        L.note("windows attested again after a crash (log lines): %d" % dup_logs)
        figure("kills", len(modes))
        figure("windows_checked", n)
        figure("deadletters_checked", bad_n)
        no_stopped_queries([log])
    finally:
        b.stop()
    finish(a, [log], [os.path.join(a.dir, "broker.err")])


# ---------------------------------------------------------------------------------------------
# failover


def attesters(logs, wid):
    return [name for name, path in logs if any(
        re.search(r" event=window_attested .*window=%s " % re.escape(wid), ln)
        for ln in open(path, errors="replace"))]


def attesters_settled(logs, wids, timeout=15):
    """Attesters per window once every window has one: the engine logs window_attested after
    the head's delivery report, which can come a little after the attestation is readable on
    the file sink that wait_windows watches."""
    deadline = time.time() + timeout
    while True:
        by = {wid: attesters(logs, wid) for wid in wids}
        if all(by.values()) or time.time() > deadline:
            return by
        time.sleep(0.2)


def lane_failover(a):
    group = "chaos-failover"
    b, cfg, att, pub = setup(a, 4, group)  # default session.timeout.ms (6000)
    s = L.Stream.init(os.path.join(a.dir, "state.json"), b.boot, a.dir, 10, 4, prefix="fo")
    p = L.producer(b.boot)
    logs = []

    def start(name, spool):
        path = os.path.join(a.dir, "%s.log" % name)
        logs.append((name, path))
        return L.Engine(a.ws, cfg, path, sets=["spool.path=%s" % os.path.join(a.dir, spool)],
                        name=name)

    def post_round():
        ws = [s.post_batch(p, q) for q in sorted(s.st["queries"])]
        s.save()
        return ws

    def takeover(victim, survivor, vname, sname):
        before = set(w["wid"] for w in s.st["windows"])
        mine = {w["qid"] for w in s.st["windows"] if vname in attesters(logs, w["wid"])}
        t_kill = time.time()
        victim.kill9()
        L.ok("kill -9 %s (it had attested windows of %d queries)" % (vname, len(mine)))
        new = post_round()
        if not L.wait_windows(s, att, 45):
            return
        took = time.time() - t_kill
        by = attesters_settled(logs, [w["wid"] for w in new])
        wrong = ["%s by %s" % (wid, "+".join(v) or "no log line") for wid, v in sorted(by.items())
                 if v != [sname]]
        if wrong:
            L.fail("after the kill of %s, windows attested by someone else than %s: %s"
                   % (vname, sname, wrong[:5]))
        else:
            L.ok("%s continued all 10 chains (%d of them %s's) within %.1f s of the kill"
                 % (sname, len(mine), vname, took))
        figure("takeover_s", "%.1f" % took)
        assert before  # noqa

    try:
        e1 = start("e1", "spool1")
        e2 = start("e2", "spool2")
        post_round()
        L.wait_windows(s, att, 40)
        time.sleep(1)
        post_round()
        L.wait_windows(s, att, 30)
        who = {n: sum(1 for w in s.st["windows"] if n in attesters(logs, w["wid"]))
               for n in ("e1", "e2")}
        L.note("windows attested before the first kill: %s" % who)
        takeover(e1, e2, "e1", "e2")
        e1b = start("e1b", "spool1")
        if not e1b.wait_event("rebalance", 1, 30):
            L.fail("the restarted e1b got no assignment in 30 s")
        time.sleep(7)  # e2 rejoins the rebalance that gives e1b its partitions
        post_round()
        L.wait_windows(s, att, 40)
        r3 = s.st["windows"][-10:]
        by = attesters_settled(logs, [w["wid"] for w in r3])
        n1b = sum(1 for v in by.values() if "e1b" in v)
        if n1b:
            L.ok("after its restart e1b took its share of the group: %d of 10 windows" % n1b)
        else:
            L.note("e1b attested none of the last 10 windows (the group had not split yet)")
        takeover(e2, e1b, "e2", "e1b")
        # restart after kill -9: the dead member lingers until its session (6 s) expires
        e1b.kill9()
        t_restart = time.time()
        e1c = start("e1c", "spool1")
        post_round()
        if e1c.wait_event("window_attested", 1, 30):
            d = first_attest_delay(e1c)
            figure("restart_recovery_s", "%.1f" % d)
            if d <= 15:
                L.ok("kill -9 and restart: first window attested %.1f s after the restart "
                     "(default session.timeout.ms 6000; target 15 s)" % d)
            else:
                L.fail("kill -9 and restart: first window only %.1f s after the restart "
                       "(target 15 s)" % d)
        else:
            L.fail("kill -9 and restart: no window attested %.0f s after the restart"
                   % (time.time() - t_restart))
        L.wait_windows(s, att, 30)
        wait_committed(b.boot, group, 4, 30)
        rc = e1c.term()
        if rc != 0:
            L.fail("e1c exit %s on SIGTERM" % rc)
        n = L.check(s, att, a.ws, pub, group)
        figure("windows_checked", n)
        figure("kills", 3)
        no_stopped_queries([pth for _, pth in logs])
    finally:
        for e in (locals().get(n) for n in ("e1", "e2", "e1b", "e1c")):
            if e and e.alive():
                e.kill9()
        b.stop()
    finish(a, [pth for _, pth in logs], [os.path.join(a.dir, "broker.err")])


# ---------------------------------------------------------------------------------------------
# hostile


class HwmSampler(threading.Thread):
    def __init__(self, e):
        super().__init__(daemon=True)
        self.e, self.peak, self.stop = e, 0, False

    def run(self):
        while not self.stop and self.e.alive():
            self.peak = max(self.peak, self.e.vm_hwm_kb())
            time.sleep(0.05)


def giants():
    """Generated hostile notifications too big to keep in the repository."""
    out = []
    big = b'{"queryId":"h-10mb","batchId":0,"sources":[],"name":"' + b"A" * (10 << 20) + b'"}'
    out.append(("gen-10mb-value", big, "max_bytes", "a 10 MB string value"))
    parts = b",".join(b'"%d":1' % i for i in range(1000000))
    million = (b'{"id":"h-million","runId":"r","batchId":1,"sources":[{"description":"KafkaV2",'
               b'"endOffset":{"chaos-h0":{' + parts + b'}}}]}')
    out.append(("gen-million-sources", million, "max_bytes", "a million sources (%d MB)"
                % (len(million) >> 20)))
    many = json.dumps({"queryId": "h-14k", "batchId": 0, "sources": [
        {"topic": "chaos-h0", "partition": 100 + i, "fromOffset": 0, "untilOffset": 1}
        for i in range(14000)]}, separators=(",", ":")).encode()
    out.append(("gen-14k-sources", many, "unknown", "14000 sources on partitions that do "
                                                    "not exist (%d KB)" % (len(many) >> 10)))
    deep = b'{"queryId":"h-deep2","batchId":0,"sources":[],"x":' + b"[" * 400000 + \
        b"]" * 400000 + b"}"
    out.append(("gen-deep-400k", deep, "", "nesting 400000 deep"))
    out.append(("gen-null-value", None, "null", "a null value"))
    return out


def lane_hostile(a):
    group = "chaos-hostile"
    b, cfg, att, pub = setup(a, 2, group)
    log = os.path.join(a.dir, "engine.log")
    s = L.Stream.init(os.path.join(a.dir, "state.json"), b.boot, a.dir, 1, 2, prefix="hostile")
    p = L.producer(b.boot)
    # chaos-h0 exists (4 partitions, auto-created): the corpus' partition 9 is the unknown one
    L.produce_many(p, [("chaos-h0", {"partition": 0, "value": b"x"})])
    corpus = []
    d = os.path.join(SRC, "tests", "data", "hostile")
    with open(os.path.join(d, "MANIFEST.tsv")) as f:
        for ln in f:
            if ln.startswith("#") or not ln.strip():
                continue
            name, reason, desc = (ln.rstrip("\n").split("\t") + ["", ""])[:3]
            with open(os.path.join(d, name), "rb") as g:
                corpus.append((name, g.read(), reason, desc))
    e = L.Engine(a.ws, cfg, log)
    sampler = None
    try:
        s.post_batch(p, "Q0")
        s.save()
        if not L.wait_windows(s, att, 40, " (the first good window)"):
            raise SystemExit(1)
        base = e.vm_hwm_kb()
        sampler = HwmSampler(e)
        sampler.start()
        for name, value, reason, desc in corpus:
            s.post_bad(p, name, value, reason, partition=0)
            s.post_batch(p, "Q0")
        s.save()
        L.wait_windows(s, att, 60, " (a good batch after each of the %d corpus files)"
                       % len(corpus))
        # The giants go to notification partition 1, one at a time once the engine is idle,
        # compressed: the mock keeps at most 5 MiB per partition and evicts older batches (even
        # the giant itself once the next one arrives); zstd keeps them a few hundred KB on the
        # broker, and the engine's consumer still receives them at full size.
        pz = L.producer(b.boot, compression="zstd")
        for name, value, reason, desc in giants():
            s.post_bad(pz, name, value, reason, partition=1)
            s.post_batch(p, "Q0")
            s.save()
            if not wait_committed(b.boot, group, 2, 60):
                L.fail("%s (%s): the engine did not get past it in 60 s: %s"
                       % (name, desc, [ln[:160] for ln in e.lines()[-3:]]))
                break
            L.note("%s (%s): dead-lettered, next good batch attested; VmHWM %d MB"
                   % (name, desc, sampler.peak >> 10))
        L.wait_windows(s, att, 30, " (good batches between the giants)")
        if e.alive():
            L.ok("engine alive after %d hostile notifications" % len(s.st["bad"]))
        else:
            L.fail("engine died (exit %s) during the hostile corpus: %s"
                   % (e.proc.returncode, e.lines()[-5:]))
        peak = max(sampler.peak, e.vm_hwm_kb())
        sampler.stop = True
        figure("vmhwm_mb", "%d" % (peak >> 10))
        figure("inputs_tried", len(s.st["bad"]))
        if peak <= a.max_hwm_mb << 10:
            L.ok("engine VmHWM %d MB (%d MB after the first window) <= bound %d MB"
                 % (peak >> 10, base >> 10, a.max_hwm_mb))
        else:
            L.fail("engine VmHWM %d MB exceeds the bound %d MB (%d MB after the first window)"
                   % (peak >> 10, a.max_hwm_mb, base >> 10))
        wait_committed(b.boot, group, 2, 30)
        rc = e.term()
        if rc != 0:
            L.fail("engine exit %s on SIGTERM" % rc)
        # each dead letter's reason, printed for the record
        n = L.check(s, att, a.ws, pub, group, verbose_reasons=True)
        figure("windows_checked", n)
        no_stopped_queries([log])
    finally:
        if sampler:
            sampler.stop = True
        if e.alive():
            e.kill9()
        b.stop()
    finish(a, [log], [os.path.join(a.dir, "broker.err")])


# ---------------------------------------------------------------------------------------------
# s3: a fault proxy in front of s3rver


class FaultProxy:
    """HTTP proxy to s3rver; mode: up | 500 | flaky (a random quarter of the requests 500) |
    down (the listening socket is closed: connections refused, kept-alive ones dropped)."""

    def __init__(self, upstream_port):
        self.up = upstream_port
        self.mode = "up"
        self.count = {"forwarded": 0, "500": 0}
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        self.srv = None
        self.n = 0
        self.is_down = False
        self.rnd = random.Random(9)
        self.start()

    def start(self):
        proxy = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def handle_one(self):
                if proxy.is_down:  # a kept-alive connection of before the outage: drop it
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                proxy.n += 1
                if proxy.mode == "500" or (proxy.mode == "flaky" and proxy.rnd.random() < 0.25):
                    proxy.count["500"] += 1
                    msg = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError'
                           b'</Code><Message>injected by chaos_run.py</Message></Error>')
                    self.send_response(500)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(msg)))
                    self.end_headers()
                    self.wfile.write(msg)
                    return
                import http.client
                c = http.client.HTTPConnection("127.0.0.1", proxy.up, timeout=10)
                hdrs = {k: v for k, v in self.headers.items()
                        if k.lower() not in ("connection", "keep-alive")}
                c.request(self.command, self.path, body=body, headers=hdrs)
                r = c.getresponse()
                data = r.read()
                proxy.count["forwarded"] += 1
                self.send_response(r.status)
                for k, v in r.getheaders():
                    if k.lower() not in ("connection", "transfer-encoding", "content-length",
                                         "keep-alive"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                c.close()

            do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = handle_one

        class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.srv = S(("127.0.0.1", self.port), H)
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def down(self):
        self.is_down = True
        self.srv.shutdown()
        self.srv.server_close()

    def up_again(self):
        self.is_down = False
        self.rnd = random.Random(9)
        self.start()


def lane_s3(a):
    if not a.s3rver or not os.path.exists(a.s3rver):
        skip("s3 lane: s3rver not installed (it_s3.sh installs it; no network?)")
        sys.exit(0)
    import botocore.session
    from botocore.config import Config
    # s3rver knows the access key S3RVER and does not check signatures; the engine reads these
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "S3RVER")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "chaos-secret")
    os.environ.pop("AWS_SESSION_TOKEN", None)
    os.makedirs(a.dir, exist_ok=True)
    s3port = None
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    s3port = sock.getsockname()[1]
    sock.close()
    os.makedirs(os.path.join(a.dir, "s3data"), exist_ok=True)
    s3log = open(os.path.join(a.dir, "s3rver.log"), "w")
    s3 = L.track(subprocess.Popen(["node", a.s3rver, "-d", os.path.join(a.dir, "s3data"), "-a",
                           "127.0.0.1", "-p", str(s3port), "--silent", "--configure-bucket",
                           "attest"], stdout=s3log, stderr=s3log))
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", s3port), 0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    proxy = FaultProxy(s3port)
    ep = "http://127.0.0.1:%d" % proxy.port
    group = "chaos-s3"
    b, cfg, att, pub = setup(a, 2, group, props={"session.timeout.ms": "3000",
                                                 "heartbeat.interval.ms": "500"},
                             sinks=[{"type": "s3", "endpoint": ep, "bucket": "attest",
                                     "prefix": "c/", "region": "us-east-1", "path_style": True,
                                     "timeout_ms": 2000}])
    log = os.path.join(a.dir, "engine.log")
    client = botocore.session.get_session().create_client(
        "s3", endpoint_url="http://127.0.0.1:%d" % s3port, region_name="us-east-1",
        aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        config=Config(s3={"addressing_style": "path"}))
    s = L.Stream.init(os.path.join(a.dir, "state.json"), b.boot, a.dir, 3, 2, prefix="s3c")
    p = L.producer(b.boot)
    faults = 0
    e = None

    def post(n):
        for _ in range(n):
            for q in sorted(s.st["queries"]):
                s.post_batch(p, q)
        s.save()

    def attested_count(eng):
        return len(eng.events("window_attested"))

    try:
        e = L.Engine(a.ws, cfg, log)
        post(2)
        L.wait_windows(s, att, 40, " (store up)", logs=[log])
        # 1. every request answered 500 for 4 s, kill -9 in the middle
        proxy.mode = "500"
        n0 = attested_count(e)
        post(2)
        time.sleep(4)
        n1 = attested_count(e)
        faults += proxy.count["500"]
        if n1 == n0 and proxy.count["500"] > 0:
            L.ok("store answering 500 (%d requests refused): no window attested meanwhile"
                 % proxy.count["500"])
        else:
            L.fail("store answering 500: %d windows attested meanwhile (%d 500s)"
                   % (n1 - n0, proxy.count["500"]))
        if re.search(r"event=sink_failed .*sink=s3:.*class=retriable", "\n".join(e.lines())):
            L.ok("500s logged as retriable s3 sink failures")
        else:
            L.fail("no retriable s3 sink_failed event during the 500s")
        e.kill9()
        L.ok("kill -9 during the 500s")
        # 2. every other request 500 while the restarted engine catches up
        proxy.mode = "flaky"
        c500 = proxy.count["500"]
        e = L.Engine(a.ws, cfg, log)
        post(1)
        L.wait_windows(s, att, 40, " (restarted after the kill, store failing a quarter of "
                                   "the requests)", logs=[log])
        faults += proxy.count["500"] - c500
        # 3. down 10 s: connections refused
        proxy.mode = "up"
        proxy.down()
        post(2)
        n0 = attested_count(e)
        time.sleep(10)
        n1 = attested_count(e)
        faults += 1
        if n1 == n0:
            L.ok("store down 10 s: no window attested meanwhile")
        else:
            L.fail("store down: %d windows attested meanwhile" % (n1 - n0))
        proxy.up_again()
        post(1)
        L.wait_windows(s, att, 60, " (store back)")
        wait_committed(b.boot, group, 2, 30)
        rc = e.term()
        if rc != 0:
            L.fail("engine exit %s on SIGTERM" % rc)
        L.note("s3 requests forwarded %d, answered 500 %d" % (proxy.count["forwarded"],
                                                             proxy.count["500"]))
        n = L.check(s, att, a.ws, pub, group, s3=(client, "attest", "c/"))
        figure("windows_checked", n)
        figure("faults_injected", faults)
        figure("kills", 1)
        no_stopped_queries([log])
    finally:
        if e and e.alive():
            e.kill9()
        b.stop()
        s3.terminate()
        s3.wait()
    finish(a, [log], [os.path.join(a.dir, "broker.err")])


# ---------------------------------------------------------------------------------------------
# disk full


def lane_disk(a):
    os.makedirs(a.dir, exist_ok=True)
    mnt = os.path.join(a.dir, "spoolfs")
    os.makedirs(mnt, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", mnt],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        skip("disk lane: cannot mount a tmpfs (%s)" % r.stdout.decode().strip()[:100])
        sys.exit(0)
    group = "chaos-disk"
    e = None
    b = None
    log = os.path.join(a.dir, "engine.log")
    try:
        spool = os.path.join(mnt, "spool")
        b, cfg, att, pub = setup(a, 2, group, spool=spool)
        s = L.Stream.init(os.path.join(a.dir, "state.json"), b.boot, a.dir, 2, 2, prefix="disk")
        p = L.producer(b.boot)
        e = L.Engine(a.ws, cfg, log)
        s.post_batch(p, "Q0")
        s.save()
        L.wait_windows(s, att, 40, " (spool with room)", logs=[log])
        st = os.statvfs(mnt)
        free = st.f_bavail * st.f_frsize
        filler = os.path.join(mnt, "filler")
        with open(filler, "wb") as f:
            f.write(b"\0" * max(0, free - 96 * 1024))
        n0 = len(e.events("window_attested"))
        for q in ("Q0", "Q1", "Q0", "Q1"):
            # 16 records of 24 KB of random bytes: ~400 KB of evidence per window
            s.post_batch(p, q, counts=[16, 0], big=24 * 1024)
        s.save()
        paused = e.wait_event("spool_paused", 1, 20)
        time.sleep(2)
        n1 = len(e.events("window_attested"))
        full = [ln for ln in e.events("spool_paused") if "disk_full=true" in ln]
        if paused and full:
            L.ok("spool disk full (ENOSPC): intake paused (spool_paused disk_full=true)")
        else:
            L.fail("no spool_paused disk_full=true event with a full spool: %s"
                   % [ln[:150] for ln in e.lines()[-4:]])
        dl = e.events("deadlettered")
        if dl:
            L.fail("LOST: windows dead-lettered because the spool disk was full: %s" % dl[:2])
        else:
            L.ok("nothing dead-lettered while the disk was full (%d windows attested "
                 "meanwhile)" % (n1 - n0))
        os.unlink(filler)
        if e.wait_event("spool_resumed", 1, 20):
            L.ok("room made: spool_resumed")
        else:
            L.fail("no spool_resumed after the filler was removed")
        L.wait_windows(s, att, 40, " (after the disk had room again)")
        wait_committed(b.boot, group, 2, 30)
        rc = e.term()
        if rc != 0:
            L.fail("engine exit %s on SIGTERM" % rc)
        n = L.check(s, att, a.ws, pub, group)
        figure("windows_checked", n)
        figure("faults_injected", 1)
    finally:
        if e and e.alive():
            e.kill9()
        if b:
            b.stop()
        subprocess.run(["umount", "-l", mnt])
    no_stopped_queries([log])
    finish(a, [log], [os.path.join(a.dir, "broker.err")])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("lane", choices=["kill", "failover", "hostile", "s3", "disk"])
    ap.add_argument("--ws", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--name", default="a")
    ap.add_argument("--seed", default="1")
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--batches", type=int, default=50)
    ap.add_argument("--queries", type=int, default=5)
    ap.add_argument("--hooks", default="")
    ap.add_argument("--hooks-enabled", type=int, default=1)
    ap.add_argument("--max-hwm-mb", type=int, default=256)
    ap.add_argument("--s3rver", default="")
    a = ap.parse_args()
    a.ws = os.path.abspath(a.ws)
    {"kill": lane_kill, "failover": lane_failover, "hostile": lane_hostile, "s3": lane_s3,
     "disk": lane_disk}[a.lane](a)


if __name__ == "__main__":
    main()
