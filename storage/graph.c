/* storage/graph.c -- the follow graph.
 *
 * An edge is written twice, following:{a} and followers:{b}, both scored by one fresh id
 * (time-ordered and unique, so it doubles as a pagination cursor). The two keys live in
 * different slots, so they cannot share a transaction; the same round trip also queues
 * the follow or unfollow job. A request retried after a crash therefore repairs a half
 * written edge and queues the job again, which the engine applies idempotently.
 *
 * A follow must not outlive a block that races it. A block is recorded on both users' slots
 * (blocks:{blocker}, blockedby:{blocked}), so each half of the edge is written by a script on
 * its own slot that first checks, on that slot, that neither blocked the other: following:{a}
 * on a's, followers:{b} on b's (on Redis Cluster they may be on two nodes, so no one script
 * may hold both). The block writes each side's mark before that side's removals: per slot,
 * the follow's script runs before the mark (and the block removes its half) or after it
 * (and refuses). The cap on follows is checked in the follower's script too.
 */
#include "storage/storage_internal.h"

#include <errno.h>
#include <stdio.h>
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

/* KEYS: following:{a} blocks:{a} blockedby:{a}; ARGV: b edge max (0: no cap).
 * -1: a block stands, -2: a follows max users already, else ZADD's count. */
static const char follow_out_script[] =
    "if redis.call('ZSCORE', KEYS[2], ARGV[1]) or redis.call('ZSCORE', KEYS[3], ARGV[1]) then\n"
    "  return -1\n"
    "end\n"
    "if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end\n"
    "local max = tonumber(ARGV[3])\n"
    "if max > 0 and redis.call('ZCARD', KEYS[1]) >= max then return -2 end\n"
    "return redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])\n";

/* KEYS: followers:{b} blocks:{b} blockedby:{b}; ARGV: a edge. -1: a block stands. */
static const char follow_in_script[] =
    "if redis.call('ZSCORE', KEYS[2], ARGV[1]) or redis.call('ZSCORE', KEYS[3], ARGV[1]) then\n"
    "  return -1\n"
    "end\n"
    "return redis.call('ZADD', KEYS[1], 'NX', ARGV[2], ARGV[1])\n";

/* Runs one half's script: on the slot of owner, over K_<set_fmt> of owner and owner's two
 * block sets. Its integer answer goes to *out. */
static int run_half(storage_t *s, const char *script, const char *set_fmt, uint64_t owner,
                    uint64_t other, uint64_t edge, int max, int64_t *out)
{
    char set[48], blocks[48], blockedby[48], o[24], e[24], m[24];
    snprintf(set, sizeof(set), set_fmt, (ull)owner);
    snprintf(blocks, sizeof(blocks), K_BLOCKS, (ull)owner);
    snprintf(blockedby, sizeof(blockedby), K_BLOCKED_BY, (ull)owner);
    snprintf(o, sizeof(o), "%llu", (ull)other);
    snprintf(e, sizeof(e), "%llu", (ull)edge);
    snprintf(m, sizeof(m), "%d", max);
    const char *argv[] = {"EVAL", script, "3", set, blocks, blockedby, o, e, m};
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    storage_redis_batch_addargv(&b, 9, argv, NULL);
    int rc = storage_redis_batch_run_checked(&b);
    if (rc == 0 && b.r[0]->type != REDIS_REPLY_INTEGER)
        rc = -EIO;
    if (rc == 0)
        *out = b.r[0]->integer;
    storage_redis_batch_free(&b);
    return rc;
}

/* Queues the follow or unfollow job (and, for an unfollow, removes both halves first). */
static int queue_edge_job(storage_t *s, uint64_t a, uint64_t b_id, bool add, uint64_t edge,
                          int64_t *removed)
{
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    if (!add) {
        storage_redis_batch_add(&b, "ZREM " K_FOLLOWING " %llu", (ull)a, (ull)b_id);
        storage_redis_batch_add(&b, "ZREM " K_FOLLOWERS " %llu", (ull)b_id, (ull)a);
        storage_redis_batch_barrier(&b);
    }
    storage__job_enqueue(&b, storage__shard(s, a), edge, 0,
                         "kind %s follower %llu followee %llu at %llu", add ? "follow" : "unfollow",
                         (ull)a, (ull)b_id, (ull)edge);
    int rc = storage_redis_batch_run_checked(&b);
    if (rc == 0 && !add)
        *removed = storage_redis_int(b.r[0]) + storage_redis_int(b.r[1]);
    storage_redis_batch_free(&b);
    return rc;
}

static int change_edge(storage_t *s, uint64_t a, uint64_t b_id, bool add, int max, bool *changed)
{
    int rc = user_exists(s, b_id);
    if (rc)
        return rc;
    /* The edge's id scores it, and orders the job's effects (notifications) in time. */
    uint64_t edge = storage_id_next(s);
    if (!edge)
        return -EAGAIN;
    int64_t out_half = 0, in_half = 0, removed = 0;
    if (add) {
        if ((rc = run_half(s, follow_out_script, K_FOLLOWING, a, b_id, edge, max, &out_half)))
            return rc;
        if (out_half == -1)
            return -EPERM;
        if (out_half == -2)
            return -ENOSPC;
        if ((rc = run_half(s, follow_in_script, K_FOLLOWERS, b_id, a, edge, 0, &in_half)))
            return rc;
        if (in_half == -1) {
            /* A block reached b's slot first; the block removes a's half too, but a retried
             * block request is not to be counted on. */
            storage_redis_batch_t b;
            storage_redis_batch_init(&b, s->redis);
            storage_redis_batch_add(&b, "ZREM " K_FOLLOWING " %llu", (ull)a, (ull)b_id);
            rc = storage_redis_batch_run_checked(&b);
            storage_redis_batch_free(&b);
            return rc ? rc : -EPERM;
        }
    }
    if ((rc = queue_edge_job(s, a, b_id, add, edge, &removed)) != 0)
        return rc;
    *changed = add ? out_half > 0 || in_half > 0 : removed > 0;
    return 0;
}

int storage_follow(storage_t *s, uint64_t follower, uint64_t followee, bool *changed)
{
    return change_edge(s, follower, followee, true, 0, changed);
}

int storage_follow_at_most(storage_t *s, uint64_t follower, uint64_t followee, int max_following,
                           bool *changed)
{
    return change_edge(s, follower, followee, true, max_following, changed);
}

int storage_unfollow(storage_t *s, uint64_t follower, uint64_t followee, bool *changed)
{
    return change_edge(s, follower, followee, false, 0, changed);
}

int storage_edges_page(storage_t *s, storage_edge_t which, uint64_t user, uint64_t cursor,
                       size_t limit, storage_page_t *out)
{
    return storage_edges_page_as(s, which, user, 0, cursor, limit, out);
}

int storage_edges_page_as(storage_t *s, storage_edge_t which, uint64_t user, uint64_t viewer,
                          uint64_t cursor, size_t limit, storage_page_t *out)
{
    return storage__zpage(s, which == STORAGE_FOLLOWERS ? K_FOLLOWERS : K_FOLLOWING, user, viewer,
                          cursor, limit, out);
}
