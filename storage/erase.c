/* storage/erase.c -- a user leaving: every trace of their id, removed in restartable steps.
 *
 * DELETE /v1/me queues the erasure job first and only then removes the user record and the
 * handle, so the user never disappears without a job that finishes the work. The job runs in
 * the user's order list (K_JOB_ORDER), after every post and delete they queued before it.
 *
 * Stage 1 ("erase") retracts the posts exactly as DELETE /v1/posts/{id} does (tombstone,
 * delete job in the author's order), so timelines, streams and the reply and mention notices
 * go the well-trodden way. It queues stage 2 behind those delete jobs: the delete jobs walk
 * the user's followers, so the follow edges must still be there when they run.
 *
 * Stage 2 ("erase_rest") walks each of the user's indexes from its head, undoes one page of
 * it on the other users' slots and only then removes that page from the index: cut short,
 * the next run starts from what is left. Every write is a removal (ZREM, SREM, DEL, a script
 * that removes only what is the user's), so running a page twice changes nothing. Other
 * users' counts are the cardinalities of their sets, so removing the members corrects them.
 *
 * Not reached: idempotency keys (idem:{user}:<key>, gone within 24 h) and rate-limit buckets
 * (rl:{user}:<class>, gone when full), which are named by keys nobody lists; events in other
 * users' stream logs (a repost's "feed <post>:<user>", gone with the log's retention, --stream-retention); and
 * posts deleted before the deleted-posts index existed.
 */
#include "storage/erase.h"
#include "storage/storage_internal.h"
#include "storage/tokens.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAGE 200            /* index members undone per round trip */
#define FOLLOWERS_PAGE 1000 /* followers per round trip when repost entries are removed */
#define ANNOUNCE_PAGE 1000  /* announcement log entries read per round trip */

/* KEYS: tl rb; ARGV: post reposter. Removes a repost entry this reposter wrote, never an
 * entry the post has in that timeline for another reason. */
static const char repost_entry_script[] =
    "if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 0 end\n"
    "redis.call('HDEL', KEYS[2], ARGV[1])\n"
    "return redis.call('ZREM', KEYS[1], ARGV[1])\n";

/* KEYS: the handle, its quarantine mark; ARGV: the user id, the quarantine in seconds. Releases
 * the handle only if it is still the user's, into quarantine (the mark names no user). */
static const char release_handle_script[] =
    "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end\n"
    "redis.call('DEL', KEYS[1])\n"
    "if tonumber(ARGV[2]) > 0 then redis.call('SET', KEYS[2], '1', 'EX', ARGV[2]) end\n"
    "return 0\n";

/* KEYS: a post; ARGV: the user id. The user's id leaves the post's mentions and reply_author
 * (other users' posts that named or answered them). */
static const char unname_script[] =
    "local m = redis.call('HGET', KEYS[1], 'mentions')\n"
    "if m then\n"
    "  local kept = {}\n"
    "  for id in string.gmatch(m, '[^,]+') do\n"
    "    if id ~= ARGV[1] then kept[#kept + 1] = id end\n"
    "  end\n"
    "  redis.call('HSET', KEYS[1], 'mentions', table.concat(kept, ','))\n"
    "end\n"
    "if redis.call('HGET', KEYS[1], 'reply_author') == ARGV[1] then\n"
    "  redis.call('HSET', KEYS[1], 'reply_author', '0')\n"
    "end\n"
    "return 0\n";

/* The first max members of the set or sorted set key_fmt of owner (ids). */
static int head(storage_t *s, const char *cmd_fmt, uint64_t owner, uint64_t *ids, size_t max,
                size_t *n)
{
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    storage_redis_batch_add(&b, cmd_fmt, (ull)owner, (long long)max - 1);
    int rc = storage_redis_batch_run_checked(&b);
    *n = 0;
    if (rc == 0) {
        const redisReply *r = b.r[0];
        for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements && *n < max; i++)
            if ((ids[*n] = storage_redis_uint_str(r->element[i])) != 0)
                (*n)++;
    }
    storage_redis_batch_free(&b);
    return rc;
}

