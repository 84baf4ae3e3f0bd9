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
 * usage: tidings-ceiling [--listen 127.0.0.1:PORT] [--threads N] [--connection-limit N]
 *                        [--connection-memory BYTES]
 * The last two follow api/server.c when it changes them (memory 0: MHD's default, 32 KiB).
 * With port 0 it picks a free port. It prints "listening on 127.0.0.1:PORT" once bound and
 * runs until SIGINT or SIGTERM.
 */
#include <microhttpd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
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

/* A non-NULL marker on *req_cls tells the first call (headers) from the later ones. */
static int request_marker;

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
               " [--connection-limit N] [--connection-memory BYTES]\n");
}

int main(int argc, char **argv)
{
    const char *listen = "127.0.0.1:0";
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
