/* tests/support/redis.c -- one command on any Redis, and a private Redis for a test: a
 * redis-server the test may crash and restart, or one of the fixture's kind.
 *
 * A test that looks behind the server sends its commands through ts_redis_command (or
 * ts_redis_fixture_command), which works on a single redis-server and on a Redis Cluster
 * alike: it formats the command once and, when a node answers -MOVED, sends the same bytes to
 * the node named in the redirection. One connection per command keeps it simple; no test
 * sends enough of them for that to matter.
 *
 * Outage tests must not touch the shared fixture, so they start their own server on a free
 * port, kill it with SIGKILL (as a crash would), and start it again on the same port.
 * Redis sets SO_REUSEADDR, so the port is immediately free again.
 *
 * A private cluster is made by redis_cluster_fixture.sh, the script that makes the fixture
 * cluster, so both are built alike. Its nodes daemonize: they are no children of the test
 * process, and neither proc.c's PR_SET_PDEATHSIG nor its atexit handler reaches them. A keeper
 * does instead: a shell, child of the test process, that runs the script's start, then waits;
 * on SIGTERM it runs the script's stop and removes the cluster's directory. The kernel sends
 * it SIGTERM when the test process dies (PR_SET_PDEATHSIG), ts_redis_cleanup and the atexit
 * handler send it themselves and wait for it. It closes every inherited descriptor, so no node
 * holds a pipe that ctest or Criterion reads to its end.
 */
#include "tests/support/support.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_DIRS 8
#define MAX_REDIRECTS 5
#define CLUSTER_MASTERS "3"
#define CLUSTER_START_MS 60000
#define CLUSTER_ATTEMPTS 3
#define KEEPER_STOP_MS 15000
#define SLOTS 16384

/* ---- any Redis, one command at a time -------------------------------------------------------- */

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

/* Formats the command and runs it on host:port, following -MOVED. */
static redisReply *vcommand(const char *host0, int port, const char *fmt, va_list ap)
{
    char *cmd = NULL;
    int len = redisvFormatCommand(&cmd, fmt, ap);
    cr_assert(len > 0, "cannot format the redis command '%s'", fmt);
    char host[64], err[256] = "";
    snprintf(host, sizeof(host), "%s", host0);
    int hops = 0;
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

redisReply *ts_redis_command(const char *url, const char *fmt, ...)
{
    /* "redis://<host>:<port>" up to the first ',' or '/': the first seed. */
    char host[64] = "";
    int port = 0;
    cr_assert(strncmp(url, "redis://", 8) == 0 &&
                  sscanf(url + 8, "%63[^:,/]:%d", host, &port) == 2 && port > 0,
              "no redis://<host>:<port> at the start of '%s'", url);
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = vcommand(host, port, fmt, ap);
    va_end(ap);
    return r;
}

redisReply *ts_redis_fixture_command(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = vcommand("127.0.0.1", ts_redis_port(), fmt, ap);
    va_end(ap);
    return r;
}

/* CRC16-CCITT (XModem), as Redis Cluster hashes keys. */
static unsigned crc16(const char *buf, size_t len)
{
    unsigned crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (unsigned)(unsigned char)buf[i] << 8;
        for (int bit = 0; bit < 8; bit++)
            crc = (crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1) & 0xffff;
    }
    return crc;
}

int ts_redis_key_slot(const char *key)
{
    size_t len = strlen(key);
    const char *open = strchr(key, '{');
    const char *close = open ? strchr(open + 1, '}') : NULL;
    if (close && close > open + 1)
        return (int)(crc16(open + 1, (size_t)(close - open - 1)) % SLOTS);
    return (int)(crc16(key, len) % SLOTS);
}

/* ---- what a failed test leaves behind -------------------------------------------------------- */

/* Directories to remove, and keepers to stop, at exit when a failed test never reached
 * ts_redis_cleanup. */
