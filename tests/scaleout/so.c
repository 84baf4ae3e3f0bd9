/* tests/scaleout/so.c -- feeds over reconnecting streams, whole timelines, and the job queue
 * seen through hiredis, for the scale-out tests (so.h).
 *
 * A feed keeps what a browser's EventSource keeps -- the last event id -- and resumes from
 * it on whichever process f->port names, so a test can move a follower off a process it
 * killed. Order is checked on event ids, which the server assigns per user in log order.
 */
#include "tests/scaleout/so.h"

#include "storage/redis/slots.h"

#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

/* ---- a follower's feed ----------------------------------------------------------------------- */

static void feed_add(so_feed_t *f, const char *post, const char *text)
{
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 64;
        f->post = realloc(f->post, f->cap * sizeof(*f->post));
        f->text = realloc(f->text, f->cap * sizeof(*f->text));
        cr_assert(f->post && f->text);
    }
    snprintf(f->post[f->n], sizeof(f->post[0]), "%s", post);
    snprintf(f->text[f->n], sizeof(f->text[0]), "%s", text);
    f->n++;
}

void so_feed_open(so_feed_t *f, int port, const sx_user_t *u)
{
    memset(f, 0, sizeof(*f));
    f->port = port;
    snprintf(f->token, sizeof(f->token), "%s", u->token);
    sse_opts_t o = {.token = f->token};
    f->c = sx_stream_opts(port, &o);
    f->connections = 1;
}

/* One event already complete or arriving within wait_ms; false when none (or the end). */
static bool take_one(so_feed_t *f, int wait_ms)
{
    sse_item_t ev;
    sse_kind_t k = sse_next_event(f->c, &ev, wait_ms);
    if (k == SSE_END) {
        f->ends++;
        sse_close(f->c);
        f->c = NULL;
        return false;
    }
    if (k != SSE_EVENT)
        return false;
    cr_assert(ev.has_id && ev.id[0], "an event without id (type '%s')", ev.type);
    if (f->last_id[0])
        cr_assert_gt(sx_id_cmp(ev.id, f->last_id), 0,
                     "event %s (type '%s') came after %s: a duplicate or out of order", ev.id,
                     ev.type, f->last_id);
    snprintf(f->last_id, sizeof(f->last_id), "%s", ev.id);
    if (strcmp(ev.type, "feed") == 0 && ev.has_data) {
        json_t *j = sx_data(&ev);
        const char *id = sx_str(j, "id");
        cr_assert(id[0], "feed event %s without a post id: %.200s", ev.id, ev.data);
        feed_add(f, id, sx_str(j, "text"));
        json_decref(j);
    } else {
        /* Notifications (follows, mentions) come too; a bare id moves the position on. */
        cr_assert(strcmp(ev.type, "notification") == 0 || !ev.has_data,
                  "unexpected '%s' event %s on the stream: %.300s", ev.type, ev.id,
                  ev.data ? ev.data : "");
        f->other_events++;
    }
    sse_item_clear(&ev);
    return true;
}

bool so_feed_poll(so_feed_t *f, int wait_ms)
{
    if (!f->c)
        return false;
    bool first = true;
    for (int i = 0; i < 100000 && f->c; i++) {
        if (!take_one(f, first ? wait_ms : 0))
            break;
        first = false;
    }
    return f->c != NULL;
}

/* Opens the stream again after last_id; false when the server refused (or did not answer). */
static bool reopen(so_feed_t *f)
{
    sse_opts_t o = {.token = f->token, .last_event_id = f->last_id[0] ? f->last_id : NULL};
    sse_t *c = sse_open(f->port, &o, SX_OPEN_MS);
    f->connections++;
    if (c->status != 200) {
        f->refused++;
        sse_close(c);
        return false;
    }
    sse_item_t it;
    sse_kind_t k = sse_next(c, &it, SX_OPEN_MS);
    cr_assert(k == SSE_RETRY && it.retry_ms == 3000,
              "a reopened stream did not start with retry: 3000 (item kind %d)", k);
    sse_item_clear(&it);
    f->c = c;
    return true;
}

size_t so_feed_until(so_feed_t *f, size_t want, int timeout_ms)
{
    uint64_t deadline = ts_now_ms() + (uint64_t)timeout_ms;
    for (int round = 0; round < 100000 && f->n < want; round++) {
        int64_t left = (int64_t)deadline - (int64_t)ts_now_ms();
        if (left <= 0)
            break;
        if (!f->c && !reopen(f)) {
            ts_sleep_ms(200);
            continue;
        }
        take_one(f, left > 1000 ? 1000 : (int)left);
    }
    return f->n;
}

