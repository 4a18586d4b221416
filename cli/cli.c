/*
 * cli.c — the small commands: keygen, verify, config; and the helpers every command shares
 * (ws_cli_*, cli/cli.h). Argument parsing is strict (unknown options are usage errors, exit 2)
 * because scripts rely on this surface (FORMAT.md §10).
 */
#include "cli/cli.h"
#include "kafka/kafka.h"
#include "sinks/sink.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Value of "--name VALUE" or "--name=VALUE" at argv[*i]; advances *i. NULL if not this option. */
const char *ws_cli_opt(int argc, char **argv, int *i, const char *name, bool *missing)
{
    size_t n = strlen(name);

    if (strncmp(argv[*i], name, n) != 0)
        return NULL;
    if (argv[*i][n] == '=')
        return argv[*i] + n + 1;
    if (argv[*i][n] != '\0')
        return NULL;
    if (*i + 1 >= argc) {
        *missing = true;
        return NULL;
    }
    return argv[++*i];
}

int ws_cmd_keygen(int argc, char **argv)
{
    const char *out = NULL, *v;
    bool missing = false;
    struct ws_key k;
    char errbuf[512];
    ws_err_t err;

    for (int i = 1; i < argc; i++) {
        if ((v = ws_cli_opt(argc, argv, &i, "--out", &missing)))
            out = v;
        else
            goto usage;
    }
    if (!out || missing)
        goto usage;
    if ((err = ws_key_generate(&k))) {
        fprintf(stderr, "windowseal keygen: %s\n", ws_strerror(err));
        return WS_EXIT_RUNTIME;
    }
    err = ws_key_save(out, &k, errbuf, sizeof errbuf);
    if (err) {
        ws_key_wipe(&k);
        fprintf(stderr, "windowseal keygen: %s\n", errbuf);
        return err == WS_ERR_EXISTS_DIFFERENT ? WS_EXIT_USAGE : WS_EXIT_RUNTIME;
    }
    printf("%s\n", k.keyid);
    fprintf(stderr, "wrote %s (private, 0600) and %s.pub; keyid %s\n", out, out, k.keyid);
    ws_key_wipe(&k);
    return WS_EXIT_OK;
usage:
    fprintf(stderr, "usage: windowseal keygen --out PATH\n");
    return WS_EXIT_USAGE;
}

/* Load every --pubkey; on failure prints and returns false. */
bool ws_cli_load_pubkeys(const char *cmd, char **paths, size_t n, struct ws_key *keys)
{
    char errbuf[512];

    for (size_t i = 0; i < n; i++) {
        if (ws_key_load(paths[i], false, &keys[i], errbuf, sizeof errbuf)) {
            fprintf(stderr, "windowseal %s: %s\n", cmd, errbuf);
            return false;
        }
        /* Verification needs only the public half. */
        if (keys[i].has_secret) {
            uint8_t pk[32];
            char id[WS_KEYID_LEN + 1];
            memcpy(pk, keys[i].pk, 32);
            memcpy(id, keys[i].keyid, sizeof id);
            ws_key_wipe(&keys[i]);
            memcpy(keys[i].pk, pk, 32);
            memcpy(keys[i].keyid, id, sizeof id);
        }
    }
    return true;
}

