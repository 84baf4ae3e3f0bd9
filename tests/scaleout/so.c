/* tests/scaleout/so.c -- a private cluster's topology and the job queue seen through hiredis,
 * for the scale-out tests (so.h). A follower's feed is ts_feed_t (tests/support/feed.c). */
#include "tests/scaleout/so.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
