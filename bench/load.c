/* bench/load.c -- an HTTP/1.1 keep-alive load generator, closed or open loop.
 *
 * One or two worker threads, each with its own epoll set and its own share of the
 * connections (loopback only). A connection carries one request at a time (no pipelining).
 *
 * Closed loop (no --rate): every connection sends its next request as soon as the previous
 * answer is complete; the figure is the throughput. Latency runs from send to the last
 * byte of the answer.
 *
 * Open loop (--rate R): request k is due at t0 + k/R whether or not the server keeps up.
 * epoll_pwait2 (a nanosecond timeout) wakes the worker at the next due time; due requests
 * go out on idle connections, and when every connection is busy they wait in a backlog. Latency is measured from the
 * due time, not from the send, so a server that stalls is charged for every request it
 * delayed (no coordinated omission). Requests still unanswered when the grace period ends
 * are counted as timeouts and recorded with their latency so far, a lower bound.
 *
 * --mode timeline reads GET /v1/timeline; --post-every N makes every Nth request a POST
 * /v1/posts in any mode, so one histogram holds a user's mix of reads and writes (the abuse
 * benchmark's well-behaved client).
 *
 * Every run is bounded by --duration and --requests. The first --warmup seconds are run
 * but not recorded. Latencies go into a log-linear histogram (64 buckets per power of two,
 * so percentiles are exact to about 1.6%); the output is human-readable lines followed by
 * one "RESULT key=value ..." line for scripts.
 */
#include "bench/bench_lib.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 2
#define REQ_MAX 8192
#define RBUF_MAX (1u << 20)
#define GRACE_NS (3 * NS_PER_S)
#define RECONNECT_DELAY_NS (100 * NS_PER_MS)

/* ---- options and inputs --------------------------------------------------------------- */

typedef enum { MODE_POST, MODE_GET, MODE_TIMELINE } load_mode_t;

static struct {
    int port;
    load_mode_t mode;
    int connections;
    int threads;
    double rate; /* requests/s over all threads; 0 = closed loop */
    double duration_s;
    double warmup_s;
    uint64_t max_requests;
    const char *text;
    bool idempotency;
    bool quiet;
    int post_every; /* every Nth request is a POST /v1/posts whatever the mode; 0: none */
    char **tokens;
    size_t n_tokens;
    char **ids;
    size_t n_ids;
    char *text_json; /* text, escaped for a JSON string */
} opt = {
    .mode = MODE_POST,
    .connections = 64,
    .threads = 1,
    .duration_s = 10,
    .warmup_s = 1,
    .max_requests = 1000000,
    .text = "benchmark post",
};

static char *json_escape(const char *s)
{
    char *out = malloc(strlen(s) * 6 + 1), *o = out;
    if (!out)
        bench_die("out of memory");
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            *o++ = '\\';
            *o++ = (char)ch;
        } else if (ch < 0x20) {
            o += sprintf(o, "\\u%04x", ch);
        } else {
            *o++ = (char)ch;
        }
    }
    *o = '\0';
    return out;
}

/* ---- time and histogram --------------------------------------------------------------- */

#define SUB_BITS 6
#define SUB (1u << SUB_BITS)
#define HIST_BUCKETS ((64 - SUB_BITS) * SUB + SUB)

typedef struct {
    uint64_t count[HIST_BUCKETS];
    uint64_t total, max, sum;
} hist_t;

/* Values below 2*SUB are exact; above, each power of two is split into SUB buckets. */
static unsigned hist_index(uint64_t v)
{
    if (v < 2 * SUB)
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - SUB_BITS;
    return shift * SUB + (unsigned)(v >> shift);
}

/* The largest value that falls into bucket i. */
static uint64_t hist_upper(unsigned i)
{
    if (i < 2 * SUB)
        return i;
    unsigned shift = i / SUB - 1;
    uint64_t mantissa = i - shift * SUB;
    return ((mantissa + 1) << shift) - 1;
}

