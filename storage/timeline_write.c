/* storage/timeline_write.c -- what the fan-out engine writes: home timelines and the marks
 * that make celebrity authors merge at read time.
 *
 * Timeline writes are idempotent (ZADD of a post id scored by itself), so a job that
 * runs twice leaves one entry. A chunk of followers is one script call that adds and
 * trims each timeline to --timeline-max (the read path trims too, for entries written
 * by backfills and reposts). Repost entries are timeline entries too: a reposted post
 * scored by the repost, with who reposted it in rb:{user}; whatever takes an entry out of a
 * timeline (a trim, a delete, an unfollow) takes its rb:{user} field too, so the index stays
 * the size of the timeline.
 */
#include "storage/storage_async.h"
#include "storage/storage_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- post state -------------------------------------------------------------------------- */

typedef struct state_op_s {
    storage_post_state_cb cb;
    void *arg;
    int pending, status;
    storage_post_state_t st;
} state_op_t;

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void state_unref(state_op_t *op, int status)
{
    if (status && !op->status)
        op->status = status;
    if (--op->pending > 0)
        return;
    if (op->st.n_muted_by > 1)
        qsort(op->st.muted_by, op->st.n_muted_by, sizeof(uint64_t), cmp_u64);
    op->cb(op->arg, op->status, &op->st);
    free(op->st.muted_by);
    free(op);
}

static void on_post_fields(void *priv, int status, redisReply *r)
{
    state_op_t *op = priv;
    if (status == 0 && r->type == REDIS_REPLY_ARRAY && r->elements == 4) {
        op->st.exists = r->element[0]->type == REDIS_REPLY_STRING;
        op->st.deleted = storage_redis_uint_str(r->element[1]) == 1;
        op->st.reply_author = storage_redis_uint_str(r->element[2]);
        const redisReply *m = r->element[3];
        for (const char *c = m->type == REDIS_REPLY_STRING ? m->str : NULL;
             c && *c && op->st.n_mentions < STORAGE_MENTIONS_MAX;) {
            char *end;
            uint64_t id = strtoull(c, &end, 10);
            if (id)
                op->st.mentions[op->st.n_mentions++] = id;
            c = *end == ',' ? end + 1 : NULL;
        }
    }
    state_unref(op, status);
}

static void on_muted_by(void *priv, int status, redisReply *r)
{
    state_op_t *op = priv;
    if (status == 0 && r->type == REDIS_REPLY_ARRAY && r->elements) {
        op->st.muted_by = malloc(r->elements * sizeof(uint64_t));
        if (!op->st.muted_by)
            status = -ENOMEM;
        for (size_t i = 0; op->st.muted_by && i < r->elements; i++)
            op->st.muted_by[op->st.n_muted_by++] = storage_redis_uint_str(r->element[i]);
    }
    state_unref(op, status);
}

static void on_follower_count(void *priv, int status, redisReply *r)
{
    state_op_t *op = priv;
    if (status == 0)
        op->st.followers = r->integer;
    state_unref(op, status);
}

static void on_celebrity(void *priv, int status, redisReply *r)
{
    state_op_t *op = priv;
    if (status == 0)
        op->st.celebrity = r->integer == 1;
    state_unref(op, status);
}

int storage_post_state(storage_async_t *sa, uint64_t post, uint64_t author,
                       storage_post_state_cb cb, void *arg)
{
    state_op_t *op = calloc(1, sizeof(*op));
    if (!op)
        return -ENOMEM;
    op->cb = cb;
    op->arg = arg;
    op->pending = 1;
    int rc = storage_redis_send(sa->redis, STORAGE_REDIS_WRITER, on_post_fields, op,
                                "HMGET " K_POST " author deleted reply_author mentions", (ull)post);
    op->pending += rc == 0;
    if (rc == 0) {
        rc =
            storage_redis_send(sa->redis, STORAGE_REDIS_WRITER, on_muted_by, op,
                               "ZRANGE " K_MUTED_BY " 0 %d", (ull)author, STORAGE_MUTED_BY_MAX - 1);
        op->pending += rc == 0;
    }
    if (rc == 0) {
        rc = storage_redis_send(sa->redis, STORAGE_REDIS_WRITER, on_follower_count, op,
                                "ZCARD " K_FOLLOWERS, (ull)author);
        op->pending += rc == 0;
    }
    if (rc == 0) {
        rc = storage_redis_send(sa->redis, STORAGE_REDIS_WRITER, on_celebrity, op,
                                "EXISTS " K_CELEB, (ull)author);
        op->pending += rc == 0;
    }
    if (rc && op->pending == 1) {
        free(op);
        return rc;
    }
    state_unref(op, rc);
    return 0;
}

