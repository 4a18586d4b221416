#!/usr/bin/python3
"""outputs_s3.py — the helpers of tests/it_outputs_s3.sh: objects in s3rver, a fault proxy in
front of it, notifications that name s3:// output files, and the statement checker.

It uses botocore, confluent_kafka and the standard library only, and shares no code with
windowseal (s3_client comes from s3_tool.py, the other S3 test's helper).

    outputs_s3.py mkobj --endpoint E --bucket B --key K --size N [--seed S]
        PUT an object of N deterministic bytes (streamed from a temporary file, so a 200 MB
        object is never in memory); prints its SHA-256.
    outputs_s3.py pad --endpoint E --bucket B --prefix P --count N
        PUT N empty objects P0000..P(N-1), eight at a time: enough keys to make a listing take
        more than one ListObjectsV2 page (1000 keys).
    outputs_s3.py proxy --port P --upstream URL --faults FILE
        a loopback HTTP proxy to URL. FILE (re-read on every request) holds lines
        "SUBSTRING STATUS": a request whose path contains SUBSTRING is answered STATUS with an
        S3 error document (403 AccessDenied, 500 InternalError, 503 SlowDown) instead of being
        forwarded. s3rver cannot answer 403 or 500 on its own. Bodies are streamed both ways.
    outputs_s3.py notify --boot B --qid Q --batch N --topic T --file F [--file F]...
        one record into T[0], then the native notification of exactly that record, with one
        output "warehouse.db.t" listing the files.
    outputs_s3.py check --att DIR --qid Q --batch N --expect NAME=SHA256 | NAME=error:TEXT ...
        the window's statement (file sink copy): each listed file has that digest (and is a
        subject) or an error containing TEXT (and is not a subject).

Checks print `ok   - ...` / `FAIL - ...`; exit 1 if any failed.
"""
import argparse
import base64
import hashlib
import http.client
import http.server
import json
import os
import random
import socketserver
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from s3_tool import fail, ok, s3_client  # noqa: E402
import s3_tool  # noqa: E402


def cmd_mkobj(a):
    rnd = random.Random(a.seed)
    h = hashlib.sha256()
    with tempfile.TemporaryFile() as f:
        left = a.size
        while left > 0:
            n = min(left, 1 << 20)
            chunk = rnd.randbytes(n)
            h.update(chunk)
            f.write(chunk)
            left -= n
        f.seek(0)
        s3_client(a.endpoint).put_object(Bucket=a.bucket, Key=a.key, Body=f,
                                         ContentLength=a.size)
    print(h.hexdigest())
    return 0


def cmd_pad(a):
    from concurrent.futures import ThreadPoolExecutor

    c = s3_client(a.endpoint)
    with ThreadPoolExecutor(8) as ex:
        list(ex.map(lambda i: c.put_object(Bucket=a.bucket, Key="%s%04d" % (a.prefix, i),
                                           Body=b""), range(a.count)))
    return 0


ERRORS = {403: ("AccessDenied", "Access Denied"),
          500: ("InternalError", "We encountered an internal error. Please try again."),
          503: ("SlowDown", "Please reduce your request rate.")}


def cmd_proxy(a):
    up = urllib.parse.urlsplit(a.upstream)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def fault(self):
            try:
                with open(a.faults) as f:
                    for line in f:
                        parts = line.split()
                        if len(parts) == 2 and parts[0] in self.path:
                            return int(parts[1])
            except FileNotFoundError:
                pass
            return None

        def answer(self, status):
            code, msg = ERRORS.get(status, ("Error", "error"))
            body = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>%s</Code>"
                    "<Message>%s</Message><RequestId>proxy-%d</RequestId></Error>"
                    % (code, msg, time.monotonic_ns())).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def forward(self):
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n) if n else None
            status = self.fault()
            if status:
                return self.answer(status)
            conn = http.client.HTTPConnection(up.hostname, up.port, timeout=60)
            hdrs = {k: v for k, v in self.headers.items()
                    if k.lower() not in ("connection", "expect")}
            conn.request(self.command, self.path, body=body, headers=hdrs)
            r = conn.getresponse()
            self.send_response(r.status)
            for k, v in r.getheaders():
                if k.lower() not in ("connection", "transfer-encoding", "keep-alive"):
                    self.send_header(k, v)
            if r.getheader("Content-Length") is None:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            while True:
                chunk = r.read(1 << 16)
                if not chunk:
                    break
                self.wfile.write(chunk)
            conn.close()

        do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = forward

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
        allow_reuse_address = True

    Server(("127.0.0.1", a.port), Handler).serve_forever()


