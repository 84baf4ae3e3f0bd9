/* tests/storage/test_read_cache.c -- the read cache's own rules (storage/read_cache.c), with
 * no Redis: which keys invalidate what, fills that crossed an invalidation, the size bound,
 * and nothing kept while the invalidations do not flow. Coherence across processes is
 * tests/scaleout/test_read_cache.c's. */
#include "storage/read_cache.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static storage_post_t post_of(uint64_t id, const char *text)
{
    storage_post_t p = {.id = id, .author = 7, .like_count = 3, .repost_count = 1};
    p.text = (char *)text;
    return p;
}

static read_cache_t *live_cache(size_t entries)
{
    read_cache_t *c = read_cache_new(entries);
    cr_assert(c);
    read_cache_reset(c, true);
    return c;
}

static bool has_post(read_cache_t *c, uint64_t id)
{
    storage_post_t got;
    if (!read_cache_get_post(c, id, &got))
        return false;
    free(got.text);
    return true;
}

Test(read_cache, keeps_and_copies_what_a_read_brought)
{
    read_cache_t *c = live_cache(100);
    read_cache_ticket_t t;
    read_cache_ticket(c, &t);
    storage_post_t p = post_of(42, "hello");
    read_cache_put_post(c, &t, &p);
    storage_user_t u = {.id = 7};
    strcpy(u.handle, "ann");
    strcpy(u.display_name, "Ann");
    read_cache_put_user(c, &t, &u);
    uint64_t blocked[] = {9, 3, 5};
    read_cache_put_rel(c, &t, READ_CACHE_BLOCKS, 7, blocked, 3);

    storage_post_t got;
    cr_assert(read_cache_get_post(c, 42, &got));
    cr_expect_str_eq(got.text, "hello");
    cr_expect_neq(got.text, p.text, "a copy, not the caller's text");
    cr_expect_eq(got.like_count, 3);
    cr_expect_eq(got.author, 7);
    free(got.text);
    storage_user_t gu;
    cr_assert(read_cache_get_user(c, 7, &gu));
    cr_expect_str_eq(gu.handle, "ann");
    bool member = false;
    cr_assert(read_cache_rel_has(c, READ_CACHE_BLOCKS, 7, 5, &member));
    cr_expect(member);
    cr_assert(read_cache_rel_has(c, READ_CACHE_BLOCKS, 7, 4, &member));
    cr_expect_not(member);
    cr_expect_not(read_cache_rel_has(c, READ_CACHE_MUTES, 7, 5, &member), "another kind: not kept");
    read_cache_free(c);
}

Test(read_cache, a_key_written_drops_exactly_its_entry)
{
    read_cache_t *c = live_cache(100);
    read_cache_ticket_t t;
    read_cache_ticket(c, &t);
    storage_post_t a = post_of(1, "a"), b = post_of(2, "b");
    read_cache_put_post(c, &t, &a);
    read_cache_put_post(c, &t, &b);
    uint64_t none[1];
    read_cache_put_rel(c, &t, READ_CACHE_MUTES, 1, none, 0);
    static const char *const ignored[] = {"posts:{1}", "post:{1}:x", "post:{x}",
                                          "tl:{1}",    "post:{}",    "mutes:{12}"};
    for (size_t i = 0; i < sizeof(ignored) / sizeof(*ignored); i++)
        read_cache_invalidate(c, ignored[i], strlen(ignored[i]));
    cr_expect(has_post(c, 1) && has_post(c, 2), "other keys leave the posts");
    bool member;
    cr_expect(read_cache_rel_has(c, READ_CACHE_MUTES, 1, 5, &member));
    read_cache_invalidate(c, "post:{1}", 8);
    cr_expect_not(has_post(c, 1));
    cr_expect(has_post(c, 2));
    read_cache_invalidate(c, "mutes:{1}", 9);
    cr_expect_not(read_cache_rel_has(c, READ_CACHE_MUTES, 1, 5, &member));
    read_cache_free(c);
}

