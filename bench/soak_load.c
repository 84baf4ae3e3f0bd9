/* bench/soak_load.c -- the soak's client: a follow graph, a steady mix of writes and
 * thousands of SSE streams that keep reconnecting, on one epoll thread (bench/soak.sh).
 *
 * Users come from --users ("id token" lines, as bench/lib.sh's register writes). The first
 * --celebs users are followed by everyone; users 0..--authors-1 are the ones who post, and
 * every user follows --follows of them at random. The setup sends those follows first,
 * closed loop on --connections keep-alive connections. Then, for --duration seconds:
 *
 * - actions, open loop at --rate a second on the same connections: posts (by an author),
 *   likes and unlikes, reposts and unreposts (a toggle per user and post, over the last
 *   RECENT_POSTS posts), follows and unfollows of an author (half each, so the graph stays
 *   as dense as it started), and deletes of a recent post now and then;
 * - --streams GET /v1/stream (stream i as user i mod users), each closed after a random
 *   --min-life..--max-life seconds and opened again at once with its Last-Event-ID, so the
 *   server replays all the time.
 *
 * Every request the client sends is valid for the state it has sent so far (a post is not
 * deleted while a request about it is in flight), so every answer but a 2xx, and a 429, is
 * counted as an error; so are a stream answered other than 200 and a connection that fails.
 * A stream the server ends is counted apart (server_closes) and reopened like the others. Every second
 * the counters go to --stats-file (replaced whole), at the end to stdout as one RESULT line.
 */
#define _GNU_SOURCE
#include "bench/bench_lib.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#define RECENT_POSTS 1024 /* posts that likes, reposts and deletes pick from */
#define MAX_USERS 4096
#define ID_LEN 32
#define REQ_CAP 4096
#define ACT_BUF (64 * 1024)
#define SSE_BUF (16 * 1024)
#define BODIES_SHOWN 5 /* error answers printed to stderr */

/* ---- options -------------------------------------------------------------------------- */

static struct {
    int port;
    const char *users_path;
    const char *stats_path;
    int celebs, authors, follows, connections, streams, connect_concurrency;
    double rate, duration_s, min_life_s, max_life_s;
    unsigned seed;
} opt = {.celebs = 3,
         .authors = 100,
         .follows = 30,
         .connections = 8,
         .streams = 2000,
         .connect_concurrency = 128,
         .rate = 40,
         .duration_s = 60,
         .min_life_s = 10,
         .max_life_s = 60,
         .seed = 1};

/* ---- the model: who follows whom, the recent posts and who liked or reposted them ------- */

typedef struct {
    char id[ID_LEN];
    int author;   /* user index */
    int inflight; /* requests about the post not yet answered: no delete meanwhile */
    bool alive;
    uint8_t liked[MAX_USERS / 8], reposted[MAX_USERS / 8];
} post_t;

static char **user_id, **user_token;
static size_t nusers;
static uint8_t *follows;     /* nusers x authors bits: user follows author */
static post_t *recent;       /* ring of RECENT_POSTS */
static unsigned recent_next; /* where the next post goes */
static unsigned long long posts_made;

static bool bit(const uint8_t *v, size_t i)
{
    return v[i / 8] >> (i % 8) & 1;
}
static void flip(uint8_t *v, size_t i)
{
    v[i / 8] ^= (uint8_t)(1u << (i % 8));
}
static bool following(size_t u, int a)
{
    return bit(follows, u * (size_t)opt.authors + (size_t)a);
}
static void flip_follow(size_t u, int a)
{
    flip(follows, u * (size_t)opt.authors + (size_t)a);
}

static unsigned rnd(unsigned n)
{
    return (unsigned)(random() % n);
}

/* ---- counters --------------------------------------------------------------------------- */

static struct {
    unsigned long long requests, errors, status429, conn_errors, follows_setup;
    unsigned long long events, resets, reconnects, server_closes, streams_open, stream_errors;
    unsigned long long by_kind[8];
    int bodies_shown;
} st;

