/*
 * metrics.c — Prometheus text exposition on metrics.listen, served by libmicrohttpd.
 *
 * The engine thread updates series; libmicrohttpd's own thread renders them on GET /metrics.
 * One mutex guards the registry: updates are a handful per window, so contention is nil and the
 * engine's per-record path never touches it. Families are declared once in `families[]` (name,
 * type, help); series are created on first use with a label string such as
 * `sink="file:/x",class="retriable"`, so label sets stay open (sinks, reasons, queries) without a
 * schema per family. /healthz answers 200 while the process runs; /readyz 200 only while the
 * engine says it is connected and no query's chain is stopped.
 */
#include "engine/internal.h"

#include <microhttpd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>

enum ftype { COUNTER, GAUGE, HISTOGRAM };

static const struct family {
    const char *name;
    enum ftype type;
    const char *help;
} families[] = {
    {"windowseal_windows_attested_total", COUNTER, "Windows attested and committed."},
    {"windowseal_records_attested_total", COUNTER, "Records in attested windows."},
    {"windowseal_bytes_attested_total", COUNTER, "Bytes (record encodings) in attested windows."},
    {"windowseal_deadlettered_total", COUNTER, "Notifications dead-lettered, by error."},
    {"windowseal_conflicts_total", COUNTER, "Notifications conflicting with an attested batch."},
    {"windowseal_duplicates_total", COUNTER, "Re-delivered notifications found identical (no-op)."},
    {"windowseal_gaps_total", COUNTER, "Windows attested with a gap before them."},
    {"windowseal_idle_triggers_total", COUNTER,
     "Spark progress of triggers that ran no batch: skipped, committed."},
    {"windowseal_input_rows_mismatch_total", COUNTER,
     "Windows whose record count differs from Spark's numInputRows (attested as Kafka holds)."},
    {"windowseal_output_discrepancies_total", COUNTER,
     "Iceberg outputs whose job-reported files or snapshot summary differ from the snapshot's "
     "manifests (attested, with the difference in the statement)."},
    {"windowseal_sink_publishes_total", COUNTER, "Successful sink publishes, by sink."},
    {"windowseal_sink_failures_total", COUNTER, "Failed sink publishes, by sink and class."},
    {"windowseal_retries_total", COUNTER, "Window retries scheduled after retriable errors."},
    {"windowseal_rebalances_total", COUNTER,
     "Consumer-group assignment changes: each drops what was in hand and reloads the heads."},
    {"windowseal_spool_bytes", GAUGE, "Bytes held in the local spool."},
    {"windowseal_spool_full", GAUGE, "1 while intake is paused because the spool is full."},
    {"windowseal_spool_pauses_total", COUNTER, "Times intake paused on a full spool."},
    {"windowseal_chain_length", GAUGE, "Window-log size (chainLength) per query."},
    {"windowseal_queries_stopped", GAUGE, "Queries whose chain is stopped by a permanent error."},
    {"windowseal_consumer_lag", GAUGE, "Notifications not yet consumed (approximate)."},
    {"windowseal_window_latency_seconds", HISTOGRAM,
     "Notification timestamp to window committed, seconds."},
    /* openlineage (lineage/lineage.h): one outcome per event, retries counted apart */
    {"windowseal_lineage_events_total", COUNTER,
     "OpenLineage events of attested windows, by result: delivered, retried (an attempt failed, "
     "sent again), rejected (refused by the backend), dropped (queue full or attempts spent)."},
};
#define NFAM (sizeof families / sizeof families[0])

static const double buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
#define NBUCKETS (sizeof buckets / sizeof buckets[0])

struct series {
    unsigned fam;
    char labels[192];
    double value;              /* counter/gauge; histogram: sum */
    uint64_t count;            /* histogram */
    uint64_t bucket[NBUCKETS]; /* histogram, cumulative at render time */
};

struct ws_metrics {
    pthread_mutex_t mu;
    struct series *s;
    size_t n, cap;
    bool ready;
    struct MHD_Daemon *mhd;
};

static unsigned fam_index(const char *name)
{
    for (unsigned i = 0; i < NFAM; i++)
        if (strcmp(families[i].name, name) == 0)
            return i;
    return NFAM;
}

/* Caller holds mu. NULL if the family is unknown or memory ran out (metrics never fail work). */
static struct series *get(struct ws_metrics *m, const char *family, const char *labels)
{
    unsigned f = fam_index(family);

    if (f == NFAM)
        return NULL;
    labels = labels ? labels : "";
    for (size_t i = 0; i < m->n; i++)
        if (m->s[i].fam == f && strcmp(m->s[i].labels, labels) == 0)
            return &m->s[i];
    if (m->n == m->cap) {
        size_t cap = m->cap ? 2 * m->cap : 32;
        struct series *s = realloc(m->s, cap * sizeof *s);
        if (!s)
            return NULL;
        m->s = s;
        m->cap = cap;
    }
    memset(&m->s[m->n], 0, sizeof m->s[m->n]);
    m->s[m->n].fam = f;
    snprintf(m->s[m->n].labels, sizeof m->s[m->n].labels, "%s", labels);
    return &m->s[m->n++];
}

void ws_metrics_add(struct ws_metrics *m, const char *family, const char *labels, double v)
{
    struct series *s;

    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    if ((s = get(m, family, labels)))
        s->value += v;
    pthread_mutex_unlock(&m->mu);
}

void ws_metrics_set(struct ws_metrics *m, const char *family, const char *labels, double v)
{
    struct series *s;

    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    if ((s = get(m, family, labels)))
        s->value = v;
    pthread_mutex_unlock(&m->mu);
}

