/* bench/abuse_load.c -- an abusive client from one loopback address, for bench/abuse.sh.
 *
 * Four kinds of connection, all bound to --source (a 127/8 address other than the
 * well-behaved client's, so the server's per-address books tell the two apart), on one epoll
 * thread:
 *   post      POST /v1/posts with the abuser's token as fast as answers come (closed loop:
 *             one request in flight per connection; 429 once its bucket is dry);
 *   register  POST /v1/users with a fresh handle each time (429 per address);
 *   drip      a POST /v1/posts written one byte per --drip-interval-ms (the request deadline
 *             cuts it);
 *   idle      connected and silent (the request deadline cuts it; past the per-address cap
 *             the server refuses it at once).
 * They are opened in that order, so the floods hold their connections before the idle ones
 * fill the cap. A flood connection the server closes (after a 429, or refused at the cap) is
 * reopened at once (--flood-reconnect-ms), an idle or drip one after --reconnect-ms, so the
 * pressure lasts the whole run: a connection closed with a request unanswered counts as
 * *refused* when it lived less than REFUSED_NS (the cap shuts it at accept), else as *cut*
 * (the request deadline).
 * Everything is bounded by --duration (SIGTERM ends it early, with the report) and, for the
 * floods, --requests; the output is a table per kind and one "RESULT key=value ..." line.
 */
#include "bench/bench_lib.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

/* Linux's value (linux/in.h, not in glibc's netinet/in.h): bind the address now and pick
 * the port at connect(), so thousands of reconnects share ports by 4-tuple. */
#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define REQ_MAX 4096
#define RBUF_MAX 16384
#define REFUSED_NS (1 * NS_PER_S)

typedef enum { K_POST, K_REGISTER, K_DRIP, K_IDLE, K_COUNT } kind_t;
static const char *const kind_names[K_COUNT] = {"post", "register", "drip", "idle"};

enum { C_DOWN, C_CONNECTING, C_OPEN };

static struct {
    int port;
    const char *source;
    struct in_addr source_addr;
    const char *token;
    int conns[K_COUNT];
    double duration_s;
    uint64_t max_requests;
    int reconnect_ms;       /* idle and drip connections */
    int flood_reconnect_ms; /* post and register connections; 0: at once */
    int drip_interval_ms;
    bool quiet;
} opt = {
    .source = "127.0.0.2",
    .conns = {[K_POST] = 8, [K_REGISTER] = 4, [K_DRIP] = 16, [K_IDLE] = 160},
    .duration_s = 20,
    .max_requests = 10000000,
    .reconnect_ms = 100,
    .flood_reconnect_ms = 0,
    .drip_interval_ms = 1000,
};

typedef struct {
    uint64_t opened;         /* connections established */
    uint64_t connect_errors; /* connect() failed (refused by the kernel, no port, ...) */
    uint64_t refused;        /* closed by the server, never answered, within REFUSED_NS */
    uint64_t cut;            /* closed by the server later, with a request unanswered */
    uint64_t closed_idle;    /* closed by the server between answers (keep-alive ended) */
    uint64_t sent;           /* requests written whole (floods) or bytes written (drip) */
    uint64_t answered;
    uint64_t status[600];
} kind_stats_t;

typedef struct {
    int fd;
    kind_t kind;
    int state;
    bool busy; /* a request is out and its answer not complete */
    uint64_t t_open, retry_at, next_byte;
    char req[REQ_MAX];
    size_t req_len, req_off;
    char rbuf[RBUF_MAX];
    size_t rlen;
} conn_t;

static kind_stats_t stats[K_COUNT];
static int ep;
static uint64_t requests, seq;
static bool reopen_now; /* a flood connection waits to be reopened at once */

/* When c, closed at now, is opened again: floods as soon as they may, the others later. */
static uint64_t retry_time(const conn_t *c, uint64_t now)
{
    bool flood = c->kind == K_POST || c->kind == K_REGISTER;
    int ms = flood ? opt.flood_reconnect_ms : opt.reconnect_ms;
    if (ms == 0)
        reopen_now = true;
    return now + (uint64_t)ms * NS_PER_MS;
}

/* ---- connections ------------------------------------------------------------------------ */

