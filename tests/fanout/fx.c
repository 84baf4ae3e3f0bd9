/* tests/fanout/fx.c -- private Redis servers (or clusters), bulk graphs and API helpers for
 * the fan-out tests (see fx.h).
 *
 * Bulk work is pipelined (hundreds of thousands of commands in batches of 10,000), so a test
 * with 100,000 followers spends well under a second setting up or checking them. On a
 * cluster a pipeline goes to several nodes at once: each command is appended to the
 * connection of its key's node (the slot map comes from CLUSTER SLOTS when fx_connect
 * connects) and the replies are read back in the order the commands were appended. Every
 * wait is bounded and fails the test with what it last saw.
 */
#define _XOPEN_SOURCE 700
#include "tests/fanout/fx.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define BATCH 10000
#define MAX_TRACKED 32
#define MAX_CLUSTERS 4
#define MAX_NODES 8
#define MAX_REDIRECTS 5
#define SLOTS 16384

/* A connection a test holds (c, what fx_connect returned) and, on a cluster, the connections
 * to every master with the map of which serves each slot. */
typedef struct conn_s {
    redisContext *c;
    int n;                          /* nodes in use; nodes[0] is c */
    int ports[MAX_NODES];
    redisContext *nodes[MAX_NODES];
    unsigned char *slot_node;       /* SLOTS node indexes; NULL on a single redis-server */
} conn_t;

static pid_t tracked_pids[MAX_TRACKED];
static char tracked_dirs[MAX_TRACKED][64];
static conn_t tracked_conns[MAX_TRACKED];
static ts_redis_t clusters[MAX_CLUSTERS];
static bool atexit_set;

static void set_atexit(void)
{
    if (!atexit_set) {
        atexit(fx_teardown);
        atexit_set = true;
    }
}

static void track_pid(pid_t pid)
{
    set_atexit();
    for (int i = 0; i < MAX_TRACKED; i++)
        if (tracked_pids[i] == 0) {
            tracked_pids[i] = pid;
            return;
        }
    cr_assert_fail("too many processes for one test");
}

