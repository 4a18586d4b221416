/*
 * report.c — the machine and human reports of `windowseal audit`: one JSON object (--json) and
 * one self-contained HTML page (--html), both written while the audit runs.
 *
 * Memory does not grow with the number of windows:
 *   - JSON: one object per query, dumped when the query is done; its lists (declared gaps,
 *     missing windows, missing evidence, problems) are capped at LIST_CAP entries with a count
 *     of what was left out.
 *   - HTML: per query, table rows go to a temporary file as they come and timeline slots to a
 *     second one as fixed-size binary records; at the end of the query the section header (which
 *     needs the verdict), the SVG timeline (which needs the largest window to scale its bars) and
 *     the table are copied into the page. Past MAX_SLOTS slots, neighbouring windows share a bar
 *     (sum of records, worst status) so the page stays drawable for million-window chains.
 * The page has no external resources: inline CSS, inline SVG, a few lines of inline script that
 * only count what rendered (for tests and for a reader's sanity). The overall verdict is written
 * last and moved to the top with CSS `order`, so nothing has to be held back.
 */
#include "cli/cli.h"

#include <errno.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LIST_CAP 1000
#define MAX_SLOTS 2000

struct slot {
    int64_t batch, until;
    uint64_t records;
    uint32_t status;
    uint32_t count; /* windows in the slot */
};

struct ws_report {
    FILE *json;
    bool json_first;
    json_t *q; /* the query being audited */
    json_t *gaps, *missing, *noev, *problems;
    uint64_t dropped;
    FILE *html;
    char *html_path;
    char rel[PATH_MAX]; /* audit dir relative to the page's directory, percent-encoded */
    FILE *rows, *slots;
    uint64_t nslots, nrows, max_records;
    int nquery;
    char qid[160];
};

static const char *status_name(enum ws_win_status s)
{
    switch (s) {
    case WS_WIN_OK:
        return "ok";
    case WS_WIN_BAD:
        return "bad";
    case WS_WIN_MISSING:
        return "missing";
    case WS_WIN_GAP:
        return "gap";
    case WS_WIN_UNCHECKED:
        return "unchecked";
    }
    return "?";
}

static int severity(uint32_t s)
{
    static const int sev[] = {[WS_WIN_OK] = 0,
                              [WS_WIN_GAP] = 1,
                              [WS_WIN_UNCHECKED] = 2,
                              [WS_WIN_MISSING] = 3,
                              [WS_WIN_BAD] = 4};
    return s < sizeof sev / sizeof sev[0] ? sev[s] : 4;
}

static void html_escape(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        case '&':
            fputs("&amp;", f);
            break;
        case '"':
            fputs("&quot;", f);
            break;
        case '\'':
            fputs("&#39;", f);
            break;
        default:
            fputc(*s, f);
        }
    }
}

/* Percent-encode a path for an href: unreserved bytes and '/' stay. */
static void url_path(char *out, size_t cap, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;

    for (; *s && n + 4 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~' || c == '/') {
            out[n++] = (char)c;
        } else {
            out[n++] = '%';
            out[n++] = hex[c >> 4];
            out[n++] = hex[c & 15];
        }
    }
    out[n] = '\0';
}

/* Path of `target` relative to directory `base`, both absolute and canonical. */
static void relpath(const char *base, const char *target, char *out, size_t cap)
{
    size_t i = 0, common = 0, n = 0;

    /* Longest common prefix ending at a component boundary. */
    while (base[i] && target[i] && base[i] == target[i]) {
        i++;
        if (base[i] == '/' || base[i] == '\0')
            if (target[i] == '/' || target[i] == '\0')
                common = i;
    }
    if (!strcmp(base, "/"))
        common = 0;
    out[0] = '\0';
    for (const char *p = base + common; *p; p++)
        if (*p == '/' && n + 4 < cap) {
            memcpy(out + n, "../", 3);
            n += 3;
        }
    out[n] = '\0';
    if (target[common] == '/')
        common++;
    snprintf(out + n, cap - n, "%s", target + common);
    n = strlen(out);
    if (n == 0)
        snprintf(out, cap, ".");
    else if (out[n - 1] == '/')
        out[n - 1] = '\0';
}

