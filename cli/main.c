/*
 * main.c — the windowseal command line (FORMAT.md §10): dispatch only. Each command lives in its own
 * file and returns its exit status (0 ok, 1 verification failed, 2 usage, 3 runtime failure).
 */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *usage;
} cmds[] = {
    {"run", ws_cmd_run, "run -c CONFIG [--set KEY=VALUE]...   the engine"},
    {"demo", ws_cmd_demo,
     "demo [--out DIR]                     self-contained run on an embedded broker"},
    {"broker", ws_cmd_broker,
     "broker [--listen HOST:PORT] [--partitions N] [--topic NAME:PARTITIONS]...   embedded "
     "Kafka-protocol broker"},
    {"keygen", ws_cmd_keygen, "keygen --out PATH                    PATH (private) and PATH.pub"},
    {"verify", ws_cmd_verify, "verify ENVELOPE --pubkey PUB [--evidence FILE]"},
    {"audit", ws_cmd_audit,
     "audit DIR --pubkey PUB [--pubkey PUB2]...   every chain under a file-sink directory"},
    {"prove", ws_cmd_prove,
     "prove record|consistency|check|checkpoint|vkey ...   Merkle proofs (docs/AUDITING.md)"},
    {"config", ws_cmd_config, "config check -c CONFIG [--set KEY=VALUE]... | config docs"},
};

static void usage(FILE *f)
{
    fprintf(f,
            "windowseal %s — signed, tamper-evident receipts for Spark micro-batches\n\nusage:\n",
            WS_VERSION);
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        fprintf(f, "  windowseal %s\n", cmds[i].usage);
    fprintf(f, "\nexit status: 0 success, 1 verification failed, 2 usage or configuration error, "
               "3 runtime failure\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return WS_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        printf("windowseal %s\n", WS_VERSION);
        return WS_EXIT_OK;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return WS_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        if (strcmp(argv[1], cmds[i].name) != 0)
            continue;
        if (argc > 2 && (!strcmp(argv[2], "--help") || !strcmp(argv[2], "-h"))) {
            printf("usage: windowseal %s\n\nsee `man windowseal` or docs/ for details\n",
                   cmds[i].usage);
            return WS_EXIT_OK;
        }
        return cmds[i].fn(argc - 1, argv + 1);
    }
    fprintf(stderr, "windowseal: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return WS_EXIT_USAGE;
}
