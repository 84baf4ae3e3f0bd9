/* bench/sse_load.c -- an SSE load client: thousands of GET /v1/stream, one publisher.
 *
 * One thread, one epoll set, N keep-alive connections to 127.0.0.1 (RLIMIT_NOFILE is
 * raised to its hard limit). Connection i authenticates with line i (mod the count) of
 * --tokens in an Authorization header. Connects are paced (--connect-concurrency
 * connections between connect() and their first SSE bytes at once) so the listen backlog
 * never overflows; a stream that fails before it started (connect error, early close,
 * 503) is retried up to 3 times, other refusals (401, ...) are not; a stream that ends after
 * it started is counted and not reopened (reopening would replay from the log and blur the
 * figures).
 *
 * Each response is parsed incrementally: status line and headers, then the chunked
 * transfer coding (or a raw body), then the event stream line by line (CRLF, LF or CR).
 * Only the first LINE_KEEP bytes of a line are kept: enough for "id:", "event:",
 * "retry:" and the post id, which is the first member of a feed event's JSON
 * (data: {"id":"<post id>",...}). A stream is *ready* once its "retry:" line arrived.
 *
 * When all N are ready the client prints "READY ..." (and writes --ready-file), then waits
 * for --go-file to exist (or --settle seconds without one). Then, for each of --posts
 * posts, it sends POST /v1/posts with --publish-token on a separate, already-connected
 * socket of the same epoll set; t0 is taken just before the send(). Every feed event is
 * recorded with two receive times: the kernel's (SO_TIMESTAMPNS: when the bytes reached
 * the client's socket, free of this client's own processing delay) and the client's
 * (when read() returned them). A post is done when every live stream has it, or after
 * --timeout seconds. For each post, and over all of them: how many of the N streams got
 * it, p50/p90/p99/max latency from t0 (both clocks), and events/s. Everything is bounded
 * by --max-time. Output: human-readable lines and one "RESULT key=value ..." line.
 *
 * With --rate R the posts are a sustained load instead: post k is due at t_first + k / R
 * whatever the deliveries do, and each delivery is timed from its post's due time, so a
 * server falling behind is charged for the wait (no coordinated omission). The one
 * publisher connection sends a post when it is due, or as soon as the previous POST was
 * answered if that came later (the worst such send lag is reported). The run ends when
 * every live stream has every post, or --timeout seconds after the last post was due.
 *
 * Without --publish-token the streams are only held: --hold seconds after READY (or until
 * --go-file appears), then a report of events received.
 */
#include "bench/bench_lib.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define LINE_KEEP 200     /* bytes of an SSE line kept (the rest is counted, not stored) */
#define HDR_MAX 8192      /* response header block */
#define RBUF (256 * 1024) /* one shared read buffer */
#define MAX_RETRIES 3
#define RETRY_DELAY_NS (200 * NS_PER_MS)
#define PUB_BUF 65536

/* ---- options ------------------------------------------------------------------------ */

static struct {
    int port;
    int connections;
    int concurrency;
    const char *tokens_path;
    const char *ready_file;
    const char *go_file;
    const char *publish_token;
    const char *text;
    int posts;
    double settle_s, gap_s, timeout_s, ready_timeout_s, max_time_s, hold_s, rate;
    bool kernel_ts;
    bool quiet;
    char **tokens;
    size_t n_tokens;
} opt = {
    .connections = 1000,
    .concurrency = 256,
    .text = "sse benchmark post",
    .posts = 1,
    .settle_s = 2,
    .gap_s = 1,
    .timeout_s = 30,
    .ready_timeout_s = 120,
    .max_time_s = 600,
    .hold_s = 10,
    .kernel_ts = true,
};

/* ---- connections -------------------------------------------------------------------- */

enum { S_WAIT, S_CONNECTING, S_HEADERS, S_BODY, S_DEAD };
enum { CH_SIZE, CH_EXT, CH_SIZE_LF, CH_DATA, CH_DATA_CR, CH_DATA_LF, CH_DONE };

typedef struct conn_s {
    int fd;
    uint8_t state;
    uint8_t retries;
    uint8_t chunk_state;
    bool chunked;
    bool ready;   /* "retry:" seen */
    bool prev_cr; /* the last byte ended a line with CR: skip a following LF */
    bool sent_req;
    bool refused; /* answered with a status other than 200 or 503: do not retry */
    uint16_t line_len;
    uint32_t line_total; /* bytes of the current line, kept or not */
    uint32_t chunk_left;
    uint64_t retry_at; /* S_WAIT: when to connect (monotonic) */
    char *hdr;         /* S_HEADERS only */
    uint32_t hdr_len;
    uint64_t data_post; /* post id in the current event's data, 0 = none */
    uint64_t id_ms;     /* the current event's id: "<ms>-<seq>", the ms Redis logged it */
    uint64_t last_post; /* the measured post once this stream got it */
    char event[16];
    char line[LINE_KEEP];
} conn_t;

typedef struct {
    uint32_t conn;
    uint64_t post;
    uint64_t t_kernel, t_read; /* CLOCK_REALTIME ns */
    uint64_t logged_ms;        /* from the event id: when Redis appended it to the user's log */
} rec_t;

static struct {
    int ep;
    conn_t *c;
    int n;
    int connecting; /* in S_CONNECTING or S_HEADERS, or S_BODY without retry yet */
    int waiting;    /* in S_WAIT */
    int ready, dead, failed;
    uint64_t connects, retries_done, refused_status[600];
    char refusal[256];
    /* events */
    uint64_t ev_feed, ev_other, heartbeats, bytes, reads, events_total;
    uint64_t proto_errors, dups, closed_after_ready;
    rec_t *recs;
    size_t n_recs, cap_recs;
    /* the post being measured */
    uint64_t want_post; /* 0 until the POST answer named it */
    int matched;
    /* timestamps of the current read */
    uint64_t now_kernel, now_read;
} g;

