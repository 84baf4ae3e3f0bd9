/* storage/timeline_read.c -- reading a home timeline, with celebrities merged at read time.
 *
 * tl:{user} holds post ids scored by entry id: the post id for fanned-out posts, the
 * repost's own id for repost entries (so a repost shows when it happened), with rb:{user}
 * naming the reposter. Celebrities' posts stay in their posts:{author} index; celebs:{user}
 * names the celebrities followed. A page merges the sources below the cursor by score with a
 * heap, without repeating a post, and stops once it has limit+1 posts; every source is ordered
 * by score, so the cursor (the last score served) stays exact across the merge. A reader who
 * follows many celebrities reads only a few posts of each (first_read), and again only from
 * those that reach into the page (reread): one page costs Redis about one short range read
 * per celebrity plus the page, not limit+1 posts per celebrity, and the process a heap merge,
 * not a sort and a quadratic de-duplication of all of them. A read writes nothing: the
 * timeline is trimmed to --timeline-max where it is written (timeline_write.c, the
 * rebuild), which lets it run over by a few entries between trims, so a read serves only the
 * newest --timeline-max entries. The timeline's part (its entries with their reposters, the
 * celebrities followed, the rebuild mark) is one script on the user's slot.
 * On one Redis node, timeline_view.c reads a whole page, posts and people too, in one script
 * instead; this file is the Redis Cluster's way, and stream_reset.c's.
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
    uint64_t score, post, reposter; /* reposter: of a timeline's repost entry, else 0 */
} entry_t;

/* One ordered source of a page: the timeline, or one celebrity's posts. e holds what was read
 * of it below the cursor, newest first; more: the read stopped at its count, so the source
 * may hold further entries below e[n - 1]. */
typedef struct source_s {
    entry_t *e;
    size_t n, next;
    bool more, own; /* own: e is this source's allocation (after a second read) */
    uint64_t author;
} source_t;

/* Appends the pairs of a ZREVRANGEBYSCORE … WITHSCORES reply, with their reposters when rbs
 * (one per pair) is given. */
static void append(const redisReply *r, const redisReply *rbs, entry_t *e, size_t *n, size_t cap)
{
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements && *n < cap;
         i += 2) {
        entry_t it = {storage_redis_uint_str(r->element[i + 1]),
                      storage_redis_uint_str(r->element[i]), 0};
        if (rbs && rbs->type == REDIS_REPLY_ARRAY && i / 2 < rbs->elements)
            it.reposter = storage_redis_uint_str(rbs->element[i / 2]);
        if (it.post && it.score)
            e[(*n)++] = it;
    }
}

void storage_timeline_free(storage_timeline_t *t)
{
    storage_post_views_clear(t->views, t->page.n);
    free(t->views);
    storage_page_free(&t->page);
    free(t->reposted_by);
    memset(t, 0, sizeof(*t));
}

/* ---- the k-way merge ----------------------------------------------------------------------- */

static uint64_t head(const source_t *src, size_t i)
{
    return src[i].e[src[i].next].score;
}

/* Restores the max-heap (by head score) of source indexes h[0..n) below position at. */
static void sift_down(const source_t *src, size_t *h, size_t n, size_t at)
{
    for (;;) {
        size_t top = at, l = 2 * at + 1, r = l + 1;
        if (l < n && head(src, h[l]) > head(src, h[top]))
            top = l;
        if (r < n && head(src, h[r]) > head(src, h[top]))
            top = r;
        if (top == at)
            return;
        size_t t = h[at];
        h[at] = h[top];
        h[top] = t;
        at = top;
    }
}

/* Merges the sources newest first into page (room for want entries), each post once at its
 * newest entry, and stops as soon as want posts are in: O(n_src + want log n_src) for
 * entries, plus the duplicate check within the page (want is at most the API's page limit
 * plus one). h: scratch of n_src indexes. Returns how many posts page holds. */
static size_t merge(source_t *src, size_t n_src, size_t *h, entry_t *page, size_t want)
{
    size_t nh = 0, got = 0;
    for (size_t i = 0; i < n_src; i++) {
        src[i].next = 0;
        if (src[i].n)
            h[nh++] = i;
    }
    for (size_t i = nh / 2; i-- > 0;)
        sift_down(src, h, nh, i);
    while (nh && got < want) {
        source_t *top = &src[h[0]];
        entry_t it = top->e[top->next++];
        bool seen = false;
        for (size_t k = 0; k < got && !seen; k++)
            seen = page[k].post == it.post;
        if (!seen)
            page[got++] = it;
        if (top->next == top->n)
            h[0] = h[--nh];
        sift_down(src, h, nh, 0);
    }
    return got;
}

/* ---- reading the sources ------------------------------------------------------------------- */

/* How many posts to read first from each of n celebrities for a page of want: all of want
 * when they are few; else about twice a fair share, at least 2. A celebrity whose first read
 * reaches into the page is read again for the rest (reread), so the first read only has to
 * be long enough to make that rare. */
