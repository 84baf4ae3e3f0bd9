/* tests/scaleout/so.c -- feeds over reconnecting streams, whole timelines, and the job queue
 * seen through hiredis, for the scale-out tests (so.h).
 *
 * A feed keeps what a browser's EventSource keeps -- the last event id -- and resumes from
 * it on whichever process f->port names, so a test can move a follower off a process it
 * killed. Order is checked on event ids, which the server assigns per user in log order.
 */
#include "tests/scaleout/so.h"

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

void so_feed_open(so_feed_t *f, int port, const ts_user_t *u)
{
    memset(f, 0, sizeof(*f));
    f->port = port;
    snprintf(f->token, sizeof(f->token), "%s", u->token);
    ts_sse_opts_t o = {.token = f->token};
    f->c = ts_stream_opts(port, &o);
    f->connections = 1;
}

/* One event already complete or arriving within wait_ms; false when none (or the end). */
static bool take_one(so_feed_t *f, int wait_ms)
{
    ts_sse_item_t ev;
    ts_sse_kind_t k = ts_sse_next_event(f->c, &ev, wait_ms);
    if (k == TS_SSE_END) {
        f->ends++;
        ts_sse_close(f->c);
        f->c = NULL;
        return false;
    }
    if (k != TS_SSE_EVENT)
        return false;
    cr_assert(ev.has_id && ev.id[0], "an event without id (type '%s')", ev.type);
    if (f->last_id[0])
        cr_assert_gt(ts_sse_id_cmp(ev.id, f->last_id), 0,
                     "event %s (type '%s') came after %s: a duplicate or out of order", ev.id,
                     ev.type, f->last_id);
    snprintf(f->last_id, sizeof(f->last_id), "%s", ev.id);
    if (strcmp(ev.type, "feed") == 0 && ev.has_data) {
        json_t *j = ts_sse_data(&ev);
        const char *id = ts_str(j, "id");
        cr_assert(id[0], "feed event %s without a post id: %.200s", ev.id, ev.data);
        feed_add(f, id, ts_str(j, "text"));
        json_decref(j);
    } else {
        /* Notifications (follows, mentions) come too; a bare id moves the position on. */
        cr_assert(strcmp(ev.type, "notification") == 0 || !ev.has_data,
                  "unexpected '%s' event %s on the stream: %.300s", ev.type, ev.id,
                  ev.data ? ev.data : "");
        f->other_events++;
    }
    ts_sse_item_clear(&ev);
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
    ts_sse_opts_t o = {.token = f->token, .last_event_id = f->last_id[0] ? f->last_id : NULL};
    ts_sse_t *c = ts_sse_open(f->port, &o, TS_SSE_OPEN_MS);
    f->connections++;
    if (c->status != 200) {
        f->refused++;
        ts_sse_close(c);
        return false;
    }
    ts_sse_item_t it;
    ts_sse_kind_t k = ts_sse_next(c, &it, TS_SSE_OPEN_MS);
    cr_assert(k == TS_SSE_RETRY && it.retry_ms == 3000,
              "a reopened stream did not start with retry: 3000 (item kind %d)", k);
    ts_sse_item_clear(&it);
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
    ts_sse_close(f->c);
    free(f->post);
    free(f->text);
    memset(f, 0, sizeof(*f));
}

/* ---- behind the server ----------------------------------------------------------------------- */

/* The fanout:{n} streams (fanout:dead is not one). Returns how many names went into names. */
static size_t job_streams(redisContext *c, char names[][32], size_t cap)
{
    size_t n = 0;
    redisReply *r = ts_redis_cmd(c, "KEYS fanout:{*}");
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
        redisReply *r = ts_redis_cmd(c, "XRANGE %s - + COUNT 1000", names[s]);
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
            redisReply *p = ts_redis_cmd(c, "XPENDING %s engine %s %s 1", names[s],
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

/* ---- a private Redis Cluster ----------------------------------------------------------------- */

int so_cluster_master_of(const ts_redis_t *cl, int slot)
{
    for (int i = 0; i < cl->nodes; i++) {
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

pid_t so_cluster_node_pid(const ts_redis_t *cl, int port)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/c/%d/redis.pid", cl->dir, port);
    FILE *f = fopen(path, "r");
    cr_assert(f, "no pidfile %s", path);
    long pid = 0;
    cr_assert(fscanf(f, "%ld", &pid) == 1 && pid > 0, "no pid for the node on port %d", port);
    fclose(f);
    return (pid_t)pid;
}

int so_user_slot(const char *id)
{
    char key[48];
    snprintf(key, sizeof(key), "user:{%s}", id);
    return ts_redis_key_slot(key);
}
