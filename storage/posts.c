/* storage/posts.c -- posts, authors' post indexes, idempotency keys.
 *
 * A post is a hash post:{id} with its immutable fields and its like and repost counts, the
 * sizes of the sets likes:{id} and reposts:{id} written with every change of those sets
 * (storage__add_membership), so they stay exact under concurrency, a read is one HMGET, and
 * a replayed create never resets them. Posts from before the counts were kept, never liked
 * or reposted since, have no count fields: their sets' sizes are read instead, in a second
 * round trip for those posts only. Creating writes the hash, the
 * author's index posts:{author} and the fan-out job in one pipelined round trip; if any
 * reply is an error the request fails and a retry (same Idempotency-Key) writes the same
 * post id again, so the job is never missing. A deleted post keeps a tombstone hash
 * (deleted=1, no text) so that a late fan-out of it can tell it must not be written.
 */
#include "storage/storage_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ABANDONED_TTL_S 86400 /* an abandoned post's tombstone: longer than any Redis pause */

void storage_post_clear(storage_post_t *p)
{
    free(p->text);
    memset(p, 0, sizeof(*p));
}

static void format_mentions(char *buf, size_t size, const storage_post_t *p)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < p->n_mentions && used < size; i++)
        used +=
            (size_t)snprintf(buf + used, size - used, "%s%llu", i ? "," : "", (ull)p->mentions[i]);
}

static void parse_mentions(storage_post_t *p, const redisReply *r)
{
    if (!r || r->type != REDIS_REPLY_STRING)
        return;
    const char *c = r->str, *end = r->str + r->len;
    while (c < end && p->n_mentions < STORAGE_MENTIONS_MAX) {
        const char *comma = memchr(c, ',', (size_t)(end - c));
        const char *stop = comma ? comma : end;
        uint64_t id = storage_redis_parse_u64(c, (size_t)(stop - c));
        if (id)
            p->mentions[p->n_mentions++] = id;
        c = stop + 1;
    }
}

/* 0 for a reply that is not an error; a command held back by the barrier has none. */
static int reply_status(const redisReply *r)
{
    if (!r)
        return -EIO;
    return storage_redis_is_error(r) ? storage_redis_error_status(r) : 0;
}

/* KEYS[1] post:{id}; ARGV the fields. Writes nothing over an existing hash: a replay of the
 * same post finds its own, and a late copy of an abandoned one finds the tombstone. */
static const char create_script[] = "if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end\n"
                                    "redis.call('HSET', KEYS[1], unpack(ARGV))\n"
                                    "return 1\n";

int storage_post_create(storage_t *s, const storage_post_t *p, bool *answered)
{
    char mentions[STORAGE_MENTIONS_MAX * 21 + 1], key[40], author[24], reply_to[24],
        reply_author[24];
    format_mentions(mentions, sizeof(mentions), p);
    snprintf(key, sizeof(key), K_POST, (ull)p->id);
    snprintf(author, sizeof(author), "%llu", (ull)p->author);
    snprintf(reply_to, sizeof(reply_to), "%llu", (ull)p->reply_to);
    snprintf(reply_author, sizeof(reply_author), "%llu", (ull)p->reply_author);
    const char *argv[] = {"EVAL",
                          create_script,
                          "1",
                          key,
                          "author",
                          author,
                          "text",
                          p->text,
                          "reply_to",
                          reply_to,
                          "reply_author",
                          reply_author,
                          "mentions",
                          mentions,
                          POST_LIKES_FIELD,
                          "0",
                          POST_REPOSTS_FIELD,
                          "0"};
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    storage_redis_batch_addargv(&b, (int)(sizeof(argv) / sizeof(*argv)), argv, NULL);
    storage_redis_batch_add(&b, "ZADD " K_POSTS " %llu %llu", (ull)p->author, (ull)p->id,
                            (ull)p->id);
    storage_redis_batch_barrier(&b);
    storage__job_enqueue(&b, storage__shard(s, p->author), p->id, p->author,
                         "kind post post %llu author %llu at %llu", (ull)p->id, (ull)p->author,
                         (ull)p->id);
    int rc = storage_redis_batch_run(&b);
    *answered = rc == 0 || rc == -ENOTCONN; /* -ENOTCONN: nothing was sent (redis.h) */
    for (size_t i = 0; rc == 0 && i < b.n; i++)
        rc = reply_status(b.r[i]);
    storage_redis_batch_free(&b);
    return rc;
}

