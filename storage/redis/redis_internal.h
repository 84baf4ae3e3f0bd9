/* storage/redis/redis_internal.h -- shared by the files of storage/redis/ only: the node
 * table and slot map, the pools of synchronous connections, and the asynchronous
 * connections' shape (async.c owns them, uv_adapter.c puts them on the loop, async_send.c
 * routes commands over them, subscriber.c speaks pub/sub on some of them). */
#ifndef TIDINGS_STORAGE_REDIS_INTERNAL_H
#define TIDINGS_STORAGE_REDIS_INTERNAL_H

#include "storage/redis/redis.h"

#include <hiredis/async.h>
#include <pthread.h>
#include <stdatomic.h>

/* ---- nodes and slots (topology.c) ----------------------------------------------------------
 * Every command takes the same path: slot -> node -> that node's pool. Nodes are only ever
 * appended, so an index stays valid (and keys per-node state) for the life of the client. */
#define STORAGE_REDIS_MAX_NODES 64

typedef struct storage_redis__conn_s {
    redisContext *c;
    unsigned gen; /* its node pool's generation when opened; older ones are dropped */
    bool probe;   /* lent as the breaker's probe: its outcome opens or closes the breaker */
} storage_redis__conn_t;

typedef struct storage_redis__node_s {
    char host[108]; /* a host name, or a unix socket path when port is 0 */
    int port;
    /* the node's pool of idle synchronous connections (pool.c), under storage_redis_s.mu */
    storage_redis__conn_t **idle;
    size_t n_idle;
    unsigned gen;
    uint64_t next_attempt_ms;
    int backoff_ms;
    /* the breaker (pool.c): a suspect node lends a connection only to one probe at a time,
     * none before probe_at_ms; every other batch fails at once */
    bool suspect, probing;
    uint64_t probe_at_ms;
} storage_redis__node_t;

struct storage_redis_s {
    /* parsed configuration */
    char *password;
    int db;
    int pool_size, connect_timeout_ms, command_timeout_ms;

    pthread_mutex_t mu; /* guards the node table, the slot map and every node's pool */
    storage_redis__node_t nodes[STORAGE_REDIS_MAX_NODES];
    int n_nodes, n_seeds;             /* the seeds from the URL come first */
    uint8_t slot_node[STORAGE_SLOTS]; /* node index of each slot */
    bool topology_known, cluster;
    unsigned topology_version; /* moves on whenever the slot map changes */
    uint64_t topology_refreshed_ms;
    uint64_t refresh_retry_ms; /* after a failed refresh, none before this */
    int refresh_backoff_ms;
    pthread_mutex_t refresh_mu; /* one refresh at a time */
    atomic_bool up;
    atomic_ullong reconnects, redirects, refreshes, pipelines;
    atomic_ullong oom_at_ms; /* monotonic ms of the last write refused for memory (0: none) */
    struct mux_s *mux;       /* the shared pipelines of fibers (mux.c), made on first use */
};

/* Node index of host:port, added when new; -1 when the table is full. Caller holds mu. */
int storage_redis__node_find_or_add(storage_redis_t *s, const char *host, int port);
/* Asks the nodes (seeds first) for the slot map: CLUSTER SLOTS, or "not a cluster", which
 * makes the answering node the owner of every slot. A refresh that finished within the
 * last min_interval_ms counts. 0, or -EAGAIN when no node answered. */
int storage_redis__topology_refresh(storage_redis_t *s, int min_interval_ms);
/* The node for slot (-1: any node), learning the map first when it is unknown; -EAGAIN
 * when it cannot be learnt. */
int storage_redis__topology_node(storage_redis_t *s, int slot);
/* A MOVED redirect: slot now lives at host:port. Returns that node's index or -1. */
int storage_redis__topology_moved(storage_redis_t *s, int slot, const char *host, int port);
/* Opens a synchronous connection to node i (AUTH, SELECT and timeouts applied); NULL on
 * failure. Needs no lock: a node's address never changes. */
