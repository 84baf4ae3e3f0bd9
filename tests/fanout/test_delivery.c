/* tests/fanout/test_delivery.c -- GET /v1/posts/{id}/delivery follows a 10,000-follower post
 * from queued (no engine has it yet) through running to done, with the counts the fan-out
 * wrote, for the author only. */
#include "tests/support/support.h"

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <string.h>

TestSuite(delivery, .timeout = 120);

enum { FOLLOWERS = 10000 };
#define BASE 9300000ull

static json_t *delivery(int port, const ts_user_t *u, uint64_t post, int status)
{
    return ts_callf(port, "GET", u, NULL, status, "/v1/posts/%llu/delivery",
                    (unsigned long long)post);
}

Test(delivery, a_post_moves_from_queued_to_done_with_its_counts)
{
    ts_redis_t redis;
    memset(&redis, 0, sizeof(redis));
    ts_redis_start(&redis, 0); /* skips the cluster run: the followers are written raw */
    const char *no_engine[] = {"--engine", "off", NULL};
    ts_server_t api;
    ts_server_start(&api, redis.url, no_engine, true);
    ts_user_t ana, bob;
    ts_register(api.port, "dlv", &ana);
    ts_register(api.port, "dlw", &bob);
    redisContext *c = ts_redis_connect(redis.port);
    ts_add_followers(c, ana.num, BASE, FOLLOWERS, 1);
    char id[24];
    uint64_t post = ts_post(api.port, &ana, "to ten thousand", id);

    json_t *queued = delivery(api.port, &ana, post, 200);
    cr_expect_str_eq(ts_str(queued, "state"), "queued", "no engine runs yet");
    cr_expect(json_is_null(json_object_get(queued, "followers")));
    cr_expect(json_is_null(json_object_get(queued, "started_at")));
    cr_expect_str_eq(ts_str(queued, "post"), id);
    json_decref(queued);
    json_decref(delivery(api.port, &bob, post, 403));

    ts_server_t engine;
    ts_server_start(&engine, redis.url, NULL, true);
    const char *state = "queued";
    json_t *d = NULL;
    bool saw_progress = false;
    for (uint64_t until = ts_now_ms() + 60000; ts_now_ms() < until; ts_sleep_ms(2)) {
        json_decref(d);
        d = delivery(api.port, &ana, post, 200);
        state = ts_str(d, "state");
        if (strcmp(state, "running") == 0)
            saw_progress = true;
        if (strcmp(state, "done") == 0)
            break;
    }
    cr_assert_str_eq(state, "done");
    cr_expect_eq(json_integer_value(json_object_get(d, "followers")), FOLLOWERS + 0);
    cr_expect_eq(json_integer_value(json_object_get(d, "timelines_written")), FOLLOWERS + 0);
    cr_expect_str_eq(ts_str(d, "fanout"), "timelines");
    cr_expect(strcmp(ts_str(d, "started_at"), ts_str(d, "queued_at")) >= 0);
    cr_expect(strcmp(ts_str(d, "finished_at"), ts_str(d, "started_at")) >= 0);
    size_t holding = 0;
    ts_count_timelines(c, post, BASE, FOLLOWERS, 0, &holding, NULL, NULL);
    cr_expect_eq(holding, (size_t)FOLLOWERS, "done means every timeline holds it");
    cr_log_info("saw running: %d", saw_progress);
    json_decref(d);
    ts_redis_close(c);
    ts_server_stop(&engine, 10000);
    ts_server_stop(&api, 10000);
    ts_redis_cleanup(&redis);
}
