"""pyspark.sql.functions: the aggregates the examples use."""
from pyspark._fake import AggColumn


def min(col):
    return AggColumn("min", col)


def max(col):
    return AggColumn("max", col)