redisContext *storage_redis__connect_node(storage_redis_t *s, int i, int connect_timeout_ms);
uint64_t storage_redis__monotonic_ms(void);
/* The next retry delay after one that failed (0: none yet): 100 ms doubling to 2 s. */
int storage_redis__backoff_next(int prev_ms);
/* Reads the URL into the seed nodes, password and db (topology.c). */
int storage_redis__parse_url(storage_redis_t *s, const char *url);

/* ---- the connection pools (pool.c) --------------------------------------------------------- */
/* A connection to node i (*fresh tells whether it was just opened), or NULL when the node
 * is unreachable, we are still backing off from it, or its breaker is open (it is suspect and
 * this caller is not its probe). Nothing has been sent when it returns NULL. */
storage_redis__conn_t *storage_redis__acquire(storage_redis_t *s, int i, bool *fresh);
/* Whether node i's breaker would refuse a connection now (cheap; no probe is claimed). */
bool storage_redis__breaker_open(storage_redis_t *s, int i);
/* Whether node i is suspect at all (open breaker, or a probe allowed or under way). */
bool storage_redis__node_suspect(storage_redis_t *s, int i);
/* How a connection comes back to its pool. */
typedef enum {
    STORAGE_REDIS__CONN_OK,
    STORAGE_REDIS__CONN_DEAD,      /* broke at once (EOF, reset): a pooled one Redis dropped */
    STORAGE_REDIS__CONN_TIMED_OUT, /* no answer within the command timeout */
} storage_redis__conn_end_t;
/* How a command on c failed, from hiredis' error and errno as the failed call left it: a
 * read or write that hit the socket timeout (EAGAIN) is a timeout, anything else dead. */
storage_redis__conn_end_t storage_redis__conn_failure(const redisContext *c, int err);
/* Gives c back to node i's pool. A dead or timed-out one is dropped with every idle one
 * opened before it; a timeout, or a fresh connection that died, makes the node suspect (its
 * breaker opens), and the probe's outcome closes or keeps it open. */
void storage_redis__release(storage_redis_t *s, int i, storage_redis__conn_t *c, bool fresh,
                            storage_redis__conn_end_t end);
void storage_redis__conn_free(storage_redis__conn_t *c);
/* A command on c (lent by acquire and kept, as mux.c does) was answered: node i is healthy,
 * and c is no longer its probe. */
void storage_redis__node_answered(storage_redis_t *s, int i, storage_redis__conn_t *c);

/* ---- asynchronous connections (async.c) ---------------------------------------------------- */
/* Puts a hiredis async context on loop (uv_adapter.c). */
int storage_redis__uv_attach(redisAsyncContext *ac, uv_loop_t *loop);

/* One connection: a writer or a subscriber per master node, a reader per reader key (its
 * blocking reads must not wait behind another key's). */
/* script_sha.c: the index (below STORAGE_REDIS_SCRIPTS_MAX) and SHA1 of a script body sent
 * as EVAL; -1 when the table is full. */
#define STORAGE_REDIS_SCRIPTS_MAX 128
int storage_redis__script_index(const char *body, size_t len, char sha[41]);

typedef struct aconn_s {
    storage_redis_async_t *sa;
    storage_redis_role_t role;
    int index; /* node (writer, subscriber) or reader key */
    int node;  /* the node it talks to */
    redisAsyncContext *ac;
    bool connected, retired;
    int backoff_ms;
    uv_timer_t timer;    /* connect timeout while connecting, retry delay while down */
    char channel[32];    /* subscriber: the node's live channel */
    long long client_id; /* reader: its CLIENT ID, to unblock it (0: not known yet) */
    /* the scripts (script_sha.c indexes) loaded on this connection since it connected */
    uint64_t scripts_loaded[STORAGE_REDIS_SCRIPTS_MAX / 64];
} aconn_t;

struct storage_redis_async_s {
    uv_loop_t *loop;
    storage_redis_t *cfg; /* parsed URL and the slot map (refreshed on this loop) */
    bool subscriber;
    aconn_t *writer[STORAGE_REDIS_MAX_NODES];
    aconn_t *reader[STORAGE_REDIS_MAX_READERS];
    aconn_t *sub[STORAGE_REDIS_MAX_NODES];
    int n_readers;
    int reader_slot[STORAGE_REDIS_MAX_READERS];
    uv_timer_t topology_timer; /* learns the slot map again, then re-arranges connections */
    int topology_backoff_ms;
    storage_redis_async_callbacks_t cb;
    size_t in_flight;
    bool closing, up;
    int open_handles;
    void (*closed_cb)(void *arg);
    void *closed_arg;
};