/* The authors of n posts (0 for a post gone). */
static int authors_of(storage_t *s, const uint64_t *posts, size_t n, uint64_t *authors)
{
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    for (size_t i = 0; i < n; i++)
        storage_redis_batch_add(&b, "HGET " K_POST " author", (ull)posts[i]);
    int rc = storage_redis_batch_run_checked(&b);
    for (size_t i = 0; rc == 0 && i < n; i++)
        authors[i] = storage_redis_uint_str(b.r[i]);
    storage_redis_batch_free(&b);
    return rc;
}

/* Adds the withdrawal of actor's notice in target's group (NULL: their follow notice, found
 * through nfd) to b: the script the engine's unlike and unfollow use, live event included.
 * -EAGAIN when target's live channel cannot be learnt (Redis unreachable). */
static int add_notice_removal(storage_t *s, storage_redis_batch_t *b, uint64_t target,
                              const char *group, uint64_t actor)
{
    char ev[40], channel[40];
    snprintf(ev, sizeof(ev), K_EVENTS, (ull)target);
    int rc = storage_redis_live_channel_of_key(s->redis, ev, channel, sizeof(channel));
    if (rc)
        return rc;
    storage__group_remove_t gr;
    storage__group_remove_args(&gr, channel, target, group, actor);
    storage_redis_batch_addargv(b, gr.argc, gr.argv, NULL);
    return 0;
}

static int run(storage_redis_batch_t *b)
{
    int rc = storage_redis_batch_run_checked(b);
    storage_redis_batch_free(b);
    return rc;
}

/* ---- DELETE /v1/me ------------------------------------------------------------------------ */