/* ---- action connections ------------------------------------------------------------------ */

typedef enum { A_POST, A_LIKE, A_REPOST, A_FOLLOW, A_DELETE, A_SETUP, A_KINDS } action_kind_t;
static const char *kind_name[] = {"post", "like", "repost", "follow", "delete", "setup"};

typedef struct {
    int fd;
    bool busy, connected;
    action_kind_t kind;
    post_t *post; /* the post the request is about, or NULL */
    char req[REQ_CAP];
    size_t req_len, req_sent;
    char buf[ACT_BUF];
    size_t got;
} act_conn_t;

typedef struct {
    int fd;
    bool head_done, connected;
    size_t user;
    uint64_t close_at; /* monotonic ns */
    char last_id[ID_LEN];
    char req[REQ_CAP];
    size_t req_len, req_sent;
    char buf[SSE_BUF];
    size_t got;
} stream_t;

static int ep;
static act_conn_t *acts;
static stream_t *streams;
static int streams_connecting;

/* epoll tags: act i -> i, stream i -> connections + i */
static void ep_add(int fd, uint32_t events, uint64_t tag)
{
    struct epoll_event ev = {.events = events, .data.u64 = tag};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
        bench_die("epoll_ctl: %s", strerror(errno));
}

static void ep_mod(int fd, uint32_t events, uint64_t tag)
{
    struct epoll_event ev = {.events = events, .data.u64 = tag};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev) < 0)
        bench_die("epoll_ctl: %s", strerror(errno));
}

static void act_open(int i)
{
    act_conn_t *c = &acts[i];
    c->fd = bench_tcp_socket(true);
    if (c->fd < 0 || bench_connect_loopback(c->fd, opt.port) < 0)
        bench_die("connect: %s", strerror(errno));
    c->connected = false;
    c->busy = false;
    c->got = 0;
    ep_add(c->fd, EPOLLOUT, (uint64_t)i);
}

/* A connection that failed: its request counts as an error, a new one takes its place. */
static void act_fail(int i)
{
    act_conn_t *c = &acts[i];
    if (c->busy) {
        st.errors++;
        st.conn_errors++;
        if (c->post)
            c->post->inflight--;
    }
    close(c->fd);
    act_open(i);
}

static void act_send(int i)
{
    act_conn_t *c = &acts[i];
    while (c->req_sent < c->req_len) {
        ssize_t n = write(c->fd, c->req + c->req_sent, c->req_len - c->req_sent);
        if (n < 0 && errno == EAGAIN) {
            ep_mod(c->fd, EPOLLIN | EPOLLOUT, (uint64_t)i);
            return;
        }
        if (n <= 0) {
            act_fail(i);
            return;
        }
        c->req_sent += (size_t)n;
    }
    ep_mod(c->fd, EPOLLIN, (uint64_t)i);
}

static void act_start(int i, action_kind_t kind, post_t *post, const char *method, const char *path,
                      const char *token, const char *body)
{
    act_conn_t *c = &acts[i];
    int n = bench_http_request(c->req, sizeof c->req, method, path, opt.port, token, "", body);
    if (n < 0)
        bench_die("request too long");
    c->req_len = (size_t)n;
    c->req_sent = 0;
    c->got = 0;
    c->busy = true;
    c->kind = kind;
    c->post = post;
    if (post)
        post->inflight++;
    st.by_kind[kind]++;
    if (c->connected)
        act_send(i);
}

/* The answer to a post: remember its id in the ring (a slot still in use is skipped). */
static void remember_post(const char *body, int author)
{
    const char *p = strstr(body, "\"id\":\"");
    if (!p)
        return;
    p += 6;
    size_t len = strcspn(p, "\"");
    if (len >= ID_LEN)
        return;
    for (int tries = 0; tries < RECENT_POSTS; tries++) {
        post_t *slot = &recent[recent_next];
        recent_next = (recent_next + 1) % RECENT_POSTS;
        if (slot->inflight)
            continue;
        memset(slot, 0, sizeof *slot);
        memcpy(slot->id, p, len);
        slot->author = author;
        slot->alive = true;
        return;
    }
}