int storage_post_abandon(storage_t *s, const storage_post_t *p)
{
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    /* A tombstone without an author reads as no post at all, and outlives any late copy of
     * the create; the index entry goes (a late ZADD would leave one that hydrates to nothing). */
    storage_redis_batch_add(&b, "DEL " K_POST, (ull)p->id);
    storage_redis_batch_add(&b, "ZREM " K_POSTS " %llu", (ull)p->author, (ull)p->id);
    storage_redis_batch_add(&b, "HSET " K_POST " deleted 1", (ull)p->id);
    storage_redis_batch_add(&b, "EXPIRE " K_POST " %d", (ull)p->id, ABANDONED_TTL_S);
    int rc = storage_redis_batch_run(&b);
    for (size_t i = 0; rc == 0 && i < 2; i++)
        rc = reply_status(b.r[i]);
    storage_redis_batch_free(&b);
    return rc;
}

int storage_post_settle(storage_t *s, const storage_post_t *p, bool *published)
{
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    storage__job_fence(&b, storage__shard(s, p->author), p->id, true);
    int rc = storage_redis_batch_run(&b);
    if (rc == 0)
        rc = reply_status(b.r[0]);
    if (rc == 0 && b.r[0]->type != REDIS_REPLY_INTEGER)
        rc = -EIO;
    *published = rc == 0 && b.r[0]->integer == 1;
    storage_redis_batch_free(&b);
    if (rc == 0 && !*published)
        rc = storage_post_abandon(s, p);
    return rc;
}

#define POST_FIELDS "author text reply_to mentions deleted " POST_LIKES_FIELD " " POST_REPOSTS_FIELD

/* A count as a post's field holds it (a string), or as SCARD answers it; -1 when absent. */
int64_t storage__count_reply(const redisReply *r)
{
    if (r && r->type == REDIS_REPLY_INTEGER)
        return r->integer;
    if (r && r->type == REDIS_REPLY_STRING && r->len > 0)
        return (int64_t)storage_redis_parse_u64(r->str, r->len);
    return -1;
}

int storage__post_from_fields(redisReply **f, uint64_t id, storage_post_t *out)
{
    memset(out, 0, sizeof(*out));
    uint64_t author = storage_redis_uint_str(f[0]);
    if (!author)
        return 0;
    const redisReply *text = f[1];
    out->text =
        text && text->type == REDIS_REPLY_STRING ? strndup(text->str, text->len) : strdup("");
    if (!out->text)
        return -ENOMEM;
    out->id = id;
    out->author = author;
    out->reply_to = storage_redis_uint_str(f[2]);
    parse_mentions(out, f[3]);
    out->deleted = storage_redis_uint_str(f[4]) == 1;
    out->like_count = storage__count_reply(f[5]);
    out->repost_count = storage__count_reply(f[6]);
    return 0;
}

/* Posts without count fields (from before they were kept): their sets' sizes, in one round
 * trip for all of them. */
static int legacy_counts(storage_t *s, storage_post_t *posts, size_t n)
{
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    for (size_t i = 0; i < n; i++) {
        if (posts[i].id && posts[i].like_count < 0)
            storage_redis_batch_add(&b, "SCARD " K_LIKES, (ull)posts[i].id);
        if (posts[i].id && posts[i].repost_count < 0)
            storage_redis_batch_add(&b, "SCARD " K_REPOSTS, (ull)posts[i].id);
    }
    int rc = b.n ? storage_redis_batch_run_checked(&b) : 0;
    for (size_t i = 0, k = 0; rc == 0 && i < n; i++) {
        if (posts[i].id && posts[i].like_count < 0)
            posts[i].like_count = storage_redis_int(b.r[k++]);
        if (posts[i].id && posts[i].repost_count < 0)
            posts[i].repost_count = storage_redis_int(b.r[k++]);
    }
    storage_redis_batch_free(&b);
    return rc;
}

