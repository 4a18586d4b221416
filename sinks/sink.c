/*
 * sink.c — the table of sink types, the registry config/ checks sinks against, and the vtable
 * dispatch behind the accessors. The topic sink ("kafka") is looked up but not configurable: the
 * engine adds it itself, so it is not in ws_sink_types().
 */
#include "sinks/sink_int.h"

#include <string.h>

static const struct ws_sink_ops *const table[] = {&ws_sink_file_ops, &ws_sink_kafka_ops,
                                                  &ws_sink_s3_ops};

static const struct ws_option_table *const configurable[] = {&ws_sink_file_ops.type,
                                                             &ws_sink_s3_ops.type};
static const struct ws_sink_types types = {configurable, WS_SINK_NOPTS(configurable)};

const struct ws_sink_ops *ws_sink_lookup(const char *type)
{
    for (size_t i = 0; i < WS_SINK_NOPTS(table); i++)
        if (strcmp(table[i]->type.name, type) == 0)
            return table[i];
    return NULL;
}

const struct ws_sink_types *ws_sink_types(void)
{
    return &types;
}

ws_err_t ws_sink_create(const struct ws_sink_conf *conf, const struct ws_sink_ctx *ctx,
                        struct ws_sink **out, char *errbuf, size_t errlen)
{
    const struct ws_sink_ops *ops = ws_sink_lookup(conf->type);

    if (!ops)
        return ws_fail(WS_ERR_CONFIG, errbuf, errlen, "unknown sink type '%s'", conf->type);
    /* The struct behind opts is the type's own: only its table may have filled it. */
    if (ops->type.nopts && (conf->table != &ops->type || !conf->opts))
        return ws_fail(WS_ERR_INVALID, errbuf, errlen,
                       "%s sink: options not loaded with its table (ws_sink_types)", conf->type);
    return ops->create(ops->type.nopts ? conf->opts : NULL, ctx, out, errbuf, errlen);
}

ws_err_t ws_sink_publish(struct ws_sink *s, const struct ws_artifact *a, char *errbuf,
                         size_t errlen)
{
    return s->ops->publish(s, a, errbuf, errlen);
}

ws_err_t ws_sink_submit(struct ws_sink *s, const struct ws_artifact *a, struct ws_kafka_delivery *d,
                        char *errbuf, size_t errlen)
{
    if (!s->ops->submit)
        return ws_fail(WS_ERR_UNSUPPORTED, errbuf, errlen, "%s cannot submit", s->label);
    return s->ops->submit(s, a, d, errbuf, errlen);
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

const char *ws_sink_label(const struct ws_sink *s)
{
    return s->label;
}

bool ws_sink_can_submit(const struct ws_sink *s)
{
    return s->ops->submit != NULL;
}

bool ws_sink_can_get(const struct ws_sink *s)
{
    return s->ops->get != NULL;
}

bool ws_sink_can_put(const struct ws_sink *s)
{
    return s->ops->put != NULL;
}

bool ws_sink_takes_checkpoint(const struct ws_sink *s)
{
    return s->ops->publishes_checkpoint;
}