static void hist_add(hist_t *h, uint64_t v)
{
    h->count[hist_index(v)]++;
    h->total++;
    h->sum += v;
    if (v > h->max)
        h->max = v;
}

static void hist_merge(hist_t *into, const hist_t *h)
{
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        into->count[i] += h->count[i];
    into->total += h->total;
    into->sum += h->sum;
    if (h->max > into->max)
        into->max = h->max;
}

static uint64_t hist_pct(const hist_t *h, double p)
{
    if (!h->total)
        return 0;
    uint64_t want = (uint64_t)ceil(p / 100.0 * (double)h->total);
    if (want < 1)
        want = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->count[i];
        if (seen >= want)
            return hist_upper(i) < h->max ? hist_upper(i) : h->max;
    }
    return h->max;
}

/* ---- connections and workers ---------------------------------------------------------- */

enum { C_DOWN, C_CONNECTING, C_IDLE, C_BUSY };

typedef struct conn_s {
    int fd;
    int state;
    bool want_out;
    uint64_t retry_at;
    char req[REQ_MAX];
    size_t req_len, req_off;
    char *rbuf;
    size_t rlen, rcap;
    uint64_t t_due, t_sent;
} conn_t;

typedef struct {
    int id;
    int ep;
    conn_t *conns;
    int n_conns;
    conn_t **idle;
    int n_idle;
    int in_flight;
    uint64_t seq;
    /* schedule */
    double interval_ns; /* open loop: ns between due times; 0 = closed loop */
    uint64_t limit;     /* requests this worker may send */
    uint64_t k_sent;    /* requests sent (closed) or taken from the schedule (open) */
    uint64_t k_due;     /* open loop: requests that have fallen due */
    uint64_t t0, t_measure, t_end;
    /* results (measured window only, except sent_total) */
    hist_t lat, wait;
    uint64_t ok, non2xx, conn_errors, proto_errors, timeouts, reconnects, sent_total;
    uint64_t status[600];
    uint64_t t_last_done;
    char sample[512]; /* the first non-2xx answer, for the report */
} worker_t;

static void conn_close(worker_t *w, conn_t *c, uint64_t now)
{
    if (c->fd >= 0) {
        epoll_ctl(w->ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    if (c->state == C_IDLE)
        for (int i = 0; i < w->n_idle; i++)
            if (w->idle[i] == c) {
                w->n_idle--;
                memmove(w->idle + i, w->idle + i + 1, (size_t)(w->n_idle - i) * sizeof(*w->idle));
                break;
            }
    c->fd = -1;
    c->state = C_DOWN;
    c->rlen = 0;
    c->retry_at = now;
}

static void conn_open(worker_t *w, conn_t *c)
{
    c->fd = bench_tcp_socket(true);
    if (c->fd < 0) {
        fprintf(stderr, "load: socket: %s\n", strerror(-c->fd));
        exit(1);
    }
    c->state = C_CONNECTING;
    if (bench_connect_loopback(c->fd, opt.port) != 0) {
        w->conn_errors++;
        conn_close(w, c, bench_mono_ns() + RECONNECT_DELAY_NS);
        return;
    }
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
    epoll_ctl(w->ep, EPOLL_CTL_ADD, c->fd, &ev);
    c->want_out = true;
}

static void set_out(worker_t *w, conn_t *c, bool out)
{
    if (c->want_out == out)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0u), .data.ptr = c};
    epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = out;
}

/* A connection failed; a request it carried counts as a connection error. */
static void conn_fail(worker_t *w, conn_t *c, bool counted)
{
    uint64_t now = bench_mono_ns();
    if (c->state == C_BUSY) {
        w->in_flight--;
        if (counted && c->t_due >= w->t_measure)
            w->conn_errors++;
    } else if (c->state == C_CONNECTING) {
        w->conn_errors++;
    }
    conn_close(w, c, now + (c->state == C_CONNECTING ? RECONNECT_DELAY_NS : 0));
}