void ws_metrics_observe(struct ws_metrics *m, const char *family, const char *labels, double v)
{
    struct series *s;

    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    if ((s = get(m, family, labels))) {
        s->value += v;
        s->count++;
        for (size_t i = 0; i < NBUCKETS; i++)
            if (v <= buckets[i]) {
                s->bucket[i]++;
                break;
            }
    }
    pthread_mutex_unlock(&m->mu);
}

void ws_metrics_set_ready(struct ws_metrics *m, bool ready)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    m->ready = ready;
    pthread_mutex_unlock(&m->mu);
}

/* Append to a growing buffer; on allocation failure the render is cut short, never overrun. */
struct buf {
    char *p;
    size_t n, cap;
};

static void bprintf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bprintf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    int k;

    for (;;) {
        va_start(ap, fmt);
        k = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0)
            return;
        if (b->p && b->n + (size_t)k < b->cap) {
            b->n += (size_t)k;
            return;
        }
        size_t cap = (b->cap ? b->cap * 2 : 4096) + (size_t)k;
        char *p = realloc(b->p, cap);
        if (!p)
            return;
        b->p = p;
        b->cap = cap;
    }
}

static void render_series(struct buf *b, const struct series *s)
{
    const struct family *f = &families[s->fam];
    const char *comma = s->labels[0] ? "," : "";

    if (f->type != HISTOGRAM) {
        bprintf(b, "%s%s%s%s %.17g\n", f->name, s->labels[0] ? "{" : "", s->labels,
                s->labels[0] ? "}" : "", s->value);
        return;
    }
    uint64_t cum = 0;
    for (size_t i = 0; i < NBUCKETS; i++) {
        cum += s->bucket[i];
        bprintf(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", f->name, s->labels, comma, buckets[i],
                (unsigned long long)cum);
    }
    bprintf(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", f->name, s->labels, comma,
            (unsigned long long)s->count);
    bprintf(b, "%s_sum%s%s%s %.17g\n", f->name, s->labels[0] ? "{" : "", s->labels,
            s->labels[0] ? "}" : "", s->value);
    bprintf(b, "%s_count%s%s%s %llu\n", f->name, s->labels[0] ? "{" : "", s->labels,
            s->labels[0] ? "}" : "", (unsigned long long)s->count);
}

static struct buf render(struct ws_metrics *m)
{
    struct buf b = {0};
    static const char *const tnames[] = {"counter", "gauge", "histogram"};

    pthread_mutex_lock(&m->mu);
    for (unsigned f = 0; f < NFAM; f++) {
        bprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", families[f].name, families[f].help,
                families[f].name, tnames[families[f].type]);
        for (size_t i = 0; i < m->n; i++)
            if (m->s[i].fam == f)
                render_series(&b, &m->s[i]);
    }
    pthread_mutex_unlock(&m->mu);
    return b;
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **state)
{
    struct ws_metrics *m = cls;
    struct MHD_Response *r;
    enum MHD_Result ret;
    unsigned status = MHD_HTTP_OK;
    struct buf b = {0};
    bool ready;

    if (strcmp(method, "GET") != 0)
        return MHD_NO;
    if (strcmp(url, "/metrics") == 0) {
        b = render(m);
    } else if (strcmp(url, "/healthz") == 0) {
        bprintf(&b, "ok\n");
    } else if (strcmp(url, "/readyz") == 0) {
        pthread_mutex_lock(&m->mu);
        ready = m->ready;
        pthread_mutex_unlock(&m->mu);
        bprintf(&b, ready ? "ready\n" : "not ready\n");
        status = ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE;
    } else {
        bprintf(&b, "not found\n");
        status = MHD_HTTP_NOT_FOUND;
    }
    r = MHD_create_response_from_buffer(b.n, b.p ? b.p : (char *)"", MHD_RESPMEM_MUST_COPY);
    free(b.p);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type",
                            strcmp(url, "/metrics") == 0 ? "text/plain; version=0.0.4"
                                                         : "text/plain");
    ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

ws_err_t ws_metrics_start(const char *listen, struct ws_metrics **out, char *errbuf, size_t errlen)
{
    struct ws_metrics *m = calloc(1, sizeof *m);
    struct sockaddr_in sa = {0};
    char host[64];
    const char *colon;
    long port;

    if (!m)
        return WS_ERR_NOMEM;
    pthread_mutex_init(&m->mu, NULL);
    *out = m;
    if (!listen || !*listen)
        return WS_OK; /* registry only: counted, not served */
    colon = strrchr(listen, ':');
    port = colon ? strtol(colon + 1, NULL, 10) : -1;
    if (!colon || (size_t)(colon - listen) >= sizeof host || port <= 0 || port > 65535)
        goto bad;
    snprintf(host, sizeof host, "%.*s", (int)(colon - listen), listen);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        goto bad;
    m->mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, (uint16_t)port,
                              NULL, NULL, answer, m, MHD_OPTION_SOCK_ADDR, &sa,
                              MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
    if (!m->mhd) {
        ws_metrics_stop(m);
        *out = NULL;
        return ws_fail(WS_ERR_CONFIG, errbuf, errlen, "metrics.listen %s: cannot listen", listen);
    }
    return WS_OK;
bad:
    ws_metrics_stop(m);
    *out = NULL;
    return ws_fail(WS_ERR_CONFIG, errbuf, errlen,
                   "metrics.listen \"%s\": expected IPv4:PORT, e.g. 127.0.0.1:9464", listen);
}

void ws_metrics_stop(struct ws_metrics *m)
{
    if (!m)
        return;
    if (m->mhd)
        MHD_stop_daemon(m->mhd);
    pthread_mutex_destroy(&m->mu);
    free(m->s);
    free(m);
}