static void track_dir(const char *dir)
{
    for (int i = 0; i < MAX_TRACKED; i++)
        if (!tracked_dirs[i][0]) {
            snprintf(tracked_dirs[i], sizeof(tracked_dirs[i]), "%s", dir);
            return;
        }
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void conn_free(conn_t *k)
{
    for (int i = 0; i < k->n; i++)
        redisFree(k->nodes[i]);
    free(k->slot_node);
    memset(k, 0, sizeof(*k));
}

void fx_teardown(void)
{
    for (int i = 0; i < MAX_TRACKED; i++)
        if (tracked_conns[i].c)
            conn_free(&tracked_conns[i]);
    for (int i = 0; i < MAX_TRACKED; i++) {
        /* Only a child of ours that still runs: waitpid refuses anyone else's pid. */
        if (tracked_pids[i] > 0 && ts_proc_alive(tracked_pids[i]))
            ts_proc_kill(tracked_pids[i]);
        tracked_pids[i] = 0;
    }
    for (int i = 0; i < MAX_CLUSTERS; i++)
        if (clusters[i].pid > 0)
            ts_redis_cleanup(&clusters[i]);
    for (int i = 0; i < MAX_TRACKED; i++) {
        if (tracked_dirs[i][0])
            nftw(tracked_dirs[i], remove_entry, 8, FTW_DEPTH | FTW_PHYS);
        tracked_dirs[i][0] = '\0';
    }
}

uint64_t fx_id(const char *s)
{
    if (!s || !*s)
        return 0;
    uint64_t v = 0;
    for (const char *c = s; *c; c++) {
        if (*c < '0' || *c > '9')
            return 0;
        v = v * 10 + (uint64_t)(*c - '0');
    }
    return v;
}

uint64_t fx_json_id(void *obj, const char *key)
{
    return fx_id(json_string_value(json_object_get(obj, key)));
}

/* ---- redis ----------------------------------------------------------------------------------- */

static bool answers_pong(int port)
{
    struct timeval tv = {.tv_sec = 0, .tv_usec = 300000};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    bool ok = false;
    if (c && !c->err) {
        redisReply *r = redisCommand(c, "PING");
        /* While an AOF loads, PING answers -LOADING. */
        ok = r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
        if (r)
            freeReplyObject(r);
    }
    if (c)
        redisFree(c);
    return ok;
}

static bool spawn_redis(fx_redis_t *r)
{
    const char *bin = getenv("TIDINGS_REDIS_SERVER");
    char bin_copy[256], port_s[16], log[128];
    snprintf(bin_copy, sizeof(bin_copy), "%s", bin && *bin ? bin : "redis-server");
    snprintf(port_s, sizeof(port_s), "%d", r->port);
    snprintf(log, sizeof(log), "%s/redis.log", r->dir);
    /* clang-format off */
    char *argv[] = {bin_copy, "--bind", "127.0.0.1", "--port", port_s, "--save", "",
                    "--appendonly", r->aof ? "yes" : "no", "--appendfsync", "always",
                    "--dir", r->dir, "--logfile", log, NULL};
    /* clang-format on */
    r->pid = ts_proc_spawn(argv, NULL);
    track_pid(r->pid);
    uint64_t deadline = ts_now_ms() + 20000;
    while (ts_now_ms() < deadline && ts_proc_alive(r->pid)) {
        if (answers_pong(r->port))
            return true;
        ts_sleep_ms(10);
    }
    if (ts_proc_alive(r->pid))
        ts_proc_kill(r->pid);
    r->pid = 0;
    return false;
}

/* A private cluster in place of the redis-server. */
static void cluster_start(fx_redis_t *r)
{
    set_atexit();
    ts_redis_t *t = NULL;
    for (int i = 0; i < MAX_CLUSTERS && !t; i++)
        if (clusters[i].pid <= 0)
            t = &clusters[i];
    cr_assert(t, "too many private clusters for one test");
    memset(t, 0, sizeof(*t));
    ts_redis_start_like_fixture(t);
    r->port = t->port;
    snprintf(r->dir, sizeof(r->dir), "%s", t->dir);
    snprintf(r->url, sizeof(r->url), "%s", t->url);
}

void fx_redis_start(fx_redis_t *r, bool aof)
{
    memset(r, 0, sizeof(*r));
    r->aof = aof;
    if (ts_redis_fixture_is_cluster()) {
        cluster_start(r);
        return;
    }
    snprintf(r->dir, sizeof(r->dir), "/tmp/tidings-fanout-XXXXXX");
    cr_assert(mkdtemp(r->dir), "mkdtemp failed: %s", strerror(errno));
    track_dir(r->dir);
    for (int attempt = 0; attempt < 5; attempt++) {
        r->port = ts_free_port();
        if (spawn_redis(r)) {
            ts_redis_url(r->url, sizeof(r->url), r->port);
            return;
        }
    }
    cr_assert_fail("redis-server did not start (see %s/redis.log)", r->dir);
}

void fx_redis_shutdown(fx_redis_t *r)
{
    cr_assert(!ts_redis_fixture_is_cluster(), "a private cluster is not shut down: skip the "
                                              "test in the cluster run (ts_redis_skip_on_cluster)");
    redisContext *c = fx_connect(r->port);
    redisReply *rep = redisCommand(c, "SHUTDOWN");
    /* A successful SHUTDOWN never answers: the connection just closes. */
    cr_assert(!rep || rep->type != REDIS_REPLY_ERROR, "SHUTDOWN failed: %s", rep ? rep->str : "");
    if (rep)
        freeReplyObject(rep);
    fx_close(c);
    int status = ts_proc_wait(r->pid, 20000);
    cr_assert(status != -1, "redis-server did not exit after SHUTDOWN");
    r->pid = 0;
}

void fx_redis_restart(fx_redis_t *r)
{
    cr_assert(!ts_redis_fixture_is_cluster(), "a private cluster is not restarted: skip the "
                                              "test in the cluster run (ts_redis_skip_on_cluster)");
    for (int attempt = 0; attempt < 10; attempt++) {
        if (spawn_redis(r))
            return;
        ts_sleep_ms(200);
    }
    cr_assert_fail("redis-server did not restart on port %d (see %s/redis.log)", r->port, r->dir);
}

static redisContext *connect_node(int port)
{
    struct timeval tv = {.tv_sec = 5, .tv_usec = 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    cr_assert(c && !c->err, "connect to redis on port %d failed: %s", port, c ? c->errstr : "");
    redisSetTimeout(c, (struct timeval){.tv_sec = 30, .tv_usec = 0});
    return c;
}

/* The index of the node on port in k, connecting to it if it is new. */
static int node_index(conn_t *k, int port)
{
    for (int i = 0; i < k->n; i++)
        if (k->ports[i] == port)
            return i;
    cr_assert(k->n < MAX_NODES, "more than %d cluster nodes", MAX_NODES);
    k->nodes[k->n] = connect_node(port);
    k->ports[k->n] = port;
    return k->n++;
}

/* Which master serves each slot, from CLUSTER SLOTS (every slot must be served). */
static void load_slots(conn_t *k)
{
    k->slot_node = malloc(SLOTS);
    cr_assert(k->slot_node);
    memset(k->slot_node, 0xff, SLOTS);
    redisReply *r = redisCommand(k->c, "CLUSTER SLOTS");
    cr_assert(r && r->type == REDIS_REPLY_ARRAY, "CLUSTER SLOTS failed: %s",
              r && r->type == REDIS_REPLY_ERROR ? r->str : k->c->errstr);
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *range = r->element[i];
        cr_assert(range->type == REDIS_REPLY_ARRAY && range->elements >= 3 &&
                  range->element[2]->type == REDIS_REPLY_ARRAY &&
                  range->element[2]->elements >= 2);
        int node = node_index(k, (int)range->element[2]->element[1]->integer);
        for (long long s = range->element[0]->integer; s <= range->element[1]->integer; s++)
            if (s >= 0 && s < SLOTS)
                k->slot_node[s] = (unsigned char)node;
    }
    freeReplyObject(r);
    for (int s = 0; s < SLOTS; s++)
        cr_assert(k->slot_node[s] != 0xff, "slot %d is served by no node", s);
}

redisContext *fx_connect(int port)
{
    conn_t *k = NULL;
    for (int i = 0; i < MAX_TRACKED && !k; i++)
        if (!tracked_conns[i].c)
            k = &tracked_conns[i];
    cr_assert(k, "too many redis connections for one test");
    k->c = connect_node(port);
    k->nodes[0] = k->c;
    k->ports[0] = port;
    k->n = 1;
    if (ts_redis_fixture_is_cluster())
        load_slots(k);
    return k->c;
}

/* The tracked connection c belongs to; NULL for one fx_connect did not make. */
static conn_t *conn_of(redisContext *c)
{
    for (int i = 0; i < MAX_TRACKED; i++)
        if (tracked_conns[i].c == c)
            return &tracked_conns[i];
    return NULL;
}

void fx_close(redisContext *c)
{
    conn_t *k = conn_of(c);
    if (k)
        conn_free(k);
    else
        redisFree(c);
}

/* The connection a command on key goes to: its slot's node on a cluster, else c. */
static redisContext *node_for(redisContext *c, const char *key)
{
    conn_t *k = conn_of(c);
    if (!k || !k->slot_node)
        return c;
    return k->nodes[k->slot_node[ts_redis_key_slot(key)]];
}

/* Is r "-MOVED <slot> <host>:<port>"? Then *port is the node to ask. */
static bool moved(const redisReply *r, int *port)
{
    if (r->type != REDIS_REPLY_ERROR || strncmp(r->str, "MOVED ", 6) != 0)
        return false;
    const char *colon = strrchr(r->str, ':');
    *port = colon ? atoi(colon + 1) : 0;
    return *port > 0;
}

static redisReply *send_formatted(redisContext *c, const char *cmd, size_t len, const char *fmt)
{
    void *reply = NULL;
    cr_assert(redisAppendFormattedCommand(c, cmd, len) == REDIS_OK &&
                  redisGetReply(c, &reply) == REDIS_OK && reply,
              "redis command '%s' failed: %s", fmt, c->errstr);
    return reply;
}

/* The reply to a command, error replies included; on a cluster the command goes first to c,
 * then where -MOVED points. */
static redisReply *vcmd_any(redisContext *c, const char *fmt, va_list ap)
{
    char *cmd = NULL;
    int len = redisvFormatCommand(&cmd, fmt, ap);
    cr_assert(len > 0, "cannot format the redis command '%s'", fmt);
    conn_t *k = conn_of(c);
    redisReply *r = send_formatted(c, cmd, (size_t)len, fmt);
    int port;
    for (int hops = 0; k && k->slot_node && hops < MAX_REDIRECTS && moved(r, &port); hops++) {
        freeReplyObject(r);
        r = send_formatted(k->nodes[node_index(k, port)], cmd, (size_t)len, fmt);
    }
    redisFreeCommand(cmd);
    return r;
}

static redisReply *vcmd(redisContext *c, const char *fmt, va_list ap)
{
    redisReply *r = vcmd_any(c, fmt, ap);
    cr_assert(r->type != REDIS_REPLY_ERROR, "redis command '%s': %s", fmt, r->str);
    return r;
}

static redisReply *cmd_any(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = vcmd_any(c, fmt, ap);
    va_end(ap);
    return r;
}

redisReply *fx_cmd(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = vcmd(c, fmt, ap);
    va_end(ap);
    return r;
}

long long fx_int(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = vcmd(c, fmt, ap);
    va_end(ap);
    cr_assert(r->type == REDIS_REPLY_INTEGER, "'%s' gave no integer", fmt);
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

static redisReply *get_reply(redisContext *c)
{
    void *reply = NULL;
    cr_assert(redisGetReply(c, &reply) == REDIS_OK && reply, "pipelined read failed: %s",
              c->errstr);
    return reply;
}

void fx_add_followers(redisContext *c, uint64_t author, uint64_t base, size_t n)
{
    enum { PER_CMD = 1000 };
    static char nums[2 * PER_CMD][24];
    const char *argv[2 + 2 * PER_CMD];
    char key[48];
    snprintf(key, sizeof(key), "followers:{%llu}", (unsigned long long)author);
    redisContext *to = node_for(c, key);
    size_t sent = 0;
    for (size_t i = 0; i < n; i += PER_CMD) {
        size_t m = n - i < PER_CMD ? n - i : PER_CMD;
        int argc = 0;
        argv[argc++] = "ZADD";
        argv[argc++] = key;
        for (size_t k = 0; k < m; k++) {
            snprintf(nums[2 * k], sizeof(nums[0]), "%zu", i + k + 1);
            snprintf(nums[2 * k + 1], sizeof(nums[0]), "%llu", (unsigned long long)(base + i + k));
            argv[argc++] = nums[2 * k];
            argv[argc++] = nums[2 * k + 1];
        }
        cr_assert(redisAppendCommandArgv(to, argc, argv, NULL) == REDIS_OK);
        sent++;
    }
    for (size_t i = 0; i < sent; i++) {
        redisReply *r = get_reply(to);
        cr_assert(r->type == REDIS_REPLY_INTEGER, "ZADD followers failed: %s",
                  r->type == REDIS_REPLY_ERROR ? r->str : "?");
        freeReplyObject(r);
    }
    cr_assert_eq(fx_int(c, "ZCARD %s", key), (long long)n, "followers of %llu",
                 (unsigned long long)author);
}

/* The node of timeline tl:{user}. */
static redisContext *tl_node(redisContext *c, uint64_t user)
{
    char key[40];
    snprintf(key, sizeof(key), "tl:{%llu}", (unsigned long long)user);
    return node_for(c, key);
}

/* Where each command of a pipelined batch went, to read its reply from there. */
static redisContext *batch_to[BATCH];

size_t fx_count_holding(redisContext *c, uint64_t post, uint64_t base, size_t n, size_t *missing)
{
    size_t holding = 0, first_missing = n;
    for (size_t i = 0; i < n; i += BATCH) {
        size_t m = n - i < BATCH ? n - i : BATCH;
        for (size_t k = 0; k < m; k++) {
            batch_to[k] = tl_node(c, base + i + k);
            redisAppendCommand(batch_to[k], "ZSCORE tl:{%llu} %llu",
                               (unsigned long long)(base + i + k), (unsigned long long)post);
        }
        for (size_t k = 0; k < m; k++) {
            redisReply *r = get_reply(batch_to[k]);
            cr_assert(r->type != REDIS_REPLY_ERROR, "ZSCORE: %s", r->str);
            if (r->type == REDIS_REPLY_STRING)
                holding++;
            else if (first_missing == n)
                first_missing = i + k;
            freeReplyObject(r);
        }
    }
    if (missing)
        *missing = first_missing;
    return holding;
}

size_t fx_count_card(redisContext *c, uint64_t base, size_t n, long long card)
{
    size_t matching = 0;
    for (size_t i = 0; i < n; i += BATCH) {
        size_t m = n - i < BATCH ? n - i : BATCH;
        for (size_t k = 0; k < m; k++) {
            batch_to[k] = tl_node(c, base + i + k);
            redisAppendCommand(batch_to[k], "ZCARD tl:{%llu}", (unsigned long long)(base + i + k));
        }
        for (size_t k = 0; k < m; k++) {
            redisReply *r = get_reply(batch_to[k]);
            cr_assert(r->type == REDIS_REPLY_INTEGER, "ZCARD gave no integer%s%s",
                      r->type == REDIS_REPLY_ERROR ? ": " : "",
                      r->type == REDIS_REPLY_ERROR ? r->str : "");
            matching += r->integer == card;
            freeReplyObject(r);
        }
    }
    return matching;
}

bool fx_holds(redisContext *c, uint64_t user, uint64_t post)
{
    redisReply *r =
        fx_cmd(c, "ZSCORE tl:{%llu} %llu", (unsigned long long)user, (unsigned long long)post);
    bool holds = r->type == REDIS_REPLY_STRING;
    freeReplyObject(r);
    return holds;
}

/* An integer reply, or XPENDING's summary count; 0 for a shard without stream or group. */
static long long queue_count(redisContext *c, const char *fmt, int shard)
{
    redisReply *r = cmd_any(c, fmt, shard);
    long long v = 0;
    if (r->type == REDIS_REPLY_INTEGER)
        v = r->integer;
    else if (r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
             r->element[0]->type == REDIS_REPLY_INTEGER)
        v = r->element[0]->integer;
    else
        cr_assert(r->type == REDIS_REPLY_ERROR &&
                      (strstr(r->str, "NOGROUP") || strstr(r->str, "no such key")),
                  "%s on shard %d answered type %d: %s", fmt, shard, r->type,
                  r->str ? r->str : "");
    freeReplyObject(r);
    return v;
}

void fx_queue(redisContext *c, long long *length, long long *pending)
{
    *length = *pending = 0;
    for (int shard = 0; shard < TS_FANOUT_SHARDS; shard++) {
        *length += queue_count(c, "XLEN fanout:{%d}", shard);
        *pending += queue_count(c, "XPENDING fanout:{%d} engine", shard);
    }
}

bool fx_wait_queue_empty(redisContext *c, int timeout_ms)
{
    uint64_t deadline = ts_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        long long length, pending;
        fx_queue(c, &length, &pending);
        if (length == 0 && pending == 0)
            return true;
        if (ts_now_ms() >= deadline)
            return false;
        ts_sleep_ms(20);
    }
}

/* ---- the server ------------------------------------------------------------------------------ */

void fx_server_start(ts_server_t *s, const fx_redis_t *r, const char *const *extra)
{
    ts_server_start(s, r->url, extra, true);
    track_pid(s->pid);
}

void fx_server_stop(ts_server_t *s)
{
    int status = ts_server_stop(s, 20000);
    cr_assert(status != -1, "tidings did not stop within 20 s of SIGTERM");
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "tidings exited badly on SIGTERM (status 0x%x)", status);
}

