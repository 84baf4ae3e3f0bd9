/* tests/scaleout/so.h -- what the scale-out tests share: a follower's feed read over any
 * number of stream connections (reconnecting with Last-Event-ID, to any process), home
 * timelines read whole, and a raw hiredis view of the job queue and timelines.
 *
 * Users, posts and single streams come from the stream tests' helpers (tests/sse/sx.h),
 * which these tests link. Every wait here is bounded in time, and every loop in count.
 */
#ifndef TIDINGS_TEST_SCALEOUT_SO_H
#define TIDINGS_TEST_SCALEOUT_SO_H

#include "tests/sse/sx.h"

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Every suite's .timeout (one value per binary: see SX_TIMEOUT). */
#define SO_TIMEOUT 300

/* ---- a follower's feed ----------------------------------------------------------------------- */
typedef struct so_feed_s {
    int port;             /* where the stream is (re)opened; a test may move it */
    char token[128];
    sse_t *c;             /* the open connection, NULL between connections */
    char last_id[64];     /* the last event id received, of any type ("" before any) */
    size_t n, cap;
    char (*post)[24];     /* the feed events' post ids, in arrival order */
    char (*text)[64];     /* their texts (truncated) */
    int connections;      /* connections opened, the first included */
    int refused;          /* reconnects answered with something other than 200 */
    int ends;             /* times the server ended (or dropped) the stream */
    int other_events;     /* notification and bare-id events skipped */
} so_feed_t;

/* Opens u's stream on port (it must answer 200 with retry: 3000 first). */
void so_feed_open(so_feed_t *f, int port, const sx_user_t *u);
/* Takes every feed event that has arrived, waiting at most wait_ms for the first. Never
 * reconnects; returns false when the stream has ended (closing it). Fails the test on an
 * event that is neither feed nor notification, or on event ids that do not increase. */
bool so_feed_poll(so_feed_t *f, int wait_ms);
/* Reads until the feed holds want feed events or timeout_ms passes, reopening the stream
 * with Last-Event-ID whenever it ends or is not open (a refused reopen is retried every
 * 200 ms). Returns the count held. */
size_t so_feed_until(so_feed_t *f, size_t want, int timeout_ms);
/* How many of the feed events carry post id. */
size_t so_feed_count(const so_feed_t *f, const char *post);
/* Closes the connection (if open) and frees what f holds. */
void so_feed_free(so_feed_t *f);

/* ---- timelines ------------------------------------------------------------------------------- */
/* Walks u's whole GET /v1/timeline (pages of 100) on port into ids (up to cap) and returns
 * how many items it saw. Fails the test unless ids strictly fall (newest first, so no
 * duplicate) across pages. */
size_t so_timeline(int port, const char *token, uint64_t *ids, size_t cap);
/* Polls so_timeline until it holds at least n items or timeout_ms passes; returns the last
 * count. */
size_t so_wait_timeline(int port, const char *token, size_t n, uint64_t *ids, size_t cap,
                        int timeout_ms);
/* A decimal id ("123") as a number; 0 for anything else. */
uint64_t so_id(const char *s);

/* ---- a private Redis Cluster ----------------------------------------------------------------- */
#define SO_CLUSTER_MAX 12

typedef struct so_cluster_s {
    char dir[64];              /* /tmp/tidings-scaleout-XXXXXX ("" when stopped) */
    int n;                     /* nodes: masters first, then replicas */
    int ports[SO_CLUSTER_MAX];
    char url[512];             /* the seed list, "redis://127.0.0.1:<p1>,…" */
} so_cluster_t;

/* Starts masters masters with replicas replicas each through
 * tests/support/redis_cluster_fixture.sh in a new directory under /tmp, and waits until the
 * cluster is up. The cluster is also stopped at exit, however the test ends short of a
 * SIGKILL (the nodes are daemons: a killed test leaves them running). */
void so_cluster_start(so_cluster_t *cl, int masters, int replicas);
/* Shuts every node down and removes the directory (safe to call twice). */
void so_cluster_stop(so_cluster_t *cl);
/* The port of the master serving slot, per CLUSTER SLOTS of the first node that answers; 0
 * when none knows. */
int so_cluster_master_of(const so_cluster_t *cl, int slot);
/* The pid of the node listening on port (from its pidfile). */
pid_t so_cluster_node_pid(const so_cluster_t *cl, int port);
/* The slot of user id's keys ("user:{<id>}"). */
int so_user_slot(const char *id);

/* ---- behind the server (hiredis) ------------------------------------------------------------- */
redisContext *so_redis(int port);
/* A reply; fails the test on none (freeReplyObject it). */
redisReply *so_cmd(redisContext *c, const char *fmt, ...);
/* Pipelined ZADD followers:{author}: n made-up users base … base+n-1, scored score0 + i, so
 * the fan-out (which walks followers by score) reaches them after or before real ones. */
void so_add_followers(redisContext *c, uint64_t author, uint64_t base, size_t n,
                      uint64_t score0);
/* Pipelined over users base … base+n-1: how many timelines hold post, and how many hold
 * exactly one entry. */
void so_count_timelines(redisContext *c, uint64_t post, uint64_t base, size_t n,
                        size_t *holding, size_t *exactly_one);
/* The pid in the consumer name ("host:pid:random") of the engine that holds the fan-out
 * job of post (pending in some fanout:{n} stream), 0 when no engine holds it. */
pid_t so_job_holder(redisContext *c, uint64_t post);
/* The summed length and pending count of every fanout:{n} stream, and fanout:dead's length. */
void so_queue(redisContext *c, long long *length, long long *pending, long long *dead);

#endif