static struct {
    char dir[64];
    pid_t keeper;
} left[MAX_DIRS];

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void remove_tree(const char *dir)
{
    nftw(dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static void keeper_stop(pid_t keeper, const char *dir);

static void clean_left(void)
{
    for (int i = 0; i < MAX_DIRS; i++) {
        if (left[i].keeper > 0)
            keeper_stop(left[i].keeper, left[i].dir);
        if (left[i].dir[0])
            remove_tree(left[i].dir);
        left[i].keeper = 0;
        left[i].dir[0] = '\0';
    }
}

/* Notes dir (and its keeper, if any) to be cleaned at exit, or forgets it (add false). */
static void remember(const char *dir, pid_t keeper, bool add)
{
    static bool atexit_set;
    if (!atexit_set) {
        atexit(clean_left);
        atexit_set = true;
    }
    for (int i = 0; i < MAX_DIRS; i++) {
        if (add && !left[i].dir[0]) {
            snprintf(left[i].dir, sizeof(left[i].dir), "%s", dir);
            left[i].keeper = keeper;
            return;
        }
        if (!add && strcmp(left[i].dir, dir) == 0) {
            left[i].dir[0] = '\0';
            left[i].keeper = 0;
            return;
        }
    }
    cr_assert(!add, "too many private redis directories for one test");
}

/* ---- a private redis-server ------------------------------------------------------------------ */

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

static void single_start(ts_redis_t *r, int port)
{
    if (!r->dir[0]) {
        snprintf(r->dir, sizeof(r->dir), "/tmp/tidings-test-redis-XXXXXX");
        cr_assert(mkdtemp(r->dir), "mkdtemp failed");
        remember(r->dir, 0, true);
    }
    r->cluster = false;
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
            if (answers_ping(r->port) && ts_proc_listens(r->pid, r->port)) {
                ts_redis_url(r->url, sizeof(r->url), r->port);
                return;
            }
            ts_sleep_ms(10);
        }
        ts_proc_kill(r->pid);
        r->pid = 0;
        if (port) /* a fixed port may be in TIME_WAIT trouble for a moment: retry it */
            ts_sleep_ms(200);
    }
    cr_assert_fail("redis-server did not start on port %d (see %s)", r->port, log);
}

void ts_redis_start(ts_redis_t *r, int port)
{
    if (ts_redis_fixture_is_cluster())
        cr_skip("this test crashes or restarts its private redis-server, which a private "
                "cluster cannot do (its nodes would come back with their slots, not empty); on "
                "one redis-server it would only repeat the first run");
    single_start(r, port);
}

/* ---- a private Redis Cluster ----------------------------------------------------------------- */

/* The keeper: $0 is the fixture script, $1 the cluster's directory, $2 the directory to
 * remove once it is stopped. A trapped signal interrupts `wait` at once; during the script's
 * start it is deferred until the start is over, so no node is left behind. The sleep gets
 * SIGKILL: a forked shell that has not yet exec'd sleep would catch SIGTERM with the
 * keeper's trap handler, lose it, and sleep on. */
static const char keeper_sh[] =
    "trap 'kill -9 $! 2>/dev/null; \"$0\" stop \"$1\"; rm -rf \"$2\"; exit 0' TERM\n"
    "\"$0\" start \"$1\" " CLUSTER_MASTERS " 0 || exit 1\n"
    "while :; do sleep 600 & wait $!; done\n";

