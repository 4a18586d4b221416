#!/usr/bin/python3
"""Iceberg test tables and a loopback REST catalog for tests/test_iceberg_resolve.c.

    iceberg_catalog.py DIR        build the tables under DIR, serve, print the port on stdout
    iceberg_catalog.py DIR --s3 ENDPOINT BUCKET
                                  also a table whose location is s3://BUCKET/... : its files are
                                  uploaded to the S3-compatible store at ENDPOINT (s3rver in
                                  tests/it_iceberg.sh; AWS_* credentials from the environment)

No Iceberg implementation is installed on the test machines, so the tables are written here
from the Iceberg table spec with an independent Avro implementation (Debian's python3-avro):
manifest lists and manifests with the spec's schemas (field ids, the key-value metadata Iceberg
writes), table metadata as format version 2, data files of random bytes. Every Avro file is read
back with a second reader (avrocat, Debian's avro-bin, i.e. Apache Avro C's own container
reader) before anything is served: the corrupt one must fail there too.

The server answers GET /v1/config and loadTable as the REST OpenAPI defines them, and serves
/files/... (the data and metadata of the tables whose location is http://). It checks what the
client sends: `snapshots=all`, namespace levels joined by %1F, the bearer token of the secure
prefix.

DIR/expected.json holds, per case, the exact `outputs[i].iceberg` object the engine must produce
(digests computed here with hashlib), or the failure it must record; the C test compares.
"""
import hashlib
import http.server
import json
import os
import random
import subprocess
import sys
import threading
import urllib.parse

import warnings

import avro.datafile
import avro.io
import avro.schema

# --------------------------------------------------------------------------------------------
# Iceberg's Avro schemas (table spec, "Manifests" and "Manifest Lists"), v2.

def opt(t):
    return ["null", t]


PARTITION_SUMMARY = {
    "type": "record", "name": "r508", "fields": [
        {"name": "contains_null", "type": "boolean", "field-id": 509},
        {"name": "contains_nan", "type": opt("boolean"), "default": None, "field-id": 518},
        {"name": "lower_bound", "type": opt("bytes"), "default": None, "field-id": 510},
        {"name": "upper_bound", "type": opt("bytes"), "default": None, "field-id": 511}]}

MANIFEST_FILE_V2 = {
    "type": "record", "name": "manifest_file", "fields": [
        {"name": "manifest_path", "type": "string", "field-id": 500},
        {"name": "manifest_length", "type": "long", "field-id": 501},
        {"name": "partition_spec_id", "type": "int", "field-id": 502},
        {"name": "content", "type": "int", "field-id": 517},
        {"name": "sequence_number", "type": "long", "field-id": 515},
        {"name": "min_sequence_number", "type": "long", "field-id": 516},
        {"name": "added_snapshot_id", "type": "long", "field-id": 503},
        {"name": "added_files_count", "type": "int", "field-id": 504},
        {"name": "existing_files_count", "type": "int", "field-id": 505},
        {"name": "deleted_files_count", "type": "int", "field-id": 506},
        {"name": "added_rows_count", "type": "long", "field-id": 512},
        {"name": "existing_rows_count", "type": "long", "field-id": 513},
        {"name": "deleted_rows_count", "type": "long", "field-id": 514},
        {"name": "partitions", "type": opt({"type": "array", "items": PARTITION_SUMMARY,
                                            "element-id": 508}),
         "default": None, "field-id": 507},
        {"name": "key_metadata", "type": opt("bytes"), "default": None, "field-id": 519}]}

# Another writer's manifest list: older names (added_data_files_count, ...), another field order,
# no v2 fields. Only the field ids say what is what.
MANIFEST_FILE_OTHER = {
    "type": "record", "name": "manifest_file", "fields": [
        {"name": "added_snapshot_id", "type": opt("long"), "default": None, "field-id": 503},
        {"name": "added_data_files_count", "type": opt("int"), "default": None, "field-id": 504},
        {"name": "manifest_length", "type": "long", "field-id": 501},
        {"name": "partition_spec_id", "type": "int", "field-id": 502},
        {"name": "manifest_path", "type": "string", "field-id": 500},
        {"name": "existing_data_files_count", "type": opt("int"), "default": None,
         "field-id": 505},
        {"name": "deleted_data_files_count", "type": opt("int"), "default": None,
         "field-id": 506}]}


