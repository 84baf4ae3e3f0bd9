/* tests/support/test_support.c -- the helpers that name and reach the fixture Redis and a
 * test's private one.
 *
 * Runs twice like the suites that use the helpers: on the single fixture redis-server
 * (test_support) and on the Redis Cluster (test_support_cluster). On the cluster it also
 * checks that the keys it writes are spread over the masters, so that the -MOVED path of
 * ts_redis_fixture_command is taken rather than assumed, and that a private cluster is one of
 * its own and goes away with its test, however the test ends.
 */
#include "tests/support/support.h"

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define KEYS 32

TestSuite(fixture, .timeout = 60);

/* The ports of a URL's seeds into ports (at most n); returns how many. */
static size_t seed_ports(const char *url, int *ports, size_t n)
{
    size_t k = 0;
    for (const char *p = url + 8; p && *p && k < n; k++) {
        cr_assert(strncmp(p, "127.0.0.1:", 10) == 0, "seed %zu of %s is not on loopback", k, url);
        ports[k] = atoi(p + 10);
        p = strchr(p, ',');
        if (p)
            p++;
    }
    return k;
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
        cr_assert(ts_redis_pings(port), "the fixture on port %d does not answer PING", port);
        return;
    }
    /* 3 masters with a replica each: six seeds, each a live node. */
    int ports[8];
    size_t nodes = seed_ports(url, ports, 8);
    for (size_t i = 0; i < nodes; i++)
        cr_assert(ts_redis_pings(ports[i]), "seed 127.0.0.1:%d of %s does not answer PING",
                  ports[i], url);
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
                  "GET %s answered type %d '%s', not '%s'", keys[i], r->type, r->str ? r->str : "",
                  want);
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

/* A pipeline goes to each key's node (ts_redis_node_for); commands follow -MOVED. */
Test(fixture, pipelines_and_commands_route_by_slot)
{
    redisContext *c = ts_redis_connect(ts_redis_port());
    char base_s[32]; /* a random author: ids no parallel run of this test uses */
    ts_unique(base_s, sizeof(base_s), "x");
    uint64_t author = 9000000000ULL + (uint64_t)ts_redis_key_slot(base_s) * 1000;
    uint64_t base = author + 1;
    ts_add_followers(c, author, base, 40, 1);
    cr_assert_eq(ts_redis_int(c, "ZCARD followers:{%llu}", (unsigned long long)author), 40);
    for (uint64_t u = base; u < base + 40; u += 2)
        cr_assert_eq(ts_redis_int(c, "ZADD tl:{%llu} 1 77", (unsigned long long)u), 1);
    size_t holding, missing, card;
    ts_count_timelines(c, 77, base, 40, 1, &holding, &missing, &card);
    cr_expect_eq(holding, 20, "timelines holding the post");
    cr_expect_eq(missing, 1, "the first timeline without it");
    cr_expect_eq(card, 20, "timelines of exactly one entry");
    cr_expect(ts_timeline_holds(c, base, 77) && !ts_timeline_holds(c, base + 1, 77));
    redisReply *r = ts_redis_cmd(c, "NOSUCHCOMMAND");
    cr_expect_eq(r->type, REDIS_REPLY_ERROR, "an error reply is returned, not asserted");
    freeReplyObject(r);
    for (uint64_t u = base; u < base + 40; u++)
        freeReplyObject(ts_redis_cmd_ok(c, "DEL tl:{%llu}", (unsigned long long)u));
    freeReplyObject(ts_redis_cmd_ok(c, "DEL followers:{%llu}", (unsigned long long)author));
    ts_redis_close(c);
}

