/* api/server.c -- the libmicrohttpd daemon and the life of one request.
 *
 * MHD runs a small pool of threads with internal epoll. The access handler is called
 * first with the headers: we create the api_req_t, route it and, before any body byte is
 * buffered, refuse what needs no body to refuse (a missing or bad token, an oversize body
 * declared by Content-Length). Then it is called with each piece of the body (accumulated
 * up to --max-body, or ANONYMOUS_BODY_MAX where no token is needed), then once more to
 * answer: the handler and the response it filled. NOTIFY_COMPLETED writes the access-log
 * line, records metrics and frees the request. api/connections.c keeps each connection's
 * books: the per-address cap and the deadline its request must arrive by.
 */
#include "api/server.h"
#include "api/connections.h"
#include "api/listener.h"
#include "api/log.h"
#include "api/utf8.h"
#include "storage/redis/redis.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CONNECTION_TIMEOUT_S 60
/* Per connection: headers only (bodies are ours), and what an open stream idles in, so
 * 10,000 streams cost 40 MB here. About 3 KiB of it is left for a request's headers
 * (openapi.yaml says what happens past that). */
#define CONNECTION_MEMORY 4096
/* Routes that need no token take small bodies (registration): a stranger's upload is buffered
 * before anything is known of them. */
#define ANONYMOUS_BODY_MAX 4096

struct api_server_s {
    api_t *api;
    api_connections_t *connections;
    struct MHD_Daemon *daemon;
    api_listener_t *listener; /* accepts for the daemon (api/listener.c says why) */
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
    if (r->rate_policy[0]) {
        MHD_add_response_header(resp, "RateLimit-Policy", r->rate_policy);
        MHD_add_response_header(resp, "RateLimit", r->rate_state);
    }
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
    for (size_t i = 0; i < r->n_extra; i++)
        MHD_add_response_header(resp, r->extra[i].name, r->extra[i].value);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    /* Browsers must take every body as the Content-Type says (a problem document, JSON, the
     * stream), never sniff one into HTML. */
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    enum MHD_Result ok = MHD_queue_response(r->conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return ok;
}

static bool needs_token(const api_req_t *r)
{
    return r->route >= 0 && api_routes[r->route].auth;
}

static size_t body_max(const api_req_t *r)
{
    size_t max = r->api->cfg->max_body;
    return needs_token(r) || max < ANONYMOUS_BODY_MAX ? max : ANONYMOUS_BODY_MAX;
}

/* The caller's token: Authorization, or for the stream alone ?ticket= (one use, see
 * POST /v1/stream/tickets) or ?access_token= (browsers' EventSource cannot set headers;
 * query strings stay out of the access log). */
static bool authenticate(api_req_t *r)
{
    bool stream = api_routes[r->route].handler == api_stream_get;
    const char *ticket =
        stream ? MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "ticket") : NULL;
    const char *query_token =
        stream ? MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "access_token") : NULL;
    r->authenticated = ticket        ? api_authenticate_ticket(r, ticket)
                       : query_token ? api_authenticate_token(r, query_token)
                                     : api_authenticate(r);
    return r->authenticated;
}

/* Is a body on its way (a Content-Length above 0, or chunks)? */
static bool announces_body(struct MHD_Connection *conn)
{
    const char *cl =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    return (cl && strcmp(cl, "0") != 0) ||
           MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
}

/* With the headers alone: answers what can be answered before the body (false), so a
 * stranger's upload is never buffered for a route that needs a token, and a request over
 * its rate limit costs no upload either. A request without a body has its rate check
 * merged into its handler's first batch instead (api_rate_handle): no round trip of its
 * own. */
static bool admit(api_req_t *r)
{
    if (r->body_too_large) {
        api_problem(r, API_TOO_LARGE, "the body is larger than %zu bytes", body_max(r));
        return false;
    }
    return (!needs_token(r) || authenticate(r)) && api_rate_check(r, announces_body(r->conn));
}