static size_t build_request(worker_t *w, char *buf)
{
    uint64_t n = w->seq++ * (uint64_t)opt.threads + (uint64_t)w->id;
    const char *token = opt.tokens[n % opt.n_tokens];
    char idem[80] = "";
    if (opt.idempotency)
        snprintf(idem, sizeof(idem), "Idempotency-Key: load-%ld-%llu\r\n", (long)getpid(),
                 (unsigned long long)n);
    int len;
    bool post = opt.mode == MODE_POST || (opt.post_every > 0 && n % (uint64_t)opt.post_every == 0);
    if (!post && opt.mode == MODE_TIMELINE) {
        len = bench_http_request(buf, REQ_MAX, "GET", "/v1/timeline", opt.port, token, idem, NULL);
    } else if (!post) {
        char path[1100];
        snprintf(path, sizeof(path), "/v1/posts/%s", opt.ids[n % opt.n_ids]);
        len = bench_http_request(buf, REQ_MAX, "GET", path, opt.port, token, idem, NULL);
    } else {
        char body[2048];
        if (bench_post_body(body, sizeof(body), opt.text_json, (unsigned long long)n) < 0)
            bench_die("--text is too long");
        len = bench_http_request(buf, REQ_MAX, "POST", "/v1/posts", opt.port, token, idem, body);
    }
    if (len < 0)
        bench_die("request too long");
    return (size_t)len;
}

static void try_write(worker_t *w, conn_t *c)
{
    while (c->req_off < c->req_len) {
        ssize_t n = write(c->fd, c->req + c->req_off, c->req_len - c->req_off);
        if (n > 0) {
            c->req_off += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && errno == EAGAIN) {
            set_out(w, c, true);
            return;
        } else {
            conn_fail(w, c, true);
            return;
        }
    }
    set_out(w, c, false);
}

static void send_one(worker_t *w, uint64_t t_due, uint64_t now)
{
    /* The longest idle first: at a low rate every connection stays in use, so none idles past
     * the server's request deadline and races its close (a connection error nobody caused). */
    conn_t *c = w->idle[0];
    memmove(w->idle, w->idle + 1, (size_t)--w->n_idle * sizeof(*w->idle));
    c->state = C_BUSY;
    c->t_due = t_due;
    c->t_sent = now;
    c->req_len = build_request(w, c->req);
    c->req_off = 0;
    c->rlen = 0;
    w->in_flight++;
    w->sent_total++;
    try_write(w, c);
}

static void make_idle(worker_t *w, conn_t *c)
{
    c->state = C_IDLE;
    w->idle[w->n_idle++] = c;
}

static void on_answer(worker_t *w, conn_t *c, int status, const char *body, size_t blen)
{
    uint64_t now = bench_mono_ns();
    w->in_flight--;
    if (c->t_due < w->t_measure)
        return;
    hist_add(&w->lat, now - c->t_due);
    hist_add(&w->wait, c->t_sent - c->t_due);
    w->t_last_done = now;
    w->status[status]++;
    if (status >= 200 && status < 300) {
        w->ok++;
    } else {
        if (!w->non2xx++)
            snprintf(w->sample, sizeof(w->sample), "%d %.*s", status,
                     (int)(blen < 400 ? blen : 400), body);
    }
}

/* Is a whole response in rbuf? 1 yes (status, header and body lengths set), 0 not yet,
 * -1 malformed. */
static int parse_response(conn_t *c, int *status, size_t *hlen, size_t *blen)
{
    c->rbuf[c->rlen] = '\0';
    if (!bench_http_head(c->rbuf, status, hlen))
        return 0;
    if (!*status)
        return -1;
    const char *cl = bench_http_header(c->rbuf, *hlen, "Content-Length");
    if (!cl) /* MHD answers buffers with a length; chunked is not expected */
        return -1;
    *blen = strtoul(cl, NULL, 10);
    if (c->rlen < *hlen + *blen)
        return 0;
    return c->rlen == *hlen + *blen ? 1 : -1; /* more would be an answer nobody asked for */
}

/* Reads until the answer is complete (one request at a time, so nothing follows it) or
 * the socket is drained, then accounts for the answer. */
