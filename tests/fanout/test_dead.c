/* tests/fanout/test_dead.c -- jobs that cannot succeed end in the dead-letter stream
 * fanout:dead after a bounded number of attempts, and are not retried after that.
 */
#include "tests/fanout/fx.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(dead, .timeout = 120);

static ts_redis_t redis;
static ts_server_t server;

/* The dead letter for stream entry id, as "field=value " pairs into buf; false when none. */
static bool dead_letter_for(redisContext *c, const char *entry, char *buf, size_t size)
{
    redisReply *r = ts_redis_cmd_ok(c, "XRANGE fanout:dead - +");
    bool found = false;
    for (size_t i = 0; !found && i < r->elements; i++) {
        const redisReply *fields = r->element[i]->element[1];
        bool match = false;
        for (size_t k = 0; k + 1 < fields->elements; k += 2)
            match |= strcmp(fields->element[k]->str, "entry") == 0 &&
                     strcmp(fields->element[k + 1]->str, entry) == 0;
        if (match)
            fx_pairs(fields, buf, size);
        found = match;
    }
    freeReplyObject(r);
    return found;
}

static bool wait_dead_letter(redisContext *c, const char *entry, char *buf, size_t size,
                             int timeout_ms)
{
    uint64_t deadline = ts_now_ms() + (uint64_t)timeout_ms;
    while (!dead_letter_for(c, entry, buf, size)) {
        if (ts_now_ms() >= deadline)
            return false;
        ts_sleep_ms(20);
    }
    return true;
}

/* A field's value in a "field=value " list, into out. */
static const char *field(const char *pairs, const char *name, char *out, size_t size)
{
    char key[64];
    snprintf(key, sizeof(key), "%s=", name);
    const char *p = strstr(pairs, key);
    out[0] = '\0';
    if (p) {
        p += strlen(key);
        size_t n = strcspn(p, " ");
        snprintf(out, size, "%.*s", (int)(n < size ? n : size - 1), p);
    }
    return out;
}

static void xadd(redisContext *c, char id[64], const char *fmt)
{
    redisReply *r = ts_redis_cmd_ok(c, fmt);
    cr_assert(r->type == REDIS_REPLY_STRING);
    snprintf(id, 64, "%s", r->str);
    freeReplyObject(r);
}

Test(dead, malformed_jobs_are_dead_lettered_at_once)
{
    const char *extra[] = {"--claim-idle-ms", "200", NULL};
    fx_start(&redis, &server, extra);
    redisContext *c = ts_redis_connect(redis.port);
    char bogus[64], no_author[64], no_followee[64], buf[512], v[128];
    xadd(c, bogus, "XADD fanout:{0} * kind bogus");
    xadd(c, no_author, "XADD fanout:{0} * kind post post 12345");
    xadd(c, no_followee, "XADD fanout:{0} * kind follow follower 777");

    const char *entries[] = {bogus, no_author, no_followee};
    for (int i = 0; i < 3; i++) {
        cr_assert(wait_dead_letter(c, entries[i], buf, sizeof(buf), 20000),
                  "job %s was never dead-lettered", entries[i]);
        cr_assert(strncmp(field(buf, "reason", v, sizeof(v)), "malformed", 9) == 0,
                  "dead letter reason: %s", buf);
        cr_assert_str_eq(field(buf, "shard", v, sizeof(v)), "0", "the job's stream: %s", buf);
    }
    cr_assert(ts_wait_queue_empty(c, 10000), "malformed jobs still queued or pending");
    cr_assert_eq(ts_redis_int(c, "XLEN fanout:dead"), 3);

    /* The counter and gauge (sampled every 2 s) agree. */
    cr_assert_eq(ts_metric(server.port, "tidings_fanout_jobs_dead_lettered_total"), 3);
    uint64_t deadline = ts_now_ms() + 10000;
    while (ts_metric(server.port, "tidings_fanout_dead_letters") != 3 && ts_now_ms() < deadline)
        ts_sleep_ms(100);
    cr_assert_eq(ts_metric(server.port, "tidings_fanout_dead_letters"), 3);
    ts_redis_close(c);
    ts_server_stop_clean(&server, 20000);
}

/* A post job whose author's followers key is a string: every attempt fails with WRONGTYPE. */
Test(dead, a_job_that_keeps_failing_is_dead_lettered_after_its_attempts)
{
    const char *extra[] = {"--claim-idle-ms", "200", NULL};
    fx_start(&redis, &server, extra);
    redisContext *c = ts_redis_connect(redis.port);
    const unsigned long long author = 4242, post = 424242;
    freeReplyObject(ts_redis_cmd_ok(c, "SET followers:{%llu} not-a-sorted-set", author));
    freeReplyObject(ts_redis_cmd_ok(c, "HSET post:{%llu} author %llu text doomed", post, author));
    char entry[64], buf[512], v[128];
    xadd(c, entry, "XADD fanout:{0} * kind post post 424242 author 4242");

    cr_assert(wait_dead_letter(c, entry, buf, sizeof(buf), 30000),
              "the failing job was never dead-lettered (failed attempts so far: %.0f)",
              ts_metric(server.port, "tidings_fanout_jobs_failed_total"));
    cr_assert(strstr(buf, "reason=too many attempts"), "reason: %s", buf);
    cr_assert_str_eq(field(buf, "kind", v, sizeof(v)), "post");
    long long deliveries = strtoll(field(buf, "deliveries", v, sizeof(v)), NULL, 10);
    cr_assert_gt(deliveries, 1, "dead-lettered after %lld deliveries", deliveries);

    cr_assert_geq(ts_metric(server.port, "tidings_fanout_jobs_dead_lettered_total"), 1);
    double failed = ts_metric(server.port, "tidings_fanout_jobs_failed_total");
    cr_assert(failed >= 1 && failed < (double)deliveries,
              "%.0f failed attempts for %lld deliveries", failed, deliveries);

    /* Not retried forever: nothing pending, and the failure count stays put over many claim
     * periods (the claim timer runs every 100 ms here). */
    cr_assert(ts_wait_queue_empty(c, 10000), "the failing job is still queued or pending");
    ts_sleep_ms(1500);
    cr_assert_eq(ts_metric(server.port, "tidings_fanout_jobs_failed_total"), failed,
                 "the job was attempted again after it was dead-lettered");
    cr_assert_eq(ts_redis_int(c, "XLEN fanout:dead"), 1);
    ts_redis_close(c);
    ts_server_stop_clean(&server, 20000);
}
