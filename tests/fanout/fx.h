/* tests/fanout/fx.h -- what the fan-out tests share: a private Redis per test (a
 * redis-server, with AOF when the test restarts it, or in test_fanout_cluster a Redis Cluster
 * of 3 masters), a raw hiredis connection to look behind the engine, bulk follower graphs
 * written by pipelining, users and posts through the HTTP API, paged timelines, and /metrics
 * values.
 *
 * Every test that runs an engine gets its own Redis. The fixture Redis is shared with the
 * other test binaries, whose servers consume the one job queue fanout:{0..3}: an engine of
 * ours there would work their jobs with our flags (--timeline-max 5, --celebrity-threshold
 * 3), and their servers, which other tests kill, would hold ours. Each test process tracks
 * what it started and fx_teardown (the suites' .fini, also run at exit) kills it and removes
 * its directories, whether the test passed or not.
 *
 * On a cluster the connection fx_connect gives is to the first master; every fx_ helper that
 * takes it sends each command to the node serving its key (pipelines route by the key's
 * slot, single commands follow -MOVED), so the tests read alike on both. A test that crashes
 * or restarts its Redis skips itself in the cluster run (ts_redis_skip_on_cluster).
 */
#ifndef TIDINGS_TEST_FANOUT_FX_H
#define TIDINGS_TEST_FANOUT_FX_H

#include "tests/support/support.h"

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- a private Redis ------------------------------------------------------------------------- */
typedef struct fx_redis_s {
    pid_t pid;    /* the redis-server; 0 for a private cluster (ts_redis_t keeps that) */
    int port;     /* its port; a cluster's first master's */
    bool aof;     /* appendonly yes, appendfsync always (a redis-server only) */
    char dir[64];
    char url[256]; /* what --redis gets: redis://127.0.0.1:<port>, or the cluster's seed list */
} fx_redis_t;

/* Why a test that crashes or restarts its Redis skips the cluster run. */
#define FX_RESTARTS_REDIS                                                                         \
    "this test crashes or restarts its Redis, which the tests do to a redis-server only (a "     \
    "private cluster's nodes would come back with their slots): test_fanout runs it"
/* Starts a redis-server on a free loopback port in a new temporary directory (aof: with
 * appendonly yes and appendfsync always) and waits until it answers PING. In the cluster run
 * it starts a private cluster instead (ts_redis_start_like_fixture; aof does not matter, as
 * nothing restarts it). */
void fx_redis_start(fx_redis_t *r, bool aof);
/* SHUTDOWN (AOF flushed) and waits for the process to exit. Not on a cluster. */
void fx_redis_shutdown(fx_redis_t *r);
/* Starts it again on the same port and directory; waits until the data set is loaded. Not on
 * a cluster. */
void fx_redis_restart(fx_redis_t *r);

/* A connection to port, and on a cluster to every master (close it with fx_close; fx_teardown
 * closes what a failed test left open); fails the test when none. */
redisContext *fx_connect(int port);
void fx_close(redisContext *c);
/* A reply to a command on a key (sent to the key's node on a cluster); fails the test on a
 * NULL reply or an error reply (freeReplyObject). */
redisReply *fx_cmd(redisContext *c, const char *fmt, ...);
/* An integer reply's value (fails the test on another type). */
long long fx_int(redisContext *c, const char *fmt, ...);

/* Pipelined: n fake followers base+0 … base+n-1 of author, edge scores 1 … n. */
void fx_add_followers(redisContext *c, uint64_t author, uint64_t base, size_t n);
/* Pipelined ZSCORE tl:{base+i} post for i in 0..n-1: how many hold post. When missing is not
 * NULL it receives the first index without it (n when none). */
size_t fx_count_holding(redisContext *c, uint64_t post, uint64_t base, size_t n, size_t *missing);
/* Pipelined ZCARD tl:{base+i}: how many have exactly card entries. */
size_t fx_count_card(redisContext *c, uint64_t base, size_t n, long long card);
/* Does tl:{user} hold post? */
bool fx_holds(redisContext *c, uint64_t user, uint64_t post);
/* The entries of the job queue and how many of them its group holds pending, summed over
 * the streams fanout:{0..TS_FANOUT_SHARDS-1} (one without stream or group counts 0). */
void fx_queue(redisContext *c, long long *length, long long *pending);
/* Waits up to timeout_ms for an empty job queue, nothing pending; false on timeout. */
bool fx_wait_queue_empty(redisContext *c, int timeout_ms);

/* ---- the server ----------------------------------------------------------------------------- */
/* Starts tidings on r with the NULL-terminated extra flags and waits until ready; the process
 * is remembered for fx_teardown. */
void fx_server_start(ts_server_t *s, const fx_redis_t *r, const char *const *extra);
/* SIGTERM and waits (SIGKILL after 20 s); asserts a clean exit. */
void fx_server_stop(ts_server_t *s);
/* SIGKILL, as a crash. */
void fx_server_crash(ts_server_t *s);

/* ---- the API -------------------------------------------------------------------------------- */
typedef struct fx_user_s {
    uint64_t id;
    char handle[32];
    char token[128];
} fx_user_t;

/* Registers a user whose handle is prefix (up to 19 characters) plus a random suffix. */
void fx_user(int port, const char *prefix, fx_user_t *u);
void fx_follow(int port, const fx_user_t *who, uint64_t whom);
void fx_unfollow(int port, const fx_user_t *who, uint64_t whom);
/* POST /v1/posts; returns the post id. */
uint64_t fx_post(int port, const fx_user_t *author, const char *text);
void fx_delete(int port, const fx_user_t *author, uint64_t post);

/* Walks GET /v1/timeline page by page (limit per page) and returns how many ids it found
 * (at most cap are stored in ids). Asserts that every page holds at most limit items and that
 * ids fall strictly from the first to the last (newest first, no duplicates). authors, when
 * not NULL, receives each item's author id. */
size_t fx_timeline(int port, const fx_user_t *u, int limit, uint64_t *ids, uint64_t *authors,
                   size_t cap);
/* Polls the timeline (limit 100, one page) until it holds n entries or timeout_ms passes;
 * returns the last count. */
size_t fx_wait_timeline(int port, const fx_user_t *u, size_t n, int timeout_ms);

/* The value of a sample line "name value" of GET /metrics (name may carry labels, e.g.
 * tidings_fanout_job_duration_seconds_bucket{le="+Inf"}); fails the test when absent. */
double fx_metric(int port, const char *name);
/* Is the line present at all? */
bool fx_has_metric(int port, const char *name);

/* ---- bookkeeping ---------------------------------------------------------------------------- */
/* Kills every server and redis-server this test started and removes their directories. */
void fx_teardown(void);
/* Parses a decimal id string ("123"); 0 on anything else. */
uint64_t fx_id(const char *s);
uint64_t fx_json_id(void *json_object, const char *key);

#endif
