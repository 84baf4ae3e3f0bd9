/* tests/support/redis.c -- one command on the fixture Redis, and a private redis-server
 * that a test may crash and restart.
 *
 * A test that looks behind the server at the fixture sends its commands through
 * ts_redis_fixture_command, which works on a single redis-server and on the Redis Cluster
 * alike: it formats the command once and, when a node answers -MOVED, sends the same bytes to
 * the node named in the redirection. One connection per command keeps it simple; no test
 * sends enough of them for that to matter.
 *
 * Outage tests must not touch the shared fixture, so they start their own server on a free
 * port, kill it with SIGKILL (as a crash would), and start it again on the same port.
 * Redis sets SO_REUSEADDR, so the port is immediately free again.
 */
#include "tests/support/support.h"

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_DIRS 8
#define MAX_REDIRECTS 5

/* ---- the fixture Redis, one command at a time ---------------------------------------------- */

/* Sends the formatted command to host:port and returns the reply, or NULL with the reason in
 * err. */
static redisReply *command_at(const char *host, int port, const char *cmd, size_t len, char *err,
                              size_t err_size)
{
    struct timeval connect_tv = {.tv_sec = 5, .tv_usec = 0};
    struct timeval command_tv = {.tv_sec = 30, .tv_usec = 0};
    redisContext *c = redisConnectWithTimeout(host, port, connect_tv);
    void *reply = NULL;
    if (!c || c->err) {
        snprintf(err, err_size, "connect to %s:%d failed: %s", host, port,
                 c ? c->errstr : "out of memory");
    } else if (redisSetTimeout(c, command_tv) != REDIS_OK ||
               redisAppendFormattedCommand(c, cmd, len) != REDIS_OK ||
               redisGetReply(c, &reply) != REDIS_OK || !reply) {
        snprintf(err, err_size, "no reply from %s:%d: %s", host, port, c->errstr);
        reply = NULL;
    }
    if (c)
        redisFree(c);
    return reply;
}

/* Is r "-MOVED <slot> <host>:<port>"? Then host (unchanged when the reply leaves it out, as
 * ":<port>" does) and port name the node to ask instead. */
static bool moved_to(const redisReply *r, char *host, size_t host_size, int *port)
{
    if (r->type != REDIS_REPLY_ERROR || strncmp(r->str, "MOVED ", 6) != 0)
        return false;
    const char *addr = strchr(r->str + 6, ' ');
    const char *colon = addr ? strrchr(addr, ':') : NULL;
    if (!colon)
        return false;
    addr++;
    if (colon > addr)
        snprintf(host, host_size, "%.*s", (int)(colon - addr), addr);
    *port = atoi(colon + 1);
    return *port > 0;
}

redisReply *ts_redis_fixture_command(const char *fmt, ...)
{
    char *cmd = NULL;
    va_list ap;
    va_start(ap, fmt);
    int len = redisvFormatCommand(&cmd, fmt, ap);
    va_end(ap);
    cr_assert(len > 0, "cannot format the redis command '%s'", fmt);
    char host[64] = "127.0.0.1", err[256] = "";
    int port = ts_redis_port(), hops = 0;
    redisReply *r = command_at(host, port, cmd, (size_t)len, err, sizeof(err));
    while (r && hops < MAX_REDIRECTS && moved_to(r, host, sizeof(host), &port)) {
        freeReplyObject(r);
        hops++;
        r = command_at(host, port, cmd, (size_t)len, err, sizeof(err));
    }
    redisFreeCommand(cmd);
    cr_assert(r, "redis command '%s': %s", fmt, err);
    return r;
}

/* ---- a private redis-server ------------------------------------------------------------------ */

/* Directories to remove at exit when a failed test never reached ts_redis_cleanup. */
static char dirs[MAX_DIRS][64];

static void remove_dir(const char *dir)
{
    char path[128];
    snprintf(path, sizeof(path), "%.63s/redis.log", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%.63s/dump.rdb", dir);
    unlink(path);
    rmdir(dir);
}

static void remove_dirs(void)
{
    for (int i = 0; i < MAX_DIRS; i++)
        if (dirs[i][0])
            remove_dir(dirs[i]);
}

static void remember(const char *dir, bool add)
{
    static bool atexit_set;
    if (!atexit_set) {
        atexit(remove_dirs);
        atexit_set = true;
    }
    for (int i = 0; i < MAX_DIRS; i++) {
        if (add && !dirs[i][0]) {
            snprintf(dirs[i], sizeof(dirs[i]), "%s", dir);
            return;
        }
        if (!add && strcmp(dirs[i], dir) == 0) {
            dirs[i][0] = '\0';
            return;
        }
    }
}

static bool answers_ping(int port)
{
    struct timeval tv = {.tv_sec = 0, .tv_usec = 200000};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    bool ok = false;
    if (c && !c->err) {
        redisReply *r = redisCommand(c, "PING");
        ok = r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
        if (r)
            freeReplyObject(r);
    }
    if (c)
        redisFree(c);
    return ok;
}

void ts_redis_start(ts_redis_t *r, int port)
{
    if (ts_redis_fixture_is_cluster())
        cr_skip("the cluster run leaves out tests on a private single redis-server: the "
                "first run already ran this one exactly so");
    if (!r->dir[0]) {
        snprintf(r->dir, sizeof(r->dir), "/tmp/tidings-test-redis-XXXXXX");
        cr_assert(mkdtemp(r->dir), "mkdtemp failed");
        remember(r->dir, true);
    }
    const char *bin = getenv("TIDINGS_REDIS_SERVER");
    char bin_copy[256], port_s[16], log[128];
    snprintf(bin_copy, sizeof(bin_copy), "%s", bin && *bin ? bin : "redis-server");
    snprintf(log, sizeof(log), "%s/redis.log", r->dir);
    for (int attempt = 0; attempt < 5; attempt++) {
        r->port = port ? port : ts_free_port();
        snprintf(port_s, sizeof(port_s), "%d", r->port);
        char *argv[] = {bin_copy, "--bind", "127.0.0.1", "--port", port_s, "--save", "",
                        "--appendonly", "no", "--dir", r->dir, "--logfile", log, NULL};
        r->pid = ts_proc_spawn(argv, NULL);
        uint64_t deadline = ts_now_ms() + 5000;
        while (ts_now_ms() < deadline && ts_proc_alive(r->pid)) {
            if (answers_ping(r->port) && ts_proc_listens(r->pid, r->port))
                return;
            ts_sleep_ms(10);
        }
        ts_proc_kill(r->pid);
        r->pid = 0;
        if (port) /* a fixed port may be in TIME_WAIT trouble for a moment: retry it */
            ts_sleep_ms(200);
    }
    cr_assert_fail("redis-server did not start on port %d (see %s)", r->port, log);
}

void ts_redis_kill(ts_redis_t *r)
{
    ts_proc_kill(r->pid);
    r->pid = 0;
}

void ts_redis_cleanup(ts_redis_t *r)
{
    ts_redis_kill(r);
    if (r->dir[0]) {
        remove_dir(r->dir);
        remember(r->dir, false);
        r->dir[0] = '\0';
    }
}
