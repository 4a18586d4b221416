#!/usr/bin/python3
"""s3rver_capacity.py — what s3rver itself sustains for the S3 sink's request mix, with no
windowseal in the way: the ceiling to read the `slow store: S3 sink direct` row against.

    s3rver_capacity.py S3RVER_JS [--conns N] [--warm W] [--windows M]

Starts s3rver (node S3RVER_JS, loopback, a temporary directory, bucket `attest`) and plays, on N
keep-alive connections (default 8), M windows (default 400) of exactly the requests one S3-sink
window makes (sinks/s3.c): GET evidence and GET envelope (both answered 404 NoSuchKey: new
objects), PUT evidence (2 KiB), PUT envelope (1.5 KiB), PUT the query's checkpoint (300 B),
each with the headers the sink sends (SigV4-shaped Authorization, x-amz-date,
x-amz-content-sha256, If-None-Match and Expect: 100-continue on the PUTs; s3rver checks no
signature, only the date). First W windows (default 800) untimed: s3rver is JavaScript, and its request path
gets fast only after V8 has run it a few thousand times. Prints windows/s, requests/s and
s3rver's CPU (user+sys, /proc) a window, then a `TABLE` line for bench/run. Every status is
checked: a request answered otherwise than expected fails the run (exit 1).

stdlib only (http.client, threads); the client's own CPU is on the other core, as the engine's
is in bench_slowstore.
"""
import argparse
import hashlib
import http.client
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

EV, ENV, CK = os.urandom(2048), os.urandom(1536), os.urandom(300)


def headers(body, put):
    now = time.gmtime()  # s3rver refuses a request dated over 15 minutes off (403)
    h = {
        "Authorization": "AWS4-HMAC-SHA256 Credential=S3RVER/%s/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=%s"
        % (time.strftime("%Y%m%d", now), "0" * 64),
        "x-amz-date": time.strftime("%Y%m%dT%H%M%SZ", now),
        "x-amz-content-sha256": hashlib.sha256(body).hexdigest(),
    }
    if put:
        h.update({"If-None-Match": "*", "Expect": "100-continue"})
    return h


def one(c, method, path, body, want):
    c.request(method, path, body=body if method == "PUT" else None,
              headers=headers(body if method == "PUT" else b"", method == "PUT"))
    r = c.getresponse()
    r.read()
    if r.status != want:
        raise RuntimeError("%s %s: HTTP %d, expected %d" % (method, path, r.status, want))


def play(port, conn_id, first, count, errors):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for w in range(first, first + count):
            q = "/attest/cap/q%02d" % (w % 20)
            one(c, "GET", "%s/%08d-%d.evidence.lz4" % (q, w, conn_id), EV, 404)
            one(c, "GET", "%s/%08d-%d.dsse.json" % (q, w, conn_id), ENV, 404)
            one(c, "PUT", "%s/%08d-%d.evidence.lz4" % (q, w, conn_id), EV, 200)
            one(c, "PUT", "%s/%08d-%d.dsse.json" % (q, w, conn_id), ENV, 200)
            one(c, "PUT", "%s/checkpoint" % q, CK, 200)
        c.close()
    except Exception as e:  # noqa: BLE001 — reported, and the run fails
        errors.append(str(e))


def run(port, conns, first, windows):
    per = max(1, windows // conns)
    errors, ts = [], []
    for i in range(conns):
        ts.append(threading.Thread(target=play, args=(port, i, first + i * per, per, errors)))
    t0 = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise RuntimeError(errors[0])
    return per * conns, time.monotonic() - t0


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("s3rver_js")
    ap.add_argument("--conns", type=int, default=8)
    ap.add_argument("--warm", type=int, default=800)
    ap.add_argument("--windows", type=int, default=400)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="s3cap.")
    port = free_port()
    env = dict(os.environ, NODE_OPTIONS="--openssl-legacy-provider")
    p = subprocess.Popen(["node", a.s3rver_js, "-d", tmp, "-a", "127.0.0.1", "-p", str(port),
                          "--silent", "--configure-bucket", "attest"], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            print("s3rver_capacity: s3rver did not start", file=sys.stderr)
            return 1
        c0 = cpu_seconds(p.pid)
        n0, s0 = run(port, a.conns, 0, a.warm)
        c1 = cpu_seconds(p.pid)
        n, secs = run(port, a.conns, 1_000_000, a.windows)
        c2 = cpu_seconds(p.pid)
    except RuntimeError as e:
        print("s3rver_capacity: %s" % e, file=sys.stderr)
        return 1
    finally:
        p.terminate()
        p.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)
    wps = n / secs
    print("s3rver alone, the S3 sink's 5 requests a window, %d keep-alive connections:" % a.conns)
    print("  warm-up  %5d windows in %5.2f s: %6.1f windows/s, s3rver %.2f ms of CPU a window"
          % (n0, s0, n0 / s0, (c1 - c0) * 1e3 / n0))
    print("  measured %5d windows in %5.2f s: %6.1f windows/s (%.0f requests/s), s3rver %.2f ms "
          "of CPU a window" % (n, secs, wps, 5 * wps, (c2 - c1) * 1e3 / n))
    print("TABLE\ts3rver alone, the S3 sink's request mix (independent client, %d connections, "
          "after %d windows of warm-up)\t%.0f windows/s, s3rver %.2f ms of CPU a window\t-\t-\t-\t-"
          % (a.conns, n0, wps, (c2 - c1) * 1e3 / n))
    return 0


if __name__ == "__main__":
    sys.exit(main())
