/* tests/fanout/test_timeline.c -- what followers see through GET /v1/timeline once the engine
 * has run: per-author post-id order without duplicates, trimming to --timeline-max, follow
 * backfill and unfollow purge. Each test runs its own redis-server and tidings process.
 */
#include "tests/fanout/fx.h"

#include "storage/storage.h"

#include <criterion/criterion.h>
#include <stdio.h>

TestSuite(timeline, .timeout = 120);

static ts_redis_t redis;
static ts_server_t server;

static bool contains(const uint64_t *ids, size_t n, uint64_t id)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] == id)
            return true;
    return false;
}

Test(timeline, newest_first_in_post_id_order_per_author_without_duplicates)
{
    int port = fx_start(&redis, &server, NULL);
    ts_user_t a, b, f;
    ts_register_all(port, "ord", &a, &b, &f, NULL);
    ts_follow(port, &f, &a);
    ts_follow(port, &f, &b);

    enum { PER_AUTHOR = 40, TOTAL = 2 * PER_AUTHOR };
    uint64_t posted[TOTAL], by[TOTAL];
    for (int i = 0; i < TOTAL; i++) {
        const ts_user_t *who = i % 2 ? &b : &a;
        char text[64];
        snprintf(text, sizeof(text), "post %d by %s", i, who->handle);
        posted[i] = ts_post(port, who, text, NULL);
        by[i] = who->num;
        if (i)
            cr_assert_gt(posted[i], posted[i - 1], "ids from one server must rise in time");
    }
    cr_assert_eq(ts_wait_timeline(port, &f, TOTAL, NULL, 0, 30000), (size_t)TOTAL,
                 "the follower's timeline never got all %d posts", TOTAL);

    /* Small pages: the cursor must carry across pages exactly. */
    uint64_t ids[TOTAL + 8], authors[TOTAL + 8];
    size_t n = ts_timeline(port, &f, 7, ids, authors, TOTAL + 8);
    cr_assert_eq(n, (size_t)TOTAL, "paged timeline has %zu entries, want %d", n, TOTAL);
    for (int i = 0; i < TOTAL; i++) {
        cr_assert_eq(ids[i], posted[TOTAL - 1 - i], "entry %d is not the %d-th newest post", i,
                     i + 1);
        cr_assert_eq(authors[i], by[TOTAL - 1 - i], "entry %d has the wrong author", i);
    }
    /* And per author: each author's posts appear as a falling subsequence. */
    uint64_t last_a = UINT64_MAX, last_b = UINT64_MAX;
    size_t seen_a = 0, seen_b = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t *last = authors[i] == a.num ? &last_a : &last_b;
        cr_assert_lt(ids[i], *last);
        *last = ids[i];
        authors[i] == a.num ? seen_a++ : seen_b++;
    }
    cr_assert_eq(seen_a, (size_t)PER_AUTHOR);
    cr_assert_eq(seen_b, (size_t)PER_AUTHOR);

    /* Behind the API: one entry per post, nothing else. */
    redisContext *c = ts_redis_connect(redis.port);
    cr_assert_eq(ts_redis_int(c, "ZCARD tl:{%llu}", (unsigned long long)f.num), TOTAL);
    /* Authors see their own posts at home too. */
    cr_assert_eq(ts_redis_int(c, "ZCARD tl:{%llu}", (unsigned long long)a.num), PER_AUTHOR);
    ts_redis_close(c);
    ts_server_stop_clean(&server, 20000);
}

Test(timeline, trimming_keeps_the_newest_timeline_max)
{
    const char *extra[] = {"--timeline-max", "5", NULL};
    int port = fx_start(&redis, &server, extra);
    ts_user_t a, f;
    ts_register_all(port, "trim", &a, &f, NULL);
    ts_follow(port, &f, &a);
    enum { POSTS = 12, MAX = 5 };
    uint64_t posted[POSTS];
    for (int i = 0; i < POSTS; i++) {
        char text[32];
        snprintf(text, sizeof(text), "trim %d", i);
        posted[i] = ts_post(port, &a, text, NULL);
    }
    redisContext *c = ts_redis_connect(redis.port);
    cr_assert(ts_wait_queue_empty(c, 30000), "the fan-out queue did not drain");

    const ts_user_t *readers[] = {&f, &a};
    for (size_t r = 0; r < 2; r++) {
        uint64_t ids[POSTS + 1];
        for (int limit = 1; limit <= 3; limit++) {
            size_t n = ts_timeline(port, readers[r], limit, ids, NULL, POSTS + 1);
            cr_assert_eq(n, (size_t)MAX, "%s reads %zu entries with limit %d, want exactly %d",
                         r ? "the author" : "the follower", n, limit, MAX);
            for (int i = 0; i < MAX; i++)
                cr_assert_eq(ids[i], posted[POSTS - 1 - i], "entry %d is not the %d-th newest post",
                             i, i + 1);
        }
        /* A read writes nothing: the fan-out trims to the cap with one post in 8 (by its
         * millisecond, storage/timeline_write.c's TRIM_EVERY), so the stored timeline holds
         * at most the cap plus the posts since the last such one (the follow's backfill,
         * which may run after some posts, trims too), and never less than the cap. */
        long long most = POSTS;
        for (int i = 0; i < POSTS; i++)
            if (storage_id_time_ms(posted[i]) % 8 == 0)
                most = MAX + (POSTS - 1 - i) < POSTS ? MAX + (POSTS - 1 - i) : POSTS;
        long long stored = ts_redis_int(c, "ZCARD tl:{%llu}", (unsigned long long)readers[r]->num);
        cr_assert(stored >= MAX && stored <= most,
                  "%lld entries stored; the fan-out's trims leave %d to %lld", stored, MAX, most);
    }
    ts_redis_close(c);
    ts_server_stop_clean(&server, 20000);
}

