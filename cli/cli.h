/*
 * engine/auditor.h — private to engine/: what audit.c, prove.c and report.c share.
 *
 * A query directory of a file sink is read as two sorted lists of batch ids (envelopes and
 * evidence archives) rather than as a directory listing of names: 8 bytes per window, the only
 * state of an audit that grows with the chain. The report writer turns per-window results into
 * the text lines, the JSON object and the HTML page of `windowseal audit` as they happen.
 */
#ifndef WS_ENGINE_AUDITOR_H
#define WS_ENGINE_AUDITOR_H

#include "engine/internal.h"

#include <stdio.h>

/* ------------------------------------------------------------------------------------------ */
/* Listing a query directory (audit.c).                                                         */

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
/* The audit report (report.c): JSON and HTML, written as the audit goes.                      */

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

#endif /* WS_ENGINE_AUDITOR_H */