def kv(name, kid, vid, vtype):
    return opt({"type": "array", "logicalType": "map", "items": {
        "type": "record", "name": name, "fields": [
            {"name": "key", "type": "int", "field-id": kid},
            {"name": "value", "type": vtype, "field-id": vid}]}})


DATA_FILE_V2 = {
    "type": "record", "name": "r2", "fields": [
        {"name": "content", "type": "int", "field-id": 134},
        {"name": "file_path", "type": "string", "field-id": 100},
        {"name": "file_format", "type": "string", "field-id": 101},
        {"name": "partition", "type": {"type": "record", "name": "r102", "fields": [
            {"name": "day", "type": opt("int"), "default": None, "field-id": 1000}]},
         "field-id": 102},
        {"name": "record_count", "type": "long", "field-id": 103},
        {"name": "file_size_in_bytes", "type": "long", "field-id": 104},
        {"name": "column_sizes", "type": kv("k117_v118", 117, 118, "long"), "default": None,
         "field-id": 108},
        {"name": "value_counts", "type": kv("k119_v120", 119, 120, "long"), "default": None,
         "field-id": 109},
        {"name": "lower_bounds", "type": kv("k126_v127", 126, 127, "bytes"), "default": None,
         "field-id": 125},
        {"name": "upper_bounds", "type": kv("k129_v130", 129, 130, "bytes"), "default": None,
         "field-id": 128},
        {"name": "key_metadata", "type": opt("bytes"), "default": None, "field-id": 131},
        {"name": "split_offsets", "type": opt({"type": "array", "items": "long",
                                               "element-id": 133}),
         "default": None, "field-id": 132},
        {"name": "equality_ids", "type": opt({"type": "array", "items": "int",
                                              "element-id": 136}),
         "default": None, "field-id": 135},
        {"name": "sort_order_id", "type": opt("int"), "default": None, "field-id": 140}]}

MANIFEST_ENTRY_V2 = {
    "type": "record", "name": "manifest_entry", "fields": [
        {"name": "status", "type": "int", "field-id": 0},
        {"name": "snapshot_id", "type": opt("long"), "default": None, "field-id": 1},
        {"name": "sequence_number", "type": opt("long"), "default": None, "field-id": 3},
        {"name": "file_sequence_number", "type": opt("long"), "default": None, "field-id": 4},
        {"name": "data_file", "type": DATA_FILE_V2, "field-id": 2}]}

TABLE_SCHEMA = {"type": "struct", "schema-id": 0, "fields": [
    {"id": 1, "name": "id", "required": True, "type": "long"},
    {"id": 2, "name": "day", "required": False, "type": "date"}]}
SPEC = [{"name": "day", "transform": "identity", "source-id": 2, "field-id": 1000}]

EXISTING, ADDED, DELETED = 0, 1, 2
# Iceberg marks int-keyed maps as arrays of key/value records with logicalType "map", which
# python3-avro does not know and (rightly) reads as the array it is.
warnings.simplefilter("ignore")

# --------------------------------------------------------------------------------------------
# Writing tables


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read())
    return h.hexdigest()


def avrocat_reads(path, n=None):
    """Apache Avro C's avrocat reads the file whole (it reports some errors with status 0)."""
    out = subprocess.run(["avrocat", path], capture_output=True, text=True, errors="replace")
    lines = [l for l in out.stdout.splitlines() if l and not l.startswith("Error")]
    return out.returncode == 0 and "Error" not in out.stdout + out.stderr and \
        (n is None or len(lines) == n)


def write_avro(path, schema, records, codec, meta):
    parsed = avro.schema.parse(json.dumps(schema))
    with open(path, "wb") as f:
        w = avro.datafile.DataFileWriter(f, avro.io.DatumWriter(), parsed, codec=codec)
        for k, v in meta.items():
            w.set_meta(k, v.encode() if isinstance(v, str) else v)
        for r in records:
            w.append(r)
        w.flush()
        w.close()
    # The second reader: Apache Avro C's avrocat must read every record back.
    if codec == "bzip2":   # Avro C has no bzip2: python3-avro's own reader is the check
        with open(path, "rb") as f:
            if sum(1 for _ in avro.datafile.DataFileReader(f, avro.io.DatumReader())) != \
                    len(records):
                raise SystemExit("%s does not read back" % path)
    elif not avrocat_reads(path, len(records)):
        raise SystemExit("avrocat does not read %s back (%d records)" % (path, len(records)))
    return os.path.getsize(path)


