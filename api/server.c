/* api/server.c -- the libmicrohttpd daemon and the life of one request.
 *
 * MHD runs a small pool of threads with internal epoll. The access handler is called
 * first with the headers (we create the api_req_t and may refuse an oversize body at
 * once from Content-Length), then with each piece of the body (accumulated up to
 * --max-body), then once more to answer: routing, authentication, the handler, and the
 * response it filled. NOTIFY_COMPLETED writes the access-log line, records metrics and
 * frees the request.
 */
#include "api/server.h"
#include "api/log.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CONNECTION_TIMEOUT_S 60
#define CONNECTION_MEMORY 8192 /* per connection: headers only (bodies are ours); SSE idles here */

struct api_server_s {
    api_t *api;
    struct MHD_Daemon *daemon;
    int port;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static enum MHD_Result send_response(api_req_t *r)
{
    struct MHD_Response *resp = r->custom;
    r->custom = NULL;
    if (!resp) {
        resp = MHD_create_response_from_buffer(r->resp_len, r->resp_body, MHD_RESPMEM_MUST_FREE);
        if (!resp)
            return MHD_NO;
        r->resp_body = NULL; /* the response owns it now */
    }
    if (r->content_type)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type);
    if (r->location[0])
        MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, r->location);
    if (r->allow[0])
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
    if (r->retry_after) {
        char v[16];
        snprintf(v, sizeof(v), "%d", r->retry_after);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, v);
    }
    if (r->api->cfg->cors_origin[0]) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCESS_CONTROL_ALLOW_ORIGIN,
                                r->api->cfg->cors_origin);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY, "Origin");
        if (strcmp(r->method, "OPTIONS") == 0) { /* a preflight */
            MHD_add_response_header(resp, "Access-Control-Allow-Methods", "GET, OPTIONS");
            MHD_add_response_header(resp, "Access-Control-Allow-Headers",
                                    "Authorization, Last-Event-ID");
            MHD_add_response_header(resp, "Access-Control-Max-Age", "600");
        }
    }
    if (r->status == MHD_HTTP_UNAUTHORIZED) /* RFC 9110 §11.6.1 */
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"tidings\"");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    enum MHD_Result ok = MHD_queue_response(r->conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return ok;
}

static void dispatch(api_req_t *r)
{
    if (r->body_too_large) {
        api_problem(r, API_TOO_LARGE, "the body is larger than %zu bytes", r->api->cfg->max_body);
        return;
    }
    if (r->route == -2) {
        api_problem(r, API_METHOD_NOT_ALLOWED, "%s is not allowed here; use %s", r->method,
                    r->allow);
        return;
    }
    if (r->route < 0) {
        r->allow[0] = '\0';
        api_problem(r, API_NOT_FOUND, "no such route");
        return;
    }
    r->allow[0] = '\0';
    const api_route_t *route = &api_routes[r->route];
    /* Browsers' EventSource cannot set headers, so the stream alone also takes the token
     * from ?access_token= (query strings stay out of the access log). */
    const char *query_token =
        route->handler == api_stream_get
            ? MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "access_token")
            : NULL;
    if (route->auth && !(query_token ? api_authenticate_token(r, query_token) : api_authenticate(r)))
        return;
    route->handler(r);
    if (!r->status)
        api_problem(r, API_INTERNAL, "the handler gave no answer");
}

static void request_free(api_req_t *r)
{
    free(r->path);
    free(r->route_path);
    free(r->body);
    free(r->resp_body);
    if (r->custom)
        MHD_destroy_response(r->custom);
    free(r);
}

static api_req_t *request_new(api_t *api, struct MHD_Connection *conn, const char *url,
                              const char *method)
{
    api_req_t *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->path = strdup(url);
    r->route_path = strdup(url);
    if (!r->path || !r->route_path) {
        request_free(r);
        return NULL;
    }
    r->api = api;
    r->conn = conn;
    r->method = method;
    r->start_ns = now_ns();
    r->route = api_route_match(method, r->route_path, r->params, r->allow, sizeof(r->allow));
    atomic_fetch_add(&api->metrics.in_flight, 1);
    return r;
}

/* Does a declared Content-Length exceed the limit? */
static bool declared_too_large(struct MHD_Connection *conn, size_t max)
{
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (!cl)
        return false;
    char *end;
    unsigned long long v = strtoull(cl, &end, 10);
    return *end == '\0' && v > max;
}

