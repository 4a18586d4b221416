/*
 * fuzz_notification.c — libFuzzer target for ws_notification_parse (FORMAT.md §1), the first parser
 * every byte from the notifications topic meets.
 *
 * Beyond "no crash, no leak, no UB" (ASan/UBSan/LSan), each input is parsed with
 * allow_unresolved_start off and on and the parser's promises are checked, aborting on a breach:
 * on failure the output is all zero and errbuf is one line of printable ASCII; on success the
 * sources are strictly sorted with valid ranges, and turning the option on never turns an
 * accepted notification into a different one. Seeds: tests/fuzz/corpus/notification/.
 */
#include "window/window.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void require(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_notification: invariant broken: %s\n", what);
        abort();
    }
}

static void check_ok(const struct ws_notification *n, bool allowed)
{
    require(n->query_id && ws_query_id_safe(n->query_id, strlen(n->query_id)), "query id safe");
    require(n->batch_id >= 0, "batch id >= 0");
    require(n->shape == WS_NOTIF_NATIVE || n->shape == WS_NOTIF_PROGRESS, "shape");
    for (size_t i = 0; i < n->nsources; i++) {
        const struct ws_notif_source *s = &n->sources[i];
        size_t tl = strlen(s->topic);

        require(tl >= 1 && tl <= 249, "topic length");
        require(s->partition >= 0, "partition >= 0");
        require(s->until_offset >= 0, "until >= 0");
        require(s->from_offset >= 0 ||
                    (allowed && n->batch_id == 0 && s->from_offset == WS_OFFSET_UNRESOLVED),
                "from >= 0 unless unresolved");
        require(s->from_offset <= s->until_offset, "from <= until");
        if (i) {
            const struct ws_notif_source *p = &n->sources[i - 1];
            int r = strcmp(p->topic, s->topic);
            require(r < 0 || (r == 0 && p->partition < s->partition), "strictly sorted");
        }
    }
    require(n->shape == WS_NOTIF_PROGRESS || n->nignored == 0, "ignored only in progress");
}

static void check_err(const struct ws_notification *n, const char *eb)
{
    static const struct ws_notification zero;

    require(memcmp(n, &zero, sizeof zero) == 0, "output zeroed on failure");
    require(eb[0] != '\0', "a reason is given");
    for (const char *p = eb; *p; p++)
        require((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f, "errbuf printable");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ws_notif_opts opts = {.max_bytes = 1u << 20, .max_sources = 1000, .max_files = 1000};
    struct ws_notification n[2];
    uint8_t digest[2][WS_HASH_LEN];
    ws_err_t err[2];
    char eb[256];

    for (int i = 0; i < 2; i++) {
        opts.allow_unresolved_start = i;
        err[i] = ws_notification_parse((const char *)data, size, &opts, &n[i], eb, sizeof eb);
        if (err[i]) {
            check_err(&n[i], eb);
            continue;
        }
        check_ok(&n[i], i);
        ws_notification_sources_digest(&n[i], digest[i]);
    }
    /* the option only ever admits more: what parsed without it parses identically with it */
    if (!err[0])
        require(!err[1] && memcmp(digest[0], digest[1], WS_HASH_LEN) == 0, "option monotone");
    for (int i = 0; i < 2; i++)
        if (!err[i])
            ws_notification_free(&n[i]);
    return 0;
}