Test(read_cache, a_fill_that_crossed_an_invalidation_is_not_kept)
{
    read_cache_t *c = live_cache(100);
    read_cache_ticket_t before;
    read_cache_ticket(c, &before);           /* the read goes out ... */
    read_cache_invalidate(c, "post:{5}", 8); /* ... a write lands before its reply */
    storage_post_t p = post_of(5, "old");
    read_cache_put_post(c, &before, &p);
    cr_expect_not(has_post(c, 5), "the reply may be older than the write");
    read_cache_ticket_t after;
    read_cache_ticket(c, &after);
    read_cache_put_post(c, &after, &p);
    cr_expect(has_post(c, 5));
    read_cache_free(c);
}

Test(read_cache, keeps_nothing_while_invalidations_do_not_flow)
{
    read_cache_t *c = read_cache_new(100);
    read_cache_ticket_t t;
    read_cache_ticket(c, &t);
    storage_post_t p = post_of(8, "x");
    read_cache_put_post(c, &t, &p);
    cr_expect_not(has_post(c, 8), "a new cache is down until told");
    read_cache_reset(c, true);
    read_cache_ticket(c, &t);
    read_cache_put_post(c, &t, &p);
    cr_expect(has_post(c, 8));
    read_cache_reset(c, false); /* the tracking connection ended */
    cr_expect_not(has_post(c, 8), "dropped");
    read_cache_put_post(c, &t, &p);
    cr_expect_not(has_post(c, 8), "and nothing kept");
    read_cache_reset(c, true);
    read_cache_put_post(c, &t, &p);
    cr_expect_not(has_post(c, 8), "a ticket from before the reset is stale");
    read_cache_free(c);
}

Test(read_cache, stays_within_its_size)
{
    read_cache_t *c = live_cache(64); /* 3 x 64 entries over 64 shards: 3 a shard */
    read_cache_ticket_t t;
    for (uint64_t id = 1; id <= 5000; id++) {
        read_cache_ticket(c, &t);
        storage_post_t p = post_of(id, "text");
        read_cache_put_post(c, &t, &p);
    }
    size_t kept = 0;
    for (uint64_t id = 1; id <= 5000; id++)
        kept += has_post(c, id);
    cr_expect_leq(kept, 3 * 64, "%zu kept", kept);
    cr_expect(has_post(c, 5000), "the newest stays");
    read_cache_free(c);
}

Test(read_cache, stays_within_its_memory)
{
    read_cache_t *c = live_cache(640); /* 640 KiB: 10 KiB a shard */
    static char text[4001];
    memset(text, 'x', sizeof(text) - 1);
    read_cache_ticket_t t;
    for (uint64_t id = 1; id <= 2000; id++) {
        read_cache_ticket(c, &t);
        storage_post_t p = post_of(id, text);
        read_cache_put_post(c, &t, &p);
    }
    size_t kept = 0;
    for (uint64_t id = 1; id <= 2000; id++)
        kept += has_post(c, id);
    /* Two posts of 4 KB and their entries fit in a shard's 10 KiB, three do not. */
    cr_expect_leq(kept, 2 * 64, "%zu posts of 4 KB kept in 640 KiB", kept);
    cr_expect_geq(kept, 64, "%zu kept: every shard keeps its newest", kept);
    read_cache_free(c);
}

Test(read_cache, a_set_too_large_is_known_but_not_kept)
{
    read_cache_t *c = live_cache(100);
    read_cache_ticket_t t;
    read_cache_ticket(c, &t);
    static uint64_t many[READ_CACHE_REL_MAX + 1];
    for (size_t i = 0; i < READ_CACHE_REL_MAX + 1; i++)
        many[i] = i + 1;
    read_cache_put_rel(c, &t, READ_CACHE_MUTES, 9, many, READ_CACHE_REL_MAX + 1);
    bool member;
    cr_expect_not(read_cache_rel_has(c, READ_CACHE_MUTES, 9, 5, &member), "not usable");
    cr_expect(read_cache_rel_known(c, READ_CACHE_MUTES, 9), "but not to be read again");
    read_cache_invalidate(c, "mutes:{9}", 9);
    cr_expect_not(read_cache_rel_known(c, READ_CACHE_MUTES, 9), "until it changes");
    read_cache_free(c);
}