Test(fixture, json_and_header_helpers_read_what_the_api_sends)
{
    cr_expect_eq(ts_id("123"), 123);
    cr_expect_eq(ts_id("12a"), 0);
    cr_expect_eq(ts_id("-1"), 0);
    cr_expect_eq(ts_id(""), 0);
    cr_expect_eq(ts_id(NULL), 0);
    json_t *j = json_pack("{s:s, s:I, s:s}", "id", "42", "n", (json_int_t)7, "s", "x");
    cr_expect_eq(ts_json_id(j, "id"), 42);
    cr_expect_eq(ts_json_id(j, "n"), 7, "an integer id");
    cr_expect_str_eq(ts_str(j, "s"), "x");
    cr_expect_str_eq(ts_str(j, "n"), "", "not a string");
    cr_expect_eq(ts_int(j, "n"), 7);
    cr_expect_eq(ts_int(j, "s"), -1, "not an integer");
    json_decref(j);
    char v[32];
    const char *head = "HTTP/1.1 200 OK\r\nX-One: a b \r\ncontent-type:\ttext/plain";
    cr_expect_str_eq(ts_head_value(head, "Content-Type", v, sizeof(v)), "text/plain");
    cr_expect_str_eq(ts_head_value(head, "x-one", v, sizeof(v)), "a b", "trimmed");
    cr_expect_null(ts_head_value(head, "X-Two", v, sizeof(v)));
}

Test(fixture, key_slot_is_the_clusters)
{
    /* The CRC16 check value, and hash tags as the cluster specification spells them out. */
    cr_assert_eq(ts_redis_key_slot("123456789"), 0x31C3);
    cr_assert_eq(ts_redis_key_slot("{user1000}.following"), ts_redis_key_slot("user1000"));
    cr_assert_eq(ts_redis_key_slot("foo{{bar}}zap"), ts_redis_key_slot("{bar"));
    cr_assert_eq(ts_redis_key_slot("foo{bar}{zap}"), ts_redis_key_slot("bar"));
    if (!ts_redis_fixture_is_cluster())
        return;
    for (int i = 0; i < KEYS; i++) {
        char key[48];
        ts_unique(key, sizeof(key), i % 2 ? "tl:{" : "slot");
        redisReply *r = ts_redis_fixture_command("CLUSTER KEYSLOT %s", key);
        cr_assert(r->type == REDIS_REPLY_INTEGER, "CLUSTER KEYSLOT %s", key);
        cr_assert_eq(ts_redis_key_slot(key), r->integer, "the slot of %s", key);
        freeReplyObject(r);
    }
}

Test(fixture, private_redis_is_like_the_fixture_and_its_own)
{
    ts_redis_t r = {0};
    ts_redis_start_like_fixture(&r);
    cr_assert_eq(r.cluster, ts_redis_fixture_is_cluster());
    int ports[8];
    size_t n = seed_ports(r.url, ports, 8);
    cr_assert_eq(n, r.cluster ? 3 : 1, "the private Redis' URL %s names %zu nodes", r.url, n);
    cr_assert_eq(ports[0], r.port, "the URL %s does not start with port %d", r.url, r.port);
    char fixture[256];
    ts_redis_fixture_url(fixture, sizeof(fixture));
    for (size_t i = 0; i < n; i++) {
        char node[32];
        snprintf(node, sizeof(node), ":%d", ports[i]);
        cr_assert(ts_redis_pings(ports[i]), "node %d of %s does not answer PING", ports[i], r.url);
        cr_assert(!strstr(fixture, node), "node %d is one of the fixture's (%s)", ports[i],
                  fixture);
    }
    if (r.cluster) {
        redisReply *info = ts_redis_command(r.url, "CLUSTER INFO");
        cr_assert(info->type == REDIS_REPLY_STRING);
        cr_assert(strstr(info->str, "cluster_state:ok") &&
                      strstr(info->str, "cluster_known_nodes:3\r") &&
                      strstr(info->str, "cluster_size:3\r"),
                  "not 3 masters alone in a cluster of their own: %s", info->str);
        freeReplyObject(info);
    }
    /* Keys land on every node and read back through ts_redis_command. */
    bool seen[8] = {false};
    for (int i = 0; i < KEYS; i++) {
        char key[48];
        ts_unique(key, sizeof(key), "ts_private");
        freeReplyObject(ts_redis_command(r.url, "SET %s v%d", key, i));
        redisReply *g = ts_redis_command(r.url, "GET %s", key);
        cr_assert(g->type == REDIS_REPLY_STRING && atoi(g->str + 1) == i, "GET %s", key);
        freeReplyObject(g);
        if (r.cluster) {
            redisReply *slots = ts_redis_command(r.url, "CLUSTER SLOTS");
            int slot = ts_redis_key_slot(key);
            for (size_t k = 0; k < slots->elements; k++) {
                redisReply *range = slots->element[k];
                if (slot >= range->element[0]->integer && slot <= range->element[1]->integer)
                    for (size_t p = 0; p < n; p++)
                        seen[p] |= range->element[2]->element[1]->integer == ports[p];
            }
            freeReplyObject(slots);
        }
    }
    for (size_t p = 0; r.cluster && p < n; p++)
        cr_assert(seen[p], "no key of %d landed on node %d", KEYS, ports[p]);
    char dir[64];
    snprintf(dir, sizeof(dir), "%s", r.dir);
    ts_redis_cleanup(&r);
    for (size_t i = 0; i < n; i++)
        cr_assert(!ts_redis_pings(ports[i]), "node %d still answers after ts_redis_cleanup",
                  ports[i]);
    struct stat st;
    cr_assert(stat(dir, &st) != 0, "%s is still there after ts_redis_cleanup", dir);
}

