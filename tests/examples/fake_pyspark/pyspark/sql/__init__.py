"""pyspark.sql: SparkSession, DataFrame, Row (implemented in pyspark._fake)."""
from pyspark._fake import DataFrame, Row, SparkSession

__all__ = ["DataFrame", "Row", "SparkSession"]