static void on_readable(worker_t *w, conn_t *c)
{
    int status = 0, parsed = 0;
    size_t hlen = 0, blen = 0;
    for (;;) {
        if (c->rcap - c->rlen < 4096) {
            size_t cap = c->rcap ? c->rcap * 2 : 16384;
            if (cap > RBUF_MAX) {
                w->proto_errors++;
                conn_fail(w, c, false);
                return;
            }
            c->rbuf = realloc(c->rbuf, cap);
            if (!c->rbuf)
                bench_die("out of memory");
            c->rcap = cap;
        }
        ssize_t n = read(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen - 1);
        if (n > 0) {
            c->rlen += (size_t)n;
            if (c->state != C_BUSY) { /* bytes nobody asked for */
                w->proto_errors++;
                conn_fail(w, c, false);
                return;
            }
            parsed = parse_response(c, &status, &hlen, &blen);
            if (parsed != 0)
                break;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        /* EOF or error: the server closed the connection. */
        if (c->state == C_IDLE)
            w->reconnects++;
        conn_fail(w, c, true);
        return;
    }
    if (parsed < 0) {
        w->proto_errors++;
        conn_fail(w, c, false);
        return;
    }
    const char *conn_hdr = bench_http_header(c->rbuf, hlen, "Connection");
    bool close_after = conn_hdr && (conn_hdr[0] | 0x20) == 'c';
    on_answer(w, c, status, c->rbuf + hlen, blen);
    c->rlen = 0;
    if (close_after) {
        w->reconnects++;
        conn_close(w, c, bench_mono_ns());
    } else {
        make_idle(w, c);
    }
}

static void on_event(worker_t *w, conn_t *c, uint32_t events)
{
    if (c->state == C_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err || (events & (EPOLLERR | EPOLLHUP))) {
            conn_fail(w, c, true);
            return;
        }
        c->want_out = true;
        set_out(w, c, false);
        make_idle(w, c);
        return;
    }
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
        on_readable(w, c);
    if (c->fd >= 0 && c->state == C_BUSY && (events & EPOLLOUT))
        try_write(w, c);
}

static uint64_t due_time(const worker_t *w, uint64_t k)
{
    return w->t0 + (uint64_t)((double)k * w->interval_ns);
}