static bool append_body(api_req_t *r, const char *data, size_t len, size_t max)
{
    if (r->body_too_large || r->body_len + len > max) {
        r->body_too_large = true;
        return true;
    }
    if (r->body_len + len + 1 > r->body_cap) {
        size_t cap = r->body_cap ? r->body_cap : 1024;
        while (cap < r->body_len + len + 1)
            cap *= 2;
        char *b = realloc(r->body, cap);
        if (!b)
            return false;
        r->body = b;
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, data, len);
    r->body_len += len;
    r->body[r->body_len] = '\0';
    return true;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **req_cls)
{
    (void)version;
    api_t *api = cls;
    api_req_t *r = *req_cls;
    if (!r) {
        r = request_new(api, conn, url, method);
        if (!r)
            return MHD_NO;
        *req_cls = r;
        if (declared_too_large(conn, api->cfg->max_body)) {
            r->body_too_large = true;
            dispatch(r);
            return send_response(r);
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        /* Past the limit the rest is read and dropped: answering before the client has
         * sent it all would make the kernel reset the connection and lose the answer. */
        if (!append_body(r, upload_data, *upload_data_size, api->cfg->max_body))
            return MHD_NO;
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (r->status) /* already answered (413 before the body) */
        return MHD_YES;
    dispatch(r);
    return send_response(r);
}

/* Keeps control characters out of log lines (the path arrives percent-decoded). */
static void printable_copy(char *dst, size_t size, const char *src)
{
    size_t i = 0;
    for (; src[i] && i < size - 1; i++)
        dst[i] = (unsigned char)src[i] < 0x20 || src[i] == 0x7f ? '?' : src[i];
    dst[i] = '\0';
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)conn;
    api_t *api = cls;
    api_req_t *r = *req_cls;
    if (!r)
        return;
    *req_cls = NULL;
    double seconds = (double)(now_ns() - r->start_ns) / 1e9;
    int status = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? r->status : 0;
    if (status)
        api_metrics_observe(&api->metrics, r->route, status, seconds);
    char path[512];
    printable_copy(path, sizeof(path), r->path);
    log_access(r->method, path, status, seconds, r->resp_len,
               r->route >= 0 ? api_routes[r->route].pattern : "-");
    atomic_fetch_sub(&api->metrics.in_flight, 1);
    request_free(r);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    LOG_RATELIMITED(LOG_WARN, "http", 0, "%s", msg);
}

/* Resolves "host:port" ("[v6]:port" too) into addr; false when it does not parse. */
static bool resolve_listen(const char *listen, struct sockaddr_storage *addr, bool *v6)
{
    char host[256];
    const char *colon = strrchr(listen, ':');
    if (!colon || (size_t)(colon - listen) >= sizeof(host))
        return false;
    const char *h = listen;
    size_t hlen = (size_t)(colon - listen);
    if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    if (getaddrinfo(hlen ? host : NULL, colon + 1, &hints, &res) != 0 || !res)
        return false;
    memcpy(addr, res->ai_addr, res->ai_addrlen);
    *v6 = res->ai_family == AF_INET6;
    freeaddrinfo(res);
    return true;
}

api_server_t *api_server_start(api_t *api)
{
    struct sockaddr_storage addr;
    bool v6 = false;
    if (!resolve_listen(api->cfg->listen, &addr, &v6)) {
        LOG(LOG_ERROR, "http", "cannot resolve --listen %s", api->cfg->listen);
        return NULL;
    }
    api_server_t *srv = calloc(1, sizeof(*srv));
    if (!srv)
        return NULL;
    srv->api = api;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC |
                     MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG | (v6 ? MHD_USE_IPv6 : 0);
    srv->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, api, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)api->cfg->threads, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)CONNECTION_TIMEOUT_S, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)(api->cfg->max_streams + 1024), MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)CONNECTION_MEMORY,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, api, MHD_OPTION_END);
    if (!srv->daemon) {
        LOG(LOG_ERROR, "http", "cannot listen on %s", api->cfg->listen);
        free(srv);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = info ? info->port : 0;
    return srv;
}

int api_server_port(const api_server_t *srv)
{
    return srv->port;
}

void api_server_quiesce(api_server_t *srv)
{
    MHD_socket fd = MHD_quiesce_daemon(srv->daemon);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
}

long long api_server_in_flight(const api_server_t *srv)
{
    return atomic_load(&srv->api->metrics.in_flight);
}

void api_server_stop(api_server_t *srv)
{
    if (!srv)
        return;
    MHD_stop_daemon(srv->daemon);
    free(srv);
}