void fx_server_crash(ts_server_t *s)
{
    ts_proc_kill(s->pid);
    s->pid = 0;
}

/* ---- the API --------------------------------------------------------------------------------- */

void fx_user(int port, const char *prefix, fx_user_t *u)
{
    memset(u, 0, sizeof(*u));
    ts_unique(u->handle, sizeof(u->handle), prefix);
    char body[128];
    snprintf(body, sizeof(body), "{\"handle\":\"%s\"}", u->handle);
    json_t *j = ts_call(port, "POST", "/v1/users", NULL, body, 201);
    u->id = fx_json_id(json_object_get(j, "user"), "id");
    const char *token = json_string_value(json_object_get(j, "token"));
    cr_assert(u->id && token && strlen(token) < sizeof(u->token), "bad registration answer");
    snprintf(u->token, sizeof(u->token), "%s", token);
    json_decref(j);
}

void fx_follow(int port, const fx_user_t *who, uint64_t whom)
{
    char path[64];
    snprintf(path, sizeof(path), "/v1/users/%llu/follow", (unsigned long long)whom);
    json_decref(ts_call(port, "PUT", path, who->token, NULL, 204));
}

void fx_unfollow(int port, const fx_user_t *who, uint64_t whom)
{
    char path[64];
    snprintf(path, sizeof(path), "/v1/users/%llu/follow", (unsigned long long)whom);
    json_decref(ts_call(port, "DELETE", path, who->token, NULL, 204));
}

