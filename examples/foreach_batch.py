"""windowseal notification from a PySpark foreachBatch callback (SPEC 2.1, native shape).

Usage in a Kafka-to-Iceberg job:

    from foreach_batch import windowseal_notifier
    notify = windowseal_notifier(query_name="orders-to-iceberg",
                                 bootstrap="kafka:9092", topic="windowseal.batches")

    def write_batch(df, batch_id):
        df.writeTo("iceberg.ods.orders").append()          # the job's own write
        notify(df, batch_id, outputs=iceberg_outputs(spark, "iceberg.ods.orders"))

    (spark.readStream.format("kafka")...load()
         .writeStream.foreachBatch(write_batch).start())

The callback computes, per topic-partition of the batch DataFrame, min(offset) and
max(offset)+1: exactly the records this batch read. Offsets inside a range may be missing
(compaction, transaction markers); windowseal attests the records that exist. The query id is
read from the running query (`spark.streams.active`), which survives restarts from the same
checkpoint; post after the batch's write so that the output files exist.

Build_notification() is pure and is what the tests exercise through a real Kafka client.
"""
import json


def build_notification(query_id, batch_id, ranges, run_id=None, name=None, outputs=None):
    """ranges: iterable of (topic, partition, min_offset, max_offset) from the batch DataFrame."""
    sources = [
        {"topic": t, "partition": int(p), "fromOffset": int(lo), "untilOffset": int(hi) + 1}
        for (t, p, lo, hi) in sorted(ranges)
    ]
    n = {"queryId": query_id, "batchId": int(batch_id), "sources": sources}
    if run_id:
        n["runId"] = run_id
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
    return [(r["topic"], r["partition"], r["lo"], r["hi"]) for r in rows]


def iceberg_outputs(spark, table):
    """The snapshot the batch just committed and its data files (Iceberg metadata tables)."""
    snap = spark.sql(f"SELECT snapshot_id FROM {table}.snapshots "
                     "ORDER BY committed_at DESC LIMIT 1").collect()[0][0]
    files = [r[0] for r in spark.sql(
        f"SELECT file_path FROM {table}.files").collect()]  # current snapshot's files
    return [{"name": table, "snapshotId": str(snap), "files": files}]


def windowseal_notifier(query_name, bootstrap, topic="windowseal.batches", producer=None):
    from confluent_kafka import Producer

    p = producer or Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})

    def notify(df, batch_id, outputs=None):
        spark = df.sparkSession
        q = next(q for q in spark.streams.active if q.name == query_name)
        value = build_notification(q.id, batch_id, batch_ranges(df), run_id=q.runId,
                                   name=query_name, outputs=outputs)
        p.produce(topic, key=str(q.id), value=value)
        p.flush(30)  # the batch is not done until its receipt request is durable

    return notify
