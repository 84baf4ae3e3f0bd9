/* tests/support/support.h -- the one fixture every test binary shares: the fixture Redis,
 * unique names, a raw HTTP/1.1 client and the API's calls over it, a routed raw Redis client,
 * and child processes (the tidings binary, a private Redis: one redis-server, or a Redis
 * Cluster of its own). The SSE client is in sse.h. One prefix, ts_; a suite's own helper
 * file holds only what that suite alone uses.
 *
 * Every test binary runs its tests in parallel against one shared Redis, so anything a test
 * creates carries a random suffix (ts_unique). Helpers that cannot go on fail the current
 * test with cr_assert; children are killed when the test process exits, however it exits.
 */
#ifndef TIDINGS_TEST_SUPPORT_H
#define TIDINGS_TEST_SUPPORT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- environment (env.c) ---------------------------------------------------------------- */
/* The fixture is a single redis-server, or in a binary's second run (<name>_cluster, see
 * tests/CMakeLists.txt) a Redis Cluster: then $TIDINGS_TEST_REDIS_URL_FILE is set. */
bool ts_redis_fixture_is_cluster(void);
/* The fixture redis-server's port, read from $TIDINGS_TEST_REDIS_PORT_FILE (for a cluster,
 * the port of its first master: one node among several, see ts_redis_fixture_command). */
int ts_redis_port(void);
/* "redis://127.0.0.1:<port>" into buf. */
void ts_redis_url(char *buf, size_t size, int port);
/* The URL a server gets for the fixture into buf: the cluster's seed list
 * ("redis://127.0.0.1:<p1>,127.0.0.1:<p2>,…", read from $TIDINGS_TEST_REDIS_URL_FILE), else
 * ts_redis_url of ts_redis_port(). Fails the test when it does not fit; 256 bytes do. */
void ts_redis_fixture_url(char *buf, size_t size);
/* tidings' default --fanout-shards: its job queue is the streams fanout:{0} … fanout:{3}, a
 * job going to the shard of its user (id modulo 4). A test waiting for the queue to drain
 * looks at every shard. */
#define TS_FANOUT_SHARDS 4
/* The value of an environment variable the test needs (fails the test when unset). */
const char *ts_env(const char *name);
/* The server binary the suites start: $TIDINGS_TEST_SERVER_BIN when set (tools/tsan_suites.sh
 * points it at a ThreadSanitizer build), else the $TIDINGS_BIN the suite was built with. */
const char *ts_server_bin(void);
/* prefix, '_' and 10 random [a-z0-9]: a handle (or key) no parallel test uses. */
void ts_unique(char *buf, size_t size, const char *prefix);
/* A loopback port that was free a moment ago. */
int ts_free_port(void);
uint64_t ts_now_ms(void); /* monotonic */
void ts_sleep_ms(int ms);

/* ---- HTTP client (http.c) ----------------------------------------------------------------- */
/* A growing byte string, NUL-terminated after the first add; the caller frees p. */
typedef struct ts_buf_s {
    char *p;
    size_t len, cap;
} ts_buf_t;
void ts_buf_add(ts_buf_t *b, const void *data, size_t n);
void ts_buf_puts(ts_buf_t *b, const char *text);
typedef struct ts_resp_s {
    int status; /* 0 when no status line arrived */
    char *head; /* status line and header lines, CRLF-separated (owned) */
    char *body; /* NUL-terminated (owned) */
    size_t body_len;
    bool closed;    /* the server closed the connection before we stopped reading */
    bool timed_out; /* the deadline passed before the body's declared end: body is partial */
} ts_resp_t;

/* A TCP connection to 127.0.0.1:port (TCP_NODELAY; SO_RCVBUF rcvbuf when > 0): the socket,
 * or -errno. */
int ts_connect(int port, int rcvbuf);
/* Sends exactly len bytes to 127.0.0.1:port and reads one response: up to Content-Length,
 * through a chunked body, or until close (no body for HEAD, 1xx, 204, 304). A send that
 * fails because the server already answered is not an error. Returns 0, or -errno when no
 * response arrived within timeout_ms. */
