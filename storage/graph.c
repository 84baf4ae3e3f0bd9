/* storage/graph.c -- the follow graph.
 *
 * An edge is written twice, following:{a} and followers:{b}, both scored by one fresh id
 * (time-ordered and unique, so it doubles as a pagination cursor). The two keys live in
 * different slots, so they cannot share a transaction; the same round trip also queues
 * the follow or unfollow job. A request retried after a crash therefore repairs a half
 * written edge and queues the job again, which the engine applies idempotently.
 */
#include "storage/storage_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int user_exists(storage_t *s, uint64_t id)
{
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    storage_redis_batch_add(&b, "EXISTS " K_USER, (ull)id);
    int rc = storage_redis_batch_run(&b);
    if (rc == 0)
        rc = storage_redis_is_error(b.r[0]) ? -EIO : storage_redis_int(b.r[0]) == 1 ? 0 : -ENOENT;
    storage_redis_batch_free(&b);
    return rc;
}

static int change_edge(storage_t *s, uint64_t a, uint64_t b_id, bool add, bool *changed)
{
    int rc = user_exists(s, b_id);
    if (rc)
        return rc;
    bool blocked = false;
    if (add && (rc = storage_blocked_between(s, a, b_id, &blocked)) != 0)
        return rc;
    if (blocked)
        return -EPERM;
    /* The edge's id scores it, and orders the job's effects (notifications) in time. */
    uint64_t edge = storage_id_next(s);
    if (!edge)
        return -EAGAIN;
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    if (add) {
        storage_redis_batch_add(&b, "ZADD " K_FOLLOWING " NX %llu %llu", (ull)a, (ull)edge,
                                (ull)b_id);
        storage_redis_batch_add(&b, "ZADD " K_FOLLOWERS " NX %llu %llu", (ull)b_id, (ull)edge,
                                (ull)a);
    } else {
        storage_redis_batch_add(&b, "ZREM " K_FOLLOWING " %llu", (ull)a, (ull)b_id);
        storage_redis_batch_add(&b, "ZREM " K_FOLLOWERS " %llu", (ull)b_id, (ull)a);
    }
    storage_redis_batch_barrier(&b);
    storage_redis_batch_add(&b, "XADD " K_FANOUT " * kind %s follower %llu followee %llu at %llu",
                            storage__shard(s, a), add ? "follow" : "unfollow", (ull)a, (ull)b_id,
                            (ull)edge);
    rc = storage_redis_batch_run_checked(&b);
    if (rc == 0)
        *changed = storage_redis_int(b.r[0]) > 0 || storage_redis_int(b.r[1]) > 0;
    storage_redis_batch_free(&b);
    return rc;
}

int storage_follow(storage_t *s, uint64_t follower, uint64_t followee, bool *changed)
{
    return change_edge(s, follower, followee, true, changed);
}

int storage_unfollow(storage_t *s, uint64_t follower, uint64_t followee, bool *changed)
{
    return change_edge(s, follower, followee, false, changed);
}

int storage_edges_page(storage_t *s, storage_edge_t which, uint64_t user, uint64_t cursor,
                       size_t limit, storage_page_t *out)
{
    return storage__zpage(s, which == STORAGE_FOLLOWERS ? K_FOLLOWERS : K_FOLLOWING, user,
                          cursor, limit, out);
}
