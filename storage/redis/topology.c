/* storage/redis/topology.c -- where each slot lives: the seed list from the URL, the node table
 * and the slot map learnt from CLUSTER SLOTS.
 *
 * A Redis without cluster support answers CLUSTER SLOTS with an error; the node that said
 * so then owns all 16384 slots. So one Redis and a cluster share every code path above
 * this file: a command's slot picks a node, and only the map differs.
 */
#include "storage/redis/cluster_slots.h"
#include "storage/redis/redis_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000

int storage_redis__backoff_next(int prev_ms)
{
    int next = prev_ms ? prev_ms * 2 : BACKOFF_MIN_MS;
    return next > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : next;
}

uint64_t storage_redis__monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static struct timeval ms_to_tv(int ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    return tv;
}

int storage_redis__node_find_or_add(storage_redis_t *s, const char *host, int port)
{
    for (int i = 0; i < s->n_nodes; i++)
        if (s->nodes[i].port == port && strcmp(s->nodes[i].host, host) == 0)
            return i;
    if (s->n_nodes == STORAGE_REDIS_MAX_NODES || strlen(host) >= sizeof(s->nodes[0].host))
        return -1;
    storage_redis__node_t *n = &s->nodes[s->n_nodes];
    n->idle = calloc((size_t)s->pool_size, sizeof(*n->idle));
    if (!n->idle)
        return -1;
    snprintf(n->host, sizeof(n->host), "%s", host);
    n->port = port;
    return s->n_nodes++;
}

/* "host[:port]" (6379 by default) as a seed. */
static int add_seed(storage_redis_t *s, const char *p, size_t len)
{
    char host[108];
    int port = 6379;
    const char *colon = memchr(p, ':', len);
    size_t hostlen = colon ? (size_t)(colon - p) : len;
    if (hostlen == 0 || hostlen >= sizeof(host))
        return -EINVAL;
    memcpy(host, p, hostlen);
    host[hostlen] = '\0';
    if (colon) {
        char digits[8];
        size_t n = len - hostlen - 1;
        if (n == 0 || n >= sizeof(digits))
            return -EINVAL;
        memcpy(digits, colon + 1, n);
        digits[n] = '\0';
        char *end;
        long v = strtol(digits, &end, 10);
        if (*end || v <= 0 || v > 65535)
            return -EINVAL;
        port = (int)v;
    }
    return storage_redis__node_find_or_add(s, host, port) < 0 ? -EINVAL : 0;
}

/* Accepts redis://[[user]:password@]host[:port][,host[:port]…][/db] and unix:///path. */
int storage_redis__parse_url(storage_redis_t *s, const char *url)
{
    if (strncmp(url, "unix://", 7) == 0) {
        if (url[7] != '/' || storage_redis__node_find_or_add(s, url + 7, 0) < 0)
            return -EINVAL;
        s->n_seeds = s->n_nodes;
        return 0;
    }
    if (strncmp(url, "redis://", 8) != 0)
        return -EINVAL;
    const char *p = url + 8;
    const char *at = strchr(p, '@');
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon) {
            s->password = strndup(colon + 1, (size_t)(at - colon - 1));
            if (!s->password)
                return -ENOMEM;
        }
        p = at + 1;
    }
    size_t hosts = strcspn(p, "/");
    for (const char *h = p; h < p + hosts;) {
        size_t len = strcspn(h, ",/");
        if (add_seed(s, h, len) != 0)
            return -EINVAL;
        h += len;
        if (*h == ',')
            h++;
    }
    if (s->n_nodes == 0)
        return -EINVAL;
    s->n_seeds = s->n_nodes;
    p += hosts;
    if (*p == '/' && p[1]) {
        char *end;
        long db = strtol(p + 1, &end, 10);
        if (*end || db < 0)
            return -EINVAL;
        s->db = (int)db;
    }
    return 0;
}

static bool command_ok(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    bool ok = r && r->type != REDIS_REPLY_ERROR;
    if (r)
        freeReplyObject(r);
    return ok;
}

