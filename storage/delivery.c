/* storage/delivery.c -- where one post's fan-out stands, for its author.
 *
 * delivery:{post} shares the post's slot, so reading it with the post's author is one round
 * trip. The engine writes it as the job goes (started, a progress line per chunk of
 * followers, finished); each write renews its day of life. Before the job starts there is
 * no hash, and the post itself says "queued": a post younger than the status's lifetime
 * without one has not started. Counts are absolute values from the job's memory, so a retry
 * that starts over writes them from zero instead of adding to them.
 */
#include "storage/storage_internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define DELIVERY_TTL_MS (DELIVERY_TTL_S * 1000ULL)

static const char *const state_names[] = {"queued", "running", "done", "dead"};

uint64_t storage__wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Opens a group that ends with the key's renewed day (end_write sends it). */
static storage_redis_group_t *begin_write(storage_async_t *sa, storage_status_cb cb, void *arg)
{
    return storage_redis_group_new(sa->redis, cb, arg);
}

static int end_write(storage_redis_group_t *g, uint64_t post)
{
    storage_redis_group_add(g, "EXPIRE " K_DELIVERY " %d", (ull)post, DELIVERY_TTL_S);
    return storage_redis_group_end(g);
}

int storage_delivery_started(storage_async_t *sa, uint64_t post, int64_t followers, bool merged,
                             storage_status_cb cb, void *arg)
{
    storage_redis_group_t *g = begin_write(sa, cb, arg);
    if (!g)
        return -ENOMEM;
    storage_redis_group_add(g,
                            "HSET " K_DELIVERY " state running started_at %llu finished_at 0 "
                            "followers %lld merged %d timelines 0 live 0",
                            (ull)post, (ull)storage__wall_ms(), (long long)followers,
                            merged ? 1 : 0);
    return end_write(g, post);
}

int storage_delivery_progress(storage_async_t *sa, uint64_t post, uint64_t timelines, uint64_t live,
                              storage_status_cb cb, void *arg)
{
    storage_redis_group_t *g = begin_write(sa, cb, arg);
    if (!g)
        return -ENOMEM;
    storage_redis_group_add(g, "HSET " K_DELIVERY " timelines %llu live %llu", (ull)post,
                            (ull)timelines, (ull)live);
    return end_write(g, post);
}

int storage_delivery_finished(storage_async_t *sa, uint64_t post, bool dead, uint64_t timelines,
                              uint64_t live, storage_status_cb cb, void *arg)
{
    storage_redis_group_t *g = begin_write(sa, cb, arg);
    if (!g)
        return -ENOMEM;
    storage_redis_group_add(
        g, "HSET " K_DELIVERY " state %s finished_at %llu timelines %llu live %llu", (ull)post,
        dead ? "dead" : "done", (ull)storage__wall_ms(), (ull)timelines, (ull)live);
    return end_write(g, post);
}

static storage_delivery_state_t state_of(const redisReply *r)
{
    for (size_t i = 0; r && r->type == REDIS_REPLY_STRING && i < 4; i++)
        if (strlen(state_names[i]) == r->len && memcmp(state_names[i], r->str, r->len) == 0)
            return (storage_delivery_state_t)i;
    return STORAGE_DELIVERY_RUNNING;
}

int storage_delivery_get(storage_t *s, uint64_t post, storage_delivery_t *out)
{
    memset(out, 0, sizeof(*out));
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    storage_redis_batch_add(&b, "HMGET " K_POST " author deleted", (ull)post);
    storage_redis_batch_add(
        &b, "HMGET " K_DELIVERY " state started_at finished_at followers merged timelines live",
        (ull)post);
    int rc = storage_redis_batch_run_checked(&b);
    const redisReply *p = rc == 0 ? b.r[0] : NULL, *d = rc == 0 ? b.r[1] : NULL;
    if (rc == 0 && (p->type != REDIS_REPLY_ARRAY || p->elements != 2 ||
                    d->type != REDIS_REPLY_ARRAY || d->elements != 7))
        rc = -EIO;
    if (rc == 0) {
        out->author = storage_redis_uint_str(p->element[0]);
        if (!out->author || storage_redis_uint_str(p->element[1]) == 1)
            rc = -ENOENT;
    }
    if (rc == 0 && d->element[0]->type != REDIS_REPLY_STRING) {
        /* No status: not started yet, unless it is older than a status lives. */
        out->state = STORAGE_DELIVERY_QUEUED;
        out->followers = -1;
        if (storage_id_time_ms(post) + DELIVERY_TTL_MS < storage__wall_ms())
            rc = -ENODATA;
    } else if (rc == 0) {
        out->state = state_of(d->element[0]);
        out->started_ms = storage_redis_uint_str(d->element[1]);
        out->finished_ms = storage_redis_uint_str(d->element[2]);
        out->followers = (int64_t)storage_redis_uint_str(d->element[3]);
        out->merged = storage_redis_uint_str(d->element[4]) == 1;
        out->timelines = storage_redis_uint_str(d->element[5]);
        out->live = storage_redis_uint_str(d->element[6]);
    }
    storage_redis_batch_free(&b);
    return rc;
}

const char *storage_delivery_state_name(storage_delivery_state_t state)
{
    return state_names[state];
}
