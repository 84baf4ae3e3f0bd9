/* storage/timeline_view.c -- a home timeline page as its reader sees it, in one script call
 * on one Redis node.
 *
 * The script does what timeline_read.c does over pipelines, then what post_views.c adds: it
 * reads the newest timeline_max timeline entries below the cursor and the posts of the
 * celebrities followed, merges them by score without repeating a post (reading a celebrity
 * further only when it may still beat the best head, as timeline_read.c's reread), keeps
 * limit + 1 to know the next cursor, drops repost entries whose reposter is gone, then
 * hydrates the page (SCRIPT_HYDRATE). It only reads (EVALSHA_RO, storage/script_call.c):
 * the rate check rides along, and a read never trims. With the read cache up, the script
 * stops before the hydration and the posts come from the cache (page_by_ids); a first page's
 * ids are kept there too, read under Redis' tracking (storage/read_cache.c says how), so a
 * page read again before its timeline changes costs Redis nothing. On a Redis Cluster, where
 * a script reaches only its own node, the page is storage_timeline_page and
 * storage_post_views instead.
 */
#include "storage/read_cache.h"
#include "storage/storage_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* KEYS: tl celebs rb rebuild of the user (declared, so that a tracked read is told of their
 * writes); ARGV: user, max (the cursor's bound), want (limit + 1), timeline_max, then the
 * viewer's relation sets to hide. Leaves the page's ids and, per id, its reposter ('0':
 * none) in ids and rbs, the next cursor ('0': none) in next, and the celebrities followed in
 * celebs. Post lists follow K_POSTS. Scores become numbers once (the
 * merge compares them often); each celebrity followed gives a few posts first, about twice
 * a fair share of the page; the timeline alone (no celebrity) is the page as read, with no
 * merge; a source read to its count may hold more below its last entry, read on (want
 * entries, enough for any page) only when that could come before the best head; a repost
 * entry whose reposter is gone was being taken back, and is left out. */
#define PAGE_IDS                                                                                   \
    "local user, max, want, tlmax = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])\n"      \
    "local rels = {unpack(ARGV, 5)}\n"                                                             \
    "local function range(s, top, n)\n"                                                            \
    "  s.e = redis.call('ZREVRANGEBYSCORE', s.key, top, s.min, 'WITHSCORES', 'LIMIT', 0, n)\n"     \
    "  s.at = 1\n"                                                                                 \
    "  s.sc = {}\n"                                                                                \
    "  for j = 2, #s.e, 2 do s.sc[j] = tonumber(s.e[j]) end\n"                                     \
    "  s.more = #s.e == 2 * n and n < want\n"                                                      \
    "end\n"                                                                                        \
    "local function head(s)\n"                                                                     \
    "  return s.sc[s.at + 1]\n"                                                                    \
    "end\n"                                                                                        \
    "local floor = '-inf'\n"                                                                       \
    "if tlmax > 0 then\n"                                                                          \
    "  floor = redis.call('ZREVRANGE', KEYS[1], tlmax - 1, tlmax - 1, 'WITHSCORES')[2] or floor\n" \
    "end\n"                                                                                        \
    "local src = {{key = KEYS[1], min = floor}}\n"                                                 \
    "range(src[1], max, want)\n"                                                                   \
    "local celebs = redis.call('SMEMBERS', KEYS[2])\n"                                             \
    "local k = math.max(2, math.min(want, math.ceil(2 * want / math.max(#celebs, 1))))\n"          \
    "for _, c in ipairs(celebs) do\n"                                                              \
    "  local s = {key = 'posts:{' .. c .. '}', min = '-inf'}\n"                                    \
    "  range(s, max, k)\n"                                                                         \
    "  src[#src + 1] = s\n"                                                                        \
    "end\n"                                                                                        \
    "local got, seen = #src == 1 and src[1].e or {}, {}\n"                                         \
    "while #src > 1 and #got < 2 * want do\n"                                                      \
    "  local best, top\n"                                                                          \
    "  for _, s in ipairs(src) do\n"                                                               \
    "    local h = head(s)\n"                                                                      \
    "    if h and (not top or h > top) then best, top = s, h end\n"                                \
    "  end\n"                                                                                      \
    "  for _, s in ipairs(src) do\n"                                                               \
    "    if not head(s) and s.more and (not top or tonumber(s.e[#s.e]) > top) then\n"              \
    "      range(s, '(' .. s.e[#s.e], want)\n"                                                     \
    "      s.more = false\n"                                                                       \
    "      local h = head(s)\n"                                                                    \
    "      if h and (not top or h > top) then best, top = s, h end\n"                              \
    "    end\n"                                                                                    \
    "  end\n"                                                                                      \
    "  if not best then break end\n"                                                               \
    "  local post, score = best.e[best.at], best.e[best.at + 1]\n"                                 \
    "  best.at = best.at + 2\n"                                                                    \
    "  if not seen[post] then\n"                                                                   \
    "    seen[post] = true\n"                                                                      \
    "    got[#got + 1] = post\n"                                                                   \
    "    got[#got + 1] = score\n"                                                                  \
    "  end\n"                                                                                      \
    "end\n"                                                                                        \
    "local n = math.min(#got / 2, want - 1)\n"                                                     \
    "local next = '0'\n"                                                                           \
    "if n > 0 and #got / 2 > n then next = got[2 * n] end\n"                                       \
    "local ids, rbs = {}, {}\n"                                                                    \
    "for i = 1, n do\n"                                                                            \
    "  local post, score, rb = got[2 * i - 1], got[2 * i], '0'\n"                                  \
    "  if tonumber(score) ~= tonumber(post) then\n"                                                \
    "    rb = redis.call('HGET', KEYS[3], post)\n"                                                 \
    "  end\n"                                                                                      \
    "  if rb then\n"                                                                               \
    "    ids[#ids + 1] = post\n"                                                                   \
    "    rbs[#rbs + 1] = rb\n"                                                                     \
    "  end\n"                                                                                      \
    "end\n"

/* {rebuilding, next cursor, posts, people} as SCRIPT_HYDRATE returns them. */
static const char page_body[] =
    SCRIPT_HYDRATE PAGE_IDS "local posts, people = hydrate(ids, rbs, rels)\n"
                            "return {redis.call('EXISTS', KEYS[4]), next, posts, people}\n";
static storage__script_t page_script = STORAGE__SCRIPT(page_body);

/* {rebuilding, next cursor, ids, reposters, celebrities}: the page to hydrate from the read
 * cache. */
static const char ids_body[] =
    PAGE_IDS "return {redis.call('EXISTS', KEYS[4]), next, ids, rbs, celebs}\n";
static storage__script_t ids_script = STORAGE__SCRIPT(ids_body);

/* Sends sc (page_script or ids_script) for user's page; b holds its reply when 0. With
 * redirect (a CLIENT ID), the read is tracked for the read cache (*tracked says if it was). */
static int page_call(storage_t *s, storage__script_t *sc, uint64_t user, uint64_t cursor,
                     size_t limit, int timeline_max, unsigned hide, unsigned long long redirect,
                     storage_redis_batch_t *b, bool *tracked)
{
    char tl[40], celebs[40], rb[40], rebuild[40], id[24], max[32] = "+inf", want[24], tlmax[16],
                                                          rels[3][48];
    snprintf(tl, sizeof(tl), K_TIMELINE, (ull)user);
    snprintf(celebs, sizeof(celebs), K_CELEB_FOLLOWS, (ull)user);
    snprintf(rb, sizeof(rb), K_REPOSTED_BY, (ull)user);
    snprintf(rebuild, sizeof(rebuild), K_REBUILD, (ull)user);
    snprintf(id, sizeof(id), "%llu", (ull)user);
    if (cursor)
        snprintf(max, sizeof(max), "(%llu", (ull)cursor);
    snprintf(want, sizeof(want), "%zu", limit + 1);
    snprintf(tlmax, sizeof(tlmax), "%d", timeline_max);
    const char *argv[12] = {"4", tl, celebs, rb, rebuild, id, max, want, tlmax};
    size_t argc = 9, n_rels = storage__relation_keys(user, hide, rels);
    for (size_t i = 0; i < n_rels; i++)
        argv[argc++] = rels[i];
    *tracked = false;
    if (redirect)
        return storage__script_ro_tracked(s, sc, redirect, (int)argc, argv, b, tracked);
    return storage__script_ro(s, sc, (int)argc, argv, b);
}

static int page_alloc(storage_timeline_t *out, size_t limit)
{
    out->views = calloc(limit ? limit : 1, sizeof(*out->views));
    out->page.ids = calloc(limit ? limit : 1, sizeof(*out->page.ids));
    out->reposted_by = calloc(limit ? limit : 1, sizeof(*out->reposted_by));
    return out->views && out->page.ids && out->reposted_by ? 0 : -ENOMEM;
}

/* The one-script page; -EPROTO when the script answered an error (read the other way). */
static int page_by_script(storage_t *s, uint64_t user, uint64_t cursor, size_t limit,
                          int timeline_max, unsigned hide, storage_timeline_t *out)
{
    storage_redis_batch_t b;
    bool tracked;
    int rc = page_call(s, &page_script, user, cursor, limit, timeline_max, hide, 0, &b, &tracked);
    const redisReply *r = rc == 0 ? b.r[0] : NULL;
    if (rc == 0 && (storage_redis_is_error(r) || r->type != REDIS_REPLY_ARRAY || r->elements != 4))
        rc = -EPROTO;
    size_t n = 0;
    if (rc == 0)
        rc = page_alloc(out, limit);
    if (rc == 0)
        rc = storage__views_from_reply(r->element[2], r->element[3], out->views, limit, &n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        out->page.ids[i] = out->views[i].post.id;
        out->reposted_by[i] = out->views[i].reposted_by;
    }
    out->page.n = n;
    if (rc == 0) {
        out->rebuilding = storage_redis_int(r->element[0]) == 1;
        out->page.next_cursor = storage_redis_uint_str(r->element[1]);
    }
    storage_redis_batch_free(&b);
    return rc;
}

/* The first page's ids from the cache into out; false on a miss. */
static bool ids_from_cache(read_cache_t *c, uint64_t user, size_t limit, unsigned hide,
                           storage_timeline_t *out)
{
    read_cache_page_t page = {
        .limit = limit, .hide = hide, .ids = out->page.ids, .rbs = out->reposted_by};
    if (!read_cache_get_page(c, user, &page))
        return false;
    out->page.n = page.n;
    out->page.next_cursor = page.next;
    out->rebuilding = false; /* a page read while rebuilding is never kept */
    return true;
}

/* Keeps the first page just read into out (with the celebrities the ids script named),
 * its read having been tracked, under ticket t. */
static void ids_to_cache(read_cache_t *c, const read_cache_ticket_t *t, uint64_t user, size_t limit,
                         unsigned hide, const storage_timeline_t *out,
                         const redisReply *celebs_reply)
{
    uint64_t celebs[64];
    if (out->rebuilding || celebs_reply->type != REDIS_REPLY_ARRAY ||
        celebs_reply->elements > sizeof(celebs) / sizeof(*celebs))
        return; /* a user following that many celebrities reads from Redis */
    for (size_t i = 0; i < celebs_reply->elements; i++)
        celebs[i] = storage_redis_uint_str(celebs_reply->element[i]);
    read_cache_page_t page = {.limit = limit,
                              .hide = hide,
                              .n = out->page.n,
                              .ids = out->page.ids,
                              .rbs = out->reposted_by,
                              .next = out->page.next_cursor,
                              .celebs = celebs,
                              .n_celebs = celebs_reply->elements};
    read_cache_put_page(c, t, user, &page);
}

/* With the read cache: the page's ids by script (one round trip, a few reads in Lua), or for a
 * first page kept in the cache from there; its posts from the cache, or from Redis (filling
 * the cache) when any is missing. */
static int page_by_ids(storage_t *s, uint64_t user, uint64_t cursor, size_t limit, int timeline_max,
                       unsigned hide, storage_timeline_t *out)
{
    int rc = page_alloc(out, limit);
    if (rc)
        return rc;
    read_cache_t *settled = cursor == 0 ? storage__cache_settled(s) : NULL;
    if (settled && ids_from_cache(settled, user, limit, hide, out)) {
        read_cache_count_page(settled, true);
        return storage__post_views_settled(s, settled, user, hide, out->page.ids, out->reposted_by,
                                           out->page.n, out->views);
    }
    /* The ticket before the tracking connection's id: a new connection since moves the
     * ticket's generations (read_cache_reset), so a read redirected to a gone one is not
     * kept. */
    read_cache_t *fill = cursor == 0 ? storage__cache(s) : NULL;
    read_cache_ticket_t ticket;
    if (fill)
        read_cache_ticket(fill, &ticket);
    unsigned long long redirect = fill ? storage__tracking_id(s) : 0;
    storage_redis_batch_t b;
    bool tracked;
    rc = page_call(s, &ids_script, user, cursor, limit, timeline_max, hide, redirect, &b, &tracked);
    const redisReply *r = rc == 0 ? b.r[0] : NULL;
    if (rc == 0 &&
        (storage_redis_is_error(r) || r->type != REDIS_REPLY_ARRAY || r->elements != 5 ||
         r->element[2]->type != REDIS_REPLY_ARRAY || r->element[3]->type != REDIS_REPLY_ARRAY ||
         r->element[2]->elements != r->element[3]->elements || r->element[2]->elements > limit))
        rc = -EPROTO;
    size_t n = rc == 0 ? r->element[2]->elements : 0;
    for (size_t i = 0; i < n; i++) {
        out->page.ids[i] = storage_redis_uint_str(r->element[2]->element[i]);
        out->reposted_by[i] = storage_redis_uint_str(r->element[3]->element[i]);
    }
    out->page.n = n;
    if (rc == 0) {
        out->rebuilding = storage_redis_int(r->element[0]) == 1;
        out->page.next_cursor = storage_redis_uint_str(r->element[1]);
        if (fill)
            read_cache_count_page(fill, false);
        if (fill && tracked)
            ids_to_cache(fill, &ticket, user, limit, hide, out, r->element[4]);
    }
    storage_redis_batch_free(&b);
    if (rc)
        return rc;
    /* From the cache when it is settled now, after the ids' round trip; else from Redis. */
    return storage_post_views(s, user, hide, out->page.ids, out->reposted_by, n, out->views);
}

int storage_timeline_view(storage_t *s, uint64_t user, uint64_t cursor, size_t limit,
                          int timeline_max, unsigned hide, storage_timeline_t *out)
{
    memset(out, 0, sizeof(*out));
    int rc = -EPROTO;
    /* Whether the cache may serve the page is known after the ids' round trip (page_by_ids):
     * here only whether it is in use. */
    if (storage__cache(s) && storage__one_node(s))
        rc = page_by_ids(s, user, cursor, limit, timeline_max, hide, out);
    else if (storage__one_node(s))
        rc = page_by_script(s, user, cursor, limit, timeline_max, hide, out);
    if (rc == -EPROTO) {
        storage_timeline_free(out);
        rc = storage_timeline_page(s, user, cursor, limit, timeline_max, out);
        if (rc == 0 && !(out->views = calloc(out->page.n ? out->page.n : 1, sizeof(*out->views))))
            rc = -ENOMEM;
        if (rc == 0)
            rc = storage_post_views(s, user, hide, out->page.ids, out->reposted_by, out->page.n,
                                    out->views);
    }
    if (rc)
        storage_timeline_free(out);
    return rc;
}