static void conn_close(conn_t *c, uint64_t retry_at)
{
    if (c->fd >= 0) {
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
    c->state = C_DOWN;
    c->busy = false;
    c->rlen = 0;
    c->retry_at = retry_at;
}

static void set_events(conn_t *c, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void conn_open(conn_t *c, uint64_t now)
{
    kind_stats_t *st = &stats[c->kind];
    c->fd = bench_tcp_socket(true);
    if (c->fd < 0) { /* out of fds: a setup problem, not the server's answer */
        fprintf(stderr, "abuse: socket: %s\n", strerror(-c->fd));
        exit(1);
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
    struct sockaddr_in src = {.sin_family = AF_INET, .sin_addr = opt.source_addr};
    if (bind(c->fd, (struct sockaddr *)&src, sizeof(src)) != 0)
        bench_die("bind to %s failed: %s", opt.source, strerror(errno));
    if (bench_connect_loopback(c->fd, opt.port) != 0) {
        st->connect_errors++;
        conn_close(c, retry_time(c, now));
        return;
    }
    c->state = C_CONNECTING;
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
}

/* The server closed c (EOF or reset): which of refused, cut or a keep-alive end it was. */
static void conn_lost(conn_t *c, uint64_t now)
{
    kind_stats_t *st = &stats[c->kind];
    bool pending = c->busy || c->kind == K_DRIP || c->kind == K_IDLE;
    if (!pending)
        st->closed_idle++;
    else if (now - c->t_open < REFUSED_NS)
        st->refused++;
    else
        st->cut++;
    conn_close(c, retry_time(c, now));
}

static size_t build_request(conn_t *c)
{
    unsigned long long n = seq++;
    char body[256];
    int len;
    if (c->kind == K_REGISTER) {
        snprintf(body, sizeof(body), "{\"handle\":\"ab%ld_%llu\"}", (long)getpid() % 100000, n);
        len = snprintf(c->req, sizeof(c->req),
                       "POST /v1/users HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                       "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                       opt.port, strlen(body), body);
        if (len < 0 || (size_t)len >= sizeof(c->req))
            len = -EMSGSIZE;
    } else {
        if (bench_post_body(body, sizeof(body), "abuse", n) < 0)
            bench_die("post body too long");
        len = bench_http_request(c->req, sizeof(c->req), "POST", "/v1/posts", opt.port, opt.token,
                                 "", body);
    }
    if (len < 0)
        bench_die("request too long (token of %zu bytes?)", strlen(opt.token));
    return (size_t)len;
}

/* Writes what the socket takes of c's request; returns false when c was closed. */
static bool flush(conn_t *c, uint64_t now)
{
    while (c->req_off < c->req_len) {
        ssize_t n = write(c->fd, c->req + c->req_off, c->req_len - c->req_off);
        if (n > 0) {
            c->req_off += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && errno == EAGAIN) {
            set_events(c, EPOLLIN | EPOLLOUT);
            return true;
        } else {
            conn_lost(c, now);
            return false;
        }
    }
    stats[c->kind].sent++;
    set_events(c, EPOLLIN);
    return true;
}

static void send_flood(conn_t *c, uint64_t now)
{
    if (requests >= opt.max_requests)
        return;
    requests++;
    c->req_len = build_request(c);
    c->req_off = 0;
    c->busy = true;
    flush(c, now);
}

/* The next byte of a drip connection's request (the request starts over once written). */
static void drip_byte(conn_t *c, uint64_t now)
{
    if (c->req_off >= c->req_len) {
        c->req_len = build_request(c);
        c->req_off = 0;
    }
    ssize_t n = write(c->fd, c->req + c->req_off, 1);
    if (n == 1) {
        c->req_off++;
        stats[K_DRIP].sent++;
    } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
        conn_lost(c, now);
        return;
    }
    c->next_byte = now + (uint64_t)opt.drip_interval_ms * NS_PER_MS;
}

/* An answer on a flood connection (one request in flight, so nothing follows it). */
static void on_readable(conn_t *c, uint64_t now)
{
    for (;;) {
        ssize_t n = read(c->fd, c->rbuf + c->rlen, sizeof(c->rbuf) - 1 - c->rlen);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0) {
            conn_lost(c, now);
            return;
        }
        c->rlen += (size_t)n;
        c->rbuf[c->rlen] = '\0';
        int status = 0;
        size_t hlen = 0;
        if (!bench_http_head(c->rbuf, &status, &hlen)) {
            if (c->rlen + 1 < sizeof(c->rbuf))
                continue;
            conn_lost(c, now); /* a head this long is nobody's answer */
            return;
        }
        const char *cl = bench_http_header(c->rbuf, hlen, "Content-Length");
        size_t blen = cl ? strtoul(cl, NULL, 10) : 0;
        if (c->rlen < hlen + blen) {
            if (hlen + blen + 1 > sizeof(c->rbuf)) {
                conn_lost(c, now);
                return;
            }
            continue;
        }
        kind_stats_t *st = &stats[c->kind];
        st->answered++;
        st->status[status]++;
        c->busy = false;
        c->rlen = 0;
        if (c->kind == K_DRIP || c->kind == K_IDLE) /* an answer to a drip: start over */
            return;
        const char *conn_hdr = bench_http_header(c->rbuf, hlen, "Connection");
        if (conn_hdr && (conn_hdr[0] | 0x20) == 'c') {
            st->closed_idle++;
            conn_close(c, retry_time(c, now));
            return;
        }
        send_flood(c, now);
        return;
    }
}

static void on_event(conn_t *c, uint32_t events, uint64_t now)
{
    if (c->state == C_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err || (events & (EPOLLERR | EPOLLHUP))) {
            stats[c->kind].connect_errors++;
            conn_close(c, retry_time(c, now));
            return;
        }
        c->state = C_OPEN;
        c->t_open = now;
        stats[c->kind].opened++;
        set_events(c, EPOLLIN);
        if (c->kind == K_POST || c->kind == K_REGISTER)
            send_flood(c, now);
        else if (c->kind == K_DRIP)
            drip_byte(c, now);
        return;
    }
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
        on_readable(c, now);
    if (c->fd >= 0 && c->busy && c->kind != K_DRIP && c->req_off < c->req_len &&
        (events & EPOLLOUT))
        flush(c, now);
}

