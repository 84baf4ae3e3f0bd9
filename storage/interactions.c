/* storage/interactions.c -- likes, reposts, blocks and mutes (the request side).
 *
 * Each is a set membership changed in one round trip together with the job that makes
 * the engine write its consequences (notifications, repost timeline entries, purges).
 * The job is queued even when the membership did not change: the engine's writes are
 * idempotent, and a retried request after a crash must not lose the consequences.
 */
#include "storage/storage_async.h"
#include "storage/storage_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

/* The author of a live post, or -ENOENT when it is unknown or deleted. */
static int post_author(storage_t *s, uint64_t post, uint64_t *author)
{
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    storage_redis_batch_add(&b, "HMGET " K_POST " author deleted", (ull)post);
    int rc = storage_redis_batch_run(&b);
    if (rc == 0) {
        const redisReply *r = b.r[0];
        if (storage_redis_is_error(r) || r->type != REDIS_REPLY_ARRAY || r->elements != 2)
            rc = -EIO;
        else if (!(*author = storage_redis_uint_str(r->element[0])) ||
                 storage_redis_uint_str(r->element[1]) == 1)
            rc = -ENOENT;
    }
    storage_redis_batch_free(&b);
    return rc;
}

static int run_all_ok(storage_redis_batch_t *b)
{
    int rc = storage_redis_batch_run_checked(b);
    storage_redis_batch_free(b);
    return rc;
}

static int interact(storage_t *s, const char *set_fmt, const char *kind, uint64_t user,
                    uint64_t post, bool on)
{
    uint64_t author;
    int rc = post_author(s, post, &author);
    if (rc)
        return rc;
    char cmd[64];
    snprintf(cmd, sizeof(cmd), "%s %s %%llu", on ? "SADD" : "SREM", set_fmt);
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    storage_redis_batch_add(&b, cmd, (ull)post, (ull)user);
    storage_redis_batch_barrier(&b);
    storage_redis_batch_add(
        &b, "XADD " K_FANOUT " * kind %s%s post %llu actor %llu author %llu at %llu",
        storage__shard(s, user), on ? "" : "un", kind, (ull)post, (ull)user, (ull)author,
        (ull)storage_id_next(s));
    return run_all_ok(&b);
}

int storage_like(storage_t *s, uint64_t user, uint64_t post, bool on)
{
    return interact(s, K_LIKES, "like", user, post, on);
}

int storage_repost(storage_t *s, uint64_t user, uint64_t post, bool on)
{
    return interact(s, K_REPOSTS, "repost", user, post, on);
}

int storage_relation_set(storage_t *s, storage_relation_t rel, uint64_t user, uint64_t target,
                         bool on)
{
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    storage_redis_batch_add(&b, "EXISTS " K_USER, (ull)target);
    int rc = storage_redis_batch_run(&b);
    if (rc == 0 && storage_redis_int(b.r[0]) != 1)
        rc = storage_redis_is_error(b.r[0]) ? -EIO : -ENOENT;
    storage_redis_batch_free(&b);
    if (rc)
        return rc;
    uint64_t edge = storage_id_next(s);
    if (!edge)
        return -EAGAIN;
    bool block = rel == STORAGE_BLOCK;
    const char *mine = block ? K_BLOCKS : K_MUTES, *theirs = block ? K_BLOCKED_BY : K_MUTED_BY;
    char add_mine[64], add_theirs[64];
    if (on) {
        snprintf(add_mine, sizeof(add_mine), "ZADD %s NX %%llu %%llu", mine);
        snprintf(add_theirs, sizeof(add_theirs), "ZADD %s NX %%llu %%llu", theirs);
    } else {
        snprintf(add_mine, sizeof(add_mine), "ZREM %s %%llu", mine);
        snprintf(add_theirs, sizeof(add_theirs), "ZREM %s %%llu", theirs);
    }
    storage_redis_batch_init(&b, s->redis);
    if (on) {
        storage_redis_batch_add(&b, add_mine, (ull)user, (ull)edge, (ull)target);
        storage_redis_batch_add(&b, add_theirs, (ull)target, (ull)edge, (ull)user);
    } else {
        storage_redis_batch_add(&b, add_mine, (ull)user, (ull)target);
        storage_redis_batch_add(&b, add_theirs, (ull)target, (ull)user);
    }
    if (block && on) { /* a block ends the follows both ways */
        storage_redis_batch_add(&b, "ZREM " K_FOLLOWING " %llu", (ull)user, (ull)target);
        storage_redis_batch_add(&b, "ZREM " K_FOLLOWERS " %llu", (ull)target, (ull)user);
        storage_redis_batch_add(&b, "ZREM " K_FOLLOWING " %llu", (ull)target, (ull)user);
        storage_redis_batch_add(&b, "ZREM " K_FOLLOWERS " %llu", (ull)user, (ull)target);
    }
    storage_redis_batch_barrier(&b);
    storage_redis_batch_add(&b, "XADD " K_FANOUT " * kind %s%s user %llu target %llu at %llu",
                            storage__shard(s, user), on ? "" : "un", block ? "block" : "mute",
                            (ull)user, (ull)target, (ull)edge);
    return run_all_ok(&b);
}