int ts_http_raw(int port, const void *req, size_t len, int timeout_ms, ts_resp_t *out);
/* Sends len bytes holding several requests on one connection and reads n responses in
 * order into out[0..n). Returns 0, or -errno for the first response that did not come. */
int ts_http_pipeline(int port, const void *req, size_t len, int timeout_ms, ts_resp_t *out,
                     size_t n);
/* Builds a request (Host, Connection: close, Bearer token if any, application/json body if
 * any, extra_headers "Name: value\r\n…" if any) and sends it with ts_http_raw; fails the
 * test when there is no response. */
void ts_http(int port, const char *method, const char *path, const char *token,
             const char *extra_headers, const char *body, ts_resp_t *out);
/* ts_http with a deadline of timeout_ms instead of 15 s, for a large response from a slow
 * (sanitized) server; a body cut by the deadline fails the test too. */
void ts_http_within(int port, const char *method, const char *path, const char *token,
                    const char *extra_headers, const char *body, int timeout_ms, ts_resp_t *out);
/* A copy of the first header's value (case-insensitive name) into buf; NULL when absent. */
const char *ts_resp_header(const ts_resp_t *r, const char *name, char *buf, size_t size);
/* The same on a response head (status line and CRLF-separated headers; NULL: absent). */
const char *ts_head_value(const char *head, const char *name, char *buf, size_t size);
/* The body parsed as JSON: a new reference, or NULL. */
json_t *ts_resp_json(const ts_resp_t *r);
/* A problem body without its instance (the path), as a compact string with sorted keys (a
 * new string to free): two answers compare equal when they differ only in their path. */
char *ts_problem_sans_instance(const ts_resp_t *r);
void ts_resp_free(ts_resp_t *r);

/* Sends a request, asserts the status and returns the JSON body (new reference; NULL for an
 * empty body). A failed assertion shows the body. */
json_t *ts_call(int port, const char *method, const char *path, const char *token, const char *body,
                int expect_status);

/* ---- the API (api.c) ------------------------------------------------------------------------ */
/* A registered user. id is the decimal string the API uses, num the same as a number. */
typedef struct ts_user_s {
    char id[24];
    uint64_t num;
    char token[128];
    char handle[40];
} ts_user_t;

/* ts_call as user as (NULL: no token) with a printf-formatted path. */
json_t *ts_callf(int port, const char *method, const ts_user_t *as, const char *body,
                 int expect_status, const char *path_fmt, ...)
    __attribute__((format(printf, 6, 7)));
/* The status of a request, whatever it is; the body is dropped. */
int ts_status(int port, const char *method, const ts_user_t *as, const char *body,
              const char *path_fmt, ...) __attribute__((format(printf, 5, 6)));
/* A string member of obj (borrowed), "" when it is missing or not a string. */
const char *ts_str(const json_t *obj, const char *key);
/* An integer member of obj, -1 when it is missing or not an integer. */
long long ts_int(const json_t *obj, const char *key);
/* A decimal id ("123") as a number; 0 for anything else. */
uint64_t ts_id(const char *s);
/* An id member of obj, given as a decimal string or an integer; 0 when none. */
uint64_t ts_json_id(const json_t *obj, const char *key);

/* Registers a user whose handle is prefix (up to 19 characters) plus a random suffix (201). */
void ts_register(int port, const char *prefix, ts_user_t *u);
/* Registers each user of a NULL-terminated list, the first as prefix "<prefix>_a", the next
 * "<prefix>_b" and so on (prefix up to 17 characters). */
void ts_register_all(int port, const char *prefix, ts_user_t *u, ...);
/* PUT / DELETE /v1/users/{b}/follow as a (204). */
void ts_follow(int port, const ts_user_t *a, const ts_user_t *b);
void ts_unfollow(int port, const ts_user_t *a, const ts_user_t *b);
/* POST /v1/posts as u (202); returns the post id, also written to id unless NULL. */
uint64_t ts_post(int port, const ts_user_t *u, const char *text, char id[24]);
/* POST /v1/posts with token and text as ts_http_raw sends it (its result), without assertions:
 * for helper threads, and for posts that may fail. The response goes to out (ts_resp_free). */
