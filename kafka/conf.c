/*
 * kafka/conf.c — what every client shares: building an rd_kafka_conf_t from a ws_kafka_conf in
 * a fixed order (client defaults < bootstrap < user props < forced), and mapping librdkafka's
 * error codes onto windowseal's retriable/permanent classes in one place.
 *
 * The property text comes from the operator's configuration file: it is passed through to
 * librdkafka, which validates it; we only make sure the failing key is named in the error.
 */
#include "kafka/kafka_int.h"

#include <time.h>

ws_err_t ws_kafka_int_set(rd_kafka_conf_t *c, const char *key, const char *value, char *errbuf,
                          size_t errlen)
{
    char why[512];

    if (!key || !value)
        return ws_fail(WS_ERR_INVALID, errbuf, errlen, "kafka property %s has no %s",
                       key ? key : "(null)", key ? "value" : "name");
    if (rd_kafka_conf_set(c, key, value, why, sizeof(why)) != RD_KAFKA_CONF_OK)
        return ws_fail(WS_ERR_CONFIG, errbuf, errlen, "kafka property \"%s\": %s", key, why);
    return WS_OK;
}

static ws_err_t set_list(rd_kafka_conf_t *c, const char *const *kv, char *errbuf, size_t errlen)
{
    ws_err_t err;

    for (; kv && kv[0]; kv += 2) {
        if ((err = ws_kafka_int_set(c, kv[0], kv[1], errbuf, errlen)))
            return err;
    }
    return WS_OK;
}

ws_err_t ws_kafka_int_conf(const struct ws_kafka_conf *conf, const char *const *defaults,
                           const char *const *forced, rd_kafka_conf_t **out, char *errbuf,
                           size_t errlen)
{
    rd_kafka_conf_t *c;
    ws_err_t err;
    size_t i;

    *out = NULL;
    if (!conf || (conf->nprops && !conf->props))
        return ws_fail(WS_ERR_INVALID, errbuf, errlen, "kafka configuration missing");
    if (!(c = rd_kafka_conf_new()))
        return ws_fail(WS_ERR_NOMEM, errbuf, errlen, "rd_kafka_conf_new failed");
    if ((err = set_list(c, defaults, errbuf, errlen)))
        goto out_destroy_conf;
    if (conf->bootstrap &&
        (err = ws_kafka_int_set(c, "bootstrap.servers", conf->bootstrap, errbuf, errlen)))
        goto out_destroy_conf;
    for (i = 0; i < conf->nprops; i++) {
        err = ws_kafka_int_set(c, conf->props[2 * i], conf->props[2 * i + 1], errbuf, errlen);
        if (err)
            goto out_destroy_conf;
    }
    if ((err = set_list(c, forced, errbuf, errlen)))
        goto out_destroy_conf;
    *out = c;
    return WS_OK;

out_destroy_conf:
    rd_kafka_conf_destroy(c);
    return err;
}

ws_err_t ws_kafka_int_err(rd_kafka_resp_err_t err)
{
    switch (err) {
    case RD_KAFKA_RESP_ERR_NO_ERROR:
        return WS_OK;
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TIMED_OUT_QUEUE:
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
        return WS_ERR_TIMEOUT;
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
        return WS_ERR_UNKNOWN_TOPIC;
    case RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE:
    case RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET:
        return WS_ERR_NOT_RETAINED;
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
        return WS_ERR_TOO_LARGE;
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
    case RD_KAFKA_RESP_ERR__AUTHENTICATION:
        return WS_ERR_PERMISSION;
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
    case RD_KAFKA_RESP_ERR_POLICY_VIOLATION:
    case RD_KAFKA_RESP_ERR_UNSUPPORTED_FOR_MESSAGE_FORMAT:
    case RD_KAFKA_RESP_ERR_INVALID_REQUIRED_ACKS:
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
        return WS_ERR_INVALID;
    case RD_KAFKA_RESP_ERR__QUEUE_FULL:
        return WS_ERR_AGAIN;
    case RD_KAFKA_RESP_ERR__PURGE_QUEUE:
    case RD_KAFKA_RESP_ERR__PURGE_INFLIGHT:
    case RD_KAFKA_RESP_ERR__DESTROY:
        return WS_ERR_STOPPED;
    case RD_KAFKA_RESP_ERR__FATAL:
        return WS_ERR_KAFKA_FATAL;
    default:
        /* Transport, leader changes, coordinator moves, throttling...: librdkafka recovers. */
        return WS_ERR_KAFKA;
    }
}

int ws_kafka_int_left(int64_t deadline, int cap)
{
    int64_t left = deadline - ws_clock_ms();

    if (left < 0)
        return 0;
    return left > cap ? cap : (int)left;
}
