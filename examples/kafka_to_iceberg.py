r"""A complete Kafka-to-Iceberg Structured Streaming job that asks windowseal for a receipt per batch.

For classic Spark 3.3, 3.4, 3.5 and 4.x with Iceberg 1.x, run with spark-submit: the foreachBatch
function runs in the driver's Python, which needs confluent_kafka (`pip install confluent-kafka`).
Spark 3.5.1 (Scala 2.12), Iceberg 1.5.2, an Iceberg REST catalog named `iceberg`:

    spark-submit \
      --packages org.apache.spark:spark-sql-kafka-0-10_2.12:3.5.1,org.apache.iceberg:iceberg-spark-runtime-3.5_2.12:1.5.2 \
      --conf spark.sql.extensions=org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions \
      --conf spark.sql.catalog.iceberg=org.apache.iceberg.spark.SparkCatalog \
      --conf spark.sql.catalog.iceberg.type=rest \
      --conf spark.sql.catalog.iceberg.uri=http://iceberg-rest:8181 \
      --conf spark.sql.catalog.iceberg.warehouse=warehouse \
      --py-files examples/foreach_batch.py \
      examples/kafka_to_iceberg.py \
      --bootstrap kafka:9092 --topic orders \
      --table iceberg.ods.orders --checkpoint /checkpoints/orders

The table's first name part is the catalog: `spark.sql.catalog.<that name>` must be configured, and
the same name under windowseal's `iceberg.catalogs` lets the engine check the snapshot itself. The
package versions must match the cluster: spark-sql-kafka-0-10_<scala>:<your Spark version>, and
iceberg-spark-runtime-<Spark major.minor>_<scala>:<Iceberg version> (Spark 3.3: Iceberg <= 1.8;
Spark 4.0: spark-sql-kafka-0-10_2.13:4.0.0 and iceberg-spark-runtime-4.0_2.13, Iceberg >= 1.10).
A warehouse on S3 without credentials vended by the catalog also needs
org.apache.iceberg:iceberg-aws-bundle:<Iceberg version> in --packages and
`--conf spark.sql.catalog.iceberg.io-impl=org.apache.iceberg.aws.s3.S3FileIO`.

Each micro-batch is appended to the Iceberg table in a snapshot stamped with the query id and batch
id (write options `snapshot-property.windowseal.query-id` and `.batch-id`, which iceberg_append in
foreach_batch.py sets); then the batch's Kafka ranges, that snapshot and the data files it added
are posted to `windowseal.batches` (key = query id). windowseal re-reads the same ranges from
Kafka and publishes a signed attestation. With the catalog under windowseal's
`iceberg.catalogs` (docs/OPERATIONS.md), the engine does not take the posted files on trust: it
finds the snapshot by those stamps (or the posted snapshotId), reads the files it added from the
catalog's manifests, hashes them, and reports any difference from the posted list as a
discrepancy; without it, the posted files are hashed as listed.

Posting happens after the write, inside foreachBatch, and the batch fails unless Kafka acknowledged
the notification (--flush-timeout). If the job dies between the write and the post, the query is
restarted from its checkpoint and Spark runs the batch again (same batchId, same offsets): the
stamped snapshot is found, so nothing is appended twice, and the notification is posted then. If
it dies after posting, the re-run's notification is a duplicate that windowseal ignores.

Spark Connect: this job needs the classic driver (the query handle bound after start() must reach
the foreachBatch function); over Spark Connect use examples/spark_connect.py.
"""
import argparse

from foreach_batch import WindowsealNotifier, batch_ranges, iceberg_append


def producer_property(text):
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, not {text!r}")
    return key, value


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--bootstrap", required=True, help="Kafka of the source topic")
    ap.add_argument("--topic", required=True, help="source topic")
    ap.add_argument("--table", required=True, help="<catalog>.<namespace>.<table>")
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--name", default="orders-to-iceberg", help="query name")
    ap.add_argument("--notifications", default="windowseal.batches", help="windowseal's topic")
    ap.add_argument("--notifications-bootstrap",
                    help="Kafka of the notifications topic (default: --bootstrap)")
    ap.add_argument("--producer-config", type=producer_property, action="append", default=[],
                    metavar="KEY=VALUE", help="librdkafka producer property (repeatable)")
    ap.add_argument("--flush-timeout", type=float, default=30.0,
                    help="seconds to wait for Kafka's acknowledgement before failing the batch")
    return ap.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)

    from pyspark.sql import SparkSession

    spark = SparkSession.builder.appName(args.name).getOrCreate()
    notifier = WindowsealNotifier(args.notifications_bootstrap or args.bootstrap,
                                  topic=args.notifications, name=args.name,
                                  config=dict(args.producer_config),
                                  flush_timeout=args.flush_timeout)

    def write_batch(df, batch_id):
        query_id, _ = notifier.ids()
        df = df.persist()  # the ranges and the write read the batch once
        try:
            ranges = batch_ranges(df)
            outputs = []
            if ranges:  # an empty batch writes nothing: no snapshot, no output
                rows = df.selectExpr("CAST(key AS STRING) AS key", "CAST(value AS STRING) AS value",
                                     "topic", "partition", "offset", "timestamp")
                outputs = [iceberg_append(rows, args.table, query_id, batch_id)]
            notifier.notify(batch_id, ranges, outputs)
        finally:
            df.unpersist()

    query = (spark.readStream.format("kafka")
                  .option("kafka.bootstrap.servers", args.bootstrap)
                  .option("subscribe", args.topic)
                  .option("startingOffsets", "earliest")
                  .load()
                  .writeStream.queryName(args.name)
                  .option("checkpointLocation", args.checkpoint)
                  .foreachBatch(write_batch)
                  .start())
    notifier.bind(query)
    query.awaitTermination()


if __name__ == "__main__":
    main()
