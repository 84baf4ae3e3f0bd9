/* tests/storage/test_interactions.c -- likes, reposts, blocks and mutes (the request side). */
#include "tests/storage/fixture.h"
#include "tests/support/support.h"

#include <criterion/criterion.h>
#include <errno.h>

TestSuite(interactions, .init = st_setup, .fini = st_teardown, .timeout = 60);

static uint64_t post(uint64_t author)
{
    storage_post_t p = {.id = storage_id_next(st), .author = author, .text = "likeable"};
    cr_assert_eq(storage_post_create(st, &p, &(bool){false}), 0);
    return p.id;
}

static int64_t count(uint64_t id, bool likes)
{
    storage_post_t p;
    cr_assert_eq(storage_post_get(st, id, &p), 0);
    int64_t n = likes ? p.like_count : p.repost_count;
    storage_post_clear(&p);
    return n;
}

Test(interactions, likes_count_each_user_once)
{
    uint64_t a = st_user(st, "la", NULL), b = st_user(st, "lb", NULL), c = st_user(st, "lc", NULL);
    uint64_t id = post(a);
    cr_expect_eq(storage_like(st, b, id, true), 0);
    cr_expect_eq(storage_like(st, b, id, true), 0);
    cr_expect_eq(count(id, true), 1);
    cr_expect_eq(storage_like(st, c, id, true), 0);
    cr_expect_eq(count(id, true), 2);
    cr_expect_eq(storage_like(st, b, id, false), 0);
    cr_expect_eq(storage_like(st, b, id, false), 0);
    cr_expect_eq(count(id, true), 1);
    cr_expect_eq(count(id, false), 0, "a like counted as a repost");
}

Test(interactions, reposts_count_each_user_once)
{
    uint64_t a = st_user(st, "ra", NULL), b = st_user(st, "rb", NULL);
    uint64_t id = post(a);
    cr_expect_eq(storage_repost(st, b, id, true), 0);
    cr_expect_eq(storage_repost(st, b, id, true), 0);
    cr_expect_eq(count(id, false), 1);
    cr_expect_eq(storage_repost(st, b, id, false), 0);
    cr_expect_eq(count(id, false), 0);
}

Test(interactions, unknown_or_deleted_posts_are_enoent)
{
    uint64_t a = st_user(st, "ua", NULL), b = st_user(st, "ub", NULL);
    uint64_t ghost = st_unknown_id(st);
    cr_expect_eq(storage_like(st, b, ghost, true), -ENOENT);
    cr_expect_eq(storage_repost(st, b, ghost, true), -ENOENT);
    uint64_t id = post(a);
    cr_assert_eq(storage_post_delete(st, id, a), 0);
    cr_expect_eq(storage_like(st, b, id, true), -ENOENT);
    cr_expect_eq(storage_repost(st, b, id, true), -ENOENT);
}

Test(interactions, block_ends_follows_both_ways_and_is_seen_from_both_sides)
{
    uint64_t a = st_user(st, "ba", NULL), b = st_user(st, "bb", NULL);
    bool changed, blocked = true;
    cr_assert_eq(storage_follow(st, a, b, &changed), 0);
    cr_assert_eq(storage_follow(st, b, a, &changed), 0);
    cr_assert_eq(storage_blocked_between(st, a, b, &blocked), 0);
    cr_expect_not(blocked);

    cr_assert_eq(storage_relation_set(st, STORAGE_BLOCK, a, b, true), 0);
    cr_assert_eq(storage_blocked_between(st, a, b, &blocked), 0);
    cr_expect(blocked);
    cr_assert_eq(storage_blocked_between(st, b, a, &blocked), 0);
    cr_expect(blocked, "the block is not seen from the blocked side");
    storage_user_t u;
    cr_assert_eq(storage_user_get(st, a, &u), 0);
    cr_expect_eq(u.followers_count, 0);
    cr_expect_eq(u.following_count, 0);
    cr_assert_eq(storage_user_get(st, b, &u), 0);
    cr_expect_eq(u.followers_count, 0);
    cr_expect_eq(u.following_count, 0);

    storage_page_t page;
    cr_assert_eq(storage_relations_page(st, STORAGE_BLOCK, a, 0, 10, &page), 0);
    cr_expect_eq(page.n, 1);
    if (page.n)
        cr_expect_eq(page.ids[0], b);
    storage_page_free(&page);

    cr_expect_eq(storage_follow(st, a, b, &changed), -EPERM, "the blocker followed again");
    cr_expect_eq(storage_follow(st, b, a, &changed), -EPERM, "the blocked followed again");

    cr_assert_eq(storage_relation_set(st, STORAGE_BLOCK, a, b, false), 0);
    cr_assert_eq(storage_blocked_between(st, b, a, &blocked), 0);
    cr_expect_not(blocked);
    cr_expect_eq(storage_follow(st, a, b, &changed), 0, "unblocked users cannot follow");
}

Test(interactions, mute_is_listed_but_is_no_block)
{
    uint64_t a = st_user(st, "ma", NULL), b = st_user(st, "mb", NULL), c = st_user(st, "mc", NULL);
    cr_assert_eq(storage_relation_set(st, STORAGE_MUTE, a, b, true), 0);
    cr_assert_eq(storage_relation_set(st, STORAGE_MUTE, a, c, true), 0);
    cr_assert_eq(storage_relation_set(st, STORAGE_MUTE, a, c, true), 0);
    storage_page_t page;
    cr_assert_eq(storage_relations_page(st, STORAGE_MUTE, a, 0, 10, &page), 0);
    cr_assert_eq(page.n, 2);
    cr_expect_eq(page.ids[0], c);
    cr_expect_eq(page.ids[1], b);
    storage_page_free(&page);
    bool blocked = true;
    cr_assert_eq(storage_blocked_between(st, a, b, &blocked), 0);
    cr_expect_not(blocked);
}

Test(interactions, relation_with_an_unknown_user_is_enoent)
{
    uint64_t a = st_user(st, "na", NULL), ghost = st_unknown_id(st);
    cr_expect_eq(storage_relation_set(st, STORAGE_BLOCK, a, ghost, true), -ENOENT);
    cr_expect_eq(storage_relation_set(st, STORAGE_MUTE, a, ghost, true), -ENOENT);
}

Test(interactions, new_user_has_no_notices_and_an_empty_timeline)
{
    uint64_t a = st_user(st, "new", NULL);
    int64_t unread = -1;
    cr_assert_eq(storage_notifications_unread(st, a, &unread), 0);
    cr_expect_eq(unread, 0);
    storage_notifications_t notices;
    cr_assert_eq(storage_notifications_page(st, a, 0, 20, ~0u, 100, &notices), 0);
    cr_expect_eq(notices.n, 0);
    cr_expect_eq(notices.next_cursor, 0);
    storage_notifications_free(&notices);
    cr_expect_eq(storage_notifications_mark_read(st, a, storage_id_next(st)), 0);
    storage_timeline_t tl;
    cr_assert_eq(storage_timeline_page(st, a, 0, 20, 800, &tl), 0);
    cr_expect_eq(tl.page.n, 0);
    cr_expect_eq(tl.page.next_cursor, 0);
    storage_timeline_free(&tl);
}