int ts_post_raw(int port, const char *token, const char *text, int timeout_ms, ts_resp_t *out);
/* DELETE /v1/posts/{id} as u (204). */
void ts_delete_post(int port, const ts_user_t *u, const char *id);
/* PUT /v1/posts/{id}/like as u (204). */
void ts_like(int port, const ts_user_t *u, const char *post);

/* Every item of the paginated GET path (query, e.g. "types=like", appended unless NULL) as u,
 * in pages of limit, each asserted to hold at most limit items (returns a new array). */
json_t *ts_list(int port, const ts_user_t *u, const char *path, const char *query, int limit);
/* Walks u's whole home timeline in pages of limit and returns how many items it holds; the
 * first cap ids go to ids (and their authors' to authors) unless NULL. Asserts that ids fall
 * strictly (newest first, no duplicate) across pages. */
size_t ts_timeline(int port, const ts_user_t *u, int limit, uint64_t *ids, uint64_t *authors,
                   size_t cap);
/* Polls ts_timeline until it holds at least n items or timeout_ms passes; the last count. */
size_t ts_wait_timeline(int port, const ts_user_t *u, size_t n, uint64_t *ids, size_t cap,
                        int timeout_ms);

/* Is there a sample line "name value" in GET /metrics (name may carry labels, e.g.
 * tidings_fanout_job_duration_seconds_bucket{le="+Inf"})? Its value goes to value. */
bool ts_has_metric(int port, const char *name, double *value);
/* The value of that sample; fails the test when it is absent. */
double ts_metric(int port, const char *name);

/* ---- children (proc.c) --------------------------------------------------------------------- */
/* Forks and execs argv[0] (searched in PATH) with stdout and stderr sent to log_path (NULL:
 * inherited, so sanitizer reports reach the test's output). The child dies with this
 * process and is killed (SIGKILL) at exit unless reaped by ts_proc_wait. */
pid_t ts_proc_spawn(char *const argv[], const char *log_path);
/* Waits up to timeout_ms for pid; returns its wait status, or -1 if it is still running. */
int ts_proc_wait(pid_t pid, int timeout_ms);
/* Is pid still running (not exited, not reaped)? */
bool ts_proc_alive(pid_t pid);
/* SIGKILL and reap. */
void ts_proc_kill(pid_t pid);
/* Is the socket listening on 127.0.0.1:port one of pid's own? (A port drawn by
 * ts_free_port may be taken by a parallel test's child before ours binds it.) */
bool ts_proc_listens(pid_t pid, int port);

/* ---- a routed raw Redis client (redis_client.c) ------------------------------------------ */
struct redisContext;
struct redisReply;
/* A connection to 127.0.0.1:port (returns new: ts_redis_close it; at most 32 open). Commands
 * sent through the ts_redis_ calls below follow -MOVED <slot> <host>:<port> to the node named
 * (up to 5 redirections; -ASK is not followed, no slot migrates during the tests), so a test
 * reads alike on a redis-server and on a cluster. Fails the test when it cannot connect. */
struct redisContext *ts_redis_connect(int port);
/* Closes c and every node connection opened through it (a plain redisContext is just freed). */
void ts_redis_close(struct redisContext *c);
/* The reply to a command formatted as by redisCommand (returns new: freeReplyObject it); error
 * replies are returned, a missing reply fails the test. */
struct redisReply *ts_redis_cmd(struct redisContext *c, const char *fmt, ...);
/* The same, failing the test on an error reply. */
struct redisReply *ts_redis_cmd_ok(struct redisContext *c, const char *fmt, ...);
/* An integer reply's value (fails the test on any other reply). */
long long ts_redis_int(struct redisContext *c, const char *fmt, ...);
/* For pipelines, which cannot follow -MOVED: the connection serving key (c itself on a
 * redis-server), from CLUSTER SLOTS loaded on first use. Borrowed from c. */
struct redisContext *ts_redis_node_for(struct redisContext *c, const char *key);
/* The next pipelined reply on c (returns new); fails the test when none comes. */
struct redisReply *ts_redis_get_reply(struct redisContext *c);
/* One command on a new connection to the Redis url names ("redis://<host>:<port>" or a
 * cluster's seed list, whose first seed is asked), as ts_redis_cmd (returns new). */
