"""The fake Spark "cluster" behind the fake pyspark package, and the objects the examples touch.

Behaviour modelled on PySpark 3.4+/4.x, where it matters to the examples:

- Classic: a foreachBatch function runs in this process, on the query's thread, and may start
  before start() has returned (the first batch begins as soon as the query thread runs). Its
  DataFrame's sparkSession is the stream's cloned session, whose `streams.active` is empty.
- Spark Connect (a session made with builder.remote()): foreachBatch() pickles the function and a
  worker next to the server runs it; here it is rebuilt from its code and a pickled copy of its
  closure, with no module globals (only builtins), so it must be self-contained, and nothing the
  client does after foreachBatch() reaches it. The worker's session sees the running query
  (Spark 3.5/4.0) unless WORLD.connect_cloned_session (newer servers: the cloned session).
- An exception in a foreachBatch function fails the query: awaitTermination() raises
  StreamingQueryException from it.
- A query's id comes from `<checkpointLocation>/metadata` ({"id": ...}, written at the first
  start, read back on restarts); its runId is new on every start.
- Iceberg tables (WORLD.create_table): writeTo(...).option(...).append() commits a snapshot that
  adds one data file (a real file under the table's location), with the `snapshot-property.*`
  options in its summary; spark.sql() answers SELECTs on the metadata tables `snapshots`,
  `entries` and `files` with Iceberg's column names (a wrong column is an AnalysisException),
  `VERSION AS OF`, WHERE a = b AND ..., ORDER BY and LIMIT. `entries` lists the manifests of the
  snapshot read: an older snapshot's ADDED entries become EXISTING (status 0) after a commit
  that merged manifests.

The test scripts a query run by WORLD.batches (list of (batch_id, rows)): start() runs them in
order on the query's thread, then the query ends as if stopped.
"""
import builtins
import datetime
import hashlib
import json
import os
import pickle
import random
import re
import threading
import types
import uuid

from pyspark.errors import AnalysisException, StreamingQueryException

KAFKA_COLUMNS = ("key", "value", "topic", "partition", "offset", "timestamp", "timestampType")


class World:
    def __init__(self):
        self.reset()

    def reset(self):
        self.batches = []            # [(batch_id, [kafka row dict, ...]), ...] for the next start()
        self.tables = {}             # name -> IcebergTable
        self.queries = []            # every StreamingQuery started
        self.connect_cloned_session = False
        self.after_append = None     # hook(table_name, batch_rows): e.g. another writer commits
        self.first_batch_before_start_returned = None
        self.sql_log = []

    def create_table(self, name, location):
        self.tables[name] = IcebergTable(name, location)
        return self.tables[name]


WORLD = World()


# --------------------------------------------------------------------------------------------
class Row(tuple):
    """pyspark.sql.Row: r[0], r["name"], r.name."""

    def __new__(cls, fields, values):
        r = tuple.__new__(cls, values)
        r.__fields__ = tuple(fields)
        return r

    def __getitem__(self, item):
        if isinstance(item, str):
            try:
                item = self.__fields__.index(item)
            except ValueError:
                raise KeyError(item) from None
        return tuple.__getitem__(self, item)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def asDict(self):
        return dict(zip(self.__fields__, self))


class AggColumn:
    def __init__(self, fn, col, name=None):
        self.fn, self.col = fn, col
        self.name = name or f"{fn}({col})"

    def alias(self, name):
        return AggColumn(self.fn, self.col, name)


class DataFrame:
    def __init__(self, session, columns, rows):
        self._session = session
        self.columns = list(columns)
        self._rows = [dict(r) for r in rows]
        self.persisted = False

    @property
    def sparkSession(self):
        return self._session

    def _need(self, col):
        if col not in self.columns:
            raise AnalysisException(f"[UNRESOLVED_COLUMN] `{col}` not in {self.columns}")

    def collect(self):
        return [Row(self.columns, [r[c] for c in self.columns]) for r in self._rows]

    def first(self):
        rows = self.collect()
        return rows[0] if rows else None

    def count(self):
        return len(self._rows)

    def persist(self, *storage_level):
        self.persisted = True
        return self

    def unpersist(self, blocking=False):
        self.persisted = False
        return self

    def groupBy(self, *cols):
        for c in cols:
            self._need(c)
        return GroupedData(self, cols)

    def selectExpr(self, *exprs):
        cols, getters = [], []
        for e in exprs:
            m = re.fullmatch(r"\s*CAST\((\w+) AS STRING\)\s+AS\s+(\w+)\s*", e, re.I)
            if m:
                src, name = m.groups()
                self._need(src)
                getters.append(lambda r, s=src: _as_string(r[s]))
            elif re.fullmatch(r"\w+", e.strip()):
                src = name = e.strip()
                self._need(src)
                getters.append(lambda r, s=src: r[s])
            else:
                raise AnalysisException(f"fake selectExpr does not parse {e!r}")
            cols.append(name)
        return DataFrame(self._session, cols,
                         [dict(zip(cols, (g(r) for g in getters))) for r in self._rows])

    def writeTo(self, table):
        return DataFrameWriterV2(self, table)