uint64_t fx_post(int port, const fx_user_t *author, const char *text)
{
    json_t *body = json_pack("{s:s}", "text", text);
    char *s = json_dumps(body, 0);
    json_t *j = ts_call(port, "POST", "/v1/posts", author->token, s, 202);
    uint64_t id = fx_json_id(j, "id");
    cr_assert(id, "POST /v1/posts answered no id");
    json_decref(j);
    free(s);
    json_decref(body);
    return id;
}

void fx_delete(int port, const fx_user_t *author, uint64_t post)
{
    char path[64];
    snprintf(path, sizeof(path), "/v1/posts/%llu", (unsigned long long)post);
    json_decref(ts_call(port, "DELETE", path, author->token, NULL, 204));
}

size_t fx_timeline(int port, const fx_user_t *u, int limit, uint64_t *ids, uint64_t *authors,
                   size_t cap)
{
    char cursor[32] = "";
    size_t found = 0;
    uint64_t last = UINT64_MAX;
    for (int pages = 0;; pages++) {
        cr_assert(pages < 10000, "timeline pagination does not end");
        char path[128];
        snprintf(path, sizeof(path), "/v1/timeline?limit=%d%s%s", limit,
                 cursor[0] ? "&cursor=" : "", cursor);
        json_t *j = ts_call(port, "GET", path, u->token, NULL, 200);
        json_t *items = json_object_get(j, "items");
        cr_assert(json_is_array(items), "timeline page has no items");
        cr_assert(json_array_size(items) <= (size_t)limit, "page of %zu items for limit %d",
                  json_array_size(items), limit);
        size_t i;
        json_t *item;
        json_array_foreach(items, i, item)
        {
            uint64_t id = fx_json_id(item, "id");
            cr_assert(id, "timeline item without an id");
            cr_assert(id < last, "timeline not strictly newest first: %llu after %llu",
                      (unsigned long long)id, (unsigned long long)last);
            last = id;
            if (found < cap) {
                ids[found] = id;
                if (authors)
                    authors[found] = fx_json_id(json_object_get(item, "author"), "id");
            }
            found++;
        }
        json_t *next = json_object_get(j, "next_cursor");
        if (json_is_null(next) || !next) {
            json_decref(j);
            return found;
        }
        cr_assert(json_is_string(next), "next_cursor is neither null nor a string");
        snprintf(cursor, sizeof(cursor), "%s", json_string_value(next));
        json_decref(j);
    }
}