/* ---- follower chunks ----------------------------------------------------------------------- */

typedef struct ids_op_s {
    storage_ids_cb cb;
    void *arg;
} ids_op_t;

static void on_chunk(void *priv, int status, redisReply *r)
{
    ids_op_t *op = priv;
    uint64_t *ids = NULL, last = 0;
    size_t n = 0;
    if (status == 0 && r->type == REDIS_REPLY_ARRAY) {
        ids = malloc((r->elements / 2 + 1) * sizeof(*ids));
        if (!ids)
            status = -ENOMEM;
        for (size_t i = 0; ids && i + 1 < r->elements; i += 2) {
            ids[n++] = storage_redis_uint_str(r->element[i]);
            last = storage_redis_uint_str(r->element[i + 1]);
        }
    }
    op->cb(op->arg, status, ids, n, last);
    free(ids);
    free(op);
}

int storage_followers_chunk(storage_async_t *sa, uint64_t author, uint64_t cursor, size_t n,
                            storage_ids_cb cb, void *arg)
{
    ids_op_t *op = malloc(sizeof(*op));
    if (!op)
        return -ENOMEM;
    *op = (ids_op_t){cb, arg};
    char min[32] = "-inf";
    if (cursor)
        snprintf(min, sizeof(min), "(%llu", (ull)cursor);
    int rc = storage_redis_send(sa->redis, STORAGE_REDIS_WRITER, on_chunk, op,
                                "ZRANGEBYSCORE " K_FOLLOWERS " %s +inf WITHSCORES LIMIT 0 %llu",
                                (ull)author, min, (ull)n);
    if (rc)
        free(op);
    return rc;
}

/* ---- timeline writes ------------------------------------------------------------------------ */

/* KEYS: tl:{user}…; ARGV: post timeline-max trim. One call writes a whole chunk: on the
 * engine's single loop thread, formatting and parsing a command and a reply per follower
 * was the ceiling (about 220k writes/s); inside the script a ZADD costs Redis about a
 * microsecond. Trimming is left to one post in TRIM_EVERY (by its millisecond, so spread
 * over time): a call per follower per post for it cost a third of the script. A timeline
 * thus holds a few entries over --timeline-max between trims, which a read leaves out (it
 * serves the newest --timeline-max, and writes nothing). A trim also drops the reposted-by fields of the entries it drops: rb:{user}
 * is named from tl:{user} ("tl:" + the tag), the same slot. On Redis Cluster the chunk becomes
 * one call per node (storage_redis_group_eval_by_node). ARGV[4] (0: off) skips followers whose
 * seen:{user} (same tag, same slot: no extra round trip) is older: they are inactive, and
 * their first read rebuilds the timeline (timeline_rebuild.c). One MGET reads the chunk's
 * seen keys, which measured no slower than a GET per follower and faster in two runs of three
 * (bench/seen_check.py, docs/architecture.md). A Redis Cluster node refuses an MGET over many
 * slots inside a script (CROSSSLOT), so there the script falls back to a GET each. */
static const char add_script[] =
    SCRIPT_NODE_KEYS SCRIPT_TRIM_TIMELINE SCRIPT_ADD_TIMELINES "return add_timelines(KEYS, ARGV)\n";

#define TRIM_EVERY 8

bool storage__timeline_trims(uint64_t post)
{
    return storage_id_time_ms(post) % TRIM_EVERY == 0;
}

