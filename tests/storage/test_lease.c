/* tests/storage/test_lease.c -- a process mints ids only while its node lease is known to be its
 * own. Redis can lose its data (a restart without persistence, a failover to a replica that
 * had not caught up); another process may then take the same node at once. So ids stop the
 * moment the client reconnects, until the lease is confirmed again, and a lease found taken
 * is dropped at once for another node. */
#include "tests/storage/fixture.h"
#include "tests/support/support.h"

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>

static ts_redis_t own;

static void stop_own(void)
{
    ts_redis_cleanup(&own);
}

TestSuite(lease, .timeout = 60, .fini = stop_own);

static storage_t *connect_own(void)
{
    char url[64];
    ts_redis_url(url, sizeof(url), own.port);
    storage_config_t cfg;
    storage_config_defaults(&cfg);
    cfg.url = url;
    storage_t *s = storage_create(&cfg);
    cr_assert_not_null(s);
    return s;
}

Test(lease, no_ids_after_redis_lost_its_data_until_the_lease_is_confirmed)
{
    ts_redis_start(&own, 0);
    storage_t *s = connect_own();
    cr_assert_eq(storage_node_acquire(s), 0);
    int node = storage_node_id(s);
    cr_assert_gt(storage_id_next(s), 0);

    ts_redis_kill(&own); /* no persistence: it comes back empty */
    ts_redis_start(&own, own.port);
    /* Another process takes the node the moment it is free. */
    char url[64];
    ts_redis_url(url, sizeof(url), own.port);
    freeReplyObject(ts_redis_command(url, "SET node:{%d} someone-else PX 30000", node));
    uint64_t reconnects = storage_reconnects(s);
    cr_expect_eq(storage_ping(s), 0, "a fresh connection replaces the one that died");
    cr_expect_gt(storage_reconnects(s), reconnects);
    cr_expect_eq(storage_id_next(s), 0, "an id minted now could clash with the other process");
    cr_expect_eq(storage_node_id(s), -1);

    cr_assert_eq(storage_node_renew(s), 0);
    cr_expect_neq(storage_node_id(s), node, "the taken node is left to its new holder");
    cr_expect_geq(storage_node_id(s), 0);
    cr_expect_gt(storage_id_next(s), 0, "ids again once a lease is ours");
    storage_node_release(s);
    storage_destroy(s);
}

Test(lease, a_lease_found_taken_is_dropped_at_renewal)
{
    ts_redis_start(&own, 0);
    storage_t *s = connect_own();
    cr_assert_eq(storage_node_acquire(s), 0);
    int node = storage_node_id(s);
    char url[64];
    ts_redis_url(url, sizeof(url), own.port);
    freeReplyObject(ts_redis_command(url, "SET node:{%d} someone-else PX 30000", node));
    cr_assert_eq(storage_node_renew(s), 0);
    cr_expect_neq(storage_node_id(s), node);
    redisReply *r = ts_redis_command(url, "GET node:{%d}", node);
    cr_expect_str_eq(r->str, "someone-else", "the renewal did not extend another's lease");
    freeReplyObject(r);
    storage_node_release(s);
    storage_destroy(s);
}

/* A reconnect to a Redis that kept its data (its connections were cut, or it restarted from
 * its AOF): the next id confirms the lease itself, one round trip, instead of being refused
 * until the loop's next renewal; a request that found the dead connection got a 503 then. */
Test(lease, the_next_id_after_a_reconnect_confirms_a_lease_still_ours)
{
    ts_redis_start(&own, 0);
    storage_t *s = connect_own();
    cr_assert_eq(storage_node_acquire(s), 0);
    int node = storage_node_id(s);
    char url[64];
    ts_redis_url(url, sizeof(url), own.port);
    freeReplyObject(ts_redis_command(url, "CLIENT KILL TYPE normal SKIPME yes"));
    uint64_t reconnects = storage_reconnects(s);
    cr_expect_eq(storage_ping(s), 0, "a fresh connection replaces the one cut");
    cr_expect_gt(storage_reconnects(s), reconnects);
    cr_expect_eq(storage_node_id(s), -1, "unverified since the reconnect");
    cr_expect_gt(storage_id_next(s), 0, "the lease is still ours: the id confirms it");
    cr_expect_eq(storage_node_id(s), node);
    storage_node_release(s);
    storage_destroy(s);
}
