"""windowseal notification from a PySpark foreachBatch callback (SPEC 2.1, native shape).

For classic PySpark 3.3, 3.4, 3.5 and 4.x (spark-submit, pyspark shell, notebooks on a classic
driver), where the foreachBatch function runs in the driver's Python process; that Python needs
confluent_kafka (`pip install confluent-kafka`). For Spark Connect see the end of this text and
examples/spark_connect.py. The complete job is examples/kafka_to_iceberg.py; in short:

    from foreach_batch import WindowsealNotifier, batch_ranges, iceberg_append

    notifier = WindowsealNotifier("kafka:9092", name="orders-to-iceberg")

    def write_batch(df, batch_id):
        query_id, _ = notifier.ids()          # waits until bind() below has run
        ranges = batch_ranges(df)
        outputs = [iceberg_append(df, "iceberg.ods.orders", query_id, batch_id)] if ranges else []
        notifier.notify(batch_id, ranges, outputs)     # raises unless Kafka acknowledged it

    query = (spark.readStream.format("kafka")...load()
                  .writeStream.queryName("orders-to-iceberg")
                  .option("checkpointLocation", "/checkpoints/orders")
                  .foreachBatch(write_batch).start())
    notifier.bind(query)
    query.awaitTermination()

What the pieces do:

- Ranges: per topic-partition of the batch DataFrame, min(offset) and max(offset)+1: exactly the
  records this batch read (one small aggregation job). Offsets inside a range may be missing
  (compaction, transaction markers); windowseal attests the records that exist.
- Query id: taken from the StreamingQuery that start() returns (its `id` survives restarts from the
  same checkpoint; `runId` is this run's). Not from `df.sparkSession.streams.active`: since PySpark
  3.4 the batch DataFrame belongs to the stream's cloned session, whose query manager is empty.
  The first batch may start before start() has returned, so ids() waits for bind() (bind_timeout).
- Delivery: the notification is produced with key = query id (the engine dead-letters any other
  key, SPEC 2.3) and the callback waits for Kafka's acknowledgement. A delivery error, or a
  message still queued after flush_timeout, raises NotificationError: the batch fails, and with it
  the query; when the query is restarted from its checkpoint Spark runs that batch again (same
  batchId, same offsets) and the notification is posted then. A lost notification is never
  silent. A re-run whose first notification did reach Kafka posts a duplicate, which windowseal
  ignores.
- Iceberg: iceberg_append() stamps the snapshot it commits with the query id and batch id
  (`snapshot-property.windowseal.query-id` / `.batch-id`), finds it by those stamps (never "the
  newest snapshot", which another writer may have committed in between), and skips the write when a
  snapshot with the same stamps exists, so a re-run batch does not append its rows twice. With an
  Iceberg catalog configured, the engine finds the snapshot from the same stamps (SPEC 6) and
  compares it with the files listed here.

Spark Connect (3.5, 4.x): the foreachBatch function is pickled when foreachBatch() is called and
runs in a Python worker next to the Spark Connect server, so bind() in the client never reaches
it: WindowsealNotifier refuses to be pickled, with a message saying so. Use
examples/spark_connect.py, which reads the query id from the checkpoint instead.

build_notification() is pure: it is what the notification looks like.
"""
import json
import threading
import uuid

QUERY_ID_PROPERTY = "windowseal.query-id"  # snapshot summary stamps (SPEC 6, Iceberg snapshots)
BATCH_ID_PROPERTY = "windowseal.batch-id"


class NotificationError(RuntimeError):
    """Kafka did not acknowledge a notification: the batch must fail, so that Spark runs it again."""

    def __init__(self, message, fatal=False):
        super().__init__(message)
        self.fatal = fatal


def build_notification(query_id, batch_id, ranges, run_id=None, name=None, outputs=None):
    """ranges: iterable of (topic, partition, min_offset, max_offset) from the batch DataFrame."""
    sources = [
        {"topic": t, "partition": int(p), "fromOffset": int(lo), "untilOffset": int(hi) + 1}
        for (t, p, lo, hi) in sorted(ranges)
    ]
    n = {"queryId": str(query_id), "batchId": int(batch_id), "sources": sources}
    if run_id:
        n["runId"] = str(run_id)
    if name:
        n["name"] = name
    if outputs:
        n["outputs"] = outputs
    return json.dumps(n, separators=(",", ":"))


def batch_ranges(df):
    """Per topic-partition min/max offset of a Kafka-source batch DataFrame (one small job)."""
    from pyspark.sql import functions as F

    rows = (df.groupBy("topic", "partition")
              .agg(F.min("offset").alias("lo"), F.max("offset").alias("hi"))
              .collect())
    return [(r["topic"], int(r["partition"]), int(r["lo"]), int(r["hi"])) for r in rows]