Test(timeline, follow_backfills_posts_made_before_it)
{
    int port = fx_start(&redis, &server, NULL);
    ts_user_t a, other, f;
    ts_register_all(port, "bf", &a, &other, &f, NULL);
    uint64_t before[3];
    for (int i = 0; i < 3; i++)
        before[i] = ts_post(port, &a, "written before the follow", NULL);
    uint64_t unrelated = ts_post(port, &other, "from someone f never follows", NULL);
    redisContext *c = ts_redis_connect(redis.port);
    cr_assert(ts_wait_queue_empty(c, 30000));
    cr_assert_eq(ts_redis_int(c, "EXISTS tl:{%llu}", (unsigned long long)f.num), 0,
                 "f follows nobody yet, so has no timeline");

    ts_follow(port, &f, &a);
    cr_assert_eq(ts_wait_timeline(port, &f, 3, NULL, 0, 20000), (size_t)3,
                 "the follow job never backfilled the 3 earlier posts");
    cr_assert(ts_wait_queue_empty(c, 30000));
    uint64_t ids[8];
    size_t n = ts_timeline(port, &f, 2, ids, NULL, 8);
    cr_assert_eq(n, (size_t)3);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(ids[i], before[2 - i]);
    cr_assert(!contains(ids, n, unrelated));

    /* A post after the follow arrives on top. */
    uint64_t after = ts_post(port, &a, "written after the follow", NULL);
    cr_assert_eq(ts_wait_timeline(port, &f, 4, NULL, 0, 20000), (size_t)4);
    n = ts_timeline(port, &f, 100, ids, NULL, 8);
    cr_assert_eq(n, (size_t)4);
    cr_assert_eq(ids[0], after);
    ts_redis_close(c);
    ts_server_stop_clean(&server, 20000);
}

Test(timeline, unfollow_purges_the_followees_posts_only)
{
    int port = fx_start(&redis, &server, NULL);
    ts_user_t a, b, f;
    ts_register_all(port, "uf", &a, &b, &f, NULL);
    ts_follow(port, &f, &a);
    ts_follow(port, &f, &b);
    uint64_t pa[4], pb[3];
    for (int i = 0; i < 4; i++)
        pa[i] = ts_post(port, &a, "from a", NULL);
    for (int i = 0; i < 3; i++)
        pb[i] = ts_post(port, &b, "from b", NULL);
    cr_assert_eq(ts_wait_timeline(port, &f, 7, NULL, 0, 20000), (size_t)7);

    ts_unfollow(port, &f, &a);
    redisContext *c = ts_redis_connect(redis.port);
    uint64_t deadline = ts_now_ms() + 20000;
    size_t left = 4;
    while (left && ts_now_ms() < deadline) {
        left = 0;
        for (int i = 0; i < 4; i++)
            left += ts_timeline_holds(c, f.num, pa[i]);
        if (left)
            ts_sleep_ms(20);
    }
    cr_assert_eq(left, (size_t)0, "%zu of a's posts are still in f's timeline after unfollow",
                 left);
    cr_assert(ts_wait_queue_empty(c, 30000));
    uint64_t ids[16];
    size_t n = ts_timeline(port, &f, 2, ids, NULL, 16);
    cr_assert_eq(n, (size_t)3, "f should keep exactly b's 3 posts, has %zu entries", n);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(ids[i], pb[2 - i]);

    /* And a's later posts do not reach f any more. */
    uint64_t later = ts_post(port, &a, "after the unfollow", NULL);
    cr_assert(ts_wait_queue_empty(c, 30000));
    cr_assert(!ts_timeline_holds(c, f.num, later));
    cr_assert(ts_timeline_holds(c, a.num, later), "the author's own timeline still gets it");
    ts_redis_close(c);
    ts_server_stop_clean(&server, 20000);
}
