/*
 * s3rver.c — npm's s3rver (3.7.1, the version tests/it_s3.sh pins) as a child process on
 * loopback, the object store of `bench_slowstore store` (benchlib.h).
 *
 * `node s3rver.js -p 0` on 127.0.0.1 with the bucket `attest`, its data and its log (stdout and
 * stderr) under the bench's directory; the port it picked is read back from its "listening on"
 * log line (30 s at most). Stopped with SIGTERM, SIGKILL after 5 s. s3rver knows the access key
 * S3RVER and does not check V4 signatures: bench_s3_credentials sets that in the environment,
 * where the engine's S3 sink finds its credentials.
 */
#include "benchlib.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

const char *bench_s3rver_find(const char *explicit_path, const char *self_dir)
{
    static char path[PATH_MAX];
    const char *env = getenv("WS_S3RVER");

    if (explicit_path)
        return access(explicit_path, R_OK) == 0 ? explicit_path : NULL;
    if (env && *env)
        return access(env, R_OK) == 0 ? env : NULL;
    snprintf(path, sizeof path, "%s/node/node_modules/s3rver/bin/s3rver.js", self_dir);
    return access(path, R_OK) == 0 ? path : NULL;
}

/* Start s3rver on a free loopback port with the bucket `attest`; its data under dir. */
bool bench_s3rver_start(const char *script, const char *dir, struct bench_s3rver *s)
{
    char data[PATH_MAX], logp[PATH_MAX], line[4096];
    char *argv[] = {"node",     (char *)script,       "-d",     data, "-a", "127.0.0.1", "-p", "0",
                    "--silent", "--configure-bucket", "attest", NULL};
    posix_spawn_file_actions_t fa;
    int rc;

    snprintf(s->dir, sizeof s->dir, "%s", dir);
    snprintf(data, sizeof data, "%s/s3data", dir);
    snprintf(logp, sizeof logp, "%s/s3rver.log", dir);
    mkdir(data, 0755);
    setenv("NODE_OPTIONS", "--openssl-legacy-provider", 0);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, logp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    rc = posix_spawnp(&s->pid, "node", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        fprintf(stderr, "%s: cannot start node: %s\n", bench_prog, strerror(rc));
        return false;
    }
    for (int i = 0; i < 300; i++) { /* 30 s */
        FILE *f = fopen(logp, "r");
        int status;
        if (f) {
            while (fgets(line, sizeof line, f)) {
                char *p = strstr(line, "listening on 127.0.0.1:");
                if (p && (s->port = atoi(p + strlen("listening on 127.0.0.1:"))) > 0) {
                    fclose(f);
                    return true;
                }
            }
            fclose(f);
        }
        if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
            fprintf(stderr, "%s: s3rver exited; its log: %s\n", bench_prog, logp);
            return false;
        }
        bench_sleep_ms(100);
    }
    fprintf(stderr, "%s: s3rver did not start in 30 s (log: %s)\n", bench_prog, logp);
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    return false;
}

void bench_s3rver_stop(struct bench_s3rver *s)
{
    int status;

    kill(s->pid, SIGTERM);
    for (int i = 0; i < 50; i++) {
        if (waitpid(s->pid, &status, WNOHANG) == s->pid)
            return;
        bench_sleep_ms(100);
    }
    kill(s->pid, SIGKILL);
    waitpid(s->pid, &status, 0);
}

void bench_s3_credentials(void)
{
    /* s3rver knows the access key S3RVER and does not check V4 signatures */
    setenv("AWS_ACCESS_KEY_ID", "S3RVER", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "S3RVER", 1);
    unsetenv("AWS_SESSION_TOKEN");
}
