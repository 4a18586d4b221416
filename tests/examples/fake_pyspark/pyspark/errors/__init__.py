"""pyspark.errors (PySpark >= 3.4): the two exceptions the fake raises."""


class AnalysisException(Exception):
    pass


class StreamingQueryException(Exception):
    pass
