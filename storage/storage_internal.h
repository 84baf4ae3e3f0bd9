/* storage/storage_internal.h -- shared by the files of storage/ only: the key schema, the
 * connection pool and the batch (one pipelined round trip). */
#ifndef TIDINGS_STORAGE_INTERNAL_H
#define TIDINGS_STORAGE_INTERNAL_H

#include "storage/slots.h"
#include "storage/storage.h"

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdatomic.h>

/* ---- key schema ------------------------------------------------------------------------
 * Every key carries its owner in a hash tag so that one user's keys share a Cluster slot.
 * Formats take unsigned long long ids (hiredis formats them itself). */
#define K_USER "user:{%llu}"           /* hash: handle display_name token created */
#define K_HANDLE "handle:{%s}"         /* string: user id; the handle lowercased */
#define K_FOLLOWERS "followers:{%llu}" /* zset: follower id scored by edge id */
#define K_FOLLOWING "following:{%llu}" /* zset: followee id scored by edge id */
#define K_POST "post:{%llu}"           /* hash: author text reply_to mentions likes reposts deleted */
#define K_POSTS "posts:{%llu}"         /* zset: author's post ids scored by id */
#define K_IDEM "idem:{%llu}:%b"        /* string: "<post id> <fingerprint>" */
#define K_FANOUT "fanout:{%d}"         /* stream: fan-out jobs, consumer group FANOUT_GROUP */
#define K_TIMELINE "tl:{%llu}"         /* zset: home timeline post ids scored by id */
#define K_CELEB "celeb:{%llu}"         /* string: set when the author is merged at read time */
#define K_CELEB_FOLLOWS "celebs:{%llu}" /* set: celebrities the user follows */
#define K_LIKES "likes:{%llu}"         /* set: users who like the post */
#define K_REPOSTS "reposts:{%llu}"     /* set: users who reposted the post */
#define K_REPOSTED_BY "rb:{%llu}"      /* hash: post id -> reposter, for repost timeline entries */
#define K_BLOCKS "blocks:{%llu}"       /* zset: users this user blocked, scored by edge id */
#define K_BLOCKED_BY "blockedby:{%llu}" /* zset: users who blocked this user */
#define K_MUTES "mutes:{%llu}"         /* zset: users this user muted */
#define K_MUTED_BY "mutedby:{%llu}"    /* zset: users who muted this user */
#define K_NOTIFS "nt:{%llu}"           /* zset: notification group keys scored by last activity */
#define K_NOTIF_PREFIX "ng:{%llu}:"    /* + group key: zset of actors scored by action id */
#define K_NOTIF_FOLLOWS "nfd:{%llu}"   /* hash: follower -> group key of their follow notice */
#define K_NOTIF_READ "nr:{%llu}"       /* string: notifications up to this id are read */
#define K_EVENTS "ev:{%llu}"           /* stream: the user's live events (log for replay); it
                                        * exists while the user has a stream, plus a grace */
#define EVENTS_MAXLEN 1000             /* events kept per user for replay */
#define K_NODE "node:{%d}"             /* string: lease on an id-generator node id */
#define K_NODE_SEQ "node:seq"          /* counter spreading nodes over the 64 slots */
#define FANOUT_GROUP "engine"

#define IDEM_TTL_S 86400
#define NODE_LEASE_MS 30000
#define NODE_BITS 6
#define SEQ_BITS 6

typedef unsigned long long ull;

typedef struct storage__conn_s {
    redisContext *c;
    unsigned gen; /* its node pool's generation when opened; older ones are dropped */
} storage__conn_t;

/* ---- nodes and slots (topology.c) ----------------------------------------------------------
 * A single Redis is a cluster of one node that owns every slot, so every command takes the
 * same path: slot -> node -> that node's pool. Nodes are only ever appended, so an index
 * stays valid (and keys per-node state) for the life of the storage object. */
#define STORAGE__MAX_NODES 64

typedef struct storage__node_s {
    char host[108]; /* a host name, or a unix socket path when port is 0 */
    int port;
    /* the node's pool of idle synchronous connections (pool.c), under storage_s.mu */
    storage__conn_t **idle;
    size_t n_idle;
    unsigned gen;
    uint64_t next_attempt_ms;
    int backoff_ms;
} storage__node_t;

