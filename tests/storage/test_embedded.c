/* tests/storage/test_embedded.c -- the embedded redis-server: starts, serves, keeps its data. */
#include "tests/storage/fixture.h"
#include "tests/support/support.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char dir[64];

static void make_dir(void)
{
    snprintf(dir, sizeof(dir), "/tmp/tidings-test-embedded-XXXXXX");
    cr_assert(mkdtemp(dir));
}

static void remove_dir(void)
{
    char *argv[] = {"rm", "-rf", dir, NULL};
    ts_proc_wait(ts_proc_spawn(argv, NULL), 10000);
}

TestSuite(embedded, .init = make_dir, .fini = remove_dir, .timeout = 60);

static const char *server(void)
{
    const char *bin = getenv("TIDINGS_REDIS_SERVER");
    return bin && *bin ? bin : "redis-server";
}

static storage_t *connect_to(const char *url)
{
    storage_t *s = st_create(url);
    cr_assert_not_null(s, "storage_create(%s)", url);
    return s;
}

Test(embedded, serves_on_a_unix_socket_and_keeps_data_across_restarts)
{
    const char *url = NULL;
    storage_embedded_t *e = storage_embedded_start(dir, server(), 0, &url);
    cr_assert_not_null(e, "embedded redis did not start: %s", strerror(errno));
    cr_expect_eq(strncmp(url, "unix://", 7), 0, "url %s", url);
    storage_t *s = connect_to(url);
    cr_assert_eq(storage_ping(s), 0);
    cr_assert_eq(storage_node_acquire(s), 0);
    uint64_t id = storage_id_next(s);
    uint8_t hash[32] = {3};
    storage_user_t u;
    cr_assert_eq(storage_user_create(s, id, "kept", "Kept", hash, &u), 0);
    storage_node_release(s);
    storage_destroy(s);
    storage_embedded_stop(e);

    e = storage_embedded_start(dir, server(), 0, &url);
    cr_assert_not_null(e, "embedded redis did not restart: %s", strerror(errno));
    s = connect_to(url);
    cr_expect_eq(storage_user_get(s, id, &u), 0, "the user did not survive a restart");
    cr_expect_str_eq(u.handle, "kept");
    storage_destroy(s);
    storage_embedded_stop(e);
}

Test(embedded, a_missing_binary_fails_to_start)
{
    const char *url = NULL;
    storage_embedded_t *e = storage_embedded_start(dir, "/nonexistent/redis-server", 0, &url);
    cr_expect_null(e);
    storage_embedded_stop(e);
}

/* Full, the embedded Redis refuses writes (noeviction: nothing silently lost), and readiness's
 * write probe says so. */
Test(embedded, has_a_memory_cap_and_refuses_writes_beyond_it)
{
    const char *url = NULL;
    storage_embedded_t *e = storage_embedded_start(dir, server(), 16, &url);
    cr_assert_not_null(e, "embedded redis did not start: %s", strerror(errno));
    redisContext *c = redisConnectUnix(url + strlen("unix://"));
    cr_assert(c && !c->err);
    redisReply *r = redisCommand(c, "CONFIG GET maxmemory*");
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY);
    int seen = 0;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        if (strcmp(r->element[i]->str, "maxmemory") == 0 && ++seen)
            cr_expect_str_eq(r->element[i + 1]->str, "16777216");
        if (strcmp(r->element[i]->str, "maxmemory-policy") == 0 && ++seen)
            cr_expect_str_eq(r->element[i + 1]->str, "noeviction");
    }
    cr_expect_eq(seen, 2, "CONFIG GET answered maxmemory and maxmemory-policy");
    freeReplyObject(r);
    storage_t *s = connect_to(url);
    cr_expect_eq(storage_write_probe(s), 0, "an empty Redis takes writes");
    /* Small values, so that Redis is past its cap for every write, not only for a large one. */
    static char chunk[4096]; /* half the probe's size */
    memset(chunk, 'x', sizeof(chunk));
    bool refused = false;
    for (int i = 0; i < 16384 && !refused; i++) { /* 64 MiB at most, four times the cap */
        r = redisCommand(c, "SET fill:%d %b", i, chunk, sizeof(chunk));
        refused = r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "OOM", 3) == 0;
        freeReplyObject(r);
    }
    cr_expect(refused, "a full Redis refused a write");
    cr_expect_eq(storage_write_probe(s), -ENOSPC, "the write probe sees the refusal");
    storage_destroy(s);
    redisFree(c);
    storage_embedded_stop(e);
}
