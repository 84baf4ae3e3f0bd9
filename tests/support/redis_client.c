/* tests/support/redis_client.c -- a raw Redis client that routes like a cluster client: commands
 * behind the server, bulk graphs written by pipelining, and the fan-out job queue.
 *
 * ts_redis_connect returns a plain hiredis connection and remembers it, with the connections to
 * the other nodes it opens later. A command is formatted once and sent to that connection; when
 * a node answers -MOVED <slot> <host>:<port>, the same bytes go to the node named (connected on
 * first use). A pipeline cannot follow redirections, so ts_redis_node_for maps a key to its node
 * from CLUSTER SLOTS, loaded on first use (a single redis-server answers an error there, and
 * every key stays on the one connection). No slot migrates during the tests, so -ASK is not
 * followed and the map never goes stale. Every failure to get a reply fails the test.
 */
#include "tests/support/support.h"

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CONNS 32
#define MAX_NODES 8
#define MAX_REDIRECTS 5
#define SLOTS 16384
#define BATCH 10000

/* A connection a test holds (c, what ts_redis_connect returned) and the nodes reached from it. */
typedef struct conn_s {
    redisContext *c;
    int n; /* nodes in use; nodes[0] is c */
    int ports[MAX_NODES];
    redisContext *nodes[MAX_NODES];
    unsigned char *slot_node; /* SLOTS node indexes, once loaded */
    bool single;              /* CLUSTER SLOTS said this is no cluster */
} conn_t;

static conn_t conns[MAX_CONNS];

static redisContext *connect_node(int port)
{
    struct timeval tv = {.tv_sec = 5, .tv_usec = 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    cr_assert(c && !c->err, "redis connect to 127.0.0.1:%d failed: %s", port,
              c ? c->errstr : "out of memory");
    redisSetTimeout(c, (struct timeval){.tv_sec = 30, .tv_usec = 0});
    return c;
}

redisContext *ts_redis_connect(int port)
{
    conn_t *k = NULL;
    for (int i = 0; i < MAX_CONNS && !k; i++)
        if (!conns[i].c)
            k = &conns[i];
    cr_assert(k, "too many redis connections for one test");
    k->c = k->nodes[0] = connect_node(port);
    k->ports[0] = port;
    k->n = 1;
    return k->c;
}

/* The remembered connection c is; NULL for one ts_redis_connect did not make. */
static conn_t *conn_of(const redisContext *c)
{
    for (int i = 0; i < MAX_CONNS; i++)
        if (conns[i].c == c)
            return &conns[i];
    return NULL;
}

void ts_redis_close(redisContext *c)
{
    conn_t *k = conn_of(c);
    if (!k) {
        redisFree(c);
        return;
    }
    for (int i = 0; i < k->n; i++)
        redisFree(k->nodes[i]);
    free(k->slot_node);
    memset(k, 0, sizeof(*k));
}

/* The index of the node on port, connecting to it if it is new. */
static int node_index(conn_t *k, int port)
{
    for (int i = 0; i < k->n; i++)
        if (k->ports[i] == port)
            return i;
    cr_assert(k->n < MAX_NODES, "more than %d cluster nodes", MAX_NODES);
    k->ports[k->n] = port;
    k->nodes[k->n] = connect_node(port);
    return k->n++;
}

/* Which master serves each slot, from CLUSTER SLOTS (every slot must be served). */
static void load_slots(conn_t *k)
{
    redisReply *r = redisCommand(k->c, "CLUSTER SLOTS");
    cr_assert(r, "CLUSTER SLOTS failed: %s", k->c->errstr);
    if (r->type == REDIS_REPLY_ERROR) { /* cluster support disabled */
        k->single = true;
        freeReplyObject(r);
        return;
    }
    k->slot_node = malloc(SLOTS);
    cr_assert(k->slot_node && r->type == REDIS_REPLY_ARRAY);
    memset(k->slot_node, 0xff, SLOTS);
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *range = r->element[i];
        cr_assert(range->type == REDIS_REPLY_ARRAY && range->elements >= 3 &&
                  range->element[2]->type == REDIS_REPLY_ARRAY && range->element[2]->elements >= 2);
        int node = node_index(k, (int)range->element[2]->element[1]->integer);
        for (long long s = range->element[0]->integer; s <= range->element[1]->integer; s++)
            if (s >= 0 && s < SLOTS)
                k->slot_node[s] = (unsigned char)node;
    }
    freeReplyObject(r);
    for (int s = 0; s < SLOTS; s++)
        cr_assert(k->slot_node[s] != 0xff, "slot %d is served by no node", s);
}

