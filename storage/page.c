/* storage/page.c -- pages of a sorted set, newest first: the one paging helper the follow
 * graph, the relations and an author's posts share.
 *
 * A page reads limit + 1 entries below the cursor's score, so whether a next page exists
 * is known without another round trip; the owner's existence is read in the same batch, and
 * so, for a viewer, whether viewer and owner blocked one another (two ZSCOREs on the viewer's
 * slot): a page of someone who blocked you answers as if they did not exist.
 * It lives apart so that graph.c and interactions.c (which uses it for relations) call
 * each other one way only: graph.c asks interactions.c whether a block stands.
 */
#include "storage/storage_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void storage_page_free(storage_page_t *p)
{
    free(p->ids);
    memset(p, 0, sizeof(*p));
}

/* Reads a ZREVRANGEBYSCORE … WITHSCORES reply of up to limit+1 pairs into a page. */
static int read_page(const redisReply *r, size_t limit, storage_page_t *out)
{
    memset(out, 0, sizeof(*out));
    if (!r || r->type != REDIS_REPLY_ARRAY)
        return -EIO;
    size_t pairs = r->elements / 2;
    size_t n = pairs > limit ? limit : pairs;
    out->ids = calloc(n ? n : 1, sizeof(*out->ids));
    if (!out->ids)
        return -ENOMEM;
    uint64_t last_score = 0;
    for (size_t i = 0; i < n; i++) {
        out->ids[i] = storage_redis_uint_str(r->element[2 * i]);
        last_score = storage_redis_uint_str(r->element[2 * i + 1]);
    }
    out->n = n;
    out->next_cursor = pairs > limit ? last_score : 0;
    return 0;
}

int storage__zpage(storage_t *s, const char *key_fmt, uint64_t owner, uint64_t viewer,
                   uint64_t cursor, size_t limit, storage_page_t *out)
{
    char max[32] = "+inf";
    if (cursor)
        snprintf(max, sizeof(max), "(%llu", (ull)cursor);
    char cmd[96];
    snprintf(cmd, sizeof(cmd), "ZREVRANGEBYSCORE %s %%s -inf WITHSCORES LIMIT 0 %%llu", key_fmt);
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    storage_redis_batch_add(&b, "EXISTS " K_USER, (ull)owner);
    storage_redis_batch_add(&b, cmd, (ull)owner, max, (ull)(limit + 1));
    size_t rels = viewer && viewer != owner
                      ? storage__add_relation_reads(&b, viewer, STORAGE_REL_BLOCK, &owner, 1)
                      : 0;
    int rc = storage_redis_batch_run(&b);
    bool blocked = false;
    if (rc == 0) {
        if (storage_redis_is_error(b.r[0]) || storage_redis_is_error(b.r[1]) ||
            storage__relation_hits(b.r + 2, rels, 1, &blocked) != 0)
            rc = -EIO;
        else if (storage_redis_int(b.r[0]) != 1 || blocked)
            rc = -ENOENT;
        else
            rc = read_page(b.r[1], limit, out);
    }
    storage_redis_batch_free(&b);
    return rc;
}