static const char CSS[] =
    "body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#fafafa;color:#222}"
    "main{display:flex;flex-direction:column;max-width:1200px;margin:0 auto;padding:16px}"
    "#verdict{order:-1;font-size:20px;font-weight:600;padding:12px 16px;border-radius:6px;"
    "margin:8px 0 16px}"
    "#verdict.valid{background:#e3f5e6;color:#1b5e20}#verdict.invalid{background:#fde7e7;"
    "color:#b71c1c}"
    "header{order:-2}h1{font-size:22px;margin:8px 0}"
    "section.query{background:#fff;border:1px solid #ddd;border-radius:6px;padding:12px 16px;"
    "margin:8px 0}"
    "h2{font-size:16px;margin:4px 0;font-family:monospace}"
    ".badge{font-family:system-ui,sans-serif;font-size:12px;padding:2px 8px;border-radius:10px;"
    "margin-left:8px}"
    ".badge.valid{background:#c8e6c9}.badge.invalid{background:#ffcdd2}"
    ".firstbad{color:#b71c1c;font-weight:600}.checkpoint{color:#555}"
    "svg.timeline{width:100%;height:120px;background:#f4f4f4;border:1px solid #e0e0e0;"
    "display:block;margin:8px 0}"
    ".s-ok{fill:#43a047}.s-bad{fill:#e53935}.s-unchecked{fill:#fb8c00}"
    ".legend span{display:inline-block;margin-right:12px;font-size:12px}"
    ".legend i{display:inline-block;width:10px;height:10px;margin-right:4px;"
    "vertical-align:middle}"
    "table{border-collapse:collapse;width:100%;font-size:12px}"
    "th,td{border-bottom:1px solid #eee;padding:3px 6px;text-align:left;vertical-align:top}"
    "th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}"
    "tr.bad td,tr.missing td{background:#fff0f0}tr.gap td{color:#777;font-style:italic}"
    "tr.unchecked td{background:#fff8e1}"
    "details{margin-top:8px}.rendered{color:#999;font-size:11px}";

ws_err_t ws_report_open(struct ws_report **out, FILE *json, const char *html_path,
                        const char *audit_dir, char *errbuf, size_t errlen)
{
    struct ws_report *r = calloc(1, sizeof *r);
    char base[PATH_MAX], target[PATH_MAX], tmp[PATH_MAX], rel[PATH_MAX];

    if (!r)
        return WS_ERR_NOMEM;
    r->json = json;
    r->json_first = true;
    if (json)
        fputs("{\"queries\":[", json);
    if (html_path) {
        snprintf(tmp, sizeof tmp, "%s", html_path);
        if (!realpath(dirname(tmp), base) || !realpath(audit_dir, target)) {
            free(r);
            return ws_fail(WS_ERR_IO, errbuf, errlen, "--html %s: %s", html_path, strerror(errno));
        }
        relpath(base, target, rel, sizeof rel);
        url_path(r->rel, sizeof r->rel, rel);
        if (!(r->html_path = strdup(html_path)) || !(r->html = fopen(html_path, "w")) ||
            !(r->rows = tmpfile()) || !(r->slots = tmpfile())) {
            ws_err_t e =
                ws_fail(WS_ERR_IO, errbuf, errlen, "--html %s: %s", html_path, strerror(errno));
            if (r->html)
                fclose(r->html);
            if (r->rows)
                fclose(r->rows);
            free(r->html_path);
            free(r);
            return e;
        }
        fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
              "<meta name=\"viewport\" content=\"width=device-width\">"
              "<title>windowseal audit</title><style>",
              r->html);
        fputs(CSS, r->html);
        fputs("</style></head><body><main>\n<header><h1>windowseal audit</h1><p>directory <code>",
              r->html);
        html_escape(r->html, target);
        fputs("</code></p><p class=\"legend\"><span><i class=\"s-ok\" style=\"background:"
              "#43a047\"></i>verified</span><span><i style=\"background:#e53935\"></i>failed"
              "</span><span><i style=\"background:#fb8c00\"></i>after the first failure "
              "(checked alone)</span><span><i style=\"background:repeating-linear-gradient(45deg,"
              "#e53935 0 2px,#fff 2px 4px)\"></i>missing</span><span><i style=\"background:"
              "repeating-linear-gradient(45deg,#9e9e9e 0 2px,#fff 2px 4px)\"></i>declared gap"
              "</span></p></header>\n",
              r->html);
    }
    *out = r;
    return WS_OK;
}

void ws_report_query_begin(struct ws_report *r, const char *qid)
{
    snprintf(r->qid, sizeof r->qid, "%s", qid);
    r->dropped = 0;
    if (r->json) {
        r->q = json_object();
        r->gaps = json_array();
        r->missing = json_array();
        r->noev = json_array();
        r->problems = json_array();
    }
    if (r->html) {
        rewind(r->rows);
        rewind(r->slots);
        r->nslots = r->nrows = r->max_records = 0;
        r->nquery++;
    }
}