/* ---- main --------------------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f, "usage: tidings-abuse --port PORT --token FILE [options]\n"
               "  --source ADDR          local address to connect from, in 127/8 (127.0.0.2)\n"
               "  --token FILE           the abuser's bearer token (first line)\n"
               "  --post N               connections flooding POST /v1/posts (8)\n"
               "  --register N           connections flooding POST /v1/users (4)\n"
               "  --drip N               connections writing a request one byte at a time (16)\n"
               "  --idle N               connections opened and left silent (160)\n"
               "  --drip-interval-ms MS  between two bytes of a drip connection (1000)\n"
               "  --reconnect-ms MS      before reopening an idle or drip connection (100)\n"
               "  --flood-reconnect-ms MS  before reopening a flood connection (0: at once)\n"
               "  --duration S           seconds to run (20)\n"
               "  --requests N           flood requests at most, both floods (10000000)\n"
               "  --quiet                print only the RESULT line\n"
               "Loopback only: it connects to 127.0.0.1:PORT.\n");
}

static volatile sig_atomic_t stop_asked;
static void on_signal(int sig)
{
    (void)sig;
    stop_asked = 1;
}

int main(int argc, char **argv)
{
    const char *token_path = NULL;
    const bench_opt_t opts[] = {
        {"port", BENCH_OPT_INT, &opt.port},
        {"source", BENCH_OPT_STR, &opt.source},
        {"token", BENCH_OPT_STR, &token_path},
        {"post", BENCH_OPT_INT, &opt.conns[K_POST]},
        {"register", BENCH_OPT_INT, &opt.conns[K_REGISTER]},
        {"drip", BENCH_OPT_INT, &opt.conns[K_DRIP]},
        {"idle", BENCH_OPT_INT, &opt.conns[K_IDLE]},
        {"drip-interval-ms", BENCH_OPT_INT, &opt.drip_interval_ms},
        {"reconnect-ms", BENCH_OPT_INT, &opt.reconnect_ms},
        {"flood-reconnect-ms", BENCH_OPT_INT, &opt.flood_reconnect_ms},
        {"duration", BENCH_OPT_DOUBLE, &opt.duration_s},
        {"requests", BENCH_OPT_U64, &opt.max_requests},
        {"quiet", BENCH_OPT_TRUE, &opt.quiet},
        {NULL, 0, NULL},
    };
    bench_prog = "abuse";
    int rc = bench_parse_args(argc, argv, opts);
    if (rc == 1) {
        usage(stdout);
        return 0;
    }
    if (rc < 0 || optind != argc || opt.port <= 0 || opt.port > 65535 || !token_path) {
        usage(stderr);
        return 2;
    }
    if (inet_pton(AF_INET, opt.source, &opt.source_addr) != 1 ||
        (ntohl(opt.source_addr.s_addr) >> 24) != 127)
        bench_die("--source must be an IPv4 address in 127/8, not %s", opt.source);
    int total = 0;
    for (int k = 0; k < K_COUNT; k++) {
        if (opt.conns[k] < 0 || opt.conns[k] > 10000)
            bench_die("--%s must be between 0 and 10000", kind_names[k]);
        total += opt.conns[k];
    }
    if (total == 0 || opt.duration_s <= 0 || opt.reconnect_ms < 1 || opt.drip_interval_ms < 1 ||
        opt.flood_reconnect_ms < 0)
        bench_die("need a connection, --duration, --reconnect-ms, --drip-interval-ms > 0 and "
                  "--flood-reconnect-ms >= 0");
    size_t n_tokens;
    char **tokens = bench_read_lines(token_path, &n_tokens);
    opt.token = tokens[0];
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);

    conn_t *conns = calloc((size_t)total, sizeof(*conns));
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (!conns || ep < 0)
        bench_die("out of memory or epoll_create1 failed");
    struct rusage ru0;
    getrusage(RUSAGE_SELF, &ru0);
    uint64_t t0 = bench_mono_ns(), t_end = t0 + (uint64_t)(opt.duration_s * 1e9);
    int i = 0;
    for (int k = 0; k < K_COUNT; k++) /* floods first: they hold their places under the cap */
        for (int j = 0; j < opt.conns[k]; j++, i++) {
            conns[i].fd = -1;
            conns[i].kind = (kind_t)k;
            conn_open(&conns[i], t0);
        }
    struct epoll_event evs[256];
    uint64_t now = t0, next_scan = t0;
    while (!stop_asked && now < t_end) {
        int n = epoll_wait(ep, evs, 256, 10);
        if (n < 0 && errno != EINTR)
            bench_die("epoll_wait failed: %s", strerror(errno));
        now = bench_mono_ns();
        for (int e = 0; e < n; e++) {
            conn_t *c = evs[e].data.ptr;
            if (c->fd >= 0)
                on_event(c, evs[e].events, now);
        }
        if (now < next_scan && !reopen_now)
            continue;
        next_scan = now + 5 * NS_PER_MS;
        reopen_now = false;
        for (int j = 0; j < total; j++) { /* reopen what was closed, drip the next bytes */
            conn_t *c = &conns[j];
            if (c->state == C_DOWN && c->retry_at <= now)
                conn_open(c, now);
            else if (c->state == C_OPEN && c->kind == K_DRIP && c->next_byte <= now)
                drip_byte(c, now);
        }
    }
    double cpu_s = bench_cpu_since(&ru0);
    double ran_s = (double)(now - t0) / 1e9;
    for (int j = 0; j < total; j++)
        if (conns[j].fd >= 0)
            close(conns[j].fd);

    uint64_t sum[600] = {0}, answered = 0, refused = 0, cut = 0, conn_err = 0, opened = 0;
    for (int k = 0; k < K_COUNT; k++) {
        kind_stats_t *st = &stats[k];
        for (int s = 0; s < 600; s++)
            sum[s] += st->status[s];
        answered += st->answered;
        refused += st->refused;
        cut += st->cut;
        conn_err += st->connect_errors;
        opened += st->opened;
    }
    if (!opt.quiet) {
        printf("abuser from %s, %.1f s, cpu %.2f s\n", opt.source, ran_s, cpu_s);
        printf("  %-9s %5s %8s %8s %8s %8s %8s %9s %9s  statuses\n", "kind", "conns", "opened",
               "refused", "cut", "closed", "conn-err", "sent", "answered");
        for (int k = 0; k < K_COUNT; k++) {
            kind_stats_t *st = &stats[k];
            printf("  %-9s %5d %8llu %8llu %8llu %8llu %8llu %9llu %9llu ", kind_names[k],
                   opt.conns[k], (unsigned long long)st->opened, (unsigned long long)st->refused,
                   (unsigned long long)st->cut, (unsigned long long)st->closed_idle,
                   (unsigned long long)st->connect_errors, (unsigned long long)st->sent,
                   (unsigned long long)st->answered);
            for (int s = 100; s < 600; s++)
                if (st->status[s])
                    printf(" %d:%llu", s, (unsigned long long)st->status[s]);
            printf("\n");
        }
        printf("  refused: closed unanswered within %.0f s of opening (the per-address cap);"
               " cut: later\n  (the request deadline); closed: after an answer (Connection:"
               " close); drip sent: bytes\n",
               (double)REFUSED_NS / 1e9);
    }
    uint64_t s2xx = 0, other = 0;
    for (int s = 100; s < 600; s++)
        if (s >= 200 && s < 300)
            s2xx += sum[s];
        else if (s != 429)
            other += sum[s];
    printf("RESULT seconds=%.1f cpu_s=%.2f opened=%llu answered=%llu s2xx=%llu s429=%llu "
           "other_status=%llu refused=%llu cut=%llu conn_errors=%llu post_sent=%llu "
           "register_sent=%llu drip_bytes=%llu\n",
           ran_s, cpu_s, (unsigned long long)opened, (unsigned long long)answered,
           (unsigned long long)s2xx, (unsigned long long)sum[429], (unsigned long long)other,
           (unsigned long long)refused, (unsigned long long)cut, (unsigned long long)conn_err,
           (unsigned long long)stats[K_POST].sent, (unsigned long long)stats[K_REGISTER].sent,
           (unsigned long long)stats[K_DRIP].sent);
    bench_free_lines(tokens, n_tokens);
    free(conns);
    close(ep);
    return 0;
}
