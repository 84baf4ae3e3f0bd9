/* storage/redis/redis.h -- a Redis client that knows slots, redirects and pub/sub: what the
 * data model of storage/ stands on.
 *
 * Two clients over one slot map each. The synchronous one (thread: any) keeps a pool of
 * connections per node and runs batches: one pipelined round trip per node, MOVED and ASK
 * followed, TRYAGAIN and CLUSTERDOWN retried briefly. The asynchronous one (thread: loop)
 * keeps hiredis async connections on a libuv loop: a writer per master node, optionally a
 * blocking reader per key the caller names (its blocking reads must not wait behind
 * another's), and for a subscriber one sharded pub/sub connection per master node.
 * A single Redis is a cluster of one node that owns every slot, so both share every path.
 *
 * Nothing here knows a key of Tidings: keys, channels' payloads and scripts come from above.
 * Return codes: 0, -EAGAIN (Redis unreachable; batches say more, see below), -EIO (error
 * reply), -ENOMEM, -ECANCELED.
 */
#ifndef TIDINGS_STORAGE_REDIS_H
#define TIDINGS_STORAGE_REDIS_H

#include "storage/redis/slots.h"

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* ---- the synchronous client (client.c, pool.c, topology.c) -------------------------------- */
typedef struct storage_redis_s storage_redis_t;

typedef struct storage_redis_config_s {
    const char *url;        /* redis://[:password@]host:port[/db] or unix:///path (borrowed) */
    int pool_size;          /* idle connections kept per node */
    int connect_timeout_ms; /* per connect attempt */
    int command_timeout_ms; /* per round trip */
} storage_redis_config_t;

/* Returns new or NULL on a bad URL or no memory; cfg is borrowed for the call. Does not
 * connect yet. */
storage_redis_t *storage_redis_create(const storage_redis_config_t *cfg);
void storage_redis_destroy(storage_redis_t *r);
/* Readiness as last observed by any command (cheap), and the reconnections counted. */
bool storage_redis_is_up(const storage_redis_t *r);
uint64_t storage_redis_reconnects(const storage_redis_t *r);
/* Whether some node's breaker refuses batches now (it timed out lately, and a probe is under
 * way or was sent within the last 250 ms; see pool.c). Cheap. */
bool storage_redis_breaker_open(storage_redis_t *r);
/* Whether it is a cluster, how many nodes own slots, the MOVED and ASK replies followed and
 * the times the slot map was learnt. */
void storage_redis_topology_stats(storage_redis_t *r, bool *cluster, int *masters,
                                  uint64_t *redirects, uint64_t *refreshes, uint64_t *pipelines);
/* The sharded pub/sub channel that node (an index of the slot map) serves: "live:{k}" for
 * the first k whose slot it owns, so publishers and subscribers agree whenever their maps
 * do. */
void storage_redis_live_channel(storage_redis_t *r, int node, char *buf, size_t size);
/* The same for the node whose slots hold key (learning the slot map first if need be): 0, or
 * -EAGAIN when Redis cannot be asked. */
int storage_redis_live_channel_of_key(storage_redis_t *r, const char *key, char *buf, size_t size);

/* ---- batches: one round trip (batch.c) -----------------------------------------------------
 * Commands are formatted up front so that a batch can be replayed on a fresh connection
 * when a pooled one turns out to be dead: every batch must be idempotent. */
typedef struct storage_redis_batch_s {
    storage_redis_t *client;
    char **cmds;
    size_t *lens;
    redisReply **r; /* after run: one reply per command, owned by the batch */
    size_t n, cap;
    size_t barrier; /* commands from here on wait for the ones before (0: none) */
    int err;        /* first formatting error, reported by run */
} storage_redis_batch_t;

void storage_redis_batch_init(storage_redis_batch_t *b, storage_redis_t *client);
void storage_redis_batch_add(storage_redis_batch_t *b, const char *fmt, ...);
void storage_redis_batch_addargv(storage_redis_batch_t *b, int argc, const char **argv,
                                 const size_t *lens);
/* The commands added after this run only once every command before it has succeeded
 * (their replies stay NULL otherwise): a fan-out job must not exist for a post whose own
 * writes failed, and on Redis Cluster they may live on different nodes. */
