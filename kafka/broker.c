/*
 * kafka/broker.c — the embedded broker: librdkafka's mock cluster (one broker, in memory) behind
 * a small API (the `windowseal broker` command on top of it is cli/broker.c).
 *
 * DESIGN. The mock cluster needs an rd_kafka_t to hang off ("owner"); we create a bare producer
 * for that. The cluster runs on its own thread, so every function here may be called from any
 * thread. Its limits in librdkafka 2.0.2, found by reading and testing it:
 *
 *   - Each partition keeps at most 5 MiB / 100000 batches; older batches are dropped and the low
 *     watermark moves (the tests use that to produce "records no longer retained").
 *   - Topics auto-created by clients (the mock creates a topic on any Metadata request that names
 *     it, even from a consumer with allow.auto.create.topics=false) get 4 partitions: a fixed
 *     default, with no API to change it. So --partitions N pre-creates the default topics
 *     with N partitions and is the default for ws_kafka_broker_create_topic().
 *   - The listener is always bound to 127.0.0.1 on a kernel-chosen port; 2.0.2 has no API for a
 *     fixed address. A TCP forwarder on HOST:PORT would not be enough: Kafka clients use the
 *     bootstrap address only to fetch metadata, then connect to the broker's *advertised* address,
 *     which would still be the ephemeral port (fine on the same host, broken anywhere else).
 *
 * Fixed address: the mock advertises exactly the address its socket is bound to, so we give it
 * a socket that is already bound where we want. We bind HOST:PORT ourselves first (a port in use
 * is then a clean error: when the mock's own bind fails, 2.0.2 trips an assertion in its cleanup
 * and aborts the process). During rd_kafka_mock_cluster_new() — which creates the listener
 * synchronously on the calling thread — a thread-local request is armed, and our definition of
 * bind(2) (librdkafka's call resolves to it: the executable's symbol comes first) turns that
 * thread's one bind of 127.0.0.1:0 into dup2(our socket, its socket). Every other bind in the
 * process, on any thread or at any other time, goes straight to the system call unchanged.
 */
#include "kafka/kafka_int.h"

#include <librdkafka/rdkafka_mock.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#define BROKER_ID 1 /* the mock numbers its brokers from 1 */

struct ws_kafka_broker {
    rd_kafka_t *owner;
    rd_kafka_mock_cluster_t *mc;
    int partitions;
    char bootstrap[64];
};

/* ------------------------------------------------------------------------------------------ */
/* bind(2) redirection, armed only on the thread creating a mock cluster                          */

static _Thread_local int bind_sock = -1; /* >= 0: the pre-bound socket to hand over */