static int act_author[64];

static void act_readable(int i)
{
    act_conn_t *c = &acts[i];
    for (;;) {
        if (c->got >= sizeof c->buf - 1) {
            act_fail(i);
            return;
        }
        ssize_t n = read(c->fd, c->buf + c->got, sizeof c->buf - 1 - c->got);
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0) {
            act_fail(i);
            return;
        }
        c->got += (size_t)n;
        c->buf[c->got] = '\0';
        int status;
        size_t hlen;
        if (bench_http_head(c->buf, &status, &hlen) == 0)
            continue;
        const char *cl = bench_http_header(c->buf, hlen, "Content-Length");
        size_t body_len = cl ? strtoul(cl, NULL, 10) : 0;
        if (c->got < hlen + body_len)
            continue;
        if (!c->busy) { /* an answer nobody asked for */
            act_fail(i);
            return;
        }
        st.requests++;
        if (status == 429) {
            st.status429++;
        } else if (status < 200 || status > 299) {
            st.errors++;
            if (st.bodies_shown++ < BODIES_SHOWN)
                fprintf(stderr, "soak: %s answered %d: %.300s\n", kind_name[c->kind], status,
                        c->buf + hlen);
        } else if (c->kind == A_POST) {
            remember_post(c->buf + hlen, act_author[i]);
            posts_made++;
        }
        if (c->post)
            c->post->inflight--;
        c->busy = false;
        c->post = NULL;
        c->got = 0;
        return; /* one request in flight: nothing more can be in the buffer */
    }
}

/* ---- the actions ------------------------------------------------------------------------- */

static post_t *pick_post(void)
{
    for (int tries = 0; tries < 16; tries++) {
        post_t *p = &recent[rnd(RECENT_POSTS)];
        if (p->alive)
            return p;
    }
    return NULL;
}

static void do_post(int i)
{
    int a = (int)rnd((unsigned)opt.authors);
    char body[256];
    if (bench_post_body(body, sizeof body, "soak post", posts_made + 1) < 0)
        bench_die("post body");
    act_author[i] = a;
    act_start(i, A_POST, NULL, "POST", "/v1/posts", user_token[a], body);
}

static void do_like_or_repost(int i, bool like)
{
    post_t *p = pick_post();
    if (!p) {
        do_post(i);
        return;
    }
    size_t u;
    do
        u = rnd((unsigned)nusers);
    while ((int)u == p->author);
    uint8_t *set = like ? p->liked : p->reposted;
    bool undo = bit(set, u);
    flip(set, u);
    char path[128];
    snprintf(path, sizeof path, "/v1/posts/%s/%s", p->id, like ? "like" : "repost");
    act_start(i, like ? A_LIKE : A_REPOST, p, undo ? "DELETE" : (like ? "PUT" : "POST"), path,
              user_token[u], NULL);
}

/* Half follows, half unfollows of an author, so the graph keeps its density. */
static void do_follow(int i)
{
    bool want_follow = rnd(2);
    for (int tries = 0; tries < 1000; tries++) {
        size_t u = rnd((unsigned)nusers);
        int a = opt.celebs + (int)rnd((unsigned)(opt.authors - opt.celebs));
        if ((int)u == a || following(u, a) == want_follow)
            continue;
        flip_follow(u, a);
        char path[128];
        snprintf(path, sizeof path, "/v1/users/%s/follow", user_id[a]);
        act_start(i, A_FOLLOW, NULL, want_follow ? "PUT" : "DELETE", path, user_token[u], NULL);
        return;
    }
}

static void do_delete(int i)
{
    post_t *p = pick_post();
    if (!p || p->inflight) {
        do_post(i);
        return;
    }
    p->alive = false;
    char path[128];
    snprintf(path, sizeof path, "/v1/posts/%s", p->id);
    act_start(i, A_DELETE, NULL, "DELETE", path, user_token[p->author], NULL);
}