static void record_feed(conn_t *c, uint64_t post)
{
    g.ev_feed++;
    if (g.n_recs == g.cap_recs) {
        g.cap_recs = g.cap_recs ? g.cap_recs * 2 : 16384;
        g.recs = realloc(g.recs, g.cap_recs * sizeof(*g.recs));
        if (!g.recs)
            bench_die("out of memory");
    }
    g.recs[g.n_recs++] = (rec_t){(uint32_t)(c - g.c), post, g.now_kernel, g.now_read, c->id_ms};
    if (g.want_post && post == g.want_post) {
        if (c->last_post == post)
            g.dups++;
        else {
            c->last_post = post;
            g.matched++;
        }
    }
}

static void conn_drop(conn_t *c, bool retry)
{
    if (c->fd >= 0) {
        epoll_ctl(g.ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
    free(c->hdr);
    c->hdr = NULL;
    if (c->ready) {
        g.ready--;
        g.closed_after_ready++;
        c->state = S_DEAD;
        g.dead++;
        return;
    }
    g.connecting--;
    if (retry && !c->refused && c->retries < MAX_RETRIES) {
        c->retries++;
        g.retries_done++;
        c->state = S_WAIT;
        c->retry_at = bench_mono_ns() + RETRY_DELAY_NS;
        g.waiting++;
    } else {
        c->state = S_DEAD;
        g.dead++;
        g.failed++;
    }
}

static void conn_start(conn_t *c)
{
    int fd = bench_tcp_socket(true);
    if (fd < 0)
        bench_die("socket: %s (raise the open-files limit?)", strerror(-fd));
    int one = 1;
    if (opt.kernel_ts && setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one)) != 0)
        opt.kernel_ts = false;
    *c = (conn_t){.fd = fd, .state = S_CONNECTING, .retries = c->retries};
    g.waiting--;
    g.connecting++;
    g.connects++;
    if (bench_connect_loopback(fd, opt.port) != 0) {
        conn_drop(c, true);
        return;
    }
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.ptr = c};
    if (epoll_ctl(g.ep, EPOLL_CTL_ADD, fd, &ev) != 0)
        bench_die("epoll_ctl: %s", strerror(errno));
}

static void conn_send_request(conn_t *c)
{
    char req[1024];
    const char *token = opt.tokens[(size_t)(c - g.c) % opt.n_tokens];
    int len = bench_http_request(req, sizeof(req), "GET", "/v1/stream", opt.port, token,
                                 "Accept: text/event-stream\r\nCache-Control: no-cache\r\n", NULL);
    if (len < 0)
        bench_die("token too long");
    ssize_t n = send(c->fd, req, (size_t)len, MSG_NOSIGNAL);
    if (n != len) { /* a fresh socket takes 200 bytes whole, or it has failed */
        conn_drop(c, true);
        return;
    }
    c->sent_req = true;
    c->state = S_HEADERS;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    epoll_ctl(g.ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* ---- the event stream ------------------------------------------------------------------ */

static uint64_t post_id_in(const char *s, size_t len)
{
    static const char key[] = "\"id\":\"";
    const char *end = s + len;
    for (const char *p = s; p + sizeof(key) - 1 < end; p++)
        if (memcmp(p, key, sizeof(key) - 1) == 0) {
            p += sizeof(key) - 1;
            uint64_t v = 0;
            while (p < end && *p >= '0' && *p <= '9')
                v = v * 10 + (uint64_t)(*p++ - '0');
            return v;
        }
    return 0;
}

/* One complete line (its first line_len bytes in c->line). */
static void sse_line(conn_t *c)
{
    const char *l = c->line;
    size_t n = c->line_len;
    if (n == 0) { /* dispatch */
        if (c->event[0] || c->data_post) {
            g.events_total++;
            if (strcmp(c->event, "feed") == 0)
                record_feed(c, c->data_post);
            else
                g.ev_other++;
        }
        c->event[0] = '\0';
        c->data_post = 0;
        c->id_ms = 0;
        return;
    }
    if (l[0] == ':') {
        if (n >= 11 && memcmp(l, ": heartbeat", 11) == 0)
            g.heartbeats++;
        return;
    }
    const char *colon = memchr(l, ':', n);
    size_t fl = colon ? (size_t)(colon - l) : n;
    const char *v = colon ? colon + 1 : l + n;
    if (v < l + n && *v == ' ')
        v++;
    size_t vl = (size_t)(l + n - v);
    if (fl == 5 && memcmp(l, "retry", 5) == 0) {
        if (!c->ready) {
            c->ready = true;
            g.ready++;
            g.connecting--;
        }
    } else if (fl == 5 && memcmp(l, "event", 5) == 0) {
        snprintf(c->event, sizeof(c->event), "%.*s", (int)(vl < 15 ? vl : 15), v);
    } else if (fl == 4 && memcmp(l, "data", 4) == 0) {
        c->data_post = post_id_in(v, vl);
    } else if (fl == 2 && memcmp(l, "id", 2) == 0) {
        c->id_ms = 0;
        for (size_t i = 0; i < vl && v[i] >= '0' && v[i] <= '9'; i++)
            c->id_ms = c->id_ms * 10 + (uint64_t)(v[i] - '0');
    }
}

static void sse_feed(conn_t *c, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char ch = p[i];
        if (ch == '\n' || ch == '\r') {
            if (ch == '\n' && c->prev_cr) {
                c->prev_cr = false;
                continue;
            }
            c->prev_cr = ch == '\r';
            sse_line(c);
            c->line_len = 0;
            c->line_total = 0;
            continue;
        }
        c->prev_cr = false;
        /* copy the run up to the next line end in one go */
        size_t j = i;
        while (j < n && p[j] != '\n' && p[j] != '\r')
            j++;
        size_t run = j - i, room = LINE_KEEP - c->line_len;
        memcpy(c->line + c->line_len, p + i, run < room ? run : room);
        c->line_len += (uint16_t)(run < room ? run : room);
        c->line_total += (uint32_t)run;
        i = j - 1;
    }
}

/* Body bytes: undo the chunked coding, hand the payload to the SSE parser. False when the
 * stream is malformed or ended. */
static bool body_feed(conn_t *c, const char *p, size_t n)
{
    if (!c->chunked) {
        sse_feed(c, p, n);
        return true;
    }
    size_t i = 0;
    while (i < n) {
        char ch = p[i];
        switch (c->chunk_state) {
        case CH_SIZE:
            if ((ch >= '0' && ch <= '9') || ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'f')) {
                unsigned d = ch <= '9' ? (unsigned)(ch - '0') : (unsigned)((ch | 0x20) - 'a' + 10);
                if (c->chunk_left > (UINT32_MAX >> 4))
                    return false;
                c->chunk_left = c->chunk_left * 16 + d;
            } else if (ch == ';' || ch == ' ') {
                c->chunk_state = CH_EXT;
            } else if (ch == '\r') {
                c->chunk_state = CH_SIZE_LF;
            } else {
                return false;
            }
            i++;
            break;
        case CH_EXT:
            if (ch == '\r')
                c->chunk_state = CH_SIZE_LF;
            i++;
            break;
        case CH_SIZE_LF:
            if (ch != '\n')
                return false;
            i++;
            if (c->chunk_left == 0) {
                c->chunk_state = CH_DONE; /* the last chunk: the stream ended */
                return false;
            }
            c->chunk_state = CH_DATA;
            break;
        case CH_DATA: {
            size_t take = n - i < c->chunk_left ? n - i : c->chunk_left;
            sse_feed(c, p + i, take);
            i += take;
            c->chunk_left -= (uint32_t)take;
            if (c->chunk_left == 0)
                c->chunk_state = CH_DATA_CR;
            break;
        }
        case CH_DATA_CR:
            if (ch != '\r')
                return false;
            c->chunk_state = CH_DATA_LF;
            i++;
            break;
        case CH_DATA_LF:
            if (ch != '\n')
                return false;
            c->chunk_state = CH_SIZE;
            c->chunk_left = 0;
            i++;
            break;
        default:
            return false;
        }
    }
    return true;
}

