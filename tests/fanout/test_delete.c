/* tests/fanout/test_delete.c -- deletions win: a deleted post leaves every timeline, also when
 * the delete lands while the post is still being fanned out to 20,000 followers.
 */
#include "tests/fanout/fx.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

TestSuite(delete, .fini = fx_teardown, .timeout = 180);

static fx_redis_t redis;
static ts_server_t server;

Test(delete, retracts_from_every_followers_timeline)
{
    fx_redis_start(&redis, false);
    fx_server_start(&server, &redis, NULL);
    int port = server.port;
    fx_user_t a, f[4];
    fx_user(port, "del_a", &a);
    for (int i = 0; i < 4; i++) {
        fx_user(port, "del_f", &f[i]);
        fx_follow(port, &f[i], a.id);
    }
    uint64_t kept = fx_post(port, &a, "this one stays");
    uint64_t doomed = fx_post(port, &a, "this one goes");
    redisContext *c = fx_connect(redis.port);
    cr_assert(fx_wait_queue_empty(c, 30000));
    for (int i = 0; i < 4; i++)
        cr_assert(fx_holds(c, f[i].id, doomed) && fx_holds(c, f[i].id, kept));
    cr_assert(fx_holds(c, a.id, doomed));

    fx_delete(port, &a, doomed);
    cr_assert(fx_wait_queue_empty(c, 30000), "the delete job never finished");
    for (int i = 0; i < 4; i++) {
        cr_assert(!fx_holds(c, f[i].id, doomed), "follower %d still holds the deleted post", i);
        cr_assert(fx_holds(c, f[i].id, kept), "follower %d lost the other post", i);
        uint64_t ids[8];
        size_t n = fx_timeline(port, &f[i], 20, ids, NULL, 8);
        cr_assert_eq(n, (size_t)1);
        cr_assert_eq(ids[0], kept);
    }
    cr_assert(!fx_holds(c, a.id, doomed), "the author's own timeline still holds it");
    fx_close(c);
    fx_server_stop(&server);
}

/* The post job walks 20,000 followers in chunks (slowed by a small in-flight budget) while
 * the delete job runs next to it; whatever order their writes reach Redis in, no follower
 * may end up holding the post. */
Test(delete, racing_an_in_flight_fanout_leaves_no_follower_holding_it)
{
    fx_redis_start(&redis, false);
    const char *extra[] = {"--fanout-in-flight", "2000", "--celebrity-threshold", "1000000", NULL};
    fx_server_start(&server, &redis, extra);
    int port = server.port;
    fx_user_t a;
    fx_user(port, "race_a", &a);
    enum { FOLLOWERS = 20000 };
    const uint64_t base = 3000000;
    redisContext *c = fx_connect(redis.port);
    fx_add_followers(c, a.id, base, FOLLOWERS);

    for (int round = 0; round < 2; round++) {
        uint64_t post = fx_post(port, &a, "racing the delete");
        if (round == 1) {
            /* Second round: delete once the fan-out is known to be under way. */
            uint64_t deadline = ts_now_ms() + 20000;
            while (!fx_holds(c, base, post) && ts_now_ms() < deadline)
                ;
            cr_assert(fx_holds(c, base, post), "the fan-out never started");
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
                sample_left += fx_holds(c, base + i, post);
            if (sample_left)
                ts_sleep_ms(20);
        } while (sample_left && ts_now_ms() < deadline);
        cr_assert_eq(sample_left, (size_t)0, "sampled followers still hold the deleted post");

        /* Then everything: once the queue is empty, no job can write it back. */
        cr_assert(fx_wait_queue_empty(c, 60000), "the fan-out queue did not drain");
        size_t holding = fx_count_holding(c, post, base, FOLLOWERS, NULL);
        cr_assert_eq(holding, (size_t)0,
                     "round %d: %zu of %d followers hold the deleted post after every job ended",
                     round, holding, FOLLOWERS);
        cr_assert(!fx_holds(c, a.id, post), "the author's own timeline holds the deleted post");
    }
    cr_assert_eq(fx_int(c, "XLEN fanout:dead"), 0);
    fx_close(c);
    fx_server_stop(&server);
}

/* How many entries of user's event log are "<kind> <post> …", and whether a feed one comes
 * before the first delete one. */
static size_t count_logged(redisContext *c, uint64_t user, const char *kind, uint64_t post)
{
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "%s %llu ", kind, (unsigned long long)post);
    redisReply *r = fx_cmd(c, "XRANGE ev:{%llu} - +", (unsigned long long)user);
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
    fx_redis_start(&redis, false);
    const char *extra[] = {"--fanout-in-flight", "2000", "--celebrity-threshold", "1000000", NULL};
    fx_server_start(&server, &redis, extra);
    int port = server.port;
    fx_user_t a;
    fx_user(port, "once_a", &a);
    enum { FOLLOWERS = 20000 };
    const uint64_t base = 5000000, connected[] = {base, base + 9999, base + FOLLOWERS - 1};
    redisContext *c = fx_connect(redis.port);
    fx_add_followers(c, a.id, base, FOLLOWERS);
    for (size_t i = 0; i < 3; i++) /* a log that exists is a connected user (storage/events.c) */
        freeReplyObject(fx_cmd(c, "XADD ev:{%llu} * e open", (unsigned long long)connected[i]));

    bool raced = false;
    for (int round = 0; round < 5 && !raced; round++) {
        double done = fx_metric(port, "tidings_fanout_jobs_done_total");
        uint64_t post = fx_post(port, &a, "retracted once");
        uint64_t deadline = ts_now_ms() + 20000;
        while (!fx_holds(c, base, post) && ts_now_ms() < deadline)
            ;
        cr_assert(fx_holds(c, base, post), "the fan-out never started");
        fx_delete(port, &a, post);
        cr_assert(fx_wait_queue_empty(c, 60000), "the fan-out queue did not drain");
        /* Post, delete, and the post job's own delete when it saw the deletion. */
        raced = fx_metric(port, "tidings_fanout_jobs_done_total") - done == 3;
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
    fx_close(c);
    fx_server_stop(&server);
}
