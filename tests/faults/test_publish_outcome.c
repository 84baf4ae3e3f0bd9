/* tests/faults/test_publish_outcome.c -- a post answered 503 stands nowhere, and one answered
 * 202 stands once, when Redis stops (SIGSTOP) while the publish is in flight. A stopped Redis
 * keeps the publish's commands in its socket and runs them when it resumes, after the server
 * gave up waiting: before, such a post was answered 503 and then reached every follower (the
 * chaos suite saw it on 2,101 timelines and streams). Pauses shorter than the server's 2 s
 * command timeout are answered normally; longer ones take the server's settle path. */
#include "tests/support/support.h"

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

TestSuite(publish_outcome, .timeout = 240);

enum { ROUNDS = 5 };
static const int pause_ms[ROUNDS] = {500, 2500, 4500, 5000, 6500};

typedef struct attempt_s {
    int port;
    const char *token;
    char text[64];
    int status;
    bool problem, retry_after;
} attempt_t;

static void *publish(void *arg)
{
    attempt_t *a = arg;
    ts_resp_t r;
    if (ts_post_raw(a->port, a->token, a->text, 30000, &r) == 0) {
        a->status = r.status;
        char v[96];
        a->problem = ts_resp_header(&r, "Content-Type", v, sizeof(v)) &&
                     strncmp(v, "application/problem+json", 24) == 0;
        a->retry_after = ts_resp_header(&r, "Retry-After", v, sizeof(v)) != NULL;
    }
    ts_resp_free(&r);
    return NULL;
}

/* How many items of list have text. */
static size_t occurrences(json_t *list, const char *text)
{
    size_t n = 0, i;
    json_t *item;
    json_array_foreach(list, i, item)
    {
        json_t *post = json_object_get(item, "post");
        const char *t = ts_str(post ? post : item, "text");
        n += t && strcmp(t, text) == 0;
    }
    return n;
}

Test(publish_outcome, a_503_leaves_no_post_and_a_202_leaves_one_across_redis_pauses)
{
    ts_redis_t redis;
    memset(&redis, 0, sizeof(redis));
    ts_redis_start(&redis, 0); /* skips the cluster run: it stops the one redis-server */
    ts_server_t s;
    ts_server_start(&s, redis.url, NULL, true);
    ts_user_t ana, fan;
    ts_register(s.port, "pauser", &ana);
    ts_register(s.port, "pfan", &fan);
    ts_follow(s.port, &fan, &ana);

    attempt_t at[ROUNDS];
    for (int k = 0; k < ROUNDS; k++) {
        at[k] = (attempt_t){.port = s.port, .token = ana.token};
        snprintf(at[k].text, sizeof(at[k].text), "paused %d ms", pause_ms[k]);
        cr_assert_eq(kill(redis.pid, SIGSTOP), 0);
        pthread_t t;
        cr_assert_eq(pthread_create(&t, NULL, publish, &at[k]), 0);
        ts_sleep_ms(pause_ms[k]);
        cr_assert_eq(kill(redis.pid, SIGCONT), 0);
        pthread_join(t, NULL);
        cr_assert(at[k].status == 202 || at[k].status == 503,
                  "a publish through a %d ms pause was answered %d", pause_ms[k], at[k].status);
        if (at[k].status == 503)
            cr_expect(at[k].problem && at[k].retry_after,
                      "a 503 is a problem with Retry-After (%d ms pause)", pause_ms[k]);
        ts_sleep_ms(300); /* the server's connections find Redis again */
    }
    cr_expect_eq(at[0].status, 202, "a pause shorter than the command timeout is waited out");

    redisContext *c = ts_redis_connect(redis.port);
    cr_assert(ts_wait_queue_empty(c, 30000), "the fan-out jobs ran");
    char path[64];
    snprintf(path, sizeof(path), "/v1/users/%s/posts", ana.id);
    json_t *posts = ts_list(s.port, &ana, path, NULL, 50);
    json_t *timeline = ts_list(s.port, &fan, "/v1/timeline", NULL, 50);
    size_t refused = 0;
    for (int k = 0; k < ROUNDS; k++) {
        size_t want = at[k].status == 202 ? 1 : 0;
        refused += !want;
        cr_expect_eq(occurrences(posts, at[k].text), want,
                     "'%s' answered %d: %zu times in the author's posts", at[k].text, at[k].status,
                     occurrences(posts, at[k].text));
        cr_expect_eq(occurrences(timeline, at[k].text), want,
                     "'%s' answered %d: %zu times in the follower's timeline", at[k].text,
                     at[k].status, occurrences(timeline, at[k].text));
    }
    cr_log_info("%zu of %d publishes answered 503", refused, ROUNDS);
    cr_expect_geq(ts_metric(s.port, "tidings_publish_unanswered_total{outcome=\"published\"}") +
                      ts_metric(s.port, "tidings_publish_unanswered_total{outcome=\"abandoned\"}"),
                  1, "a pause past the command timeout went through the settle path");
    json_decref(posts);
    json_decref(timeline);
    ts_redis_close(c);
    ts_server_stop(&s, 10000);
    ts_redis_cleanup(&redis);
}
