"""StreamingQueryProgress JSON as Spark emits it, for the listener example's test.

Layout: StreamingQueryProgress.jsonValue of Spark 3.5 (sql/core/src/main/scala/org/apache/spark/
sql/streaming/progress.scala): id, runId, name, timestamp, batchId, batchDuration, numInputRows,
inputRowsPerSecond / processedRowsPerSecond (left out when NaN, as for a first trigger),
durationMs (sorted keys), stateOperators, sources, sink — the shape of the prettyJson expected in
Spark's StreamingQueryStatusAndProgressSuite ("StreamingQueryProgress - prettyJson"), with the
source block a Kafka source reports (KafkaMicroBatchStream): description
`KafkaV2[Subscribe[<topic>]]`, start/end/latestOffset as {topic: {partition: offset}} over every
partition of the topic (here 4, two of them empty), and the min/avg/maxOffsetsBehindLatest
metrics, as strings. Batch 0 of a new query has startOffset null (SPEC 2.2).

IDLE is what Spark before 3.5 passes to onQueryProgress for a trigger that ran no batch (SPEC
2.3): the next batch id, no input, startOffset == endOffset, and durationMs without addBatch.

The offsets match the records tests/examples/run_examples.py produces: `orders` partitions 0
and 1, offsets 0-2 / 0-1 in batch 0 and 3-4 / 2-4 in batch 1.
"""
QUERY_ID = "0b5f9c3e-7d1a-4c2b-9e8f-3a6d5c4b2a10"
RUN_ID = "6e2d8a4f-1b3c-4d5e-8f9a-0b1c2d3e4f50"

BATCH0 = """
{
  "id" : "0b5f9c3e-7d1a-4c2b-9e8f-3a6d5c4b2a10",
  "runId" : "6e2d8a4f-1b3c-4d5e-8f9a-0b1c2d3e4f50",
  "name" : "orders-listener",
  "timestamp" : "2026-01-15T10:00:00.012Z",
  "batchId" : 0,
  "batchDuration" : 1520,
  "numInputRows" : 5,
  "processedRowsPerSecond" : 3.289473684210526,
  "durationMs" : {
    "addBatch" : 1204,
    "commitOffsets" : 35,
    "getBatch" : 0,
    "latestOffset" : 152,
    "queryPlanning" : 61,
    "triggerExecution" : 1520,
    "walCommit" : 41
  },
  "stateOperators" : [ ],
  "sources" : [ {
    "description" : "KafkaV2[Subscribe[orders]]",
    "startOffset" : null,
    "endOffset" : {
      "orders" : {
        "2" : 0,
        "1" : 2,
        "3" : 0,
        "0" : 3
      }
    },
    "latestOffset" : {
      "orders" : {
        "2" : 0,
        "1" : 2,
        "3" : 0,
        "0" : 3
      }
    },
    "numInputRows" : 5,
    "processedRowsPerSecond" : 3.289473684210526,
    "metrics" : {
      "avgOffsetsBehindLatest" : "0.0",
      "maxOffsetsBehindLatest" : "0",
      "minOffsetsBehindLatest" : "0"
    }
  } ],
  "sink" : {
    "description" : "ForeachBatchSink",
    "numOutputRows" : -1
  }
}
"""

BATCH1 = """
{
  "id" : "0b5f9c3e-7d1a-4c2b-9e8f-3a6d5c4b2a10",
  "runId" : "6e2d8a4f-1b3c-4d5e-8f9a-0b1c2d3e4f50",
  "name" : "orders-listener",
  "timestamp" : "2026-01-15T10:00:10.004Z",
  "batchId" : 1,
  "batchDuration" : 214,
  "numInputRows" : 5,
  "inputRowsPerSecond" : 0.5002501250625313,
  "processedRowsPerSecond" : 23.364485981308412,
  "durationMs" : {
    "addBatch" : 160,
    "commitOffsets" : 18,
    "getBatch" : 0,
    "latestOffset" : 3,
    "queryPlanning" : 9,
    "triggerExecution" : 214,
    "walCommit" : 22
  },
  "stateOperators" : [ ],
  "sources" : [ {
    "description" : "KafkaV2[Subscribe[orders]]",
    "startOffset" : {
      "orders" : {
        "2" : 0,
        "1" : 2,
        "3" : 0,
        "0" : 3
      }
    },
    "endOffset" : {
      "orders" : {
        "2" : 0,
        "1" : 5,
        "3" : 0,
        "0" : 5
      }
    },
    "latestOffset" : {
      "orders" : {
        "2" : 0,
        "1" : 5,
        "3" : 0,
        "0" : 5
      }
    },
    "numInputRows" : 5,
    "inputRowsPerSecond" : 0.5002501250625313,
    "processedRowsPerSecond" : 23.364485981308412,
    "metrics" : {
      "avgOffsetsBehindLatest" : "0.0",
      "maxOffsetsBehindLatest" : "0",
      "minOffsetsBehindLatest" : "0"
    }
  } ],
  "sink" : {
    "description" : "ForeachBatchSink",
    "numOutputRows" : -1
  }
}
"""

IDLE = """
{
  "id" : "0b5f9c3e-7d1a-4c2b-9e8f-3a6d5c4b2a10",
  "runId" : "6e2d8a4f-1b3c-4d5e-8f9a-0b1c2d3e4f50",
  "name" : "orders-listener",
  "timestamp" : "2026-01-15T10:00:20.001Z",
  "batchId" : 2,
  "batchDuration" : 2,
  "numInputRows" : 0,
  "inputRowsPerSecond" : 0.0,
  "processedRowsPerSecond" : 0.0,
  "durationMs" : {
    "latestOffset" : 2,
    "triggerExecution" : 2
  },
  "stateOperators" : [ ],
  "sources" : [ {
    "description" : "KafkaV2[Subscribe[orders]]",
    "startOffset" : {
      "orders" : {
        "2" : 0,
        "1" : 5,
        "3" : 0,
        "0" : 5
      }
    },
    "endOffset" : {
      "orders" : {
        "2" : 0,
        "1" : 5,
        "3" : 0,
        "0" : 5
      }
    },
    "latestOffset" : {
      "orders" : {
        "2" : 0,
        "1" : 5,
        "3" : 0,
        "0" : 5
      }
    },
    "numInputRows" : 0,
    "inputRowsPerSecond" : 0.0,
    "processedRowsPerSecond" : 0.0,
    "metrics" : {
      "avgOffsetsBehindLatest" : "0.0",
      "maxOffsetsBehindLatest" : "0",
      "minOffsetsBehindLatest" : "0"
    }
  } ],
  "sink" : {
    "description" : "ForeachBatchSink",
    "numOutputRows" : -1
  }
}
"""
