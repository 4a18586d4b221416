/*
 * emitter.c — lineage out of the way: a bounded queue, one worker thread, the same bytes again.
 *
 * The engine thread hands over a window's envelope once the window is in every sink and its
 * chain head is acknowledged (engine/publish.c); from then on nothing here can delay a window:
 *
 *   engine thread                       worker thread (one, its own curl handle)
 *   ─────────────                       ───────────────────────────────────────
 *   submit: copy, queue (or drop:  ──►  build START + COMPLETE (event.c, off the engine thread:
 *   full, counted)                      a statement may hold many files)
 *                                       HTTP: POST START, then COMPLETE, each until 200/201,
 *                                             a refusal, or max_attempts (backoff, jitter)
 *                                       Kafka: produce both (key run:<ns>/<job>), each a
 *                                             delivery in `inflight`
 *   poll (after the producer's poll): ◄─ reports land on the engine thread, which served them:
 *   delivered, or back to the worker     a retriable failure is produced again, same bytes
 *
 * Invariants (checked by check() under the mutex in debug builds):
 *   L1  Every event submitted is counted exactly once as delivered, rejected or dropped (plus
 *       any number of retried): `outstanding` is the number not yet counted so.
 *   L2  The queue holds at most max_windows windows, and a window is taken only if its envelope
 *       fits in max_bytes with what is queued: one that does not is dropped at submit, so
 *       memory is bounded whatever the backend does, and submit never waits.
 *   L3  A retry sends the bytes built the first time (never rebuilt): backends that dedupe on
 *       the event see one event.
 *   L4  HTTP: a window's COMPLETE is sent only after its START was answered (delivered or
 *       refused), and windows go in submission order, so a backend sees START before COMPLETE.
 *
 * Kafka deliveries: the producer's report callback (ws_kafka_delivery_report) fills a struct
 * ws_kafka_delivery on the thread that serves reports — the engine's — so the deliveries are
 * read on that thread too (poll), never on the worker; a delivery is the first member of its
 * `struct kev`, so that one abandoned at destroy is freed by the report as the producer expects.
 *
 * The backend's answers are outside input: only the status decides, and at most 200 bytes of a
 * body reach a log line, printable ASCII only.
 */
#include "lineage/lineage.h"
#include "disk/disk.h"
#include "kafka/kafka.h"

#include <assert.h>
#include <curl/curl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One window, from submit until its two events are counted (HTTP) or produced (Kafka). */
struct item {
    struct item *next;
    char *env;
    size_t env_len;
    bool built;
    struct ws_lineage_events ev;
    unsigned sent; /* HTTP: events answered so far, START first (L4) */
    unsigned attempts;
    int64_t next_attempt; /* monotonic ms */
    size_t bytes;         /* counted in em->bytes */
};

/* One Kafka event: produced, in flight, or waiting to be produced again. */
struct kev {
    struct ws_kafka_delivery dv; /* first: an abandoned one is freed by the report (kafka.h) */
    struct kev *next;
    char *key, *value;
    size_t value_len;
    unsigned attempts;
    int64_t next_attempt;
    size_t bytes;
};

struct ws_lineage_emitter {
    struct ws_lineage_emitter_conf c;
    char *job_namespace, *kafka_namespace, *url, *topic, *auth; /* owned copies */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t worker;
    bool started;
    struct item *head, *tail; /* submitted, in order */
    struct kev *retry;        /* Kafka: to produce again (worker) */
    struct kev *inflight;     /* Kafka: produced, report not taken yet (poll) */
    size_t windows, bytes;    /* L2 */
    size_t outstanding;       /* L1: events not yet delivered, rejected or dropped */
    bool stopping;
    int64_t deadline; /* with stopping: the worker leaves at this time, queue or not */
    CURL *curl;       /* the worker's */
    struct curl_slist *headers;
};

static const char *const result_names[WS_LINEAGE_RESULTS] = {"delivered", "retried", "rejected",
                                                             "dropped"};

const char *ws_lineage_result_name(enum ws_lineage_result r)
{
    return (unsigned)r < WS_LINEAGE_RESULTS ? result_names[r] : "?";
}

static void count(struct ws_lineage_emitter *em, enum ws_lineage_result r, unsigned n)
{
    if (r != WS_LINEAGE_RETRIED) {
        assert(em->outstanding >= n); /* L1 */
        em->outstanding -= n;
    }
    if (em->c.count && n)
        em->c.count(em->c.opaque, r, n);
}

