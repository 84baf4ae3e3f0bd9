/* storage/timeline.c -- reading a home timeline, with celebrities merged at read time.
 *
 * The fan-out engine writes ordinary authors' posts into tl:{user}; celebrities' posts
 * stay in their own posts:{author} index and the user's celebs:{user} set names the
 * celebrities followed. A page takes limit+1 ids below the cursor from each source,
 * merges them newest first without duplicates (a post fanned out before its author became
 * a celebrity is in both), and keeps limit: since every source is ordered by post id, the
 * cursor (the last id served) stays exact across the merge.
 */
#include "storage/storage_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_desc(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Appends the ids of a ZREVRANGEBYSCORE reply (without scores) to ids. */
static void append_ids(const redisReply *r, uint64_t *ids, size_t *n, size_t cap)
{
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements && *n < cap; i++) {
        uint64_t id = storage__uint_str(r->element[i]);
        if (id)
            ids[(*n)++] = id;
    }
}

int storage_timeline_page(storage_t *s, uint64_t user, uint64_t cursor, size_t limit,
                          int timeline_max, storage_page_t *out)
{
    memset(out, 0, sizeof(*out));
    char max[32] = "+inf";
    if (cursor)
        snprintf(max, sizeof(max), "(%llu", (ull)cursor);
    storage__batch_t b;
    storage__batch_init(&b, s);
    storage__batch_add(&b, "ZREMRANGEBYRANK " K_TIMELINE " 0 %d", (ull)user, -(timeline_max + 1));
    storage__batch_add(&b, "ZREVRANGEBYSCORE " K_TIMELINE " %s -inf LIMIT 0 %llu", (ull)user, max,
                       (ull)(limit + 1));
    storage__batch_add(&b, "SMEMBERS " K_CELEB_FOLLOWS, (ull)user);
    int rc = storage__batch_run(&b);
    for (size_t i = 0; rc == 0 && i < b.n; i++)
        if (storage__is_error(b.r[i]))
            rc = -EIO;
    if (rc) {
        storage__batch_free(&b);
        return rc;
    }
    const redisReply *celebs = b.r[2];
    size_t cap = (limit + 1) * (1 + celebs->elements);
    uint64_t *ids = malloc(cap * sizeof(*ids));
    size_t n = 0;
    if (!ids) {
        storage__batch_free(&b);
        return -ENOMEM;
    }
    append_ids(b.r[1], ids, &n, cap);
    storage__batch_t m;
    storage__batch_init(&m, s);
    for (size_t i = 0; i < celebs->elements; i++)
        storage__batch_add(&m, "ZREVRANGEBYSCORE " K_POSTS " %s -inf LIMIT 0 %llu",
                           (ull)storage__uint_str(celebs->element[i]), max, (ull)(limit + 1));
    storage__batch_free(&b);
    if (m.n) {
        rc = storage__batch_run(&m);
        for (size_t i = 0; rc == 0 && i < m.n; i++)
            append_ids(m.r[i], ids, &n, cap);
    }
    storage__batch_free(&m);
    if (rc) {
        free(ids);
        return rc;
    }
    qsort(ids, n, sizeof(*ids), cmp_desc);
    size_t unique = 0;
    for (size_t i = 0; i < n; i++)
        if (unique == 0 || ids[unique - 1] != ids[i])
            ids[unique++] = ids[i];
    out->ids = ids;
    out->n = unique > limit ? limit : unique;
    out->next_cursor = unique > limit ? ids[limit - 1] : 0;
    return 0;
}