static void capped_append(struct ws_report *r, json_t *arr, json_t *v)
{
    if (json_array_size(arr) < LIST_CAP)
        json_array_append_new(arr, v);
    else {
        json_decref(v);
        r->dropped++;
    }
}

static void html_row(struct ws_report *r, enum ws_win_status st, int64_t batch, int64_t until,
                     uint64_t records, const char *reason, bool have_env, bool have_ev)
{
    FILE *f = r->rows;
    char name[256], href[PATH_MAX + 300];

    fprintf(f, "<tr class=\"%s\"><td class=\"n\">", status_name(st));
    if (until > batch + 1)
        fprintf(f, "%lld&ndash;%lld", (long long)batch, (long long)until - 1);
    else
        fprintf(f, "%lld", (long long)batch);
    fprintf(f, "</td><td>%s</td><td class=\"n\">", status_name(st));
    if (st != WS_WIN_GAP && st != WS_WIN_MISSING)
        fprintf(f, "%llu", (unsigned long long)records);
    fputs("</td><td>", f);
    for (int k = 0; k < 2; k++) {
        bool have = k ? have_ev : have_env;
        if (!have)
            continue;
        ws_object_name(r->qid, batch, k ? ".evidence.lz4" : ".dsse.json", name);
        snprintf(href, sizeof href, "%s/", r->rel);
        url_path(href + strlen(href), sizeof href - strlen(href), name);
        fprintf(f, "%s<a href=\"", k && have_env ? " " : "");
        html_escape(f, href);
        fprintf(f, "\">%s</a>", k ? "evidence" : "envelope");
    }
    fputs("</td><td>", f);
    html_escape(f, reason ? reason : "");
    fputs("</td></tr>\n", f);
    r->nrows++;
}

void ws_report_window(struct ws_report *r, enum ws_win_status st, int64_t batch,
                      int64_t batch_until, uint64_t records, const char *reason, bool have_envelope,
                      bool have_evidence)
{
    if (batch_until <= batch)
        batch_until = batch + 1;
    if (r->json) {
        if (st == WS_WIN_GAP)
            capped_append(r, r->gaps,
                          json_pack("{sIsI}", "fromBatchId", (json_int_t)batch, "untilBatchId",
                                    (json_int_t)batch_until));
        if (st == WS_WIN_MISSING)
            capped_append(r, r->missing,
                          json_pack("{sIsI}", "fromBatchId", (json_int_t)batch, "untilBatchId",
                                    (json_int_t)batch_until));
        if (have_envelope && !have_evidence)
            capped_append(r, r->noev, json_integer(batch));
        if (st == WS_WIN_BAD || st == WS_WIN_MISSING) {
            char name[256], wid[WS_WINDOW_ID_MAX];
            ws_object_name(r->qid, batch, ".dsse.json", name);
            ws_window_id(r->qid, batch, wid);
            capped_append(r, r->problems,
                          json_pack("{sssssIssss}", "file", strchr(name, '/') + 1, "windowId", wid,
                                    "batchId", (json_int_t)batch, "status", status_name(st),
                                    "reason", reason ? reason : ""));
        }
    }
    if (r->html) {
        struct slot s = {batch, batch_until, records, (uint32_t)st, 1};
        html_row(r, st, batch, batch_until, records, reason, have_envelope, have_evidence);
        if (fwrite(&s, sizeof s, 1, r->slots) == 1)
            r->nslots++;
        if (st != WS_WIN_GAP && st != WS_WIN_MISSING && records > r->max_records)
            r->max_records = records;
    }
}