static bool has_token(const char *value_start, const char *line_end, const char *tok)
{
    size_t tl = strlen(tok);
    for (const char *p = value_start; p + tl <= line_end; p++) {
        size_t k = 0;
        while (k < tl && (p[k] | 0x20) == tok[k])
            k++;
        if (k == tl)
            return true;
    }
    return false;
}

/* Header bytes; returns false when the stream must be dropped. */
static bool headers_feed(conn_t *c, const char *p, size_t n)
{
    if (!c->hdr && !(c->hdr = malloc(HDR_MAX + 1)))
        bench_die("out of memory");
    size_t take = n < HDR_MAX - c->hdr_len ? n : HDR_MAX - c->hdr_len;
    memcpy(c->hdr + c->hdr_len, p, take);
    c->hdr_len += (uint32_t)take;
    c->hdr[c->hdr_len] = '\0';
    size_t hlen;
    int status;
    if (!bench_http_head(c->hdr, &status, &hlen)) {
        if (c->hdr_len == HDR_MAX) {
            g.proto_errors++;
            return false;
        }
        return true;
    }
    if (!status) {
        g.proto_errors++;
        return false;
    }
    if (status != 200) {
        g.refused_status[status]++;
        c->refused = status != 503;
        if (!g.refusal[0]) {
            size_t bl = c->hdr_len - hlen;
            snprintf(g.refusal, sizeof(g.refusal), "%d %.*s", status, (int)(bl < 200 ? bl : 200),
                     c->hdr + hlen);
        }
        return false;
    }
    const char *te = bench_http_header(c->hdr, hlen, "Transfer-Encoding");
    if (te && has_token(te, strstr(te, "\r\n"), "chunked"))
        c->chunked = true;
    c->state = S_BODY;
    char *rest = c->hdr + hlen;
    size_t rest_len = c->hdr_len - hlen;
    bool ok = true;
    if (rest_len) { /* the first body bytes came with the headers */
        char tmp[HDR_MAX];
        memcpy(tmp, rest, rest_len);
        free(c->hdr);
        c->hdr = NULL;
        ok = body_feed(c, tmp, rest_len);
    } else {
        free(c->hdr);
        c->hdr = NULL;
    }
    if (ok && take < n)
        ok = body_feed(c, p + take, n - take);
    return ok;
}

/* Reads what the socket has, stamping it with the kernel's receive time. Returns bytes,
 * 0 at EOF, -1 on error, -2 when there was nothing. */