int storage_timelines_add(storage_async_t *sa, uint64_t post, const uint64_t *users, size_t n,
                          int timeline_max, uint64_t seen_after_ms, storage_status_cb cb, void *arg)
{
    storage_redis_group_t *g = storage_redis_group_new(sa->redis, cb, arg);
    if (!g)
        return -ENOMEM;
    char p[24], max[16], cutoff[24];
    snprintf(p, sizeof(p), "%llu", (ull)post);
    snprintf(max, sizeof(max), "%d", timeline_max);
    snprintf(cutoff, sizeof(cutoff), "%llu", (ull)seen_after_ms);
    bool trim = storage__timeline_trims(post);
    const char *args[] = {p, max, trim ? "1" : "0", cutoff};
    storage_redis_group_eval_by_node(g, add_script, K_TIMELINE, users, n, 4, args);
    return storage_redis_group_end(g);
}

int storage_timelines_remove(storage_async_t *sa, uint64_t post, const uint64_t *users, size_t n,
                             storage_status_cb cb, void *arg)
{
    storage_redis_group_t *g = storage_redis_group_new(sa->redis, cb, arg);
    if (!g)
        return -ENOMEM;
    /* A deleted post's entry may have come through a repost: its reposted-by field goes too. */
    for (size_t i = 0; i < n; i++) {
        storage_redis_group_add(g, "ZREM " K_TIMELINE " %llu", (ull)users[i], (ull)post);
        storage_redis_group_add(g, "HDEL " K_REPOSTED_BY " %llu", (ull)users[i], (ull)post);
    }
    return storage_redis_group_end(g);
}

int storage_celebrity_mark(storage_async_t *sa, uint64_t author, storage_status_cb cb, void *arg)
{
    storage_redis_group_t *g = storage_redis_group_new(sa->redis, cb, arg);
    if (!g)
        return -ENOMEM;
    storage_redis_group_add(g, "SET " K_CELEB " 1", (ull)author);
    return storage_redis_group_end(g);
}

int storage_celebrity_followers_add(storage_async_t *sa, uint64_t author, const uint64_t *users,
                                    size_t n, storage_status_cb cb, void *arg)
{
    storage_redis_group_t *g = storage_redis_group_new(sa->redis, cb, arg);
    if (!g)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        storage_redis_group_add(g, "SADD " K_CELEB_FOLLOWS " %llu", (ull)users[i], (ull)author);
    return storage_redis_group_end(g);
}

/* ---- repost entries ---------------------------------------------------------------------- */

/* KEYS: tl rb ev blocks blockedby mutes seen; ARGV: score post reposter timeline-max now
 * maxlen channel user author seen-after. A user who has the post already gets no second copy
 * (no reposted_by, no live event); nor does one who blocked, was blocked by or muted the
 * author or the reposter. A user not seen since seen-after (0: off) gets the live event but no
 * entry: their first read rebuilds the timeline. */
static const char repost_add_script[] = SCRIPT_TRIM_TIMELINE
    "for _, who in ipairs({ARGV[9], ARGV[3]}) do\n"
    "  if redis.call('ZSCORE', KEYS[4], who) or redis.call('ZSCORE', KEYS[5], who)\n"
    "     or redis.call('ZSCORE', KEYS[6], who) then return 0 end\n"
    "end\n"
    "local cutoff = tonumber(ARGV[10])\n"
    "local seen = cutoff > 0 and redis.call('GET', KEYS[7])\n"
    "local inactive = seen and tonumber(seen) < cutoff\n"
    "if inactive or redis.call('ZADD', KEYS[1], 'NX', ARGV[1], ARGV[2]) == 1 then\n"
    "  if not inactive then\n"
    "    redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])\n"
    "    trim_timeline(KEYS[1], KEYS[2], ARGV[4])\n"
    "  end\n"
    "  local ref = ARGV[2] .. ':' .. ARGV[3]\n"
    "  local id = redis.call('XADD', KEYS[3], 'NOMKSTREAM', 'MAXLEN', '~', ARGV[6], '*',\n"
    "                        'k', 'feed', 'r', ref)\n"
    "  if id then\n"
    "    redis.call('SPUBLISH', ARGV[7], 'feed ' .. ref .. ' ' .. ARGV[8] .. ':' .. id)\n"
    "  end\n"
    "end\n"
    "return 1\n";

