/* tests/storage/test_resharding.c -- a slot moves between masters while storage uses it:
 * ASK during the migration, MOVED after it, and no request fails.
 *
 * A private 3-master cluster (ts_redis_start_cluster); storage_t is given one
 * node only, so it must learn the rest from CLUSTER SLOTS. The migration is done by hand,
 * the way redis-cli --cluster reshard does it: IMPORTING on the target, MIGRATING on the
 * source, MIGRATE of the keys, then SETSLOT … NODE on every master.
 */
#include "storage/redis/slots.h"
#include "storage/storage.h"
#include "tests/storage/fixture.h"
#include "tests/support/support.h"

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MASTERS 3

static ts_redis_t cluster;
static int *ports = cluster.ports; /* masters first */

static void cluster_up(void)
{
    ts_redis_start_cluster(&cluster, MASTERS, 0);
}

static void cluster_down(void)
{
    ts_redis_cleanup(&cluster);
}

TestSuite(resharding, .init = cluster_up, .fini = cluster_down, .timeout = 60);

static redisReply *cmd_on(int port, const char *fmt, ...)
{
    redisContext *c = redisConnect("127.0.0.1", port);
    cr_assert(c && !c->err, "cannot connect to node %d", port);
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    cr_assert(r, "no reply from node %d", port);
    return r;
}

static void ok_on(int port, const char *fmt, const char *a, const char *b)
{
    redisReply *r = cmd_on(port, fmt, a, b);
    cr_assert(r->type != REDIS_REPLY_ERROR, "node %d: %s", port, r->str);
    freeReplyObject(r);
}

static void node_id(int port, char id[64])
{
    redisReply *r = cmd_on(port, "CLUSTER MYID");
    cr_assert_eq(r->type, REDIS_REPLY_STRING);
    snprintf(id, 64, "%s", r->str);
    freeReplyObject(r);
}

/* The master (index into ports) that serves slot. */
static int owner_of(int slot)
{
    redisReply *r = cmd_on(ports[0], "CLUSTER SLOTS");
    int owner = -1;
    for (size_t i = 0; i < r->elements; i++) {
        redisReply *range = r->element[i];
        if (slot >= range->element[0]->integer && slot <= range->element[1]->integer)
            for (int k = 0; k < MASTERS; k++)
                if (range->element[2]->element[1]->integer == ports[k])
                    owner = k;
    }
    freeReplyObject(r);
    cr_assert_geq(owner, 0, "no master serves slot %d", slot);
    return owner;
}

static int post_slot(uint64_t id)
{
    char key[40];
    int len = snprintf(key, sizeof(key), "post:{%llu}", (unsigned long long)id);
    return storage_key_slot(key, (size_t)len);
}

static void create_post(storage_t *s, uint64_t id, uint64_t author, const char *text)
{
    storage_post_t p = {.id = id, .author = author, .text = (char *)text};
    cr_assert_eq(storage_post_create(s, &p, &(bool){false}), 0, "post %llu not created",
                 (unsigned long long)id);
}

static void expect_post(storage_t *s, uint64_t id, const char *text)
{
    storage_post_t got;
    cr_assert_eq(storage_post_get(s, id, &got), 0, "post %llu not read", (unsigned long long)id);
    cr_expect_str_eq(got.text, text);
    storage_post_clear(&got);
}

Test(resharding, a_slot_moves_under_reads_and_writes)
{
    char url[64];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", ports[0]); /* one seed: learn the rest */
    storage_t *s = st_create(url);
    cr_assert(s);
    cr_assert_eq(storage_prepare(s), 0, "the queue shards' groups");

    uint64_t author = 1000003, p = 900000001, q = p + 1;
    int slot = post_slot(p);
    while (post_slot(q) != slot) /* a second post in the same slot */
        q++;
    create_post(s, p, author, "before the move");
    storage_topology_stats_t before;
    storage_topology_stats(s, &before);
    cr_expect(before.cluster, "a cluster, learnt from one seed");
    cr_expect_eq(before.masters, MASTERS);

    int from = owner_of(slot), to = (from + 1) % MASTERS;
    char from_id[64], to_id[64], slotbuf[16];
    node_id(ports[from], from_id);
    node_id(ports[to], to_id);
    snprintf(slotbuf, sizeof(slotbuf), "%d", slot);
    ok_on(ports[to], "CLUSTER SETSLOT %s IMPORTING %s", slotbuf, from_id);
    ok_on(ports[from], "CLUSTER SETSLOT %s MIGRATING %s", slotbuf, to_id);

    /* Mid-migration: the source still has p; q is new, so the source says ASK. */
    expect_post(s, p, "before the move");
    create_post(s, q, author, "written while the slot moves");
    expect_post(s, q, "written while the slot moves");
    storage_topology_stats_t mid;
    storage_topology_stats(s, &mid);
    cr_expect_gt(mid.redirects, before.redirects, "q went to the target through ASK");
    cr_expect_eq(mid.masters, MASTERS, "a migrating slot is no new master");

    /* p's keys move: now the source answers ASK for p too. */
    char key[40];
    snprintf(key, sizeof(key), "post:{%llu}", (unsigned long long)p);
    redisReply *r = cmd_on(ports[from], "MIGRATE 127.0.0.1 %d %s 0 5000", ports[to], key);
    cr_assert(r->type != REDIS_REPLY_ERROR, "MIGRATE: %s", r->str);
    freeReplyObject(r);
    expect_post(s, p, "before the move");

    /* The move ends: every master learns the new owner; storage's map is now stale. */
    for (int i = 0; i < MASTERS; i++)
        ok_on(ports[i], "CLUSTER SETSLOT %s NODE %s", slotbuf, to_id);
    cr_assert_eq(owner_of(slot), to, "slot %d did not move to master %d", slot, to);
    expect_post(s, p, "before the move");
    expect_post(s, q, "written while the slot moves");
    storage_topology_stats_t after;
    storage_topology_stats(s, &after);
    cr_expect_gt(after.redirects, mid.redirects, "the stale map met MOVED");

    /* The map is right again: no more redirects. */
    expect_post(s, p, "before the move");
    storage_topology_stats_t settled;
    storage_topology_stats(s, &settled);
    cr_expect_eq(settled.redirects, after.redirects, "MOVED updated the map");
    storage_destroy(s);
}

Test(resharding, a_dead_first_seed_is_skipped)
{
    char url[128];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d,127.0.0.1:%d", ts_free_port(), ports[1]);
    storage_t *s = st_create(url);
    cr_assert(s);
    create_post(s, 900000101, 1000003, "through the second seed");
    expect_post(s, 900000101, "through the second seed");
    storage_topology_stats_t stats;
    storage_topology_stats(s, &stats);
    cr_expect(stats.cluster);
    cr_expect_eq(stats.masters, MASTERS, "every master learnt from the live seed");
    storage_destroy(s);
}
