#!/usr/bin/python3
"""lineage_receiver.py — a loopback OpenLineage HTTP backend for tests/it_lineage.sh.

    lineage_receiver.py PORT_FILE LOG_FILE CONTROL_FILE

Listens on 127.0.0.1 (a free port, written to PORT_FILE), records every POST as one JSON line
in LOG_FILE ({"path", "auth", "ctype", "status", "body"}: the body as received, text) and answers
201, or 500 while CONTROL_FILE holds a positive number (decremented per request answered so):
how the test makes the backend fail for a while. Killing the process is "the backend is down".
"""
import http.server
import json
import os
import sys
import threading

PORT_FILE, LOG_FILE, CONTROL = sys.argv[1:4]
lock = threading.Lock()


def fail_now():
    try:
        n = int(open(CONTROL).read().strip() or 0)
    except (OSError, ValueError):
        return False
    if n <= 0:
        return False
    with open(CONTROL + ".tmp", "w") as f:
        f.write(str(n - 1))
    os.replace(CONTROL + ".tmp", CONTROL)
    return True


class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n)
        with lock:
            status = 500 if fail_now() else 201
            with open(LOG_FILE, "a") as f:
                f.write(json.dumps({"path": self.path, "auth": self.headers.get("Authorization"),
                                    "ctype": self.headers.get("Content-Type"), "status": status,
                                    "body": body.decode("utf-8", "replace")}) + "\n")
        out = b'{"error":"try later"}' if status == 500 else b""
        self.send_response(status)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *a):
        pass


srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
with open(PORT_FILE + ".tmp", "w") as f:
    f.write("%d\n" % srv.server_address[1])
os.replace(PORT_FILE + ".tmp", PORT_FILE)
srv.serve_forever()