/* ---- timeline first pages ---------------------------------------------------------------- */

enum { PAGE_LIMIT = 3, READER = 11, CELEB = 500, OTHER_AUTHOR = 501 };

/* Keeps READER's page of posts 30, 20, 10 (20 reposted by 8), next cursor 10, merged from
 * the celebrities given, under ticket t. */
static void put_page(read_cache_t *c, const read_cache_ticket_t *t, const uint64_t *celebs,
                     size_t n_celebs)
{
    uint64_t ids[] = {30, 20, 10}, rbs[] = {0, 8, 0};
    read_cache_page_t page = {.limit = PAGE_LIMIT,
                              .hide = 1,
                              .n = 3,
                              .ids = ids,
                              .rbs = rbs,
                              .next = 10,
                              .celebs = celebs,
                              .n_celebs = n_celebs};
    read_cache_put_page(c, t, READER, &page);
}

/* Whether READER's page for limit and hide is kept (and then, that it is the one put). */
static bool has_page(read_cache_t *c, size_t limit, unsigned hide)
{
    uint64_t ids[8] = {0}, rbs[8] = {0};
    read_cache_page_t page = {.limit = limit, .hide = hide, .ids = ids, .rbs = rbs};
    if (!read_cache_get_page(c, READER, &page))
        return false;
    cr_assert_eq(page.n, 3);
    cr_expect(ids[0] == 30 && ids[1] == 20 && ids[2] == 10, "ids %llu %llu %llu",
              (unsigned long long)ids[0], (unsigned long long)ids[1], (unsigned long long)ids[2]);
    cr_expect(rbs[0] == 0 && rbs[1] == 8 && rbs[2] == 0, "reposters");
    cr_expect_eq(page.next, 10);
    return true;
}

static void invalidate(read_cache_t *c, const char *key)
{
    read_cache_invalidate(c, key, strlen(key));
}

Test(read_cache, a_page_is_kept_for_its_limit_and_hidden_relations)
{
    read_cache_t *c = live_cache(100);
    read_cache_ticket_t t;
    read_cache_ticket(c, &t);
    put_page(c, &t, NULL, 0);
    cr_expect(has_page(c, PAGE_LIMIT, 1));
    cr_expect_not(has_page(c, PAGE_LIMIT + 1, 1), "a page of another limit is another read");
    cr_expect_not(has_page(c, PAGE_LIMIT, 0), "a page that hides other relations too");
    read_cache_free(c);
}

/* Every key the ids script declares drops the page when written; other users' keys and the
 * cached kinds' keys do not. */
Test(read_cache, a_page_goes_when_any_key_it_was_read_from_is_written)
{
    const char *own[] = {"tl:{11}", "celebs:{11}", "rb:{11}", "rebuild:{11}"};
    for (size_t i = 0; i < sizeof(own) / sizeof(*own); i++) {
        read_cache_t *c = live_cache(100);
        read_cache_ticket_t t;
        read_cache_ticket(c, &t);
        put_page(c, &t, NULL, 0);
        invalidate(c, "tl:{12}");
        invalidate(c, "post:{11}");
        invalidate(c, "user:{11}");
        cr_expect(has_page(c, PAGE_LIMIT, 1), "kept after others' keys (before %s)", own[i]);
        invalidate(c, own[i]);
        cr_expect_not(has_page(c, PAGE_LIMIT, 1), "kept after %s was written", own[i]);
        read_cache_free(c);
    }
}

