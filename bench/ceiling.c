/* bench/ceiling.c -- the publishing ceiling: libmicrohttpd answering a static 202.
 *
 * DESIGN §7 measures POST /v1/posts against "a static 202 reply served by libmicrohttpd
 * itself". This server is that reply. Its daemon is started with exactly the flags and
 * options api/server.c uses (internal polling thread pool, epoll, ITC, suspend/resume,
 * the same connection timeout, limit and backlog, a completion callback) so that the
 * only difference from tidings is the work done inside the handler. The handler follows
 * the same three-call pattern as tidings (headers, body pieces, answer), drops the body,
 * and answers with a JSON body of about the size of a post.
 *
 * With --park, every request is parked as tidings parks one that waits for Redis: the final
 * call suspends the connection and hands it to another thread, which resumes it, and the
 * answer goes out on the call after. With --park-redis HOST:PORT, that thread first sends one
 * PING per parked request to Redis (all the requests parked since its last turn pipelined on
 * one connection) and resumes each once its reply is in. These are ceilings for any handler
 * that waits once for Redis inside libmicrohttpd's thread pool: what the suspend, the wake
 * and the round trip cost with no work of tidings' own. With --block-redis HOST:PORT, the
 * handler's thread instead sends a PING on a connection of its own and waits for the reply
 * (the design before fibers; try it with more --threads).
 *
 * usage: tidings-ceiling [--listen 127.0.0.1:PORT] [--threads N] [--connection-limit N]
 *                        [--connection-memory BYTES] [--park | --park-redis HOST:PORT]
 *                        [--block-redis HOST:PORT]
 * The last two follow api/server.c when it changes them (memory 0: MHD's default, 32 KiB).
 * With port 0 it picks a free port. It prints "listening on 127.0.0.1:PORT" once bound and
 * runs until SIGINT or SIGTERM.
 */
#include <hiredis/hiredis.h>
#include <microhttpd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Kept equal to api/server.c (the limit is its --max-streams default, 20,000, plus 1,024). */
#define CONNECTION_TIMEOUT_S 60
#define CONNECTION_LIMIT (20000 + 1024)
#define CONNECTION_MEMORY 4096 /* as api/server.c's */
#define LISTEN_BACKLOG 1024

static const char BODY[] =
    "{\"id\":\"1234567890123456\",\"author\":{\"id\":\"1234567890123\",\"handle\":\"bench\","
    "\"display_name\":\"bench\"},\"text\":\"benchmark post\",\"reply_to\":null,\"mentions\":[],"
    "\"created_at\":\"2024-01-01T00:00:00.000Z\",\"like_count\":0,\"repost_count\":0}";

/* A non-NULL marker on *req_cls tells the first call (headers) from the later ones;
 * parked_marker, a request that was parked and resumed. */
static int request_marker, parked_marker;

/* ---- parking (--park, --park-redis) ------------------------------------------------------ */

#define PARK_MAX 4096 /* more than the connections a benchmark opens */

static bool park_on;
static const char *block_redis_addr; /* --block-redis: a blocking PING per request instead */
static redisContext *park_redis;
static pthread_mutex_t park_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t park_cond = PTHREAD_COND_INITIALIZER;
static struct MHD_Connection *parked[PARK_MAX];
static size_t n_parked;

static void park(struct MHD_Connection *conn)
{
    MHD_suspend_connection(conn);
    pthread_mutex_lock(&park_lock);
    if (n_parked < PARK_MAX) {
        parked[n_parked++] = conn;
        if (n_parked == 1)
            pthread_cond_signal(&park_cond);
        conn = NULL;
    }
    pthread_mutex_unlock(&park_lock);
    if (conn) /* no room: resumed at once, as a full queue would fail the request */
        MHD_resume_connection(conn);
}

/* The waking thread: takes every connection parked since its last turn, pings Redis once
 * for each (pipelined) when asked to, and resumes them. */
static void *resumer(void *arg)
{
    (void)arg;
    static struct MHD_Connection *batch[PARK_MAX];
    for (;;) {
        pthread_mutex_lock(&park_lock);
        while (!n_parked)
            pthread_cond_wait(&park_cond, &park_lock);
        size_t n = n_parked;
        memcpy(batch, parked, n * sizeof(*batch));
        n_parked = 0;
        pthread_mutex_unlock(&park_lock);
        if (park_redis) {
            for (size_t i = 0; i < n; i++)
                redisAppendCommand(park_redis, "PING");
            for (size_t i = 0; i < n; i++) {
                void *reply = NULL;
                if (redisGetReply(park_redis, &reply) != REDIS_OK) {
                    fprintf(stderr, "redis: %s\n", park_redis->errstr);
                    exit(1);
                }
                freeReplyObject(reply);
            }
        }
        for (size_t i = 0; i < n; i++)
            MHD_resume_connection(batch[i]);
    }
    return NULL;
}

