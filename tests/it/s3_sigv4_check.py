#!/usr/bin/python3
"""s3_sigv4_check.py — does a request signed by libcurl (CURLOPT_AWS_SIGV4) carry the
Authorization header that botocore's SigV4Auth computes for the same request?

    s3_sigv4_check.py --head REQ.HEAD --body REQ.BODY [--region R] [--scheme http]

REQ.HEAD is the raw request head as a server received it (request line and header lines, CRLF),
REQ.BODY the payload. Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY /
AWS_SESSION_TOKEN, as they did for the sender. botocore gets the method, the URL (Host header +
path), the headers listed in SignedHeaders with their received values, the payload and the
request's own x-amz-date; it signs, and both Authorization values must be identical. The payload
hash in x-amz-content-sha256 must also be the SHA-256 of the body as computed here.

Exit 0 equal, 1 different (both printed with botocore's canonical request), 2 usage,
77 botocore missing.
"""
import argparse
import hashlib
import os
import sys

try:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
except ImportError:
    print("s3_sigv4_check: botocore missing", file=sys.stderr)
    sys.exit(77)


def parse_head(raw):
    text = raw.decode("latin-1")
    lines = text.split("\r\n")
    method, target, _version = lines[0].split(" ", 2)
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    return method, target, headers


def parse_authorization(value):
    algo, _, rest = value.partition(" ")
    parts = {}
    for item in rest.split(","):
        k, _, v = item.strip().partition("=")
        parts[k] = v
    return algo, parts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--head", required=True)
    ap.add_argument("--body", required=True)
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--scheme", default="http")
    args = ap.parse_args()

    with open(args.head, "rb") as f:
        method, target, headers = parse_head(f.read())
    with open(args.body, "rb") as f:
        body = f.read()
    lower = {}
    for name, value in headers:
        lower.setdefault(name.lower(), value)
    failures = []

    got = lower.get("authorization")
    if not got:
        print("s3_sigv4_check: the request has no Authorization header")
        return 1
    algo, parts = parse_authorization(got)
    if algo != "AWS4-HMAC-SHA256" or not {"Credential", "SignedHeaders", "Signature"} <= set(parts):
        print("s3_sigv4_check: malformed Authorization: %s" % got)
        return 1
    signed = parts["SignedHeaders"].split(";")
    for must in ("host", "x-amz-date", "x-amz-content-sha256"):
        if must not in signed:
            failures.append("%s is not among the signed headers %s" % (must, signed))

    want_hash = hashlib.sha256(body).hexdigest()
    if lower.get("x-amz-content-sha256") != want_hash:
        failures.append("x-amz-content-sha256 %s, body hashes to %s"
                        % (lower.get("x-amz-content-sha256"), want_hash))

    token = os.environ.get("AWS_SESSION_TOKEN") or None
    if ("x-amz-security-token" in lower) != bool(token):
        failures.append("x-amz-security-token present=%s, AWS_SESSION_TOKEN set=%s"
                        % ("x-amz-security-token" in lower, bool(token)))
    creds = Credentials(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"], token)

    # botocore sets host (from the URL), X-Amz-Date (from the timestamp) and the token itself.
    own = {"host", "x-amz-date", "x-amz-security-token"}
    req_headers = {}
    for name in signed:
        if name in own:
            continue
        if name not in lower:
            failures.append("signed header %s was not sent" % name)
            continue
        req_headers[name] = lower[name]
    url = "%s://%s%s" % (args.scheme, lower.get("host", ""), target)
    req = AWSRequest(method=method, url=url, headers=req_headers, data=body)
    req.context["timestamp"] = lower.get("x-amz-date", "")
    auth = SigV4Auth(creds, "s3", args.region)
    # add_auth() minus its clock: the request's own x-amz-date is the signing time.
    auth._modify_request_before_signing(req)
    canonical = auth.canonical_request(req)
    string_to_sign = auth.string_to_sign(req, canonical)
    signature = auth.signature(string_to_sign, req)
    botocore_signed = sorted(auth.headers_to_sign(req).keys())
    auth._inject_signature_to_request(req, signature)
    want = req.headers["Authorization"]
    if want != got:
        failures.append("Authorization differs:\n  libcurl:  %s\n  botocore: %s\n"
                        "botocore's canonical request:\n%s" % (got, want, canonical))
    if botocore_signed != sorted(signed):
        failures.append("botocore signs %s, libcurl signed %s" % (botocore_signed, signed))
    for f in failures:
        print("s3_sigv4_check: %s %s: %s" % (method, target, f))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