int storage_erase_begin(storage_t *s, uint64_t user, long quarantine_s)
{
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    storage_redis_batch_add(&b, "HGET " K_USER " handle", (ull)user);
    int rc = storage_redis_batch_run_checked(&b);
    char lower[STORAGE_HANDLE_MAX + 1] = "";
    if (rc == 0 && b.r[0]->type == REDIS_REPLY_STRING) {
        size_t i = 0;
        for (; i < b.r[0]->len && i < STORAGE_HANDLE_MAX; i++) {
            char c = b.r[0]->str[i];
            lower[i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
        }
        lower[i] = '\0';
    }
    storage_redis_batch_free(&b);
    if (rc)
        return rc;
    if (!lower[0])
        return -ENOENT;
    uint64_t at = storage_id_next(s);
    if (!at)
        return -EAGAIN;

    char handle_key[48], mark[48], id[24], ttl[24];
    snprintf(handle_key, sizeof(handle_key), K_HANDLE, lower);
    snprintf(mark, sizeof(mark), K_HANDLE_QUARANTINE, lower);
    snprintf(id, sizeof(id), "%llu", (ull)user);
    snprintf(ttl, sizeof(ttl), "%ld", quarantine_s > 0 ? quarantine_s : 0);
    storage_redis_batch_init(&b, s->redis);
    storage__job_enqueue(&b, storage__shard(s, user), at, user, "kind erase author %llu at %llu",
                         (ull)user, (ull)at);
    storage_redis_batch_barrier(&b); /* no user gone without the job that erases them */
    storage_redis_batch_add(&b, "DEL " K_USER, (ull)user);
    const char *argv[] = {"EVAL", release_handle_script, "2", handle_key, mark, id, ttl};
    storage_redis_batch_addargv(&b, 7, argv, NULL);
    storage__handle_index_del(&b, lower, user); /* search no longer finds them */
    return run(&b);
}

/* ---- stage 1: the posts ------------------------------------------------------------------- */

int storage_erase_posts(storage_t *s, uint64_t user)
{
    uint64_t posts[PAGE];
    size_t n;
    int rc;
    int shard = storage__shard(s, user);
    /* Every process forgets the user's tokens and ends their streams. Announced here, not
     * with the 202: the announcement names the user, and stage 2, which runs only after this
     * job, clears the announcement logs of it. */
    if ((rc = storage_tokens_revoke_all(s, user, NULL)) != 0)
        return rc;
    while ((rc = head(s, "ZRANGE " K_POSTS " 0 %lld", user, posts, PAGE, &n)) == 0 && n > 0) {
        /* As storage_post_delete, except that the post leaves the index only once its delete
         * job is queued: a run cut short between the two finds it again. */
        storage_redis_batch_t b;
        storage_redis_batch_init(&b, s->redis);
        for (size_t i = 0; i < n; i++) {
            storage_redis_batch_add(&b, "HSET " K_POST " deleted 1", (ull)posts[i]);
            storage_redis_batch_add(&b, "HDEL " K_POST " text", (ull)posts[i]);
            storage_redis_batch_add(&b, "ZADD " K_POSTS_DELETED " %llu %llu", (ull)user,
                                    (ull)posts[i], (ull)posts[i]);
        }
        storage_redis_batch_barrier(&b);
        for (size_t i = 0; i < n; i++) {
            uint64_t at = storage_id_next(s);
            if (!at) {
                storage_redis_batch_free(&b);
                return -EAGAIN;
            }
            storage__job_enqueue(&b, shard, at, user, "kind delete post %llu author %llu at %llu",
                                 (ull)posts[i], (ull)user, (ull)at);
        }
        if ((rc = run(&b)) != 0)
            return rc;
        storage_redis_batch_init(&b, s->redis);
        for (size_t i = 0; i < n; i++)
            storage_redis_batch_add(&b, "ZREM " K_POSTS " %llu", (ull)user, (ull)posts[i]);
        if ((rc = run(&b)) != 0)
            return rc;
    }
    if (rc)
        return rc;
    uint64_t at = storage_id_next(s);
    if (!at)
        return -EAGAIN;
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    storage__job_enqueue(&b, shard, at, user, "kind erase_rest author %llu at %llu", (ull)user,
                         (ull)at);
    return run(&b);
}

/* ---- stage 2: everything else ------------------------------------------------------------- */

/* Removes the repost entries user's reposts of post wrote into their followers' timelines. */
static int remove_repost_entries(storage_t *s, uint64_t user, uint64_t post)
{
    char p[24], u[24];
    snprintf(p, sizeof(p), "%llu", (ull)post);
    snprintf(u, sizeof(u), "%llu", (ull)user);
    for (long long start = 0;; start += FOLLOWERS_PAGE) {
        storage_redis_batch_t b;
        storage_redis_batch_init(&b, s->redis);
        storage_redis_batch_add(&b, "ZRANGE " K_FOLLOWERS " %lld %lld", (ull)user, start,
                                start + FOLLOWERS_PAGE - 1);
        int rc = storage_redis_batch_run_checked(&b);
        size_t n = rc == 0 ? b.r[0]->elements : 0;
        uint64_t *followers = n ? malloc(n * sizeof(*followers)) : NULL;
        for (size_t i = 0; followers && i < n; i++)
            followers[i] = storage_redis_uint_str(b.r[0]->element[i]);
        storage_redis_batch_free(&b);
        if (rc || n == 0)
            return rc;
        if (!followers)
            return -ENOMEM;
        storage_redis_batch_init(&b, s->redis);
        for (size_t i = 0; i < n; i++) {
            char tl[40], rb[40];
            snprintf(tl, sizeof(tl), K_TIMELINE, (ull)followers[i]);
            snprintf(rb, sizeof(rb), K_REPOSTED_BY, (ull)followers[i]);
            const char *argv[] = {"EVAL", repost_entry_script, "2", tl, rb, p, u};
            storage_redis_batch_addargv(&b, 7, argv, NULL);
        }
        free(followers);
        if ((rc = run(&b)) != 0)
            return rc;
        if (n < FOLLOWERS_PAGE)
            return 0;
    }
}

/* The user's reposts (reposts true) or likes: membership, notices, repost entries. */
static int undo_interactions(storage_t *s, uint64_t user, bool reposts)
{
    const char *index = reposts ? "ZRANGE " K_REPOSTED " 0 %lld" : "ZRANGE " K_LIKED " 0 %lld";
    uint64_t posts[PAGE], authors[PAGE];
    size_t n;
    int rc;
    while ((rc = head(s, index, user, posts, PAGE, &n)) == 0 && n > 0) {
        if ((rc = authors_of(s, posts, n, authors)) != 0)
            return rc;
        for (size_t i = 0; reposts && i < n; i++)
            if ((rc = remove_repost_entries(s, user, posts[i])) != 0)
                return rc;
        storage_redis_batch_t b;
        storage_redis_batch_init(&b, s->redis);
        for (size_t i = 0; i < n; i++) {
            char group[48];
            snprintf(group, sizeof(group), "%s:%llu", reposts ? "repost" : "like", (ull)posts[i]);
            storage__add_membership(&b, reposts, posts[i], user, false);
            if (authors[i] && (rc = add_notice_removal(s, &b, authors[i], group, user)) != 0) {
                storage_redis_batch_free(&b);
                return rc;
            }
            if (authors[i]) {
                if (reposts)
                    storage_redis_batch_add(&b, "DEL " K_REPOSTS_OF, (ull)user, (ull)authors[i]);
            }
        }
        storage_redis_batch_barrier(&b);
        for (size_t i = 0; i < n; i++)
            storage_redis_batch_add(&b,
                                    reposts ? "ZREM " K_REPOSTED " %llu" : "ZREM " K_LIKED " %llu",
                                    (ull)user, (ull)posts[i]);
        if ((rc = run(&b)) != 0)
            return rc;
    }
    return rc;
}

/* One relation both ways: for each member x of mine:{user}, user leaves theirs:{x} (and, with
 * follow_notices, x's follow notice from user goes; with celebs, x's celebrity merge of user
 * goes); then x leaves mine:{user}. */
static int undo_relation(storage_t *s, uint64_t user, const char *mine, const char *theirs,
                         bool follow_notices, bool celebs)
{
    char read[64], rm_theirs[64], rm_mine[64];
    snprintf(read, sizeof(read), "ZRANGE %s 0 %%lld", mine);
    snprintf(rm_theirs, sizeof(rm_theirs), "ZREM %s %%llu", theirs);
    snprintf(rm_mine, sizeof(rm_mine), "ZREM %s %%llu", mine);
    uint64_t others[PAGE];
    size_t n;
    int rc;
    while ((rc = head(s, read, user, others, PAGE, &n)) == 0 && n > 0) {
        storage_redis_batch_t b;
        storage_redis_batch_init(&b, s->redis);
        for (size_t i = 0; i < n; i++) {
            storage_redis_batch_add(&b, rm_theirs, (ull)others[i], (ull)user);
            if (follow_notices && (rc = add_notice_removal(s, &b, others[i], NULL, user)) != 0) {
                storage_redis_batch_free(&b);
                return rc;
            }
            if (follow_notices) {
                storage_redis_batch_add(&b, "ZREM " K_NOTIF_REFOLLOW " %llu", (ull)others[i],
                                        (ull)user);
            }
            if (celebs)
                storage_redis_batch_add(&b, "SREM " K_CELEB_FOLLOWS " %llu", (ull)others[i],
                                        (ull)user);
        }
        storage_redis_batch_barrier(&b);
        for (size_t i = 0; i < n; i++)
            storage_redis_batch_add(&b, rm_mine, (ull)user, (ull)others[i]);
        if ((rc = run(&b)) != 0)
            return rc;
    }
    return rc;
}

/* The user's inbox: posts that mention or answer them lose their id, then every group goes. */
static int clear_inbox(storage_t *s, uint64_t user)
{
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    storage_redis_batch_add(&b, "ZRANGE " K_NOTIFS " 0 -1", (ull)user);
    int rc = storage_redis_batch_run_checked(&b);
    if (rc) {
        storage_redis_batch_free(&b);
        return rc;
    }
    storage_redis_batch_t w;
    storage_redis_batch_init(&w, s->redis);
    char u[24], prefix[40];
    snprintf(u, sizeof(u), "%llu", (ull)user);
    snprintf(prefix, sizeof(prefix), K_NOTIF_PREFIX, (ull)user);
    const redisReply *groups = b.r[0];
    for (size_t i = 0; i < groups->elements; i++) {
        const char *g = groups->element[i]->str;
        if (!g)
            continue;
        const char *colon = strchr(g, ':');
        if (colon && (strncmp(g, "mention:", 8) == 0 || strncmp(g, "reply:", 6) == 0)) {
            char post[40];
            snprintf(post, sizeof(post), K_POST, (ull)strtoull(colon + 1, NULL, 10));
            const char *argv[] = {"EVAL", unname_script, "1", post, u};
            storage_redis_batch_addargv(&w, 5, argv, NULL);
        }
        storage_redis_batch_add(&w, "DEL %s%s", prefix, g);
    }
    storage_redis_batch_free(&b);
    return w.n ? run(&w) : (storage_redis_batch_free(&w), 0);
}

/* Is the user's id a whole word of text ("feed 12 34 0/1-0", "follow 34 56")? */
static bool names(const char *text, size_t len, const char *id)
{
    size_t idlen = strlen(id);
    for (size_t i = 0; i + idlen <= len; i++) {
        bool starts = i == 0 || text[i - 1] == ' ' || text[i - 1] == ':';
        bool ends = i + idlen == len || text[i + idlen] == ' ' || text[i + idlen] == ':';
        if (starts && ends && memcmp(text + i, id, idlen) == 0)
            return true;
    }
    return false;
}

/* The announcement logs (announce:{k}, one per node) keep the user's celebrity posts and
 * follows for processes that missed them; the entries naming the user go. */
static int clear_announcements(storage_t *s, uint64_t user)
{
    bool cluster;
    int masters;
    uint64_t redirects, refreshes, pipelines;
    storage_redis_topology_stats(s->redis, &cluster, &masters, &redirects, &refreshes, &pipelines);
    char id[24];
    snprintf(id, sizeof(id), "%llu", (ull)user);
    for (int node = 0; node < (masters > 0 ? masters : 1); node++) {
        char channel[48], log[56], after[64] = "-";
        storage_redis_live_channel(s->redis, node, channel, sizeof(channel));
        snprintf(log, sizeof(log), "announce%s", channel + 4); /* live:{k} -> announce:{k} */
        for (;;) {
            storage_redis_batch_t b;
            storage_redis_batch_init(&b, s->redis);
            storage_redis_batch_add(&b, "XRANGE %s %s + COUNT %d", log, after, ANNOUNCE_PAGE);
            int rc = storage_redis_batch_run_checked(&b);
            if (rc) {
                storage_redis_batch_free(&b);
                return rc;
            }
            const redisReply *r = b.r[0];
            storage_redis_batch_t w;
            storage_redis_batch_init(&w, s->redis);
            for (size_t i = 0; i < r->elements; i++) {
                const redisReply *e = r->element[i];
                if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 || !e->element[0]->str)
                    continue;
                snprintf(after, sizeof(after), "(%s", e->element[0]->str);
                const redisReply *f = e->element[1];
                for (size_t k = 1; f->type == REDIS_REPLY_ARRAY && k < f->elements; k += 2)
                    if (f->element[k]->str && names(f->element[k]->str, f->element[k]->len, id)) {
                        storage_redis_batch_add(&w, "XDEL %s %s", log, e->element[0]->str);
                        break;
                    }
            }
            bool more = r->elements == ANNOUNCE_PAGE;
            storage_redis_batch_free(&b);
            rc = w.n ? run(&w) : (storage_redis_batch_free(&w), 0);
            if (rc || !more)
                break;
        }
    }
    return 0;
}

