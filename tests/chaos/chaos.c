/* tests/chaos/chaos.c -- the world a chaos test runs in: the Redis, the two processes, the
 * users, the load threads and the streams (chaos.h). The checks are in chaos_verify.c.
 *
 * The helper threads never assert (Criterion's assertions belong to the test's thread): they
 * record what they saw under w->lock, and the test's thread judges it. The test's thread reads
 * all 500 streams with one poll(); whatever keeps it from reading (a reconnect waiting for a
 * response head, a Redis restart) is counted as blind time and not held against a stream.
 */
#include "tests/chaos/chaos.h"

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PASS_WAIT_MS 50
#define BLIND_MS 250 /* a pass this late means the test's thread was busy elsewhere */
#define REOPENS_PER_PASS 25
#define REOPEN_BACKOFF_MS 300
#define REOPEN_HEAD_MS 5000 /* the head comes at once, or after the server's 2 s Redis timeout */
#define SAMPLE_EVERY_MS 200
#define READYZ_TIMEOUT_MS 1000 /* a probe's usual timeout: no answer by then is no answer */
#define SOCIAL_EVERY_MS 60
#define SETUP_THREADS 4

/* The first BAD_KEPT broken rules are kept, and the last BAD_KEPT in a ring: a flood of one
 * kind early on (stalls during the fault) must not hide what ch_verify finds at the end. */
#define BAD_KEPT 100

void ch_bad(ch_world_t *w, const char *fmt, ...)
{
    size_t k = w->n_bad_total++;
    if (!w->bad) {
        w->bad = calloc(2 * BAD_KEPT, sizeof(*w->bad));
        cr_assert(w->bad);
    }
    size_t slot = k < 2 * BAD_KEPT ? k : BAD_KEPT + (k - 2 * BAD_KEPT) % BAD_KEPT;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->bad[slot], sizeof(w->bad[0]), fmt, ap);
    va_end(ap);
    w->n_bad = w->n_bad_total < 2 * BAD_KEPT ? w->n_bad_total : 2 * BAD_KEPT;
}

void ch_print_bad(const ch_world_t *w, const char *name)
{
    size_t total = w->n_bad_total;
    for (size_t i = 0; i < total && i < (total <= 2 * BAD_KEPT ? total : BAD_KEPT); i++)
        fprintf(stderr, "chaos %s: BROKEN: %s\n", name, w->bad[i]);
    if (total <= 2 * BAD_KEPT)
        return;
    fprintf(stderr, "chaos %s: BROKEN: … %zu more left out; the last %d:\n", name,
            total - 2 * BAD_KEPT, BAD_KEPT);
    for (size_t j = 0; j < BAD_KEPT; j++)
        fprintf(stderr, "chaos %s: BROKEN: %s\n", name,
                w->bad[BAD_KEPT + (total - 2 * BAD_KEPT + j) % BAD_KEPT]);
}

/* ---- the load (helper threads) ---------------------------------------------------------------- */

static void sleep_until(uint64_t t)
{
    uint64_t now = ts_now_ms();
    if (t > now)
        ts_sleep_ms((int)(t - now));
}

/* The process a request goes to: i's if it is up, else the other; -1 when none is. */
static int pick_port(ch_world_t *w, int i)
{
    for (int k = 0; k < CH_SERVERS; k++) {
        int s = (i + k) % CH_SERVERS;
        if (atomic_load(&w->up[s]))
            return atomic_load(&w->port[s]);
    }
    return -1;
}