/* KEYS: tl rb; ARGV: post reposter. Only the entry this repost wrote is removed. */
static const char repost_remove_script[] =
    "if redis.call('HGET', KEYS[2], ARGV[1]) == ARGV[2] then\n"
    "  redis.call('ZREM', KEYS[1], ARGV[1])\n"
    "  redis.call('HDEL', KEYS[2], ARGV[1])\n"
    "end\n"
    "return 1\n";

int storage_repost_entries(storage_async_t *sa, uint64_t post, uint64_t author, uint64_t reposter,
                           uint64_t score, const uint64_t *users, size_t n, bool add,
                           int timeline_max, uint64_t seen_after_ms, storage_status_cb cb,
                           void *arg)
{
    char p[24], r[24], sc[24], maxbuf[16], now[24], evmax[16], au[24], cutoff[24];
    snprintf(au, sizeof(au), "%llu", (ull)author);
    snprintf(cutoff, sizeof(cutoff), "%llu", (ull)seen_after_ms);
    snprintf(now, sizeof(now), "%llu", (ull)storage__now_ms());
    snprintf(evmax, sizeof(evmax), "%d", EVENTS_MAXLEN);
    snprintf(p, sizeof(p), "%llu", (ull)post);
    snprintf(r, sizeof(r), "%llu", (ull)reposter);
    /* Readers tell a repost entry by its score differing from the post id; a repost within
     * the post's own millisecond could draw exactly that score. */
    snprintf(sc, sizeof(sc), "%llu", (ull)(score == post ? score + 1 : score));
    snprintf(maxbuf, sizeof(maxbuf), "%d", timeline_max);
    storage_redis_group_t *g = storage_redis_group_new(sa->redis, cb, arg);
    if (!g)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        char tl[40], rb[40], ev[40], channel[40], user[24], blocks[40], blockedby[40], mutes[40],
            seen[40];
        snprintf(seen, sizeof(seen), K_SEEN, (ull)users[i]);
        snprintf(blocks, sizeof(blocks), K_BLOCKS, (ull)users[i]);
        snprintf(blockedby, sizeof(blockedby), K_BLOCKED_BY, (ull)users[i]);
        snprintf(mutes, sizeof(mutes), K_MUTES, (ull)users[i]);
        snprintf(tl, sizeof(tl), K_TIMELINE, (ull)users[i]);
        snprintf(rb, sizeof(rb), K_REPOSTED_BY, (ull)users[i]);
        snprintf(ev, sizeof(ev), K_EVENTS, (ull)users[i]);
        storage_redis_live_channel(storage_redis_async_client(sa->redis),
                                   storage_redis_async_user_node(sa->redis, users[i]), channel,
                                   sizeof(channel));
        snprintf(user, sizeof(user), "%llu", (ull)users[i]);
        if (add) {
            const char *argv[] = {"EVAL",  repost_add_script,
                                  "7",     tl,
                                  rb,      ev,
                                  blocks,  blockedby,
                                  mutes,   seen,
                                  sc,      p,
                                  r,       maxbuf,
                                  now,     evmax,
                                  channel, user,
                                  au,      cutoff};
            storage_redis_group_add_argv(g, (int)(sizeof(argv) / sizeof(argv[0])), argv);
        } else {
            const char *argv[] = {"EVAL", repost_remove_script, "2", tl, rb, p, r};
            storage_redis_group_add_argv(g, 7, argv);
        }
    }
    return storage_redis_group_end(g);
}

/* ---- follow backfill and unfollow purge ---------------------------------------------------- */

/* KEYS: tl rb; ARGV: reposter. Removes the entries that reposter's reposts put there. */
static const char drop_reposts_script[] = "local all = redis.call('HGETALL', KEYS[2])\n"
                                          "for i = 1, #all, 2 do\n"
                                          "  if all[i + 1] == ARGV[1] then\n"
                                          "    redis.call('ZREM', KEYS[1], all[i])\n"
                                          "    redis.call('HDEL', KEYS[2], all[i])\n"
                                          "  end\n"
                                          "end\n"
                                          "return 1\n";