def cmd_notify(a):
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": a.boot, "linger.ms": 0})
    box = []
    p.produce(a.topic, partition=0, key=b"k", value=b"record of batch %d" % a.batch,
              on_delivery=lambda err, m: box.append((err, m)))
    p.flush(15)
    if not box or box[0][0] is not None:
        fail("produce to %s: %s" % (a.topic, box[0][0] if box else "timeout"))
        return 1
    off = box[0][1].offset()
    note = {"queryId": a.qid, "batchId": a.batch, "runId": "run-1", "name": "it-outputs-s3",
            "sources": [{"topic": a.topic, "partition": 0, "fromOffset": off,
                         "untilOffset": off + 1}],
            "outputs": [{"name": "warehouse.db.t", "files": a.file}]}
    p.produce("windowseal.batches", key=a.qid.encode(), value=json.dumps(note).encode())
    p.flush(15)
    return 0


def cmd_check(a):
    path = os.path.join(a.att, a.qid, "%020d.dsse.json" % a.batch)
    with open(path) as f:
        env = json.load(f)
    st = json.loads(base64.b64decode(env["payload"]))
    files = {f["name"]: f for o in st["predicate"].get("outputs", []) for f in o["files"]}
    subjects = {s["name"]: s["digest"]["sha256"] for s in st["subject"]}
    for e in a.expect:
        name, _, want = e.rpartition("=")  # names may hold "=" (partition dirs)
        got = files.get(name)
        if got is None:
            fail("batch %d: %s is not among the statement's output files" % (a.batch, name))
        elif want.startswith("error:"):
            if want[6:] in got.get("error", "") and "sha256" not in got and name not in subjects:
                ok("batch %d: %s: error \"%s\"" % (a.batch, name, got["error"]))
            else:
                fail("batch %d: %s: wanted an error with '%s', got %s" % (a.batch, name, want[6:],
                                                                          got))
        elif got.get("sha256") == want and subjects.get(name) == want and got.get("bytes", -1) >= 0:
            ok("batch %d: %s: sha256 %s... (%d bytes), a subject" % (a.batch, name, want[:12],
                                                                   got["bytes"]))
        else:
            fail("batch %d: %s: wanted sha256 %s, got %s (subject %s)"
                 % (a.batch, name, want, got, subjects.get(name)))
    return 1 if s3_tool.FAILS else 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("mkobj")
    m.add_argument("--endpoint", required=True)
    m.add_argument("--bucket", required=True)
    m.add_argument("--key", required=True)
    m.add_argument("--size", type=int, required=True)
    m.add_argument("--seed", default="x")
    d = sub.add_parser("pad")
    d.add_argument("--endpoint", required=True)
    d.add_argument("--bucket", required=True)
    d.add_argument("--prefix", required=True)
    d.add_argument("--count", type=int, required=True)
    p = sub.add_parser("proxy")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--upstream", required=True)
    p.add_argument("--faults", required=True)
    n = sub.add_parser("notify")
    n.add_argument("--boot", required=True)
    n.add_argument("--qid", required=True)
    n.add_argument("--batch", type=int, required=True)
    n.add_argument("--topic", required=True)
    n.add_argument("--file", action="append", default=[])
    c = sub.add_parser("check")
    c.add_argument("--att", required=True)
    c.add_argument("--qid", required=True)
    c.add_argument("--batch", type=int, required=True)
    c.add_argument("--expect", action="append", default=[])
    a = ap.parse_args()
    return {"mkobj": cmd_mkobj, "pad": cmd_pad, "proxy": cmd_proxy, "notify": cmd_notify,
            "check": cmd_check}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