#ifndef NDEBUG
/* Caller holds mu. L1 and L2 over what the lists hold. */
static bool check(const struct ws_lineage_emitter *em)
{
    size_t windows = 0, events = 0, bytes = 0;

    for (const struct item *it = em->head; it; it = it->next) {
        windows++;
        events += 2 - it->sent;
        bytes += it->bytes;
        if (!it->next && it != em->tail)
            return false;
    }
    for (const struct kev *k = em->retry; k; k = k->next)
        events++, bytes += k->bytes;
    for (const struct kev *k = em->inflight; k; k = k->next)
        events++, bytes += k->bytes;
    /* the worker may hold one item or one kev outside the lists: at most 2 events */
    return windows <= em->c.max_windows && bytes <= em->bytes && events <= em->outstanding &&
           em->outstanding <= events + 2;
}
#endif

static int64_t backoff(const struct ws_lineage_emitter *em, unsigned attempts)
{
    int64_t d = em->c.retry_base_ms;

    for (unsigned i = 1; i < attempts && d < em->c.retry_max_ms; i++)
        d *= 2;
    if (d > em->c.retry_max_ms)
        d = em->c.retry_max_ms;
    return ws_clock_ms() + d * 3 / 4 + (int64_t)randombytes_uniform((uint32_t)(d / 2 + 1));
}

/* Printable ASCII of an outside answer, for one log line. */
static void sanitize(const char *in, size_t len, char *out, size_t cap)
{
    size_t o = 0;

    for (size_t i = 0; i < len && o + 1 < cap; i++)
        out[o++] = in[i] >= 0x20 && in[i] < 0x7f && in[i] != '"' && in[i] != '\\' ? in[i] : '.';
    out[o] = '\0';
}

/* ------------------------------------------------------------------------------------------ */
/* HTTP (worker thread)                                                                         */

struct body {
    char buf[200];
    size_t len;
};

static size_t on_body(char *p, size_t size, size_t n, void *opaque)
{
    struct body *b = opaque;
    size_t take = size * n;

    if (take > sizeof b->buf - b->len)
        take = sizeof b->buf - b->len; /* the rest is read and thrown away */
    memcpy(b->buf + b->len, p, take);
    b->len += take;
    return size * n;
}

/* Abort a POST in progress once a stop's grace has run out. */
static int on_progress(void *opaque, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    struct ws_lineage_emitter *em = opaque;
    bool late;

    pthread_mutex_lock(&em->mu);
    late = em->stopping && ws_clock_ms() >= em->deadline;
    pthread_mutex_unlock(&em->mu);
    return late;
}

/* One POST. WS_OK (200/201), WS_ERR_SINK_RETRY (no answer, 408, 429, 5xx) or
 * WS_ERR_SINK_PERMANENT (any other answer), with why. */