def deliver(producer, topic, key, value, timeout):
    """Produce one message and wait for Kafka's acknowledgement; NotificationError if none came."""
    errors = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(err)

    producer.produce(topic, key=key, value=value, on_delivery=on_delivery)
    remaining = producer.flush(timeout)  # the number of messages still in the queue
    if errors:
        raise NotificationError(f"notification {key!r} to {topic} not delivered: {errors[0]}",
                                fatal=errors[0].fatal())
    if remaining:
        raise NotificationError(f"notification {key!r} to {topic} not acknowledged within "
                                f"{timeout}s ({remaining} message(s) still queued)")


def _uuid(query_id):
    """The query id as it goes into SQL: Spark's query ids are UUIDs; refuse anything else."""
    return str(uuid.UUID(str(query_id)))


def stamped_snapshot(spark, table, query_id, batch_id):
    """The id of the snapshot of `table` stamped with (query id, batch id), or None."""
    rows = spark.sql(
        f"SELECT snapshot_id FROM {table}.snapshots "
        f"WHERE summary['{QUERY_ID_PROPERTY}'] = '{_uuid(query_id)}' "
        f"AND summary['{BATCH_ID_PROPERTY}'] = '{int(batch_id)}' "
        "ORDER BY committed_at LIMIT 1").collect()
    return int(rows[0][0]) if rows else None


def snapshot_files(spark, table, snapshot_id):
    """The data files that snapshot added: its manifest entries with status 1 (ADDED).

    Read at that snapshot (VERSION AS OF, Spark >= 3.3): `entries` alone lists the current
    snapshot's manifests, where a later commit may have rewritten these entries as EXISTING.
    """
    sid = int(snapshot_id)
    return sorted(r[0] for r in spark.sql(
        f"SELECT data_file.file_path FROM {table}.entries VERSION AS OF {sid} "
        f"WHERE snapshot_id = {sid} AND status = 1 AND data_file.content = 0").collect())


def iceberg_append(df, table, query_id, batch_id):
    """Append df to the Iceberg table, once per (query id, batch id); the notification's output.

    table is `<catalog>.<namespace>.<table>` of a configured Iceberg catalog.
    """
    spark = df.sparkSession
    snap = stamped_snapshot(spark, table, query_id, batch_id)
    if snap is None:  # not written by an earlier run of this batch
        (df.writeTo(table)
           .option("snapshot-property." + QUERY_ID_PROPERTY, _uuid(query_id))
           .option("snapshot-property." + BATCH_ID_PROPERTY, str(int(batch_id)))
           .append())
        snap = stamped_snapshot(spark, table, query_id, batch_id)
        if snap is None:
            raise RuntimeError(f"{table}: no snapshot stamped {query_id}/{batch_id} after the append")
    return {"name": table, "snapshotId": str(snap), "files": snapshot_files(spark, table, snap)}


class WindowsealNotifier:
    """Posts one native notification per batch from a classic-PySpark foreachBatch callback.

    config: extra librdkafka producer properties (security settings, message.timeout.ms, ...).
    """

    def __init__(self, bootstrap, topic="windowseal.batches", name=None, config=None,
                 flush_timeout=30.0, bind_timeout=120.0):
        self.topic = topic
        self.name = name
        self.flush_timeout = flush_timeout
        self.bind_timeout = bind_timeout
        self._config = {"bootstrap.servers": bootstrap, "enable.idempotence": True,
                        **(config or {})}
        self._producer = None
        self._ids = None
        self._bound = threading.Event()

    def __reduce__(self):
        raise TypeError("WindowsealNotifier is for classic PySpark: on Spark Connect the "
                        "foreachBatch function is pickled and runs next to the server, where "
                        "bind() cannot reach it; see examples/spark_connect.py")

    def bind(self, query):
        """Call with the StreamingQuery that start() returned."""
        self._ids = (str(query.id), str(query.runId))
        self._bound.set()

    def ids(self):
        """(query id, run id) of the bound query; waits for bind() up to bind_timeout seconds."""
        if not self._bound.wait(self.bind_timeout):
            raise RuntimeError(f"WindowsealNotifier not bound after {self.bind_timeout}s: call "
                               "notifier.bind(query) with the query that start() returned")
        return self._ids

    def _get_producer(self):
        if self._producer is None:
            from confluent_kafka import Producer

            self._producer = Producer(self._config)
        return self._producer

    def notify(self, batch_id, ranges, outputs=None):
        """Post the batch's notification; raises NotificationError unless Kafka acknowledged it.

        Call it after the batch's writes, so that the output files exist.
        """
        query_id, run_id = self.ids()
        value = build_notification(query_id, batch_id, ranges, run_id=run_id, name=self.name,
                                   outputs=outputs)
        try:
            deliver(self._get_producer(), self.topic, query_id, value, self.flush_timeout)
        except NotificationError as e:
            if e.fatal:  # the producer is unusable: the retried batch gets a new one
                self._producer = None
            raise