/* The mix, in percent: posts 15, likes 35, reposts 15, follows 25, deletes 10 (of the
 * recent posts; a little under the post rate, so some posts stay). */
static void do_action(int i)
{
    unsigned r = rnd(100);
    if (r < 15)
        do_post(i);
    else if (r < 50)
        do_like_or_repost(i, true);
    else if (r < 65)
        do_like_or_repost(i, false);
    else if (r < 90)
        do_follow(i);
    else
        do_delete(i);
}

/* An idle connection, taken in turn, so that none sits idle long enough for the server's
 * connection timeout (60 s) to close it under a request being sent. */
static int idle_connection(void)
{
    static int next;
    for (int k = 0; k < opt.connections; k++) {
        int i = (next + k) % opt.connections;
        if (!acts[i].busy) {
            next = (i + 1) % opt.connections;
            return i;
        }
    }
    return -1;
}

/* ---- streams ------------------------------------------------------------------------------- */

static void stream_open(int s, uint64_t now)
{
    stream_t *t = &streams[s];
    t->fd = bench_tcp_socket(true);
    if (t->fd < 0 || bench_connect_loopback(t->fd, opt.port) < 0)
        bench_die("connect: %s", strerror(errno));
    char hdr[128] = "";
    if (t->last_id[0])
        snprintf(hdr, sizeof hdr, "Last-Event-ID: %s\r\n", t->last_id);
    int n = bench_http_request(t->req, sizeof t->req, "GET", "/v1/stream", opt.port,
                               user_token[t->user], hdr, NULL);
    if (n < 0)
        bench_die("request too long");
    t->req_len = (size_t)n;
    t->req_sent = 0;
    t->got = 0;
    t->head_done = false;
    t->connected = false;
    double life =
        opt.min_life_s + (opt.max_life_s - opt.min_life_s) * (random() / (double)RAND_MAX);
    t->close_at = now + (uint64_t)(life * NS_PER_S);
    streams_connecting++;
    ep_add(t->fd, EPOLLOUT, (uint64_t)(opt.connections + s));
}

static void stream_close(int s)
{
    stream_t *t = &streams[s];
    if (!t->head_done)
        streams_connecting--;
    else
        st.streams_open--;
    close(t->fd);
    t->fd = -1;
}

/* Ends stream s; it reopens (with its Last-Event-ID) on the next loop turn. */
static void stream_end(int s, bool error)
{
    if (error)
        st.stream_errors++, st.errors++;
    stream_close(s);
    st.reconnects++;
}

static void stream_line(stream_t *t, char *line)
{
    if (strncmp(line, "id:", 3) == 0) {
        const char *v = line + 3 + (line[3] == ' ');
        if (strlen(v) < ID_LEN)
            strcpy(t->last_id, v);
        st.events++;
    } else if (strcmp(line, "event: reset") == 0) {
        st.resets++;
    }
}

static void stream_readable(int s)
{
    stream_t *t = &streams[s];
    for (;;) {
        ssize_t n = read(t->fd, t->buf + t->got, sizeof t->buf - 1 - t->got);
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0) {
            if (t->head_done)
                st.server_closes++;
            stream_end(s, !t->head_done);
            return;
        }
        t->got += (size_t)n;
        t->buf[t->got] = '\0';
        size_t off = 0;
        if (!t->head_done) {
            int status;
            size_t hlen;
            if (bench_http_head(t->buf, &status, &hlen) == 0) {
                if (t->got >= sizeof t->buf - 1) {
                    stream_end(s, true);
                    return;
                }
                continue;
            }
            if (status != 200) {
                if (st.bodies_shown++ < BODIES_SHOWN)
                    fprintf(stderr, "soak: stream answered %d: %.300s\n", status, t->buf + hlen);
                {
                    stream_end(s, true);
                    return;
                }
            }
            t->head_done = true;
            streams_connecting--;
            st.streams_open++;
            off = hlen;
        }
        for (;;) {
            char *nl = memchr(t->buf + off, '\n', t->got - off);
            if (!nl)
                break;
            *nl = '\0';
            if (nl > t->buf + off && nl[-1] == '\r')
                nl[-1] = '\0';
            stream_line(t, t->buf + off);
            off = (size_t)(nl - t->buf) + 1;
        }
        memmove(t->buf, t->buf + off, t->got - off);
        t->got -= off;
        if (t->got >= sizeof t->buf - 1) /* a line longer than the buffer */
        {
            stream_end(s, true);
            return;
        }
    }
}

