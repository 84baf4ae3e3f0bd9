/* tests/storage/test_posts.c -- posts: create, read one or many, tombstones, author pages. */
#include "tests/storage/fixture.h"
#include "tests/support/support.h"

#include <criterion/criterion.h>
#include <errno.h>

TestSuite(posts, .init = st_setup, .fini = st_teardown, .timeout = 60);

static uint64_t post(uint64_t author, const char *text)
{
    storage_post_t p = {.id = storage_id_next(st), .author = author, .text = (char *)text};
    cr_assert_eq(storage_post_create(st, &p, &(bool){false}), 0);
    return p.id;
}

Test(posts, create_then_get_roundtrips_every_field)
{
    uint64_t a = st_user(st, "pa", NULL), m1 = st_user(st, "m1", NULL),
             m2 = st_user(st, "m2", NULL);
    uint64_t parent = post(a, "parent");
    const char *text = "h\xc3\xa9llo @m1 \xf0\x9f\x98\x80 \"quoted\" \\ back, new\nline";
    storage_post_t p = {.id = storage_id_next(st),
                        .author = a,
                        .text = (char *)text,
                        .reply_to = parent,
                        .mentions = {m1, m2},
                        .n_mentions = 2};
    cr_assert_eq(storage_post_create(st, &p, &(bool){false}), 0);
    storage_post_t got;
    cr_assert_eq(storage_post_get(st, p.id, &got), 0);
    cr_expect_eq(got.id, p.id);
    cr_expect_eq(got.author, a);
    cr_expect_str_eq(got.text, text);
    cr_expect_eq(got.reply_to, parent);
    cr_expect_eq(got.n_mentions, 2);
    cr_expect_eq(got.mentions[0], m1);
    cr_expect_eq(got.mentions[1], m2);
    cr_expect_eq(got.like_count, 0);
    cr_expect_eq(got.repost_count, 0);
    cr_expect_not(got.deleted);
    storage_post_clear(&got);
}

Test(posts, max_mentions_roundtrip)
{
    uint64_t a = st_user(st, "mx", NULL);
    storage_post_t p = {.id = storage_id_next(st), .author = a, .text = "many"};
    for (size_t i = 0; i < STORAGE_MENTIONS_MAX; i++)
        p.mentions[p.n_mentions++] = (1ULL << 52) + i;
    cr_assert_eq(storage_post_create(st, &p, &(bool){false}), 0);
    storage_post_t got;
    cr_assert_eq(storage_post_get(st, p.id, &got), 0);
    cr_expect_eq(got.n_mentions, STORAGE_MENTIONS_MAX);
    cr_expect_arr_eq(got.mentions, p.mentions, sizeof(p.mentions));
    storage_post_clear(&got);
}

Test(posts, unknown_post_is_enoent)
{
    storage_post_t got;
    cr_expect_eq(storage_post_get(st, st_unknown_id(st), &got), -ENOENT);
    storage_post_clear(&got);
}

Test(posts, get_many_keeps_order_and_marks_unknown_with_id_zero)
{
    uint64_t a = st_user(st, "gm", NULL);
    uint64_t ids[4] = {post(a, "one"), st_unknown_id(st), post(a, "three"), post(a, "four")};
    storage_post_t out[4];
    cr_assert_eq(storage_posts_get(st, ids, 4, out), 0);
    cr_expect_eq(out[0].id, ids[0]);
    cr_expect_str_eq(out[0].text, "one");
    cr_expect_eq(out[1].id, 0);
    cr_expect_eq(out[2].id, ids[2]);
    cr_expect_str_eq(out[2].text, "three");
    cr_expect_eq(out[3].id, ids[3]);
    cr_expect_str_eq(out[3].text, "four");
    for (int i = 0; i < 4; i++)
        storage_post_clear(&out[i]);
}

Test(posts, delete_leaves_a_tombstone)
{
    uint64_t a = st_user(st, "del", NULL);
    uint64_t id = post(a, "soon gone");
    cr_assert_eq(storage_post_delete(st, id, a), 0);
    storage_post_t got;
    cr_assert_eq(storage_post_get(st, id, &got), 0);
    cr_expect_eq(got.id, id);
    cr_expect_eq(got.author, a);
    cr_expect(got.deleted, "the deleted flag is not set");
    cr_expect_str_eq(got.text, "", "a tombstone keeps the text");
    cr_expect_eq(got.n_mentions, 0);
    storage_post_clear(&got);
    cr_expect_eq(storage_post_delete(st, id, a), 0, "deleting twice is not idempotent");
}

Test(posts, create_and_delete_queue_their_jobs)
{
    uint64_t a = st_user(st, "job", NULL);
    char mark[64];
    st_stream_mark(st_redis, ST_SHARD(a), mark);
    uint64_t id = post(a, "fan me out");
    cr_expect_eq(st_jobs_since(st_redis, ST_SHARD(a), mark, "post", "post", id, "author", a), 1);
    cr_assert_eq(storage_post_delete(st, id, a), 0);
    cr_expect_eq(st_jobs_since(st_redis, ST_SHARD(a), mark, "delete", "post", id, "author", a), 1);
}

Test(posts, author_posts_page_newest_first_without_deleted)
{
    uint64_t a = st_user(st, "ap", NULL);
    uint64_t ids[5];
    for (int i = 0; i < 5; i++)
        ids[i] = post(a, "p");
    cr_assert_eq(storage_post_delete(st, ids[2], a), 0);
    const uint64_t want[4] = {ids[4], ids[3], ids[1], ids[0]};
    size_t seen = 0;
    uint64_t cursor = 0;
    int pages = 0;
    do {
        storage_page_t page;
        cr_assert_eq(storage_author_posts_page(st, a, cursor, 2, &page), 0);
        for (size_t i = 0; i < page.n; i++, seen++) {
            cr_assert_lt(seen, 4, "more posts than were kept");
            cr_expect_eq(page.ids[i], want[seen], "item %zu out of order", seen);
        }
        cursor = page.next_cursor;
        storage_page_free(&page);
        pages++;
    } while (cursor && pages < 10);
    cr_expect_eq(seen, 4);
    cr_expect_eq(pages, 2);
}

Test(posts, author_posts_page_of_unknown_user_is_enoent)
{
    storage_page_t page;
    cr_expect_eq(storage_author_posts_page(st, st_unknown_id(st), 0, 20, &page), -ENOENT);
}
