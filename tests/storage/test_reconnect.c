/* tests/storage/test_reconnect.c -- a Redis that crashes and comes back on the same port. */
#include "tests/storage/fixture.h"
#include "tests/support/support.h"

#include <criterion/criterion.h>
#include <errno.h>

static ts_redis_t own;

static void stop_own(void)
{
    ts_redis_cleanup(&own);
}

TestSuite(reconnect, .timeout = 60, .fini = stop_own);

static storage_t *connect_own(void)
{
    char url[64];
    ts_redis_url(url, sizeof(url), own.port);
    storage_config_t cfg;
    storage_config_defaults(&cfg);
    cfg.url = url;
    cfg.pool_size = 4;
    cfg.connect_timeout_ms = 1000;
    cfg.command_timeout_ms = 2000;
    storage_t *s = storage_create(&cfg);
    cr_assert_not_null(s);
    return s;
}

/* Waits up to timeout_ms for a ping to get through; returns how long it took, or -1. */
static long until_ping(storage_t *s, int timeout_ms)
{
    uint64_t t0 = ts_now_ms();
    while (ts_now_ms() - t0 < (uint64_t)timeout_ms) {
        if (storage_ping(s) == 0)
            return (long)(ts_now_ms() - t0);
        ts_sleep_ms(20);
    }
    return -1;
}

Test(reconnect, fails_fast_while_redis_is_down)
{
    ts_redis_start(&own, 0);
    storage_t *s = connect_own();
    cr_assert_eq(storage_ping(s), 0);
    cr_assert_eq(storage_node_acquire(s), 0);
    uint64_t id = storage_id_next(s);
    storage_user_t u;
    cr_assert_eq(storage_user_get(s, id, &u), -ENOENT);

    ts_redis_kill(&own);
    for (int i = 0; i < 20; i++) {
        uint64_t t0 = ts_now_ms();
        int rc = storage_user_get(s, id, &u);
        uint64_t took = ts_now_ms() - t0;
        /* The first meets the pooled connection Redis dropped: sent, so the outcome is
         * unknown to the caller; the rest are refused before sending. */
        cr_expect_eq(rc, i == 0 ? -ETIMEDOUT : -ENOTCONN, "call %d while redis is down returned %d",
                     i, rc);
        cr_expect_lt(took, 500, "call %d took %llu ms (command timeout 2000)", i,
                     (unsigned long long)took);
        cr_expect_not(storage_is_up(s), "storage_is_up after call %d with redis down", i);
        ts_sleep_ms(25);
    }
    storage_destroy(s);
}

Test(reconnect, recovers_after_redis_restarts_on_the_same_port)
{
    ts_redis_start(&own, 0);
    storage_t *s = connect_own();
    cr_assert_eq(storage_ping(s), 0);
    cr_assert_eq(storage_node_acquire(s), 0);
    uint64_t before = storage_reconnects(s);

    ts_redis_kill(&own);
    cr_expect_eq(storage_ping(s), -ETIMEDOUT); /* on the pooled connection Redis dropped */
    ts_sleep_ms(300);                          /* let the backoff grow a little */
    cr_expect_eq(storage_ping(s), -ENOTCONN);
    cr_expect_not(storage_is_up(s));

    ts_redis_start(&own, own.port);
    long took = until_ping(s, 5000);
    cr_assert_geq(took, 0, "no ping got through within 5 s of the restart");
    cr_expect(storage_is_up(s));
    cr_expect_gt(storage_reconnects(s), before, "the reconnect was not counted");

    /* Real work goes through again; the lease is renewed on the new server. */
    cr_expect_eq(storage_node_renew(s), 0);
    cr_expect_geq(storage_node_id(s), 0, "no node leased after the renewal");
    storage_user_t u;
    uint64_t id = storage_id_next(s);
    uint8_t hash[32] = {0};
    cr_expect_eq(storage_user_create(s, id, "back_again", "Back", hash, &u), 0);
    cr_expect_eq(storage_user_get(s, id, &u), 0);
    storage_destroy(s);
}