redisContext *storage_redis__connect_node(storage_redis_t *s, int i, int connect_timeout_ms)
{
    const storage_redis__node_t *n = &s->nodes[i];
    struct timeval tv = ms_to_tv(connect_timeout_ms);
    redisContext *c = n->port == 0 ? redisConnectUnixWithTimeout(n->host, tv)
                                   : redisConnectWithTimeout(n->host, n->port, tv);
    if (!c || c->err)
        goto fail;
    if (redisSetTimeout(c, ms_to_tv(s->command_timeout_ms)) != REDIS_OK)
        goto fail;
    if (n->port)
        redisEnableKeepAlive(c);
    if (s->password && !command_ok(c, "AUTH %s", s->password))
        goto fail;
    if (s->db && !command_ok(c, "SELECT %d", s->db))
        goto fail;
    return c;
fail:
    if (c)
        redisFree(c);
    return NULL;
}

typedef struct slots_install_s {
    storage_redis_t *s;
    int asked;
    uint8_t map[STORAGE_SLOTS];
} slots_install_t;

/* One range of the reply into the new map; an empty host is the node that answered. */
static int install_range(void *arg, const storage_slot_range_t *range)
{
    slots_install_t *in = arg;
    const char *host = range->host[0] ? range->host : in->s->nodes[in->asked].host;
    int node = storage_redis__node_find_or_add(in->s, host, range->port);
    if (node < 0)
        return -ENOSPC;
    memset(in->map + range->first, node, (size_t)(range->last - range->first + 1));
    return 0;
}

/* Installs the map of one CLUSTER SLOTS reply (cluster_slots.c reads it). asked is the node
 * that answered. Caller holds mu. */
static bool install_slots(storage_redis_t *s, const redisReply *r, int asked)
{
    slots_install_t in = {.s = s, .asked = asked};
    uint8_t *map = in.map;
    memset(map, 0xff, sizeof(in.map));
    if (storage_cluster_slots_parse(r, install_range, &in) != 0)
        return false;
    /* Slots no master owns (mid-failover) keep their old owner: it answers with an error
     * or a redirect, which is retried, rather than a command without a destination. */
    for (int i = 0; i < STORAGE_SLOTS; i++)
        if (map[i] == 0xff)
            map[i] = s->topology_known ? s->slot_node[i] : 0;
    if (!s->topology_known || memcmp(map, s->slot_node, sizeof(in.map)) != 0 || !s->cluster)
        s->topology_version++;
    memcpy(s->slot_node, map, sizeof(in.map));
    s->cluster = true;
    return true;
}

/* Asks node i; true when the map was installed. */
static bool ask_node(storage_redis_t *s, int i)
{
    redisContext *c = storage_redis__connect_node(s, i, s->connect_timeout_ms);
    if (!c)
        return false;
    redisReply *r = redisCommand(c, "CLUSTER SLOTS");
    bool ok = false;
    pthread_mutex_lock(&s->mu);
    if (r && r->type == REDIS_REPLY_ERROR && strstr(r->str, "cluster support disabled")) {
        if (!s->topology_known || s->cluster || s->slot_node[0] != i)
            s->topology_version++;
        memset(s->slot_node, i, sizeof(s->slot_node));
        s->cluster = false;
        ok = true;
    } else if (r && r->type == REDIS_REPLY_ARRAY && r->elements > 0) {
        ok = install_slots(s, r, i);
    }
    if (ok) {
        s->topology_known = true;
        s->topology_refreshed_ms = storage_redis__monotonic_ms();
        atomic_fetch_add(&s->refreshes, 1);
    }
    pthread_mutex_unlock(&s->mu);
    if (r)
        freeReplyObject(r);
    redisFree(c);
    return ok;
}