struct storage_s {
    /* parsed configuration */
    char *password;
    int db;
    int pool_size, connect_timeout_ms, command_timeout_ms, fanout_shards;

    pthread_mutex_t mu; /* guards the node table, the slot map and every node's pool */
    storage__node_t nodes[STORAGE__MAX_NODES];
    int n_nodes, n_seeds;             /* the seeds from the URL come first */
    uint8_t slot_node[STORAGE_SLOTS]; /* node index of each slot */
    bool topology_known, cluster;
    unsigned topology_version;        /* moves on whenever the slot map changes */
    uint64_t topology_refreshed_ms;
    uint64_t refresh_retry_ms; /* after a failed refresh, none before this */
    int refresh_backoff_ms;
    pthread_mutex_t refresh_mu; /* one refresh at a time */
    atomic_bool up;
    atomic_ullong reconnects, redirects, refreshes;

    /* id generator (ids.c) */
    pthread_mutex_t id_mu;
    uint64_t id_last_ms;
    unsigned id_seq;
    atomic_int node;
    char node_token[64];
};

/* Node index of host:port, added when new; -1 when the table is full. Caller holds mu. */
int storage__node_find_or_add(storage_t *s, const char *host, int port);
/* Asks the nodes (seeds first) for the slot map: CLUSTER SLOTS, or "not a cluster", which
 * makes the answering node the owner of every slot. A refresh that finished within the
 * last min_interval_ms counts. 0, or -EAGAIN when no node answered. */
int storage__topology_refresh(storage_t *s, int min_interval_ms);
/* The node for slot (-1: any node), learning the map first when it is unknown; -EAGAIN
 * when it cannot be learnt. */
int storage__topology_node(storage_t *s, int slot);
/* A MOVED redirect: slot now lives at host:port. Returns that node's index or -1. */
int storage__topology_moved(storage_t *s, int slot, const char *host, int port);
/* Opens a synchronous connection to node i (AUTH, SELECT and timeouts applied); NULL on
 * failure. Needs no lock: a node's address never changes. */
redisContext *storage__connect_node(storage_t *s, int i, int connect_timeout_ms);
uint64_t storage__monotonic_ms(void);
/* The next retry delay after one that failed (0: none yet): 100 ms doubling to 2 s. */
int storage__backoff_next(int prev_ms);
/* The sharded pub/sub channel that carries the live events of node's users. */
void storage__live_channel(storage_t *s, int node, char *buf, size_t size);
/* Reads the URL into the seed nodes, password and db (topology.c). */
int storage__parse_url(storage_t *s, const char *url);

/* One round trip: commands are formatted up front so that a batch can be replayed on a
 * fresh connection when a pooled one turns out to be dead (every batch is idempotent). */
#define STORAGE__BATCH_INLINE 8
typedef struct storage__batch_s {
    storage_t *s;
    char **cmds;
    size_t *lens;
    redisReply **r; /* after run: one reply per command, owned by the batch */
    size_t n, cap;
    size_t barrier; /* commands from here on wait for the ones before (0: none) */
    int err;        /* first formatting error, reported by run */
} storage__batch_t;

void storage__batch_init(storage__batch_t *b, storage_t *s);
void storage__batch_add(storage__batch_t *b, const char *fmt, ...);
void storage__batch_addargv(storage__batch_t *b, int argc, const char **argv, const size_t *lens);
/* The commands added after this run only once every command before it has succeeded
 * (their replies stay NULL otherwise): a fan-out job must not exist for a post whose own
 * writes failed, and on Redis Cluster they may live on different nodes. */
void storage__batch_barrier(storage__batch_t *b);
/* 0, -EAGAIN (Redis unreachable), -ENOMEM. Error replies are left for the caller. */
int storage__batch_run(storage__batch_t *b);
/* Frees commands and replies; the batch may be reused after init. */
void storage__batch_free(storage__batch_t *b);