void storage_redis_batch_barrier(storage_redis_batch_t *b);
/* 0, or why the batch failed, which tells whether any of it can have run:
 *   -ENOTCONN   nothing was sent: a node was unreachable, backing off from a failed connect,
 *               or behind its open breaker (it timed out lately, and another batch is probing
 *               it or did within the last 250 ms), or the slot map could not be learnt. No
 *               command of the batch ran: the caller may say "refused".
 *   -ETIMEDOUT  commands were sent and a node did not answer within the command timeout, or
 *               its connection was lost after writing (and the one replay on a fresh
 *               connection, made only for a pooled connection that died at once, failed
 *               too); on a cluster, also a failure after another node had answered its part.
 *               The outcome is unknown: any command of the batch may have run.
 *   -EAGAIN     the cluster kept answering TRYAGAIN or CLUSTERDOWN past the retries; those
 *               commands did not run, others of the batch (other nodes) may have.
 *   -ENOMEM, or -ECANCELED (the thread's gate shut, nothing sent).
 * Error replies are left for the caller. */
int storage_redis_batch_run(storage_redis_batch_t *b);
/* The same, and -EIO when any reply is an error (or missing): for batches whose every
 * command must succeed. */
int storage_redis_batch_run_checked(storage_redis_batch_t *b);
/* Frees commands and replies; the batch may be reused after init. */
void storage_redis_batch_free(storage_redis_batch_t *b);

/* ---- scans (scan.c) ------------------------------------------------------------------------
 * Every key matching match (a SCAN MATCH pattern) on every master, a page at a time: cb gets
 * each page's array of key strings (borrowed for the call) and returns 0 to go on or a
 * negative errno to stop, which the scan returns. A key may be seen twice (SCAN's own
 * guarantee), so the work must be idempotent. 0, -EAGAIN, -EIO. Thread: any. */
typedef int (*storage_redis_scan_cb)(void *arg, const redisReply *keys);
int storage_redis_scan(storage_redis_t *r, const char *match, storage_redis_scan_cb cb, void *arg);

/* ---- gates (gate.c): a check that rides on the calling thread's next reading batch --------
 * A request's rate check is one command whose answer decides whether the request goes on.
 * Armed on a thread, it is appended to the next batch that thread runs when that batch only
 * reads (one round trip for both; the reads are dropped when the gate shuts), and it runs
 * alone just before a batch that writes, so that a refused request writes nothing. Once
 * shut, every batch the thread runs fails with -ECANCELED, unsent, until it is disarmed. */
typedef enum {
    STORAGE_REDIS_GATE_PENDING,
    STORAGE_REDIS_GATE_OPEN,
    STORAGE_REDIS_GATE_SHUT
} storage_redis_gate_state_t;

typedef struct storage_redis_gate_s {
    storage_redis_t *client;
    char *cmd; /* formatted; owned */
    size_t len;
    storage_redis_gate_state_t state;
    /* Reads the gate's reply (NULL when Redis could not answer) and says whether the
     * request may go on; called once. */
    bool (*judge)(void *priv, const redisReply *r);
    void *priv;
} storage_redis_gate_t;

/* Formats the command into g (PENDING). 0 or -ENOMEM. */
int storage_redis_gate_init(storage_redis_gate_t *g, storage_redis_t *client, int argc,
                            const char **argv, bool (*judge)(void *, const redisReply *),
                            void *priv);
/* Makes g the calling thread's gate (NULL: none) until disarmed. */
void storage_redis_gate_arm(storage_redis_gate_t *g);
/* Runs g alone if no batch has taken it yet, disarms it, and tells its state. */
storage_redis_gate_state_t storage_redis_gate_settle(storage_redis_gate_t *g);
void storage_redis_gate_free(storage_redis_gate_t *g);

/* ---- fibers (fiber.c, mux.c): batches that park instead of blocking ------------------------
 * A function run as a fiber runs on a stack of its own, on the thread that runs it. Every
 * batch it runs goes out on shared connections (one I/O thread per client, one connection
 * per node, carrying the commands of every parked fiber), and instead of waiting the fiber
 * parks: storage_redis_fiber_run returns false. The owner then makes sure it can be woken
 * (libmicrohttpd: suspends the connection), calls storage_redis_fiber_send, and once
 * wake(wake_arg) is called (from the I/O thread) runs the fiber on, on the same thread.
 * Batches keep their contract (the -ENOTCONN / -ETIMEDOUT split, redirects, the barrier,
 * the breaker); a batch run outside a fiber blocks on a pooled connection as before. */
typedef struct storage_redis_fiber_s storage_redis_fiber_t;
/* NULL on no memory. */
storage_redis_fiber_t *storage_redis_fiber_new(void (*fn)(void *), void *fn_arg,
                                               void (*wake)(void *), void *wake_arg);