redisContext *ts_redis_node_for(redisContext *c, const char *key)
{
    conn_t *k = conn_of(c);
    if (k && !k->slot_node && !k->single)
        load_slots(k);
    if (!k || k->single)
        return c;
    return k->nodes[k->slot_node[ts_redis_key_slot(key)]];
}

redisReply *ts_redis_get_reply(redisContext *c)
{
    void *reply = NULL;
    cr_assert(redisGetReply(c, &reply) == REDIS_OK && reply, "no redis reply: %s", c->errstr);
    return reply;
}

/* Is r "-MOVED <slot> <host>:<port>"? Then *port is the node to ask. */
static bool moved(const redisReply *r, int *port)
{
    if (r->type != REDIS_REPLY_ERROR || strncmp(r->str, "MOVED ", 6) != 0)
        return false;
    const char *colon = strrchr(r->str, ':');
    *port = colon ? atoi(colon + 1) : 0;
    return *port > 0;
}

static redisReply *send_formatted(redisContext *c, const char *cmd, size_t len)
{
    cr_assert(redisAppendFormattedCommand(c, cmd, len) == REDIS_OK);
    return ts_redis_get_reply(c);
}

static redisReply *vcmd(redisContext *c, const char *fmt, va_list ap)
{
    char *cmd = NULL;
    int len = redisvFormatCommand(&cmd, fmt, ap);
    cr_assert(len > 0, "cannot format the redis command '%s'", fmt);
    conn_t *k = conn_of(c);
    redisReply *r = send_formatted(c, cmd, (size_t)len);
    int port;
    for (int hops = 0; k && hops < MAX_REDIRECTS && moved(r, &port); hops++) {
        freeReplyObject(r);
        r = send_formatted(k->nodes[node_index(k, port)], cmd, (size_t)len);
    }
    redisFreeCommand(cmd);
    return r;
}

redisReply *ts_redis_cmd(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = vcmd(c, fmt, ap);
    va_end(ap);
    return r;
}

redisReply *ts_redis_cmd_ok(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = vcmd(c, fmt, ap);
    va_end(ap);
    cr_assert(r->type != REDIS_REPLY_ERROR, "redis command '%s': %s", fmt, r->str);
    return r;
}

long long ts_redis_int(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = vcmd(c, fmt, ap);
    va_end(ap);
    cr_assert(r->type == REDIS_REPLY_INTEGER, "'%s' gave no integer: %s", fmt,
              r->type == REDIS_REPLY_ERROR ? r->str : "");
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

/* "redis://<host>:<port>" up to the first ',' or '/': the first seed's port. */
static int url_port(const char *url)
{
    int port = 0;
    cr_assert(strncmp(url, "redis://", 8) == 0 && sscanf(url + 8, "%*[^:,/]:%d", &port) == 1 &&
                  port > 0,
              "no redis://<host>:<port> at the start of '%s'", url);
    return port;
}

redisReply *ts_redis_command(const char *url, const char *fmt, ...)
{
    redisContext *c = ts_redis_connect(url_port(url));
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = vcmd(c, fmt, ap);
    va_end(ap);
    ts_redis_close(c);
    return r;
}

redisReply *ts_redis_fixture_command(const char *fmt, ...)
{
    redisContext *c = ts_redis_connect(ts_redis_port());
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = vcmd(c, fmt, ap);
    va_end(ap);
    ts_redis_close(c);
    return r;
}

/* CRC16-CCITT (XModem), as Redis Cluster hashes keys. */
static unsigned crc16(const char *buf, size_t len)
{
    unsigned crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (unsigned)(unsigned char)buf[i] << 8;
        for (int bit = 0; bit < 8; bit++)
            crc = (crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1) & 0xffff;
    }
    return crc;
}

int ts_redis_key_slot(const char *key)
{
    size_t len = strlen(key);
    const char *open = strchr(key, '{');
    const char *close = open ? strchr(open + 1, '}') : NULL;
    if (close && close > open + 1)
        return (int)(crc16(open + 1, (size_t)(close - open - 1)) % SLOTS);
    return (int)(crc16(key, len) % SLOTS);
}

/* ---- what the fan-out tests write and read in bulk ------------------------------------------- */