static pid_t keeper_spawn(const char *script, const char *cluster_dir, const char *dir,
                          const char *log)
{
    char *argv[] = {"/bin/sh", "-c", (char *)keeper_sh, (char *)script,
                    (char *)cluster_dir, (char *)dir, NULL};
    pid_t parent = getpid();
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork failed");
    if (pid == 0) {
        /* Only async-signal-safe calls: the test process may have threads. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(127);
        int in = open("/dev/null", O_RDONLY);
        int out = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (in < 0 || out < 0)
            _exit(127);
        dup2(in, STDIN_FILENO);
        dup2(out, STDOUT_FILENO);
        dup2(out, STDERR_FILENO);
        for (int fd = STDERR_FILENO + 1; fd < 1024; fd++)
            close(fd);
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

/* Waits up to timeout_ms for the keeper to exit; true once it is reaped. */
static bool keeper_wait(pid_t keeper, int timeout_ms)
{
    uint64_t deadline = ts_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        pid_t r = waitpid(keeper, NULL, WNOHANG);
        if (r == keeper || (r < 0 && errno == ECHILD))
            return true;
        if (ts_now_ms() >= deadline)
            return false;
        ts_sleep_ms(10);
    }
}

/* SIGTERM, then waits for the keeper to stop the nodes; if it hangs, stops them itself. */
static void keeper_stop(pid_t keeper, const char *dir)
{
    kill(keeper, SIGTERM);
    if (keeper_wait(keeper, KEEPER_STOP_MS))
        return;
    kill(keeper, SIGKILL);
    waitpid(keeper, NULL, 0);
    const char *source = getenv("TIDINGS_SOURCE_DIR");
    char script[1024], cluster_dir[96];
    if (!source)
        return;
    snprintf(script, sizeof(script), "%s/tests/support/redis_cluster_fixture.sh", source);
    snprintf(cluster_dir, sizeof(cluster_dir), "%s/c", dir);
    char *argv[] = {script, "stop", cluster_dir, NULL};
    pid_t pid = ts_proc_spawn(argv, NULL);
    if (ts_proc_wait(pid, KEEPER_STOP_MS) == -1)
        ts_proc_kill(pid);
}

/* The first line of path into buf, without its newline; false when there is none yet. */
static bool read_line(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    bool ok = fgets(buf, (int)size, f) && strchr(buf, '\n');
    fclose(f);
    if (ok)
        buf[strcspn(buf, "\n")] = '\0';
    return ok && buf[0];
}

/* The end of a log file into buf, for a failure message. */
static void log_tail(const char *path, char *buf, size_t size)
{
    buf[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    if (fseek(f, 0, SEEK_END) == 0) {
        long end = ftell(f);
        long from = end > (long)size - 1 ? end - (long)size + 1 : 0;
        if (fseek(f, from, SEEK_SET) == 0) {
            size_t n = fread(buf, 1, size - 1, f);
            buf[n] = '\0';
        }
    }
    fclose(f);
}

/* Runs the keeper once; true when the cluster serves, with r filled in. On failure the
 * keeper has exited or been stopped, and why is in why. */
static bool cluster_try(ts_redis_t *r, const char *script, char *why, size_t why_size)
{
    char cluster_dir[96], log[96], port_file[128], url_file[128], port_s[16];
    snprintf(cluster_dir, sizeof(cluster_dir), "%s/c", r->dir);
    snprintf(log, sizeof(log), "%s/keeper.log", r->dir);
    snprintf(port_file, sizeof(port_file), "%s/port", cluster_dir);
    snprintf(url_file, sizeof(url_file), "%s/url", cluster_dir);
    r->pid = keeper_spawn(script, cluster_dir, r->dir, log);
    remember(r->dir, r->pid, true);
    uint64_t deadline = ts_now_ms() + CLUSTER_START_MS;
    while (ts_now_ms() < deadline && ts_proc_alive(r->pid)) {
        /* The script writes the port file last. */
        if (read_line(port_file, port_s, sizeof(port_s)) && atoi(port_s) > 0) {
            cr_assert(read_line(url_file, r->url, sizeof(r->url)), "no seed list in %s",
                      url_file);
            r->port = atoi(port_s);
            r->cluster = true;
            return true;
        }
        ts_sleep_ms(20);
    }
    bool alive = ts_proc_alive(r->pid); /* reaps it if it has exited */
    char tail[1024];
    log_tail(log, tail, sizeof(tail));
    snprintf(why, why_size, "%s; the end of its log:\n%s",
             alive ? "not serving in time" : "the script failed", tail);
    if (alive)
        keeper_stop(r->pid, r->dir);
    remember(r->dir, 0, false);
    remove_tree(r->dir);
    r->pid = 0;
    return false;
}

void ts_redis_start_like_fixture(ts_redis_t *r)
{
    if (!ts_redis_fixture_is_cluster()) {
        single_start(r, 0);
        return;
    }
    cr_assert(!r->pid, "this private cluster runs already");
    char script[1024], why[1200] = "";
    snprintf(script, sizeof(script), "%s/tests/support/redis_cluster_fixture.sh",
             ts_env("TIDINGS_SOURCE_DIR"));
    /* Nodes draw ports that were free a moment ago: a clash fails a start, not the next. */
    for (int attempt = 0; attempt < CLUSTER_ATTEMPTS; attempt++) {
        snprintf(r->dir, sizeof(r->dir), "/tmp/tidings-test-cluster-XXXXXX");
        cr_assert(mkdtemp(r->dir), "mkdtemp failed");
        if (cluster_try(r, script, why, sizeof(why)))
            return;
    }
    r->dir[0] = '\0';
    cr_assert_fail("a private redis cluster did not start (%d attempts); the last one, %s",
                   CLUSTER_ATTEMPTS, why);
}

/* ---- either ---------------------------------------------------------------------------------- */

void ts_redis_kill(ts_redis_t *r)
{
    cr_assert(!r->cluster, "ts_redis_kill on a private cluster: skip the test in the cluster "
                           "run (ts_redis_skip_on_cluster)");
    ts_proc_kill(r->pid);
    r->pid = 0;
}

void ts_redis_cleanup(ts_redis_t *r)
{
    if (r->cluster && r->pid > 0)
        keeper_stop(r->pid, r->dir);
    else
        ts_proc_kill(r->pid);
    r->pid = 0;
    r->cluster = false;
    r->url[0] = '\0';
    if (r->dir[0]) {
        remove_tree(r->dir);
        remember(r->dir, 0, false);
        r->dir[0] = '\0';
    }
}

void ts_redis_skip_on_cluster(const char *why)
{
    if (ts_redis_fixture_is_cluster())
        cr_skip("%s", why);
}