size_t so_feed_count(const so_feed_t *f, const char *post)
{
    size_t times = 0;
    for (size_t i = 0; i < f->n; i++)
        times += strcmp(f->post[i], post) == 0;
    return times;
}

void so_feed_free(so_feed_t *f)
{
    sse_close(f->c);
    free(f->post);
    free(f->text);
    memset(f, 0, sizeof(*f));
}

/* ---- timelines ------------------------------------------------------------------------------- */

uint64_t so_id(const char *s)
{
    if (!s || !*s)
        return 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    return *end ? 0 : (uint64_t)v;
}

static uint64_t json_id(const json_t *item)
{
    const json_t *id = json_object_get(item, "id");
    if (json_is_integer(id))
        return (uint64_t)json_integer_value(id);
    return so_id(json_string_value(id));
}

size_t so_timeline(int port, const char *token, uint64_t *ids, size_t cap)
{
    char cursor[64] = "";
    size_t found = 0;
    uint64_t last = UINT64_MAX;
    for (int page = 0; page < 1000; page++) {
        char path[160];
        snprintf(path, sizeof(path), "/v1/timeline?limit=100%s%s", cursor[0] ? "&cursor=" : "",
                 cursor);
        json_t *j = ts_call(port, "GET", path, token, NULL, 200);
        json_t *items = json_object_get(j, "items");
        cr_assert(json_is_array(items), "a timeline page without items");
        size_t i;
        json_t *item;
        json_array_foreach(items, i, item)
        {
            uint64_t id = json_id(item);
            cr_assert(id, "a timeline item without an id");
            cr_assert_lt(id, last, "timeline not strictly newest first: %llu after %llu",
                         (unsigned long long)id, (unsigned long long)last);
            last = id;
            if (found < cap)
                ids[found] = id;
            found++;
        }
        json_t *next = json_object_get(j, "next_cursor");
        bool more = json_is_string(next) && json_array_size(items) > 0;
        if (more)
            snprintf(cursor, sizeof(cursor), "%s", json_string_value(next));
        json_decref(j);
        if (!more)
            return found;
    }
    cr_assert_fail("timeline pagination does not end");
    return 0;
}

size_t so_wait_timeline(int port, const char *token, size_t n, uint64_t *ids, size_t cap,
                        int timeout_ms)
{
    uint64_t deadline = ts_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        size_t got = so_timeline(port, token, ids, cap);
        if (got >= n || ts_now_ms() >= deadline)
            return got;
        ts_sleep_ms(100);
    }
}

/* ---- behind the server ----------------------------------------------------------------------- */

redisContext *so_redis(int port)
{
    struct timeval tv = {.tv_sec = 5, .tv_usec = 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    cr_assert(c && !c->err, "redis connect to 127.0.0.1:%d failed: %s", port,
              c ? c->errstr : "out of memory");
    redisSetTimeout(c, tv);
    return c;
}

redisReply *so_cmd(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    cr_assert(r, "redis command '%s' got no reply: %s", fmt, c->errstr);
    return r;
}

static redisReply *next_reply(redisContext *c)
{
    redisReply *r = NULL;
    cr_assert(redisGetReply(c, (void **)&r) == REDIS_OK && r, "no pipelined reply: %s",
              c->errstr);
    return r;
}

void so_add_followers(redisContext *c, uint64_t author, uint64_t base, size_t n,
                      uint64_t score0)
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
            snprintf(nums[2 * k], sizeof(nums[0]), "%llu",
                     (unsigned long long)(score0 + i + k));
            snprintf(nums[2 * k + 1], sizeof(nums[0]), "%llu",
                     (unsigned long long)(base + i + k));
            argv[argc++] = nums[2 * k];
            argv[argc++] = nums[2 * k + 1];
        }
        cr_assert(redisAppendCommandArgv(c, argc, argv, NULL) == REDIS_OK);
        sent++;
    }
    for (size_t i = 0; i < sent; i++) {
        redisReply *r = next_reply(c);
        cr_assert(r->type == REDIS_REPLY_INTEGER, "ZADD %s failed: %s", key,
                  r->type == REDIS_REPLY_ERROR ? r->str : "?");
        freeReplyObject(r);
    }
}

