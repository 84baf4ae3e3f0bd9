/* storage/storage.c -- the data model's two handles over the Redis client: the synchronous
 * storage_t (HTTP threads) and the asynchronous storage_async_t (the loop), their life and
 * what they report.
 *
 * Each wraps a client of storage/redis/ and adds what only the data model knows: how many
 * fan-out queue shards there are (the async client gets one blocking reader per shard's
 * stream) and, for a subscriber, the parsing of live messages into typed callbacks.
 */
#include "storage/storage_internal.h"
#include "storage/read_cache.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The one clock of the data model (ids, last seen, inactivity, delivery times), moved forward
 * by --clock-offset-ms: set once before any thread starts, read by all. */
static _Atomic uint64_t clock_offset_ms;

void storage_clock_offset_set(uint64_t offset_ms)
{
    atomic_store(&clock_offset_ms, offset_ms);
}

uint64_t storage_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 +
           atomic_load_explicit(&clock_offset_ms, memory_order_relaxed);
}

uint64_t storage__now_ms(void)
{
    return storage_now_ms();
}

static storage_redis_config_t redis_config(const storage_config_t *cfg)
{
    return (storage_redis_config_t){.url = cfg->url,
                                    .pool_size = cfg->pool_size,
                                    .connect_timeout_ms = cfg->connect_timeout_ms,
                                    .command_timeout_ms = cfg->command_timeout_ms};
}

/* ---- the synchronous handle ------------------------------------------------------------ */

void storage_config_defaults(storage_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->url = "redis://127.0.0.1:6379";
    cfg->pool_size = 64;
    cfg->connect_timeout_ms = 1000;
    cfg->command_timeout_ms = 2000;
    cfg->fanout_shards = 4;
    cfg->read_cache = STORAGE_READ_CACHE_DEFAULT;
}

/* ---- the read cache (read_cache.c) and its invalidations ----------------------------------- */

/* The keys whose entries the cache keeps (K_POST, K_USER, K_BLOCKS, K_BLOCKED_BY, K_MUTES),
 * and the authors' post lists a timeline page merges (K_POSTS); a page's own keys come by
 * tracking its read instead (read_cache.c). */
static const char *const cached_prefixes[] = {"post:{",      "user:{",  "blocks:{",
                                              "blockedby:{", "mutes:{", "posts:{"};

static void on_invalidate(void *arg, const char *key, size_t len)
{
    read_cache_invalidate(arg, key, len);
}

static void on_reset(void *arg, bool live)
{
    read_cache_reset(arg, live);
}

static bool start_read_cache(storage_t *s, size_t entries)
{
    s->cache = read_cache_new(entries);
    if (!s->cache)
        return false;
    storage_redis_tracking_cb_t cb = {
        .invalidate = on_invalidate, .reset = on_reset, .arg = s->cache};
    s->tracking = storage_redis_tracking_start(
        s->redis, cached_prefixes, (int)(sizeof(cached_prefixes) / sizeof(*cached_prefixes)), &cb);
    return s->tracking != NULL;
}

struct read_cache_s *storage__cache(storage_t *s)
{
    return s->cache && read_cache_live(s->cache) ? s->cache : NULL;
}

struct read_cache_s *storage__cache_settled(storage_t *s)
{
    if (!s->cache || !read_cache_live(s->cache) || !storage__one_node(s))
        return NULL;
    return storage_redis_tracking_settled(s->tracking) ? s->cache : NULL;
}

unsigned long long storage__tracking_id(storage_t *s)
{
    return storage__cache(s) ? storage_redis_tracking_client_id(s->tracking) : 0;
}

void storage_read_cache_stats(storage_t *s, storage_read_cache_stats_t *out)
{
    read_cache_stats_t st;
    read_cache_stats(s->cache, &st);
    out->hits = st.hits;
    out->misses = st.misses;
    out->page_hits = st.page_hits;
    out->page_misses = st.page_misses;
    out->on = s->cache != NULL;
    out->live = s->cache && read_cache_live(s->cache);
}

storage_t *storage_create(const storage_config_t *cfg)
{
    storage_t *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    storage_redis_config_t rcfg = redis_config(cfg);
    s->redis = storage_redis_create(&rcfg);
    if (!s->redis) {
        free(s);
        return NULL;
    }
    s->fanout_shards = cfg->fanout_shards > 0 ? cfg->fanout_shards : 1;
    pthread_mutex_init(&s->id_mu, NULL);
    atomic_init(&s->node, -1);
    atomic_init(&s->lease_until_ms, 0);
    atomic_init(&s->lease_reconnects, 0);
    if (cfg->read_cache && !start_read_cache(s, cfg->read_cache)) {
        storage_destroy(s);
        return NULL;
    }
    return s;
}

void storage_destroy(storage_t *s)
{
    if (!s)
        return;
    storage_redis_tracking_stop(s->tracking); /* before the client it reads the map of */
    read_cache_free(s->cache);
    storage_redis_destroy(s->redis);
    pthread_mutex_destroy(&s->id_mu);
    free(s);
}

bool storage_is_up(const storage_t *s)
{
    return storage_redis_is_up(s->redis);
}

uint64_t storage_reconnects(const storage_t *s)
{
    return storage_redis_reconnects(s->redis);
}

void storage_topology_stats(storage_t *s, storage_topology_stats_t *out)
{
    storage_redis_topology_stats(s->redis, &out->cluster, &out->masters, &out->redirects,
                                 &out->refreshes, &out->pipelines);
}

int storage__shard(const storage_t *s, uint64_t user)
{
    return (int)(user % (uint64_t)s->fanout_shards);
}