static ssize_t read_stamped(int fd, char *buf, size_t cap)
{
    char cbuf[CMSG_SPACE(sizeof(struct timespec))];
    struct iovec iov = {buf, cap};
    struct msghdr m = {.msg_iov = &iov,
                       .msg_iovlen = 1,
                       .msg_control = opt.kernel_ts ? cbuf : NULL,
                       .msg_controllen = opt.kernel_ts ? sizeof(cbuf) : 0};
    ssize_t n = recvmsg(fd, &m, 0);
    if (n < 0)
        return errno == EAGAIN || errno == EINTR ? -2 : -1;
    g.now_read = bench_real_ns();
    g.now_kernel = g.now_read;
    if (opt.kernel_ts)
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&m); cm; cm = CMSG_NXTHDR(&m, cm))
            if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SO_TIMESTAMPNS) {
                struct timespec ts;
                memcpy(&ts, CMSG_DATA(cm), sizeof(ts));
                g.now_kernel = (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
            }
    return n;
}

static char rbuf[RBUF];

static void conn_event(conn_t *c, uint32_t events)
{
    if (c->state == S_CONNECTING) {
        if (events & (EPOLLERR | EPOLLHUP)) {
            conn_drop(c, true);
            return;
        }
        if (events & EPOLLOUT) {
            conn_send_request(c);
            return;
        }
    }
    for (int rounds = 0; rounds < 4; rounds++) {
        ssize_t n = read_stamped(c->fd, rbuf, sizeof(rbuf));
        if (n == -2)
            return;
        if (n <= 0) {
            conn_drop(c, true);
            return;
        }
        g.reads++;
        g.bytes += (uint64_t)n;
        bool ok = c->state == S_HEADERS ? headers_feed(c, rbuf, (size_t)n)
                                        : body_feed(c, rbuf, (size_t)n);
        if (!ok) {
            conn_drop(c, true);
            return;
        }
        if ((size_t)n < sizeof(rbuf))
            return;
    }
}

/* ---- the publisher ---------------------------------------------------------------------- */

static struct {
    int fd;
    char buf[PUB_BUF];
    size_t len;
    bool busy;
    int status;
    uint64_t post, t0, t_answer;
    char body_sample[256];
} pub = {.fd = -1};

static void pub_connect(void)
{
    if (pub.fd >= 0)
        return;
    int fd = bench_tcp_socket(false);
    if (fd < 0)
        bench_die("socket: %s", strerror(-fd));
    int rc = bench_connect_loopback(fd, opt.port);
    if (rc != 0)
        bench_die("publisher connect: %s", strerror(-rc));
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &pub};
    epoll_ctl(g.ep, EPOLL_CTL_ADD, fd, &ev);
    pub.fd = fd;
}

/* Sends one POST /v1/posts; t0 is taken just before the send. */
static void pub_send(int k)
{
    char body[1024], req[2048];
    if (bench_post_body(body, sizeof(body), opt.text, (unsigned long long)k) < 0)
        bench_die("--text too long");
    int len = bench_http_request(req, sizeof(req), "POST", "/v1/posts", opt.port, opt.publish_token,
                                 "", body);
    if (len < 0)
        bench_die("--text too long");
    pub.len = 0;
    pub.busy = true;
    pub.status = 0;
    pub.post = 0;
    pub.t0 = bench_real_ns();
    if (send(pub.fd, req, (size_t)len, MSG_NOSIGNAL) != len)
        bench_die("publisher send: %s", strerror(errno));
}

static void pub_readable(void)
{
    for (;;) {
        if (pub.len == PUB_BUF - 1)
            bench_die("publisher: answer too large");
        ssize_t n = recv(pub.fd, pub.buf + pub.len, PUB_BUF - 1 - pub.len, 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0)
            bench_die("publisher: the server closed the connection");
        pub.len += (size_t)n;
        pub.buf[pub.len] = '\0';
        int status;
        size_t hlen, blen = 0;
        if (!bench_http_head(pub.buf, &status, &hlen))
            continue;
        const char *cl = bench_http_header(pub.buf, hlen, "Content-Length");
        if (cl)
            blen = strtoul(cl, NULL, 10);
        if (pub.len < hlen + blen)
            continue;
        pub.t_answer = bench_real_ns();
        pub.status = status;
        snprintf(pub.body_sample, sizeof(pub.body_sample), "%.*s", (int)(blen < 200 ? blen : 200),
                 pub.buf + hlen);
        pub.post = pub.status / 100 == 2 ? post_id_in(pub.buf + hlen, blen) : 0;
        pub.busy = false;
        return;
    }
}

/* ---- the loop ----------------------------------------------------------------------------- */

static uint64_t deadline_all;

