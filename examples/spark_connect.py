"""The same receipt over Spark Connect (`sc://`): the client process posts the notification.

    python examples/spark_connect.py --remote sc://spark-connect:15002 --bootstrap kafka:9092 \\
        --topic orders --table local.ods.orders --checkpoint /checkpoints/orders-connect

With Spark Connect (PySpark >= 3.5), foreachBatch functions are serialised and run in a Python
worker next to the server, so the notification is posted from there: confluent_kafka must be
installed on the server's Python, and the query handle comes from `df.sparkSession`. Nothing
else changes: the same native notification (SPEC 2.1) reaches windowseal.
"""
import argparse


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--remote", required=True)
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--table", required=True)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--name", default="orders-to-iceberg-connect")
    args = ap.parse_args()

    from pyspark.sql import SparkSession

    spark = SparkSession.builder.remote(args.remote).getOrCreate()
    bootstrap, table, name = args.bootstrap, args.table, args.name

    def write_batch(df, batch_id):
        # Runs server-side: import there, and keep the closure self-contained.
        import json
        from confluent_kafka import Producer
        from pyspark.sql import functions as F

        rows = (df.groupBy("topic", "partition")
                  .agg(F.min("offset").alias("lo"), F.max("offset").alias("hi")).collect())
        df.selectExpr("CAST(value AS STRING) AS value", "topic", "partition", "offset") \
          .writeTo(table).append()
        s = df.sparkSession
        q = next(q for q in s.streams.active if q.name == name)
        snap = s.sql(f"SELECT snapshot_id FROM {table}.snapshots "
                     "ORDER BY committed_at DESC LIMIT 1").collect()
        outputs = []
        if snap and rows:
            files = [r[0] for r in s.sql(
                f"SELECT file_path FROM {table}.entries "
                f"WHERE snapshot_id = {snap[0][0]} AND status = 1").collect()]
            outputs = [{"name": table, "snapshotId": str(snap[0][0]), "files": files}]
        value = json.dumps({
            "queryId": q.id, "runId": q.runId, "name": name, "batchId": int(batch_id),
            "sources": [{"topic": r["topic"], "partition": int(r["partition"]),
                         "fromOffset": int(r["lo"]), "untilOffset": int(r["hi"]) + 1}
                        for r in sorted(rows, key=lambda r: (r["topic"], r["partition"]))],
            "outputs": outputs}, separators=(",", ":"))
        p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
        p.produce("windowseal.batches", key=q.id, value=value)
        p.flush(30)

    (spark.readStream.format("kafka")
          .option("kafka.bootstrap.servers", args.bootstrap)
          .option("subscribe", args.topic)
          .load()
          .writeStream.queryName(name)
          .option("checkpointLocation", args.checkpoint)
          .foreachBatch(write_batch)
          .start()
          .awaitTermination())


if __name__ == "__main__":
    main()
