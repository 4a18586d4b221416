/*
 * run.c — `windowseal run -c CONFIG [--set KEY=VALUE]...`: load, start, serve until SIGTERM or
 * SIGINT, then finish the window in hand (a step never leaves one half-published), flush the
 * producer and leave the group. Anything not committed is delivered again to whoever owns the
 * partition next (engine/engine.c, I1/I2).
 */
#include "cli/cli.h"
#include "disk/disk.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct ws_engine *running;

static void on_signal(int sig)
{
    (void)sig;
    if (running)
        ws_engine_stop(running);
}

int ws_cmd_run(int argc, char **argv)
{
    struct ws_config *cfg = NULL;
    struct ws_engine *e = NULL;
    struct ws_engine_stats st;
    struct sigaction sa;
    char errbuf[1024];
    ws_err_t err;
    int rc;

    rc = ws_cli_config(argc, argv, 1, "run", "windowseal run -c CONFIG [--set KEY=VALUE]...", &cfg);
    if (rc)
        return rc;
    ws_log_setup(cfg->log_level, cfg->log_format);
    err = ws_engine_new(cfg, &e, errbuf, sizeof errbuf);
    if (err) {
        fprintf(stderr, "windowseal run: %s\n", errbuf);
        rc = ws_err_retriable(err) ? WS_EXIT_RUNTIME : WS_EXIT_USAGE;
        goto out_config;
    }
    ws_log(WS_LOG_INFO, "start",
           "version=%s config=\"%s\" keyid=%s bootstrap=\"%s\" group=\"%s\" notifications=%s "
           "attestations=%s sinks=%zu spool=\"%s\" io_uring=%s",
           WS_VERSION, cfg->source, ws_engine_keyid(e), cfg->bootstrap, cfg->group_id,
           cfg->notifications_topic, cfg->attestations_topic, cfg->nsinks + 1, cfg->spool_path,
           cfg->spool_io_uring);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    running = e;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    err = ws_engine_run(e);
    running = NULL;
    ws_engine_get_stats(e, &st);
    ws_log(WS_LOG_INFO, "stop",
           "windows=%llu records=%llu deadlettered=%llu conflicts=%llu duplicates=%llu gaps=%llu",
           (unsigned long long)st.windows, (unsigned long long)st.records,
           (unsigned long long)st.deadlettered, (unsigned long long)st.conflicts,
           (unsigned long long)st.duplicates, (unsigned long long)st.gaps);
    if (err) {
        fprintf(stderr, "windowseal run: %s\n", ws_strerror(err));
        rc = WS_EXIT_RUNTIME;
    }
    ws_engine_destroy(e);
out_config:
    ws_config_free(cfg);
    return rc;
}