static void html_timeline(struct ws_report *r)
{
    FILE *f = r->html;
    uint64_t per = (r->nslots + MAX_SLOTS - 1) / MAX_SLOTS, nbars;
    struct slot s, acc;
    uint64_t i = 0, in = 0;

    if (per == 0)
        per = 1;
    nbars = (r->nslots + per - 1) / per;
    fprintf(f,
            "<svg class=\"timeline\" viewBox=\"0 0 %llu 100\" preserveAspectRatio=\"none\" "
            "role=\"img\" aria-label=\"records per window\"><defs>"
            "<pattern id=\"hm%d\" width=\"4\" height=\"4\" patternUnits=\"userSpaceOnUse\" "
            "patternTransform=\"rotate(45)\"><rect width=\"2\" height=\"4\" fill=\"#e53935\"/>"
            "</pattern><pattern id=\"hg%d\" width=\"4\" height=\"4\" "
            "patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\"><rect width=\"2\" "
            "height=\"4\" fill=\"#9e9e9e\"/></pattern></defs>\n",
            (unsigned long long)(nbars ? nbars * 10 : 10), r->nquery, r->nquery);
    fflush(r->slots);
    rewind(r->slots);
    memset(&acc, 0, sizeof acc);
    for (uint64_t k = 0; k < r->nslots && fread(&s, sizeof s, 1, r->slots) == 1; k++) {
        if (in == 0) {
            acc = s;
        } else {
            acc.until = s.until;
            acc.records += s.records;
            acc.count += s.count;
            if (severity(s.status) > severity(acc.status))
                acc.status = s.status;
        }
        if (++in < per && k + 1 < r->nslots)
            continue;
        in = 0;
        {
            const char *cls = status_name((enum ws_win_status)acc.status);
            char span[64];
            if (acc.until - acc.batch > 1)
                snprintf(span, sizeof span, "batches %lld&#8211;%lld", (long long)acc.batch,
                         (long long)acc.until - 1);
            else
                snprintf(span, sizeof span, "batch %lld", (long long)acc.batch);
            if (acc.status == WS_WIN_GAP || acc.status == WS_WIN_MISSING) {
                fprintf(f,
                        "<rect class=\"win s-%s\" data-from=\"%lld\" data-until=\"%lld\" "
                        "x=\"%llu\" y=\"0\" width=\"9\" height=\"100\" fill=\"url(#h%c%d)\">"
                        "<title>%s: %s</title></rect>\n",
                        cls, (long long)acc.batch, (long long)acc.until,
                        (unsigned long long)(i * 10), acc.status == WS_WIN_GAP ? 'g' : 'm',
                        r->nquery, span, acc.status == WS_WIN_GAP ? "declared gap" : "missing");
            } else {
                /* Bars scale to the largest window (bucket sums to the largest bucket bound);
                 * an empty window still shows a 4% stub so that its status is visible. */
                uint64_t max = r->max_records * per;
                double h = max ? 4.0 + 92.0 * (double)acc.records / (double)max : 4.0;
                fprintf(f,
                        "<rect class=\"win s-%s\" data-from=\"%lld\" data-until=\"%lld\" "
                        "data-records=\"%llu\" x=\"%llu\" y=\"%.2f\" width=\"9\" "
                        "height=\"%.2f\"><title>%s: %llu records, %s</title></rect>\n",
                        cls, (long long)acc.batch, (long long)acc.until,
                        (unsigned long long)acc.records, (unsigned long long)(i * 10), 100.0 - h, h,
                        span, (unsigned long long)acc.records, cls);
            }
        }
        i++;
    }
    fputs("</svg>\n", f);
}

static void copy_file(FILE *from, FILE *to)
{
    char buf[65536];
    size_t n;

    fflush(from);
    rewind(from);
    while ((n = fread(buf, 1, sizeof buf, from)) > 0)
        fwrite(buf, 1, n, to);
}

