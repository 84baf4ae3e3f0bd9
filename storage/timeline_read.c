/* storage/timeline_read.c -- reading a home timeline, with celebrities merged at read time.
 *
 * tl:{user} holds post ids scored by entry id: the post id for fanned-out posts, the
 * repost's own id for repost entries (so a repost shows when it happened), with rb:{user}
 * naming the reposter. Celebrities' posts stay in their posts:{author} index; celebs:{user}
 * names the celebrities followed. A page takes limit+1 entries below the cursor from each
 * source, merges them by score without repeating a post, and keeps limit; every source is
 * ordered by score, so the cursor (the last score served) stays exact across the merge.
 * Posts and reposts of users the reader blocked, was blocked by or muted are left out by
 * the caller, which tests exactly the page's authors and reposters (storage_profiles_get_as):
 * the reader's relation sets are never read whole here.
 */
#include "storage/storage_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry_s {
    uint64_t score, post;
} entry_t;

static int by_score_desc(const void *a, const void *b)
{
    uint64_t x = ((const entry_t *)a)->score, y = ((const entry_t *)b)->score;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Appends the pairs of a ZREVRANGEBYSCORE … WITHSCORES reply. */
static void append(const redisReply *r, entry_t *e, size_t *n, size_t cap)
{
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements && *n < cap;
         i += 2) {
        entry_t it = {storage_redis_uint_str(r->element[i + 1]),
                      storage_redis_uint_str(r->element[i])};
        if (it.post && it.score)
            e[(*n)++] = it;
    }
}

void storage_timeline_free(storage_timeline_t *t)
{
    storage_page_free(&t->page);
    free(t->reposted_by);
    memset(t, 0, sizeof(*t));
}

/* Reads the sources of one page into entries; returns how many. */
static int read_sources(storage_t *s, uint64_t user, const char *max, size_t limit,
                        int timeline_max, entry_t **entries, size_t *n)
{
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    storage_redis_batch_add(&b, "ZREMRANGEBYRANK " K_TIMELINE " 0 %d", (ull)user,
                            -(timeline_max + 1));
    storage_redis_batch_add(&b, "ZREVRANGEBYSCORE " K_TIMELINE " %s -inf WITHSCORES LIMIT 0 %llu",
                            (ull)user, max, (ull)(limit + 1));
    storage_redis_batch_add(&b, "SMEMBERS " K_CELEB_FOLLOWS, (ull)user);
    int rc = storage_redis_batch_run_checked(&b);
    if (rc)
        goto out;
    const redisReply *celebs = b.r[2];
    size_t cap = (limit + 1) * (1 + celebs->elements);
    *entries = malloc(cap * sizeof(**entries));
    if (!*entries) {
        rc = -ENOMEM;
        goto out;
    }
    append(b.r[1], *entries, n, cap);
    storage_redis_batch_t m;
    storage_redis_batch_init(&m, s->redis);
    for (size_t i = 0; i < celebs->elements; i++)
        storage_redis_batch_add(&m, "ZREVRANGEBYSCORE " K_POSTS " %s -inf WITHSCORES LIMIT 0 %llu",
                                (ull)storage_redis_uint_str(celebs->element[i]), max,
                                (ull)(limit + 1));
    if (m.n) {
        rc = storage_redis_batch_run(&m);
        for (size_t i = 0; rc == 0 && i < m.n; i++)
            append(m.r[i], *entries, n, cap);
    }
    storage_redis_batch_free(&m);
out:
    storage_redis_batch_free(&b);
    return rc;
}

int storage_timeline_page(storage_t *s, uint64_t user, uint64_t cursor, size_t limit,
                          int timeline_max, storage_timeline_t *out)
{
    memset(out, 0, sizeof(*out));
    char max[32] = "+inf";
    if (cursor)
        snprintf(max, sizeof(max), "(%llu", (ull)cursor);
    entry_t *e = NULL;
    size_t n = 0;
    int rc = read_sources(s, user, max, limit, timeline_max, &e, &n);
    if (rc)
        goto fail;
    qsort(e, n, sizeof(*e), by_score_desc);
    /* Keep each post once, at its newest entry. */
    size_t unique = 0;
    for (size_t i = 0; i < n; i++) {
        bool seen = false;
        for (size_t k = 0; k < unique && !seen; k++)
            seen = e[k].post == e[i].post;
        if (!seen)
            e[unique++] = e[i];
    }
    size_t keep = unique > limit ? limit : unique;
    out->page.ids = malloc((keep ? keep : 1) * sizeof(uint64_t));
    out->reposted_by = calloc(keep ? keep : 1, sizeof(uint64_t));
    if (!out->page.ids || !out->reposted_by) {
        rc = -ENOMEM;
        goto fail;
    }
    for (size_t i = 0; i < keep; i++)
        out->page.ids[i] = e[i].post;
    out->page.n = keep;
    out->page.next_cursor = unique > limit ? e[limit - 1].score : 0;
    /* Who reposted the entries that came through a repost. */
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    for (size_t i = 0; i < keep; i++)
        if (e[i].score != e[i].post)
            storage_redis_batch_add(&b, "HGET " K_REPOSTED_BY " %llu", (ull)user, (ull)e[i].post);
    if (b.n) {
        rc = storage_redis_batch_run(&b);
        size_t kept = 0;
        for (size_t i = 0, k = 0; rc == 0 && i < keep; i++) {
            uint64_t reposter = e[i].score != e[i].post ? storage_redis_uint_str(b.r[k++]) : 0;
            /* A repost entry whose reposter is gone by now was taken back (an undone
             * repost, a block or mute) between the two reads: leave it out. */
            if (e[i].score != e[i].post && !reposter)
                continue;
            out->page.ids[kept] = out->page.ids[i];
            out->reposted_by[kept++] = reposter;
        }
        if (rc == 0)
            out->page.n = kept;
    }
    storage_redis_batch_free(&b);
    if (rc)
        goto fail;
    free(e);
    return 0;
fail:
    free(e);
    storage_timeline_free(out);
    return rc;
}