def _as_string(v):
    if v is None:
        return None
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).decode("utf-8", "replace")
    return str(v)


class GroupedData:
    def __init__(self, df, cols):
        self._df, self._cols = df, cols

    def agg(self, *aggs):
        groups = {}
        for r in self._df._rows:
            groups.setdefault(tuple(r[c] for c in self._cols), []).append(r)
        out = []
        for key, rows in groups.items():
            row = dict(zip(self._cols, key))
            for a in aggs:
                self._df._need(a.col)
                vals = [r[a.col] for r in rows]
                row[a.name] = {"min": min, "max": max}[a.fn](vals)
            out.append(row)
        return DataFrame(self._df._session, list(self._cols) + [a.name for a in aggs], out)


class DataFrameWriterV2:
    def __init__(self, df, table):
        self._df, self._table, self._options = df, table, {}

    def option(self, key, value):
        self._options[key] = value if isinstance(value, str) else str(value)
        return self

    def append(self):
        t = WORLD.tables.get(self._table)
        if t is None:
            raise AnalysisException(f"[TABLE_OR_VIEW_NOT_FOUND] {self._table}")
        t.append(self._df._rows, self._options)
        if WORLD.after_append:
            WORLD.after_append(self._table, self._df._rows)


# --------------------------------------------------------------------------------------------
class IcebergTable:
    """Snapshots of an append-only Iceberg table, one data file per commit."""

    def __init__(self, name, location):
        self.name, self.location = name, location
        self.snapshots = []
        os.makedirs(os.path.join(location, "data"), exist_ok=True)

    def append(self, rows, options, merge_manifests=False):
        n = len(self.snapshots)
        path = os.path.join(self.location, "data", f"{n:05d}-0-{uuid.uuid4()}.parquet")
        with open(path, "wb") as f:  # stands for a Parquet file: the engine only hashes it
            for r in rows:
                f.write(json.dumps(r, sort_keys=True, default=_as_string).encode() + b"\n")
        size = os.path.getsize(path)
        sid = random.getrandbits(62) | 1
        summary = {"added-data-files": "1", "added-records": str(len(rows)),
                   "added-files-size": str(size), "spark.app.id": "local-1700000000000"}
        prefix = "snapshot-property."
        summary.update({k[len(prefix):]: v for k, v in options.items() if k.startswith(prefix)})
        base = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
        self.snapshots.append({
            "committed_at": base + datetime.timedelta(seconds=n),
            "snapshot_id": sid,
            "parent_id": self.snapshots[-1]["snapshot_id"] if self.snapshots else None,
            "operation": "append",
            "manifest_list": f"{self.location}/metadata/snap-{sid}-1-{uuid.uuid4()}.avro",
            "summary": summary,
            "_file": {"content": 0, "file_path": path, "file_format": "PARQUET", "spec_id": 0,
                      "record_count": len(rows), "file_size_in_bytes": size,
                      "sha256": hashlib.sha256(open(path, "rb").read()).hexdigest()},
            "_merged": merge_manifests,
        })
        return sid

    def _at(self, version):
        if version is None:
            if not self.snapshots:
                return -1
            return len(self.snapshots) - 1
        for i, s in enumerate(self.snapshots):
            if s["snapshot_id"] == version:
                return i
        raise AnalysisException(f"Cannot find snapshot with ID {version}")

    def metadata_rows(self, meta, version):
        i = self._at(version)
        if meta == "snapshots":
            return [{k: v for k, v in s.items() if not k.startswith("_")}
                    for s in self.snapshots[:i + 1]]
        if meta == "entries":
            rows = []
            for j in range(i, -1, -1):
                s = self.snapshots[j]
                merged_since = any(self.snapshots[k]["_merged"] for k in range(j + 1, i + 1))
                f = {k: v for k, v in s["_file"].items() if k != "sha256"}
                rows.append({"status": 0 if merged_since else 1, "snapshot_id": s["snapshot_id"],
                             "sequence_number": j + 1, "file_sequence_number": j + 1,
                             "data_file": f, "readable_metrics": {}})
            return rows
        if meta == "files":
            return [{k: v for k, v in s["_file"].items() if k != "sha256"}
                    for s in self.snapshots[:i + 1]]
        raise AnalysisException(f"unknown metadata table {meta}")


_DATA_FILE = {"content": None, "file_path": None, "file_format": None, "spec_id": None,
              "record_count": None, "file_size_in_bytes": None}