class Table:
    """One table: a directory (served over file:// or http://) and its snapshots."""

    def __init__(self, env, key, codec="deflate", http=False, list_schema=MANIFEST_FILE_V2,
                 s3=False):
        self.env, self.key, self.codec, self.list_schema = env, key, codec, list_schema
        rel = key.replace(".", "/")
        if s3:
            self.dir = os.path.join(env.root, "s3", rel)
            self.location = "s3://%s/%s" % (env.s3[1], rel)
        elif http:
            self.dir = os.path.join(env.root, "http", rel)
            self.location = "http://127.0.0.1:%d/files/%s" % (env.port, rel)
        else:
            self.dir = os.path.join(env.root, "file", rel)
            self.location = "file://" + self.dir
        os.makedirs(os.path.join(self.dir, "data"), exist_ok=True)
        os.makedirs(os.path.join(self.dir, "metadata"), exist_ok=True)
        self.snapshots, self.seq, self.files = [], 0, {}
        self.properties = {"write.format.default": "parquet"}
        self.config = {}

    def uri(self, rel):
        return self.location + "/" + rel

    def data_file(self, name, size, records, write=True):
        rel = "data/" + name
        if write:
            with open(os.path.join(self.dir, rel), "wb") as f:
                f.write(self.env.rng.randbytes(size))
        entry = {"content": 0, "file_path": self.uri(rel), "file_format": "PARQUET",
                 "partition": {"day": 19000}, "record_count": records,
                 "file_size_in_bytes": size, "column_sizes": [{"key": 1, "value": size // 2}],
                 "value_counts": [{"key": 1, "value": records}],
                 "lower_bounds": [{"key": 1, "value": b"\x00" * 8}],
                 "upper_bounds": [{"key": 1, "value": b"\xff" * 8}],
                 "key_metadata": None, "split_offsets": [4], "equality_ids": None,
                 "sort_order_id": 0}
        self.files[entry["file_path"]] = entry
        return entry

    def delete_file(self, name, size, records):
        e = dict(self.data_file(name, size, records))
        e["content"] = 1
        e["file_format"] = "PARQUET"
        return e

    def manifest(self, name, snapshot_id, entries, content="data", codec=None):
        """entries: (status, snapshot id or None, data_file dict)."""
        rel = "metadata/%s.avro" % name
        path = os.path.join(self.dir, rel)
        recs = [{"status": st, "snapshot_id": sid, "sequence_number": None,
                 "file_sequence_number": None, "data_file": df} for st, sid, df in entries]
        length = write_avro(path, MANIFEST_ENTRY_V2, recs, codec or self.codec, {
            "schema": json.dumps(TABLE_SCHEMA), "schema-id": "0",
            "partition-spec": json.dumps(SPEC), "partition-spec-id": "0",
            "format-version": "2", "content": content})
        return {"manifest_path": self.uri(rel), "manifest_length": length,
                "partition_spec_id": 0, "content": 0 if content == "data" else 1,
                "added_snapshot_id": snapshot_id,
                "added_files_count": sum(1 for e in entries if e[0] == ADDED),
                "existing_files_count": sum(1 for e in entries if e[0] == EXISTING),
                "deleted_files_count": sum(1 for e in entries if e[0] == DELETED),
                "added_rows_count": sum(e[2]["record_count"] for e in entries if e[0] == ADDED),
                "existing_rows_count": 0, "deleted_rows_count": 0, "partitions": None,
                "key_metadata": None}

    def snapshot(self, snapshot_id, manifests, operation="append", summary=None,
                 list_rel=None):
        self.seq += 1
        parent = self.snapshots[-1]["snapshot-id"] if self.snapshots else None
        rel = list_rel or "metadata/snap-%d-1-list.avro" % snapshot_id
        path = os.path.join(self.dir, rel) if list_rel is None or not list_rel.startswith(
            "/") else list_rel
        recs = []
        for m in manifests:
            m = dict(m)
            m["sequence_number"] = self.seq
            m["min_sequence_number"] = self.seq
            recs.append(m)
        meta = {"snapshot-id": str(snapshot_id), "sequence-number": str(self.seq),
                "format-version": "2"}
        if parent is not None:
            meta["parent-snapshot-id"] = str(parent)
        if self.list_schema is not MANIFEST_FILE_V2:
            recs = [{f["name"]: r.get(f["name"], r.get(f["name"].replace("_data", ""), 0))
                     for f in self.list_schema["fields"]} for r in recs]
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_avro(path, self.list_schema, recs, self.codec, meta)
        added = [e for m in manifests for e in self.entries_of(m, snapshot_id)]
        s = {"operation": operation,
             "added-data-files": str(len(added)),
             "added-records": str(sum(e["record_count"] for e in added)),
             "added-files-size": str(sum(e["file_size_in_bytes"] for e in added) + 99),
             "total-records": "0"}
        s.update(summary or {})
        snap = {"snapshot-id": snapshot_id, "sequence-number": self.seq,
                "timestamp-ms": 1700000000000 + self.seq, "summary": s,
                "manifest-list": ("file://" + path) if list_rel and list_rel.startswith("/")
                else self.uri(rel), "schema-id": 0}
        if parent is not None:
            snap["parent-snapshot-id"] = parent
        self.snapshots.append(snap)
        self.manifests_of = getattr(self, "manifests_of", {})
        self.manifests_of[snapshot_id] = manifests
        self.ml_path = {**getattr(self, "ml_path", {}), snapshot_id: path}
        return snap

    def entries_of(self, manifest, snapshot_id):
        """ADDED data files of snapshot_id in a manifest, read back from what was written."""
        if manifest["added_snapshot_id"] != snapshot_id:
            return []
        path = os.path.join(self.dir, manifest["manifest_path"][len(self.location) + 1:])
        with open(path, "rb") as f:
            r = avro.datafile.DataFileReader(f, avro.io.DatumReader())
            out = []
            for e in r:
                sid = e["snapshot_id"] if e["snapshot_id"] is not None else snapshot_id
                if e["status"] == ADDED and sid == snapshot_id and \
                        e["data_file"]["content"] == 0:
                    out.append(e["data_file"])
            r.close()
        return out

    def metadata(self):
        return {"format-version": 2, "table-uuid": "00000000-0000-4000-8000-%012d" %
                (abs(hash(self.key)) % 10**12), "location": self.location,
                "last-sequence-number": self.seq, "last-updated-ms": 1700000000000,
                "last-column-id": 2, "current-schema-id": 0, "schemas": [TABLE_SCHEMA],
                "default-spec-id": 0, "partition-specs": [{"spec-id": 0, "fields": SPEC}],
                "last-partition-id": 1000, "default-sort-order-id": 0,
                "sort-orders": [{"order-id": 0, "fields": []}], "properties": self.properties,
                "current-snapshot-id": self.snapshots[-1]["snapshot-id"] if self.snapshots
                else -1, "snapshots": self.snapshots,
                "snapshot-log": [{"snapshot-id": s["snapshot-id"],
                                  "timestamp-ms": s["timestamp-ms"]} for s in self.snapshots],
                "metadata-log": []}

    def expected(self, snapshot_id, present=None):
        """The exact iceberg object for snapshot_id (present: data paths whose object exists)."""
        snap = next(s for s in self.snapshots if s["snapshot-id"] == snapshot_id)
        files = []
        for m in self.manifests_of[snapshot_id]:
            for df in self.entries_of(m, snapshot_id):
                f = {"path": df["file_path"], "recordCount": df["record_count"],
                     "bytes": df["file_size_in_bytes"]}
                local = os.path.join(self.dir, df["file_path"][len(self.location) + 1:])
                if os.path.exists(local):
                    f["sha256"] = sha256_file(local)
                else:
                    f["error"] = "HTTP 404" if self.location.startswith("http") else "not found"
                files.append(f)
        files.sort(key=lambda f: f["path"])
        ns = self.key.split(".")[1:-1]
        out = {"catalog": self.key.split(".")[0], "namespace": ns,
               "table": self.key.split(".")[-1], "snapshotId": str(snapshot_id),
               "sequenceNumber": snap["sequence-number"], "operation": snap["summary"]["operation"],
               "manifestList": {"path": snap["manifest-list"],
                                "sha256": sha256_file(self.ml_path[snapshot_id]),
                                "bytes": os.path.getsize(self.ml_path[snapshot_id])},
               "addedDataFiles": files,
               "summary": {k: snap["summary"][k] for k in
                           ("added-data-files", "added-records", "added-files-size")}}
        if "parent-snapshot-id" in snap:
            out["parentSnapshotId"] = str(snap["parent-snapshot-id"])
        mis = {}
        for k, counted in (("added-data-files", len(files)),
                           ("added-records", sum(f["recordCount"] for f in files))):
            if snap["summary"][k] != str(counted):
                mis[k] = [snap["summary"][k], counted]
        if mis:
            out["summaryMismatch"] = mis
        return out


class Env:
    def __init__(self, root, port, s3=None):
        self.root, self.port, self.s3 = root, port, s3  # s3: (endpoint, bucket) or None
        self.rng = random.Random(16)
        self.tables = {}   # "ns\x1ftable" -> Table  (the catalog's view: prefix "main")
        self.cases = []

    def table(self, key, **kw):
        t = Table(self, key, **kw)
        self.tables["\x1f".join(key.split(".")[1:-1]) + "/" + key.split(".")[-1]] = t
        return t

    def case(self, name, output, expect=None, snapshot=None, query=None, batch=None,
             files=None, error=None, retriable=False, discrepancy=None, catalog="ice",
             subjects=None, creds=None):
        self.cases.append({k: v for k, v in {
            "name": name, "output": output, "snapshotId": snapshot, "queryId": query,
            "batchId": batch, "files": files, "expect": expect, "error": error,
            "retriable": retriable, "discrepancy": discrepancy, "catalog": catalog,
            "subjects": subjects, "creds": creds}.items() if v is not None})


def build(env):
    Q = "8c5e7f5a-0d4c-4b53-9d1e-6f1c2a3b4c5d"
    # 1. appends, found by both kinds of stamps; a retried commit carrying the same stamps.
    t = env.table("ice.db.events")
    a = [t.data_file("00000-0-a.parquet", 3000, 30), t.data_file("00001-0-b.parquet", 4100, 41)]
    m1 = t.manifest("m1", 1001, [(ADDED, 1001, a[0]), (ADDED, 1001, a[1])])
    t.snapshot(1001, [m1], summary={"windowseal.query-id": Q, "windowseal.batch-id": "0"})
    b = [t.data_file("00002-0-c.parquet", 5000, 50)]
    m2 = t.manifest("m2", 1002, [(ADDED, 1002, b[0])])
    t.snapshot(1002, [m2, m1], summary={"spark.sql.streaming.queryId": Q,
                                        "spark.sql.streaming.epochId": "1"})
    c = [t.data_file("00003-0-d.parquet", 777, 7)]
    m3 = t.manifest("m3", 1003, [(ADDED, 1003, c[0])])
    t.snapshot(1003, [m3, m2, m1], summary={"spark.sql.streaming.queryId": Q,
                                            "spark.sql.streaming.epochId": "1"})
    env.case("append-by-windowseal-stamps", "ice.db.events", t.expected(1001), query=Q, batch=0)
    env.case("append-by-spark-stamps-lowest-seq", "ice.db.events", t.expected(1002), query=Q,
             batch=1)
    env.case("append-by-snapshot-id", "ice.db.events", t.expected(1003), snapshot="1003",
             query=Q, batch=7)
    env.case("job-list-agrees", "ice.db.events", t.expected(1001), query=Q, batch=0,
             files=[a[1]["file_path"], a[0]["file_path"]])
    forged = t.uri("data/forged.parquet")
    env.case("forged-job-list", "ice.db.events", t.expected(1001), query=Q, batch=0,
             files=[forged, a[0]["file_path"]],
             discrepancy={"notInSnapshot": [forged], "notReported": [a[1]["file_path"]]})
    env.case("missing-snapshot", "ice.db.events", snapshot="999", query=Q, batch=0,
             error="snapshot 999 not found")
    env.case("no-stamps", "ice.db.events", query=Q, batch=42, error="no snapshot has the summary")
    env.case("bad-snapshot-id", "ice.db.events", snapshot="12x", query=Q, batch=0,
             error="not a 64-bit integer")

    # 2. merge-append: the new manifest carries EXISTING entries of 2001 and ADDED entries whose
    # snapshot id is null (inherited from the manifest's added_snapshot_id); ids beyond 2^53.
    t = env.table("ice.db.merged")
    s1, s2 = 9007199254740993, 9007199254740995
    a = [t.data_file("m-00000.parquet", 2000, 20), t.data_file("m-00001.parquet", 2100, 21)]
    m1 = t.manifest("mm1", s1, [(ADDED, s1, a[0]), (ADDED, s1, a[1])])
    t.snapshot(s1, [m1])
    b = [t.data_file("m-00002.parquet", 2200, 22), t.data_file("m-00003.parquet", 2300, 23)]
    m2 = t.manifest("mm2", s2, [(EXISTING, s1, a[0]), (EXISTING, s1, a[1]),
                                (ADDED, None, b[0]), (ADDED, None, b[1])])
    t.snapshot(s2, [m2])
    env.case("merge-append-existing-and-inherited", "ice.db.merged", t.expected(s2),
             snapshot=str(s2), query=Q, batch=3)

    # 3. overwrite: a DELETED entry, an ADDED data file, an ADDED delete file in a delete
    # manifest; the manifest list written by another writer (other names, other order).
    t = env.table("ice.db.rewrite", list_schema=MANIFEST_FILE_OTHER)
    a = [t.data_file("r-00000.parquet", 1000, 10), t.data_file("r-00001.parquet", 1100, 11)]
    m1 = t.manifest("rm1", 3001, [(ADDED, 3001, a[0]), (ADDED, 3001, a[1])])
    t.snapshot(3001, [m1])
    b = [t.data_file("r-00002.parquet", 1200, 12)]
    d = t.delete_file("r-00003-deletes.parquet", 300, 3)
    m2 = t.manifest("rm2", 3002, [(DELETED, 3002, a[0]), (EXISTING, 3001, a[1]),
                                  (ADDED, 3002, b[0])])
    m3 = t.manifest("rm3", 3002, [(ADDED, 3002, d)], content="deletes")
    t.snapshot(3002, [m2, m3], operation="overwrite")
    env.case("overwrite-deleted-and-delete-files", "ice.db.rewrite", t.expected(3002),
             snapshot="3002", query=Q, batch=4)

    # 4. two-level namespace, snappy manifests, served over http with vended credentials; one
    # data file missing from the store (recorded on the file, the rest hashed).
    t = env.table("ice.lake.sales.orders", codec="snappy", http=True)
    t.config = {"s3.access-key-id": "VENDEDKEY", "s3.secret-access-key": "vendedsecret",
                "s3.endpoint": "http://127.0.0.1:1"}
    a = [t.data_file("o-00000.parquet", 70000, 700), t.data_file("o-00001.parquet", 1, 1),
         t.data_file("o-00002-gone.parquet", 4096, 9, write=False)]
    m1 = t.manifest("om1", 4001, [(ADDED, 4001, x) for x in a])
    t.snapshot(4001, [m1], summary={"windowseal.query-id": Q, "windowseal.batch-id": "5"})
    env.case("two-level-namespace-snappy-http", "ice.lake.sales.orders", t.expected(4001),
             query=Q, batch=5, creds="VENDEDKEY")

    # 5. the summary disagrees with the manifests
    t = env.table("ice.db.wrongsum")
    a = [t.data_file("w-00000.parquet", 10, 1)]
    m1 = t.manifest("wm1", 5001, [(ADDED, 5001, a[0])], codec="null")
    t.snapshot(5001, [m1], summary={"added-data-files": "3", "added-records": "1"})
    env.case("summary-mismatch", "ice.db.wrongsum", t.expected(5001), snapshot="5001",
             query=Q, batch=0)

    # 6. faults recorded in iceberg.error
    t = env.table("ice.db.noml")
    t.snapshot(6001, [t.manifest("nm1", 6001, [(ADDED, 6001, t.data_file("x.parquet", 5, 1))])])
    os.unlink(t.ml_path[6001])
    env.case("manifest-list-404", "ice.db.noml", snapshot="6001", query=Q, batch=0,
             error="manifest list")

    t = env.table("ice.db.nomanifest")
    m = t.manifest("gone", 6101, [(ADDED, 6101, t.data_file("y.parquet", 5, 1))])
    t.snapshot(6101, [m])
    os.unlink(os.path.join(t.dir, "metadata/gone.avro"))
    env.case("manifest-404", "ice.db.nomanifest", snapshot="6101", query=Q, batch=0,
             error="manifest " + m["manifest_path"])

    t = env.table("ice.db.corrupt")
    m = t.manifest("bad", 6201, [(ADDED, 6201, t.data_file("z.parquet", 5, 1))], codec="null")
    t.snapshot(6201, [m])
    p = os.path.join(t.dir, "metadata/bad.avro")
    raw = bytearray(open(p, "rb").read())
    for i in range(len(raw) - 8, len(raw)):   # the block's closing sync marker
        raw[i] ^= 0x5A
    open(p, "wb").write(bytes(raw))
    if avrocat_reads(p):
        raise SystemExit("avrocat reads the scrambled manifest: not corrupt enough")
    env.case("corrupt-avro", "ice.db.corrupt", snapshot="6201", query=Q, batch=0,
             error="manifest " + m["manifest_path"])

    t = env.table("ice.db.halflist")
    t.snapshot(6251, [t.manifest("hm", 6251, [(ADDED, 6251, t.data_file("h.parquet", 5, 1))])])
    raw = open(t.ml_path[6251], "rb").read()
    open(t.ml_path[6251], "wb").write(raw[:len(raw) // 2])
    if avrocat_reads(t.ml_path[6251]):
        raise SystemExit("avrocat reads the truncated manifest list")
    env.case("truncated-manifest-list", "ice.db.halflist", snapshot="6251", query=Q, batch=0,
             error="manifest list")

    t = env.table("ice.db.outside")
    other = os.path.join(env.root, "elsewhere", "snap-list.avro")
    m = t.manifest("om", 6301, [(ADDED, 6301, t.data_file("o.parquet", 5, 1))])
    t.snapshot(6301, [m], list_rel=other)
    env.case("manifest-list-outside-location", "ice.db.outside", snapshot="6301", query=Q,
             batch=0, error="outside the table location")

    t = env.table("ice.db.bzip")
    m = t.manifest("bz", 6401, [(ADDED, 6401, t.data_file("b.parquet", 5, 1))], codec="bzip2")
    t.snapshot(6401, [m])
    env.case("unsupported-codec", "ice.db.bzip", snapshot="6401", query=Q, batch=0,
             error='unsupported Avro codec "bzip2"')

    env.case("table-404", "ice.db.nosuchtable", snapshot="1", query=Q, batch=0,
             error="HTTP 404")
    env.case("catalog-503-retriable", "ice.db.down", snapshot="1", query=Q, batch=0,
             retriable=True)

    # 7. prefix resolution and the bearer token: every route but prefix "main" is a 404.
    ev = env.tables["db/events"]
    env.case("prefix-from-overrides", "wh.db.events", ev.expected(1001), query=Q, batch=0,
             catalog="wh")
    env.case("prefix-configured-over-defaults", "pre.db.events", ev.expected(1001), query=Q,
             batch=0, catalog="pre")
    env.case("prefix-from-defaults", "dflt.db.events", ev.expected(1001), query=Q, batch=0,
             catalog="dflt")
    env.case("token-accepted", "sec.db.events", ev.expected(1001), query=Q, batch=0,
             catalog="sec")
    env.case("token-refused-401", "bad.db.events", query=Q, batch=0, error="HTTP 401",
             catalog="bad")
    for c in env.cases:   # an expected object under another catalog name says that name
        if "expect" in c and c["catalog"] != "ice":
            c["expect"] = dict(c["expect"], catalog=c["catalog"])


# --------------------------------------------------------------------------------------------
# The REST catalog


class Handler(http.server.BaseHTTPRequestHandler):
    env = None

    def log_message(self, *a):
        pass

    def send(self, code, obj=None, raw=None):
        body = raw if raw is not None else json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json" if raw is None else
                         "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def error(self, code, msg):
        self.send(code, {"error": {"message": msg, "type": "TestError", "code": code}})

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(url.query)
        raw = url.path
        if raw.startswith("/files/"):
            p = os.path.join(self.env.root, "http", urllib.parse.unquote(raw[7:]))
            if ".." in raw or not os.path.isfile(p):
                return self.error(404, "no such object")
            return self.send(200, raw=open(p, "rb").read())
        if raw == "/v1/config":
            wh = q.get("warehouse", [None])[0]
            cfg = {None: {"defaults": {"prefix": "bogus"}, "overrides": {}},
                   "main": {"defaults": {"prefix": "bogus"}, "overrides": {"prefix": "main"}},
                   "dflt": {"defaults": {"prefix": "main"}, "overrides": {}},
                   "secure": {"defaults": {}, "overrides": {"prefix": "secure"}}}.get(wh)
            if cfg is None:
                return self.error(404, "no such warehouse")
            return self.send(200, cfg)
        parts = raw.split("/")
        # /v1/{prefix}/namespaces/{ns}/tables/{table}
        if len(parts) != 7 or parts[1] != "v1" or parts[3] != "namespaces" or \
                parts[5] != "tables":
            return self.error(404, "no such route")
        prefix, ns_raw, table = parts[2], parts[4], urllib.parse.unquote(parts[6])
        if prefix == "secure":
            if self.headers.get("Authorization") != "Bearer s3cret":
                return self.error(401, "bad token")
        elif prefix != "main":
            return self.error(404, "no such prefix")
        if q.get("snapshots") != ["all"]:
            return self.error(400, "snapshots=all expected")
        if "\x1f" in ns_raw or "%1f" in ns_raw:   # the separator must arrive encoded, upper case
            return self.error(400, "namespace separator not encoded as %1F")
        ns = urllib.parse.unquote(ns_raw)
        if table == "down":
            return self.error(503, "catalog is restarting")
        t = self.env.tables.get(ns + "/" + table)
        if t is None:
            return self.error(404, "NoSuchTableException: %s.%s" % (ns, table))
        return self.send(200, {"metadata-location": t.location + "/metadata/v9.metadata.json",
                               "metadata": t.metadata(), "config": t.config})


def build_s3(env):
    """A table in an S3-compatible store: the engine reads its manifest list, manifests and
    data files through its own S3 client (outputs.s3), as in a lakehouse on MinIO."""
    Q = "3c1d2e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f"
    t = env.table("ice.s3db.events", s3=True)
    a = [t.data_file("s-00000.parquet", 123456, 1234), t.data_file("s-00001.parquet", 777, 7)]
    m1 = t.manifest("sm1", 7001, [(ADDED, 7001, a[0]), (ADDED, 7001, a[1])])
    t.snapshot(7001, [m1], summary={"windowseal.query-id": Q, "windowseal.batch-id": "0"})
    env.case("s3-table-by-stamps", "ice.s3db.events", t.expected(7001), query=Q, batch=0)
    upload(env, os.path.join(env.root, "s3"))


def upload(env, top):
    import botocore.session
    from botocore.config import Config

    endpoint, bucket = env.s3
    s3 = botocore.session.get_session().create_client(
        "s3", endpoint_url=endpoint, region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}))
    for d, _, names in os.walk(top):
        for n in names:
            path = os.path.join(d, n)
            with open(path, "rb") as f:
                s3.put_object(Bucket=bucket, Key=os.path.relpath(path, top), Body=f.read())


def main():
    root = os.path.abspath(sys.argv[1])
    os.makedirs(root, exist_ok=True)
    s3 = tuple(sys.argv[3:5]) if len(sys.argv) >= 5 and sys.argv[2] == "--s3" else None
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    env = Env(root, srv.server_address[1], s3)
    build(env)
    if s3:
        build_s3(env)
    Handler.env = env
    with open(os.path.join(root, "expected.json"), "w") as f:
        json.dump({"cases": env.cases}, f, indent=1)
    print(env.port, flush=True)
    # Serve until the test closes our stdin.
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    sys.stdin.read()
    srv.shutdown()


if __name__ == "__main__":
    main()