/* Runs f until fn returns (true) or f parks (false). Not from inside a fiber. */
bool storage_redis_fiber_run(storage_redis_fiber_t *f);
/* After a park, once wake may be called: sends what f waits for. */
void storage_redis_fiber_send(storage_redis_fiber_t *f);
/* From now on f's batches fail at once with -ECANCELED, sending nothing: its owner is gone
 * and only wants it to finish. */
void storage_redis_fiber_cancel(storage_redis_fiber_t *f);
/* A fiber that finished or never ran. */
void storage_redis_fiber_free(storage_redis_fiber_t *f);

/* ---- replies (reply.c): NULL-safe, never keep the reply ------------------------------------ */
bool storage_redis_is_error(const redisReply *r);
/* An error reply that says "not now" rather than "never": OOM (a full Redis refusing writes),
 * LOADING, BUSY, MASTERDOWN, READONLY (a failover), NOREPLICAS, TRYAGAIN, CLUSTERDOWN. */
bool storage_redis_error_is_transient(const redisReply *r);
/* An error reply's status: -ENOSPC for OOM, -EAGAIN for the other transient ones, else -EIO. */
int storage_redis_error_status(const redisReply *r);
/* Whether a write was refused for memory (OOM) within the last ms milliseconds. */
bool storage_redis_writes_refused_within(storage_redis_t *client, uint64_t ms);
int64_t storage_redis_int(const redisReply *r);       /* integer reply, or -1 */
uint64_t storage_redis_uint_str(const redisReply *r); /* decimal string reply, or 0 */
/* A string reply into dst, cut to size - 1 bytes; "" when r is no string. */
void storage_redis_copy_str(char *dst, size_t size, const redisReply *r);
uint64_t storage_redis_parse_u64(const char *p, size_t n); /* 0 on anything but digits */

/* ---- invalidations for a cache in the process (tracking.c) ---------------------------------
 * While every slot is on one node, a thread of its own holds Redis' CLIENT TRACKING in
 * broadcast mode over prefixes (at most 8, borrowed for the client's life) and hands over
 * every key written since: invalidate(arg, key, len). reset(arg, live) says to drop
 * everything: live, invalidations flow (again) from now on; not live, they stopped (the
 * connection ended, the deployment grew): keep nothing until the next reset(arg, true). Both
 * are called on that thread. */
typedef struct storage_redis_tracking_s storage_redis_tracking_t;
typedef struct storage_redis_tracking_cb_s {
    void (*invalidate)(void *arg, const char *key, size_t len);
    void (*reset)(void *arg, bool live);
    void *arg;
} storage_redis_tracking_cb_t;
storage_redis_tracking_t *storage_redis_tracking_start(storage_redis_t *r,
                                                       const char *const *prefixes, int n,
                                                       const storage_redis_tracking_cb_t *cb);
void storage_redis_tracking_stop(storage_redis_tracking_t *t);
/* True when every invalidation Redis sent before this call has been handed over, so that
 * what the cache holds is no older than any write whose answer anyone has seen. Any thread. */
bool storage_redis_tracking_settled(storage_redis_tracking_t *t);
/* The tracking connection's CLIENT ID while it is up, 0 otherwise: the REDIRECT target of
 * another connection's CLIENT TRACKING (read_cache.c's timeline pages). Any thread. */
unsigned long long storage_redis_tracking_client_id(storage_redis_tracking_t *t);

/* ---- the asynchronous client (async.c, async_send.c, subscriber.c), loop thread only ------ */
typedef struct storage_redis_async_s storage_redis_async_t;

/* What a connection is for: the one enum of connection roles. */
typedef enum {
    STORAGE_REDIS_WRITER, /* one per master node: every non-blocking command */
    STORAGE_REDIS_READER, /* one per reader key: blocking reads of that key's slot */
    STORAGE_REDIS_SUB,    /* one per master node: the node's live channel */
} storage_redis_role_t;

#define STORAGE_REDIS_MAX_READERS 64

typedef struct storage_redis_async_callbacks_s {
    /* Every writer connection is up (true), or one went down (false); may be NULL. */
    void (*state)(void *arg, bool up);
    /* Subscriber: a message on channel; payload borrowed for the call. */
    void (*message)(void *arg, const char *channel, const char *payload);
    /* Subscriber: the subscription to channel is in place (again, after a reconnect). */
    void (*subscribed)(void *arg, const char *channel);
    void *arg;
} storage_redis_async_callbacks_t;