static void *worker_run(void *arg)
{
    worker_t *w = arg;
    struct epoll_event evs[256];
    bool stopping = false;
    uint64_t t_stop = 0, next_down_check = 0;
    for (int i = 0; i < w->n_conns; i++)
        conn_open(w, &w->conns[i]);
    for (;;) {
        uint64_t now = bench_mono_ns();
        if (!stopping && (now >= w->t_end || w->k_sent >= w->limit ||
                          (w->interval_ns > 0 && w->k_due >= w->limit))) {
            stopping = true;
            t_stop = now;
        }
        if (now >= next_down_check) { /* reopen connections the server closed */
            for (int i = 0; i < w->n_conns; i++)
                if (w->conns[i].state == C_DOWN && w->conns[i].retry_at <= now)
                    conn_open(w, &w->conns[i]);
            next_down_check = now + 10 * NS_PER_MS;
        }
        if (w->interval_ns > 0) {
            if (!stopping && now >= w->t0) {
                uint64_t due = (uint64_t)((double)(now - w->t0) / w->interval_ns) + 1;
                w->k_due = due < w->limit ? due : w->limit;
            }
            while (w->k_sent < w->k_due && w->n_idle > 0) {
                send_one(w, due_time(w, w->k_sent), now);
                w->k_sent++;
            }
        } else if (!stopping && now >= w->t0) {
            while (w->n_idle > 0 && w->k_sent < w->limit) {
                send_one(w, now, now);
                w->k_sent++;
            }
        }
        if (stopping && w->in_flight == 0 && w->k_sent >= w->k_due)
            break;
        if (stopping && now >= t_stop + GRACE_NS) {
            /* Unanswered and unsent requests: timeouts, with their latency so far. */
            for (int i = 0; i < w->n_conns; i++) {
                conn_t *c = &w->conns[i];
                if (c->state == C_BUSY && c->t_due >= w->t_measure) {
                    w->timeouts++;
                    hist_add(&w->lat, now - c->t_due);
                }
            }
            for (; w->interval_ns > 0 && w->k_sent < w->k_due; w->k_sent++) {
                uint64_t t = due_time(w, w->k_sent);
                if (t >= w->t_measure) {
                    w->timeouts++;
                    hist_add(&w->lat, now - t);
                }
            }
            break;
        }
        /* Sleep until the next due time at most, with nanosecond precision. */
        uint64_t wake = stopping ? t_stop + GRACE_NS : now < w->t0 ? w->t0 : w->t_end;
        if (w->interval_ns > 0 && !stopping && w->k_due < w->limit && due_time(w, w->k_due) < wake)
            wake = due_time(w, w->k_due);
        if (wake > now + 50 * NS_PER_MS)
            wake = now + 50 * NS_PER_MS;
        uint64_t left = wake > now ? wake - now : 0;
        struct timespec timeout = {.tv_sec = (time_t)(left / NS_PER_S),
                                   .tv_nsec = (long)(left % NS_PER_S)};
        int n = epoll_pwait2(w->ep, evs, 256, &timeout, NULL);
        if (n < 0 && errno != EINTR) {
            perror("load: epoll_pwait2");
            exit(1);
        }
        for (int i = 0; i < n; i++) {
            conn_t *c = evs[i].data.ptr;
            if (c->fd >= 0)
                on_event(w, c, evs[i].events);
        }
    }
    for (int i = 0; i < w->n_conns; i++) {
        if (w->conns[i].fd >= 0)
            close(w->conns[i].fd);
        free(w->conns[i].rbuf);
    }
    return NULL;
}