static void stream_writable(int s)
{
    stream_t *t = &streams[s];
    while (t->req_sent < t->req_len) {
        ssize_t n = write(t->fd, t->req + t->req_sent, t->req_len - t->req_sent);
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0) {
            stream_end(s, true);
            return;
        }
        t->req_sent += (size_t)n;
    }
    ep_mod(t->fd, EPOLLIN, (uint64_t)(opt.connections + s));
}

/* ---- stats ------------------------------------------------------------------------------------ */

static void stats_line(char *buf, size_t cap, double t)
{
    snprintf(buf, cap,
             "t=%.0f requests=%llu errors=%llu status429=%llu conn_errors=%llu events=%llu "
             "resets=%llu reconnects=%llu server_closes=%llu streams_open=%llu "
             "stream_errors=%llu posts=%llu likes=%llu reposts=%llu follows=%llu deletes=%llu "
             "setup_follows=%llu",
             t, st.requests, st.errors, st.status429, st.conn_errors, st.events, st.resets,
             st.reconnects, st.server_closes, st.streams_open, st.stream_errors, st.by_kind[A_POST],
             st.by_kind[A_LIKE], st.by_kind[A_REPOST], st.by_kind[A_FOLLOW], st.by_kind[A_DELETE],
             st.by_kind[A_SETUP]);
}

static void write_stats(double t)
{
    if (!opt.stats_path)
        return;
    char tmp[1024], line[1024];
    snprintf(tmp, sizeof tmp, "%s.tmp", opt.stats_path);
    stats_line(line, sizeof line, t);
    FILE *f = fopen(tmp, "w");
    if (!f)
        bench_die("%s: %s", tmp, strerror(errno));
    fprintf(f, "%s\n", line);
    fclose(f);
    rename(tmp, opt.stats_path);
}

/* ---- the loop --------------------------------------------------------------------------------- */

static void handle(struct epoll_event *ev)
{
    uint64_t tag = ev->data.u64;
    if (tag < (uint64_t)opt.connections) {
        int i = (int)tag;
        act_conn_t *c = &acts[i];
        if (ev->events & (EPOLLERR | EPOLLHUP) && !(ev->events & EPOLLIN)) {
            act_fail(i);
            return;
        }
        if (!c->connected && ev->events & EPOLLOUT) {
            c->connected = true;
            ep_mod(c->fd, EPOLLIN, tag);
            if (c->busy)
                act_send(i);
            return;
        }
        if (ev->events & EPOLLOUT && c->busy)
            act_send(i);
        if (ev->events & EPOLLIN)
            act_readable(i);
        return;
    }
    int s = (int)(tag - (uint64_t)opt.connections);
    stream_t *t = &streams[s];
    if (t->fd < 0)
        return;
    if (ev->events & EPOLLIN)
        return stream_readable(s);
    if (ev->events & (EPOLLERR | EPOLLHUP)) {
        stream_end(s, true);
        return;
    }
    if (ev->events & EPOLLOUT) {
        t->connected = true;
        stream_writable(s);
    }
}

static void poll_once(int timeout_ms)
{
    struct epoll_event evs[256];
    int n = epoll_wait(ep, evs, 256, timeout_ms);
    if (n < 0 && errno != EINTR)
        bench_die("epoll_wait: %s", strerror(errno));
    for (int k = 0; k < n; k++)
        handle(&evs[k]);
}