/* Asks for the slot map to be learnt again after delay_ms (sooner wins). */
void storage_redis__async_refresh_soon(storage_redis_async_t *sa, int delay_ms);

/* The writer connection to node, opened now if there is none (a redirect's target). */
aconn_t *storage_redis__writer_for(storage_redis_async_t *sa, int node);

/* subscriber.c: a subscriber connection came up; it subscribes its node's live channel. */
void storage_redis__sub_connected(aconn_t *c);

/* ---- fibers and their shared pipelines (fiber.c, mux.c) ----------------------------------- */
/* The fiber running on this thread, or NULL (then batches block as they always did). */
storage_redis_fiber_t *storage_redis__fiber_current(void);
/* Whether the running fiber was cancelled (it must not park). */
bool storage_redis__fiber_cancelled(void);
/* Switches out of the running fiber; its owner calls send(arg) once it can be woken
 * (storage_redis_fiber_send), and runs it on after storage_redis__fiber_wake. */
void storage_redis__fiber_park(void (*send)(void *), void *arg);
/* Any thread: what f waits for is in; its owner will run it on. */
void storage_redis__fiber_wake(storage_redis_fiber_t *f);
/* Where the fiber keeps its armed gate (gate.c keeps a thread's outside fibers). */
storage_redis_gate_t **storage_redis__fiber_gate(storage_redis_fiber_t *f);

typedef enum {
    STORAGE_REDIS__PIPE_COMMANDS, /* n commands to node, one reply each */
    STORAGE_REDIS__PIPE_AFTER,    /* nothing but a pause of after_ms */
    STORAGE_REDIS__PIPE_WORK,     /* work(work_arg) in libuv's thread pool (it blocks) */
} storage_redis__pipe_kind_t;

/* What one fiber asks of the I/O thread; done(p) fires there exactly once. */
typedef struct storage_redis__pipe_s {
    storage_redis__pipe_kind_t kind;
    int node;
    size_t n;
    char **cmds; /* formatted, borrowed until done */
    size_t *lens;
    redisReply **replies; /* n slots: filled on OK, all NULL otherwise */
    uint64_t after_ms;
    void (*work)(void *);
    void *work_arg;
    void (*done)(struct storage_redis__pipe_s *p);
    void *arg;
    /* the outcome */
    storage_redis__conn_end_t end; /* OK, or DEAD / TIMED_OUT */
    bool sent;                     /* some of it may have reached Redis */
    bool unreachable;              /* none of it left: no connection could be had */
    /* the I/O thread's */
    size_t got;
    int replays;
    uint64_t deadline_ms;
    struct storage_redis__pipe_s *next;
} storage_redis__pipe_t;

/* Any thread: queues p on the client's I/O thread (started on first use). */
void storage_redis__mux_send(storage_redis_t *s, storage_redis__pipe_t *p);
/* Stops the I/O thread; nothing may be in flight. */
void storage_redis__mux_destroy(storage_redis_t *s);

/* ---- batches and gates (batch.c, gate.c) -------------------------------------------------- */
/* Appends a copy of an already formatted command (b->err on failure). */
void storage_redis__batch_push_copy(storage_redis_batch_t *b, const char *cmd, size_t len);
/* Before a batch runs: -ECANCELED when the thread's gate is shut (or shuts now, run alone
 * ahead of a batch that writes); *rides when the gate was appended to this reading batch. */
int storage_redis__gate_before(storage_redis_batch_t *b, bool *rides);
/* After a batch the gate rode on (rc its result): judges and removes the gate's command and
 * reply; -ECANCELED when the gate shut, else rc. */
int storage_redis__gate_after(storage_redis_batch_t *b, int rc);
/* Monotonic milliseconds (never 0). */
uint64_t storage_redis__now_ms(void);

#endif