int bind(int fd, const struct sockaddr *addr, socklen_t len)
{
    struct sockaddr_in sin;
    int mine = bind_sock;

    if (mine >= 0 && addr && len >= sizeof(sin) && addr->sa_family == AF_INET) {
        memcpy(&sin, addr, sizeof(sin));
        if (sin.sin_port == 0 && sin.sin_addr.s_addr == htonl(INADDR_LOOPBACK)) {
            bind_sock = -1; /* one listener per cluster: hand over once */
            if (dup2(mine, fd) < 0)
                return -1;
            (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
            return 0;
        }
    }
    return (int)syscall(SYS_bind, fd, addr, len);
}

/* Our own listening address, bound now so that a busy port is an error, not an abort. */
static int bind_listener(const struct sockaddr_in *want, const char *listen, char *errbuf,
                         size_t errlen)
{
    int s, on = 1;

    if ((s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
        ws_fail(WS_ERR_IO, errbuf, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    if (setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) < 0 ||
        syscall(SYS_bind, s, (const struct sockaddr *)want, sizeof(*want)) < 0) {
        ws_fail(WS_ERR_IO, errbuf, errlen, "cannot listen on %s: %s", listen, strerror(errno));
        close(s);
        return -1;
    }
    return s;
}

/* "a.b.c.d:PORT" or "localhost:PORT" -> sin. */
static ws_err_t parse_listen(const char *listen, struct sockaddr_in *sin, char *errbuf,
                             size_t errlen)
{
    const char *colon = listen ? strrchr(listen, ':') : NULL;
    char host[64], *end;
    unsigned long port;

    if (!colon || colon == listen || (size_t)(colon - listen) >= sizeof(host) || !colon[1])
        return ws_fail(WS_ERR_INVALID, errbuf, errlen, "listen address \"%s\" is not HOST:PORT",
                       listen ? listen : "");
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
    errno = 0;
    port = strtoul(colon + 1, &end, 10);
    if (*end || errno || port > 65535 || colon[1] == '-' || colon[1] == '+')
        return ws_fail(WS_ERR_INVALID, errbuf, errlen, "listen port \"%s\" is not 0..65535",
                       colon + 1);
    memset(sin, 0, sizeof(*sin));
    sin->sin_family = AF_INET;
    sin->sin_port = htons((uint16_t)port);
    if (!strcmp(host, "localhost"))
        sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    else if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
        return ws_fail(WS_ERR_INVALID, errbuf, errlen,
                       "listen host \"%s\" is not an IPv4 address (the mock broker is IPv4 only)",
                       host);
    return WS_OK;
}

ws_err_t ws_kafka_broker_check_listen(const char *listen, char *errbuf, size_t errlen)
{
    struct sockaddr_in sin;

    return parse_listen(listen, &sin, errbuf, errlen);
}

/* ------------------------------------------------------------------------------------------ */

struct ws_kafka_broker *ws_kafka_broker_new(const char *listen, int partitions, char *errbuf,
                                            size_t errlen)
{
    struct ws_kafka_broker *b;
    struct sockaddr_in want;
    int mine = -1;
    bool handed;
    rd_kafka_conf_t *kc;
    const char *bs;
    char why[512];

    if (partitions < 0 || partitions > 100000) {
        ws_fail(WS_ERR_INVALID, errbuf, errlen, "partitions %d out of range", partitions);
        return NULL;
    }
    if (listen && parse_listen(listen, &want, errbuf, errlen))
        return NULL;
    if (!(b = calloc(1, sizeof(*b)))) {
        ws_fail(WS_ERR_NOMEM, errbuf, errlen, "out of memory");
        return NULL;
    }
    b->partitions = partitions ? partitions : 1;
    if (!(kc = rd_kafka_conf_new())) {
        ws_fail(WS_ERR_NOMEM, errbuf, errlen, "out of memory");
        goto out_free_broker;
    }
    /* The owner never connects anywhere: silence its "no bootstrap.servers" notice. Its
     * socket settings are the mock's: without TCP_NODELAY, small responses queued behind a
     * waiting Fetch meet the client's delayed ACK and every read costs ~40 ms more. */
    if (ws_kafka_int_set(kc, "log_level", "3", errbuf, errlen) ||
        ws_kafka_int_set(kc, "socket.nagle.disable", "true", errbuf, errlen)) {
        rd_kafka_conf_destroy(kc);
        goto out_free_broker;
    }
    if (!(b->owner = rd_kafka_new(RD_KAFKA_PRODUCER, kc, why, sizeof(why)))) {
        rd_kafka_conf_destroy(kc);
        ws_fail(WS_ERR_KAFKA, errbuf, errlen, "mock broker owner: %s", why);
        goto out_free_broker;
    }
    if (listen && (mine = bind_listener(&want, listen, errbuf, errlen)) < 0)
        goto out_destroy_owner;
    bind_sock = mine;
    b->mc = rd_kafka_mock_cluster_new(b->owner, 1);
    handed = mine >= 0 && bind_sock < 0;
    bind_sock = -1;
    if (mine >= 0)
        close(mine); /* the mock holds its own descriptor of it now */
    if (!b->mc) {
        ws_fail(WS_ERR_IO, errbuf, errlen, "cannot start the mock broker on %s",
                listen ? listen : "127.0.0.1");
        goto out_destroy_owner;
    }
    if (mine >= 0 && !handed) {
        /* This librdkafka did not bind as expected: the broker is somewhere else. */
        ws_fail(WS_ERR_UNSUPPORTED, errbuf, errlen,
                "this librdkafka's mock broker cannot be moved to %s", listen);
        goto out_destroy_cluster;
    }
    bs = rd_kafka_mock_cluster_bootstraps(b->mc);
    if (!bs || strlen(bs) >= sizeof(b->bootstrap)) {
        ws_fail(WS_ERR_KAFKA, errbuf, errlen, "mock broker has no usable bootstrap address");
        goto out_destroy_cluster;
    }
    strcpy(b->bootstrap, bs);
    return b;

out_destroy_cluster:
    rd_kafka_mock_cluster_destroy(b->mc);
out_destroy_owner:
    rd_kafka_destroy(b->owner);
out_free_broker:
    free(b);
    return NULL;
}

void ws_kafka_broker_destroy(struct ws_kafka_broker *b)
{
    if (!b)
        return;
    rd_kafka_mock_cluster_destroy(b->mc);
    rd_kafka_destroy(b->owner);
    free(b);
}

const char *ws_kafka_broker_bootstrap(const struct ws_kafka_broker *b)
{
    return b->bootstrap;
}

ws_err_t ws_kafka_broker_create_topic(struct ws_kafka_broker *b, const char *topic, int partitions,
                                      char *errbuf, size_t errlen)
{
    rd_kafka_resp_err_t kerr;

    if (!topic || !topic[0] || partitions < 0 || partitions > 100000)
        return ws_fail(WS_ERR_INVALID, errbuf, errlen, "invalid topic creation");
    kerr = rd_kafka_mock_topic_create(b->mc, topic, partitions ? partitions : b->partitions, 1);
    if (kerr)
        return ws_fail(WS_ERR_KAFKA, errbuf, errlen, "create topic %s: %s", topic,
                       rd_kafka_err2str(kerr));
    return WS_OK;
}

ws_err_t ws_kafka_broker_set_down(struct ws_kafka_broker *b, bool down)
{
    rd_kafka_resp_err_t kerr = down ? rd_kafka_mock_broker_set_down(b->mc, BROKER_ID)
                                    : rd_kafka_mock_broker_set_up(b->mc, BROKER_ID);

    return kerr ? WS_ERR_KAFKA : WS_OK;
}

static const struct {
    const char *name;
    int16_t key;
} api_keys[] = {
    {"Produce", 0},      {"Fetch", 1},       {"ListOffsets", 2},      {"Metadata", 3},
    {"OffsetCommit", 8}, {"OffsetFetch", 9}, {"FindCoordinator", 10}, {"JoinGroup", 11},
    {"Heartbeat", 12},   {"SyncGroup", 14},  {"InitProducerId", 22},
};

#define NAPI (sizeof(api_keys) / sizeof(api_keys[0]))

/* Index of api in api_keys, NAPI if unknown. */
static size_t api_index(const char *api)
{
    size_t i;

    for (i = 0; api && i < NAPI; i++)
        if (!strcmp(api, api_keys[i].name))
            break;
    return api ? i : NAPI;
}

ws_err_t ws_kafka_broker_push_errors(struct ws_kafka_broker *b, const char *api, int count,
                                     int errcode)
{
    rd_kafka_resp_err_t *errs;
    size_t i = api_index(api);
    int n;

    if (i == NAPI || count <= 0 || count > 1000000)
        return WS_ERR_INVALID;
    if (!(errs = malloc((size_t)count * sizeof(*errs))))
        return WS_ERR_NOMEM;
    for (n = 0; n < count; n++)
        errs[n] = (rd_kafka_resp_err_t)errcode;
    rd_kafka_mock_push_request_errors_array(b->mc, api_keys[i].key, (size_t)count, errs);
    free(errs);
    return WS_OK;
}

ws_err_t ws_kafka_broker_clear_errors(struct ws_kafka_broker *b, const char *api)
{
    size_t i = api_index(api);

    if (!b || (api && i == NAPI))
        return WS_ERR_INVALID;
    for (size_t k = 0; k < NAPI; k++)
        if (!api || k == i)
            rd_kafka_mock_clear_request_errors(b->mc, api_keys[k].key);
    return WS_OK;
}

ws_err_t ws_kafka_broker_set_topic_error(struct ws_kafka_broker *b, const char *topic, int errcode)
{
    if (!topic || !topic[0])
        return WS_ERR_INVALID;
    rd_kafka_mock_topic_set_error(b->mc, topic, (rd_kafka_resp_err_t)errcode);
    return WS_OK;
}