/* Starts waiting connections (paced), then waits for events up to timeout_ms. */
static void pump(int timeout_ms)
{
    uint64_t now = bench_mono_ns();
    if (now > deadline_all)
        bench_die("--max-time %.0f s exceeded", opt.max_time_s);
    for (int i = 0; g.waiting && i < g.n && g.connecting < opt.concurrency; i++) {
        conn_t *c = &g.c[i];
        if (c->state == S_WAIT && c->retry_at <= now)
            conn_start(c);
    }
    struct epoll_event evs[1024];
    int n = epoll_wait(g.ep, evs, 1024, timeout_ms);
    if (n < 0 && errno != EINTR)
        bench_die("epoll_wait: %s", strerror(errno));
    for (int i = 0; i < n; i++) {
        if (evs[i].data.ptr == &pub)
            pub_readable();
        else
            conn_event(evs[i].data.ptr, evs[i].events);
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* The nearest rank of percentile p among n sorted values, 1-based; 0 when there are none. */
static size_t rank(size_t n, double p)
{
    if (!n)
        return 0;
    size_t k = (size_t)((p / 100.0) * (double)n + 0.999999);
    if (k < 1)
        k = 1;
    return k > n ? n : k;
}

/* Percentile p of n sorted ns values, in ms. */
static double pct_ms(const uint64_t *v, size_t n, double p)
{
    return n ? (double)v[rank(n, p) - 1] / 1e6 : 0;
}

static double pct_ms_i(const int64_t *v, size_t n, double p)
{
    return n ? (double)v[rank(n, p) - 1] / 1e6 : 0;
}

typedef struct {
    uint64_t post;
    int received;
    double post_ms;
    double k50, k90, k99, kmax, kmin; /* kernel receive time - t0 */
    double r50, r99, rmax;            /* read time - t0 */
    double l50, l99, lmax;            /* logged (event id ms) - t0: the server's side */
    double a50, a99, amax;            /* kernel receive time - logged: the stream's side */
    double rate;                      /* received / (last kernel time - t0) */
    double spread_ms;                 /* last - first */
} post_result_t;

/* Latencies of every stream that got post, from t0; all_k/all_r collect them too. */
static void summarise(uint64_t post, uint64_t t0, post_result_t *pr, uint64_t *all_k,
                      uint64_t *all_r, int64_t *all_l, int64_t *all_a, size_t *n_all)
{
    uint64_t *k = malloc((g.n + 1) * sizeof(*k)), *r = malloc((g.n + 1) * sizeof(*r));
    int64_t *lg = malloc((g.n + 1) * sizeof(*lg)), *ar = malloc((g.n + 1) * sizeof(*ar));
    uint8_t *seen = calloc((size_t)g.n, 1);
    if (!k || !r || !seen || !lg || !ar)
        bench_die("out of memory");
    size_t m = 0;
    for (size_t i = 0; i < g.n_recs; i++) {
        const rec_t *e = &g.recs[i];
        if (e->post != post || seen[e->conn])
            continue;
        seen[e->conn] = 1;
        k[m] = e->t_kernel > t0 ? e->t_kernel - t0 : 0;
        r[m] = e->t_read > t0 ? e->t_read - t0 : 0;
        /* ms resolution: the id's ms is a floor, so add half a ms */
        int64_t logged_ns = (int64_t)e->logged_ms * (int64_t)NS_PER_MS + (int64_t)(NS_PER_MS / 2);
        lg[m] = logged_ns - (int64_t)t0;
        ar[m] = (int64_t)e->t_kernel - logged_ns;
        all_k[*n_all] = k[m];
        all_r[*n_all] = r[m];
        all_l[*n_all] = lg[m];
        all_a[*n_all] = ar[m];
        (*n_all)++;
        m++;
    }
    qsort(k, m, sizeof(*k), cmp_u64);
    qsort(r, m, sizeof(*r), cmp_u64);
    qsort(lg, m, sizeof(*lg), cmp_i64);
    qsort(ar, m, sizeof(*ar), cmp_i64);
    pr->l50 = pct_ms_i(lg, m, 50);
    pr->l99 = pct_ms_i(lg, m, 99);
    pr->lmax = m ? (double)lg[m - 1] / 1e6 : 0;
    pr->a50 = pct_ms_i(ar, m, 50);
    pr->a99 = pct_ms_i(ar, m, 99);
    pr->amax = m ? (double)ar[m - 1] / 1e6 : 0;
    free(lg);
    free(ar);
    pr->post = post;
    pr->received = (int)m;
    pr->k50 = pct_ms(k, m, 50);
    pr->k90 = pct_ms(k, m, 90);
    pr->k99 = pct_ms(k, m, 99);
    pr->kmax = m ? (double)k[m - 1] / 1e6 : 0;
    pr->kmin = m ? (double)k[0] / 1e6 : 0;
    pr->r50 = pct_ms(r, m, 50);
    pr->r99 = pct_ms(r, m, 99);
    pr->rmax = m ? (double)r[m - 1] / 1e6 : 0;
    pr->rate = m && k[m - 1] ? (double)m / ((double)k[m - 1] / 1e9) : 0;
    pr->spread_ms = m ? (double)(k[m - 1] - k[0]) / 1e6 : 0;
    free(k);
    free(r);
    free(seen);
}

static void raise_nofile(int need)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        bench_die("getrlimit: %s", strerror(errno));
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            bench_die("setrlimit: %s", strerror(errno));
    }
    if (rl.rlim_cur != RLIM_INFINITY && (rlim_t)need > rl.rlim_cur)
        bench_die("%d connections need %d open files; the hard limit is %llu", opt.connections,
                  need, (unsigned long long)rl.rlim_cur);
}

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static void usage(void)
{
    fputs(
        "usage: tidings-sse-load --port P --tokens FILE [options]\n"
        "  --port P                 tidings on 127.0.0.1:P\n"
        "  --tokens FILE            bearer tokens, one a line; stream i uses line i mod count\n"
        "  --connections N          streams to open (1000)\n"
        "  --connect-concurrency K  streams being set up at once (256)\n"
        "  --ready-file PATH        written when all N streams got \"retry:\"\n"
        "  --go-file PATH           publish (or, without --publish-token, stop holding) once\n"
        "                           this file exists; without it, after --settle seconds\n"
        "  --settle S               seconds between READY and the first post (2)\n"
        "  --publish-token TOKEN    POST /v1/posts as this user and measure the delivery\n"
        "  --posts M                posts to publish, one after the other (1)\n"
        "  --gap S                  seconds between one post's completion and the next (1)\n"
        "  --rate R                 instead: R posts a second, each due on time, latency from\n"
        "                           its due time; --timeout counts from the last one\n"
        "  --text TEXT              post text (\"sse benchmark post\"), no quotes or backslashes\n"
        "  --timeout S              wait at most S seconds for one post's deliveries (30)\n"
        "  --ready-timeout S        wait at most S seconds for the N streams (120)\n"
        "  --hold S                 without --publish-token: hold the streams S seconds (10)\n"
        "  --max-time S             hard bound on the whole run (600)\n"
        "  --no-kernel-ts           time events when read(), not by SO_TIMESTAMPNS\n"
        "  --quiet                  print only READY and RESULT lines\n",
        stderr);
}