int storage_ping(storage_t *s)
{
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    storage_redis_batch_add(&b, "PING");
    int rc = storage_redis_batch_run_checked(&b);
    storage_redis_batch_free(&b);
    return rc;
}

#define WRITE_REFUSED_MEMORY_MS 3000 /* an OOM a request met keeps readiness down this long */
#define PROBE_TTL_MS 10000
/* Redis refuses a write when its memory plus the write's would pass maxmemory: the probe is
 * as large as a large post, so it fails when posts would. */
#define PROBE_BYTES 8192

int storage_write_probe(storage_t *s)
{
    if (storage_redis_writes_refused_within(s->redis, WRITE_REFUSED_MEMORY_MS))
        return -ENOSPC;
    int node = storage_node_id(s);
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    static const char probe[PROBE_BYTES];
    storage_redis_batch_add(&b, "SET " K_READY " %b PX %d", node < 0 ? 0 : node, probe,
                            sizeof(probe), PROBE_TTL_MS);
    int rc = storage_redis_batch_run(&b);
    if (rc == 0 && storage_redis_is_error(b.r[0]))
        rc = storage_redis_error_status(b.r[0]);
    storage_redis_batch_free(&b);
    return rc;
}

int storage_prepare(storage_t *s)
{
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    for (int i = 0; i < s->fanout_shards; i++)
        storage_redis_batch_add(&b, "XGROUP CREATE " K_FANOUT " " FANOUT_GROUP " 0 MKSTREAM", i);
    int rc = storage_redis_batch_run(&b);
    for (size_t i = 0; rc == 0 && i < b.n; i++)
        if (storage_redis_is_error(b.r[i]) && strncmp(b.r[i]->str, "BUSYGROUP", 9) != 0)
            rc = -EIO;
    storage_redis_batch_free(&b);
    return rc ? rc : storage__handle_index_fill(s);
}

/* ---- the asynchronous handle ----------------------------------------------------------- */

/* The subscriber's messages: announcements ("@…", celebrity_live.c) or live events
 * ("<kind> <ref> <user>:<id> …", events.c), each parsed where its format is written. */
static void on_message(void *arg, const char *channel, const char *payload)
{
    storage_async_t *sa = arg;
    const storage_sub_callbacks_t *cb = &sa->sub_cb;
    if (!cb->message)
        return;
    if (cb->batch)
        cb->batch(cb->arg, true);
    if (payload[0] == '@')
        storage__announcement_deliver(cb, channel, payload + 1);
    else
        storage__live_deliver(cb, payload);
    if (cb->batch)
        cb->batch(cb->arg, false);
}

static void on_subscribed(void *arg, const char *channel)
{
    storage_async_t *sa = arg;
    if (sa->sub_cb.subscribed)
        sa->sub_cb.subscribed(sa->sub_cb.arg, channel);
}

static storage_async_t *create(uv_loop_t *loop, const storage_config_t *cfg,
                               storage_async_state_cb on_state, void *state_arg,
                               const storage_sub_callbacks_t *sub_cb)
{
    storage_async_t *sa = calloc(1, sizeof(*sa));
    int shards = cfg->fanout_shards > 0 ? cfg->fanout_shards : 1;
    if (!sa || shards > STORAGE_REDIS_MAX_READERS) {
        free(sa);
        return NULL;
    }
    sa->fanout_shards = shards;
    /* One blocking reader per queue shard, so one shard's read never waits behind
     * another's; a subscriber reads no queue. */
    char keys[STORAGE_REDIS_MAX_READERS][24];
    const char *key_ptrs[STORAGE_REDIS_MAX_READERS];
    for (int i = 0; i < shards; i++) {
        snprintf(keys[i], sizeof(keys[i]), K_FANOUT, i);
        key_ptrs[i] = keys[i];
    }
    storage_redis_async_callbacks_t cb = {.state = on_state, .arg = state_arg};
    if (sub_cb) {
        sa->sub_cb = *sub_cb;
        cb = (storage_redis_async_callbacks_t){
            .message = on_message, .subscribed = on_subscribed, .arg = sa};
    }
    storage_redis_config_t rcfg = redis_config(cfg);
    sa->redis =
        storage_redis_async_create(loop, &rcfg, key_ptrs, sub_cb ? 0 : shards, sub_cb != NULL, &cb);
    if (!sa->redis) {
        free(sa);
        return NULL;
    }
    return sa;
}

storage_async_t *storage_async_create(uv_loop_t *loop, const storage_config_t *cfg,
                                      storage_async_state_cb on_state, void *arg)
{
    return create(loop, cfg, on_state, arg, NULL);
}

storage_async_t *storage_sub_create(uv_loop_t *loop, const storage_config_t *cfg,
                                    const storage_sub_callbacks_t *cb)
{
    return create(loop, cfg, NULL, NULL, cb);
}

static void on_closed(void *arg)
{
    storage_async_t *sa = arg;
    if (sa->closed_cb)
        sa->closed_cb(sa->closed_arg);
    free(sa);
}

void storage_async_close(storage_async_t *sa, void (*closed_cb)(void *arg), void *arg)
{
    sa->closed_cb = closed_cb;
    sa->closed_arg = arg;
    storage_redis_async_close(sa->redis, on_closed, sa);
}

bool storage_async_up(const storage_async_t *sa)
{
    return storage_redis_async_up(sa->redis);
}

size_t storage_async_in_flight(const storage_async_t *sa)
{
    return storage_redis_async_in_flight(sa->redis);
}

int storage__async_shards(const storage_async_t *sa)
{
    return sa->fanout_shards;
}
