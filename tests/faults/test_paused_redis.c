/* tests/faults/test_paused_redis.c -- a Redis that stops answering (SIGSTOP: its sockets stay
 * open, the kernel still completes connects, nothing replies) must not freeze the server.
 *
 * Each test runs a redis-server of its own and stops it for PAUSE_MS; the fini always resumes
 * it. Before issue 16 every request waited out the 2 s command timeout (4 s with the replay
 * on a fresh connection) on one of the four HTTP threads, so requests queued for many
 * seconds, /readyz gave no answer, and the live loop's synchronous online refresh held up
 * every heartbeat. Now the node's breaker fails requests at once (503 with Retry-After),
 * /readyz answers from a background probe's state, and the live loop never waits on Redis.
 * What the read cache holds (a post, a timeline's first page) is served without Redis, but
 * not once Redis has been silent for a second: past that it could be stale (a Redis cut off
 * from this host while others still write to it looks the same). */
#include "tests/support/sse.h"
#include "tests/support/support.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>

#define PAUSE_MS 4000
#define READYZ_TIMEOUT_MS 1000 /* a load balancer's usual probe timeout */
#define CONCURRENT 20
#define ANSWER_WITHIN_MS 2500 /* one command timeout (2 s) and a margin */
#define RECOVER_WITHIN_MS 2000

static ts_redis_t redis;

static void resume_redis(void)
{
    if (redis.pid > 0)
        kill(redis.pid, SIGCONT);
    ts_redis_cleanup(&redis);
}

TestSuite(paused_redis, .timeout = 120, .fini = resume_redis);

static void start(ts_server_t *s, const char *const *extra)
{
    memset(&redis, 0, sizeof(redis));
    ts_redis_start(&redis, 0); /* SIGSTOP needs one redis-server of our own */
    ts_server_start(s, redis.url, extra, true);
}

static void pause_redis(void)
{
    cr_assert_eq(kill(redis.pid, SIGSTOP), 0);
}

static void continue_redis(void)
{
    cr_assert_eq(kill(redis.pid, SIGCONT), 0);
}

/* GET /readyz: its status (0: no answer within READYZ_TIMEOUT_MS), and how long it took. */
static int readyz(int port, uint64_t *took_ms)
{
    static const char req[] =
        "GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    uint64_t t0 = ts_now_ms();
    ts_resp_t r;
    int status = ts_http_raw(port, req, sizeof(req) - 1, READYZ_TIMEOUT_MS, &r) == 0 ? r.status : 0;
    ts_resp_free(&r);
    if (took_ms)
        *took_ms = ts_now_ms() - t0;
    return status;
}

/* After SIGCONT: /readyz says 200 within RECOVER_WITHIN_MS, and a post is accepted. */
static void expect_recovery(const ts_server_t *s, const ts_user_t *u)
{
    continue_redis();
    uint64_t t0 = ts_now_ms(), back = 0;
    while (!back && ts_now_ms() - t0 < RECOVER_WITHIN_MS + 3000) {
        if (readyz(s->port, NULL) == 200)
            back = ts_now_ms();
        else
            ts_sleep_ms(50);
    }
    cr_assert(back, "/readyz never said 200 again after Redis resumed");
    cr_expect_leq(back - t0, RECOVER_WITHIN_MS, "/readyz said 200 again %llu ms after SIGCONT",
                  (unsigned long long)(back - t0));
    ts_resp_t r;
    cr_assert_eq(ts_post_raw(s->port, u->token, "after the pause", 5000, &r), 0);
    cr_expect_eq(r.status, 202, "a post right after recovery: %d %s", r.status, r.body);
    ts_resp_free(&r);
}

Test(paused_redis, readyz_answers_503_at_once_while_redis_is_paused_and_200_after)
{
    ts_server_t s;
    start(&s, NULL);
    ts_user_t ana;
    ts_register(s.port, "rdy", &ana);
    cr_assert_eq(readyz(s.port, NULL), 200);

    pause_redis();
    uint64_t paused = ts_now_ms();
    ts_sleep_ms(300); /* a probe answered just before the pause may still count */
    int samples = 0;
    while (ts_now_ms() - paused < PAUSE_MS) {
        uint64_t took = 0;
        int status = readyz(s.port, &took);
        cr_assert_neq(status, 0, "/readyz gave no answer within %d ms at +%llu ms of the pause",
                      READYZ_TIMEOUT_MS, (unsigned long long)(ts_now_ms() - paused));
        cr_expect_eq(status, 503, "/readyz answered %d at +%llu ms of the pause", status,
                     (unsigned long long)(ts_now_ms() - paused));
        cr_expect_leq(took, 100, "/readyz took %llu ms", (unsigned long long)took);
        samples++;
        ts_sleep_ms(200);
    }
    cr_expect_geq(samples, 10, "only %d samples in the pause", samples);
    expect_recovery(&s, &ana);
    ts_server_stop(&s, 10000);
}