/* The setup: every follow in the model, closed loop. */
static void setup_graph(void)
{
    size_t u = 0;
    int a = 0;
    uint64_t deadline = bench_mono_ns() + 600 * NS_PER_S;
    for (;;) {
        int i;
        while (u < nusers && (i = idle_connection()) >= 0) {
            if (following(u, a) && (int)u != a) {
                char path[128];
                snprintf(path, sizeof path, "/v1/users/%s/follow", user_id[a]);
                act_start(i, A_SETUP, NULL, "PUT", path, user_token[u], NULL);
            }
            if (++a == opt.authors)
                a = 0, u++;
        }
        if (u == nusers && idle_connection() >= 0) {
            bool any = false;
            for (int k = 0; k < opt.connections; k++)
                any |= acts[k].busy;
            if (!any)
                return;
        }
        if (bench_mono_ns() > deadline)
            bench_die("the setup took more than 600 s");
        poll_once(100);
    }
}

static void usage(void)
{
    fputs("usage: tidings-soak-load --port P --users FILE [options]\n"
          "  --port P                 tidings on 127.0.0.1:P\n"
          "  --users FILE             \"id token\" lines (at most 4096)\n"
          "  --celebs N               users 0..N-1 are followed by everyone (3)\n"
          "  --authors N              users 0..N-1 post and are followed (100)\n"
          "  --follows K              authors each user follows besides the celebs (30)\n"
          "  --connections N          keep-alive connections for the actions (8)\n"
          "  --rate R                 actions a second, open loop (40)\n"
          "  --streams N              event streams (2000)\n"
          "  --connect-concurrency K  streams being opened at once (128)\n"
          "  --min-life S, --max-life S  a stream's life before it reconnects (10, 60)\n"
          "  --duration S             seconds of load after the setup (60)\n"
          "  --stats-file PATH        the counters, replaced every second\n"
          "  --seed N                 random seed (1)\n",
          stdout);
}

