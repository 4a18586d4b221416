r"""The same receipt over Spark Connect (`sc://`): the foreachBatch function posts it, server-side.

For Spark Connect 3.5 and 4.x (Python foreachBatch over Spark Connect exists from 3.5); the client
needs only `pip install "pyspark[connect]==<server version>"`. The same native notification
(SPEC 2.1) as examples/kafka_to_iceberg.py reaches windowseal; what differs is where the code runs.

The client pickles the foreachBatch function when foreachBatch() is called; the server runs it in a
Python worker process next to its driver, once per batch, for the whole run of the query. So:

- The notification is posted from the server's side: confluent_kafka must be installed in the
  server's Python (the one its PYSPARK_PYTHON / spark.pyspark.python names), and the notifications
  Kafka must be reachable from there. This client never talks to Kafka.
- The function is self-contained: it imports what it needs inside, captures only plain values
  (strings, numbers, a dict), and creates its Producer in the worker on the first batch (a Producer
  cannot be pickled), keeping it for the following batches.
- It cannot get the query id from the client: it was pickled before the query existed, so the
  StreamingQuery that start() returns never reaches it; and `df.sparkSession.streams` is not to be
  relied on either (newer servers run each batch on the stream's cloned session, whose query
  manager is empty, as classic PySpark has done since 3.4). It reads the id where Spark keeps it:
  `<checkpoint>/metadata`, the one-line JSON {"id": "<query id>"} that Spark writes when the query
  is first started, before its first batch, and reads back on every restart. runId is added when
  the batch's session still knows the running query (`streams.get`), else left out (optional).
- An exception in the function (Kafka did not acknowledge the notification within
  --flush-timeout) fails the batch and the query on the server; the client sees it as the
  StreamingQueryException from awaitTermination(). Restarted from its checkpoint, the query runs
  that batch again: the snapshot stamped with (query id, batch id) is found, so nothing is appended
  twice, and the notification is posted then.

Start the server with the Kafka and Iceberg packages and the catalog the table names (Spark 3.5.1,
Scala 2.12, Iceberg 1.5.2, a REST catalog named `iceberg`):

    $SPARK_HOME/sbin/start-connect-server.sh \
      --packages org.apache.spark:spark-connect_2.12:3.5.1,org.apache.spark:spark-sql-kafka-0-10_2.12:3.5.1,org.apache.iceberg:iceberg-spark-runtime-3.5_2.12:1.5.2 \
      --conf spark.sql.extensions=org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions \
      --conf spark.sql.catalog.iceberg=org.apache.iceberg.spark.SparkCatalog \
      --conf spark.sql.catalog.iceberg.type=rest \
      --conf spark.sql.catalog.iceberg.uri=http://iceberg-rest:8181 \
      --conf spark.sql.catalog.iceberg.warehouse=warehouse

(Spark 4.x ships Spark Connect: leave spark-connect out of --packages, and use the _2.13 Kafka and
Iceberg artifacts of matching versions.) Then, from any client:

    python examples/spark_connect.py --remote sc://spark-connect:15002 \
      --bootstrap kafka:9092 --topic orders \
      --table iceberg.ods.orders --checkpoint /checkpoints/orders-connect

The paths (--checkpoint) are the server's.
"""
import argparse


def producer_property(text):
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, not {text!r}")
    return key, value


