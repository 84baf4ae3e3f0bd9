/* tests/scaleout/so.h -- what the scale-out tests share: a private Redis Cluster with
 * replicas, and a raw hiredis view of the job queue and timelines.
 *
 * Users, posts, timelines, streams and a follower's feed read over reconnecting streams
 * (ts_feed_t) come from tests/support. Every wait here is bounded in time, and every loop in
 * count.
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
