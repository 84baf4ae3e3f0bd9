/* tests/fanout/test_delete.c -- deletions win: a deleted post leaves every timeline, also when
 * the delete lands while the post is still being fanned out to 20,000 followers.
 */
#include "tests/fanout/fx.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

TestSuite(delete, .timeout = 180);

static ts_redis_t redis;
static ts_server_t server;

Test(delete, retracts_from_every_followers_timeline)
{
    int port = fx_start(&redis, &server, NULL);
    ts_user_t a, f[4];
    ts_register(port, "del_a", &a);
    for (int i = 0; i < 4; i++) {
        ts_register(port, "del_f", &f[i]);
        ts_follow(port, &f[i], &a);
    }
    uint64_t kept = ts_post(port, &a, "this one stays", NULL);
    uint64_t doomed = ts_post(port, &a, "this one goes", NULL);
    redisContext *c = ts_redis_connect(redis.port);
    cr_assert(ts_wait_queue_empty(c, 30000));
    for (int i = 0; i < 4; i++)
        cr_assert(ts_timeline_holds(c, f[i].num, doomed) && ts_timeline_holds(c, f[i].num, kept));
    cr_assert(ts_timeline_holds(c, a.num, doomed));

    fx_delete(port, &a, doomed);
    cr_assert(ts_wait_queue_empty(c, 30000), "the delete job never finished");
    for (int i = 0; i < 4; i++) {
        cr_assert(!ts_timeline_holds(c, f[i].num, doomed),
                  "follower %d still holds the deleted post", i);
        cr_assert(ts_timeline_holds(c, f[i].num, kept), "follower %d lost the other post", i);
        uint64_t ids[8];
        size_t n = ts_timeline(port, &f[i], 20, ids, NULL, 8);
        cr_assert_eq(n, (size_t)1);
        cr_assert_eq(ids[0], kept);
    }
    cr_assert(!ts_timeline_holds(c, a.num, doomed), "the author's own timeline still holds it");
    ts_redis_close(c);
    ts_server_stop_clean(&server, 20000);
}

/* The post job walks 20,000 followers in chunks (slowed by a small in-flight budget) while
 * the delete job runs next to it; whatever order their writes reach Redis in, no follower
 * may end up holding the post. */
Test(delete, racing_an_in_flight_fanout_leaves_no_follower_holding_it)
{
    const char *extra[] = {"--fanout-in-flight", "2000", "--celebrity-threshold", "1000000", NULL};
    int port = fx_start(&redis, &server, extra);
    ts_user_t a;
    ts_register(port, "race_a", &a);
    enum { FOLLOWERS = 20000 };
    const uint64_t base = 3000000;
    redisContext *c = ts_redis_connect(redis.port);
    ts_add_followers(c, a.num, base, FOLLOWERS, 1);

    for (int round = 0; round < 2; round++) {
        uint64_t post = ts_post(port, &a, "racing the delete", NULL);
        if (round == 1) {
            /* Second round: delete once the fan-out is known to be under way. */
            uint64_t deadline = ts_now_ms() + 20000;
            while (!ts_timeline_holds(c, base, post) && ts_now_ms() < deadline)
                ;
            cr_assert(ts_timeline_holds(c, base, post), "the fan-out never started");
        }
        fx_delete(port, &a, post);
        size_t at_delete = fx_count_holding(c, post, base, FOLLOWERS, NULL);
        cr_log_info("round %d: %zu of %d followers held the post right after the delete", round,
                    at_delete, FOLLOWERS);

        /* A sample first, polled: it must empty out. */
        uint64_t deadline = ts_now_ms() + 60000;
        size_t sample_left;
        do {
            sample_left = 0;
            for (uint64_t i = 0; i < FOLLOWERS; i += 997)
                sample_left += ts_timeline_holds(c, base + i, post);
            if (sample_left)
                ts_sleep_ms(20);
        } while (sample_left && ts_now_ms() < deadline);
        cr_assert_eq(sample_left, (size_t)0, "sampled followers still hold the deleted post");

        /* Then everything: once the queue is empty, no job can write it back. */
        cr_assert(ts_wait_queue_empty(c, 60000), "the fan-out queue did not drain");
        size_t holding = fx_count_holding(c, post, base, FOLLOWERS, NULL);
        cr_assert_eq(holding, (size_t)0,
                     "round %d: %zu of %d followers hold the deleted post after every job ended",
                     round, holding, FOLLOWERS);
        cr_assert(!ts_timeline_holds(c, a.num, post),
                  "the author's own timeline holds the deleted post");
    }
    cr_assert_eq(ts_redis_int(c, "XLEN fanout:dead"), 0);
    ts_redis_close(c);
    ts_server_stop_clean(&server, 20000);
}