/* Which posts_gen bucket an invalidation of key moves. */
static int posts_bucket_of(const char *key)
{
    read_cache_t *c = live_cache(10);
    read_cache_ticket_t before, after;
    read_cache_ticket(c, &before);
    invalidate(c, key);
    read_cache_ticket(c, &after);
    int moved = -1;
    for (int i = 0; i < READ_CACHE_SHARDS; i++)
        if (after.posts_gen[i] != before.posts_gen[i])
            moved = i;
    read_cache_free(c);
    return moved;
}

/* A celebrity's new post is in no timeline key: its post list's invalidation drops the pages
 * that merged that celebrity. An author counted in another bucket leaves them be (one in the
 * same bucket costs a spare read, never a stale one). */
Test(read_cache, a_celebrity_post_drops_the_pages_that_merge_that_celebrity)
{
    char celeb[40], other[40];
    snprintf(celeb, sizeof(celeb), "posts:{%d}", CELEB);
    int celeb_bucket = posts_bucket_of(celeb);
    cr_assert_geq(celeb_bucket, 0, "posts:{author} moved no bucket");
    uint64_t author = OTHER_AUTHOR;
    do
        snprintf(other, sizeof(other), "posts:{%llu}", (unsigned long long)author++);
    while (posts_bucket_of(other) == celeb_bucket);

    read_cache_t *c = live_cache(100);
    read_cache_ticket_t t;
    read_cache_ticket(c, &t);
    uint64_t celebs[] = {CELEB};
    put_page(c, &t, celebs, 1);
    invalidate(c, other);
    cr_expect(has_page(c, PAGE_LIMIT, 1), "%s dropped a page that merges only %s", other, celeb);
    invalidate(c, celeb);
    cr_expect_not(has_page(c, PAGE_LIMIT, 1), "kept after the celebrity posted");

    read_cache_ticket(c, &t);
    put_page(c, &t, NULL, 0);
    invalidate(c, celeb);
    cr_expect(has_page(c, PAGE_LIMIT, 1), "a page with no celebrity dropped by one's post");
    read_cache_free(c);
}

/* A page read before a celebrity's post, whose reply came after it, is not kept as fresh. */
Test(read_cache, a_page_read_across_a_celebrity_post_is_not_served)
{
    read_cache_t *c = live_cache(100);
    read_cache_ticket_t t;
    read_cache_ticket(c, &t);
    char celeb[40];
    snprintf(celeb, sizeof(celeb), "posts:{%d}", CELEB);
    invalidate(c, celeb);
    uint64_t celebs[] = {CELEB};
    put_page(c, &t, celebs, 1);
    cr_expect_not(has_page(c, PAGE_LIMIT, 1));
    read_cache_free(c);
}

Test(read_cache, a_page_read_across_a_write_of_its_timeline_is_not_kept)
{
    read_cache_t *c = live_cache(100);
    read_cache_ticket_t t;
    read_cache_ticket(c, &t);
    invalidate(c, "tl:{11}");
    put_page(c, &t, NULL, 0);
    cr_expect_not(has_page(c, PAGE_LIMIT, 1));
    read_cache_ticket(c, &t);
    put_page(c, &t, NULL, 0);
    cr_expect(has_page(c, PAGE_LIMIT, 1), "a read after the write is kept");
    read_cache_reset(c, false);
    cr_expect_not(has_page(c, PAGE_LIMIT, 1), "kept across the invalidations stopping");
    read_cache_free(c);
}

Test(read_cache, counts_page_hits_and_misses_apart)
{
    read_cache_t *c = live_cache(100);
    read_cache_count(c, true);
    read_cache_count_page(c, true);
    read_cache_count_page(c, true);
    read_cache_count_page(c, false);
    read_cache_stats_t st;
    read_cache_stats(c, &st);
    cr_expect_eq(st.hits, 1);
    cr_expect_eq(st.misses, 0);
    cr_expect_eq(st.page_hits, 2);
    cr_expect_eq(st.page_misses, 1);
    read_cache_free(c);
}
