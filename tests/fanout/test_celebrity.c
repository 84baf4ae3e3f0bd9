/* tests/fanout/test_celebrity.c -- read-time merge: with --celebrity-threshold 3, an author with
 * 5 followers is not fanned out on write; followers still read that author's posts in
 * GET /v1/timeline, merged in post-id order with the posts fanned out to them, and paging
 * across the merge yields every post exactly once.
 */
#include "tests/fanout/fx.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

TestSuite(celebrity, .timeout = 120);

static ts_redis_t redis;
static ts_server_t server;

static int cmp_desc(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? 1 : a > b ? -1 : 0;
}

Test(celebrity, posts_merge_at_read_time_in_id_order_and_page_exactly_once)
{
    const char *extra[] = {"--celebrity-threshold", "3", NULL};
    int port = fx_start(&redis, &server, extra);
    redisContext *c = ts_redis_connect(redis.port);

    ts_user_t celeb, normal, f[5];
    ts_register_all(port, "cel", &celeb, &normal, NULL);
    for (int i = 0; i < 5; i++) {
        ts_register(port, "cel_f", &f[i]);
        ts_follow(port, &f[i], &celeb);
    }
    ts_follow(port, &f[0], &normal);
    cr_assert(ts_wait_queue_empty(c, 30000));

    /* Interleaved posts: celebrity, normal, celebrity, … */
    enum { EACH = 9, TOTAL = 2 * EACH };
    uint64_t all[TOTAL], celeb_posts[EACH], normal_posts[EACH];
    for (int i = 0; i < EACH; i++) {
        char text[48];
        snprintf(text, sizeof(text), "celebrity %d", i);
        all[2 * i] = celeb_posts[i] = ts_post(port, &celeb, text, NULL);
        snprintf(text, sizeof(text), "normal %d", i);
        all[2 * i + 1] = normal_posts[i] = ts_post(port, &normal, text, NULL);
    }
    cr_assert(ts_wait_queue_empty(c, 30000), "the fan-out queue did not drain");

    /* Not written on fan-out: no follower's tl:{id} holds a celebrity post. */
    for (int k = 0; k < 5; k++)
        for (int i = 0; i < EACH; i++)
            cr_assert(!ts_timeline_holds(c, f[k].num, celeb_posts[i]),
                      "celebrity post %d was written into follower %d's timeline", i, k);
    for (int i = 0; i < EACH; i++) {
        cr_assert(ts_timeline_holds(c, f[0].num, normal_posts[i]), "normal post %d not fanned out",
                  i);
        cr_assert(ts_timeline_holds(c, celeb.num, celeb_posts[i]), "the celebrity's own timeline");
    }

    /* f[0] reads both authors, merged newest first, on any page size. */
    qsort(all, TOTAL, sizeof(all[0]), cmp_desc);
    uint64_t ids[TOTAL + 4];
    for (int limit = 1; limit <= 4; limit++) {
        size_t n = ts_timeline(port, &f[0], limit, ids, NULL, TOTAL + 4);
        cr_assert_eq(n, (size_t)TOTAL, "limit %d: %zu entries, want %d", limit, n, TOTAL);
        for (int i = 0; i < TOTAL; i++)
            cr_assert_eq(ids[i], all[i], "limit %d: entry %d out of place", limit, i);
    }
    size_t n = ts_timeline(port, &f[0], 100, ids, NULL, TOTAL + 4);
    cr_assert_eq(n, (size_t)TOTAL);

    /* The other followers read the celebrity's posts only. */
    for (int k = 1; k < 5; k++) {
        n = ts_timeline(port, &f[k], 2, ids, NULL, TOTAL + 4);
        cr_assert_eq(n, (size_t)EACH, "follower %d: %zu entries, want %d", k, n, EACH);
        for (int i = 0; i < EACH; i++)
            cr_assert_eq(ids[i], celeb_posts[EACH - 1 - i]);
    }

    /* Someone who follows the celebrity later reads the posts at once (merged, not copied). */
    ts_user_t late;
    ts_register(port, "cel_l", &late);
    ts_follow(port, &late, &celeb);
    cr_assert_eq(ts_wait_timeline(port, &late, EACH, NULL, 0, 20000), (size_t)EACH,
                 "a late follower of the celebrity does not read its posts");
    cr_assert(ts_wait_queue_empty(c, 30000));
    for (int i = 0; i < EACH; i++)
        cr_assert(!ts_timeline_holds(c, late.num, celeb_posts[i]));
    n = ts_timeline(port, &late, 3, ids, NULL, TOTAL + 4);
    cr_assert_eq(n, (size_t)EACH);

    /* A deleted celebrity post leaves the merged timelines too. */
    fx_delete(port, &celeb, celeb_posts[EACH - 1]);
    n = ts_timeline(port, &f[1], 4, ids, NULL, TOTAL + 4);
    cr_assert_eq(n, (size_t)EACH - 1);
    cr_assert_eq(ids[0], celeb_posts[EACH - 2]);

    /* Unfollowing the celebrity stops the merge. */
    ts_unfollow(port, &f[2], &celeb);
    uint64_t deadline = ts_now_ms() + 20000;
    do {
        n = ts_timeline(port, &f[2], 100, ids, NULL, TOTAL + 4);
        if (n)
            ts_sleep_ms(20);
    } while (n && ts_now_ms() < deadline);
    cr_assert_eq(n, (size_t)0, "after unfollowing, %zu celebrity posts still merge in", n);

    ts_redis_close(c);
    ts_server_stop_clean(&server, 20000);
}