int storage_redis__topology_refresh(storage_redis_t *s, int min_interval_ms)
{
    uint64_t started = storage_redis__monotonic_ms();
    pthread_mutex_lock(&s->refresh_mu);
    pthread_mutex_lock(&s->mu);
    bool fresh =
        s->topology_known && s->topology_refreshed_ms + (uint64_t)min_interval_ms > started;
    /* After a failed attempt, callers fail fast until the backoff has passed, rather than
     * each waiting out connect timeouts to nodes that do not answer. */
    bool backing_off = !fresh && started < s->refresh_retry_ms;
    int n = s->n_nodes;
    pthread_mutex_unlock(&s->mu);
    int rc = fresh ? 0 : -EAGAIN;
    /* Seeds first, then whatever the cluster told us about; not a suspect node (pool.c's
     * breaker): it answers nothing lately, and every batch would wait here behind refresh_mu
     * while its connection timed out. Its probe closes the breaker once it answers. */
    for (int i = 0; rc != 0 && !backing_off && i < n; i++)
        if (!storage_redis__node_suspect(s, i) && ask_node(s, i))
            rc = 0;
    if (!fresh && !backing_off) {
        pthread_mutex_lock(&s->mu);
        s->refresh_backoff_ms = rc == 0 ? 0 : storage_redis__backoff_next(s->refresh_backoff_ms);
        s->refresh_retry_ms = storage_redis__monotonic_ms() + (uint64_t)s->refresh_backoff_ms;
        pthread_mutex_unlock(&s->mu);
    }
    pthread_mutex_unlock(&s->refresh_mu);
    return rc;
}

int storage_redis__topology_node(storage_redis_t *s, int slot)
{
    pthread_mutex_lock(&s->mu);
    bool known = s->topology_known;
    pthread_mutex_unlock(&s->mu);
    if (!known && storage_redis__topology_refresh(s, 0) != 0)
        return -EAGAIN;
    pthread_mutex_lock(&s->mu);
    int node = s->slot_node[slot < 0 ? 0 : slot];
    pthread_mutex_unlock(&s->mu);
    return node;
}

int storage_redis__topology_moved(storage_redis_t *s, int slot, const char *host, int port)
{
    pthread_mutex_lock(&s->mu);
    int node = storage_redis__node_find_or_add(s, host, port);
    if (node >= 0 && s->slot_node[slot] != node) {
        s->slot_node[slot] = (uint8_t)node;
        s->topology_version++;
    }
    pthread_mutex_unlock(&s->mu);
    return node;
}

void storage_redis_live_channel(storage_redis_t *s, int node, char *buf, size_t size)
{
    /* The first "live:{k}" whose slot node owns: publishers and subscribers both derive it
     * from the slot map, so they agree whenever their maps do. */
    pthread_mutex_lock(&s->mu);
    for (unsigned k = 0; k < 100000; k++) {
        char tag[16];
        int len = snprintf(tag, sizeof(tag), "%u", k);
        if (s->slot_node[storage_crc16(tag, (size_t)len) & (STORAGE_SLOTS - 1)] == node) {
            snprintf(buf, size, "live:{%u}", k);
            break;
        }
    }
    pthread_mutex_unlock(&s->mu);
}

int storage_redis_live_channel_of_key(storage_redis_t *s, const char *key, char *buf, size_t size)
{
    int node = storage_redis__topology_node(s, storage_key_slot(key, strlen(key)));
    if (node < 0)
        return node;
    storage_redis_live_channel(s, node, buf, size);
    return 0;
}

void storage_redis_topology_stats(storage_redis_t *s, bool *cluster, int *masters,
                                  uint64_t *redirects, uint64_t *refreshes, uint64_t *pipelines)
{
    bool owns[STORAGE_REDIS_MAX_NODES] = {0};
    pthread_mutex_lock(&s->mu);
    *cluster = s->cluster;
    *masters = 0;
    for (int i = 0; s->topology_known && i < STORAGE_SLOTS; i++)
        if (!owns[s->slot_node[i]]) {
            owns[s->slot_node[i]] = true;
            (*masters)++;
        }
    pthread_mutex_unlock(&s->mu);
    *redirects = atomic_load(&s->redirects);
    *refreshes = atomic_load(&s->refreshes);
    *pipelines = atomic_load(&s->pipelines);
}
