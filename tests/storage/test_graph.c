/* tests/storage/test_graph.c -- follow/unfollow idempotency, their jobs, and edge pages. */
#include "tests/storage/fixture.h"
#include "tests/support/support.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

TestSuite(graph, .init = st_setup, .fini = st_teardown, .timeout = 60);

Test(graph, follow_is_idempotent_and_reports_change_once)
{
    uint64_t a = st_user(st, "fa", NULL), b = st_user(st, "fb", NULL);
    bool changed = false;
    cr_expect_eq(storage_follow(st, a, b, &changed), 0);
    cr_expect(changed, "the first follow changed nothing");
    cr_expect_eq(storage_follow(st, a, b, &changed), 0);
    cr_expect_not(changed, "a repeated follow reported a change");
    storage_user_t u;
    cr_assert_eq(storage_user_get(st, b, &u), 0);
    cr_expect_eq(u.followers_count, 1);
}

Test(graph, unfollow_is_idempotent_and_reports_change_once)
{
    uint64_t a = st_user(st, "ua", NULL), b = st_user(st, "ub", NULL);
    bool changed = true;
    cr_expect_eq(storage_unfollow(st, a, b, &changed), 0);
    cr_expect_not(changed, "unfollowing a stranger reported a change");
    cr_assert_eq(storage_follow(st, a, b, &changed), 0);
    cr_expect_eq(storage_unfollow(st, a, b, &changed), 0);
    cr_expect(changed);
    cr_expect_eq(storage_unfollow(st, a, b, &changed), 0);
    cr_expect_not(changed);
    storage_user_t u;
    cr_assert_eq(storage_user_get(st, a, &u), 0);
    cr_expect_eq(u.following_count, 0);
}

Test(graph, following_an_unknown_user_is_enoent)
{
    uint64_t a = st_user(st, "na", NULL), ghost = st_unknown_id(st);
    bool changed;
    cr_expect_eq(storage_follow(st, a, ghost, &changed), -ENOENT);
    cr_expect_eq(storage_unfollow(st, a, ghost, &changed), -ENOENT);
}

Test(graph, follow_and_unfollow_queue_one_job_each)
{
    uint64_t a = st_user(st, "ja", NULL), b = st_user(st, "jb", NULL);
    char mark[64];
    st_stream_mark(st_redis, ST_SHARD(a), mark);
    bool changed;
    cr_assert_eq(storage_follow(st, a, b, &changed), 0);
    cr_expect_eq(st_jobs_since(st_redis, ST_SHARD(a), mark, "follow", "follower", a, "followee", b),
                 1);
    cr_assert_eq(storage_unfollow(st, a, b, &changed), 0);
    cr_expect_eq(
        st_jobs_since(st_redis, ST_SHARD(a), mark, "unfollow", "follower", a, "followee", b), 1);
}

/* storage.h: "*changed tells whether an edge was added or removed; the follow/unfollow job
 * is queued either way" (a retried request repairs what a crash left half done). */
Test(graph, repeated_follow_and_unfollow_still_queue_their_jobs)
{
    uint64_t a = st_user(st, "za", NULL), b = st_user(st, "zb", NULL);
    bool changed;
    cr_assert_eq(storage_follow(st, a, b, &changed), 0);
    char mark[64];
    st_stream_mark(st_redis, ST_SHARD(a), mark);
    cr_assert_eq(storage_follow(st, a, b, &changed), 0);
    cr_expect_not(changed);
    cr_expect_eq(st_jobs_since(st_redis, ST_SHARD(a), mark, "follow", "follower", a, "followee", b),
                 1);
    cr_assert_eq(storage_unfollow(st, a, b, &changed), 0);
    st_stream_mark(st_redis, ST_SHARD(a), mark);
    cr_assert_eq(storage_unfollow(st, a, b, &changed), 0);
    cr_expect_not(changed);
    cr_expect_eq(
        st_jobs_since(st_redis, ST_SHARD(a), mark, "unfollow", "follower", a, "followee", b), 1);
}

/* Makes n followers of user, in order; fills ids[0..n). */
static void followers(uint64_t user, uint64_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        ids[i] = st_user(st, "pf", NULL);
        bool changed;
        cr_assert_eq(storage_follow(st, ids[i], user, &changed), 0);
    }
}

Test(graph, edges_page_newest_first_across_pages)
{
    uint64_t star = st_user(st, "star", NULL);
    uint64_t ids[7];
    followers(star, ids, 7);
    size_t seen = 0;
    uint64_t cursor = 0;
    int pages = 0;
    do {
        storage_page_t page;
        cr_assert_eq(storage_edges_page(st, STORAGE_FOLLOWERS, star, cursor, 3, &page), 0);
        cr_assert_leq(page.n, 3);
        for (size_t i = 0; i < page.n; i++, seen++) {
            cr_assert_lt(seen, 7, "more followers than were made");
            cr_expect_eq(page.ids[i], ids[6 - seen], "item %zu is out of order", seen);
        }
        cursor = page.next_cursor;
        storage_page_free(&page);
        pages++;
    } while (cursor && pages < 10);
    cr_expect_eq(seen, 7);
    cr_expect_eq(pages, 3, "3+3+1 expected, got %d pages", pages);
}

Test(graph, last_full_page_has_no_next_cursor)
{
    uint64_t star = st_user(st, "full", NULL);
    uint64_t ids[4];
    followers(star, ids, 4);
    storage_page_t page;
    cr_assert_eq(storage_edges_page(st, STORAGE_FOLLOWERS, star, 0, 4, &page), 0);
    cr_expect_eq(page.n, 4);
    cr_expect_eq(page.next_cursor, 0);
    storage_page_free(&page);
    cr_assert_eq(storage_edges_page(st, STORAGE_FOLLOWERS, star, 0, 3, &page), 0);
    cr_expect_eq(page.n, 3);
    cr_expect_neq(page.next_cursor, 0);
    storage_page_free(&page);
}

Test(graph, following_page_lists_followees_newest_first)
{
    uint64_t fan = st_user(st, "fan", NULL);
    uint64_t a = st_user(st, "ea", NULL), b = st_user(st, "eb", NULL);
    bool changed;
    cr_assert_eq(storage_follow(st, fan, a, &changed), 0);
    cr_assert_eq(storage_follow(st, fan, b, &changed), 0);
    storage_page_t page;
    cr_assert_eq(storage_edges_page(st, STORAGE_FOLLOWING, fan, 0, 20, &page), 0);
    cr_assert_eq(page.n, 2);
    cr_expect_eq(page.ids[0], b);
    cr_expect_eq(page.ids[1], a);
    cr_expect_eq(page.next_cursor, 0);
    storage_page_free(&page);
}

Test(graph, empty_page_for_a_user_without_edges)
{
    uint64_t lone = st_user(st, "lone", NULL);
    storage_page_t page;
    cr_assert_eq(storage_edges_page(st, STORAGE_FOLLOWERS, lone, 0, 20, &page), 0);
    cr_expect_eq(page.n, 0);
    cr_expect_eq(page.next_cursor, 0);
    storage_page_free(&page);
}

Test(graph, edges_page_of_unknown_user_is_enoent)
{
    storage_page_t page;
    memset(&page, 0, sizeof(page));
    uint64_t ghost = st_unknown_id(st);
    cr_expect_eq(storage_edges_page(st, STORAGE_FOLLOWERS, ghost, 0, 20, &page), -ENOENT);
    cr_expect_eq(storage_edges_page(st, STORAGE_FOLLOWING, ghost, 0, 20, &page), -ENOENT);
}