SCHEMAS = {  # Iceberg's metadata table columns (those the fake fills)
    "snapshots": {"committed_at": None, "snapshot_id": None, "parent_id": None, "operation": None,
                  "manifest_list": None, "summary": "map"},
    "entries": {"status": None, "snapshot_id": None, "sequence_number": None,
                "file_sequence_number": None, "data_file": _DATA_FILE, "readable_metrics": "map"},
    "files": dict(_DATA_FILE),
}

_SELECT = re.compile(
    r"SELECT\s+(?P<cols>.+?)\s+FROM\s+(?P<table>[\w.]+)"
    r"(?:\s+VERSION\s+AS\s+OF\s+(?P<version>\d+))?"
    r"(?:\s+WHERE\s+(?P<where>.+?))?"
    r"(?:\s+ORDER\s+BY\s+(?P<order>\S+?)(?:\s+(?P<dir>ASC|DESC))?)?"
    r"(?:\s+LIMIT\s+(?P<limit>\d+))?\s*;?", re.I | re.S)


def _resolve(schema, expr):
    """Check expr against the schema; return (output name, getter)."""
    m = re.fullmatch(r"(\w+)\['([^']*)'\]", expr)
    if m:
        col, key = m.groups()
        if schema.get(col, 0) != "map":
            raise AnalysisException(f"[UNRESOLVED_COLUMN] {expr}: no map column {col}")
        return f"{col}[{key}]", lambda r: r[col].get(key)
    parts = expr.split(".")
    s = schema
    for p in parts:
        if not isinstance(s, dict) or p not in s:
            raise AnalysisException(f"[UNRESOLVED_COLUMN] A column or function parameter with "
                                    f"name `{expr}` cannot be resolved")
        s = s[p]

    def get(r):
        for p in parts:
            r = r[p]
        return r
    return parts[-1], get


def _literal(text):
    text = text.strip()
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    m = re.fullmatch(r"'((?:[^'\\]|\\.)*)'", text)
    if m:
        return m.group(1)
    raise AnalysisException(f"fake SQL: literal {text!r}")


def run_sql(query):
    WORLD.sql_log.append(query)
    m = _SELECT.fullmatch(" ".join(query.split()))
    if not m:
        raise AnalysisException(f"fake SQL does not parse {query!r}")
    name = m.group("table")
    base, _, meta = name.rpartition(".")
    if base not in WORLD.tables or meta not in SCHEMAS:
        raise AnalysisException(f"[TABLE_OR_VIEW_NOT_FOUND] The table or view `{name}` "
                                "cannot be found")
    schema = SCHEMAS[meta]
    version = int(m.group("version")) if m.group("version") else None
    rows = WORLD.tables[base].metadata_rows(meta, version)
    if m.group("where"):
        for cond in re.split(r"\s+AND\s+", m.group("where"), flags=re.I):
            c = re.fullmatch(r"(.+?)\s*=\s*(.+)", cond.strip())
            if not c:
                raise AnalysisException(f"fake SQL: condition {cond!r}")
            _, get = _resolve(schema, c.group(1).strip())
            want = _literal(c.group(2))
            rows = [r for r in rows if get(r) == want]
    if m.group("order"):
        _, get = _resolve(schema, m.group("order"))
        rows.sort(key=get, reverse=(m.group("dir") or "").upper() == "DESC")
    if m.group("limit"):
        rows = rows[:int(m.group("limit"))]
    names, getters = [], []
    for expr in (e.strip() for e in m.group("cols").split(",")):
        n, g = _resolve(schema, expr)
        names.append(n)
        getters.append(g)
    return [dict(zip(names, (g(r) for g in getters))) for r in rows], names


# --------------------------------------------------------------------------------------------
class _Builder:
    def __init__(self):
        self._remote = None

    def appName(self, name):
        return self

    def config(self, key=None, value=None, conf=None):
        return self

    def master(self, url):
        return self

    def remote(self, url):
        if not url.startswith("sc://"):
            raise ValueError(f"not a Spark Connect URL: {url}")
        self._remote = url
        return self

    def getOrCreate(self):
        return SparkSession("connect-client" if self._remote else "driver")


class _BuilderDescriptor:
    def __get__(self, obj, cls):
        return _Builder()


class SparkSession:
    """kind: driver | clone (classic batch session) | connect-client | connect-worker."""

    builder = _BuilderDescriptor()

    def __init__(self, kind, parent=None):
        self.kind, self.parent = kind, parent
        self._queries = []

    @property
    def readStream(self):
        return DataStreamReader(self)

    @property
    def read(self):
        return DataFrameReader(self)

    @property
    def streams(self):
        return StreamingQueryManager(self)

    def sql(self, query):
        rows, names = run_sql(query)
        return DataFrame(self, names, rows)