/* Every key that carries the user's hash tag is theirs (ids of users and posts never
 * coincide): what no index lists goes too, such as rate-limit buckets (rl:{id}:<class>),
 * Idempotency-Key claims (idem:{id}:<key>), stream tickets and any token key a failed
 * revocation left. One SCAN of every master: erasures are rare and run off the request path. */
static int unlink_keys(void *arg, const redisReply *keys)
{
    storage_t *s = arg;
    if (keys->elements == 0)
        return 0;
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    for (size_t i = 0; i < keys->elements; i++)
        if (keys->element[i]->type == REDIS_REPLY_STRING)
            storage_redis_batch_add(&b, "UNLINK %b", keys->element[i]->str,
                                    (size_t)keys->element[i]->len);
    return run(&b);
}

static int remove_tagged(storage_t *s, uint64_t user)
{
    char match[40];
    snprintf(match, sizeof(match), "*{%llu}*", (ull)user);
    return storage_redis_scan(s->redis, match, unlink_keys, s);
}

/* The user's posts, retracted by stage 1's delete jobs: their tombstones and sets go, and
 * the reposters' index of them. */
static int remove_tombstones(storage_t *s, uint64_t user)
{
    uint64_t posts[PAGE];
    size_t n;
    int rc;
    while ((rc = head(s, "ZRANGE " K_POSTS_DELETED " 0 %lld", user, posts, PAGE, &n)) == 0 &&
           n > 0) {
        storage_redis_batch_t b;
        storage_redis_batch_init(&b, s->redis);
        for (size_t i = 0; i < n; i++)
            storage_redis_batch_add(&b, "SMEMBERS " K_REPOSTS, (ull)posts[i]);
        if ((rc = storage_redis_batch_run_checked(&b)) != 0) {
            storage_redis_batch_free(&b);
            return rc;
        }
        storage_redis_batch_t w;
        storage_redis_batch_init(&w, s->redis);
        for (size_t i = 0; i < n; i++) {
            const redisReply *r = b.r[i];
            for (size_t k = 0; k < r->elements; k++)
                storage_redis_batch_add(&w, "DEL " K_REPOSTS_OF,
                                        (ull)storage_redis_uint_str(r->element[k]), (ull)user);
            storage_redis_batch_add(&w, "DEL " K_LIKES, (ull)posts[i]);
            storage_redis_batch_add(&w, "DEL " K_REPOSTS, (ull)posts[i]);
            storage_redis_batch_add(&w, "DEL " K_POST, (ull)posts[i]);
        }
        storage_redis_batch_barrier(&w);
        for (size_t i = 0; i < n; i++)
            storage_redis_batch_add(&w, "ZREM " K_POSTS_DELETED " %llu", (ull)user, (ull)posts[i]);
        storage_redis_batch_free(&b);
        if ((rc = run(&w)) != 0)
            return rc;
    }
    return rc;
}

