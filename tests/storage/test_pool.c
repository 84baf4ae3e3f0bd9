/* tests/storage/test_pool.c -- storage_create's URL parsing, ping, readiness and prepare. */
#include "tests/storage/fixture.h"
#include "tests/support/support.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

TestSuite(pool, .timeout = 60);

Test(pool, rejects_bad_urls)
{
    static const char *const bad[] = {
        "",
        "http://127.0.0.1:6379",
        "redis://",
        "redis://:6379",
        "redis://h:0",
        "redis://h:65536",
        "redis://h:port",
        "redis://h/db",
        "redis://h:1/-1",
        "unix://relative",
        "127.0.0.1:6379",
        "redis://h:1x",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        storage_t *s = st_create(bad[i]);
        cr_expect_null(s, "storage_create accepted '%s'", bad[i]);
        storage_destroy(s);
    }
}

Test(pool, accepts_good_urls_without_connecting)
{
    static const char *const good[] = {
        "redis://127.0.0.1:1",    "redis://localhost",     "redis://h:6379/2",
        "redis://:secret@h:6379", "redis://user:pw@h:1/0", "unix:///tmp/no-such.sock",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        storage_t *s = st_create(good[i]);
        cr_expect_not_null(s, "storage_create refused '%s'", good[i]);
        if (s)
            cr_expect_not(storage_is_up(s), "'%s' is up before any command", good[i]);
        storage_destroy(s);
    }
}

Test(pool, ping_answers_and_marks_up)
{
    storage_t *s = st_create(NULL);
    cr_assert_not_null(s);
    cr_expect_not(storage_is_up(s));
    cr_expect_eq(storage_ping(s), 0);
    cr_expect(storage_is_up(s));
    storage_destroy(s);
}

Test(pool, prepare_creates_the_consumer_group_and_is_repeatable, .init = st_setup,
     .fini = st_teardown)
{
    cr_expect_eq(storage_prepare(st), 0);
    cr_expect_eq(storage_prepare(st), 0);
    redisReply *r = ts_redis_cmd(st_redis, "XINFO GROUPS fanout:{0}");
    bool found = false;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        redisReply *g = r->element[i];
        for (size_t j = 0; j + 1 < g->elements; j += 2)
            if (strcmp(g->element[j]->str, "name") == 0 &&
                strcmp(g->element[j + 1]->str, "engine") == 0)
                found = true;
    }
    cr_expect(found, "no consumer group 'engine' on fanout:{0}");
    freeReplyObject(r);
    /* Every shard's stream has its group, the last one too. */
    r = ts_redis_cmd(st_redis, "XINFO GROUPS fanout:{%d}", ST_SHARDS - 1);
    cr_expect(r->type == REDIS_REPLY_ARRAY && r->elements >= 1, "no group on fanout:{%d}",
              ST_SHARDS - 1);
    freeReplyObject(r);
}

Test(pool, unreachable_redis_fails_fast_with_enotconn)
{
    char url[64];
    ts_redis_url(url, sizeof(url), ts_free_port()); /* nothing listens there */
    storage_config_t cfg;
    storage_config_defaults(&cfg);
    cfg.url = url;
    cfg.command_timeout_ms = 2000;
    storage_t *s = storage_create(&cfg);
    cr_assert_not_null(s);
    for (int i = 0; i < 5; i++) {
        uint64_t t0 = ts_now_ms();
        cr_expect_eq(storage_ping(s), -ENOTCONN); /* nothing was sent */
        cr_expect_lt(ts_now_ms() - t0, 500, "a failing call took %llu ms",
                     (unsigned long long)(ts_now_ms() - t0));
    }
    cr_expect_not(storage_is_up(s));
    cr_expect_eq(storage_node_acquire(s), -ENOTCONN);
    cr_expect_eq(storage_id_next(s), 0, "an id without a leased node");
    storage_destroy(s);
}
