/*
 * kafka/kafka_int.h — private to kafka/: the configuration builder and error mapping that every
 * client shares. Only this folder includes rdkafka.h.
 */
#ifndef WS_KAFKA_INT_H
#define WS_KAFKA_INT_H

#include <librdkafka/rdkafka.h>

#include "kafka/kafka.h"

/*
 * Build an rd_kafka_conf_t: defaults (NULL-terminated key,value list, may be NULL), then
 * conf->bootstrap, conf->props, then forced (same form). On failure *out is NULL and errbuf
 * names the property.
 */
ws_err_t ws_kafka_int_conf(const struct ws_kafka_conf *conf, const char *const *defaults,
                           const char *const *forced, rd_kafka_conf_t **out, char *errbuf,
                           size_t errlen);

/* Set one property on a conf under construction; errbuf names it on failure. */
ws_err_t ws_kafka_int_set(rd_kafka_conf_t *c, const char *key, const char *value, char *errbuf,
                          size_t errlen);

/* librdkafka error -> ws_err_t class (see kafka.h for which are retriable). */
ws_err_t ws_kafka_int_err(rd_kafka_resp_err_t err);

/* Monotonic milliseconds, for deadlines. */

/* Milliseconds left until deadline, clamped to [0, cap]. */
int ws_kafka_int_left(int64_t deadline, int cap);

#endif /* WS_KAFKA_INT_H */