static void dispatch(api_req_t *r)
{
    if (r->body_too_large) {
        api_problem(r, API_TOO_LARGE, "the body is larger than %zu bytes", body_max(r));
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
    if (route->auth && !r->authenticated && !authenticate(r))
        return;
    api_rate_handle(r, route->handler);
    if (!r->status)
        api_problem(r, API_INTERNAL, "the handler gave no answer");
}

/* ---- the phases that talk to Redis, as fibers ----------------------------------------------
 * A phase runs as a fiber (storage/redis/redis.h): when its batch goes to Redis, the fiber
 * parks, the connection is suspended and the thread serves others; the I/O thread's wake
 * resumes the connection, and libmicrohttpd calls on_request again for the same step (the
 * first call for admission, the final one for the handler), which runs the fiber on. The
 * connection is suspended before the fiber's commands are sent, so the wake can never come
 * before the suspension. */

static void run_admit(api_req_t *r)
{
    r->admitted = admit(r);
}

static void phase_main(void *arg)
{
    api_req_t *r = arg;
    if (r->phase == API_REQ_ADMIT)
        run_admit(r);
    else
        dispatch(r);
}

/* The I/O thread: the parked fiber's replies are in. Resumed before it is counted down, so
 * shutdown never sees zero with this connection still suspended. */
static void phase_wake(void *arg)
{
    api_req_t *r = arg;
    api_t *api = r->api;
    MHD_resume_connection(r->conn);
    atomic_fetch_sub(&api->metrics.requests_parked, 1);
}

bool api_fiber_step(api_t *api, struct storage_redis_fiber_s **fiber, void (*fn)(void *),
                    void (*wake)(void *), void *arg, atomic_llong *suspended,
                    struct MHD_Connection *conn)
{
    if (!*fiber)
        *fiber = storage_redis_fiber_new(fn, arg, wake, arg);
    if (!*fiber) { /* no memory for a stack: the thread waits instead */
        fn(arg);
        return true;
    }
    /* Counted before the close is read (both sequentially consistent): either shutdown
     * sees this count, or this step sees the close and does not park. */
    atomic_fetch_add(suspended, 1);
    if (atomic_load(&api->suspends_closed))
        storage_redis_fiber_cancel(*fiber);
    if (!storage_redis_fiber_run(*fiber)) {
        MHD_suspend_connection(conn); /* before the commands go: the wake never comes first */
        storage_redis_fiber_send(*fiber);
        return false;
    }
    atomic_fetch_sub(suspended, 1);
    storage_redis_fiber_free(*fiber);
    *fiber = NULL;
    return true;
}

void api_suspends_close(api_t *api)
{
    atomic_store(&api->suspends_closed, true);
}

/* Runs (or runs on) the current phase: true when it is over, false when it parked. */
static bool run_phase(api_req_t *r)
{
    return api_fiber_step(r->api, &r->fiber, phase_main, phase_wake, r,
                          &r->api->metrics.requests_parked, r->conn);
}

/* Admission, and the answer to the first call once it is over. */
static enum MHD_Result admit_step(api_req_t *r)
{
    if (!run_phase(r))
        return MHD_YES;
    r->phase = API_REQ_BODY;
    if (r->admitted || !announces_body(r->conn))
        return MHD_YES; /* a refusal without a body is sent at the final call: the
                         * connection stays open for the next request */
    /* An answer queued now makes libmicrohttpd refuse the body and close afterwards. */
    r->answered_early = true;
    return send_response(r);
}

static enum MHD_Result dispatch_step(api_req_t *r)
{
    if (!run_phase(r))
        return MHD_YES;
    r->phase = API_REQ_ANSWERED;
    return send_response(r);
}

static void request_free(api_req_t *r)
{
    free(r->path);
    free(r->route_path);
    free(r->body);
    free(r->resp_body);
    storage_rate_gate_free(r->rate_gate);
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
    const api_address_t *peer = api_connections_peer(conn);
    if (peer)
        api_client_address(&api->cfg->trusted_proxies, peer,
                           MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Forwarded-For"),
                           &r->client);
    atomic_fetch_add(&api->metrics.in_flight, 1);
    return r;
}

/* Does a declared Content-Length exceed the limit? */
static bool declared_too_large(struct MHD_Connection *conn, size_t max)
{
    const char *cl =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
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
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls)
{
    (void)version;
    api_t *api = cls;
    api_req_t *r = *req_cls;
    if (!r) {
        r = request_new(api, conn, url, method);
        if (!r)
            return MHD_NO;
        *req_cls = r;
        r->body_too_large = declared_too_large(conn, body_max(r));
        return admit_step(r);
    }
    if (r->phase == API_REQ_ADMIT) /* the first call again, after a park */
        return admit_step(r);
    if (r->phase == API_REQ_DISPATCH) /* the final call again, after a park */
        return dispatch_step(r);
    if (*upload_data_size) {
        /* Past the limit the rest is read and dropped: answering before the client has
         * sent it all would make the kernel reset the connection and lose the answer. */
        if (!append_body(r, upload_data, *upload_data_size, body_max(r)))
            return MHD_NO;
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (r->answered_early)
        return MHD_YES;
    api_connections_request_read(conn);
    if (r->status) /* refused with the headers */
        return send_response(r);
    r->phase = API_REQ_DISPATCH;
    return dispatch_step(r);
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
    api_t *api = cls;
    api_req_t *r = *req_cls;
    if (!r)
        return;
    *req_cls = NULL;
    if (r->fiber) {
        /* Only a parked fiber that was woken can be here (a suspended connection is never
         * completed: the daemon stops only once none is parked): let it finish, its
         * batches refused from now on. */
        storage_redis_fiber_cancel(r->fiber);
        while (!storage_redis_fiber_run(r->fiber))
            ;
        storage_redis_fiber_free(r->fiber);
        r->fiber = NULL;
    }
    double seconds = (double)(now_ns() - r->start_ns) / 1e9;
    int status = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? r->status : 0;
    if (status)
        api_metrics_observe(&api->metrics, r->route, status, seconds);
    char path[512];
    printable_copy(path, sizeof(path), r->path);
    api_utf8_sanitize(path); /* a percent-decoded path may be any bytes, or cut mid-character */
    log_access(r->method, path, status, seconds, r->resp_len,
               r->route >= 0 ? api_routes[r->route].pattern : "-");
    atomic_fetch_sub(&api->metrics.in_flight, 1);
    request_free(r);
    api_connections_request_done(conn);
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
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    if (getaddrinfo(hlen ? host : NULL, colon + 1, &hints, &res) != 0 || !res)
        return false;
    memcpy(addr, res->ai_addr, res->ai_addrlen);
    *v6 = res->ai_family == AF_INET6;
    freeaddrinfo(res);
    return true;
}

/* A connection's start and end: its books (api/connections.c), and its room in the listener. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    api_server_t *srv = cls;
    api_connections_notify(srv->connections, conn, socket_context, code);
    if (code == MHD_CONNECTION_NOTIFY_CLOSED)
        api_listener_released(srv->listener);
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
    api_connections_config_t ccfg = {.per_address_max =
                                         (size_t)api->cfg->max_connections_per_address,
                                     .request_deadline_ms = api->cfg->request_deadline_s * 1000,
                                     .trusted = &api->cfg->trusted_proxies};
    srv->connections = api_connections_create(&ccfg);
    if (!srv->connections) {
        free(srv);
        return NULL;
    }
    api->connections = api_connections_stats(srv->connections);
    size_t limit = api_connection_limit((size_t)api->cfg->max_connections);
    socklen_t addrlen = v6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    srv->listener = api_listener_open((struct sockaddr *)&addr, addrlen, limit);
    if (!srv->listener) {
        LOG_ERRNO(LOG_ERROR, "http", errno, "cannot listen on %s", api->cfg->listen);
        goto fail;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC |
                     MHD_USE_NO_LISTEN_SOCKET | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    /* The listener keeps the limit; each worker's share of MHD's must hold all of it
     * (api/listener.c says why). */
    size_t mhd_limit = limit * (size_t)api->cfg->threads;
    srv->daemon = MHD_start_daemon(
        flags, 0, api_connections_admit, srv->connections, on_request, api,
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)api->cfg->threads, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONNECTION_TIMEOUT_S,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)mhd_limit, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)CONNECTION_MEMORY, MHD_OPTION_NOTIFY_COMPLETED, on_completed, api,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv, MHD_OPTION_END);
    if (!srv->daemon) {
        LOG(LOG_ERROR, "http", "cannot start the HTTP daemon for %s", api->cfg->listen);
        goto fail;
    }
    int rc = api_listener_start(srv->listener, srv->daemon);
    if (rc != 0) {
        LOG_ERRNO(LOG_ERROR, "http", rc, "cannot start accepting on %s", api->cfg->listen);
        MHD_stop_daemon(srv->daemon);
        goto fail;
    }
    return srv;
fail:
    api_listener_free(srv->listener);
    api->connections = NULL;
    api_connections_destroy(srv->connections);
    free(srv);
    return NULL;
}

int api_server_port(const api_server_t *srv)
{
    return api_listener_port(srv->listener);
}

void api_server_quiesce(api_server_t *srv)
{
    api_listener_close(srv->listener);
}

long long api_server_parked(const api_server_t *srv)
{
    return atomic_load(&srv->api->metrics.requests_parked);
}

long long api_server_in_flight(const api_server_t *srv)
{
    return atomic_load(&srv->api->metrics.in_flight);
}

void api_server_stop(api_server_t *srv)
{
    if (!srv)
        return;
    api_listener_close(srv->listener); /* no connection added to a daemon being stopped */
    MHD_stop_daemon(srv->daemon);
    api_listener_free(srv->listener);
    srv->api->connections = NULL;
    api_connections_destroy(srv->connections);
    free(srv);
}