/* ---- 20 requests at once ------------------------------------------------------------------- */

typedef struct request_s {
    int port;
    const ts_user_t *as;
    int status;
    char content_type[64], retry_after[16];
    uint64_t took_ms;
} request_t;

/* A read that always goes to Redis: the notifications' groups are not kept in the cache. */
#define UNCACHED_READ "/v1/notifications"

/* GET path as q->as, answer and time into q. */
static void get_path(request_t *q, const char *path)
{
    char req[512];
    int len = snprintf(req, sizeof(req),
                       "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                       "Authorization: Bearer %s\r\n\r\n",
                       path, q->as->token);
    uint64_t t0 = ts_now_ms();
    ts_resp_t r;
    if (ts_http_raw(q->port, req, (size_t)len, 10000, &r) == 0) {
        q->status = r.status;
        ts_resp_header(&r, "Content-Type", q->content_type, sizeof(q->content_type));
        ts_resp_header(&r, "Retry-After", q->retry_after, sizeof(q->retry_after));
    }
    q->took_ms = ts_now_ms() - t0;
    ts_resp_free(&r);
}

/* A thread's body: get_path of UNCACHED_READ. */
static void *get_uncached(void *arg)
{
    get_path(arg, UNCACHED_READ);
    return NULL;
}

Test(paused_redis, concurrent_requests_are_answered_503_within_a_timeout_while_redis_is_paused)
{
    ts_server_t s;
    start(&s, NULL);
    ts_user_t ana;
    ts_register(s.port, "many", &ana);
    json_decref(ts_callf(s.port, "GET", &ana, NULL, 200, UNCACHED_READ)); /* token cached */

    pause_redis();
    request_t q[CONCURRENT];
    pthread_t th[CONCURRENT];
    for (int i = 0; i < CONCURRENT; i++) {
        q[i] = (request_t){.port = s.port, .as = &ana};
        cr_assert_eq(pthread_create(&th[i], NULL, get_uncached, &q[i]), 0);
    }
    for (int i = 0; i < CONCURRENT; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < CONCURRENT; i++) {
        cr_expect_eq(q[i].status, 503, "request %d: %d after %llu ms", i, q[i].status,
                     (unsigned long long)q[i].took_ms);
        cr_expect_leq(q[i].took_ms, ANSWER_WITHIN_MS, "request %d answered after %llu ms", i,
                      (unsigned long long)q[i].took_ms);
        cr_expect_str_eq(q[i].content_type, "application/problem+json", "request %d", i);
        cr_expect_str_eq(q[i].retry_after, "1", "request %d: Retry-After", i);
    }
    /* Later requests during the pause find the breaker open and fail at once. */
    ts_sleep_ms(300);
    request_t later = {.port = s.port, .as = &ana};
    get_uncached(&later);
    cr_expect_eq(later.status, 503);
    cr_expect_leq(later.took_ms, ANSWER_WITHIN_MS, "a later request took %llu ms",
                  (unsigned long long)later.took_ms);
    expect_recovery(&s, &ana);
    ts_server_stop(&s, 10000);
}

/* A timeline's first page read twice is served from the cache (no Redis); once Redis has been
 * silent for a second, the same read is a 503 like any other, and 200 again after it is back. */