int main(int argc, char **argv)
{
    bench_prog = "soak";
    int seed = 1;
    const bench_opt_t opts[] = {
        {"port", BENCH_OPT_INT, &opt.port},
        {"users", BENCH_OPT_STR, &opt.users_path},
        {"celebs", BENCH_OPT_INT, &opt.celebs},
        {"authors", BENCH_OPT_INT, &opt.authors},
        {"follows", BENCH_OPT_INT, &opt.follows},
        {"connections", BENCH_OPT_INT, &opt.connections},
        {"rate", BENCH_OPT_DOUBLE, &opt.rate},
        {"streams", BENCH_OPT_INT, &opt.streams},
        {"connect-concurrency", BENCH_OPT_INT, &opt.connect_concurrency},
        {"min-life", BENCH_OPT_DOUBLE, &opt.min_life_s},
        {"max-life", BENCH_OPT_DOUBLE, &opt.max_life_s},
        {"duration", BENCH_OPT_DOUBLE, &opt.duration_s},
        {"stats-file", BENCH_OPT_STR, &opt.stats_path},
        {"seed", BENCH_OPT_INT, &seed},
        {NULL, 0, NULL},
    };
    int rc = bench_parse_args(argc, argv, opts);
    if (rc == 1) {
        usage();
        return 0;
    }
    if (rc < 0)
        return 2;
    if (!opt.port || !opt.users_path)
        bench_die("--port and --users are required (--help)");
    srandom((unsigned)seed);

    char **lines = bench_read_lines(opt.users_path, &nusers);
    if (nusers > MAX_USERS)
        bench_die("more than %d users", MAX_USERS);
    if (opt.authors > (int)nusers || opt.celebs > opt.authors || opt.follows > opt.authors ||
        opt.connections < 1 || opt.connections > 64 || opt.streams < 0 || opt.rate <= 0 ||
        opt.min_life_s <= 0 || opt.max_life_s < opt.min_life_s)
        bench_die("inconsistent options (--help)");
    user_id = calloc(nusers, sizeof *user_id);
    user_token = calloc(nusers, sizeof *user_token);
    follows = calloc(nusers * (size_t)opt.authors / 8 + 1, 1);
    recent = calloc(RECENT_POSTS, sizeof *recent);
    acts = calloc((size_t)opt.connections, sizeof *acts);
    streams = calloc((size_t)opt.streams + 1, sizeof *streams);
    if (!user_id || !user_token || !follows || !recent || !acts || !streams)
        bench_die("out of memory");
    for (size_t u = 0; u < nusers; u++) {
        char *sp = strchr(lines[u], ' ');
        if (!sp)
            bench_die("%s: want \"id token\" lines", opt.users_path);
        *sp = '\0';
        user_id[u] = lines[u];
        user_token[u] = sp + 1;
        for (int a = 0; a < opt.celebs; a++)
            if ((int)u != a)
                flip_follow(u, a);
        for (int k = 0; k < opt.follows; k++) {
            int a = opt.celebs + (int)rnd((unsigned)(opt.authors - opt.celebs));
            if ((int)u != a && !following(u, a))
                flip_follow(u, a);
        }
    }

    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        bench_die("epoll_create1: %s", strerror(errno));
    for (int i = 0; i < opt.connections; i++)
        act_open(i);

    uint64_t t_setup = bench_mono_ns();
    setup_graph();
    st.follows_setup = st.by_kind[A_SETUP];
    fprintf(stderr, "soak: setup: %llu follows in %.1f s, %llu errors\n", st.follows_setup,
            (double)(bench_mono_ns() - t_setup) / NS_PER_S, st.errors);
    if (st.errors)
        bench_die("the setup failed");
    st.requests = 0;

    struct rusage ru0;
    getrusage(RUSAGE_SELF, &ru0);
    uint64_t t0 = bench_mono_ns();
    uint64_t end = t0 + (uint64_t)(opt.duration_s * NS_PER_S);
    uint64_t next_stats = t0;
    unsigned long long due_done = 0;
    for (int s = 0; s < opt.streams; s++) {
        streams[s].fd = -1;
        streams[s].user = (size_t)s % nusers;
    }
    for (;;) {
        uint64_t now = bench_mono_ns();
        if (now >= end)
            break;
        /* actions due by now (at most one connection's worth late: the open loop drops
         * rather than queues what the connections cannot take) */
        unsigned long long due = (unsigned long long)((double)(now - t0) / NS_PER_S * opt.rate);
        int i;
        while (due_done < due && (i = idle_connection()) >= 0) {
            do_action(i);
            due_done++;
        }
        if (due_done + (unsigned long long)opt.connections < due)
            due_done = due - (unsigned long long)opt.connections;
        /* streams: close those whose life is over, open the closed ones (paced) */
        for (int s = 0; s < opt.streams; s++) {
            stream_t *t = &streams[s];
            if (t->fd >= 0 && t->head_done && now >= t->close_at) {
                stream_close(s);
                st.reconnects++;
            }
            if (t->fd < 0 && streams_connecting < opt.connect_concurrency)
                stream_open(s, now);
        }
        if (now >= next_stats) {
            write_stats((double)(now - t0) / NS_PER_S);
            next_stats += NS_PER_S;
        }
        poll_once(5);
    }
    double elapsed = (double)(bench_mono_ns() - t0) / NS_PER_S;
    for (int s = 0; s < opt.streams; s++)
        if (streams[s].fd >= 0)
            stream_close(s);
    write_stats(elapsed);
    char line[1024];
    stats_line(line, sizeof line, elapsed);
    printf("RESULT %s cpu_s=%.1f\n", line, bench_cpu_since(&ru0));

    for (int i = 0; i < opt.connections; i++)
        close(acts[i].fd);
    close(ep);
    free(streams);
    free(acts);
    free(recent);
    free(follows);
    free(user_id);
    free(user_token);
    bench_free_lines(lines, nusers);
    return 0;
}