void ts_add_followers(redisContext *c, uint64_t author, uint64_t base, size_t n, uint64_t score0)
{
    enum { PER_CMD = 1000 };
    static char nums[2 * PER_CMD][24];
    const char *argv[2 + 2 * PER_CMD];
    char key[48];
    snprintf(key, sizeof(key), "followers:{%llu}", (unsigned long long)author);
    redisContext *to = ts_redis_node_for(c, key);
    size_t sent = 0;
    for (size_t i = 0; i < n; i += PER_CMD) {
        size_t m = n - i < PER_CMD ? n - i : PER_CMD;
        int argc = 0;
        argv[argc++] = "ZADD";
        argv[argc++] = key;
        for (size_t k = 0; k < m; k++) {
            snprintf(nums[2 * k], sizeof(nums[0]), "%llu", (unsigned long long)(score0 + i + k));
            snprintf(nums[2 * k + 1], sizeof(nums[0]), "%llu", (unsigned long long)(base + i + k));
            argv[argc++] = nums[2 * k];
            argv[argc++] = nums[2 * k + 1];
        }
        cr_assert(redisAppendCommandArgv(to, argc, argv, NULL) == REDIS_OK);
        sent++;
    }
    for (size_t i = 0; i < sent; i++) {
        redisReply *r = ts_redis_get_reply(to);
        cr_assert(r->type == REDIS_REPLY_INTEGER, "ZADD %s failed: %s", key,
                  r->type == REDIS_REPLY_ERROR ? r->str : "?");
        freeReplyObject(r);
    }
}

/* Where each command of a pipelined batch went, to read its reply from there. */
static redisContext *batch_to[BATCH];

void ts_count_timelines(redisContext *c, uint64_t post, uint64_t base, size_t n, long long card,
                        size_t *holding, size_t *first_missing, size_t *with_card)
{
    size_t hold = 0, missing = n, cards = 0;
    for (size_t i = 0; i < n; i += BATCH) {
        size_t m = n - i < BATCH ? n - i : BATCH;
        for (size_t k = 0; k < m; k++) {
            unsigned long long u = (unsigned long long)(base + i + k);
            char key[40];
            snprintf(key, sizeof(key), "tl:{%llu}", u);
            batch_to[k] = ts_redis_node_for(c, key);
            redisAppendCommand(batch_to[k], "ZSCORE %s %llu", key, (unsigned long long)post);
            redisAppendCommand(batch_to[k], "ZCARD %s", key);
        }
        for (size_t k = 0; k < m; k++) {
            redisReply *r = ts_redis_get_reply(batch_to[k]);
            cr_assert(r->type != REDIS_REPLY_ERROR, "ZSCORE: %s", r->str);
            if (r->type == REDIS_REPLY_STRING)
                hold++;
            else if (missing == n)
                missing = i + k;
            freeReplyObject(r);
            r = ts_redis_get_reply(batch_to[k]);
            cr_assert(r->type == REDIS_REPLY_INTEGER, "ZCARD gave no integer");
            cards += r->integer == card;
            freeReplyObject(r);
        }
    }
    if (holding)
        *holding = hold;
    if (first_missing)
        *first_missing = missing;
    if (with_card)
        *with_card = cards;
}

bool ts_timeline_holds(redisContext *c, uint64_t user, uint64_t post)
{
    redisReply *r = ts_redis_cmd_ok(c, "ZSCORE tl:{%llu} %llu", (unsigned long long)user,
                                    (unsigned long long)post);
    bool holds = r->type == REDIS_REPLY_STRING;
    freeReplyObject(r);
    return holds;
}

/* ---- the job queue --------------------------------------------------------------------------- */

/* An integer reply, or XPENDING's summary count; 0 for a shard without stream or group. */
static long long queue_count(redisContext *c, const char *fmt, const char *stream)
{
    redisReply *r = ts_redis_cmd(c, fmt, stream);
    long long v = 0;
    if (r->type == REDIS_REPLY_INTEGER)
        v = r->integer;
    else if (r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
             r->element[0]->type == REDIS_REPLY_INTEGER)
        v = r->element[0]->integer;
    else
        cr_assert(r->type == REDIS_REPLY_ERROR &&
                      (strstr(r->str, "NOGROUP") || strstr(r->str, "no such key")),
                  "%s on %s answered type %d: %s", fmt, stream, r->type, r->str ? r->str : "");
    freeReplyObject(r);
    return v;
}

void ts_queue(redisContext *c, long long *length, long long *pending, long long *dead)
{
    *length = *pending = 0;
    for (int shard = 0; shard < TS_FANOUT_SHARDS; shard++) {
        char stream[32];
        snprintf(stream, sizeof(stream), "fanout:{%d}", shard);
        *length += queue_count(c, "XLEN %s", stream);
        *pending += queue_count(c, "XPENDING %s engine", stream);
    }
    if (dead)
        *dead = queue_count(c, "XLEN %s", "fanout:dead");
}

bool ts_wait_queue_empty(redisContext *c, int timeout_ms)
{
    uint64_t deadline = ts_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        long long length, pending;
        ts_queue(c, &length, &pending, NULL);
        if (length == 0 && pending == 0)
            return true;
        if (ts_now_ms() >= deadline)
            return false;
        ts_sleep_ms(20);
    }
}