static void *poster_main(void *arg)
{
    ch_world_t *w = arg;
    uint64_t next = ts_now_ms();
    for (int i = 0; !atomic_load(&w->stop); i++) {
        sleep_until(next);
        next += CH_POST_EVERY_MS;
        int server = i % CH_SERVERS, port = pick_port(w, server);
        if (port < 0)
            continue;
        ch_post_t p;
        memset(&p, 0, sizeof(p));
        p.author = i % CH_AUTHORS;
        p.server = port == atomic_load(&w->port[server]) ? server : 1 - server;
        snprintf(p.text, sizeof(p.text), "chaos %s %d", w->tag, i);
        p.start = ts_now_ms();
        ts_resp_t r;
        if (ts_post_raw(port, w->authors[p.author].token, p.text, 15000, &r) == 0) {
            p.status = r.status;
            char ct[96];
            p.problem = ts_resp_header(&r, "Content-Type", ct, sizeof(ct)) &&
                        strncasecmp(ct, "application/problem+json", 24) == 0;
            json_t *j = r.status == 202 ? ts_resp_json(&r) : NULL;
            snprintf(p.id, sizeof(p.id), "%s", j ? ts_str(j, "id") : "");
            p.num = ts_id(p.id);
            json_decref(j);
        }
        ts_resp_free(&r);
        p.end = ts_now_ms();
        pthread_mutex_lock(&w->lock);
        if (w->n_posts < CH_MAX_POSTS)
            w->posts[w->n_posts++] = p;
        pthread_mutex_unlock(&w->lock);
    }
    return NULL;
}

/* PUT path as u: a like or a follow, judged 204, 503 (a fault may refuse it) or other. */
static void social_put(ch_world_t *w, int port, const ts_user_t *u, const char *path)
{
    char req[512];
    int n = snprintf(req, sizeof(req),
                     "PUT %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
                     "Content-Length: 0\r\nConnection: close\r\n\r\n",
                     path, u->token);
    ts_resp_t r;
    int rc = ts_http_raw(port, req, (size_t)n, 15000, &r);
    pthread_mutex_lock(&w->lock);
    if (rc != 0)
        w->social_unanswered++;
    else if (r.status == 204)
        w->social_ok++;
    else if (r.status == 503)
        w->social_503++;
    else if (w->social_other++ == 0)
        snprintf(w->social_other_what, sizeof(w->social_other_what), "PUT %s answered %d: %.60s",
                 path, r.status, r.body ? r.body : "");
    pthread_mutex_unlock(&w->lock);
    ts_resp_free(&r);
}

static void *social_main(void *arg)
{
    ch_world_t *w = arg;
    unsigned seed = 16;
    uint64_t next = ts_now_ms();
    for (int i = 0; !atomic_load(&w->stop); i++) {
        sleep_until(next);
        next += SOCIAL_EVERY_MS;
        int port = pick_port(w, i % CH_SERVERS);
        if (port < 0)
            continue;
        const ch_reader_t *r = &w->readers[rand_r(&seed) % CH_READERS];
        char path[96] = "";
        if (i % 2) { /* a reader likes a post some time answered 202 */
            pthread_mutex_lock(&w->lock);
            for (int tries = 0; tries < 8 && w->n_posts && !path[0]; tries++) {
                const ch_post_t *p = &w->posts[rand_r(&seed) % w->n_posts];
                if (p->status == 202)
                    snprintf(path, sizeof(path), "/v1/posts/%s/like", p->id);
            }
            pthread_mutex_unlock(&w->lock);
        } else { /* a reader follows another reader: a notification on that one's stream */
            const ch_reader_t *other = &w->readers[rand_r(&seed) % CH_READERS];
            if (other != r)
                snprintf(path, sizeof(path), "/v1/users/%s/follow", other->u.id);
        }
        if (path[0])
            social_put(w, port, &r->u, path);
    }
    return NULL;
}

static int readyz(int port)
{
    static const char req[] =
        "GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    ts_resp_t r;
    int status = ts_http_raw(port, req, sizeof(req) - 1, READYZ_TIMEOUT_MS, &r) == 0 ? r.status : 0;
    ts_resp_free(&r);
    return status;
}

/* One thread per process, so a process that does not answer delays no sample of the other. */
static void sample(ch_world_t *w, int s)
{
    uint64_t next = ts_now_ms();
    while (!atomic_load(&w->stop)) {
        sleep_until(next);
        next = ts_now_ms() + SAMPLE_EVERY_MS;
        if (!atomic_load(&w->up[s]))
            continue;
        ch_sample_t x = {.server = s};
        x.status = readyz(atomic_load(&w->port[s]));
        x.t = ts_now_ms();
        if (!atomic_load(&w->up[s]))
            continue; /* killed meanwhile: not an answer about readiness */
        pthread_mutex_lock(&w->lock);
        if (w->n_samples < CH_MAX_SAMPLES)
            w->samples[w->n_samples++] = x;
        pthread_mutex_unlock(&w->lock);
    }
}