/* Whether a node answers after up to timeout_ms. */
static bool gone_within(int port, int timeout_ms)
{
    uint64_t deadline = ts_now_ms() + (uint64_t)timeout_ms;
    while (ts_redis_pings(port)) {
        if (ts_now_ms() > deadline)
            return false;
        ts_sleep_ms(50);
    }
    return true;
}

/* A test killed by its timeout gets no chance to clean up: what it started goes anyway. */
Test(fixture, private_redis_dies_with_a_killed_test_process)
{
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t child = fork();
    cr_assert(child >= 0);
    if (child == 0) {
        close(fds[0]);
        ts_redis_t r = {0};
        ts_redis_start_like_fixture(&r);
        char line[512];
        int len = snprintf(line, sizeof(line), "%s %s\n", r.url, r.dir);
        if (write(fds[1], line, (size_t)len) != len)
            _exit(1);
        pause();
        _exit(0);
    }
    close(fds[1]);
    char line[512] = "";
    struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
    ssize_t got = poll(&pfd, 1, 60000) == 1 ? read(fds[0], line, sizeof(line) - 1) : -1;
    close(fds[0]);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    cr_assert_gt(got, 0, "the child started no private Redis");
    line[got] = '\0';
    char url[256], dir[64];
    cr_assert_eq(sscanf(line, "%255s %63s", url, dir), 2, "'%s'", line);
    int ports[8];
    size_t n = seed_ports(url, ports, 8);
    cr_assert_gt(n, 0);
    for (size_t i = 0; i < n; i++)
        cr_assert(gone_within(ports[i], 10000),
                  "node %d of %s still answers 10 s after its test process was killed", ports[i],
                  url);
    if (ts_redis_fixture_is_cluster()) {
        /* The keeper removes the cluster's directory once it has stopped the nodes. */
        struct stat st;
        uint64_t deadline = ts_now_ms() + 10000;
        while (stat(dir, &st) == 0 && ts_now_ms() < deadline)
            ts_sleep_ms(50);
        cr_assert(stat(dir, &st) != 0, "%s is still there after its test process was killed", dir);
    } else {
        char log[128];
        snprintf(log, sizeof(log), "%s/redis.log", dir);
        unlink(log);
        rmdir(dir);
    }
}

Test(fixture, private_redis_is_left_to_the_first_run)
{
    ts_redis_t r = {0};
    ts_redis_start(&r, 0); /* skips the test in the cluster run */
    cr_assert(!ts_redis_fixture_is_cluster(), "ts_redis_start did not skip in the cluster run");
    cr_assert(ts_redis_pings(r.port), "the private redis-server does not answer PING");
    ts_redis_cleanup(&r);
}