typedef struct edge_op_s {
    storage_async_t *sa;
    storage_status_cb cb;
    void *arg;
    uint64_t follower, followee;
    bool follow, unconditional; /* unconditional: hide whatever the follow graph says */
    int timeline_max;
    int pending, status;
    bool edge, celebrity;
    uint64_t *posts;
    size_t n_posts;
} edge_op_t;

static void edge_done(void *arg, int status)
{
    edge_op_t *op = arg;
    op->cb(op->arg, status);
    free(op->posts);
    free(op);
}

/* Step two: the writes, now that the edge, the celebrity mark and the posts are known. */
static void edge_write(edge_op_t *op)
{
    if (op->status || (!op->unconditional && op->edge != op->follow)) {
        /* failed, or the edge changed since the job was queued */
        edge_done(op, op->status);
        return;
    }
    storage_redis_group_t *g = storage_redis_group_new(op->sa->redis, edge_done, op);
    if (!g) {
        edge_done(op, -ENOMEM);
        return;
    }
    uint64_t tl = op->follower;
    /* Announced after the write, for the processes holding the follower's streams. */
    char msg[64];
    snprintf(msg, sizeof(msg), "%s %llu %llu", op->follow ? "follow" : "unfollow", (ull)tl,
             (ull)op->followee);
    if (op->follow && op->celebrity) {
        storage_redis_group_add(g, "SADD " K_CELEB_FOLLOWS " %llu", (ull)tl, (ull)op->followee);
        storage__announce_in_group(g, tl, msg);
    } else if (!op->follow) {
        storage_redis_group_add(g, "SREM " K_CELEB_FOLLOWS " %llu", (ull)tl, (ull)op->followee);
        if (op->celebrity)
            storage__announce_in_group(g, tl, msg);
    }
    if (op->n_posts && !(op->follow && op->celebrity)) {
        /* One command carries every post: ZADD key s m s m … or ZREM key m m … */
        size_t argc = 2 + op->n_posts * (op->follow ? 2 : 1);
        const char **argv = malloc(argc * sizeof(*argv));
        char(*nums)[24] = malloc(op->n_posts * sizeof(*nums));
        char key[40];
        if (!argv || !nums) {
            free(argv);
            free(nums);
            g->status = -ENOMEM;
        } else {
            snprintf(key, sizeof(key), K_TIMELINE, (ull)tl);
            size_t a = 0;
            argv[a++] = op->follow ? "ZADD" : "ZREM";
            argv[a++] = key;
            for (size_t i = 0; i < op->n_posts; i++) {
                snprintf(nums[i], sizeof(nums[i]), "%llu", (ull)op->posts[i]);
                if (op->follow)
                    argv[a++] = nums[i];
                argv[a++] = nums[i];
            }
            storage_redis_group_add_argv(g, (int)a, argv);
            /* Following: the followee's own entries, no longer anyone's repost; unfollowing:
             * entries gone, and their reposted-by fields with them. */
            char rb[40];
            snprintf(rb, sizeof(rb), K_REPOSTED_BY, (ull)tl);
            a = 0;
            argv[a++] = "HDEL";
            argv[a++] = rb;
            for (size_t i = 0; i < op->n_posts; i++)
                argv[a++] = nums[i];
            storage_redis_group_add_argv(g, (int)a, argv);
            free(argv);
            free(nums);
        }
        if (op->follow) {
            static const char trim_script[] =
                SCRIPT_TRIM_TIMELINE "return trim_timeline(KEYS[1], KEYS[2], ARGV[1])\n";
            char tlkey[40], rbkey[40], max[16];
            snprintf(tlkey, sizeof(tlkey), K_TIMELINE, (ull)tl);
            snprintf(rbkey, sizeof(rbkey), K_REPOSTED_BY, (ull)tl);
            snprintf(max, sizeof(max), "%d", op->timeline_max);
            const char *trim[] = {"EVAL", trim_script, "2", tlkey, rbkey, max};
            storage_redis_group_add_argv(g, 6, trim);
        }
    }
    if (op->unconditional) { /* a block or mute also takes the target's reposts away */
        char tlkey[40], rb[40], target[24];
        snprintf(tlkey, sizeof(tlkey), K_TIMELINE, (ull)tl);
        snprintf(rb, sizeof(rb), K_REPOSTED_BY, (ull)tl);
        snprintf(target, sizeof(target), "%llu", (ull)op->followee);
        const char *argv[] = {"EVAL", drop_reposts_script, "2", tlkey, rb, target};
        storage_redis_group_add_argv(g, 6, argv);
    }
    int rc = storage_redis_group_end(g);
    if (rc)
        edge_done(op, rc);
}