static void *sampler0_main(void *arg)
{
    sample(arg, 0);
    return NULL;
}

static void *sampler1_main(void *arg)
{
    sample(arg, 1);
    return NULL;
}

/* ---- streams (the test's thread) -------------------------------------------------------------- */

static void reader_got(ch_reader_t *r, uint64_t post)
{
    if (r->n_got == r->cap_got) {
        r->cap_got = r->cap_got ? r->cap_got * 2 : 64;
        r->got = realloc(r->got, r->cap_got * sizeof(*r->got));
        cr_assert(r->got);
    }
    r->got[r->n_got++] = post;
}

static void reader_close(ch_reader_t *r, uint64_t now)
{
    ts_sse_close(r->c);
    r->c = NULL;
    r->next_retry = now + REOPEN_BACKOFF_MS;
}

/* The events about the reader's notifications and read state, which the load causes too
 * (likes and follows); the rules below are about posts, so these only have to be in order. */
static bool is_live_state_event(const char *type)
{
    static const char *const names[] = {"notification", "notification_removed", "counts", "marker"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(type, names[i]) == 0)
            return true;
    return false;
}

/* How long r's stream has been silent at now, less the time this thread could not read. */
static uint64_t silence(const ch_world_t *w, const ch_reader_t *r, uint64_t now)
{
    int64_t ms =
        (int64_t)now - (int64_t)r->last_seen - (int64_t)(w->blind_total - r->blind_at_seen);
    return ms > 0 ? (uint64_t)ms : 0;
}

/* One item read at now. */
static void take(ch_world_t *w, ch_reader_t *r, int idx, const ts_sse_item_t *it, uint64_t now)
{
    uint64_t gap = silence(w, r, now);
    if (gap > r->worst_gap_ms)
        r->worst_gap_ms = gap;
    r->last_seen = now;
    r->blind_at_seen = w->blind_total;
    if (it->kind != TS_SSE_EVENT)
        return; /* heartbeat comments and retry keep the stream alive */
    if (it->has_id && it->id[0]) {
        if (r->last_id[0] && ts_sse_id_cmp(it->id, r->last_id) <= 0)
            ch_bad(w, "reader %d: event %s (type '%s') came after %s: duplicate or out of order",
                   idx, it->id, it->type, r->last_id);
        snprintf(r->last_id, sizeof(r->last_id), "%s", it->id);
    } else {
        ch_bad(w, "reader %d: an event without id (type '%s')", idx, it->type);
    }
    if (strcmp(it->type, "feed") == 0 && it->has_data) {
        json_t *j = json_loadb(it->data, it->data_len, 0, NULL);
        uint64_t post = ts_id(ts_str(j, "id"));
        json_decref(j);
        if (post)
            reader_got(r, post);
        else
            ch_bad(w, "reader %d: feed event %s without a post id", idx, it->id);
    } else if (strcmp(it->type, "reset") == 0) {
        r->reset = true;
    } else if (!is_live_state_event(it->type) && it->has_data) {
        ch_bad(w, "reader %d: unexpected '%s' event %s: %.80s", idx, it->type, it->id,
               it->data ? it->data : "");
    }
}

/* Everything that has arrived on r's stream. */
static void drain(ch_world_t *w, ch_reader_t *r, int idx, uint64_t now)
{
    for (int i = 0; i < 100000 && r->c; i++) {
        ts_sse_item_t it;
        ts_sse_kind_t k = ts_sse_next(r->c, &it, 0);
        if (k == TS_SSE_TIMEOUT)
            return;
        if (k == TS_SSE_END) {
            r->ends++;
            reader_close(r, now);
            r->next_retry = now; /* an ended stream is reopened at once */
            return;
        }
        take(w, r, idx, &it, now);
        ts_sse_item_clear(&it);
    }
}