int storage_relations_page(storage_t *s, storage_relation_t rel, uint64_t user, uint64_t cursor,
                           size_t limit, storage_page_t *out)
{
    return storage__zpage(s, rel == STORAGE_BLOCK ? K_BLOCKS : K_MUTES, user, cursor, limit, out);
}

int storage_blocked_between(storage_t *s, uint64_t a, uint64_t b_id, bool *blocked)
{
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    storage_redis_batch_add(&b, "ZSCORE " K_BLOCKS " %llu", (ull)a, (ull)b_id);
    storage_redis_batch_add(&b, "ZSCORE " K_BLOCKS " %llu", (ull)b_id, (ull)a);
    int rc = storage_redis_batch_run_checked(&b);
    if (rc == 0)
        *blocked = b.r[0]->type == REDIS_REPLY_STRING || b.r[1]->type == REDIS_REPLY_STRING;
    storage_redis_batch_free(&b);
    return rc;
}

void storage__add_hidden_reads(storage_redis_batch_t *b, uint64_t user)
{
    storage_redis_batch_add(b, "ZRANGE " K_BLOCKS " 0 -1", (ull)user);
    storage_redis_batch_add(b, "ZRANGE " K_BLOCKED_BY " 0 -1", (ull)user);
    storage_redis_batch_add(b, "ZRANGE " K_MUTES " 0 -1", (ull)user);
}

uint64_t *storage__collect_hidden(redisReply **r, size_t *n)
{
    size_t total = 0;
    for (size_t i = 0; i < 3; i++)
        total += r[i]->type == REDIS_REPLY_ARRAY ? r[i]->elements : 0;
    uint64_t *hidden = malloc((total ? total : 1) * sizeof(*hidden));
    *n = 0;
    for (size_t i = 0; hidden && i < 3; i++)
        for (size_t k = 0; r[i]->type == REDIS_REPLY_ARRAY && k < r[i]->elements; k++)
            hidden[(*n)++] = storage_redis_uint_str(r[i]->element[k]);
    return hidden;
}

/* ---- the engine's check (async) ------------------------------------------------------------ */

typedef struct current_op_s {
    storage_bool_cb cb;
    void *arg;
} current_op_t;

static void on_current(void *priv, int status, redisReply *r)
{
    current_op_t *op = priv;
    /* SISMEMBER answers 0/1; ZSCORE a score or nil. */
    bool holds = status == 0 && ((r->type == REDIS_REPLY_INTEGER && r->integer == 1) ||
                                 r->type == REDIS_REPLY_STRING);
    op->cb(op->arg, status, holds);
    free(op);
}

int storage_action_holds(storage_async_t *sa, const storage_job_t *job, storage_bool_cb cb,
                         void *arg)
{
    current_op_t *op = malloc(sizeof(*op));
    if (!op)
        return -ENOMEM;
    *op = (current_op_t){cb, arg};
    int rc;
    switch (job->kind) {
    case STORAGE_JOB_LIKE:
    case STORAGE_JOB_UNLIKE:
        rc = storage_redis_send(sa->redis, STORAGE_REDIS_WRITER, on_current, op,
                                "SISMEMBER " K_LIKES " %llu", (ull)job->post, (ull)job->actor);
        break;
    case STORAGE_JOB_REPOST:
    case STORAGE_JOB_UNREPOST:
        rc = storage_redis_send(sa->redis, STORAGE_REDIS_WRITER, on_current, op,
                                "SISMEMBER " K_REPOSTS " %llu", (ull)job->post, (ull)job->actor);
        break;
    case STORAGE_JOB_FOLLOW:
    case STORAGE_JOB_UNFOLLOW:
        rc = storage_redis_send(sa->redis, STORAGE_REDIS_WRITER, on_current, op,
                                "ZSCORE " K_FOLLOWING " %llu", (ull)job->follower,
                                (ull)job->followee);
        break;
    default:
        rc = -EINVAL;
    }
    if (rc)
        free(op);
    return rc;
}