static size_t first_read(size_t n, size_t want)
{
    size_t k = (2 * want + n - 1) / (n ? n : 1);
    return k < 2 ? 2 : k > want ? want : k;
}

/* The second read: after a merge of the first reads whose want-th post scores floor (0:
 * fewer posts than want), every entry of the true page scores at least floor (the first
 * reads are a subset of the sources), so a source is complete for the page once it is read
 * down to floor. Those whose first read stopped above floor with more to come are read again,
 * below their last entry and down to floor: at most 2 * want / k of them, since each holds k
 * entries at or above floor. One pipelined round trip; the merge is then exact. */
static int reread(storage_t *s, source_t *src, size_t n_src, uint64_t floor, size_t want)
{
    char min[32] = "-inf";
    if (floor)
        snprintf(min, sizeof(min), "%llu", (ull)floor);
    size_t *which = malloc(n_src * sizeof(*which));
    if (!which)
        return -ENOMEM;
    storage_redis_batch_t m;
    storage_redis_batch_init(&m, s->redis);
    for (size_t i = 0; i < n_src; i++) {
        source_t *c = &src[i];
        if (!c->more || c->e[c->n - 1].score < floor)
            continue;
        which[m.n] = i;
        storage_redis_batch_add(&m, "ZREVRANGEBYSCORE " K_POSTS " (%llu %s WITHSCORES LIMIT 0 %llu",
                                (ull)c->author, (ull)c->e[c->n - 1].score, min, (ull)(want - c->n));
    }
    int rc = m.n ? storage_redis_batch_run(&m) : 0;
    for (size_t j = 0; rc == 0 && j < m.n; j++) {
        source_t *c = &src[which[j]];
        entry_t *e = malloc(want * sizeof(*e));
        if (!e) {
            rc = -ENOMEM;
            break;
        }
        memcpy(e, c->e, c->n * sizeof(*e));
        c->e = e;
        c->own = true;
        append(m.r[j], NULL, e, &c->n, want);
        c->more = false;
    }
    free(which);
    storage_redis_batch_free(&m);
    return rc;
}

/* KEYS: tl rb celebs rebuild, one user's; ARGV: max (the cursor's bound), want,
 * timeline_max. The newest timeline_max entries below max (up to want), each repost entry's
 * reposter ('0': none, or not an entry of a repost), the celebrities followed and the
 * rebuild mark: {entries, reposters, celebrities, rebuilding}. */
static const char timeline_script[] =
    "local floor, tlmax = '-inf', tonumber(ARGV[3])\n"
    "if tlmax > 0 then\n"
    "  floor = redis.call('ZREVRANGE', KEYS[1], tlmax - 1, tlmax - 1, 'WITHSCORES')[2] or floor\n"
    "end\n"
    "local e = redis.call('ZREVRANGEBYSCORE', KEYS[1], ARGV[1], floor, 'WITHSCORES',\n"
    "                     'LIMIT', 0, ARGV[2])\n"
    "local rbs = {}\n"
    "for i = 1, #e, 2 do\n"
    "  local rb = '0'\n"
    "  if tonumber(e[i]) ~= tonumber(e[i + 1]) then rb = redis.call('HGET', KEYS[2], e[i]) or rb "
    "end\n"
    "  rbs[#rbs + 1] = rb\n"
    "end\n"
    "return {e, rbs, redis.call('SMEMBERS', KEYS[3]), redis.call('EXISTS', KEYS[4])}\n";

/* Reads the sources of one page and merges them into page (room for limit + 1); returns 0
 * with *got set, or a negative errno. The timeline, the celebrities followed and whether a
 * rebuild is under way come in one round trip; the celebrities' posts sit on their own
 * slots, so they take a second, one pipeline per node (and rarely a third: reread). */