void so_count_timelines(redisContext *c, uint64_t post, uint64_t base, size_t n,
                        size_t *holding, size_t *exactly_one)
{
    enum { BATCH = 2000 };
    size_t hold = 0, one = 0;
    for (size_t i = 0; i < n; i += BATCH) {
        size_t m = n - i < BATCH ? n - i : BATCH;
        for (size_t k = 0; k < m; k++) {
            unsigned long long u = (unsigned long long)(base + i + k);
            redisAppendCommand(c, "ZSCORE tl:{%llu} %llu", u, (unsigned long long)post);
            redisAppendCommand(c, "ZCARD tl:{%llu}", u);
        }
        for (size_t k = 0; k < m; k++) {
            redisReply *r = next_reply(c);
            hold += r->type == REDIS_REPLY_STRING;
            freeReplyObject(r);
            r = next_reply(c);
            one += r->type == REDIS_REPLY_INTEGER && r->integer == 1;
            freeReplyObject(r);
        }
    }
    if (holding)
        *holding = hold;
    if (exactly_one)
        *exactly_one = one;
}

/* The fanout:{n} streams (fanout:dead is not one). Returns how many names went into names. */
static size_t job_streams(redisContext *c, char names[][32], size_t cap)
{
    size_t n = 0;
    redisReply *r = so_cmd(c, "KEYS fanout:{*}");
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY);
    for (size_t i = 0; i < r->elements && n < cap; i++)
        snprintf(names[n++], sizeof(names[0]), "%s", r->element[i]->str);
    freeReplyObject(r);
    return n;
}

pid_t so_job_holder(redisContext *c, uint64_t post)
{
    char names[64][32];
    size_t n = job_streams(c, names, 64);
    char want[24];
    snprintf(want, sizeof(want), "%llu", (unsigned long long)post);
    pid_t holder = 0;
    for (size_t s = 0; s < n && !holder; s++) {
        redisReply *r = so_cmd(c, "XRANGE %s - + COUNT 1000", names[s]);
        for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements && !holder; i++) {
            const redisReply *e = r->element[i], *fields = e->element[1];
            bool is_post = false, is_ours = false;
            for (size_t k = 0; fields->type == REDIS_REPLY_ARRAY && k + 1 < fields->elements;
                 k += 2) {
                const char *name = fields->element[k]->str, *v = fields->element[k + 1]->str;
                is_post |= strcmp(name, "kind") == 0 && v && strcmp(v, "post") == 0;
                is_ours |= strcmp(name, "post") == 0 && v && strcmp(v, want) == 0;
            }
            if (!is_post || !is_ours)
                continue;
            redisReply *p = so_cmd(c, "XPENDING %s engine %s %s 1", names[s],
                                   e->element[0]->str, e->element[0]->str);
            if (p->type == REDIS_REPLY_ARRAY && p->elements == 1) {
                const char *consumer = p->element[0]->element[1]->str;
                const char *colon = consumer ? strchr(consumer, ':') : NULL;
                if (colon)
                    holder = (pid_t)strtol(colon + 1, NULL, 10);
            }
            freeReplyObject(p);
        }
        freeReplyObject(r);
    }
    return holder;
}

void so_queue(redisContext *c, long long *length, long long *pending, long long *dead)
{
    char names[64][32];
    size_t n = job_streams(c, names, 64);
    *length = *pending = 0;
    for (size_t s = 0; s < n; s++) {
        redisReply *r = so_cmd(c, "XLEN %s", names[s]);
        *length += r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
        freeReplyObject(r);
        r = so_cmd(c, "XPENDING %s engine", names[s]);
        if (r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
            r->element[0]->type == REDIS_REPLY_INTEGER)
            *pending += r->element[0]->integer;
        freeReplyObject(r);
    }
    redisReply *r = so_cmd(c, "XLEN fanout:dead");
    *dead = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
    freeReplyObject(r);
}

/* ---- a private Redis Cluster ----------------------------------------------------------------- */

/* The clusters still running, for the exit handler. */
static so_cluster_t *running[4];