int storage_erase_rest(storage_t *s, uint64_t user)
{
    /* Reposts first: their entries are found through the follower edges. */
    int rc = undo_interactions(s, user, true);
    if (!rc)
        rc = undo_interactions(s, user, false);
    if (!rc)
        rc = undo_relation(s, user, K_FOLLOWING, K_FOLLOWERS, true, false);
    if (!rc)
        rc = undo_relation(s, user, K_FOLLOWERS, K_FOLLOWING, false, true);
    if (!rc)
        rc = undo_relation(s, user, K_BLOCKS, K_BLOCKED_BY, false, false);
    if (!rc)
        rc = undo_relation(s, user, K_BLOCKED_BY, K_BLOCKS, false, false);
    if (!rc)
        rc = undo_relation(s, user, K_MUTES, K_MUTED_BY, false, false);
    if (!rc)
        rc = undo_relation(s, user, K_MUTED_BY, K_MUTES, false, false);
    if (!rc)
        rc = clear_inbox(s, user);
    if (!rc)
        rc = remove_tombstones(s, user);
    if (!rc)
        rc = clear_announcements(s, user);
    if (rc)
        return rc;
    static const char *const own[] = {
        K_USER,   K_TIMELINE,      K_REPOSTED_BY,    K_CELEB,      K_CELEB_FOLLOWS,
        K_NOTIFS, K_NOTIF_FOLLOWS, K_NOTIF_REFOLLOW, K_NOTIF_READ, K_EVENTS,
        K_POSTS,  K_POSTS_DELETED, K_LIKED,          K_REPOSTED};
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++) {
        char cmd[48];
        snprintf(cmd, sizeof(cmd), "DEL %s", own[i]);
        storage_redis_batch_add(&b, cmd, (ull)user);
    }
    rc = run(&b);
    return rc ? rc : remove_tagged(s, user);
}
