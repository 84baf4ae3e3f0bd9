/* tests/support/redis.c -- a private Redis for a test: a redis-server the test may crash,
 * shut down and restart, or one of the fixture's kind.
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
 *
 * One node of a private cluster may be killed and started again on its port from its own
 * directory (nodes.conf, AOF), daemonized and without the test's descriptors as the script's
 * nodes are; the keeper stops it with the others. Every look at a single node is bounded to
 * 1 s, since the fault under test may have stopped it.
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
#define CLUSTER_START_MS 60000
#define CLUSTER_ATTEMPTS 3
#define KEEPER_STOP_MS 15000

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

bool ts_redis_pings(int port)
{
    struct timeval tv = {.tv_sec = 1, .tv_usec = 0};
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

/* A cluster_node is cluster-enabled, with no slots assigned (it still answers commands that
 * need no slot, such as CLUSTER KEYSLOT), its bus on a second free port. */
static void single_start(ts_redis_t *r, int port, bool cluster_node)
{
    if (!r->dir[0]) {
        snprintf(r->dir, sizeof(r->dir), "/tmp/tidings-test-redis-XXXXXX");
        cr_assert(mkdtemp(r->dir), "mkdtemp failed");
        remember(r->dir, 0, true);
    }
    r->cluster = false;
    const char *bin = getenv("TIDINGS_REDIS_SERVER");
    char bin_copy[256], port_s[16], bus_s[16], log[128];
    snprintf(bin_copy, sizeof(bin_copy), "%s", bin && *bin ? bin : "redis-server");
    snprintf(log, sizeof(log), "%s/redis.log", r->dir);
    for (int attempt = 0; attempt < 5; attempt++) {
        r->port = port ? port : ts_free_port();
        snprintf(port_s, sizeof(port_s), "%d", r->port);
        int bus;
        while ((bus = ts_free_port()) == r->port)
            ;
        snprintf(bus_s, sizeof(bus_s), "%d", bus);
        /* clang-format off */
        char *argv[] = {bin_copy, "--bind", "127.0.0.1", "--port", port_s, "--save", "",
                        "--appendonly", r->aof ? "yes" : "no", "--appendfsync", "always",
                        "--dir", r->dir, "--logfile", log,
                        cluster_node ? "--cluster-enabled" : NULL, "yes", "--cluster-port", bus_s,
                        "--cluster-config-file", "nodes.conf", NULL};
        /* clang-format on */
        r->pid = ts_proc_spawn(argv, NULL);
        uint64_t deadline = ts_now_ms() + 20000; /* PING answers -LOADING while an AOF loads */
        while (ts_now_ms() < deadline && ts_proc_alive(r->pid)) {
            if (ts_redis_pings(r->port) && ts_proc_listens(r->pid, r->port)) {
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
    single_start(r, port, false);
}

void ts_redis_start_node(ts_redis_t *r)
{
    single_start(r, 0, true);
}

/* ---- a private Redis Cluster ----------------------------------------------------------------- */

/* The keeper: $0 is the fixture script, $1 the cluster's directory, $2 the directory to
 * remove once it is stopped, $3 and $4 the masters and replicas per master. A trapped signal interrupts `wait` at once; during the script's
 * start it is deferred until the start is over, so no node is left behind. The sleep gets
 * SIGKILL: a forked shell that has not yet exec'd sleep would catch SIGTERM with the
 * keeper's trap handler, lose it, and sleep on. */
static const char keeper_sh[] =
    "trap 'kill -9 $! 2>/dev/null; \"$0\" stop \"$1\"; rm -rf \"$2\"; exit 0' TERM\n"
    "\"$0\" start \"$1\" \"$3\" \"$4\" || exit 1\n"
    "while :; do sleep 600 & wait $!; done\n";

static pid_t keeper_spawn(const char *script, const char *cluster_dir, const char *dir,
                          const char *log, int masters, int replicas)
{
    char m[8], rp[8];
    snprintf(m, sizeof(m), "%d", masters);
    snprintf(rp, sizeof(rp), "%d", replicas);
    char *argv[] = {
        "/bin/sh", "-c", (char *)keeper_sh, (char *)script, (char *)cluster_dir, (char *)dir, m,
        rp,        NULL};
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

/* The nodes' ports from the script's ports file (masters first) into r->ports. */
static void read_ports(ts_redis_t *r, const char *cluster_dir, int nodes)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/ports", cluster_dir);
    FILE *f = fopen(path, "r");
    cr_assert(f, "the cluster script wrote no %s", path);
    for (r->nodes = 0; r->nodes < nodes && r->nodes < TS_CLUSTER_MAX &&
                       fscanf(f, "%d", &r->ports[r->nodes]) == 1;)
        r->nodes++;
    fclose(f);
    cr_assert_eq(r->nodes, nodes, "%s lists %d of %d ports", path, r->nodes, nodes);
}

/* Runs the keeper once; true when the cluster serves, with r filled in. On failure the
 * keeper has exited or been stopped, and why is in why. */
static bool cluster_try(ts_redis_t *r, const char *script, int masters, int replicas, char *why,
                        size_t why_size)
{
    char cluster_dir[96], log[96], port_file[128], url_file[128], port_s[16];
    snprintf(cluster_dir, sizeof(cluster_dir), "%s/c", r->dir);
    snprintf(log, sizeof(log), "%s/keeper.log", r->dir);
    snprintf(port_file, sizeof(port_file), "%s/port", cluster_dir);
    snprintf(url_file, sizeof(url_file), "%s/url", cluster_dir);
    r->pid = keeper_spawn(script, cluster_dir, r->dir, log, masters, replicas);
    remember(r->dir, r->pid, true);
    uint64_t deadline = ts_now_ms() + CLUSTER_START_MS;
    while (ts_now_ms() < deadline && ts_proc_alive(r->pid)) {
        /* The script writes the port file last. */
        if (read_line(port_file, port_s, sizeof(port_s)) && atoi(port_s) > 0) {
            cr_assert(read_line(url_file, r->url, sizeof(r->url)), "no seed list in %s", url_file);
            r->port = atoi(port_s);
            r->cluster = true;
            read_ports(r, cluster_dir, masters * (1 + replicas));
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

void ts_redis_start_cluster(ts_redis_t *r, int masters, int replicas)
{
    cr_assert(!r->pid, "this private cluster runs already");
    char script[1024], why[1200] = "";
    snprintf(script, sizeof(script), "%s/tests/support/redis_cluster_fixture.sh",
             ts_env("TIDINGS_SOURCE_DIR"));
    /* Nodes draw ports that were free a moment ago: a clash fails a start, not the next. */
    for (int attempt = 0; attempt < CLUSTER_ATTEMPTS; attempt++) {
        snprintf(r->dir, sizeof(r->dir), "/tmp/tidings-test-cluster-XXXXXX");
        cr_assert(mkdtemp(r->dir), "mkdtemp failed");
        if (cluster_try(r, script, masters, replicas, why, sizeof(why)))
            return;
    }
    r->dir[0] = '\0';
    cr_assert_fail("a private redis cluster did not start (%d attempts); the last one, %s",
                   CLUSTER_ATTEMPTS, why);
}

void ts_redis_start_like_fixture(ts_redis_t *r)
{
    if (ts_redis_fixture_is_cluster())
        ts_redis_start_cluster(r, 3, 0);
    else
        single_start(r, 0, false);
}

void ts_redis_shutdown(ts_redis_t *r)
{
    cr_assert(!r->cluster, "a private cluster is not shut down: skip the test in the cluster "
                           "run (ts_redis_skip_on_cluster)");
    redisContext *c = ts_redis_connect(r->port);
    redisReply *rep = redisCommand(c, "SHUTDOWN");
    /* A successful SHUTDOWN never answers: the connection just closes. */
    cr_assert(!rep || rep->type != REDIS_REPLY_ERROR, "SHUTDOWN failed: %s", rep ? rep->str : "");
    if (rep)
        freeReplyObject(rep);
    ts_redis_close(c);
    cr_assert(ts_proc_wait(r->pid, 20000) != -1, "redis-server did not exit after SHUTDOWN");
    r->pid = 0;
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

/* ---- one node of a private cluster ----------------------------------------------------------- */

#define NODE_ANSWER_MS 1000 /* a node that does not answer by then is down, or paused */
#define NODE_GONE_MS 10000
#define NODE_LOAD_MS 30000 /* PING answers -LOADING while the AOF loads */
#define AOF_READY_MS 20000

/* One command on a new connection to a node, answered within NODE_ANSWER_MS (returns new;
 * NULL when it did not answer): a node may be killed or stopped, and must not hold the test
 * for the 30 s of ts_redis_connect. */
static redisReply *node_command(int port, const char *fmt, ...)
{
    struct timeval tv = {.tv_sec = NODE_ANSWER_MS / 1000, .tv_usec = NODE_ANSWER_MS % 1000 * 1000};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    redisReply *r = NULL;
    if (c && !c->err && redisSetTimeout(c, tv) == REDIS_OK) {
        va_list ap;
        va_start(ap, fmt);
        r = redisvCommand(c, fmt, ap);
        va_end(ap);
    }
    if (c)
        redisFree(c);
    return r;
}

/* The value of field in INFO text ("field:value\r\n") into buf; false when absent. */
static bool info_field(const char *info, const char *field, char *buf, size_t size)
{
    size_t n = strlen(field);
    for (const char *at = info; at && *at; at = strchr(at, '\n'), at = at ? at + 1 : NULL) {
        if (strncmp(at, field, n) == 0 && at[n] == ':') {
            snprintf(buf, size, "%.*s", (int)strcspn(at + n + 1, "\r\n"), at + n + 1);
            return true;
        }
    }
    return false;
}

/* INFO section of the node on port into buf; false when it did not answer. */
static bool node_info(int port, const char *section, char *buf, size_t size)
{
    redisReply *r = node_command(port, "INFO %s", section);
    bool ok = r && r->type == REDIS_REPLY_STRING;
    if (ok)
        snprintf(buf, size, "%s", r->str);
    if (r)
        freeReplyObject(r);
    return ok;
}

static pid_t node_pid(const ts_redis_t *r, int port)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/c/%d/redis.pid", r->dir, port);
    FILE *f = fopen(path, "r");
    cr_assert(f, "no pidfile %s", path);
    long pid = 0;
    bool ok = fscanf(f, "%ld", &pid) == 1 && pid > 0;
    fclose(f);
    cr_assert(ok, "no pid in %s", path);
    return (pid_t)pid;
}

/* Has pid exited? Its parent (not us: nodes daemonize) may leave it a zombie a while. */
static bool pid_gone(pid_t pid)
{
    char path[64], line[128];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return true;
    bool zombie = false;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "State:", 6) == 0)
            zombie = strchr(line, 'Z') != NULL;
    fclose(f);
    return zombie;
}

/* A CONFIG GET value of the first node that answers, other than port, into buf. */
static void cluster_config(const ts_redis_t *r, int port, const char *name, char *buf, size_t size)
{
    for (int i = 0; i < r->nodes; i++) {
        if (r->ports[i] == port)
            continue;
        redisReply *rep = node_command(r->ports[i], "CONFIG GET %s", name);
        bool ok = rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
                  rep->element[1]->type == REDIS_REPLY_STRING;
        if (ok)
            snprintf(buf, size, "%s", rep->element[1]->str);
        if (rep)
            freeReplyObject(rep);
        if (ok)
            return;
    }
    cr_assert_fail("no other node of the cluster answers CONFIG GET %s", name);
}

void ts_redis_cluster_aof(ts_redis_t *r)
{
    cr_assert(r->cluster, "ts_redis_cluster_aof needs a private cluster");
    for (int i = 0; i < r->nodes; i++) {
        /* fsync first, so no write is ever logged with less */
        static const char *const set[] = {"CONFIG SET appendfsync always",
                                          "CONFIG SET appendonly yes"};
        for (size_t k = 0; k < sizeof(set) / sizeof(set[0]); k++) {
            redisReply *rep = node_command(r->ports[i], set[k]);
            cr_assert(rep && rep->type == REDIS_REPLY_STATUS, "node %d: %s: %s", r->ports[i],
                      set[k], rep && rep->type == REDIS_REPLY_ERROR ? rep->str : "no answer");
            freeReplyObject(rep);
        }
    }
    /* CONFIG SET appendonly yes starts a rewrite: the AOF exists once it is over. */
    for (int i = 0; i < r->nodes; i++) {
        uint64_t deadline = ts_now_ms() + AOF_READY_MS;
        char info[4096], done[16] = "", busy[16] = "", waiting[16] = "";
        for (;;) {
            if (node_info(r->ports[i], "persistence", info, sizeof(info)) &&
                info_field(info, "aof_rewrites", done, sizeof(done)) &&
                info_field(info, "aof_rewrite_in_progress", busy, sizeof(busy)) &&
                info_field(info, "aof_rewrite_scheduled", waiting, sizeof(waiting)) &&
                atoi(done) > 0 && strcmp(busy, "0") == 0 && strcmp(waiting, "0") == 0)
                break;
            cr_assert(ts_now_ms() < deadline, "node %d wrote no AOF within %d ms", r->ports[i],
                      AOF_READY_MS);
            ts_sleep_ms(20);
        }
    }
}

void ts_redis_cluster_kill_node(ts_redis_t *r, int port)
{
    cr_assert(r->cluster, "ts_redis_cluster_kill_node needs a private cluster");
    pid_t pid = node_pid(r, port);
    cr_assert(kill(pid, SIGKILL) == 0, "kill %d (node %d): %s", (int)pid, port, strerror(errno));
    uint64_t deadline = ts_now_ms() + NODE_GONE_MS;
    while (!pid_gone(pid)) {
        cr_assert(ts_now_ms() < deadline, "node %d (pid %d) still runs %d ms after SIGKILL", port,
                  (int)pid, NODE_GONE_MS);
        ts_sleep_ms(5);
    }
}

/* Forks argv (a daemonizing redis-server) with only stdin, stdout and stderr open, all three
 * on /dev/null, and reaps the parent it leaves. Like the keeper, the node must hold no
 * descriptor of the test (a stream's socket it kept open would never close on the server). */
static void daemon_spawn(char *const argv[])
{
    pid_t parent = getpid();
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork failed");
    if (pid == 0) {
        if (getppid() != parent)
            _exit(127);
        int null = open("/dev/null", O_RDWR);
        if (null < 0)
            _exit(127);
        dup2(null, STDIN_FILENO);
        dup2(null, STDOUT_FILENO);
        dup2(null, STDERR_FILENO);
        for (int fd = STDERR_FILENO + 1; fd < 1024; fd++)
            close(fd);
        execvp(argv[0], argv);
        _exit(127);
    }
    int status = 0;
    cr_assert(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "%s did not daemonize (wait status %d)", argv[0], status);
}

void ts_redis_cluster_restart_node(ts_redis_t *r, int port)
{
    cr_assert(r->cluster, "ts_redis_cluster_restart_node needs a private cluster");
    cr_assert(!ts_redis_pings(port), "node %d still answers: kill it first", port);
    /* As redis_cluster_fixture.sh starts a node, with what the others run with now (the node
     * timeout, and the AOF if ts_redis_cluster_aof turned it on). */
    char timeout[32], aof[8], fsync[16], port_s[16], dir[96], pidfile[128], log[128];
    cluster_config(r, port, "cluster-node-timeout", timeout, sizeof(timeout));
    cluster_config(r, port, "appendonly", aof, sizeof(aof));
    cluster_config(r, port, "appendfsync", fsync, sizeof(fsync));
    snprintf(port_s, sizeof(port_s), "%d", port);
    snprintf(dir, sizeof(dir), "%s/c/%d", r->dir, port);
    snprintf(pidfile, sizeof(pidfile), "%s/redis.pid", dir);
    snprintf(log, sizeof(log), "%s/redis.log", dir);
    const char *bin = getenv("TIDINGS_REDIS_SERVER");
    char bin_copy[256];
    snprintf(bin_copy, sizeof(bin_copy), "%s", bin && *bin ? bin : "redis-server");
    /* clang-format off */
    char *argv[] = {bin_copy, "--bind", "127.0.0.1", "--port", port_s,
                    "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                    "--cluster-node-timeout", timeout, "--save", "", "--appendonly", aof,
                    "--appendfsync", fsync, "--dir", dir, "--daemonize", "yes",
                    "--pidfile", pidfile, "--logfile", log, NULL};
    /* clang-format on */
    daemon_spawn(argv);
    uint64_t deadline = ts_now_ms() + NODE_LOAD_MS;
    while (!ts_redis_pings(port)) {
        cr_assert(ts_now_ms() < deadline, "node %d did not serve within %d ms of its restart (%s)",
                  port, NODE_LOAD_MS, log);
        ts_sleep_ms(10);
    }
}

ts_node_role_t ts_redis_node_role(int port, int *master_port)
{
    char info[4096], role[16] = "", link[16] = "", of[16] = "0";
    if (!node_info(port, "replication", info, sizeof(info)) ||
        !info_field(info, "role", role, sizeof(role)))
        return TS_NODE_DOWN;
    if (strcmp(role, "master") == 0)
        return TS_NODE_MASTER;
    info_field(info, "master_port", of, sizeof(of));
    if (master_port)
        *master_port = atoi(of);
    info_field(info, "master_link_status", link, sizeof(link));
    return strcmp(link, "up") == 0 ? TS_NODE_REPLICA : TS_NODE_SYNCING;
}

bool ts_redis_cluster_settled(const ts_redis_t *r)
{
    cr_assert(r->cluster, "ts_redis_cluster_settled needs a private cluster");
    for (int i = 0; i < r->nodes; i++) {
        ts_node_role_t role = ts_redis_node_role(r->ports[i], NULL);
        if (role != TS_NODE_MASTER && role != TS_NODE_REPLICA)
            return false;
        char state[16] = "";
        redisReply *rep = node_command(r->ports[i], "CLUSTER INFO");
        bool ok = rep && rep->type == REDIS_REPLY_STRING &&
                  info_field(rep->str, "cluster_state", state, sizeof(state)) &&
                  strcmp(state, "ok") == 0;
        if (rep)
            freeReplyObject(rep);
        if (!ok)
            return false;
    }
    return true;
}