/* One post's line (from its send, or with --rate from its due time). */
static void print_post(int k, const post_result_t *r, uint64_t dups)
{
    if (!opt.quiet)
        printf("post %d (id %llu): POST answered in %.2f ms; received by %d of %d streams "
               "(%d live); latency ms p50 %.2f p90 %.2f p99 %.2f max %.2f min %.2f "
               "(read by the client: p50 %.2f p99 %.2f max %.2f); %.0f events/s; "
               "duplicates %llu\n"
               "  split by the event id (ms Redis logged it, +-0.5 ms): POST -> logged p50 %.1f "
               "p99 %.1f max %.1f; logged -> arrival p50 %.1f p99 %.1f max %.1f\n",
               k + 1, (unsigned long long)r->post, r->post_ms, r->received, g.n, g.ready, r->k50,
               r->k90, r->k99, r->kmax, r->kmin, r->r50, r->r99, r->rmax, r->rate,
               (unsigned long long)dups, r->l50, r->l99, r->lmax, r->a50, r->a99, r->amax);
    fflush(stdout);
}

static bool is_one_of(uint64_t post, const uint64_t *ids, int n)
{
    for (int i = 0; i < n; i++)
        if (ids[i] == post)
            return true;
    return false;
}

/* --rate: opt.posts posts due opt.rate a second (see the top of the file). Fills res[] and
 * the all_* arrays as the one-by-one loop does; returns the worst send lag in ms. */
static double publish_at_rate(post_result_t *res, uint64_t *all_k, uint64_t *all_r, int64_t *all_l,
                              int64_t *all_a, size_t *n_all)
{
    uint64_t *due = calloc((size_t)opt.posts, sizeof(*due));
    uint64_t *ids = calloc((size_t)opt.posts, sizeof(*ids));
    if (!due || !ids)
        bench_die("out of memory");
    uint64_t step = (uint64_t)(1e9 / opt.rate), first = bench_real_ns() + NS_PER_MS;
    uint64_t deadline = first + step * (uint64_t)(opt.posts - 1) + (uint64_t)(opt.timeout_s * 1e9);
    /* Deliveries are counted once every post's id is known; recs before the first post
     * are someone else's. */
    size_t scanned = g.n_recs;
    long got = 0, want = 0;
    int sent = 0, answered = 0;
    double lag_max_ms = 0;
    g.want_post = 0;
    for (;;) {
        uint64_t now = bench_real_ns();
        if (sent > answered && !pub.busy) {
            if (pub.status / 100 != 2 || !pub.post)
                bench_die("POST /v1/posts failed: status %d %s", pub.status, pub.body_sample);
            ids[answered] = pub.post;
            res[answered].post_ms = (double)(pub.t_answer - due[answered]) / 1e6;
            if (++answered == opt.posts)
                want = (long)g.ready * opt.posts;
        }
        if (sent == answered && sent < opt.posts && now >= first + step * (uint64_t)sent) {
            due[sent] = first + step * (uint64_t)sent;
            pub_send(sent + 1);
            double lag = (double)(pub.t0 - due[sent]) / 1e6;
            lag_max_ms = lag > lag_max_ms ? lag : lag_max_ms;
            sent++;
        }
        if (answered == opt.posts) {
            for (; scanned < g.n_recs; scanned++)
                got += is_one_of(g.recs[scanned].post, ids, opt.posts);
            if (got >= want)
                break;
        }
        if (now > deadline) {
            if (answered < opt.posts)
                bench_die("POST %d of %d not answered by the deadline", answered + 1, opt.posts);
            break;
        }
        pump(sent < opt.posts ? 1 : 5);
    }
    for (int k = 0; k < opt.posts; k++) {
        summarise(ids[k], due[k], &res[k], all_k, all_r, all_l, all_a, n_all);
        print_post(k, &res[k], 0);
    }
    free(due);
    free(ids);
    return lag_max_ms;
}