/* Returns new or NULL; connects at once. A subscriber opens no readers and subscribes each
 * master's live channel. reader_keys (n_readers of them, at most STORAGE_REDIS_MAX_READERS)
 * name the slots that get a blocking reader. Everything is borrowed for the call. */
storage_redis_async_t *storage_redis_async_create(uv_loop_t *loop,
                                                  const storage_redis_config_t *cfg,
                                                  const char *const *reader_keys, int n_readers,
                                                  bool subscriber,
                                                  const storage_redis_async_callbacks_t *cb);
/* Cancels every pending command (-ECANCELED), disconnects, and calls closed_cb once every
 * handle is closed; ra is freed right after that call. */
void storage_redis_async_close(storage_redis_async_t *ra, void (*closed_cb)(void *arg), void *arg);
bool storage_redis_async_up(const storage_redis_async_t *ra);
/* Commands sent and not yet answered. */
size_t storage_redis_async_in_flight(const storage_redis_async_t *ra);
/* Ends every blocking read now (CLIENT UNBLOCK on the reader's node). */
void storage_redis_async_unblock_readers(storage_redis_async_t *ra);
/* The node whose slots hold the keys tagged {id} (hash tag of id's decimal digits). */
int storage_redis_async_user_node(storage_redis_async_t *ra, uint64_t id);
/* Whether every slot is on one node (one Redis, or a cluster of one master), so that one
 * script may touch any key; *node is that node then. False while the slot map is unknown. */
bool storage_redis_async_one_node(storage_redis_async_t *ra, int *node);
/* The slot map and settings behind ra (borrowed; lives as long as ra). */
storage_redis_t *storage_redis_async_client(storage_redis_async_t *ra);

/* status: 0, -EIO (r is the error reply), -EAGAIN or -ECANCELED (r is NULL). r is borrowed
 * for the call. */
typedef void (*storage_redis_reply_cb)(void *priv, int status, redisReply *r);
/* Sends one command on the writer or reader (role) for its slot; fn fires exactly once,
 * unless this returns non-zero (-EAGAIN while disconnected), in which case it never does. */
int storage_redis_send(storage_redis_async_t *ra, storage_redis_role_t role,
                       storage_redis_reply_cb fn, void *priv, const char *fmt, ...);
int storage_redis_send_argv(storage_redis_async_t *ra, storage_redis_role_t role,
                            storage_redis_reply_cb fn, void *priv, int argc, const char **argv,
                            const size_t *lens);

/* Many writer commands, one completion with the first failure (or 0). Add commands, then
 * end: end returns non-zero (and frees the group, no callback) when nothing could be sent;
 * otherwise the callback fires once every reply is in. */
typedef struct storage_redis_group_s {
    storage_redis_async_t *client;
    void (*cb)(void *arg, int status);
    void *arg;
    int pending, status;
    size_t *sum; /* not NULL: integer replies are added to it */
} storage_redis_group_t;
storage_redis_group_t *storage_redis_group_new(storage_redis_async_t *ra, void (*cb)(void *, int),
                                               void *arg);
void storage_redis_group_add(storage_redis_group_t *g, const char *fmt, ...);
void storage_redis_group_add_argv(storage_redis_group_t *g, int argc, const char **argv);
int storage_redis_group_end(storage_redis_group_t *g);
/* Drops one reference; the callback fires when the last one goes. */
void storage_redis_group_unref(storage_redis_group_t *g);
/* Adds one call of script per node that owns some of ids' keys (key_fmt, "<prefix>{%llu}",
 * of each id), so that no call spans nodes: EVAL script 1 <first key> <k> <key>×k <args…>
 * <channel>, the first key declared for routing, channel the node's live channel. A script
 * starts with SCRIPT_NODE_KEYS and then sees KEYS and ARGV as if its keys had all been
 * declared. (Redis lets a script without flags touch undeclared keys of other slots on its
 * own node.) */
#define SCRIPT_NODE_KEYS                                                                           \
    "local KEYS = {unpack(ARGV, 2, tonumber(ARGV[1]) + 1)}\n"                                      \
    "local ARGV = {unpack(ARGV, tonumber(ARGV[1]) + 2)}\n"
void storage_redis_group_eval_by_node(storage_redis_group_t *g, const char *script,
                                      const char *key_fmt, const uint64_t *ids, size_t n, int nargs,
                                      const char **args);

#endif