Test(paused_redis, the_cache_serves_nothing_once_redis_has_been_silent_for_a_second)
{
    ts_server_t s;
    start(&s, NULL);
    ts_user_t ana;
    ts_register(s.port, "silent", &ana);
    for (int i = 0; i < 3; i++) /* the page is kept, and served from the cache */
        json_decref(ts_callf(s.port, "GET", &ana, NULL, 200, "/v1/timeline"));
    cr_assert_gt(ts_metric(s.port, "tidings_read_cache_timeline_hits_total"), 0,
                 "the page was never served from the cache");
    pause_redis();
    ts_sleep_ms(1500);
    request_t q = {.port = s.port, .as = &ana};
    get_path(&q, "/v1/timeline");
    cr_expect_eq(q.status, 503, "a kept page 1.5 s into Redis' silence: %d after %llu ms", q.status,
                 (unsigned long long)q.took_ms);
    cr_expect_leq(q.took_ms, ANSWER_WITHIN_MS, "answered after %llu ms",
                  (unsigned long long)q.took_ms);
    expect_recovery(&s, &ana);
    json_decref(ts_callf(s.port, "GET", &ana, NULL, 200, "/v1/timeline"));
    ts_server_stop(&s, 10000);
}

/* ---- streams ------------------------------------------------------------------------------ */

Test(paused_redis, an_open_stream_keeps_its_heartbeats_while_redis_is_paused)
{
    ts_server_t s;
    /* A short grace makes the live loop refresh this user's online mark every second. */
    const char *extra[] = {"--heartbeat", "1", "--stream-grace-ms", "3000", NULL};
    start(&s, extra);
    ts_user_t ana;
    ts_register(s.port, "beat", &ana);
    ts_sse_t *c = ts_stream(s.port, &ana, NULL);
    /* The first heartbeat comes once the stream has read its log (a read that would meet the
     * pause ends the stream: the client reconnects, as the last test has it). */
    ts_sse_item_t first = {0};
    cr_assert_eq(ts_sse_next(c, &first, 3000), TS_SSE_COMMENT, "no first heartbeat");
    ts_sse_item_clear(&first);

    pause_redis();
    uint64_t paused = ts_now_ms(), last = paused, worst = 0;
    int beats = 0;
    while (ts_now_ms() - paused < PAUSE_MS + 1000) {
        ts_sse_item_t it = {0};
        ts_sse_kind_t kind = ts_sse_next(c, &it, 3000);
        ts_sse_item_clear(&it);
        uint64_t now = ts_now_ms();
        cr_assert_neq(kind, TS_SSE_END, "the stream ended at +%llu ms of the pause",
                      (unsigned long long)(now - paused));
        if (now - last > worst)
            worst = now - last;
        last = now;
        beats += kind == TS_SSE_COMMENT;
    }
    cr_expect_lt(worst, 2000, "the stream was silent for %llu ms during the pause",
                 (unsigned long long)worst);
    cr_expect_geq(beats, 4, "only %d heartbeats in %d ms", beats, PAUSE_MS + 1000);
    expect_recovery(&s, &ana);
    /* The refreshes went on after the pause: the log outlives its grace while the stream is
     * open (it lapsed during the pause, longer than the grace, and was made again). */
    ts_sleep_ms(4000);
    struct redisContext *rc = ts_redis_connect(redis.port);
    cr_expect_eq(ts_redis_int(rc, "EXISTS ev:{%s}", ana.id), 1, "the online mark lapsed");
    ts_redis_close(rc);
    ts_sse_close(c);
    ts_server_stop(&s, 10000);
}

Test(paused_redis, a_stream_reconnecting_while_redis_is_paused_gets_an_answer)
{
    ts_server_t s;
    start(&s, NULL);
    ts_user_t ana;
    ts_register(s.port, "back", &ana);
    ts_sse_t *c = ts_stream(s.port, &ana, NULL);
    ts_sse_close(c);

    pause_redis();
    ts_sleep_ms(500);
    ts_sse_opts_t o = {.token = ana.token, .last_event_id = "1-0"};
    uint64_t t0 = ts_now_ms();
    c = ts_sse_try_open(s.port, &o, ANSWER_WITHIN_MS);
    uint64_t took = ts_now_ms() - t0;
    cr_assert(c, "no response head within %d ms", ANSWER_WITHIN_MS);
    cr_expect_eq(c->status, 503, "a reconnect during the pause: %d after %llu ms", c->status,
                 (unsigned long long)took);
    char retry[16];
    cr_expect(ts_sse_header(c, "Retry-After", retry, sizeof(retry)), "no Retry-After");
    ts_sse_close(c);
    expect_recovery(&s, &ana);
    ts_server_stop(&s, 10000);
}