int main(int argc, char **argv)
{
    const bench_opt_t opts[] = {
        {"port", BENCH_OPT_INT, &opt.port},
        {"tokens", BENCH_OPT_STR, &opt.tokens_path},
        {"connections", BENCH_OPT_INT, &opt.connections},
        {"connect-concurrency", BENCH_OPT_INT, &opt.concurrency},
        {"ready-file", BENCH_OPT_STR, &opt.ready_file},
        {"go-file", BENCH_OPT_STR, &opt.go_file},
        {"settle", BENCH_OPT_DOUBLE, &opt.settle_s},
        {"publish-token", BENCH_OPT_STR, &opt.publish_token},
        {"posts", BENCH_OPT_INT, &opt.posts},
        {"gap", BENCH_OPT_DOUBLE, &opt.gap_s},
        {"rate", BENCH_OPT_DOUBLE, &opt.rate},
        {"text", BENCH_OPT_STR, &opt.text},
        {"timeout", BENCH_OPT_DOUBLE, &opt.timeout_s},
        {"ready-timeout", BENCH_OPT_DOUBLE, &opt.ready_timeout_s},
        {"hold", BENCH_OPT_DOUBLE, &opt.hold_s},
        {"max-time", BENCH_OPT_DOUBLE, &opt.max_time_s},
        {"no-kernel-ts", BENCH_OPT_FALSE, &opt.kernel_ts},
        {"quiet", BENCH_OPT_TRUE, &opt.quiet},
        {NULL, 0, NULL},
    };
    bench_prog = "sse_load";
    int rc = bench_parse_args(argc, argv, opts);
    if (rc != 0) {
        usage();
        return rc == 1 ? 0 : 2;
    }
    if (opt.port <= 0 || opt.port > 65535 || !opt.tokens_path)
        bench_die("--port and --tokens are required (--help)");
    if (opt.connections < 1 || opt.concurrency < 1 || opt.posts < 1 || opt.timeout_s <= 0 ||
        opt.max_time_s <= 0 || opt.rate < 0 || opt.rate > 1000)
        bench_die("bad numeric option");
    if (strpbrk(opt.text, "\"\\"))
        bench_die("--text must not contain quotes or backslashes");
    opt.tokens = bench_read_lines(opt.tokens_path, &opt.n_tokens);
    raise_nofile(opt.connections + 32);

    g.ep = epoll_create1(EPOLL_CLOEXEC);
    if (g.ep < 0)
        bench_die("epoll_create1: %s", strerror(errno));
    g.n = opt.connections;
    g.c = calloc((size_t)g.n, sizeof(*g.c));
    if (!g.c)
        bench_die("out of memory");
    for (int i = 0; i < g.n; i++)
        g.c[i] = (conn_t){.fd = -1, .state = S_WAIT};
    g.waiting = g.n;
    uint64_t start = bench_mono_ns();
    deadline_all = start + (uint64_t)(opt.max_time_s * 1e9);

    /* 1. connect all N and wait for their "retry:" */
    uint64_t ready_deadline = start + (uint64_t)(opt.ready_timeout_s * 1e9);
    while (g.ready + g.dead < g.n && bench_mono_ns() < ready_deadline)
        pump(g.connecting >= opt.concurrency || !g.waiting ? 50 : 0);
    double connect_s = (double)(bench_mono_ns() - start) / 1e9;
    printf("READY conns=%d ready=%d failed=%d connect_s=%.3f retries=%llu\n", g.n, g.ready, g.dead,
           connect_s, (unsigned long long)g.retries_done);
    fflush(stdout);
    if (g.ready < g.n) {
        fprintf(stderr, "sse_load: only %d of %d streams started (%d failed, %d pending)%s%s\n",
                g.ready, g.n, g.failed, g.n - g.ready - g.dead,
                g.refusal[0] ? "; first refusal: " : "", g.refusal);
    }
    if (opt.ready_file) {
        char tmp[4096];
        snprintf(tmp, sizeof(tmp), "%s.tmp", opt.ready_file);
        FILE *f = fopen(tmp, "w");
        if (!f || fprintf(f, "%d %d %.3f\n", g.ready, g.n, connect_s) < 0 || fclose(f) != 0 ||
            rename(tmp, opt.ready_file) != 0)
            bench_die("cannot write %s", opt.ready_file);
    }

    /* 2. hold until the go signal (or --settle / --hold seconds) */
    double wait_s = opt.publish_token ? opt.settle_s : opt.hold_s;
    uint64_t t_ready = bench_mono_ns(), ev_before = g.events_total;
    for (;;) {
        if (opt.go_file ? file_exists(opt.go_file)
                        : bench_mono_ns() - t_ready >= (uint64_t)(wait_s * 1e9))
            break;
        pump(20);
    }
    if (!opt.publish_token) {
        printf(
            "held %d streams for %.1f s: %llu events (%llu heartbeats), %d closed by the server\n",
            g.ready, (double)(bench_mono_ns() - t_ready) / 1e9,
            (unsigned long long)(g.events_total - ev_before), (unsigned long long)g.heartbeats,
            g.dead - g.failed);
        printf("RESULT conns=%d ready=%d failed=%d connect_s=%.3f closed=%llu heartbeats=%llu\n",
               g.n, g.ready, g.failed, connect_s, (unsigned long long)g.closed_after_ready,
               (unsigned long long)g.heartbeats);
        return g.ready == g.n ? 0 : 1;
    }

    /* 3. publish and measure, one post after the other (or at --rate) */
    pub_connect();
    size_t cap_all = (size_t)g.n * (size_t)opt.posts + 1, n_all = 0;
    uint64_t *all_k = malloc(cap_all * sizeof(*all_k)), *all_r = malloc(cap_all * sizeof(*all_r));
    int64_t *all_l = malloc(cap_all * sizeof(*all_l)), *all_a = malloc(cap_all * sizeof(*all_a));
    post_result_t *res = calloc((size_t)opt.posts, sizeof(*res));
    if (!all_k || !all_r || !all_l || !all_a || !res)
        bench_die("out of memory");
    int live_at_start = g.ready;
    struct rusage ru0;
    getrusage(RUSAGE_SELF, &ru0);
    double lag_max_ms = 0;
    if (opt.rate > 0)
        lag_max_ms = publish_at_rate(res, all_k, all_r, all_l, all_a, &n_all);
    for (int k = 0; opt.rate == 0 && k < opt.posts; k++) {
        for (int i = 0; i < g.n; i++)
            g.c[i].last_post = 0;
        g.matched = 0;
        g.want_post = 0;
        g.dups = 0;
        size_t recs_from = g.n_recs;
        pub_send(k + 1);
        uint64_t t0 = pub.t0, post_deadline = bench_mono_ns() + (uint64_t)(opt.timeout_s * 1e9);
        while (pub.busy && bench_mono_ns() < post_deadline)
            pump(5);
        if (pub.busy || pub.status / 100 != 2 || !pub.post)
            bench_die("POST /v1/posts failed: status %d %s", pub.status, pub.body_sample);
        g.want_post = pub.post;
        for (size_t i = recs_from; i < g.n_recs; i++) /* events that beat the answer */
            if (g.recs[i].post == pub.post && g.c[g.recs[i].conn].last_post != pub.post) {
                g.c[g.recs[i].conn].last_post = pub.post;
                g.matched++;
            }
        while (g.matched < g.ready && bench_mono_ns() < post_deadline)
            pump(5);
        summarise(pub.post, t0, &res[k], all_k, all_r, all_l, all_a, &n_all);
        res[k].post_ms = (double)(pub.t_answer - t0) / 1e6;
        print_post(k, &res[k], g.dups);
        if (k + 1 < opt.posts) {
            uint64_t until = bench_mono_ns() + (uint64_t)(opt.gap_s * 1e9);
            while (bench_mono_ns() < until)
                pump(10);
        }
    }
    double cpu_s = bench_cpu_since(&ru0);

    /* 4. overall */
    qsort(all_k, n_all, sizeof(*all_k), cmp_u64);
    qsort(all_r, n_all, sizeof(*all_r), cmp_u64);
    qsort(all_l, n_all, sizeof(*all_l), cmp_i64);
    qsort(all_a, n_all, sizeof(*all_a), cmp_i64);
    double lg50 = pct_ms_i(all_l, n_all, 50), lg99 = pct_ms_i(all_l, n_all, 99),
           ar50 = pct_ms_i(all_a, n_all, 50), ar99 = pct_ms_i(all_a, n_all, 99);
    int min_received = g.n;
    double rate_sum = 0;
    for (int k = 0; k < opt.posts; k++) {
        if (res[k].received < min_received)
            min_received = res[k].received;
        rate_sum += res[k].rate;
    }
    double all50 = pct_ms(all_k, n_all, 50), all90 = pct_ms(all_k, n_all, 90),
           all99 = pct_ms(all_k, n_all, 99), allmax = n_all ? (double)all_k[n_all - 1] / 1e6 : 0;
    double rd50 = pct_ms(all_r, n_all, 50), rd99 = pct_ms(all_r, n_all, 99),
           rdmax = n_all ? (double)all_r[n_all - 1] / 1e6 : 0;
    if (!opt.quiet) {
        if (opt.rate > 0)
            printf("sustained: %d posts due %g a second, latency from each due time; worst send "
                   "lag %.2f ms\n",
                   opt.posts, opt.rate, lag_max_ms);
        printf("all %d posts: %zu deliveries of %d expected; latency ms p50 %.2f p90 %.2f p99 %.2f "
               "max %.2f (read: p50 %.2f p99 %.2f max %.2f); mean %.0f events/s per post; "
               "POST -> logged p50 %.1f p99 %.1f, logged -> arrival p50 %.1f p99 %.1f\n",
               opt.posts, n_all, opt.posts * g.n, all50, all90, all99, allmax, rd50, rd99, rdmax,
               rate_sum / opt.posts, lg50, lg99, ar50, ar99);
        printf("streams: %d opened (%llu connects, %llu retries), %llu closed by the server, "
               "%llu heartbeats, %llu other events, %llu protocol errors; client CPU %.3f s "
               "during the posts; timestamps: %s\n",
               g.n, (unsigned long long)g.connects, (unsigned long long)g.retries_done,
               (unsigned long long)g.closed_after_ready, (unsigned long long)g.heartbeats,
               (unsigned long long)g.ev_other, (unsigned long long)g.proto_errors, cpu_s,
               opt.kernel_ts ? "kernel (SO_TIMESTAMPNS)" : "read()");
    }
    printf("RESULT conns=%d ready=%d failed=%d connect_s=%.3f posts=%d expected=%d delivered=%zu "
           "min_received=%d first_p50_ms=%.3f first_p99_ms=%.3f first_max_ms=%.3f p50_ms=%.3f "
           "p90_ms=%.3f p99_ms=%.3f max_ms=%.3f read_p50_ms=%.3f read_p99_ms=%.3f "
           "read_max_ms=%.3f events_per_s=%.0f first_events_per_s=%.0f post_ms=%.3f "
           "closed=%llu client_cpu_s=%.3f kernel_ts=%d logged_p50_ms=%.1f logged_p99_ms=%.1f "
           "arrival_p50_ms=%.1f arrival_p99_ms=%.1f rate=%g send_lag_max_ms=%.3f\n",
           g.n, live_at_start, g.failed, connect_s, opt.posts, opt.posts * g.n, n_all, min_received,
           res[0].k50, res[0].k99, res[0].kmax, all50, all90, all99, allmax, rd50, rd99, rdmax,
           rate_sum / opt.posts, res[0].rate, res[0].post_ms,
           (unsigned long long)g.closed_after_ready, cpu_s, opt.kernel_ts ? 1 : 0, lg50, lg99, ar50,
           ar99, opt.rate, lag_max_ms);
    fflush(stdout);
    /* closing 10,000 sockets is quick; the server sees them end */
    for (int i = 0; i < g.n; i++)
        if (g.c[i].fd >= 0)
            close(g.c[i].fd);
    if (pub.fd >= 0)
        close(pub.fd);
    for (int i = 0; i < g.n; i++)
        free(g.c[i].hdr);
    bench_free_lines(opt.tokens, opt.n_tokens);
    free(g.c);
    free(g.recs);
    free(all_k);
    free(all_r);
    free(all_l);
    free(all_a);
    free(res);
    close(g.ep);
    return min_received == g.n ? 0 : 1;
}