class DataFrameReader:
    def __init__(self, session):
        self._session = session

    def text(self, path):
        if not os.path.isfile(path):
            raise AnalysisException(f"[PATH_NOT_FOUND] Path does not exist: {path}")
        with open(path, encoding="utf-8") as f:
            return DataFrame(self._session, ["value"],
                             [{"value": line} for line in f.read().splitlines()])


class StreamingQueryManager:
    def __init__(self, session):
        self._session = session

    def _visible(self):
        s = self._session
        if s.kind == "clone":  # PySpark >= 3.4: the stream's cloned session
            return []
        if s.kind == "connect-worker":
            return [] if WORLD.connect_cloned_session else s.parent._queries
        return s._queries

    @property
    def active(self):
        return [q for q in self._visible() if q.isActive]

    def get(self, id):
        for q in self.active:
            if q.id == id:
                return q
        return None


class DataStreamReader:
    def __init__(self, session):
        self._session, self._format, self._options = session, None, {}

    def format(self, source):
        self._format = source
        return self

    def option(self, key, value):
        self._options[key] = str(value)
        return self

    def load(self):
        if self._format != "kafka" or "subscribe" not in self._options or \
                "kafka.bootstrap.servers" not in self._options:
            raise AnalysisException(f"fake readStream: kafka with subscribe and "
                                    f"kafka.bootstrap.servers only, got {self._format} "
                                    f"{self._options}")
        return StreamingDataFrame(self._session)


class StreamingDataFrame:
    def __init__(self, session):
        self._session = session

    @property
    def writeStream(self):
        return DataStreamWriter(self._session)


def _ship(fn):
    """What pickling the function to the Connect server's worker does to it."""
    cells = tuple(types.CellType(pickle.loads(pickle.dumps(c.cell_contents)))
                  for c in (fn.__closure__ or ()))
    return types.FunctionType(fn.__code__, {"__builtins__": builtins}, fn.__name__,
                              fn.__defaults__, cells)


class DataStreamWriter:
    def __init__(self, session):
        self._session, self._name, self._options, self._fn = session, None, {}, None

    def queryName(self, name):
        self._name = name
        return self

    def option(self, key, value):
        self._options[key] = str(value)
        return self

    def trigger(self, **kwargs):
        return self

    def foreachBatch(self, func):
        self._fn = _ship(func) if self._session.kind == "connect-client" else func
        return self

    def start(self):
        if self._fn is None:
            raise AnalysisException("fake writeStream: foreachBatch only")
        cp = self._options.get("checkpointLocation")
        if not cp:
            raise AnalysisException("checkpointLocation must be specified")
        for q in self._session._queries:
            if q.isActive and q.name == self._name:
                raise ValueError(f"Cannot start query with name {self._name} as a query with "
                                 "that name is already active in this SparkSession")
        meta = os.path.join(cp, "metadata")
        if os.path.exists(meta):
            with open(meta, encoding="utf-8") as f:
                qid = json.load(f)["id"]
        else:
            os.makedirs(cp, exist_ok=True)
            qid = str(uuid.uuid4())
            with open(meta, "w", encoding="utf-8") as f:
                f.write(json.dumps({"id": qid}, separators=(",", ":")))
        kind = "connect-worker" if self._session.kind == "connect-client" else "clone"
        q = StreamingQuery(qid, str(uuid.uuid4()), self._name)
        self._session._queries.append(q)
        WORLD.queries.append(q)
        q._run(self._fn, SparkSession(kind, parent=self._session), list(WORLD.batches))
        return q


class StreamingQuery:
    def __init__(self, id, runId, name):
        self.id, self.runId, self.name = id, runId, name
        self.isActive = True
        self._exception = None
        self._thread = None
        self.batches_run = []

    def _run(self, fn, batch_session, batches):
        entered = threading.Event()

        def loop():
            try:
                for batch_id, rows in batches:
                    entered.set()
                    fn(DataFrame(batch_session, KAFKA_COLUMNS, rows), batch_id)
                    self.batches_run.append(batch_id)
            except Exception as e:
                self._exception = StreamingQueryException(
                    f"[FOREACH_BATCH_USER_FUNCTION_ERROR] An error occurred in the user provided "
                    f"function in foreach batch sink. Reason: {e!r}")
                self._exception.__cause__ = e
            finally:
                entered.set()
                self.isActive = False

        self._thread = threading.Thread(target=loop, name=f"stream execution thread [{self.id}]",
                                        daemon=True)
        self._thread.start()
        entered.wait(10)
        # The first batch is under way before start() returns, as it may be in Spark.
        WORLD.first_batch_before_start_returned = bool(batches) and self._thread.is_alive()

    def awaitTermination(self, timeout=None):
        self._thread.join(timeout)
        if self._exception is not None:
            raise self._exception
        return None if timeout is None else not self._thread.is_alive()

    def exception(self):
        return self._exception

    def stop(self):
        self._thread.join()
