/* tests/fanout/test_shared.c -- two tidings processes on one Redis share the job queue through
 * the consumer group: both do work, and every post reaches every follower exactly once.
 */
#include "tests/fanout/fx.h"

#include <criterion/criterion.h>
#include <stdio.h>

TestSuite(shared, .timeout = 180);

static ts_redis_t redis;
static ts_server_t servers[2];

Test(shared, two_processes_share_the_queue_and_deliver_everything)
{
    redis.aof = false;
    ts_redis_start_like_fixture(&redis);
    for (int s = 0; s < 2; s++)
        ts_server_start(&servers[s], redis.url, NULL, true);

    enum { AUTHORS = 4, FOLLOWERS = 50, POSTS = 240 };
    ts_user_t authors[AUTHORS];
    uint64_t base[AUTHORS];
    redisContext *c = ts_redis_connect(redis.port);
    for (int a = 0; a < AUTHORS; a++) {
        ts_register(servers[a % 2].port, "shr_a", &authors[a]);
        base[a] = 5000000 + (uint64_t)a * 1000;
        ts_add_followers(c, authors[a].num, base[a], FOLLOWERS, 1);
    }

    static uint64_t posts[POSTS];
    for (int i = 0; i < POSTS; i++) {
        char text[32];
        snprintf(text, sizeof(text), "shared %d", i);
        posts[i] = ts_post(servers[i % 2].port, &authors[i % AUTHORS], text, NULL);
    }
    cr_assert(ts_wait_queue_empty(c, 60000), "the shared queue did not drain");

    double done[2];
    for (int s = 0; s < 2; s++) {
        done[s] = ts_metric(servers[s].port, "tidings_fanout_jobs_done_total");
        cr_assert_gt(done[s], 0, "process %d did no fan-out work (jobs_done_total 0)", s);
        cr_assert_eq(ts_metric(servers[s].port, "tidings_fanout_jobs_failed_total"), 0);
    }
    cr_log_info("jobs done: %.0f and %.0f", done[0], done[1]);
    cr_assert_geq(done[0] + done[1], POSTS, "fewer jobs done than posts made");

    /* Every post at every follower of its author, and each follower's timeline holds exactly
     * its author's posts: nothing lost, nothing doubled. */
    for (int i = 0; i < POSTS; i++) {
        int a = i % AUTHORS;
        size_t missing;
        size_t holding = fx_count_holding(c, posts[i], base[a], FOLLOWERS, &missing);
        cr_assert_eq(holding, (size_t)FOLLOWERS,
                     "post %d reached %zu of %d followers (first "
                     "missing: %zu)",
                     i, holding, FOLLOWERS, missing);
        cr_assert(ts_timeline_holds(c, authors[a].num, posts[i]));
    }
    for (int a = 0; a < AUTHORS; a++) {
        size_t exact = fx_count_card(c, base[a], FOLLOWERS, POSTS / AUTHORS);
        cr_assert_eq(exact, (size_t)FOLLOWERS,
                     "%zu of author %d's followers have exactly %d "
                     "entries",
                     exact, a, POSTS / AUTHORS);
    }

    /* The group saw two consumers, and neither holds unfinished work. */
    redisReply *r = ts_redis_cmd_ok(c, "XINFO CONSUMERS fanout:{0} engine");
    cr_assert(r->type == REDIS_REPLY_ARRAY);
    cr_assert_geq(r->elements, 2, "the group has %zu consumers", r->elements);
    freeReplyObject(r);
    ts_redis_close(c);
    for (int s = 0; s < 2; s++)
        ts_server_stop_clean(&servers[s], 20000);
}
