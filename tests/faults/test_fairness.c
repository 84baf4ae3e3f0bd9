/* tests/faults/test_fairness.c -- one author's burst does not hold up another author's post on
 * the same queue shard. An author's posts run one at a time (their followers' streams get
 * them in order), so a burst is mostly jobs waiting for their turn; those used to take every
 * job slot (63 of 64 seen), and a post by someone else on that shard waited seconds for the
 * burst to drain. Queued with the engine off, then worked by a fresh engine: the other
 * author's post must overtake nearly the whole burst. */
#include "tests/support/support.h"

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <string.h>

TestSuite(fairness, .timeout = 180);

#define BASE 5000000ull
enum { BURST = 300, SHARDS = 4, FOLLOWERS = 5000 }; /* under the celebrity threshold */

Test(fairness, another_authors_post_overtakes_a_burst)
{
    ts_redis_t redis;
    memset(&redis, 0, sizeof(redis));
    ts_redis_start_like_fixture(&redis);
    redisContext *c = ts_redis_connect(redis.port);
    /* The follows are worked first (a follow job copies the followee's recent posts into the
     * follower's timeline, which would tell nothing here); then the queue waits. */
    ts_server_t quiet, engine;
    ts_server_start(&engine, redis.url, NULL, true);
    ts_user_t ana, bob, fan;
    ts_register(engine.port, "burst", &ana);
    do /* bob's jobs share ana's queue shard */
        ts_register(engine.port, "other", &bob);
    while (bob.num % SHARDS != ana.num % SHARDS);
    ts_register(engine.port, "fan", &fan);
    ts_follow(engine.port, &fan, &bob);
    ts_add_followers(c, ana.num, BASE, FOLLOWERS, 1); /* each of her jobs takes a while */
    cr_assert(ts_wait_queue_empty(c, 10000));
    ts_server_stop(&engine, 5000);

    ts_server_start(&quiet, redis.url, (const char *const[]){"--engine", "off", NULL}, true);
    for (int i = 0; i < BURST; i++)
        ts_post(quiet.port, &ana, "one of many", NULL);
    uint64_t late = ts_post(quiet.port, &bob, "queued after the burst", NULL);
    ts_server_start(&engine, redis.url, NULL, false); /* watched from its first moment */
    uint64_t deadline = ts_now_ms() + 30000;
    while (!ts_timeline_holds(c, fan.num, late) && ts_now_ms() < deadline)
        ts_sleep_ms(2);
    cr_assert(ts_timeline_holds(c, fan.num, late), "bob's post never arrived");
    /* Her last follower by edge (the walk's last) counts her posts fully delivered. */
    long long burst_done =
        ts_redis_int(c, "ZCARD tl:{%llu}", (unsigned long long)(BASE + FOLLOWERS - 1));
    cr_expect_lt(burst_done, BURST / 4, "bob's post waited for %lld of ana's %d posts", burst_done,
                 BURST);
    ts_redis_close(c);
    ts_server_kill(&engine); /* the rest of the burst is not this test's */
    ts_server_stop(&quiet, 5000);
    ts_redis_cleanup(&redis);
}
