/*
 * sinks/sink_int.h — what the sink implementations share; private to sinks/.
 *
 * Every instance starts with a struct ws_sink (its ops and its label), so that sink.c can
 * dispatch and answer the accessors without knowing the type.
 */
#ifndef WS_SINK_INT_H
#define WS_SINK_INT_H

#include "sinks/sink.h"

struct ws_sink {
    const struct ws_sink_ops *ops; /* first member of every instance */
    char label[64];                /* "file:/path", "kafka:topic", for logs and metrics */
};

#define WS_SINK_NOPTS(table) (sizeof(table) / sizeof((table)[0]))

extern const struct ws_sink_ops ws_sink_file_ops;
extern const struct ws_sink_ops ws_sink_kafka_ops;
extern const struct ws_sink_ops ws_sink_s3_ops;

#endif /* WS_SINK_INT_H */
