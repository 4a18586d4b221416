"""pyspark.sql.streaming: StreamingQuery and StreamingQueryListener."""
from pyspark._fake import StreamingQuery
from pyspark.sql.streaming.listener import StreamingQueryListener

__all__ = ["StreamingQuery", "StreamingQueryListener"]