void ws_report_query_end(struct ws_report *r, const struct ws_query_summary *s)
{
    if (r->json) {
        json_t *q = r->q;
        json_object_set_new(q, "queryId", json_string(r->qid));
        json_object_set_new(q, "verdict", json_string(s->ok ? "valid" : "invalid"));
        json_object_set_new(q, "windows", json_integer((json_int_t)s->windows));
        json_object_set_new(q, "records", json_integer((json_int_t)s->records));
        json_object_set_new(q, "badWindows", json_integer((json_int_t)s->bad));
        json_object_set_new(q, "gapsDeclared", json_integer((json_int_t)s->gaps_declared));
        if (s->windows) {
            json_object_set_new(q, "firstBatchId", json_integer(s->first_batch));
            json_object_set_new(q, "lastBatchId", json_integer(s->last_batch));
        }
        if (s->ok && s->windows) {
            json_object_set_new(q, "chainLength", json_integer((json_int_t)s->chain_length));
            json_object_set_new(q, "logRoot", json_string(s->log_root));
        }
        json_object_set_new(q, "firstBad",
                            s->first_bad[0] ? json_string(s->first_bad) : json_null());
        json_object_set_new(q, "declaredGaps", r->gaps);
        json_object_set_new(q, "missingWindows", r->missing);
        json_object_set_new(q, "missingEvidence", r->noev);
        json_object_set_new(q, "problems", r->problems);
        if (r->dropped)
            json_object_set_new(q, "listEntriesOmitted", json_integer((json_int_t)r->dropped));
        json_object_set_new(q, "checkpoint",
                            s->checkpoint_present ? json_pack("{sbss}", "valid", s->checkpoint_ok,
                                                              "detail", s->checkpoint)
                                                  : json_null());
        if (!r->json_first)
            fputc(',', r->json);
        r->json_first = false;
        json_dumpf(q, r->json, JSON_SORT_KEYS | JSON_COMPACT);
        fflush(r->json);
        json_decref(q);
        r->q = r->gaps = r->missing = r->noev = r->problems = NULL;
    }
    if (r->html) {
        FILE *f = r->html;
        fputs("<section class=\"query\" data-query=\"", f);
        html_escape(f, r->qid);
        fprintf(f,
                "\" data-status=\"%s\" data-windows=\"%llu\" data-records=\"%llu\" "
                "data-bad=\"%llu\"><h2>",
                s->ok ? "valid" : "invalid", (unsigned long long)s->windows,
                (unsigned long long)s->records, (unsigned long long)s->bad);
        html_escape(f, r->qid);
        fprintf(f, "<span class=\"badge %s\">%s</span></h2>\n<p class=\"summary\">",
                s->ok ? "valid" : "invalid", s->ok ? "valid" : "INVALID");
        fprintf(f,
                "<span class=\"windows\">%llu</span> windows, <span class=\"records\">%llu"
                "</span> records, %llu declared gaps",
                (unsigned long long)s->windows, (unsigned long long)s->records,
                (unsigned long long)s->gaps_declared);
        if (s->windows)
            fprintf(f, ", batches %lld&ndash;%lld", (long long)s->first_batch,
                    (long long)s->last_batch);
        if (s->ok && s->windows)
            fprintf(f, ", chain length %llu, log root <code>%s</code>",
                    (unsigned long long)s->chain_length, s->log_root);
        fputs("</p>\n", f);
        if (s->first_bad[0]) {
            fputs("<p class=\"firstbad\">first bad: ", f);
            html_escape(f, s->first_bad);
            fputs("</p>\n", f);
        }
        fputs("<p class=\"checkpoint\">", f);
        html_escape(f, s->checkpoint_present ? s->checkpoint : "checkpoint: none");
        fputs("</p>\n", f);
        html_timeline(r);
        fputs("<p class=\"rendered\"></p><details", f);
        fputs(s->ok && r->nrows > 100 ? ">" : " open>", f); /* long and fine: folded */
        fprintf(f,
                "<summary>%llu rows</summary><table><thead><tr><th>batch</th><th>status</th>"
                "<th>records</th><th>artifacts</th><th>detail</th></tr></thead><tbody>\n",
                (unsigned long long)r->nrows);
        copy_file(r->rows, f);
        fputs("</tbody></table></details></section>\n", f);
        /* Reuse the temporary files for the next query. */
        fflush(r->rows);
        if (ftruncate(fileno(r->rows), 0) != 0 || ftruncate(fileno(r->slots), 0) != 0) {
            /* Unreachable on a regular tmpfile; leftovers would only be overwritten. */
        }
        rewind(r->rows);
        rewind(r->slots);
    }
}

ws_err_t ws_report_close(struct ws_report *r, int good, int bad, char *errbuf, size_t errlen)
{
    ws_err_t err = WS_OK;

    if (r->json) {
        fprintf(r->json, "],\"chainsVerified\":%d,\"chainsFailed\":%d,\"verdict\":\"%s\"}\n", good,
                bad, bad ? "invalid" : "valid");
        fflush(r->json);
    }
    if (r->html) {
        FILE *f = r->html;
        fprintf(f,
                "<section id=\"verdict\" class=\"%s\" data-good=\"%d\" data-bad=\"%d\">verdict: "
                "%s &mdash; %d chains verified, %d failed</section>\n",
                bad ? "invalid" : "valid", good, bad, bad ? "INVALID" : "valid", good, bad);
        fputs("</main><script>\n"
              "/* Count what rendered: SVG bars and table rows per query. */\n"
              "document.querySelectorAll('section.query').forEach(function (s) {\n"
              "  var bars = s.querySelectorAll('svg.timeline rect.win');\n"
              "  var w = 0; bars.forEach(function (b) { if (b.getBBox().height > 0) w++; });\n"
              "  s.querySelector('.rendered').textContent = w + ' bars drawn, ' +\n"
              "    s.querySelectorAll('tbody tr').length + ' table rows';\n"
              "});\n</script></body></html>\n",
              f);
        if (ferror(f) || fclose(f) != 0)
            err = ws_fail(WS_ERR_IO, errbuf, errlen, "--html %s: write failed", r->html_path);
        fclose(r->rows);
        fclose(r->slots);
        free(r->html_path);
    }
    free(r);
    return err;
}
