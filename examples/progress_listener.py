"""windowseal notification from a StreamingQueryListener (SPEC 2.2, Spark progress shape).

No change to the query itself: every onQueryProgress posts `event.progress.json`, the
StreamingQueryProgress JSON. windowseal takes each Kafka source's startOffset/endOffset maps as
the batch's ranges and names non-Kafka sources in the attestation (window.ignoredSources).

    from progress_listener import WindowsealListener
    spark.streams.addListener(WindowsealListener("kafka:9092"))   # PySpark >= 3.4

Batch 0 of a new query has startOffset null in its progress: windowseal refuses to guess the
initial offsets unless configured (notifications.initial_offsets = "earliest").
"""
from pyspark.sql.streaming import StreamingQueryListener


class WindowsealListener(StreamingQueryListener):
    def __init__(self, bootstrap, topic="windowseal.batches", producer=None):
        from confluent_kafka import Producer

        self.topic = topic
        self.p = producer or Producer({"bootstrap.servers": bootstrap,
                                       "enable.idempotence": True})

    def onQueryStarted(self, event):
        pass

    def onQueryProgress(self, event):
        progress = event.progress
        self.p.produce(self.topic, key=str(progress.id), value=progress.json)
        self.p.flush(30)

    def onQueryIdle(self, event):
        pass

    def onQueryTerminated(self, event):
        self.p.flush(30)
