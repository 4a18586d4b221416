#!/usr/bin/python3
"""audit_note.py — an independent implementation of the transparency-dev signed-note checkpoint
(C2SP tlog-checkpoint / signed-note, Go's golang.org/x/mod/sumdb/note) for it_prove.sh and
it_audit.sh. Written from the format description with `cryptography`'s Ed25519 only; it shares
no code with windowseal's window/checkpoint.c.

    audit_note.py selftest
        reproduces the PeterNeumann example of Go's note_test.go byte for byte (key hash,
        signature), so that this file itself is known to speak the format.
    audit_note.py verify NOTE --pubkey PUB.pem [--keyname windowseal]
        prints "origin size roothex" and exits 0 if a signature line by keyname verifies.
    audit_note.py sign --key PRIV.pem --origin O --size N --root HEX [--keyname windowseal]
        writes a signed checkpoint to stdout.
    audit_note.py vkey --pubkey PUB.pem [--keyname windowseal]
        the note verifier key "name+hash+base64(0x01||pk)".
"""
import argparse
import base64
import hashlib
import re
import struct
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (Ed25519PrivateKey,
                                                               Ed25519PublicKey)

DASH = "\u2014 "


def key_hash(name, pk):
    return hashlib.sha256(name.encode() + b"\n" + b"\x01" + pk).digest()[:4]


def raw_pub(pub):
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def sign_text(sk, name, text):
    pk = raw_pub(sk.public_key())
    sig = sk.sign(text.encode())
    return text + "\n" + DASH + name + " " + base64.b64encode(key_hash(name, pk) + sig).decode() \
        + "\n"


def open_note(note, pk, name):
    """Returns the text if a signature line by name with pk verifies; raises ValueError."""
    i = note.rfind("\n\n")
    if i < 0:
        raise ValueError("no blank line")
    text, sigs = note[:i + 1], note[i + 2:]
    if not sigs.endswith("\n"):
        raise ValueError("signatures must end in a newline")
    for line in sigs[:-1].split("\n"):
        if not line.startswith(DASH):
            raise ValueError("bad signature line %r" % line)
        who, _, b64 = line[len(DASH):].partition(" ")
        blob = base64.b64decode(b64, validate=True)
        if who != name or len(blob) != 68 or blob[:4] != key_hash(name, pk):
            continue
        try:
            Ed25519PublicKey.from_public_bytes(pk).verify(blob[4:], text.encode())
            return text
        except InvalidSignature:
            raise ValueError("signature by %s does not verify" % name)
    raise ValueError("no signature by %s" % name)


def parse_checkpoint(text):
    lines = text.split("\n")
    if len(lines) != 4 or lines[3] != "":
        raise ValueError("checkpoint body must be three lines")
    origin, size, root = lines[:3]
    if not re.fullmatch(r"0|[1-9][0-9]*", size):
        raise ValueError("size")
    r = base64.b64decode(root, validate=True)
    if len(r) != 32:
        raise ValueError("root")
    return origin, int(size), r


def selftest():
    vkey = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
    skey = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
    text = ("If you think cryptography is the answer to your problem,\n"
            "then you don't know what your problem is.\n")
    want = text + "\n" + DASH + "PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgY" \
        "N1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
    seed = base64.b64decode(skey.split("+", 4)[4])[1:]  # base64 may hold "+"
    sk = Ed25519PrivateKey.from_private_bytes(seed)
    pk = raw_pub(sk.public_key())
    assert base64.b64decode(vkey.split("+", 2)[2]) == b"\x01" + pk
    assert key_hash("PeterNeumann", pk).hex() == "c74f20a3"
    assert sign_text(sk, "PeterNeumann", text) == want
    assert open_note(want, pk, "PeterNeumann") == text
    try:
        open_note(want.replace("cryptography", "cryptographY"), pk, "PeterNeumann")
        raise AssertionError("tampered note verified")
    except ValueError:
        pass
    print("selftest: Go note vector reproduced")
    return 0


def load_pub(path):
    with open(path, "rb") as f:
        data = f.read()
    try:
        k = serialization.load_pem_public_key(data)
    except ValueError:
        k = serialization.load_pem_private_key(data, password=None).public_key()
    return raw_pub(k)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("selftest")
    v = sub.add_parser("verify")
    v.add_argument("note")
    v.add_argument("--pubkey", required=True)
    v.add_argument("--keyname", default="windowseal")
    s = sub.add_parser("sign")
    s.add_argument("--key", required=True)
    s.add_argument("--origin", required=True)
    s.add_argument("--size", type=int, required=True)
    s.add_argument("--root", required=True)
    s.add_argument("--keyname", default="windowseal")
    k = sub.add_parser("vkey")
    k.add_argument("--pubkey", required=True)
    k.add_argument("--keyname", default="windowseal")
    a = ap.parse_args()
    if a.cmd == "selftest":
        return selftest()
    if a.cmd == "verify":
        note = open(a.note, "rb").read().decode("utf-8")
        try:
            origin, size, root = parse_checkpoint(open_note(note, load_pub(a.pubkey), a.keyname))
        except ValueError as e:
            print("invalid: %s" % e)
            return 1
        print("%s %d %s" % (origin, size, root.hex()))
        return 0
    if a.cmd == "sign":
        with open(a.key, "rb") as f:
            sk = serialization.load_pem_private_key(f.read(), password=None)
        text = "%s\n%d\n%s\n" % (a.origin, a.size,
                                 base64.b64encode(bytes.fromhex(a.root)).decode())
        sys.stdout.write(sign_text(sk, a.keyname, text))
        return 0
    pk = load_pub(a.pubkey)
    print("%s+%s+%s" % (a.keyname, key_hash(a.keyname, pk).hex(),
                        base64.b64encode(b"\x01" + pk).decode()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
