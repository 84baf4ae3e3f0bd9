/* storage/interactions.c -- likes, reposts, blocks and mutes (the request side).
 *
 * Each is a set membership changed in one round trip together with the job that makes
 * the engine write its consequences (notifications, repost timeline entries, purges).
 * The job is queued even when the membership did not change: the engine's writes are
 * idempotent, and a retried request after a crash must not lose the consequences.
 *
 * A block is kept on both users' slots (blocks:{blocker}, blockedby:{blocked}), so whether
 * two users blocked one another is two ZSCOREs on either one's slot, and a list of ids is
 * checked against one user's relations with one ZMSCORE per relation: the sets themselves,
 * which strangers can grow (200,000 accounts blocking one), are never read whole on a
 * request. rpa:{reposter}:author indexes reposts so that a block can take them back.
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

/* ---- relations of the ids at hand -------------------------------------------------------- */

static const struct {
    unsigned bit;
    const char *fmt;
} rels[] = {{STORAGE_REL_BLOCKS, K_BLOCKS},
            {STORAGE_REL_BLOCKED_BY, K_BLOCKED_BY},
            {STORAGE_REL_MUTES, K_MUTES}};

size_t storage__relation_keys(uint64_t viewer, unsigned which, char keys[][48])
{
    size_t n = 0;
    for (size_t k = 0; viewer && k < sizeof(rels) / sizeof(*rels); k++)
        if (which & rels[k].bit)
            snprintf(keys[n++], 48, rels[k].fmt, (ull)viewer);
    return n;
}

size_t storage__add_relation_reads(storage_redis_batch_t *b, uint64_t viewer, unsigned which,
                                   const uint64_t *ids, size_t n)
{
    if (!n || !viewer)
        return 0;
    const char **argv = malloc((n + 2) * sizeof(*argv));
    char(*num)[24] = malloc(n * sizeof(*num));
    if (!argv || !num) {
        free(argv);
        free(num);
        b->err = -ENOMEM;
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        snprintf(num[i], sizeof(num[i]), "%llu", (ull)ids[i]);
        argv[i + 2] = num[i];
    }
    argv[0] = "ZMSCORE";
    size_t added = 0;
    for (size_t k = 0; k < sizeof(rels) / sizeof(*rels); k++) {
        if (!(which & rels[k].bit))
            continue;
        char key[48];
        snprintf(key, sizeof(key), rels[k].fmt, (ull)viewer);
        argv[1] = key;
        storage_redis_batch_addargv(b, (int)n + 2, argv, NULL);
        added++;
    }
    free(argv);
    free(num);
    return added;
}

int storage__relation_hits(redisReply **r, size_t count, size_t n, bool *hit)
{
    for (size_t k = 0; k < count; k++) {
        if (!r[k] || r[k]->type != REDIS_REPLY_ARRAY || r[k]->elements != n)
            return -EIO;
        for (size_t i = 0; i < n; i++)
            if (r[k]->element[i]->type != REDIS_REPLY_NIL)
                hit[i] = true;
    }
    return 0;
}

int storage_relations_among(storage_t *s, uint64_t viewer, unsigned which, const uint64_t *ids,
                            size_t n, bool *hit)
{
    memset(hit, 0, n * sizeof(*hit));
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    size_t count = storage__add_relation_reads(&b, viewer, which, ids, n);
    int rc = count || b.err ? storage_redis_batch_run(&b) : 0;
    if (rc == 0)
        rc = storage__relation_hits(b.r, count, n, hit);
    storage_redis_batch_free(&b);
    return rc;
}

int storage_blocked_between(storage_t *s, uint64_t a, uint64_t b_id, bool *blocked)
{
    /* Both sides of a block are kept on each user's slot (blocks:{a}, blockedby:{a}). */
    *blocked = false;
    return storage_relations_among(s, a, STORAGE_REL_BLOCK, &b_id, 1, blocked);
}

/* ---- likes and reposts ---------------------------------------------------------------------- */

/* KEYS: likes:{post} (or reposts:{post}), post:{post}; ARGV: SADD or SREM, the user, the
 * count's field. The post's count is the set's size, written with the change so that a read
 * is one HMGET of the post, exact under concurrency (one script at a time per slot), and
 * right from the first change on a post from before counts were kept. A post that is gone
 * (erased) gets no half hash. */
static const char membership_script[] =
    "local changed = redis.call(ARGV[1], KEYS[1], ARGV[2])\n"
    "if redis.call('EXISTS', KEYS[2]) == 1 then\n"
    "  redis.call('HSET', KEYS[2], ARGV[3], redis.call('SCARD', KEYS[1]))\n"
    "end\n"
    "return changed\n";

void storage__add_membership(storage_redis_batch_t *b, bool repost, uint64_t post, uint64_t user,
                             bool on)
{
    char set[40], hash[40], who[24];
    snprintf(set, sizeof(set), repost ? K_REPOSTS : K_LIKES, (ull)post);
    snprintf(hash, sizeof(hash), K_POST, (ull)post);
    snprintf(who, sizeof(who), "%llu", (ull)user);
    const char *argv[] = {
        "EVAL", membership_script,    "2", set,
        hash,   on ? "SADD" : "SREM", who, repost ? POST_REPOSTS_FIELD : POST_LIKES_FIELD};
    storage_redis_batch_addargv(b, 8, argv, NULL);
}

/* Adds the membership change of user in the likes or reposts of post, the repost index
 * (reposts only) and the job, in one round trip. */