/* Runs the fixture script; returns its exit status (-1: none within timeout_ms). */
static int fixture(const so_cluster_t *cl, const char *cmd, int masters, int replicas,
                   int timeout_ms)
{
    char script[1024], m[8], r[8];
    snprintf(script, sizeof(script), "%s/tests/support/redis_cluster_fixture.sh",
             ts_env("TIDINGS_SOURCE_DIR"));
    snprintf(m, sizeof(m), "%d", masters);
    snprintf(r, sizeof(r), "%d", replicas);
    char dir[64];
    snprintf(dir, sizeof(dir), "%s", cl->dir);
    char *argv[] = {"bash", script, (char *)cmd, dir, m, r, NULL};
    pid_t pid = ts_proc_spawn(argv, NULL);
    int status = ts_proc_wait(pid, timeout_ms);
    if (status == -1)
        ts_proc_kill(pid);
    return status == -1 ? -1 : WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static void stop_running(void)
{
    for (size_t i = 0; i < sizeof(running) / sizeof(running[0]); i++)
        if (running[i])
            so_cluster_stop(running[i]);
}

static void read_text(const so_cluster_t *cl, const char *name, char *buf, size_t size)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", cl->dir, name);
    FILE *f = fopen(path, "r");
    cr_assert(f, "the cluster fixture wrote no %s", path);
    size_t n = fread(buf, 1, size - 1, f);
    fclose(f);
    buf[n] = '\0';
}

void so_cluster_start(so_cluster_t *cl, int masters, int replicas)
{
    static bool atexit_set;
    if (!atexit_set) {
        atexit(stop_running);
        atexit_set = true;
    }
    memset(cl, 0, sizeof(*cl));
    cl->n = masters * (1 + replicas);
    cr_assert(cl->n <= SO_CLUSTER_MAX, "too many nodes");
    snprintf(cl->dir, sizeof(cl->dir), "/tmp/tidings-scaleout-XXXXXX");
    cr_assert(mkdtemp(cl->dir), "mkdtemp failed");
    bool listed = false;
    for (size_t i = 0; i < sizeof(running) / sizeof(running[0]) && !listed; i++)
        if (!running[i])
            listed = (running[i] = cl) != NULL;
    cr_assert(listed, "too many clusters");
    cr_assert_eq(fixture(cl, "start", masters, replicas, 120000), 0,
                 "the cluster fixture did not start (%s)", cl->dir);
    read_text(cl, "url", cl->url, sizeof(cl->url));
    cl->url[strcspn(cl->url, "\r\n")] = '\0';
    char list[256];
    read_text(cl, "ports", list, sizeof(list));
    char *p = list;
    for (int i = 0; i < cl->n; i++) {
        char *end;
        cl->ports[i] = (int)strtol(p, &end, 10);
        cr_assert(end != p && cl->ports[i] > 0, "%s/ports lists fewer than %d ports", cl->dir,
                  cl->n);
        p = end;
    }
}

void so_cluster_stop(so_cluster_t *cl)
{
    for (size_t i = 0; i < sizeof(running) / sizeof(running[0]); i++)
        if (running[i] == cl)
            running[i] = NULL;
    if (!cl->dir[0])
        return;
    fixture(cl, "stop", 0, 0, 30000);
    char *argv[] = {"rm", "-rf", cl->dir, NULL};
    ts_proc_wait(ts_proc_spawn(argv, NULL), 10000);
    cl->dir[0] = '\0';
}

int so_cluster_master_of(const so_cluster_t *cl, int slot)
{
    for (int i = 0; i < cl->n; i++) {
        struct timeval tv = {.tv_sec = 1, .tv_usec = 0};
        redisContext *c = redisConnectWithTimeout("127.0.0.1", cl->ports[i], tv);
        if (!c || c->err) {
            if (c)
                redisFree(c);
            continue;
        }
        redisSetTimeout(c, tv);
        redisReply *r = redisCommand(c, "CLUSTER SLOTS");
        int port = 0;
        for (size_t k = 0; r && r->type == REDIS_REPLY_ARRAY && k < r->elements && !port; k++) {
            const redisReply *e = r->element[k];
            if (e->type == REDIS_REPLY_ARRAY && e->elements >= 3 &&
                e->element[0]->integer <= slot && slot <= e->element[1]->integer &&
                e->element[2]->type == REDIS_REPLY_ARRAY && e->element[2]->elements >= 2)
                port = (int)e->element[2]->element[1]->integer;
        }
        if (r)
            freeReplyObject(r);
        redisFree(c);
        if (port)
            return port;
    }
    return 0;
}

pid_t so_cluster_node_pid(const so_cluster_t *cl, int port)
{
    char name[32], buf[32];
    snprintf(name, sizeof(name), "%d/redis.pid", port);
    read_text(cl, name, buf, sizeof(buf));
    pid_t pid = (pid_t)strtol(buf, NULL, 10);
    cr_assert(pid > 0, "no pid for the node on port %d", port);
    return pid;
}

int so_user_slot(const char *id)
{
    char key[48];
    int n = snprintf(key, sizeof(key), "user:{%s}", id);
    return storage_key_slot(key, (size_t)n);
}
