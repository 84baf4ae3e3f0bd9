/* tests/scaleout/so.h -- what the scale-out tests share: a follower's feed read over any
 * number of stream connections (reconnecting with Last-Event-ID, to any process), a private
 * Redis Cluster with replicas, and a raw hiredis view of the job queue and timelines.
 *
 * Users, posts, timelines and single streams come from tests/support. Every wait here is
 * bounded in time, and every loop in count.
 */
#ifndef TIDINGS_TEST_SCALEOUT_SO_H
#define TIDINGS_TEST_SCALEOUT_SO_H

#include "tests/support/sse.h"

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Every suite's .timeout (Criterion 2.4.1 leaks when suites of one binary differ). */
#define SO_TIMEOUT 300
/* How long anything the engines do may take (sanitizer builds under ctest -j2 are slow). */
#define SO_WAIT_MS 60000

/* ---- a follower's feed ----------------------------------------------------------------------- */
typedef struct so_feed_s {
    int port;             /* where the stream is (re)opened; a test may move it */
    char token[128];
    ts_sse_t *c;             /* the open connection, NULL between connections */
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
void so_feed_open(so_feed_t *f, int port, const ts_user_t *u);
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

/* ---- a private Redis Cluster ----------------------------------------------------------------- */
/* A private cluster with replicas is ts_redis_start_cluster's (tests/support). */
/* The port of the master serving slot, per CLUSTER SLOTS of the first node that answers; 0
 * when none knows. */
int so_cluster_master_of(const ts_redis_t *cl, int slot);
/* The pid of the node listening on port (from its pidfile). */
pid_t so_cluster_node_pid(const ts_redis_t *cl, int port);
/* The slot of user id's keys ("user:{<id>}"). */
int so_user_slot(const char *id);

/* ---- behind the server (hiredis) ------------------------------------------------------------- */
/* The pid in the consumer name ("host:pid:random") of the engine that holds the fan-out
 * job of post (pending in some fanout:{n} stream), 0 when no engine holds it. */
pid_t so_job_holder(redisContext *c, uint64_t post);

#endif
