/* tests/support/test_support.c -- the helpers that name and reach the fixture Redis.
 *
 * Runs twice like the suites that use the helpers: on the single fixture redis-server
 * (test_support) and on the Redis Cluster (test_support_cluster). On the cluster it also
 * checks that the keys it writes are spread over the masters, so that the -MOVED path of
 * ts_redis_fixture_command is taken rather than assumed.
 */
#include "tests/support/support.h"

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEYS 32

TestSuite(fixture, .timeout = 60);

/* Does 127.0.0.1:port answer PING with PONG? */
static bool pong(int port)
{
    struct timeval tv = {.tv_sec = 5, .tv_usec = 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    bool ok = false;
    if (c && !c->err) {
        redisReply *r = redisCommand(c, "PING");
        ok = r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
        if (r)
            freeReplyObject(r);
    }
    if (c)
        redisFree(c);
    return ok;
}

Test(fixture, url_names_every_node_that_answers)
{
    char url[256], first[64];
    ts_redis_fixture_url(url, sizeof(url));
    int port = ts_redis_port();
    snprintf(first, sizeof(first), "redis://127.0.0.1:%d", port);
    cr_assert(strncmp(url, first, strlen(first)) == 0, "the URL %s does not start with %s", url,
              first);
    if (!ts_redis_fixture_is_cluster()) {
        cr_assert_str_eq(url, first);
        cr_assert(pong(port), "the fixture on port %d does not answer PING", port);
        return;
    }
    /* 3 masters with a replica each: six seeds, each a live node. */
    size_t nodes = 0;
    for (char *p = url + 8; p && *p; nodes++) {
        cr_assert(strncmp(p, "127.0.0.1:", 10) == 0, "seed %zu of %s is not on loopback", nodes,
                  url);
        int node = atoi(p + 10);
        cr_assert(pong(node), "seed 127.0.0.1:%d of %s does not answer PING", node, url);
        p = strchr(p, ',');
        if (p)
            p++;
    }
    cr_assert_eq(nodes, 6, "the seed list %s names %zu nodes, not 6", url, nodes);
}

Test(fixture, command_reaches_the_node_of_every_key)
{
    char keys[KEYS][48];
    for (int i = 0; i < KEYS; i++) {
        ts_unique(keys[i], sizeof(keys[i]), "ts_fixture");
        redisReply *r = ts_redis_fixture_command("SET %s v%d EX 60", keys[i], i);
        cr_assert(r->type == REDIS_REPLY_STATUS && strcmp(r->str, "OK") == 0,
                  "SET %s answered type %d: %s", keys[i], r->type, r->str ? r->str : "");
        freeReplyObject(r);
    }
    for (int i = 0; i < KEYS; i++) {
        char want[16];
        snprintf(want, sizeof(want), "v%d", i);
        redisReply *r = ts_redis_fixture_command("GET %s", keys[i]);
        cr_assert(r->type == REDIS_REPLY_STRING && strcmp(r->str, want) == 0,
                  "GET %s answered type %d '%s', not '%s'", keys[i], r->type,
                  r->str ? r->str : "", want);
        freeReplyObject(r);
    }
    /* Asked directly, the first node redirects the keys it does not serve. */
    struct timeval tv = {.tv_sec = 5, .tv_usec = 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", ts_redis_port(), tv);
    cr_assert(c && !c->err, "connect to the fixture on port %d failed", ts_redis_port());
    int moved = 0;
    for (int i = 0; i < KEYS; i++) {
        redisReply *r = redisCommand(c, "GET %s", keys[i]);
        cr_assert(r, "GET %s: no reply", keys[i]);
        if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "MOVED ", 6) == 0)
            moved++;
        freeReplyObject(r);
    }
    redisFree(c);
    if (ts_redis_fixture_is_cluster())
        /* Each key is on the first of 3 masters with probability 1/3: none of 32 redirected
         * has probability (1/3)^32, all of them (2/3)^32. */
        cr_assert(moved > 0 && moved < KEYS, "%d of %d keys redirected by the first node", moved,
                  KEYS);
    else
        cr_assert_eq(moved, 0, "a single redis-server redirected %d keys", moved);
    for (int i = 0; i < KEYS; i++) {
        redisReply *r = ts_redis_fixture_command("DEL %s", keys[i]);
        cr_assert(r->type == REDIS_REPLY_INTEGER && r->integer == 1, "DEL %s", keys[i]);
        freeReplyObject(r);
    }
}

Test(fixture, private_redis_is_left_to_the_first_run)
{
    ts_redis_t r = {0};
    ts_redis_start(&r, 0); /* skips the test in the cluster run */
    cr_assert(!ts_redis_fixture_is_cluster(), "ts_redis_start did not skip in the cluster run");
    cr_assert(pong(r.port), "the private redis-server does not answer PING");
    ts_redis_cleanup(&r);
}