/* How many entries of user's event log are "<kind> <post> …", and whether a feed one comes
 * before the first delete one. */
static size_t count_logged(redisContext *c, uint64_t user, const char *kind, uint64_t post)
{
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "%s %llu ", kind, (unsigned long long)post);
    redisReply *r = ts_redis_cmd_ok(c, "XRANGE ev:{%llu} - +", (unsigned long long)user);
    cr_assert(r->type == REDIS_REPLY_ARRAY, "no event log for user %llu", (unsigned long long)user);
    size_t n = 0;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *f = r->element[i]->element[1];
        n += f->elements == 2 && strncmp(f->element[1]->str, prefix, strlen(prefix)) == 0;
    }
    freeReplyObject(r);
    return n;
}

/* A post job that finds its post deleted as it finishes queues a second delete, since its
 * own writes may have landed after the first one's. Connected followers that had the first
 * delete after the feed event must not get it twice. */
Test(delete, racing_its_fanout_retracts_once_per_connected_follower)
{
    const char *extra[] = {"--fanout-in-flight", "2000", "--celebrity-threshold", "1000000", NULL};
    int port = fx_start(&redis, &server, extra);
    ts_user_t a;
    ts_register(port, "once_a", &a);
    enum { FOLLOWERS = 20000 };
    const uint64_t base = 5000000, connected[] = {base, base + 9999, base + FOLLOWERS - 1};
    redisContext *c = ts_redis_connect(redis.port);
    ts_add_followers(c, a.num, base, FOLLOWERS, 1);
    for (size_t i = 0; i < 3; i++) /* a log that exists gets the event (storage/events.c) */
        freeReplyObject(
            ts_redis_cmd_ok(c, "XADD ev:{%llu} * e open", (unsigned long long)connected[i]));

    bool raced = false;
    for (int round = 0; round < 5 && !raced; round++) {
        double done = ts_metric(port, "tidings_fanout_jobs_done_total");
        uint64_t post = ts_post(port, &a, "retracted once", NULL);
        uint64_t deadline = ts_now_ms() + 20000;
        while (!ts_timeline_holds(c, base, post) && ts_now_ms() < deadline)
            ;
        cr_assert(ts_timeline_holds(c, base, post), "the fan-out never started");
        fx_delete(port, &a, post);
        cr_assert(ts_wait_queue_empty(c, 60000), "the fan-out queue did not drain");
        /* Post, delete, and the post job's own delete when it saw the deletion. */
        raced = ts_metric(port, "tidings_fanout_jobs_done_total") - done == 3;
        cr_log_info("round %d: %s", round, raced ? "raced" : "the fan-out finished first");
        for (size_t i = 0; i < 3; i++) {
            cr_assert_eq(count_logged(c, connected[i], "feed", post), 1);
            cr_assert_eq(count_logged(c, connected[i], "delete", post), 1,
                         "round %d: follower %llu has %zu deletes of the post", round,
                         (unsigned long long)connected[i],
                         count_logged(c, connected[i], "delete", post));
        }
    }
    cr_assert(raced, "in five rounds the delete never landed during the fan-out");
    ts_redis_close(c);
    ts_server_stop_clean(&server, 20000);
}
