/* tests/fanout/fx.c -- private Redis servers, bulk graphs and API helpers for the fan-out
 * tests (see fx.h).
 *
 * Bulk work is pipelined (hundreds of thousands of commands in batches of 10,000), so a test
 * with 100,000 followers spends well under a second setting up or checking them. Every wait
 * is bounded and fails the test with what it last saw.
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

static pid_t tracked_pids[MAX_TRACKED];
static char tracked_dirs[MAX_TRACKED][64];
static redisContext *tracked_conns[MAX_TRACKED];
static bool atexit_set;

static void track_pid(pid_t pid)
{
    if (!atexit_set) {
        atexit(fx_teardown);
        atexit_set = true;
    }
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

void fx_teardown(void)
{
    for (int i = 0; i < MAX_TRACKED; i++) {
        if (tracked_conns[i])
            redisFree(tracked_conns[i]);
        tracked_conns[i] = NULL;
    }
    for (int i = 0; i < MAX_TRACKED; i++) {
        /* Only a child of ours that still runs: waitpid refuses anyone else's pid. */
        if (tracked_pids[i] > 0 && ts_proc_alive(tracked_pids[i]))
            ts_proc_kill(tracked_pids[i]);
        tracked_pids[i] = 0;
    }
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

void fx_redis_start(fx_redis_t *r, bool aof)
{
    memset(r, 0, sizeof(*r));
    r->aof = aof;
    snprintf(r->dir, sizeof(r->dir), "/tmp/tidings-fanout-XXXXXX");
    cr_assert(mkdtemp(r->dir), "mkdtemp failed: %s", strerror(errno));
    track_dir(r->dir);
    for (int attempt = 0; attempt < 5; attempt++) {
        r->port = ts_free_port();
        if (spawn_redis(r)) {
            snprintf(r->url, sizeof(r->url), "redis://127.0.0.1:%d", r->port);
            return;
        }
    }
    cr_assert_fail("redis-server did not start (see %s/redis.log)", r->dir);
}

void fx_redis_shutdown(fx_redis_t *r)
{
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
    for (int attempt = 0; attempt < 10; attempt++) {
        if (spawn_redis(r))
            return;
        ts_sleep_ms(200);
    }
    cr_assert_fail("redis-server did not restart on port %d (see %s/redis.log)", r->port, r->dir);
}

redisContext *fx_connect(int port)
{
    struct timeval tv = {.tv_sec = 5, .tv_usec = 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    cr_assert(c && !c->err, "connect to redis on port %d failed: %s", port, c ? c->errstr : "");
    redisSetTimeout(c, (struct timeval){.tv_sec = 30, .tv_usec = 0});
    for (int i = 0; i < MAX_TRACKED; i++)
        if (!tracked_conns[i]) {
            tracked_conns[i] = c;
            return c;
        }
    cr_assert_fail("too many redis connections for one test");
    return NULL;
}

void fx_close(redisContext *c)
{
    for (int i = 0; i < MAX_TRACKED; i++)
        if (tracked_conns[i] == c)
            tracked_conns[i] = NULL;
    redisFree(c);
}

static redisReply *vcmd(redisContext *c, const char *fmt, va_list ap)
{
    redisReply *r = redisvCommand(c, fmt, ap);
    cr_assert(r, "redis command '%s' failed: %s", fmt, c->errstr);
    cr_assert(r->type != REDIS_REPLY_ERROR, "redis command '%s': %s", fmt, r->str);
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
        cr_assert(redisAppendCommandArgv(c, argc, argv, NULL) == REDIS_OK);
        sent++;
    }
    for (size_t i = 0; i < sent; i++) {
        redisReply *r = get_reply(c);
        cr_assert(r->type == REDIS_REPLY_INTEGER, "ZADD followers failed: %s",
                  r->type == REDIS_REPLY_ERROR ? r->str : "?");
        freeReplyObject(r);
    }
    cr_assert_eq(fx_int(c, "ZCARD %s", key), (long long)n, "followers of %llu",
                 (unsigned long long)author);
}

size_t fx_count_holding(redisContext *c, uint64_t post, uint64_t base, size_t n, size_t *missing)
{
    size_t holding = 0, first_missing = n;
    for (size_t i = 0; i < n; i += BATCH) {
        size_t m = n - i < BATCH ? n - i : BATCH;
        for (size_t k = 0; k < m; k++)
            redisAppendCommand(c, "ZSCORE tl:{%llu} %llu", (unsigned long long)(base + i + k),
                               (unsigned long long)post);
        for (size_t k = 0; k < m; k++) {
            redisReply *r = get_reply(c);
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
        for (size_t k = 0; k < m; k++)
            redisAppendCommand(c, "ZCARD tl:{%llu}", (unsigned long long)(base + i + k));
        for (size_t k = 0; k < m; k++) {
            redisReply *r = get_reply(c);
            cr_assert(r->type == REDIS_REPLY_INTEGER, "ZCARD gave no integer");
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

void fx_queue(redisContext *c, long long *length, long long *pending)
{
    *length = fx_int(c, "XLEN fanout:{0}");
    redisReply *r = fx_cmd(c, "XPENDING fanout:{0} engine");
    cr_assert(r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
              r->element[0]->type == REDIS_REPLY_INTEGER);
    *pending = r->element[0]->integer;
    freeReplyObject(r);
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