int storage_posts_get(storage_t *s, const uint64_t *ids, size_t n, storage_post_t *out)
{
    memset(out, 0, n * sizeof(*out));
    if (n == 0)
        return 0;
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    for (size_t i = 0; i < n; i++)
        storage_redis_batch_add(&b, "HMGET " K_POST " " POST_FIELDS, (ull)ids[i]);
    int rc = storage_redis_batch_run(&b);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const redisReply *r = b.r[i];
        if (storage_redis_is_error(r) || r->type != REDIS_REPLY_ARRAY || r->elements != 7)
            rc = -EIO;
        else
            rc = storage__post_from_fields(r->element, ids[i], &out[i]);
    }
    storage_redis_batch_free(&b);
    if (rc == 0)
        rc = legacy_counts(s, out, n);
    if (rc)
        for (size_t i = 0; i < n; i++)
            storage_post_clear(&out[i]);
    return rc;
}

int storage_post_get(storage_t *s, uint64_t id, storage_post_t *out)
{
    int rc = storage_posts_get(s, &id, 1, out);
    if (rc == 0 && out->id == 0)
        rc = -ENOENT;
    return rc;
}

int storage_post_delete(storage_t *s, uint64_t id, uint64_t author)
{
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    storage_redis_batch_add(&b, "HSET " K_POST " deleted 1", (ull)id);
    /* The text goes; mentions and the parent stay, so the engine can withdraw the
     * notifications this post caused. */
    storage_redis_batch_add(&b, "HDEL " K_POST " text", (ull)id);
    storage_redis_batch_add(&b, "ZREM " K_POSTS " %llu", (ull)author, (ull)id);
    /* The tombstone stays findable: an erasure of the author removes it. */
    storage_redis_batch_add(&b, "ZADD " K_POSTS_DELETED " %llu %llu", (ull)author, (ull)id,
                            (ull)id);
    storage_redis_batch_barrier(&b);
    uint64_t at = storage_id_next(s);
    storage__job_enqueue(&b, storage__shard(s, author), at, author,
                         "kind delete post %llu author %llu at %llu", (ull)id, (ull)author,
                         (ull)at);
    int rc = storage_redis_batch_run_checked(&b);
    storage_redis_batch_free(&b);
    return rc;
}

int storage_author_posts_page(storage_t *s, uint64_t author, uint64_t cursor, size_t limit,
                              storage_page_t *out)
{
    return storage__zpage(s, K_POSTS, author, 0, cursor, limit, out);
}

int storage_author_posts_page_as(storage_t *s, uint64_t author, uint64_t viewer, uint64_t cursor,
                                 size_t limit, storage_page_t *out)
{
    return storage__zpage(s, K_POSTS, author, viewer, cursor, limit, out);
}

int storage_idempotency_release(storage_t *s, uint64_t user, const char *key)
{
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    storage_redis_batch_add(&b, "DEL " K_IDEM, (ull)user, key, strlen(key));
    int rc = storage_redis_batch_run_checked(&b);
    storage_redis_batch_free(&b);
    return rc;
}

int storage_idempotency_claim(storage_t *s, uint64_t user, const char *key, const char *fingerprint,
                              uint64_t new_id, uint64_t *existing_id, bool *same_request)
{
    size_t klen = strlen(key);
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    storage_redis_batch_add(&b, "SET " K_IDEM " %llu:%s NX EX %d", (ull)user, key, klen,
                            (ull)new_id, fingerprint, IDEM_TTL_S);
    storage_redis_batch_add(&b, "GET " K_IDEM, (ull)user, key, klen);
    int rc = storage_redis_batch_run_checked(&b);
    if (rc == 0 && b.r[0]->type != REDIS_REPLY_STATUS) {
        const redisReply *v = b.r[1];
        const char *colon = v->type == REDIS_REPLY_STRING ? memchr(v->str, ':', v->len) : NULL;
        if (!colon) {
            rc = -EIO;
        } else {
            *existing_id = storage_redis_parse_u64(v->str, (size_t)(colon - v->str));
            size_t flen = v->len - (size_t)(colon + 1 - v->str);
            *same_request =
                flen == strlen(fingerprint) && memcmp(colon + 1, fingerprint, flen) == 0;
            rc = -EEXIST;
        }
    }
    storage_redis_batch_free(&b);
    return rc;
}