/* Opens r's stream again after its last id, as EventSource does; false when refused or
 * when no head came (by deadline at the latest). */
static bool reopen(ch_world_t *w, ch_reader_t *r, int idx, uint64_t deadline)
{
    int port = pick_port(w, r->home);
    if (port < 0)
        return false;
    ts_sse_opts_t o = {.token = r->u.token, .last_event_id = r->last_id[0] ? r->last_id : NULL};
    uint64_t t0 = ts_now_ms();
    /* Never past the end of ch_run, so a fault lasts what the test says: a wait cut short
     * that way is no finding, only a retry. */
    int64_t left = (int64_t)deadline - (int64_t)t0;
    int wait = left < REOPEN_HEAD_MS ? (int)(left > 100 ? left : 100) : REOPEN_HEAD_MS;
    ts_sse_t *c = ts_sse_try_open(port, &o, wait);
    r->connections++;
    if (!c) {
        w->hung_reopen = true; /* no more reopens this pass */
        if (wait < REOPEN_HEAD_MS)
            return false;
        ch_bad(w,
               "reader %d: a reconnect (Last-Event-ID %s) got no response head within %d ms "
               "(%llu ms into the load)",
               idx, r->last_id[0] ? r->last_id : "none", REOPEN_HEAD_MS,
               (unsigned long long)(t0 - w->load_start));
        return false;
    }
    if (c->status != 200) {
        if (c->status != 503)
            ch_bad(w, "reader %d: a reconnect answered %d: %.100s", idx, c->status,
                   c->body ? c->body : "");
        r->refused++;
        ts_sse_close(c);
        return false;
    }
    ts_sse_item_t it;
    ts_sse_kind_t k = ts_sse_next(c, &it, 5000);
    if (k != TS_SSE_RETRY)
        ch_bad(w, "reader %d: a reopened stream did not start with retry (item kind %d)", idx, k);
    ts_sse_item_clear(&it);
    r->c = c;
    return true;
}

void ch_run(ch_world_t *w, int ms)
{
    static struct pollfd pfd[CH_READERS];
    static int who[CH_READERS];
    uint64_t deadline = ts_now_ms() + (uint64_t)ms;
    do {
        uint64_t now = ts_now_ms();
        if (w->last_pass && now - w->last_pass > BLIND_MS)
            w->blind_total += now - w->last_pass;
        w->last_pass = now;
        int n = 0;
        for (int i = 0; i < CH_READERS; i++) {
            if (!w->readers[i].c)
                continue;
            pfd[n] = (struct pollfd){.fd = w->readers[i].c->fd, .events = POLLIN};
            who[n++] = i;
        }
        poll(pfd, (nfds_t)n, PASS_WAIT_MS);
        now = ts_now_ms();
        for (int k = 0; k < n; k++)
            if (pfd[k].revents)
                drain(w, &w->readers[who[k]], who[k], now);
        int reopens = 0;
        w->hung_reopen = false;
        for (int i = 0; i < CH_READERS; i++) {
            ch_reader_t *r = &w->readers[i];
            if (r->c) {
                uint64_t silent = silence(w, r, now);
                if (silent > CH_STALL_MS) {
                    /* A client would give up on it and reconnect; so does this one. */
                    r->stalls++;
                    ch_bad(w,
                           "reader %d: its open stream was silent for %llu ms (no event, no "
                           "heartbeat)",
                           i, (unsigned long long)silent);
                    reader_close(r, now);
                }
            } else if (now >= r->next_retry && reopens < REOPENS_PER_PASS && !w->hung_reopen) {
                reopens++;
                if (reopen(w, r, i, deadline)) {
                    r->last_seen = now;
                    r->blind_at_seen = w->blind_total;
                } else {
                    r->next_retry = ts_now_ms() + REOPEN_BACKOFF_MS;
                }
            }
        }
    } while (ts_now_ms() < deadline);
}

/* ---- the world -------------------------------------------------------------------------------- */