static ws_err_t post(struct ws_lineage_emitter *em, const char *json, size_t len, char *why,
                     size_t whylen)
{
    struct body b = {.len = 0};
    char text[sizeof b.buf + 1];
    long status = 0;
    CURLcode rc;

    curl_easy_setopt(em->curl, CURLOPT_POSTFIELDS, json);
    curl_easy_setopt(em->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(em->curl, CURLOPT_WRITEDATA, &b);
    rc = curl_easy_perform(em->curl);
    if (rc != CURLE_OK)
        return ws_fail(WS_ERR_SINK_RETRY, why, whylen, "POST %s: %s", em->url,
                       curl_easy_strerror(rc));
    curl_easy_getinfo(em->curl, CURLINFO_RESPONSE_CODE, &status);
    if (status == 200 || status == 201)
        return WS_OK;
    sanitize(b.buf, b.len, text, sizeof text);
    return ws_fail(status == 408 || status == 429 || status >= 500 ? WS_ERR_SINK_RETRY
                                                                   : WS_ERR_SINK_PERMANENT,
                   why, whylen, "POST %s: HTTP %ld: %s", em->url, status, text);
}

static ws_err_t http_open(struct ws_lineage_emitter *em, char *errbuf, size_t errlen)
{
    struct curl_slist *h;

    if (!(em->curl = curl_easy_init()))
        return ws_fail(WS_ERR_NOMEM, errbuf, errlen, "lineage: cannot create a curl handle");
    if (!(h = curl_slist_append(NULL, "Content-Type: application/json")) ||
        !(em->headers = h, h = curl_slist_append(h, "Expect:")) || /* no 100-continue wait */
        (em->auth && !(h = curl_slist_append(h, em->auth))))
        return ws_fail(WS_ERR_NOMEM, errbuf, errlen, "lineage: out of memory");
    em->headers = h;
    curl_easy_setopt(em->curl, CURLOPT_URL, em->url);
    curl_easy_setopt(em->curl, CURLOPT_HTTPHEADER, em->headers);
    curl_easy_setopt(em->curl, CURLOPT_POST, 1L);
    curl_easy_setopt(em->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(em->curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(em->curl, CURLOPT_TIMEOUT_MS, (long)em->c.http_timeout_ms);
    curl_easy_setopt(em->curl, CURLOPT_CONNECTTIMEOUT_MS, (long)em->c.http_timeout_ms);
    curl_easy_setopt(em->curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(em->curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(em->curl, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(em->curl, CURLOPT_XFERINFODATA, em);
    return WS_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* The worker                                                                                   */

static void item_free(struct ws_lineage_emitter *em, struct item *it)
{
    em->bytes -= it->bytes;
    em->windows--;
    free(it->env);
    ws_lineage_events_free(&it->ev);
    free(it);
}

static void kev_free(struct ws_lineage_emitter *em, struct kev *k)
{
    em->bytes -= k->bytes;
    free(k->key);
    free(k->value);
    free(k);
}

/* Build an item's events (mu not held: the work is the statement's size). Caller counts. */
static ws_err_t build(struct ws_lineage_emitter *em, struct item *it, char *why, size_t whylen)
{
    ws_err_t err = ws_lineage_build(&em->c.events, it->env, it->env_len, &it->ev, why, whylen);

    pthread_mutex_lock(&em->mu);
    if (!err) {
        it->built = true;
        em->bytes -= it->env_len;
        it->bytes = it->ev.start_len + it->ev.complete_len + strlen(it->ev.key);
        em->bytes += it->bytes;
        free(it->env);
        it->env = NULL;
        it->env_len = 0;
    }
    pthread_mutex_unlock(&em->mu);
    return err;
}

/* HTTP: send what is left of the head item; called with mu held, returns with it held. */
static void http_step(struct ws_lineage_emitter *em, struct item *it)
{
    char why[512];
    ws_err_t err = WS_OK;

    while (it->sent < 2) {
        const char *ev = it->sent == 0 ? it->ev.start : it->ev.complete;
        size_t len = it->sent == 0 ? it->ev.start_len : it->ev.complete_len;

        pthread_mutex_unlock(&em->mu);
        err = post(em, ev, len, why, sizeof why);
        pthread_mutex_lock(&em->mu);
        if (err == WS_ERR_SINK_RETRY && ++it->attempts < em->c.max_attempts &&
            !(em->stopping && ws_clock_ms() >= em->deadline)) {
            count(em, WS_LINEAGE_RETRIED, 1);
            ws_log(WS_LOG_DEBUG, "lineage_retry", "run=%s attempt=%u reason=\"%s\"", it->ev.run_id,
                   it->attempts, why);
            it->next_attempt = backoff(em, it->attempts);
            return; /* stays at the head: the windows after it wait their turn (L4) */
        }
        if (err) {
            ws_log(WS_LOG_WARN, "lineage_lost", "run=%s event=%s result=%s reason=\"%s\"",
                   it->ev.run_id, it->sent == 0 ? "START" : "COMPLETE",
                   err == WS_ERR_SINK_RETRY ? "dropped" : "rejected", why);
            count(em, err == WS_ERR_SINK_RETRY ? WS_LINEAGE_DROPPED : WS_LINEAGE_REJECTED, 1);
        } else {
            count(em, WS_LINEAGE_DELIVERED, 1);
        }
        it->sent++;
        it->attempts = 0;
    }
    em->head = it->next;
    if (!em->head)
        em->tail = NULL;
    item_free(em, it);
}

/* Kafka: produce one event; called with mu held. The kev is in inflight before the produce,
 * so that a report served at once finds it there. */
static void kafka_produce(struct ws_lineage_emitter *em, struct kev *k)
{
    char why[512];
    ws_err_t err;

    memset(&k->dv, 0, sizeof k->dv);
    k->next = em->inflight;
    em->inflight = k;
    pthread_mutex_unlock(&em->mu);
    err = ws_kafka_produce(em->c.producer, em->topic, -1, k->key, strlen(k->key), k->value,
                           k->value_len, NULL, 0, &k->dv, why, sizeof why);
    pthread_mutex_lock(&em->mu);
    if (!err)
        return;
    for (struct kev **pp = &em->inflight; *pp; pp = &(*pp)->next)
        if (*pp == k) {
            *pp = k->next;
            break;
        }
    if (ws_err_retriable(err) && ++k->attempts < em->c.max_attempts && !em->stopping) {
        count(em, WS_LINEAGE_RETRIED, 1);
        k->next_attempt = backoff(em, k->attempts);
        k->next = em->retry;
        em->retry = k;
        return;
    }
    ws_log(WS_LOG_WARN, "lineage_lost", "topic=%s result=%s reason=\"%s\"", em->topic,
           ws_err_retriable(err) ? "dropped" : "rejected", why);
    count(em, ws_err_retriable(err) ? WS_LINEAGE_DROPPED : WS_LINEAGE_REJECTED, 1);
    kev_free(em, k);
}

static struct kev *kev_new(const struct ws_lineage_events *ev, bool complete)
{
    struct kev *k = calloc(1, sizeof *k);

    if (!k || !(k->key = strdup(ev->key)) ||
        !(k->value = strdup(complete ? ev->complete : ev->start))) {
        if (k)
            free(k->key);
        free(k);
        return NULL;
    }
    k->value_len = complete ? ev->complete_len : ev->start_len;
    k->bytes = k->value_len + strlen(k->key);
    return k;
}

/* Kafka: the head item's two events become deliveries; called with mu held. */
static void kafka_step(struct ws_lineage_emitter *em, struct item *it)
{
    struct kev *k[2];

    em->head = it->next;
    if (!em->head)
        em->tail = NULL;
    k[0] = kev_new(&it->ev, false);
    k[1] = kev_new(&it->ev, true);
    for (int i = 0; i < 2; i++)
        if (k[i])
            em->bytes += k[i]->bytes;
    item_free(em, it);
    for (int i = 0; i < 2; i++) {
        if (!k[i]) {
            ws_log(WS_LOG_WARN, "lineage_lost", "result=dropped reason=\"out of memory\"");
            count(em, WS_LINEAGE_DROPPED, 1);
            continue;
        }
        kafka_produce(em, k[i]);
    }
}

/* The next Kafka event due to be produced again, or NULL; sets *wake to the earliest. */
static struct kev *due_retry(struct ws_lineage_emitter *em, int64_t now, int64_t *wake)
{
    for (struct kev **pp = &em->retry; *pp; pp = &(*pp)->next) {
        struct kev *k = *pp;
        if (k->next_attempt <= now) {
            *pp = k->next;
            return k;
        }
        if (k->next_attempt < *wake)
            *wake = k->next_attempt;
    }
    return NULL;
}

static void drop_rest(struct ws_lineage_emitter *em)
{
    struct item *it;
    struct kev *k;

    while ((it = em->head)) {
        em->head = it->next;
        ws_log(WS_LOG_WARN, "lineage_lost",
               "run=%s events=%u result=dropped reason=\"stopping: backend not reached in time\"",
               it->built ? it->ev.run_id : "-", 2 - it->sent);
        count(em, WS_LINEAGE_DROPPED, 2 - it->sent);
        item_free(em, it);
    }
    em->tail = NULL;
    while ((k = em->retry)) {
        em->retry = k->next;
        count(em, WS_LINEAGE_DROPPED, 1);
        kev_free(em, k);
    }
}

static void *worker(void *arg)
{
    struct ws_lineage_emitter *em = arg;
    char why[512];

    pthread_mutex_lock(&em->mu);
    for (;;) {
        int64_t now = ws_clock_ms(), wake = now + 1000;
        struct item *it = em->head;
        struct kev *k;

        assert(check(em));
        if (em->stopping && (now >= em->deadline || (!em->head && !em->retry)))
            break;
        if ((k = due_retry(em, now, &wake))) {
            kafka_produce(em, k);
            continue;
        }
        if (it && it->next_attempt <= now) {
            if (!it->built) {
                pthread_mutex_unlock(&em->mu);
                ws_err_t err = build(em, it, why, sizeof why);
                pthread_mutex_lock(&em->mu);
                if (err) { /* not ours to fix: the envelope is what was published */
                    ws_log(WS_LOG_WARN, "lineage_lost", "result=dropped reason=\"%s\"", why);
                    em->head = it->next;
                    if (!em->head)
                        em->tail = NULL;
                    count(em, WS_LINEAGE_DROPPED, 2);
                    item_free(em, it);
                    continue;
                }
            }
            if (em->curl)
                http_step(em, it);
            else
                kafka_step(em, it);
            continue;
        }
        if (it && it->next_attempt < wake)
            wake = it->next_attempt;
        if (em->stopping && em->deadline < wake)
            wake = em->deadline;
        {
            struct timespec ts;
            int64_t ms;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + (wake - now);
            ts.tv_sec = (time_t)(ms / 1000);
            ts.tv_nsec = (long)(ms % 1000) * 1000000;
            pthread_cond_timedwait(&em->cv, &em->mu, &ts);
        }
    }
    drop_rest(em);
    pthread_mutex_unlock(&em->mu);
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Public                                                                                       */

void ws_lineage_emitter_submit(struct ws_lineage_emitter *em, const char *env, size_t len)
{
    struct item *it;

    pthread_mutex_lock(&em->mu);
    em->outstanding += 2;
    it = !em->stopping && em->windows < em->c.max_windows && em->bytes + len <= em->c.max_bytes
             ? calloc(1, sizeof *it)
             : NULL;
    if (it && !(it->env = malloc(len ? len : 1))) {
        free(it);
        it = NULL;
    }
    if (!it) { /* L2: never a wait, never unbounded memory */
        ws_log(WS_LOG_WARN, "lineage_lost",
               "events=2 result=dropped reason=\"queue full (%zu windows, %zu bytes) or stopping: "
               "the lineage backend is slow or down\"",
               em->windows, em->bytes);
        count(em, WS_LINEAGE_DROPPED, 2);
        pthread_mutex_unlock(&em->mu);
        return;
    }
    memcpy(it->env, env, len);
    it->env_len = it->bytes = len;
    em->windows++;
    em->bytes += len;
    if (em->tail)
        em->tail->next = it;
    else
        em->head = it;
    em->tail = it;
    assert(check(em));
    pthread_cond_signal(&em->cv);
    pthread_mutex_unlock(&em->mu);
}

/* Take the reports of inflight deliveries (the caller's thread served them); at_exit: every
 * delivery not reported is abandoned to the producer and counted dropped. Caller holds mu. */
static void sweep(struct ws_lineage_emitter *em, bool at_exit)
{
    bool woke = false;

    for (struct kev **pp = &em->inflight; *pp;) {
        struct kev *k = *pp;
        if (!k->dv.done && !at_exit) {
            pp = &k->next;
            continue;
        }
        *pp = k->next;
        if (!k->dv.done) { /* its report is still to come: it frees the delivery */
            count(em, WS_LINEAGE_DROPPED, 1);
            em->bytes -= k->bytes;
            free(k->key);
            free(k->value);
            k->dv.abandoned = true;
            continue;
        }
        if (k->dv.err == WS_OK) {
            count(em, WS_LINEAGE_DELIVERED, 1);
        } else if (ws_err_retriable(k->dv.err) && ++k->attempts < em->c.max_attempts &&
                   !em->stopping && !at_exit) {
            count(em, WS_LINEAGE_RETRIED, 1); /* the same bytes again (L3) */
            k->next_attempt = backoff(em, k->attempts);
            k->next = em->retry;
            em->retry = k;
            woke = true;
            continue;
        } else {
            bool retr = ws_err_retriable(k->dv.err);
            ws_log(WS_LOG_WARN, "lineage_lost", "topic=%s result=%s reason=\"%s\"", em->topic,
                   retr ? "dropped" : "rejected", k->dv.reason);
            count(em, retr ? WS_LINEAGE_DROPPED : WS_LINEAGE_REJECTED, 1);
        }
        kev_free(em, k);
    }
    if (woke)
        pthread_cond_signal(&em->cv);
}

void ws_lineage_emitter_poll(struct ws_lineage_emitter *em)
{
    if (!em || !em->c.kafka_topic)
        return;
    pthread_mutex_lock(&em->mu);
    sweep(em, false);
    pthread_mutex_unlock(&em->mu);
}

void ws_lineage_emitter_stop(struct ws_lineage_emitter *em, int64_t grace_ms)
{
    if (!em || !em->started)
        return;
    pthread_mutex_lock(&em->mu);
    em->stopping = true;
    em->deadline = ws_clock_ms() + (grace_ms > 0 ? grace_ms : 0);
    pthread_cond_signal(&em->cv);
    pthread_mutex_unlock(&em->mu);
    pthread_join(em->worker, NULL);
    em->started = false;
}

ws_err_t ws_lineage_emitter_new(const struct ws_lineage_emitter_conf *conf,
                                struct ws_lineage_emitter **out, char *errbuf, size_t errlen)
{
    struct ws_lineage_emitter *em;
    bool http = conf->url && *conf->url, kafka = conf->kafka_topic && *conf->kafka_topic;
    ws_err_t err;
    size_t n;

    if (http == kafka || (kafka && !conf->producer) || !conf->events.job_namespace ||
        !conf->events.kafka_namespace || conf->max_attempts < 1 || conf->max_windows < 1 ||
        conf->retry_base_ms < 1 || conf->retry_max_ms < conf->retry_base_ms)
        return ws_fail(WS_ERR_CONFIG, errbuf, errlen,
                       "lineage: one transport (url, or kafka_topic with a producer) and sane "
                       "bounds are needed");
    if (!(em = calloc(1, sizeof *em)))
        return ws_fail(WS_ERR_NOMEM, errbuf, errlen, "lineage: out of memory");
    em->c = *conf;
    pthread_mutex_init(&em->mu, NULL);
    {
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* backoff waits ignore clock steps */
        pthread_cond_init(&em->cv, &ca);
        pthread_condattr_destroy(&ca);
    }
    err = WS_ERR_NOMEM;
    if (!(em->job_namespace = strdup(conf->events.job_namespace)) ||
        !(em->kafka_namespace = strdup(conf->events.kafka_namespace)))
        goto fail;
    em->c.events.job_namespace = em->job_namespace;
    em->c.events.kafka_namespace = em->kafka_namespace;
    if (kafka) {
        if (!(em->topic = strdup(conf->kafka_topic)))
            goto fail;
        em->c.kafka_topic = em->topic;
    } else {
        const char *ep = conf->endpoint ? conf->endpoint : "";
        n = strlen(conf->url);
        while (n > 0 && conf->url[n - 1] == '/')
            n--;
        while (*ep == '/')
            ep++;
        if (!(em->url = malloc(n + strlen(ep) + 2)))
            goto fail;
        snprintf(em->url, n + strlen(ep) + 2, "%.*s%s%s", (int)n, conf->url, *ep ? "/" : "", ep);
        if (conf->token && *conf->token) {
            n = strlen(conf->token) + sizeof "Authorization: Bearer ";
            if (!(em->auth = malloc(n)))
                goto fail;
            snprintf(em->auth, n, "Authorization: Bearer %s", conf->token);
        }
        em->c.url = em->url;
        em->c.token = NULL; /* only in em->auth, wiped at destroy */
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            err = ws_fail(WS_ERR_CONFIG, errbuf, errlen, "lineage: curl_global_init failed");
            goto fail;
        }
        if ((err = http_open(em, errbuf, errlen)))
            goto fail;
    }
    em->c.endpoint = NULL;
    if (pthread_create(&em->worker, NULL, worker, em)) {
        err = ws_fail(WS_ERR_NOMEM, errbuf, errlen, "lineage: cannot start the worker thread");
        goto fail;
    }
    em->started = true;
    (void)pthread_setname_np(em->worker, "ws:lineage"); /* for top -H, perf, gdb */
    *out = em;
    return WS_OK;
fail:
    if (err == WS_ERR_NOMEM && errbuf && !*errbuf)
        ws_fail(err, errbuf, errlen, "lineage: out of memory");
    ws_lineage_emitter_destroy(em);
    return err;
}

static void wipe_free(char *s)
{
    if (s) {
        sodium_memzero(s, strlen(s));
        free(s);
    }
}

void ws_lineage_emitter_destroy(struct ws_lineage_emitter *em)
{
    if (!em)
        return;
    ws_lineage_emitter_stop(em, 0);
    pthread_mutex_lock(&em->mu);
    drop_rest(em); /* nothing when the worker ran; the queue of one that never started */
    sweep(em, true);
    assert(em->outstanding == 0 && em->windows == 0); /* L1: every event counted */
    pthread_mutex_unlock(&em->mu);
    if (em->curl)
        curl_easy_cleanup(em->curl);
    for (struct curl_slist *h = em->headers; h; h = h->next)
        sodium_memzero(h->data, strlen(h->data)); /* one holds the bearer token */
    curl_slist_free_all(em->headers);
    wipe_free(em->auth);
    free(em->url);
    free(em->topic);
    free(em->job_namespace);
    free(em->kafka_namespace);
    pthread_cond_destroy(&em->cv);
    pthread_mutex_destroy(&em->mu);
    free(em);
}
