/* tests/faults/test_transient.c -- a fan-out that meets a Redis refusing commands for a while
 * (here BUSY: a script that will not end, killed after a second and a half) keeps its job:
 * the engine retries it in its own process, so no other process claims it and its delivery
 * count stays as it was, and every follower gets the post once Redis answers again. Before,
 * the failed attempt was dropped, claimed after --claim-idle-ms and counted towards
 * dead-lettering, so an outage of a few claim periods dead-lettered good jobs. */
#include "tests/support/support.h"

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <string.h>

TestSuite(transient, .timeout = 180);

enum { FOLLOWERS = 100000 };
#define BASE 9100000ull

Test(transient, a_fanout_rides_out_a_busy_redis_in_its_own_process)
{
    ts_redis_t redis;
    memset(&redis, 0, sizeof(redis));
    ts_redis_start(&redis, 0); /* skips the cluster run: the script blocks one node */
    /* clang-format off */
    const char *extra[] = {"--claim-idle-ms", "500", "--fanout-in-flight", "2000",
                           "--celebrity-threshold", "1000000", NULL};
    /* clang-format on */
    ts_server_t s;
    ts_server_start(&s, redis.url, extra, true);
    ts_user_t ana;
    ts_register(s.port, "busy", &ana);
    redisContext *c = ts_redis_connect(redis.port);
    ts_add_followers(c, ana.num, BASE, FOLLOWERS, 1);
    freeReplyObject(ts_redis_cmd_ok(c, "CONFIG SET busy-reply-threshold 20"));
    uint64_t post = ts_post(s.port, &ana, "through a busy redis", NULL);
    uint64_t deadline = ts_now_ms() + 20000;
    while (!ts_timeline_holds(c, BASE, post) && ts_now_ms() < deadline)
        ts_sleep_ms(5);
    cr_assert(ts_timeline_holds(c, BASE, post), "the fan-out never started");

    char port[16];
    snprintf(port, sizeof(port), "%d", redis.port);
    char *busy[] = {"redis-cli", "-p", port, "EVAL", "while true do end", "0", NULL};
    pid_t script = ts_proc_spawn(busy, "/dev/null");
    ts_sleep_ms(1500); /* three claim periods */
    freeReplyObject(ts_redis_command(redis.url, "SCRIPT KILL"));
    ts_proc_wait(script, 5000);

    size_t holding = 0;
    deadline = ts_now_ms() + 60000;
    do {
        ts_count_timelines(c, post, BASE, FOLLOWERS, 0, &holding, NULL, NULL);
    } while (holding < FOLLOWERS && ts_now_ms() < deadline && (ts_sleep_ms(100), true));
    cr_expect_eq(holding, (size_t)FOLLOWERS, "every follower has the post");
    cr_expect_geq(ts_metric(s.port, "tidings_fanout_jobs_retried_total"), 1,
                  "the job met the refusals and retried");
    cr_expect_eq(ts_metric(s.port, "tidings_fanout_jobs_claimed_total"), 0,
                 "no one had to claim the job");
    cr_expect_eq(ts_metric(s.port, "tidings_fanout_jobs_dead_lettered_total"), 0);
    long long length, pending, dead;
    cr_expect(ts_wait_queue_empty(c, 10000), "the job was acknowledged");
    ts_queue(c, &length, &pending, &dead);
    cr_expect_eq(dead, 0);
    ts_redis_close(c);
    ts_server_stop(&s, 10000);
    ts_redis_cleanup(&redis);
}
