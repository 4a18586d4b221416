/*
 * cli/cli.h — the windowseal command line (FORMAT.md §10): the commands and what they share.
 *
 *   ws_cmd_*      one per command: the arguments after the command name in, exit status out
 *                 (main.c dispatches)
 *   ws_cli_*      option parsing, -c CONFIG / --set, public keys: shared by the commands
 *   ws_audit_*    listing a file sink's query directory (audit.c; prove.c uses it too)
 *   ws_report_*   the audit's JSON and HTML reports (report.c)
 *
 * A query directory of a file sink is read as two sorted lists of batch ids (envelopes and
 * evidence archives) rather than as a directory listing of names: 8 bytes per window, the only
 * state of an audit that grows with the chain. The report writer turns per-window results into
 * the text lines, the JSON object and the HTML page of `windowseal audit` as they happen.
 */
#ifndef WS_CLI_H
#define WS_CLI_H

#include "engine/engine.h"

#include <stdio.h>

/* Exit statuses (FORMAT.md §10). */
enum { WS_EXIT_OK = 0, WS_EXIT_VERIFY = 1, WS_EXIT_USAGE = 2, WS_EXIT_RUNTIME = 3 };

/* ------------------------------------------------------------------------------------------ */
/* Commands: each takes the arguments after the command name and returns an exit status.          */

int ws_cmd_keygen(int argc, char **argv); /* cli.c */
int ws_cmd_verify(int argc, char **argv); /* cli.c */
int ws_cmd_config(int argc, char **argv); /* cli.c */
int ws_cmd_run(int argc, char **argv);
int ws_cmd_demo(int argc, char **argv);
int ws_cmd_audit(int argc, char **argv);
int ws_cmd_prove(int argc, char **argv); /* Merkle proofs and checkpoints */
/*
 * `windowseal broker [--listen HOST:PORT] [--partitions N] [--topic NAME:PARTITIONS]...`
 * (broker.c): the embedded broker of kafka/kafka.h as its own process. Prints the bootstrap
 * address as the first line of stdout, pre-creates windowseal.batches, windowseal.batches.dlq
 * and windowseal.attestations with N partitions (default 1) and each --topic with its own,
 * serves until SIGTERM or SIGINT. 0 after a signal, 2 on bad usage, 3 if the broker cannot
 * start (e.g. the port is taken).
 */
int ws_cmd_broker(int argc, char **argv);

/* ------------------------------------------------------------------------------------------ */
/* Shared by the commands (cli.c).                                                                */

/* "--name VALUE" / "--name=VALUE" at argv[*i] (advances *i); NULL if argv[*i] is not it. */
const char *ws_cli_opt(int argc, char **argv, int *i, const char *name, bool *missing);
/* -c CONFIG / WINDOWSEAL_CONFIG and --set from argv[first..]: 0 with *out, else an exit status. */
int ws_cli_config(int argc, char **argv, int first, const char *cmd, const char *usage,
                  struct ws_config **out);
/* Load public keys (a private key file is accepted and reduced to its public half). */
bool ws_cli_load_pubkeys(const char *cmd, char **paths, size_t n, struct ws_key *keys);

/* ------------------------------------------------------------------------------------------ */
/* Listing a query directory (audit.c).                                                           */

struct ws_batch_list {
    int64_t *envelopes; /* batch ids of <batch20>.dsse.json, ascending */
    size_t nenvelopes;
    int64_t *evidence; /* batch ids of <batch20>.evidence.lz4, ascending */
    size_t nevidence;
    char odd[256]; /* the first *.dsse.json whose name is not <batch20>.dsse.json, if any */
    size_t nodd;
};
ws_err_t ws_audit_list(const char *qdir, struct ws_batch_list *out, char *errbuf,
                       size_t errlen) WS_MUST_CHECK;
void ws_audit_list_free(struct ws_batch_list *l);
bool ws_audit_list_has_evidence(const struct ws_batch_list *l, int64_t batch);

/* ------------------------------------------------------------------------------------------ */
/* The audit report (report.c): JSON and HTML, written as the audit goes.                         */

enum ws_win_status {
    WS_WIN_OK,        /* verified and linked */
    WS_WIN_BAD,       /* failed a check: reason given */
    WS_WIN_MISSING,   /* no envelope for a batch the chain needs */
    WS_WIN_GAP,       /* batches declared skipped by the next window */
    WS_WIN_UNCHECKED, /* after the chain broke: verified alone, not linked */
};

struct ws_report;
/* json: where the JSON object goes (NULL: none); html_path: NULL for no page. The text lines
 * are audit.c's own. */
ws_err_t ws_report_open(struct ws_report **out, FILE *json, const char *html_path,
                        const char *audit_dir, char *errbuf, size_t errlen) WS_MUST_CHECK;
void ws_report_query_begin(struct ws_report *r, const char *qid);
/* One timeline slot. batch_until > batch for a gap/missing range [batch, batch_until). */
void ws_report_window(struct ws_report *r, enum ws_win_status st, int64_t batch,
                      int64_t batch_until, uint64_t records, const char *reason, bool have_envelope,
                      bool have_evidence);
struct ws_query_summary {
    bool ok;
    uint64_t windows, records, gaps_declared, bad;
    int64_t first_batch, last_batch;
    uint64_t chain_length;
    char log_root[WS_HASH_HEX_LEN + 1];
    char first_bad[1400];  /* "<file> (window <id>): reason", empty if ok */
    char checkpoint[1400]; /* what the checkpoint check said, empty if there is none */
    bool checkpoint_present, checkpoint_ok;
};
void ws_report_query_end(struct ws_report *r, const struct ws_query_summary *s);
/* Final verdict; closes everything. Returns an error if the HTML could not be written. */
ws_err_t ws_report_close(struct ws_report *r, int good, int bad, char *errbuf,
                         size_t errlen) WS_MUST_CHECK;

#endif /* WS_CLI_H */