/* Reply helpers: NULL-safe, never keep the reply. */
bool storage__is_error(const redisReply *r);
int64_t storage__int(const redisReply *r);          /* integer reply, or -1 */
uint64_t storage__uint_str(const redisReply *r);    /* decimal string reply, or 0 */
uint64_t storage__parse_u64(const char *p, size_t n); /* 0 on anything but digits */
uint64_t storage__now_ms(void);

/* A page of the sorted set key_fmt (a K_ format) of owner, newest first, scores below
 * cursor (exclusive; 0 for the first page). -ENOENT when owner is no user. */
int storage__zpage(storage_t *s, const char *key_fmt, uint64_t owner, uint64_t cursor,
                   size_t limit, storage_page_t *out);

/* Appends the three reads of whom user blocked, was blocked by and muted (interactions.c);
 * storage__collect_hidden turns their replies into one new array. */
void storage__add_hidden_reads(storage__batch_t *b, uint64_t user);
uint64_t *storage__collect_hidden(redisReply **r, size_t *n);

/* The shard of a fan-out job about user. */
int storage__shard(const storage_t *s, uint64_t user);

/* ---- asynchronous commands (async.c), loop thread only ---------------------------- */
struct storage_async_s;
enum { STORAGE__READER = 0, STORAGE__WRITER = 1 };
/* status: 0, -EIO (r is the error reply), -EAGAIN or -ECANCELED (r is NULL). */
typedef void (*storage__reply_fn)(void *priv, int status, redisReply *r);
/* Sends one command on the reader or writer connection; fn fires exactly once, unless
 * this returns non-zero (-EAGAIN while disconnected), in which case it never fires. */
int storage__asend(struct storage_async_s *sa, int which, storage__reply_fn fn, void *priv,
                   const char *fmt, ...);
int storage__asend_argv(struct storage_async_s *sa, int which, storage__reply_fn fn, void *priv,
                        int argc, const char **argv, const size_t *lens);
int storage__async_shards(const struct storage_async_s *sa);
/* The node that owns user's keys (their hash tag's slot). */
int storage__async_user_node(struct storage_async_s *sa, uint64_t user);
/* The slot map and settings behind sa. */
storage_t *storage__async_storage(struct storage_async_s *sa);

/* Many writer commands, one completion with the first failure (or 0). Add commands, then
 * end: end returns non-zero (and frees the group, no callback) when nothing could be sent;
 * otherwise the callback fires once every reply is in. */
typedef struct storage__group_s {
    struct storage_async_s *sa;
    void (*cb)(void *arg, int status);
    void *arg;
    int pending, status;
    size_t *sum; /* not NULL: integer replies are added to it */
} storage__group_t;
storage__group_t *storage__group_new(struct storage_async_s *sa, void (*cb)(void *, int),
                                     void *arg);
void storage__group_add(storage__group_t *g, const char *fmt, ...);
void storage__group_add_argv(storage__group_t *g, int argc, const char **argv);
int storage__group_end(storage__group_t *g);
/* Drops one reference; the callback fires when the last one goes. */
void storage__group_unref(storage__group_t *g);
/* Adds one call of script per node that owns some of users' keys (key_fmt of each user),
 * so that no call spans nodes: EVAL script 1 <first key> <k> <key>×k <args…> <channel>, the
 * first key declared for routing, channel the node's live channel. A script starts with
 * SCRIPT_NODE_KEYS and then sees KEYS and ARGV as if its keys had all been declared. (Redis
 * lets a script without flags touch undeclared keys of other slots on its own node.) */
#define SCRIPT_NODE_KEYS                                                                        \
    "local KEYS = {unpack(ARGV, 2, tonumber(ARGV[1]) + 1)}\n"                                   \
    "local ARGV = {unpack(ARGV, tonumber(ARGV[1]) + 2)}\n"
void storage__group_eval_by_node(storage__group_t *g, const char *script, const char *key_fmt,
                                 const uint64_t *users, size_t n, int nargs, const char **args);
/* Publishes msg ("@…", see celebrity_live.c) on the live channel of the node of user
 * about, after the group's commands before it on that node. */
void storage__group_announce(storage__group_t *g, uint64_t about, const char *msg);


#endif
