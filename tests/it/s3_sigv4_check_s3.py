#!/usr/bin/python3
"""s3_sigv4_check_s3.py — s3_sigv4_check.py with botocore's S3 signer (S3SigV4Auth) in place of
the generic SigV4Auth: same arguments, same exit statuses.

Why a second checker: S3 signs the request path as sent, URI-encoded once, while the generic
signer normalises and encodes the path again (its %3D becomes %253D). Keys with characters
outside the unreserved set (an Iceberg partition directory "ts_day=2024-01-01", a space) tell
the two apart; the S3 signer is the one AWS S3, MinIO and Ceph check against.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    from botocore.auth import S3SigV4Auth
except ImportError:
    print("s3_sigv4_check_s3: botocore missing", file=sys.stderr)
    sys.exit(77)
import s3_sigv4_check  # noqa: E402  (after the path is set)

s3_sigv4_check.SigV4Auth = S3SigV4Auth

if __name__ == "__main__":
    sys.exit(s3_sigv4_check.main())