static redisContext *connect_redis(const char *addr)
{
    const char *colon = strrchr(addr, ':');
    char host[64];
    if (!colon || (size_t)(colon - addr) >= sizeof(host))
        return NULL;
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    redisContext *c = redisConnect(host, atoi(colon + 1));
    if (!c || c->err) {
        fprintf(stderr, "cannot reach Redis at %s\n", addr);
        return NULL;
    }
    return c;
}

/* --block-redis: the handler's thread waits for its own PING on a connection of its own, as
 * tidings' handlers did before the fibers. */
static bool block_ping(void)
{
    static _Thread_local redisContext *c;
    if (!c && !(c = connect_redis(block_redis_addr)))
        return false;
    redisReply *r = redisCommand(c, "PING");
    freeReplyObject(r);
    return r != NULL;
}

static bool park_start(const char *redis_addr)
{
    park_on = true;
    if (redis_addr && !(park_redis = connect_redis(redis_addr)))
        return false;
    pthread_t t;
    return pthread_create(&t, NULL, resumer, NULL) == 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls)
{
    (void)cls, (void)url, (void)method, (void)version, (void)upload_data;
    if (!*req_cls) {
        *req_cls = &request_marker;
        return MHD_YES;
    }
    if (*upload_data_size) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (block_redis_addr && !block_ping())
        return MHD_NO;
    if (park_on && *req_cls != &parked_marker) {
        *req_cls = &parked_marker;
        park(conn);
        return MHD_YES;
    }
    /* The body is static, so MHD need not copy it. */
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        sizeof(BODY) - 1, (void *)(uintptr_t)BODY, MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    enum MHD_Result ok = MHD_queue_response(conn, MHD_HTTP_ACCEPTED, resp);
    MHD_destroy_response(resp);
    return ok;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls, (void)conn, (void)toe;
    *req_cls = NULL;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: tidings-ceiling [--listen 127.0.0.1:PORT] [--threads N]"
               " [--connection-limit N] [--connection-memory BYTES]"
               " [--park | --park-redis HOST:PORT | --block-redis HOST:PORT]\n");
}

int main(int argc, char **argv)
{
    const char *listen = "127.0.0.1:0";
    const char *park_redis_addr = NULL;
    bool park_asked = false;
    long threads = 4, limit = CONNECTION_LIMIT, memory = CONNECTION_MEMORY;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc) {
            listen = argv[++i];
        } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            threads = strtol(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--connection-limit") == 0 && i + 1 < argc) {
            limit = strtol(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--connection-memory") == 0 && i + 1 < argc) {
            memory = strtol(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--park") == 0) {
            park_asked = true;
        } else if (strcmp(argv[i], "--park-redis") == 0 && i + 1 < argc) {
            park_asked = true;
            park_redis_addr = argv[++i];
        } else if (strcmp(argv[i], "--block-redis") == 0 && i + 1 < argc) {
            block_redis_addr = argv[++i];
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (threads < 1 || threads > 256 || limit < 1 || memory < 0) {
        fprintf(stderr, "--threads must be 1..256, --connection-limit positive\n");
        return 2;
    }
    const char *colon = strrchr(listen, ':');
    char host[64];
    if (!colon || (size_t)(colon - listen) >= sizeof(host)) {
        fprintf(stderr, "--listen must be HOST:PORT\n");
        return 2;
    }
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        fprintf(stderr, "--listen host must be an IPv4 address\n");
        return 2;
    }

    if (park_asked && !park_start(park_redis_addr))
        return 1;
    /* Blocked before MHD starts its threads, so that only sigwait() below takes them. */
    signal(SIGPIPE, SIG_IGN);
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC |
                     MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)threads, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)CONNECTION_TIMEOUT_S, MHD_OPTION_CONNECTION_LIMIT, (unsigned)limit,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(memory ? memory : 32 * 1024),
        MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)LISTEN_BACKLOG, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, NULL, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "cannot listen on %s\n", listen);
        return 1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    printf("listening on %s:%u (%ld threads)\n", host, info ? (unsigned)info->port : 0u, threads);
    fflush(stdout);
    int sig;
    sigwait(&stop_signals, &sig);
    MHD_stop_daemon(d);
    return 0;
}