#define SERVER_ARGS                                                                                \
    "--heartbeat", "1", "--celebrity-threshold", "1000000", "--claim-idle-ms", "2000",             \
        "--max-streams-per-address", "0", "--max-connections-per-address", "0",                    \
        "--shutdown-grace", "2000", NULL

static void server_start(ch_world_t *w, int i)
{
    static const char *const extra[] = {SERVER_ARGS};
    ts_server_start(&w->srv[i], w->redis.url, extra, true);
    atomic_store(&w->port[i], w->srv[i].port);
    atomic_store(&w->up[i], true);
}

void ch_server_kill(ch_world_t *w, int i)
{
    atomic_store(&w->up[i], false);
    ts_server_kill(&w->srv[i]);
}

void ch_server_restart(ch_world_t *w, int i)
{
    server_start(w, i);
}

struct redisContext *ch_redis(ch_world_t *w)
{
    if (!w->redis.cluster)
        return ts_redis_connect(w->redis.port);
    for (int i = 0; i < w->redis.nodes; i++)
        if (ts_redis_pings(w->redis.ports[i]))
            return ts_redis_connect(w->redis.ports[i]);
    cr_assert_fail("no node of the cluster answers");
    return NULL;
}

bool ch_first_refused_post(ch_world_t *w, uint64_t since, ch_post_t *out)
{
    bool found = false;
    pthread_mutex_lock(&w->lock);
    for (size_t i = 0; i < w->n_posts && !found; i++) {
        if (w->posts[i].start >= since && w->posts[i].status && w->posts[i].status != 202) {
            *out = w->posts[i];
            found = true;
        }
    }
    pthread_mutex_unlock(&w->lock);
    return found;
}

/* Registers readers first … end-1 and makes each follow its authors (a helper thread: it
 * notes the first failure instead of asserting). */
typedef struct setup_s {
    ch_world_t *w;
    int first, end;
    char failed[160];
} setup_t;

static bool setup_call(setup_t *st, int port, const char *method, const char *path,
                       const char *token, const char *body, int expect, json_t **out)
{
    char req[1024];
    int n = snprintf(req, sizeof(req),
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s%s%s"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                     method, path, token ? "Authorization: Bearer " : "", token ? token : "",
                     token ? "\r\n" : "", strlen(body), body);
    ts_resp_t r;
    bool ok = ts_http_raw(port, req, (size_t)n, 15000, &r) == 0 && r.status == expect;
    if (!ok && !st->failed[0])
        snprintf(st->failed, sizeof(st->failed), "%s %s answered %d: %.80s", method, path, r.status,
                 r.body ? r.body : "");
    if (ok && out)
        *out = ts_resp_json(&r);
    ts_resp_free(&r);
    return ok;
}

static void *setup_main(void *arg)
{
    setup_t *st = arg;
    ch_world_t *w = st->w;
    for (int i = st->first; i < st->end && !st->failed[0]; i++) {
        ch_reader_t *r = &w->readers[i];
        r->home = i % CH_SERVERS;
        int port = w->srv[r->home].port;
        char body[128], path[96];
        ts_unique(r->u.handle, sizeof(r->u.handle), "chread");
        snprintf(body, sizeof(body), "{\"handle\":\"%s\"}", r->u.handle);
        json_t *j = NULL;
        if (!setup_call(st, port, "POST", "/v1/users", NULL, body, 201, &j))
            break;
        snprintf(r->u.id, sizeof(r->u.id), "%s", ts_str(json_object_get(j, "user"), "id"));
        snprintf(r->u.token, sizeof(r->u.token), "%s", ts_str(j, "token"));
        r->u.num = ts_id(r->u.id);
        json_decref(j);
        for (int k = 0; k < CH_FOLLOWS_PER_READER; k++) {
            const ts_user_t *a =
                &w->authors[(i + k * CH_AUTHORS / CH_FOLLOWS_PER_READER) % CH_AUTHORS];
            snprintf(path, sizeof(path), "/v1/users/%s/follow", a->id);
            setup_call(st, w->srv[(i + k) % CH_SERVERS].port, "PUT", path, r->u.token, "", 204,
                       NULL);
        }
    }
    return NULL;
}

