"""A complete Kafka-to-Iceberg Structured Streaming job that asks windowseal for a receipt per batch.

    spark-submit --packages org.apache.spark:spark-sql-kafka-0-10_2.12:3.5.1,\\
        org.apache.iceberg:iceberg-spark-runtime-3.5_2.12:1.5.2 \\
        examples/kafka_to_iceberg.py --bootstrap kafka:9092 --topic orders \\
        --table local.ods.orders --checkpoint /checkpoints/orders

Each micro-batch is appended to the Iceberg table; then the batch's Kafka ranges, the snapshot it
committed and that snapshot's data files are posted to `windowseal.batches`. windowseal re-reads
the same ranges from Kafka, hashes the data files, and publishes a signed attestation.

Posting happens after the write, inside foreachBatch: if the job dies between the two, Spark
re-runs the batch (same batchId, same offsets) and the notification is posted then; if it dies
after posting, the re-run's notification is a duplicate that windowseal ignores.
"""
import argparse

from foreach_batch import batch_ranges, build_notification


def snapshot_outputs(spark, table):
    """The table's newest snapshot and the data files it added (Iceberg metadata tables)."""
    snap = spark.sql(f"SELECT snapshot_id FROM {table}.snapshots "
                     "ORDER BY committed_at DESC LIMIT 1").collect()
    if not snap:
        return []
    snapshot_id = snap[0][0]
    files = [r[0] for r in spark.sql(
        f"SELECT file_path FROM {table}.entries "
        f"WHERE snapshot_id = {snapshot_id} AND status = 1").collect()]  # 1 = ADDED
    return [{"name": table, "snapshotId": str(snapshot_id), "files": files}]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--table", required=True)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--notifications", default="windowseal.batches")
    ap.add_argument("--name", default="orders-to-iceberg")
    args = ap.parse_args()

    from confluent_kafka import Producer
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.appName(args.name).getOrCreate()
    producer = Producer({"bootstrap.servers": args.bootstrap, "enable.idempotence": True})

    def write_batch(df, batch_id):
        df = df.persist()  # the ranges and the write must see the same rows
        try:
            ranges = batch_ranges(df)
            (df.selectExpr("CAST(key AS STRING) AS key", "CAST(value AS STRING) AS value",
                           "topic", "partition", "offset", "timestamp")
               .writeTo(args.table).append())
            outputs = snapshot_outputs(spark, args.table) if ranges else []
            q = next(q for q in spark.streams.active if q.name == args.name)
            value = build_notification(q.id, batch_id, ranges, run_id=q.runId, name=args.name,
                                       outputs=outputs)
            producer.produce(args.notifications, key=str(q.id), value=value)
            producer.flush(30)
        finally:
            df.unpersist()

    (spark.readStream.format("kafka")
          .option("kafka.bootstrap.servers", args.bootstrap)
          .option("subscribe", args.topic)
          .option("startingOffsets", "earliest")
          .load()
          .writeStream.queryName(args.name)
          .option("checkpointLocation", args.checkpoint)
          .foreachBatch(write_batch)
          .start()
          .awaitTermination())


if __name__ == "__main__":
    main()