size_t fx_wait_timeline(int port, const fx_user_t *u, size_t n, int timeout_ms)
{
    uint64_t deadline = ts_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        json_t *j = ts_call(port, "GET", "/v1/timeline?limit=100", u->token, NULL, 200);
        size_t have = json_array_size(json_object_get(j, "items"));
        json_decref(j);
        if (have >= n || ts_now_ms() >= deadline)
            return have;
        ts_sleep_ms(20);
    }
}

static const char *find_metric(const char *text, const char *name)
{
    size_t len = strlen(name);
    for (const char *line = text; line && *line;) {
        if (strncmp(line, name, len) == 0 && line[len] == ' ')
            return line + len + 1;
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    return NULL;
}

static bool read_metric(int port, const char *name, double *out)
{
    ts_resp_t r;
    ts_http(port, "GET", "/metrics", NULL, NULL, NULL, &r);
    cr_assert(r.status == 200, "GET /metrics answered %d", r.status);
    const char *v = find_metric(r.body, name);
    if (v)
        *out = strtod(v, NULL);
    ts_resp_free(&r);
    return v != NULL;
}

double fx_metric(int port, const char *name)
{
    double v = 0;
    cr_assert(read_metric(port, name, &v), "metric %s is missing from /metrics", name);
    return v;
}

bool fx_has_metric(int port, const char *name)
{
    double v;
    return read_metric(port, name, &v);
}