static int read_page(storage_t *s, uint64_t user, const char *max, size_t limit, int timeline_max,
                     entry_t *page, size_t *got, bool *rebuilding)
{
    size_t want = limit + 1;
    source_t *src = NULL;
    size_t *h = NULL, n_src = 0;
    entry_t *first = NULL;
    char tl[40], rb[40], celeb[40], rebuild[40], wantbuf[24], maxbuf[16];
    snprintf(tl, sizeof(tl), K_TIMELINE, (ull)user);
    snprintf(rb, sizeof(rb), K_REPOSTED_BY, (ull)user);
    snprintf(celeb, sizeof(celeb), K_CELEB_FOLLOWS, (ull)user);
    snprintf(rebuild, sizeof(rebuild), K_REBUILD, (ull)user);
    snprintf(wantbuf, sizeof(wantbuf), "%zu", want);
    snprintf(maxbuf, sizeof(maxbuf), "%d", timeline_max);
    const char *argv[] = {"EVAL_RO", timeline_script, "4", tl,      rb,
                          celeb,     rebuild,         max, wantbuf, maxbuf};
    storage_redis_batch_t b, m;
    storage_redis_batch_init(&b, s->redis);
    storage_redis_batch_init(&m, s->redis);
    storage_redis_batch_addargv(&b, (int)(sizeof(argv) / sizeof(*argv)), argv, NULL);
    int rc = storage_redis_batch_run_checked(&b);
    if (rc)
        goto out;
    const redisReply *r = b.r[0];
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 4 ||
        r->element[2]->type != REDIS_REPLY_ARRAY) {
        rc = -EIO;
        goto out;
    }
    *rebuilding = storage_redis_int(r->element[3]) == 1;
    const redisReply *celebs = r->element[2];
    size_t k = first_read(celebs->elements, want);
    src = calloc(1 + celebs->elements, sizeof(*src));
    h = malloc((1 + celebs->elements) * sizeof(*h));
    first = malloc((want + k * celebs->elements) * sizeof(*first));
    if (!src || !h || !first) {
        rc = -ENOMEM;
        goto out;
    }
    /* Source 0, the timeline, is read to the full want; then the celebrities, k each. */
    src[0].e = first;
    append(r->element[0], r->element[1], first, &src[0].n, want);
    n_src = 1;
    entry_t *at = first + src[0].n;
    for (size_t i = 0; i < celebs->elements; i++) {
        uint64_t author = storage_redis_uint_str(celebs->element[i]);
        if (!author)
            continue;
        src[n_src++].author = author;
        storage_redis_batch_add(&m, "ZREVRANGEBYSCORE " K_POSTS " %s -inf WITHSCORES LIMIT 0 %llu",
                                (ull)author, max, (ull)k);
    }
    if (m.n) {
        rc = storage_redis_batch_run(&m);
        if (rc)
            goto out;
        for (size_t i = 1; i < n_src; i++) {
            source_t *c = &src[i];
            c->e = at;
            append(m.r[i - 1], NULL, at, &c->n, k);
            c->more = c->n == k && k < want;
            at += c->n;
        }
    }
    *got = merge(src, n_src, h, page, want);
    rc = reread(s, src, n_src, *got == want ? page[want - 1].score : 0, want);
    if (rc == 0)
        *got = merge(src, n_src, h, page, want);
out:
    for (size_t i = 0; src && i < n_src; i++)
        if (src[i].own)
            free(src[i].e);
    free(src);
    free(h);
    free(first);
    storage_redis_batch_free(&m);
    storage_redis_batch_free(&b);
    return rc;
}

/* storage_timeline_page, and the score of the page's first entry into *first (0: empty) when
 * first is given. */
static int read_timeline(storage_t *s, uint64_t user, uint64_t cursor, size_t limit,
                         int timeline_max, storage_timeline_t *out, uint64_t *first)
{
    memset(out, 0, sizeof(*out));
    if (first)
        *first = 0;
    char max[32] = "+inf";
    if (cursor)
        snprintf(max, sizeof(max), "(%llu", (ull)cursor);
    size_t unique = 0;
    entry_t *e = malloc((limit + 1) * sizeof(*e));
    int rc =
        e ? read_page(s, user, max, limit, timeline_max, e, &unique, &out->rebuilding) : -ENOMEM;
    if (rc)
        goto fail;
    size_t keep = unique > limit ? limit : unique;
    out->page.ids = malloc((keep ? keep : 1) * sizeof(uint64_t));
    out->reposted_by = calloc(keep ? keep : 1, sizeof(uint64_t));
    if (!out->page.ids || !out->reposted_by) {
        rc = -ENOMEM;
        goto fail;
    }
    out->page.n = 0;
    out->page.next_cursor = unique > limit ? e[limit - 1].score : 0;
    for (size_t i = 0; i < keep; i++) {
        /* A repost entry without its reposter was being taken back (an undone repost, a
         * block or mute) as it was read: leave it out. */
        if (e[i].score != e[i].post && !e[i].reposter)
            continue;
        if (first && out->page.n == 0)
            *first = e[i].score;
        out->page.ids[out->page.n] = e[i].post;
        out->reposted_by[out->page.n++] = e[i].score != e[i].post ? e[i].reposter : 0;
    }
    free(e);
    return 0;
fail:
    free(e);
    storage_timeline_free(out);
    return rc;
}

int storage_timeline_page(storage_t *s, uint64_t user, uint64_t cursor, size_t limit,
                          int timeline_max, storage_timeline_t *out)
{
    return read_timeline(s, user, cursor, limit, timeline_max, out, NULL);
}

int storage_timeline_newest(storage_t *s, uint64_t user, int timeline_max, uint64_t *post,
                            uint64_t *score)
{
    storage_timeline_t tl;
    *post = 0;
    int rc = read_timeline(s, user, 0, 1, timeline_max, &tl, score);
    if (rc == 0 && tl.page.n)
        *post = tl.page.ids[0];
    if (rc == 0)
        storage_timeline_free(&tl);
    return rc;
}
