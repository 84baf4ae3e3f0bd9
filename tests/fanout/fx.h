/* tests/fanout/fx.h -- what only the fan-out tests need beyond tests/support: counts over
 * many made-up followers' timelines, and why a test skips the cluster run.
 *
 * Every test that runs an engine gets its own Redis (ts_redis_start_like_fixture: a
 * redis-server, or in test_fanout_cluster a Redis Cluster of 3 masters). The fixture Redis is
 * shared with the other test binaries, whose servers consume the one job queue fanout:{0..3}:
 * an engine of ours there would work their jobs with our flags (--timeline-max 5,
 * --celebrity-threshold 3), and their servers, which other tests kill, would hold ours.
 * Whatever a test starts dies with its process (tests/support/proc.c, redis.c).
 */
#ifndef TIDINGS_TEST_FANOUT_FX_H
#define TIDINGS_TEST_FANOUT_FX_H

#include "tests/support/support.h"

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

/* Why a test that crashes or restarts its Redis skips the cluster run. */
#define FX_RESTARTS_REDIS                                                                          \
    "this test crashes or restarts its Redis, which the tests do to a redis-server only (a "       \
    "private cluster's nodes would come back with their slots): test_fanout runs it"

/* How many of the timelines tl:{base+i}, i < n, hold post; the first index without it goes to
 * missing unless NULL (n when none). */
static inline size_t fx_count_holding(redisContext *c, uint64_t post, uint64_t base, size_t n,
                                      size_t *missing)
{
    size_t holding;
    ts_count_timelines(c, post, base, n, 0, &holding, missing, NULL);
    return holding;
}

/* How many of the timelines tl:{base+i}, i < n, have exactly card entries. */
static inline size_t fx_count_card(redisContext *c, uint64_t base, size_t n, long long card)
{
    size_t with_card;
    ts_count_timelines(c, 0, base, n, card, NULL, NULL, &with_card);
    return with_card;
}

/* A stream entry's fields (a reply of field, value, …) as "field=value " pairs into buf. */
static inline void fx_pairs(const redisReply *fields, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t k = 0; k + 1 < fields->elements && used < size; k += 2)
        used += (size_t)snprintf(buf + used, size - used, "%s=%s ", fields->element[k]->str,
                                 fields->element[k + 1]->str);
}

/* Starts redis (a private one, no AOF) and server on it with extra flags (NULL-terminated, may
 * be NULL); returns the server's port. */
static inline int fx_start(ts_redis_t *redis, ts_server_t *server, const char *const *extra)
{
    redis->aof = false;
    ts_redis_start_like_fixture(redis);
    ts_server_start(server, redis->url, extra, true);
    return server->port;
}

/* DELETE /v1/posts/{post} as author (204). */
static inline void fx_delete(int port, const ts_user_t *author, uint64_t post)
{
    json_decref(
        ts_callf(port, "DELETE", author, NULL, 204, "/v1/posts/%llu", (unsigned long long)post));
}

#endif
