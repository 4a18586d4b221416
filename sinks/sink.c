/*
 * sink.c — the table of sink types and the vtable dispatch.
 */
#include "sinks/sink.h"

#include <string.h>

static const struct ws_sink_ops *const table[] = {&ws_sink_file_ops, &ws_sink_kafka_ops,
                                                  &ws_sink_s3_ops};

const struct ws_sink_ops *ws_sink_lookup(const char *type)
{
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (table[i] && strcmp(table[i]->name, type) == 0)
            return table[i];
    return NULL;
}

ws_err_t ws_sink_create(const struct ws_sink_conf *conf, struct ws_kafka_producer *producer,
                        const char *topic, struct ws_sink **out, char *errbuf, size_t errlen)
{
    const struct ws_sink_ops *ops = ws_sink_lookup(conf->type);

    if (!ops)
        return ws_fail(WS_ERR_CONFIG, errbuf, errlen, "unknown sink type '%s'", conf->type);
    return ops->create(conf, producer, topic, out, errbuf, errlen);
}

ws_err_t ws_sink_publish(struct ws_sink *s, const struct ws_artifact *a, char *errbuf,
                         size_t errlen)
{
    return s->ops->publish(s, a, errbuf, errlen);
}

ws_err_t ws_sink_get(struct ws_sink *s, const char *name, char **buf, size_t *len, char *errbuf,
                     size_t errlen)
{
    if (!s->ops->get)
        return ws_fail(WS_ERR_UNSUPPORTED, errbuf, errlen, "%s cannot read back", s->label);
    return s->ops->get(s, name, buf, len, errbuf, errlen);
}

ws_err_t ws_sink_put(struct ws_sink *s, const char *name, const void *data, size_t len,
                     char *errbuf, size_t errlen)
{
    if (!s->ops->put)
        return WS_OK;
    return s->ops->put(s, name, data, len, errbuf, errlen);
}

void ws_sink_destroy(struct ws_sink *s)
{
    if (s)
        s->ops->destroy(s);
}
