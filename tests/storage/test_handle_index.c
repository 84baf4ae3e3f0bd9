/* tests/storage/test_handle_index.c -- the handle index under storage_users_search: a new
 * user is in it, storage_handle_index_remove (account erasure's hook) takes it out, search
 * refuses what it cannot answer, and storage_redis_scan sees every handle key. */
#include "storage/redis/redis.h"
#include "storage/storage.h"
#include "tests/storage/fixture.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

TestSuite(handle_index, .init = st_setup, .fini = st_teardown, .timeout = 60);

/* How many users a search for prefix finds, as viewer 0 (nobody). */
static size_t found(const char *prefix, uint64_t *first)
{
    storage_user_t out[STORAGE_SEARCH_MAX];
    size_t n = 99;
    cr_assert_eq(storage_users_search(st, 0, prefix, STORAGE_SEARCH_MAX, out, &n), 0);
    if (first)
        *first = n ? out[0].id : 0;
    return n;
}

Test(handle_index, a_user_is_indexed_at_creation_and_removed_by_the_erasure_hook)
{
    storage_user_t u;
    uint64_t id = st_user(st, "HxR", &u);
    uint64_t first = 0;
    cr_expect_eq(found(u.handle, &first), 1);
    cr_expect_eq(first, id);
    cr_expect_eq(storage_handle_index_remove(st, u.handle, id), 0);
    cr_expect_eq(found(u.handle, NULL), 0, "removed, though the user still exists");
    cr_expect_eq(storage_handle_index_remove(st, u.handle, id), 0, "removing twice is fine");
    cr_expect_eq(storage_handle_index_remove(st, "", id), -EINVAL);
}

Test(handle_index, search_refuses_an_empty_prefix_and_limits_out_of_range)
{
    storage_user_t out[STORAGE_SEARCH_MAX + 1];
    size_t n;
    cr_expect_eq(storage_users_search(st, 0, "", 10, out, &n), -EINVAL);
    cr_expect_eq(storage_users_search(st, 0, "a", 0, out, &n), -EINVAL);
    cr_expect_eq(storage_users_search(st, 0, "a", STORAGE_SEARCH_MAX + 1, out, &n), -EINVAL);
    cr_expect_eq(n, 0);
}

static int count_keys(void *arg, const redisReply *keys)
{
    *(size_t *)arg += keys->elements;
    return 0;
}

static int stop_at_once(void *arg, const redisReply *keys)
{
    (void)arg;
    (void)keys;
    return -ECANCELED;
}

Test(handle_index, a_scan_visits_every_matching_key_and_stops_when_told)
{
    char tag[32], key[64], match[64];
    ts_unique(tag, sizeof(tag), "scan");
    for (int i = 0; i < 2500; i += 500) {
        /* 2,500 keys in 5 pipelines of 500 (more than one SCAN page). */
        for (int j = i; j < i + 500; j++) {
            snprintf(key, sizeof(key), "t:%s:%d", tag, j);
            redisAppendCommand(st_redis, "SET %s 1", key);
        }
        for (int j = i; j < i + 500; j++)
            freeReplyObject(ts_redis_get_reply(st_redis));
    }
    snprintf(match, sizeof(match), "t:%s:*", tag);
    char url[256];
    ts_redis_fixture_url(url, sizeof(url));
    storage_redis_config_t cfg = {
        .url = url, .pool_size = 1, .connect_timeout_ms = 1000, .command_timeout_ms = 2000};
    storage_redis_t *client = storage_redis_create(&cfg);
    cr_assert(client);
    size_t seen = 0;
    cr_expect_eq(storage_redis_scan(client, match, count_keys, &seen), 0);
    cr_expect_geq(seen, 2500, "SCAN may repeat a key, never miss one");
    cr_expect_leq(seen, 2600);
    cr_expect_eq(storage_redis_scan(client, match, stop_at_once, NULL), -ECANCELED);
    storage_redis_destroy(client);
}