/* cluster_aof: every node of the cluster writes its AOF, fsynced always (see the other
 * case below), before any user exists. */
static void start(ch_world_t *w, const char *tag, bool cluster, bool cluster_aof)
{
    memset(w, 0, sizeof(*w));
    w->tag = tag;
    pthread_mutex_init(&w->lock, NULL);
    uint64_t t0 = ts_now_ms();
    if (cluster) {
        ts_redis_start_cluster(&w->redis, 3, 1);
        if (cluster_aof)
            ts_redis_cluster_aof(&w->redis);
    } else {
        /* appendfsync always: a write Redis acknowledged survives a crash, so a post answered
         * 202 cannot vanish with a restart (everysec may lose the last second of them, which
         * would fail the checks for a reason of configuration, not of the server). */
        w->redis.aof = true;
        ts_redis_start(&w->redis, 0);
    }
    for (int i = 0; i < CH_SERVERS; i++)
        server_start(w, i);
    int port = w->srv[0].port;
    for (int a = 0; a < CH_AUTHORS; a++)
        ts_register(port, "chauth", &w->authors[a]);
    pthread_t setup[SETUP_THREADS];
    setup_t part[SETUP_THREADS];
    for (int t = 0; t < SETUP_THREADS; t++) {
        part[t] = (setup_t){.w = w,
                            .first = t * CH_READERS / SETUP_THREADS,
                            .end = (t + 1) * CH_READERS / SETUP_THREADS};
        cr_assert_eq(pthread_create(&setup[t], NULL, setup_main, &part[t]), 0);
    }
    for (int t = 0; t < SETUP_THREADS; t++)
        pthread_join(setup[t], NULL);
    for (int t = 0; t < SETUP_THREADS; t++)
        cr_assert(!part[t].failed[0], "setting up the readers: %s", part[t].failed);
    struct redisContext *c = ch_redis(w);
    for (int a = 0; a < CH_AUTHORS; a++)
        ts_add_followers(c, w->authors[a].num, CH_MADE_UP_BASE, CH_MADE_UP, 1);
    ts_redis_close(c);
    uint64_t t1 = ts_now_ms();
    for (int i = 0; i < CH_READERS; i++) {
        ch_reader_t *r = &w->readers[i];
        r->c = ts_stream(w->srv[r->home].port, &r->u, NULL);
        r->connections = 1;
        r->last_seen = ts_now_ms();
    }
    fprintf(stderr, "chaos %s: world ready in %llu ms (streams %llu ms)\n", tag,
            (unsigned long long)(ts_now_ms() - t0), (unsigned long long)(ts_now_ms() - t1));
    w->load_start = ts_now_ms();
    cr_assert_eq(pthread_create(&w->poster, NULL, poster_main, w), 0);
    cr_assert_eq(pthread_create(&w->social, NULL, social_main, w), 0);
    cr_assert_eq(pthread_create(&w->sampler[0], NULL, sampler0_main, w), 0);
    cr_assert_eq(pthread_create(&w->sampler[1], NULL, sampler1_main, w), 0);
    w->threads_running = true;
}

void ch_start(ch_world_t *w, const char *tag, bool cluster)
{
    start(w, tag, cluster, false);
}

void ch_start_cluster_aof(ch_world_t *w, const char *tag)
{
    start(w, tag, true, true);
}

void ch_stop_load(ch_world_t *w)
{
    if (!w->threads_running)
        return;
    atomic_store(&w->stop, true);
    pthread_join(w->poster, NULL);
    pthread_join(w->social, NULL);
    pthread_join(w->sampler[0], NULL);
    pthread_join(w->sampler[1], NULL);
    w->threads_running = false;
}

void ch_finish(ch_world_t *w)
{
    ch_stop_load(w);
    for (int i = 0; i < CH_READERS; i++) {
        ts_sse_close(w->readers[i].c);
        free(w->readers[i].got);
    }
    for (int i = 0; i < CH_SERVERS; i++)
        ts_server_stop(&w->srv[i], 10000);
    ts_redis_cleanup(&w->redis);
    free(w->bad);
    pthread_mutex_destroy(&w->lock);
}
