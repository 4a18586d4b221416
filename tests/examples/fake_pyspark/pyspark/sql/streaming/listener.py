"""pyspark.sql.streaming.listener as of PySpark 3.5: the base class and the progress event.

The base class is abstract in the same methods as PySpark's (onQueryStarted, onQueryProgress,
onQueryTerminated); onQueryIdle (3.5) has a default, so that 3.4 listeners keep working.
"""
import json
from abc import ABC, abstractmethod


class StreamingQueryListener(ABC):
    @abstractmethod
    def onQueryStarted(self, event):
        pass

    @abstractmethod
    def onQueryProgress(self, event):
        pass

    def onQueryIdle(self, event):
        pass

    @abstractmethod
    def onQueryTerminated(self, event):
        pass


class StreamingQueryProgress:
    """What event.progress is: `json` is the compact JSON Spark's StreamingQueryProgress.json gives."""

    def __init__(self, json_text):
        self._d = json.loads(json_text)
        self.json = json.dumps(self._d, separators=(",", ":"))
        self.prettyJson = json.dumps(self._d, indent=2)

    def __getattr__(self, name):  # id, runId, batchId, durationMs, sources, ...
        try:
            return self._d[name]
        except KeyError:
            raise AttributeError(name) from None


class QueryStartedEvent:
    def __init__(self, id, runId, name, timestamp):
        self.id, self.runId, self.name, self.timestamp = id, runId, name, timestamp


class QueryProgressEvent:
    def __init__(self, progress_json):
        self.progress = StreamingQueryProgress(progress_json)


class QueryTerminatedEvent:
    def __init__(self, id, runId, exception=None):
        self.id, self.runId, self.exception = id, runId, exception