static int write_interaction(storage_t *s, bool repost, uint64_t user, uint64_t post,
                             uint64_t author, bool on)
{
    const char *kind = repost ? "repost" : "like";
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    storage__add_membership(&b, repost, post, user, on);
    /* The user's own index of them, which their export and their erasure read. */
    if (on)
        storage_redis_batch_add(
            &b, repost ? "ZADD " K_REPOSTED " %llu %llu" : "ZADD " K_LIKED " %llu %llu", (ull)user,
            (ull)post, (ull)post);
    else
        storage_redis_batch_add(&b, repost ? "ZREM " K_REPOSTED " %llu" : "ZREM " K_LIKED " %llu",
                                (ull)user, (ull)post);
    uint64_t at = storage_id_next(s);
    if (repost)
        storage_redis_batch_add(&b,
                                on ? "SADD " K_REPOSTS_OF " %llu" : "SREM " K_REPOSTS_OF " %llu",
                                (ull)user, (ull)author, (ull)post);
    /* The repost's own id, its score in followers' timelines, for a timeline rebuild (NX: a
     * repost made again writes no second entry, so it keeps the first one's). */
    if (repost && on)
        storage_redis_batch_add(&b, "ZADD " K_REPOSTED_AT " NX %llu %llu", (ull)user, (ull)at,
                                (ull)post);
    else if (repost)
        storage_redis_batch_add(&b, "ZREM " K_REPOSTED_AT " %llu", (ull)user, (ull)post);
    storage_redis_batch_barrier(&b);
    storage__job_enqueue(&b, storage__shard(s, user), at, 0,
                         "kind %s%s post %llu actor %llu author %llu at %llu", on ? "" : "un", kind,
                         (ull)post, (ull)user, (ull)author, (ull)at);
    return run_all_ok(&b);
}

static int interact(storage_t *s, bool repost, uint64_t user, uint64_t post, bool on)
{
    uint64_t author;
    int rc = post_author(s, post, &author);
    if (rc)
        return rc;
    bool blocked = false;
    /* Undoing stays possible; doing is refused as for a post that does not exist. */
    if (on && author != user && (rc = storage_blocked_between(s, user, author, &blocked)) != 0)
        return rc;
    if (blocked)
        return -ENOENT;
    if ((rc = write_interaction(s, repost, user, post, author, on)) != 0)
        return rc;
    if (!on || !repost || author == user)
        return 0;
    /* A block may have come between the check and the write, and read the repost index
     * before this repost was in it: look again, now that it is written, and take it back.
     * (Either the block's read of the index came after the index write and the block takes
     * it back, or it came before, and so did the block's mark on user's slot, seen here.) */
    if ((rc = storage_blocked_between(s, user, author, &blocked)) != 0)
        return rc;
    if (!blocked)
        return 0;
    rc = write_interaction(s, true, user, post, author, false);
    return rc ? rc : -ENOENT;
}

int storage_like(storage_t *s, uint64_t user, uint64_t post, bool on)
{
    return interact(s, false, user, post, on);
}

int storage_repost(storage_t *s, uint64_t user, uint64_t post, bool on)
{
    return interact(s, true, user, post, on);
}

/* ---- blocks and mutes ------------------------------------------------------------------------ */

/* Takes back the reposts reposter made of author's posts (the index rpa:{reposter}:author):
 * each one's membership and its unrepost job, so the engine removes the entries it wrote
 * from the reposter's followers' timelines. */
static int undo_reposts(storage_t *s, uint64_t reposter, uint64_t author)
{
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    storage_redis_batch_add(&b, "SMEMBERS " K_REPOSTS_OF, (ull)reposter, (ull)author);
    int rc = storage_redis_batch_run_checked(&b);
    if (rc || b.r[0]->type != REDIS_REPLY_ARRAY || b.r[0]->elements == 0) {
        rc = rc ? rc : b.r[0]->type == REDIS_REPLY_ARRAY ? 0 : -EIO;
        storage_redis_batch_free(&b);
        return rc;
    }
    size_t n = b.r[0]->elements;
    uint64_t *posts = malloc(n * sizeof(*posts));
    for (size_t i = 0; posts && i < n; i++)
        posts[i] = storage_redis_uint_str(b.r[0]->element[i]);
    storage_redis_batch_free(&b);
    if (!posts)
        return -ENOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (posts[i])
            rc = write_interaction(s, true, reposter, posts[i], author, false);
    free(posts);
    return rc;
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
    /* Each side's mark comes before that side's edge removals, on the same connection: a
     * follow script on that slot runs either before the mark (and its edge half is removed
     * here) or after it (and refuses). */
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
    storage__job_enqueue(&b, storage__shard(s, user), edge, 0,
                         "kind %s%s user %llu target %llu at %llu", on ? "" : "un",
                         block ? "block" : "mute", (ull)user, (ull)target, (ull)edge);
    rc = run_all_ok(&b);
    /* Reposts either made of the other's posts go, after the marks: a repost racing this
     * either is in the index by now or sees the mark and takes itself back (interact). */
    if (rc == 0 && block && on)
        rc = undo_reposts(s, target, user);
    if (rc == 0 && block && on)
        rc = undo_reposts(s, user, target);
    return rc;
}

int storage_relations_page(storage_t *s, storage_relation_t rel, uint64_t user, uint64_t cursor,
                           size_t limit, storage_page_t *out)
{
    return storage__zpage(s, rel == STORAGE_BLOCK ? K_BLOCKS : K_MUTES, user, 0, cursor, limit,
                          out);
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

int storage_likes_page(storage_t *s, uint64_t user, uint64_t cursor, size_t limit,
                       storage_page_t *out)
{
    return storage__zpage(s, K_LIKED, user, 0, cursor, limit, out);
}

int storage_reposts_page(storage_t *s, uint64_t user, uint64_t cursor, size_t limit,
                         storage_page_t *out)
{
    return storage__zpage(s, K_REPOSTED, user, 0, cursor, limit, out);
}
