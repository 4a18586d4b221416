#!/usr/bin/python3
"""dsse_tool.py — DSSE checks with Python's `cryptography`, independent of windowseal.

    dsse_tool.py verify ENVELOPE PUB.pem [--pae-out F --sig-out F]
        exit 0 if some signature verifies over PAE(payloadType, payload) with PUB; writes the
        PAE and the first valid raw signature so `openssl pkeyutl -verify -rawin` can check too.
    dsse_tool.py keyid PUB.pem           lowercase hex SHA-256 of the 32 raw public-key bytes
    dsse_tool.py digest ENVELOPE         subject[0].digest.sha256 of the (unverified) statement
    dsse_tool.py resign ENVELOPE PRIV.pem OUT PATH=JSONVALUE
        change one statement field (dotted path) and sign the result with PRIV
"""
import base64
import hashlib
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from producer import sign_envelope, pae  # noqa: E402


def b64any(s):
    """Standard or URL-safe base64, padded or not (SPEC 7)."""
    s = s.strip()
    s += "=" * (-len(s) % 4)
    return base64.b64decode(s.replace("-", "+").replace("_", "/"), validate=True)


def load_env(path):
    with open(path, "rb") as f:
        env = json.loads(f.read())
    return env, b64any(env["payload"])


def raw_pub(pk):
    return pk.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def cmd_verify(argv):
    env, body = load_env(argv[0])
    with open(argv[1], "rb") as f:
        pk = serialization.load_pem_public_key(f.read())
    outs = dict(zip(argv[2::2], argv[3::2]))
    if env.get("payloadType") != "application/vnd.in-toto+json":
        print("dsse_tool: unexpected payloadType", file=sys.stderr)
        return 1
    msg = pae(env["payloadType"], body)
    for s in env["signatures"]:
        sig = b64any(s["sig"])
        try:
            pk.verify(sig, msg)
        except InvalidSignature:
            continue
        if "--pae-out" in outs:
            with open(outs["--pae-out"], "wb") as f:
                f.write(msg)
        if "--sig-out" in outs:
            with open(outs["--sig-out"], "wb") as f:
                f.write(sig)
        st = json.loads(body)
        if st["predicate"]["collector"]["keyid"] != hashlib.sha256(raw_pub(pk)).hexdigest():
            print("dsse_tool: collector.keyid is not the verifying key", file=sys.stderr)
            return 1
        return 0
    print("dsse_tool: no signature verifies", file=sys.stderr)
    return 1


def cmd_keyid(argv):
    with open(argv[0], "rb") as f:
        pk = serialization.load_pem_public_key(f.read())
    print(hashlib.sha256(raw_pub(pk)).hexdigest())
    return 0


def cmd_digest(argv):
    _, body = load_env(argv[0])
    print(json.loads(body)["subject"][0]["digest"]["sha256"])
    return 0


def cmd_resign(argv):
    _, body = load_env(argv[0])
    st = json.loads(body)
    path, value = argv[3].split("=", 1)
    node = st
    keys = path.split(".")
    for k in keys[:-1]:
        node = node[int(k)] if isinstance(node, list) else node[k]
    node[keys[-1]] = json.loads(value)
    with open(argv[1], "rb") as f:
        sk = serialization.load_pem_private_key(f.read(), password=None)
    keyid = hashlib.sha256(raw_pub(sk.public_key())).hexdigest()
    out = json.dumps(st, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    sign_envelope(sk, keyid, out, argv[2])
    return 0


if __name__ == "__main__":
    cmds = {"verify": cmd_verify, "keyid": cmd_keyid, "digest": cmd_digest,
            "resign": cmd_resign}
    if len(sys.argv) < 3 or sys.argv[1] not in cmds:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(cmds[sys.argv[1]](sys.argv[2:]))