def make_write_batch(bootstrap, table, checkpoint, name, topic="windowseal.batches",
                     producer_config=None, flush_timeout=30.0):
    """The foreachBatch function. It runs on the server: it uses nothing from this module."""
    conf = {"bootstrap.servers": bootstrap, "enable.idempotence": True, **(producer_config or {})}
    state = {}  # in the server's worker: the query id and the Producer, across batches

    def write_batch(df, batch_id):
        import json
        import uuid

        from pyspark.sql import functions as F

        spark = df.sparkSession
        batch_id = int(batch_id)
        if "query_id" not in state:
            line = spark.read.text(checkpoint.rstrip("/") + "/metadata").first()[0]
            state["query_id"] = str(uuid.UUID(json.loads(line)["id"]))  # a UUID, safe in SQL
        query_id = state["query_id"]
        running = spark.streams.get(query_id)
        run_id = str(running.runId) if running is not None else None

        def stamped_snapshot():
            rows = spark.sql(
                f"SELECT snapshot_id FROM {table}.snapshots "
                f"WHERE summary['windowseal.query-id'] = '{query_id}' "
                f"AND summary['windowseal.batch-id'] = '{batch_id}' "
                "ORDER BY committed_at LIMIT 1").collect()
            return int(rows[0][0]) if rows else None

        df = df.persist()  # the ranges and the write read the batch once
        try:
            rows = (df.groupBy("topic", "partition")
                      .agg(F.min("offset").alias("lo"), F.max("offset").alias("hi")).collect())
            sources = sorted(({"topic": r["topic"], "partition": int(r["partition"]),
                               "fromOffset": int(r["lo"]), "untilOffset": int(r["hi"]) + 1}
                              for r in rows), key=lambda s: (s["topic"], s["partition"]))
            outputs = []
            if sources:  # an empty batch writes nothing: no snapshot, no output
                snap = stamped_snapshot()
                if snap is None:  # not written by an earlier run of this batch
                    (df.selectExpr("CAST(key AS STRING) AS key", "CAST(value AS STRING) AS value",
                                   "topic", "partition", "offset", "timestamp")
                       .writeTo(table)
                       .option("snapshot-property.windowseal.query-id", query_id)
                       .option("snapshot-property.windowseal.batch-id", str(batch_id))
                       .append())
                    snap = stamped_snapshot()
                    if snap is None:
                        raise RuntimeError(f"{table}: no snapshot stamped {query_id}/{batch_id}")
                # The files this snapshot added, read at that snapshot (later commits may have
                # rewritten its manifests' ADDED entries as EXISTING).
                files = sorted(r[0] for r in spark.sql(
                    f"SELECT data_file.file_path FROM {table}.entries VERSION AS OF {snap} "
                    f"WHERE snapshot_id = {snap} AND status = 1 AND data_file.content = 0"
                ).collect())
                outputs = [{"name": table, "snapshotId": str(snap), "files": files}]
        finally:
            df.unpersist()

        notification = {"queryId": query_id, "batchId": batch_id, "sources": sources}
        if run_id:
            notification["runId"] = run_id
        notification["name"] = name
        if outputs:
            notification["outputs"] = outputs
        value = json.dumps(notification, separators=(",", ":"))

        if "producer" not in state:
            from confluent_kafka import Producer

            state["producer"] = Producer(conf)
        producer = state["producer"]
        errors = []

        def on_delivery(err, msg):
            if err is not None:
                errors.append(err)

        producer.produce(topic, key=query_id, value=value, on_delivery=on_delivery)
        remaining = producer.flush(flush_timeout)
        if errors and errors[0].fatal():
            del state["producer"]  # unusable: the re-run batch gets a new one
        if errors or remaining:
            why = errors[0] if errors else f"{remaining} message(s) still queued"
            raise RuntimeError(f"windowseal notification for {query_id}/{batch_id} not delivered "
                               f"to {topic} within {flush_timeout}s: {why}")

    return write_batch


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--remote", required=True, help="sc://host:port of the Spark Connect server")
    ap.add_argument("--bootstrap", required=True, help="Kafka of the source topic")
    ap.add_argument("--topic", required=True, help="source topic")
    ap.add_argument("--table", required=True, help="<catalog>.<namespace>.<table>")
    ap.add_argument("--checkpoint", required=True, help="checkpoint location, as the server sees it")
    ap.add_argument("--name", default="orders-to-iceberg-connect", help="query name")
    ap.add_argument("--notifications", default="windowseal.batches", help="windowseal's topic")
    ap.add_argument("--notifications-bootstrap",
                    help="Kafka of the notifications topic, as the server reaches it "
                         "(default: --bootstrap)")
    ap.add_argument("--producer-config", type=producer_property, action="append", default=[],
                    metavar="KEY=VALUE", help="librdkafka producer property (repeatable)")
    ap.add_argument("--flush-timeout", type=float, default=30.0,
                    help="seconds to wait for Kafka's acknowledgement before failing the batch")
    return ap.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)

    from pyspark.sql import SparkSession

    spark = SparkSession.builder.remote(args.remote).getOrCreate()
    write_batch = make_write_batch(args.notifications_bootstrap or args.bootstrap, args.table,
                                   args.checkpoint, args.name, topic=args.notifications,
                                   producer_config=dict(args.producer_config),
                                   flush_timeout=args.flush_timeout)
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
