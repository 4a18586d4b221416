/*
 * broker.c — `windowseal broker [--listen HOST:PORT] [--partitions N] [--topic NAME:PARTITIONS]`
 * (--topic repeatable): the embedded Kafka-protocol broker (kafka/kafka.h, librdkafka's mock
 * cluster) as a process of its own, for local development and the integration tests.
 *
 * The default topics (docs/OPERATIONS.md "Topics") are created up front with --partitions partitions, and each --topic
 * with its own count, because topics that clients auto-create get the mock cluster's fixed 4.
 * The bootstrap address is the first line of stdout (scripts read it), then the process serves
 * until SIGTERM or SIGINT. The stop signals are blocked before the broker starts any thread, so
 * every librdkafka thread inherits the mask and sigwait() here is their only receiver.
 */
#include "cli/cli.h"
#include "kafka/kafka.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: windowseal broker [--listen HOST:PORT] [--partitions N] [--topic NAME:PARTITIONS]...\n"
    "  --listen HOST:PORT       IPv4 address to listen on and advertise\n"
    "                           (default 127.0.0.1, any free port)\n"
    "  --partitions N           partitions of the pre-created windowseal topics\n"
    "                           (default 1)\n"
    "  --topic NAME:PARTITIONS  pre-create a data topic with that many partitions\n"
    "                           (repeatable; e.g. --topic orders:12). Topics that\n"
    "                           clients auto-create get the mock cluster's fixed 4.\n"
    "Prints the bootstrap address as the first line of stdout and serves\n"
    "until SIGTERM or SIGINT.\n";

#define MAX_TOPIC_OPTS 256

struct topic_opt {
    char name[250];
    int partitions;
};

/* NAME:PARTITIONS, NAME a legal Kafka topic name ([A-Za-z0-9._-]{1,249}, not "." or ".."). */
static bool parse_topic_opt(const char *v, struct topic_opt *t)
{
    const char *colon = strrchr(v, ':');
    size_t len = colon ? (size_t)(colon - v) : 0;
    char *end;
    long n;

    if (!colon || len == 0 || len >= sizeof t->name || (len == 1 && v[0] == '.') ||
        (len == 2 && v[0] == '.' && v[1] == '.'))
        return false;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)v[i]) && v[i] != '.' && v[i] != '_' && v[i] != '-')
            return false;
    errno = 0;
    n = strtol(colon + 1, &end, 10);
    if (!colon[1] || *end || errno || n < 1 || n > 100000)
        return false;
    memcpy(t->name, v, len);
    t->name[len] = '\0';
    t->partitions = (int)n;
    return true;
}

static bool topic_given(const struct topic_opt *topics, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(topics[i].name, name))
            return true;
    return false;
}

/* The default topic names (docs/OPERATIONS.md "Topics"), created up front so they get --partitions partitions. */
static const char *const default_topics[] = {
    "windowseal.batches",
    "windowseal.batches.dlq",
    "windowseal.attestations",
};

int ws_cmd_broker(int argc, char **argv)
{
    static struct topic_opt topics[MAX_TOPIC_OPTS];
    const char *listen = NULL, *v;
    struct ws_kafka_broker *b;
    int i, sig, partitions = 1;
    char errbuf[512];
    size_t t, ntopics = 0;
    sigset_t set;

    for (i = 1; i < argc; i++) {
        bool missing = false;

        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs(usage, stdout);
            return WS_EXIT_OK;
        } else if ((v = ws_cli_opt(argc, argv, &i, "--listen", &missing))) {
            if (ws_kafka_broker_check_listen(v, errbuf, sizeof(errbuf))) {
                fprintf(stderr, "windowseal broker: %s\n%s", errbuf, usage);
                return WS_EXIT_USAGE;
            }
            listen = v;
        } else if ((v = ws_cli_opt(argc, argv, &i, "--partitions", &missing))) {
            char *end;
            long n;

            errno = 0;
            n = strtol(v, &end, 10);
            if (!*v || *end || errno || n < 1 || n > 100000) {
                fprintf(stderr, "windowseal broker: --partitions \"%s\" is not 1..100000\n%s", v,
                        usage);
                return WS_EXIT_USAGE;
            }
            partitions = (int)n;
        } else if ((v = ws_cli_opt(argc, argv, &i, "--topic", &missing))) {
            if (ntopics == MAX_TOPIC_OPTS) {
                fprintf(stderr, "windowseal broker: more than %d --topic options\n",
                        MAX_TOPIC_OPTS);
                return WS_EXIT_USAGE;
            }
            if (!parse_topic_opt(v, &topics[ntopics])) {
                fprintf(stderr,
                        "windowseal broker: --topic \"%s\" is not NAME:PARTITIONS (a Kafka topic "
                        "name of [A-Za-z0-9._-], partitions 1..100000)\n%s",
                        v, usage);
                return WS_EXIT_USAGE;
            }
            if (topic_given(topics, ntopics, topics[ntopics].name)) {
                fprintf(stderr, "windowseal broker: --topic %s given twice\n",
                        topics[ntopics].name);
                return WS_EXIT_USAGE;
            }
            ntopics++;
        } else {
            fprintf(stderr, "windowseal broker: %s \"%s\"\n%s",
                    missing ? "missing value for" : "unknown argument", argv[i], usage);
            return WS_EXIT_USAGE;
        }
    }

    /* Block the stop signals before any thread exists, so that every librdkafka thread
     * inherits the mask and sigwait() below is the only receiver. */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    if (!(b = ws_kafka_broker_new(listen, partitions, errbuf, sizeof(errbuf)))) {
        fprintf(stderr, "windowseal broker: %s\n", errbuf);
        return WS_EXIT_RUNTIME;
    }
    /* a --topic naming a windowseal topic sets its partitions instead of --partitions */
    for (t = 0; t < sizeof(default_topics) / sizeof(default_topics[0]); t++) {
        if (topic_given(topics, ntopics, default_topics[t]))
            continue;
        if (ws_kafka_broker_create_topic(b, default_topics[t], partitions, errbuf,
                                         sizeof(errbuf))) {
            fprintf(stderr, "windowseal broker: %s\n", errbuf);
            ws_kafka_broker_destroy(b);
            return WS_EXIT_RUNTIME;
        }
    }
    for (t = 0; t < ntopics; t++) {
        if (ws_kafka_broker_create_topic(b, topics[t].name, topics[t].partitions, errbuf,
                                         sizeof(errbuf))) {
            fprintf(stderr, "windowseal broker: %s\n", errbuf);
            ws_kafka_broker_destroy(b);
            return WS_EXIT_RUNTIME;
        }
    }
    printf("%s\n", ws_kafka_broker_bootstrap(b));
    fflush(stdout);
    fprintf(stderr,
            "windowseal broker: serving on %s (in memory; topics created by clients get 4 "
            "partitions)\n",
            ws_kafka_broker_bootstrap(b));
    while (sigwait(&set, &sig) != 0)
        ;
    fprintf(stderr, "windowseal broker: %s, stopping\n", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    ws_kafka_broker_destroy(b);
    return WS_EXIT_OK;
}