/* ---- main ----------------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f, "usage: tidings-load --port PORT --tokens FILE [options]\n"
               "  --mode post|get|timeline  POST /v1/posts (default), GET /v1/posts/{id} or\n"
               "                       GET /v1/timeline\n"
               "  --post-every N       every Nth request is a POST /v1/posts instead (0: none)\n"
               "  --ids FILE           post ids for --mode get, one a line (rotated)\n"
               "  --tokens FILE        bearer tokens, one a line (rotated)\n"
               "  --connections N      keep-alive connections (64)\n"
               "  --threads 1|2        worker threads (1)\n"
               "  --rate R             open loop at R requests/s; absent: closed loop\n"
               "  --duration S         seconds of measurement (10)\n"
               "  --warmup S           seconds run first and not recorded (1)\n"
               "  --requests N         at most N requests in all, warmup included (1000000)\n"
               "  --text TEXT          post text; a request number is appended (benchmark post)\n"
               "  --idempotency        send a unique Idempotency-Key with each POST\n"
               "  --quiet              print only the RESULT line\n"
               "Loopback only: it connects to 127.0.0.1:PORT.\n");
}

static double ms(uint64_t ns)
{
    return (double)ns / 1e6;
}

int main(int argc, char **argv)
{
    const char *tokens_path = NULL, *ids_path = NULL, *mode_arg = "post";
    const bench_opt_t opts[] = {
        {"port", BENCH_OPT_INT, &opt.port},
        {"mode", BENCH_OPT_STR, &mode_arg},
        {"ids", BENCH_OPT_STR, &ids_path},
        {"tokens", BENCH_OPT_STR, &tokens_path},
        {"connections", BENCH_OPT_INT, &opt.connections},
        {"threads", BENCH_OPT_INT, &opt.threads},
        {"rate", BENCH_OPT_DOUBLE, &opt.rate},
        {"duration", BENCH_OPT_DOUBLE, &opt.duration_s},
        {"warmup", BENCH_OPT_DOUBLE, &opt.warmup_s},
        {"requests", BENCH_OPT_U64, &opt.max_requests},
        {"text", BENCH_OPT_STR, &opt.text},
        {"idempotency", BENCH_OPT_TRUE, &opt.idempotency},
        {"quiet", BENCH_OPT_TRUE, &opt.quiet},
        {"post-every", BENCH_OPT_INT, &opt.post_every},
        {NULL, 0, NULL},
    };
    bench_prog = "load";
    int rc = bench_parse_args(argc, argv, opts);
    if (rc == 1) {
        usage(stdout);
        return 0;
    }
    if (rc < 0 || optind != argc || opt.port <= 0 || opt.port > 65535 || !tokens_path) {
        usage(stderr);
        return 2;
    }
    if (strcmp(mode_arg, "post") == 0)
        opt.mode = MODE_POST;
    else if (strcmp(mode_arg, "get") == 0)
        opt.mode = MODE_GET;
    else if (strcmp(mode_arg, "timeline") == 0)
        opt.mode = MODE_TIMELINE;
    else
        bench_die("--mode must be post, get or timeline, not %s", mode_arg);
    if (opt.post_every < 0)
        bench_die("--post-every must be 0 or more");
    if (opt.threads < 1 || opt.threads > MAX_THREADS)
        bench_die("--threads must be 1 or 2");
    if (opt.connections < opt.threads || opt.connections > 20000)
        bench_die("--connections must be between --threads and 20000");
    if (opt.duration_s <= 0 || opt.warmup_s < 0 || opt.rate < 0 || opt.max_requests == 0)
        bench_die("--duration, --warmup, --rate and --requests must be positive");
    if (opt.mode == MODE_GET && !ids_path)
        bench_die("--mode get needs --ids");
    opt.tokens = bench_read_lines(tokens_path, &opt.n_tokens);
    if (ids_path)
        opt.ids = bench_read_lines(ids_path, &opt.n_ids);
    opt.text_json = json_escape(opt.text);
    signal(SIGPIPE, SIG_IGN);

    worker_t *ws = calloc((size_t)opt.threads, sizeof(*ws));
    if (!ws)
        bench_die("out of memory");
    struct rusage ru0;
    getrusage(RUSAGE_SELF, &ru0);
    uint64_t t0 = bench_mono_ns() + 20 * NS_PER_MS; /* time to open the connections */
    uint64_t t_measure = t0 + (uint64_t)(opt.warmup_s * 1e9);
    uint64_t t_end = t_measure + (uint64_t)(opt.duration_s * 1e9);
    for (int i = 0; i < opt.threads; i++) {
        worker_t *w = &ws[i];
        w->id = i;
        w->n_conns = opt.connections / opt.threads + (i < opt.connections % opt.threads);
        w->conns = calloc((size_t)w->n_conns, sizeof(*w->conns));
        w->idle = calloc((size_t)w->n_conns, sizeof(*w->idle));
        if (!w->conns || !w->idle)
            bench_die("out of memory");
        for (int j = 0; j < w->n_conns; j++)
            w->conns[j].fd = -1;
        w->limit = opt.max_requests / (uint64_t)opt.threads +
                   ((uint64_t)i < opt.max_requests % (uint64_t)opt.threads);
        w->interval_ns = opt.rate > 0 ? 1e9 * opt.threads / opt.rate : 0;
        /* Two open-loop workers interleave their due times. */
        w->t0 = t0 + (opt.rate > 0 ? (uint64_t)(1e9 * i / opt.rate) : 0);
        w->t_measure = t_measure;
        w->t_end = t_end;
        w->ep = epoll_create1(EPOLL_CLOEXEC);
        if (w->ep < 0)
            bench_die("epoll_create1 failed");
    }
    pthread_t tids[MAX_THREADS];
    for (int i = 1; i < opt.threads; i++)
        pthread_create(&tids[i], NULL, worker_run, &ws[i]);
    worker_run(&ws[0]);
    for (int i = 1; i < opt.threads; i++)
        pthread_join(tids[i], NULL);
    double cpu_s = bench_cpu_since(&ru0);

    static hist_t lat, wait;
    uint64_t ok = 0, non2xx = 0, conn_err = 0, proto = 0, timeouts = 0, reconnects = 0, sent = 0;
    uint64_t last = t_measure, status[600] = {0};
    const char *sample = "";
    for (int i = 0; i < opt.threads; i++) {
        worker_t *w = &ws[i];
        hist_merge(&lat, &w->lat);
        hist_merge(&wait, &w->wait);
        ok += w->ok;
        non2xx += w->non2xx;
        conn_err += w->conn_errors;
        proto += w->proto_errors;
        timeouts += w->timeouts;
        reconnects += w->reconnects;
        sent += w->sent_total;
        for (int s = 0; s < 600; s++)
            status[s] += w->status[s];
        if (w->t_last_done > last)
            last = w->t_last_done;
        if (!sample[0] && w->sample[0])
            sample = w->sample;
    }
    uint64_t answered = ok + non2xx;
    double window_s = (double)(last - t_measure) / 1e9;
    double rps = window_s > 0 ? (double)answered / window_s : 0;
    uint64_t errors = non2xx + conn_err + proto + timeouts;
    const char *mode = opt.mode == MODE_GET        ? "get"
                       : opt.mode == MODE_TIMELINE ? "timeline"
                                                   : "post";

    if (!opt.quiet) {
        if (opt.rate > 0)
            printf("open loop, %s, %.0f req/s offered, %d connections, %d thread(s)\n", mode,
                   opt.rate, opt.connections, opt.threads);
        else
            printf("closed loop, %s, %d connections, %d thread(s)\n", mode, opt.connections,
                   opt.threads);
        printf("  answered   %llu in %.2f s (%llu sent in all, warmup %.1f s)\n",
               (unsigned long long)answered, window_s, (unsigned long long)sent, opt.warmup_s);
        printf("  requests/s %.0f\n", rps);
        printf("  latency ms p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  mean %.3f\n",
               ms(hist_pct(&lat, 50)), ms(hist_pct(&lat, 90)), ms(hist_pct(&lat, 99)),
               ms(hist_pct(&lat, 99.9)), ms(lat.max), lat.total ? ms(lat.sum / lat.total) : 0);
        if (opt.rate > 0)
            printf("  send lag ms (due -> sent) p99 %.3f  max %.3f\n", ms(hist_pct(&wait, 99)),
                   ms(wait.max));
        printf("  errors     %llu: non-2xx %llu, connection %llu, protocol %llu, timeouts %llu"
               " (server closes %llu)\n",
               (unsigned long long)errors, (unsigned long long)non2xx, (unsigned long long)conn_err,
               (unsigned long long)proto, (unsigned long long)timeouts,
               (unsigned long long)reconnects);
        printf("  statuses  ");
        for (int s = 100; s < 600; s++)
            if (status[s])
                printf(" %d:%llu", s, (unsigned long long)status[s]);
        printf("\n  client cpu %.2f s\n", cpu_s);
        if (sample[0])
            printf("  first non-2xx: %s\n", sample);
    }
    printf("RESULT mode=%s loop=%s rate=%.0f conns=%d rps=%.0f n=%llu p50_ms=%.3f p90_ms=%.3f "
           "p99_ms=%.3f p999_ms=%.3f max_ms=%.3f errors=%llu non2xx=%llu conn_errors=%llu "
           "proto_errors=%llu timeouts=%llu lag_p99_ms=%.3f client_cpu_s=%.2f\n",
           mode, opt.rate > 0 ? "open" : "closed", opt.rate, opt.connections, rps,
           (unsigned long long)answered, ms(hist_pct(&lat, 50)), ms(hist_pct(&lat, 90)),
           ms(hist_pct(&lat, 99)), ms(hist_pct(&lat, 99.9)), ms(lat.max),
           (unsigned long long)errors, (unsigned long long)non2xx, (unsigned long long)conn_err,
           (unsigned long long)proto, (unsigned long long)timeouts, ms(hist_pct(&wait, 99)), cpu_s);
    return 0;
}