int ws_cmd_verify(int argc, char **argv)
{
    const char *envpath = NULL, *evidence = NULL, *v;
    char *pubpaths[16];
    size_t npub = 0;
    bool missing = false;
    struct ws_key keys[16];
    struct ws_verified ver;
    char errbuf[1024], root[WS_HASH_HEX_LEN + 1], *env = NULL;
    size_t envlen;
    ws_err_t err;
    int rc;

    for (int i = 1; i < argc; i++) {
        if ((v = ws_cli_opt(argc, argv, &i, "--pubkey", &missing))) {
            if (npub == 16)
                goto usage;
            pubpaths[npub++] = (char *)v;
        } else if ((v = ws_cli_opt(argc, argv, &i, "--evidence", &missing))) {
            evidence = v;
        } else if (argv[i][0] == '-' || envpath || missing) {
            goto usage;
        } else {
            envpath = argv[i];
        }
    }
    if (!envpath || !npub || missing)
        goto usage;
    if (!ws_cli_load_pubkeys("verify", pubpaths, npub, keys))
        return WS_EXIT_USAGE;
    err = ws_file_read(envpath, WS_ENVELOPE_MAX, &env, &envlen, errbuf, sizeof errbuf);
    if (err) {
        fprintf(stderr, "windowseal verify: %s\n", errbuf);
        return WS_EXIT_USAGE;
    }
    err = ws_verify_envelope(env, envlen, keys, npub, evidence, &ver, errbuf, sizeof errbuf);
    free(env);
    if (err == WS_ERR_NOT_FOUND || err == WS_ERR_IO || err == WS_ERR_NOMEM) {
        printf("error: %s\n", errbuf);
        return err == WS_ERR_NOMEM ? WS_EXIT_RUNTIME : WS_EXIT_USAGE;
    }
    if (err) {
        printf("invalid: %s: %s\n", envpath, errbuf);
        return WS_EXIT_VERIFY;
    }
    ws_hex_encode(ver.root, WS_HASH_LEN, root);
    printf("valid: %s window %s, %llu records, root %s, chain length %llu, signed by %s%s\n",
           envpath, ver.window_id, (unsigned long long)ver.leaf_count, root,
           (unsigned long long)ver.chain_length, keys[ver.key_index].keyid,
           ver.evidence_checked ? ", evidence recomputed" : "");
    rc = WS_EXIT_OK;
    return rc;
usage:
    fprintf(stderr, "usage: windowseal verify ENVELOPE --pubkey PUB [--pubkey PUB]... "
                    "[--evidence FILE]\n");
    return WS_EXIT_USAGE;
}

/*
 * `-c CONFIG` (or WINDOWSEAL_CONFIG) and `--set KEY=VALUE`... from argv[first..argc), loaded.
 * Returns WS_EXIT_OK with *out, or the exit status after printing usage or the error.
 */
int ws_cli_config(int argc, char **argv, int first, const char *cmd, const char *usage,
                  struct ws_config **out)
{
    const char *path = NULL, *v, *sets[64];
    size_t nsets = 0;
    bool missing = false;
    char errbuf[1024];

    for (int i = first; i < argc; i++) {
        if ((v = ws_cli_opt(argc, argv, &i, "-c", &missing)) ||
            (v = ws_cli_opt(argc, argv, &i, "--config", &missing)))
            path = v;
        else if ((v = ws_cli_opt(argc, argv, &i, "--set", &missing)) && nsets < 64)
            sets[nsets++] = v;
        else
            missing = true;
    }
    if (!path)
        path = getenv("WINDOWSEAL_CONFIG");
    if (!path || missing) {
        fprintf(stderr, "usage: %s\n", usage);
        return WS_EXIT_USAGE;
    }
    if (ws_config_load(path, sets, nsets, ws_sink_types(), out, errbuf, sizeof errbuf)) {
        fprintf(stderr, "windowseal %s: %s\n", cmd, errbuf);
        return WS_EXIT_USAGE;
    }
    return WS_EXIT_OK;
}

int ws_cmd_config(int argc, char **argv)
{
    struct ws_config *c = NULL;
    char errbuf[1024];
    int rc;

    if (argc == 2 && !strcmp(argv[1], "docs")) {
        ws_config_write_docs(stdout, ws_sink_types());
        return WS_EXIT_OK;
    }
    if (argc < 2 || strcmp(argv[1], "check") != 0)
        goto usage;
    rc = ws_cli_config(argc, argv, 2, "config",
                       "windowseal config check -c CONFIG [--set KEY=VALUE]...", &c);
    if (rc)
        return rc;
    {
        struct ws_kafka_conf kc = {c->bootstrap, c->group_id, (const char *const *)c->kafka_props,
                                   c->nkafka_props};
        if (ws_kafka_conf_check(&kc, errbuf, sizeof errbuf)) {
            fprintf(stderr, "windowseal config: %s: kafka.properties: %s\n", c->source, errbuf);
            ws_config_free(c);
            return WS_EXIT_USAGE;
        }
    }
    printf("ok: %s (%zu sinks)\n", c->source, c->nsinks);
    ws_config_free(c);
    return WS_EXIT_OK;
usage:
    fprintf(stderr, "usage: windowseal config check -c CONFIG [--set KEY=VALUE]... | "
                    "windowseal config docs\n");
    return WS_EXIT_USAGE;
}
