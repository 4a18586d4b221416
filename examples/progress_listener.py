"""windowseal notification from a StreamingQueryListener (SPEC 2.2, Spark progress shape).

No change to the query itself: every onQueryProgress posts `event.progress.json`, the
StreamingQueryProgress JSON, unchanged, with key = its query id (`id`; the engine dead-letters any
other key, SPEC 2.3). windowseal takes each Kafka source's startOffset/endOffset maps as the
batch's ranges and names non-Kafka sources in the attestation (window.ignoredSources). A listener
hears every query of its session: register it where the queries read Kafka (windowseal
dead-letters the progress of a query with no Kafka source: it has nothing to re-read).

    from progress_listener import WindowsealListener
    spark.streams.addListener(WindowsealListener("kafka:9092"))

Versions, and where the listener runs:

- Classic PySpark 3.4, 3.5, 4.x (Python listeners exist from 3.4): in the driver's Python, called
  from Spark's listener bus; confluent_kafka must be installed there.
- Spark Connect 3.5: addListener() pickles the listener and the server runs it in a Python process
  of its own. confluent_kafka must be installed in the server's Python, and so must this module
  (or ship the class by value: `from pyspark import cloudpickle;
  cloudpickle.register_pickle_by_value(progress_listener)` before addListener). The listener must
  be picklable, so it keeps only plain settings: the Producer is created on the first event, never
  in __init__, and is left out of the pickled state.
- Spark Connect 4.x: the listener runs in the client process, to which the server streams the
  events: confluent_kafka is needed there, and Kafka must be reachable from the client.

Idle triggers are not posted. Before 3.5 Spark also calls onQueryProgress for triggers that ran no
batch (every spark.sql.streaming.noDataProgressEventInterval while the query waits for data, 10 s
by default); their progress carries the next, not yet run, batch id with startOffset == endOffset,
and a durationMs without `addBatch`. They are not batches: windowseal skips them (SPEC 2.3), so
posting them would only cost a Kafka message per idle trigger per query. The listener applies the
engine's own rule (durationMs present, no addBatch) and does not look at the offsets: a stateful
query's no-data batch runs addBatch with empty ranges and is a real batch. From 3.5 Spark reports
idle triggers through onQueryIdle, which does nothing here.

Delivery: each notification is flushed and its delivery report checked; NotificationError is
raised if Kafka did not acknowledge it within flush_timeout. A listener cannot fail the batch (it
runs after the batch committed; Spark's listener bus logs the exception and goes on), so the loss is
logged when it happens and windowseal reports the missing batch as a gap when the next one arrives.
When every batch must have its receipt or fail, post from foreachBatch (examples/foreach_batch.py).

Batch 0 of a new query has startOffset null in its progress: windowseal refuses to guess the
initial offsets unless configured (notifications.initial_offsets = "earliest").
"""
import json

from pyspark.sql.streaming import StreamingQueryListener


class NotificationError(RuntimeError):
    """Kafka did not acknowledge a notification."""


def is_idle_trigger(progress):
    """SPEC 2.3: a progress whose durationMs is present and has no addBatch ran no batch."""
    d = progress.get("durationMs")
    return isinstance(d, dict) and "addBatch" not in d


class WindowsealListener(StreamingQueryListener):
    """config: extra librdkafka producer properties (security settings, message.timeout.ms, ...)."""

    def __init__(self, bootstrap, topic="windowseal.batches", config=None, flush_timeout=30.0):
        super().__init__()
        self.topic = topic
        self.flush_timeout = flush_timeout
        self.config = {"bootstrap.servers": bootstrap, "enable.idempotence": True,
                       **(config or {})}
        self._producer = None  # created on the first event: a Producer cannot be pickled

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_producer"] = None
        return state

    def _get_producer(self):
        if self._producer is None:
            from confluent_kafka import Producer

            self._producer = Producer(self.config)
        return self._producer

    def onQueryStarted(self, event):
        pass

    def onQueryProgress(self, event):
        value = event.progress.json
        progress = json.loads(value)
        if is_idle_trigger(progress):
            return
        key = str(progress["id"])
        errors = []

        def on_delivery(err, msg):
            if err is not None:
                errors.append(err)

        producer = self._get_producer()
        producer.produce(self.topic, key=key, value=value, on_delivery=on_delivery)
        remaining = producer.flush(self.flush_timeout)
        if errors and errors[0].fatal():
            self._producer = None
        if errors or remaining:
            why = errors[0] if errors else f"{remaining} message(s) still queued"
            raise NotificationError(f"windowseal notification for query {key} batch "
                                    f"{progress.get('batchId')} not delivered to {self.topic} "
                                    f"within {self.flush_timeout}s: {why}")

    def onQueryIdle(self, event):
        pass

    def onQueryTerminated(self, event):
        if self._producer is not None:
            self._producer.flush(self.flush_timeout)
