/* tests/support/support.h -- what the test binaries share: the fixture Redis, unique names,
 * a raw HTTP/1.1 client, and child processes (the tidings binary, a private redis-server).
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
/* The value of an environment variable the test needs (fails the test when unset). */
const char *ts_env(const char *name);
/* prefix, '_' and 10 random [a-z0-9]: a handle (or key) no parallel test uses. */
void ts_unique(char *buf, size_t size, const char *prefix);
/* A loopback port that was free a moment ago. */
int ts_free_port(void);
uint64_t ts_now_ms(void); /* monotonic */
void ts_sleep_ms(int ms);

/* ---- HTTP client (http.c) ----------------------------------------------------------------- */
typedef struct ts_resp_s {
    int status;      /* 0 when no status line arrived */
    char *head;      /* status line and header lines, CRLF-separated (owned) */
    char *body;      /* NUL-terminated (owned) */
    size_t body_len;
    bool closed;     /* the server closed the connection before we stopped reading */
} ts_resp_t;

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
/* A copy of the first header's value (case-insensitive name) into buf; NULL when absent. */
const char *ts_resp_header(const ts_resp_t *r, const char *name, char *buf, size_t size);
/* The body parsed as JSON: a new reference, or NULL. */
json_t *ts_resp_json(const ts_resp_t *r);
void ts_resp_free(ts_resp_t *r);

/* Sends a request, asserts the status and returns the JSON body (new reference; NULL for an
 * empty body). A failed assertion shows the body. */
json_t *ts_call(int port, const char *method, const char *path, const char *token,
                const char *body, int expect_status);

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

/* ---- the fixture Redis, one command at a time (redis.c) ------------------------------------ */
struct redisReply;
/* Runs one command (formatted as by hiredis' redisCommand) on a new connection to the
 * fixture and returns its reply (returns new: freeReplyObject it). On a cluster the first
 * node answers -MOVED <slot> <host>:<port> for a key it does not serve; the command then goes
 * to that node instead (up to 5 redirections; -ASK is not followed, no slot migrates during
 * the tests). Any other error reply is returned. Fails the test when no node answers. */
struct redisReply *ts_redis_fixture_command(const char *fmt, ...);

/* ---- a private redis-server (redis.c) -------------------------------------------------------- */
typedef struct ts_redis_s {
    pid_t pid;
    int port;
    char dir[64]; /* its working directory and log */
} ts_redis_t;
/* Starts $TIDINGS_REDIS_SERVER (or redis-server) on port (0: a free one; the same port again
 * to restart it) without persistence and waits until it answers PING. In the cluster run
 * (ts_redis_fixture_is_cluster) it skips the calling test instead: a test on a private
 * single redis-server would only repeat the binary's first run and says nothing about the
 * cluster. */
void ts_redis_start(ts_redis_t *r, int port);
/* Kills it (SIGKILL) like a crash; ts_redis_start(r, r->port) brings it back. */
void ts_redis_kill(ts_redis_t *r);
/* Kills it if running and removes its directory. */
void ts_redis_cleanup(ts_redis_t *r);

/* ---- the tidings server (server.c) ------------------------------------------------------------ */
typedef struct ts_server_s {
    pid_t pid;
    int port;
} ts_server_t;
/* Starts $TIDINGS_BIN --redis redis_url --listen 127.0.0.1:<free port> --log-level warn and
 * the NULL-terminated extra args (may be NULL), and waits (up to 15 s) until GET /readyz
 * answers 200, or only /healthz when wait_ready is false. Fails the test otherwise. */
void ts_server_start(ts_server_t *s, const char *redis_url, const char *const *extra,
                     bool wait_ready);
/* Same, against the fixture Redis, waiting for readiness. */
void ts_server_start_default(ts_server_t *s);
/* SIGTERM, then waits up to timeout_ms (SIGKILL beyond). Returns the wait status (-1 when it
 * had to be killed). Safe to call twice. */
int ts_server_stop(ts_server_t *s, int timeout_ms);

#endif