struct redisReply *ts_redis_command(const char *url, const char *fmt, ...);
/* The same on the fixture (its first node on a cluster). */
struct redisReply *ts_redis_fixture_command(const char *fmt, ...);
/* The cluster slot of a key: CRC16 of its hash tag (the part between the first '{' and the
 * next '}', when not empty) or of the whole key, modulo 16384. */
int ts_redis_key_slot(const char *key);

/* Pipelined ZADD followers:{author}: n made-up users base … base+n-1, scored score0 + i (the
 * fan-out walks followers by score, so a score places them after or before real ones). */
void ts_add_followers(struct redisContext *c, uint64_t author, uint64_t base, size_t n,
                      uint64_t score0);
/* Pipelined over the timelines tl:{base+i}, i < n: how many hold post, the first index without
 * it (n when none), and how many hold exactly card entries (each out-pointer may be NULL). */
void ts_count_timelines(struct redisContext *c, uint64_t post, uint64_t base, size_t n,
                        long long card, size_t *holding, size_t *first_missing, size_t *with_card);
/* Does tl:{user} hold post? */
bool ts_timeline_holds(struct redisContext *c, uint64_t user, uint64_t post);
/* The job queue: its entries and how many its group holds pending, summed over the streams
 * fanout:{0..TS_FANOUT_SHARDS-1} (one without stream or group counts 0), and the length of
 * fanout:dead unless dead is NULL. */
void ts_queue(struct redisContext *c, long long *length, long long *pending, long long *dead);
/* Waits up to timeout_ms for an empty job queue, nothing pending; false on timeout. */
bool ts_wait_queue_empty(struct redisContext *c, int timeout_ms);

/* ---- a private Redis (redis.c) --------------------------------------------------------------- */
#define TS_CLUSTER_MAX 12
typedef struct ts_redis_s {
    pid_t pid;     /* the redis-server, or a private cluster's keeper (see below); 0: none */
    int port;      /* the redis-server's port, or the cluster's first master's */
    bool cluster;  /* a private Redis Cluster rather than one redis-server */
    bool aof;      /* set before starting: appendonly yes, appendfsync always (a redis-server) */
    char dir[64];  /* its working directory and logs */
    char url[256]; /* what --redis gets: redis://127.0.0.1:<port>, or the cluster's seed list */
    int nodes;     /* a private cluster's nodes, and their ports (masters first) */
    int ports[TS_CLUSTER_MAX];
} ts_redis_t;
/* Starts a private Redis of the fixture's kind and waits until it serves: a redis-server as
 * ts_redis_start(r, 0) does, or in the cluster run (ts_redis_fixture_is_cluster) a Redis
 * Cluster of 3 masters without replicas on free ports, made by redis_cluster_fixture.sh in a
 * new temporary directory (about 2.5 s). A test that wants its own Redis, but never crashes
 * it, takes this one: it then runs against a cluster in the cluster run. The cluster is
 * stopped by ts_redis_cleanup, at exit if a failed test never got there, and when the test
 * process dies any other way (a timeout's SIGKILL): its nodes daemonize, so they are not the
 * test process's children, and a keeper process (r->pid) stops them and removes the directory
 * when it gets SIGTERM, which the kernel sends it when the test process dies. Never SIGKILL
 * the keeper. */
void ts_redis_start_like_fixture(ts_redis_t *r);
/* Does 127.0.0.1:port answer PING with PONG (within 1 s)? */
bool ts_redis_pings(int port);
/* Starts a private Redis Cluster of masters masters with replicas replicas each, in either run
 * (as ts_redis_start_like_fixture does one of 3 masters; its nodes are in dir/c/<port>/). */
void ts_redis_start_cluster(ts_redis_t *r, int masters, int replicas);
/* Starts $TIDINGS_REDIS_SERVER (or redis-server) on port (0: a free one; the same port again
 * to restart it) without persistence and waits until it answers PING. For tests that crash
 * and restart their Redis (ts_redis_kill): in the cluster run it skips the calling test
 * instead, since a private cluster cannot be crashed and brought back empty on the same
 * ports, and the test on one redis-server would only repeat the binary's first run. */
