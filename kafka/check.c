/*
 * check.c — validate the Kafka part of a configuration without connecting, so that
 * `windowseal config check` and start-up report a bad librdkafka property by name before
 * anything is consumed.
 */
#include "kafka/kafka_int.h"

ws_err_t ws_kafka_conf_check(const struct ws_kafka_conf *conf, char *errbuf, size_t errlen)
{
    rd_kafka_conf_t *c = NULL;
    ws_err_t err = ws_kafka_int_conf(conf, NULL, NULL, &c, errbuf, errlen);

    if (c)
        rd_kafka_conf_destroy(c);
    return err;
}
