/*
 * fuzz_config.c — libFuzzer target for the configuration loader: the input is the file's
 * content (through a memfd), loaded with and without a few --set overrides. Errors must name
 * something (non-empty message); success must yield the derived topics.
 */
#include "config/config.h"
#include "sinks/sink.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const sets[] = {"kafka.group.id=g", "engine.gap_wait_ms=7",
                                       "kafka.properties.acks=all"};
    char path[64], errbuf[512];
    struct ws_config *c = NULL;
    int fd = memfd_create("cfg", 0);

    if (fd < 0 || write(fd, data, size) != (ssize_t)size)
        abort();
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    for (size_t n = 0; n <= 3; n += 3) {
        errbuf[0] = '\0';
        if (ws_config_load(path, sets, n, ws_sink_types(), &c, errbuf, sizeof errbuf) == WS_OK) {
            if (!c->deadletter_topic || !c->heads_topic)
                abort();
            ws_config_free(c);
        } else if (!errbuf[0]) {
            abort();
        }
    }
    close(fd);
    return 0;
}