void ts_redis_start(ts_redis_t *r, int port);
/* Starts a private cluster-enabled redis-server with no slots assigned (its cluster bus on
 * another free port), in either run, as ts_redis_start(r, 0) does otherwise: for commands that
 * need a cluster node but no slot (CLUSTER KEYSLOT). */
void ts_redis_start_node(ts_redis_t *r);
/* Kills the redis-server (SIGKILL) like a crash; ts_redis_start(r, r->port) brings it back.
 * Not for a private cluster (fails the test). */
void ts_redis_kill(ts_redis_t *r);
/* SHUTDOWN (the AOF flushed) and waits for the redis-server to exit; ts_redis_start(r, r->port)
 * brings it back with its data. Not for a private cluster (fails the test). */
void ts_redis_shutdown(ts_redis_t *r);
/* Kills it, or stops the private cluster, if running and removes its directory. */
void ts_redis_cleanup(ts_redis_t *r);
/* In the cluster run, skips the calling test with the reason why (a sentence); does nothing in
 * the first run. For tests that crash or restart their Redis in ways of their own. */
void ts_redis_skip_on_cluster(const char *why);

/* One node of a private cluster (ts_redis_start_cluster), for faults on a single node. The
 * node on port is the one in r->dir/c/<port>/ (its nodes.conf, AOF, pidfile and log). */
/* Sets appendfsync always and appendonly yes on every node and waits until each has written
 * its AOF (the rewrite that CONFIG SET starts): from then on a write a node acknowledged is
 * on its disk, and ts_redis_cluster_restart_node brings a node back with its data. */
void ts_redis_cluster_aof(ts_redis_t *r);
/* Kills the node on port (SIGKILL, a crash) and waits until it is gone. */
void ts_redis_cluster_kill_node(ts_redis_t *r, int port);
/* Starts the node on port again, as redis_cluster_fixture.sh started it (with the node timeout
 * and the AOF settings the other nodes run with), from its directory: its nodes.conf makes it
 * rejoin as the node it was, its AOF (if any) gives it its data back. Waits until it answers
 * PING (the AOF loaded). The keeper stops it with the others. */
void ts_redis_cluster_restart_node(ts_redis_t *r, int port);
typedef enum {
    TS_NODE_DOWN,    /* no answer within 1 s (killed, or stopped) */
    TS_NODE_MASTER,  /* role:master */
    TS_NODE_REPLICA, /* role:slave, its link to the master up */
    TS_NODE_SYNCING, /* role:slave, its link down (connecting, or syncing) */
} ts_node_role_t;
/* What the Redis node on port says of its role (INFO replication); a replica's master port
 * goes to master_port unless NULL. */
ts_node_role_t ts_redis_node_role(int port, int *master_port);
/* Does every node of the private cluster answer, say cluster_state:ok, and either serve as a
 * master or replicate with its link up? (One look; the caller waits with a deadline.) */
bool ts_redis_cluster_settled(const ts_redis_t *r);

/* ---- the tidings server (server.c) ------------------------------------------------------------ */
typedef struct ts_server_s {
    pid_t pid;
    int port;
} ts_server_t;
/* Starts ts_server_bin() --redis redis_url --listen 127.0.0.1:<free port> --log-level warn and
 * the NULL-terminated extra args (may be NULL), and waits (up to 15 s) until GET /readyz
 * answers 200, or only /healthz when wait_ready is false. Fails the test otherwise. */
void ts_server_start(ts_server_t *s, const char *redis_url, const char *const *extra,
                     bool wait_ready);
/* Same, against the fixture Redis, waiting for readiness. */
void ts_server_start_default(ts_server_t *s);
/* SIGKILL, as a crash. */
void ts_server_kill(ts_server_t *s);
/* SIGTERM, then waits up to timeout_ms (SIGKILL beyond). Returns the wait status (-1 when it
 * had to be killed). Safe to call twice. */
int ts_server_stop(ts_server_t *s, int timeout_ms);
/* ts_server_stop, expecting (cr_expect) an exit with status 0 within timeout_ms: a clean
 * shutdown, no leak. Returns how long it took (ms). */
uint64_t ts_server_stop_clean(ts_server_t *s, int timeout_ms);

#endif