static void edge_unref(edge_op_t *op, int status)
{
    if (status && !op->status)
        op->status = status;
    if (--op->pending == 0)
        edge_write(op);
}

static void on_edge_score(void *priv, int status, redisReply *r)
{
    edge_op_t *op = priv;
    if (status == 0)
        op->edge = r->type == REDIS_REPLY_STRING;
    edge_unref(op, status);
}

static void on_edge_celebrity(void *priv, int status, redisReply *r)
{
    edge_op_t *op = priv;
    if (status == 0)
        op->celebrity = r->integer == 1;
    edge_unref(op, status);
}

static void on_edge_posts(void *priv, int status, redisReply *r)
{
    edge_op_t *op = priv;
    if (status == 0 && r->type == REDIS_REPLY_ARRAY && r->elements) {
        op->posts = malloc(r->elements * sizeof(*op->posts));
        if (!op->posts)
            status = -ENOMEM;
        for (size_t i = 0; op->posts && i < r->elements; i++)
            op->posts[op->n_posts++] = storage_redis_uint_str(r->element[i]);
    }
    edge_unref(op, status);
}

static int edge_start(storage_async_t *sa, bool follow, bool unconditional, uint64_t follower,
                      uint64_t followee, int timeline_max, storage_status_cb cb, void *arg)
{
    edge_op_t *op = calloc(1, sizeof(*op));
    if (!op)
        return -ENOMEM;
    *op = (edge_op_t){.sa = sa,
                      .cb = cb,
                      .arg = arg,
                      .follower = follower,
                      .followee = followee,
                      .follow = follow,
                      .unconditional = unconditional,
                      .timeline_max = timeline_max,
                      .pending = 1};
    int rc = storage_redis_send(sa->redis, STORAGE_REDIS_WRITER, on_edge_score, op,
                                "ZSCORE " K_FOLLOWING " %llu", (ull)follower, (ull)followee);
    op->pending += rc == 0;
    if (rc == 0) {
        rc = storage_redis_send(sa->redis, STORAGE_REDIS_WRITER, on_edge_celebrity, op,
                                "EXISTS " K_CELEB, (ull)followee);
        op->pending += rc == 0;
    }
    if (rc == 0) {
        rc = storage_redis_send(sa->redis, STORAGE_REDIS_WRITER, on_edge_posts, op,
                                "ZREVRANGE " K_POSTS " 0 %d", (ull)followee, timeline_max - 1);
        op->pending += rc == 0;
    }
    if (rc && op->pending == 1) {
        free(op);
        return rc;
    }
    edge_unref(op, rc);
    return 0;
}

int storage_timeline_backfill(storage_async_t *sa, uint64_t follower, uint64_t followee,
                              int timeline_max, storage_status_cb cb, void *arg)
{
    return edge_start(sa, true, false, follower, followee, timeline_max, cb, arg);
}

int storage_timeline_purge(storage_async_t *sa, uint64_t follower, uint64_t followee,
                           int timeline_max, storage_status_cb cb, void *arg)
{
    return edge_start(sa, false, false, follower, followee, timeline_max, cb, arg);
}

int storage_timeline_hide(storage_async_t *sa, uint64_t user, uint64_t author, int timeline_max,
                          storage_status_cb cb, void *arg)
{
    return edge_start(sa, false, true, user, author, timeline_max, cb, arg);
}
