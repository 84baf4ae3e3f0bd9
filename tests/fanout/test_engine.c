/* tests/fanout/test_engine.c -- the engine driven directly: fanout_create and fanout_start on a
 * libuv loop of the test's own, jobs put straight into the stream. Every test ends with
 * fanout_stop and checks that done_cb fires once and that the loop then runs empty, every
 * handle closed (uv_loop_close succeeds); the sanitizer build adds leak checking on top.
 */
#include "fanout/fanout.h"
#include "tests/fanout/fx.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

TestSuite(engine, .timeout = 180);

static ts_redis_t redis;
static uv_loop_t loop;

/* ---- helpers -------------------------------------------------------------------------------- */

static void setup(bool aof)
{
    redis.aof = aof;
    ts_redis_start_like_fixture(&redis);
    redisContext *c = ts_redis_connect(redis.port);
    freeReplyObject(ts_redis_cmd_ok(c, "XGROUP CREATE fanout:{0} engine 0 MKSTREAM"));
    ts_redis_close(c);
    cr_assert_eq(uv_loop_init(&loop), 0);
}

static fanout_t *engine(const char *url, int claim_idle_ms, int in_flight)
{
    storage_config_t scfg;
    storage_config_defaults(&scfg);
    scfg.url = url;
    fanout_config_t cfg;
    fanout_config_defaults(&cfg);
    char consumer[64];
    ts_unique(consumer, sizeof(consumer), "engine_test");
    cfg.consumer = consumer; /* copied by fanout_create */
    cfg.claim_idle_ms = claim_idle_ms;
    cfg.max_in_flight = in_flight;
    cfg.celebrity_threshold = 1000000; /* 100,000 followers are fanned out on write here */
    cfg.stats_interval_ms = 100;
    cfg.block_ms = 200;
    fanout_t *f = fanout_create(&loop, &scfg, &cfg);
    cr_assert(f, "fanout_create failed");
    cr_assert_str_eq(fanout_consumer(f), consumer);
    return f;
}

/* A post job for author's followers, as the API would queue it. */
static void queue_post(redisContext *c, unsigned long long post, unsigned long long author)
{
    freeReplyObject(
        ts_redis_cmd_ok(c, "HSET post:{%llu} author %llu text engine-test", post, author));
    freeReplyObject(ts_redis_cmd_ok(c, "ZADD posts:{%llu} %llu %llu", author, post, post));
    freeReplyObject(
        ts_redis_cmd_ok(c, "XADD fanout:{0} * kind post post %llu author %llu", post, author));
}

typedef bool (*pred_fn)(void *arg);
typedef struct waiter_s {
    pred_fn pred;
    void *arg;
    uint64_t deadline;
    bool met;
    void (*tick)(void *arg); /* optional: called on every poll */
} waiter_t;

static void on_poll(uv_timer_t *t)
{
    waiter_t *w = t->data;
    if (w->tick)
        w->tick(w->arg);
    if (w->pred(w->arg)) {
        w->met = true;
        uv_stop(t->loop);
    } else if (ts_now_ms() >= w->deadline) {
        uv_stop(t->loop);
    }
}

/* Runs the loop until pred holds (polled every 5 ms) or timeout_ms passes. */
static bool run_until_tick(pred_fn pred, void *arg, void (*tick)(void *), int timeout_ms)
{
    waiter_t w = {pred, arg, ts_now_ms() + (uint64_t)timeout_ms, false, tick};
    uv_timer_t t;
    uv_timer_init(&loop, &t);
    t.data = &w;
    uv_timer_start(&t, on_poll, 0, 5);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_NOWAIT); /* lets the close finish */
    return w.met;
}

static bool run_until(pred_fn pred, void *arg, int timeout_ms)
{
    return run_until_tick(pred, arg, NULL, timeout_ms);
}

static bool never(void *arg)
{
    (void)arg;
    return false;
}

static void on_done(void *arg)
{
    (*(int *)arg)++;
}

static bool watchdog_fired;
static void on_watchdog(uv_timer_t *t)
{
    watchdog_fired = true;
    uv_stop(t->loop);
}

static void describe_handle(uv_handle_t *h, void *arg)
{
    char *buf = arg;
    size_t used = strlen(buf);
    snprintf(buf + used, 512 - used, "%s%s ", uv_handle_type_name(h->type),
             uv_is_closing(h) ? "(closing)" : "");
}

/* fanout_stop, then the loop must run empty by itself and close cleanly. */
static void stop_and_drain(fanout_t *f, int grace_ms)
{
    int done = 0;
    fanout_stop(f, grace_ms, on_done, &done);
    /* An unreferenced watchdog: it cannot keep the loop alive, only end a hung one. */
    uv_timer_t wd;
    uv_timer_init(&loop, &wd);
    uv_timer_start(&wd, on_watchdog, (uint64_t)grace_ms + 20000, 0);
    uv_unref((uv_handle_t *)&wd);
    watchdog_fired = false;
    uv_run(&loop, UV_RUN_DEFAULT);
    char handles[512] = "";
    uv_walk(&loop, describe_handle, handles);
    cr_assert(!watchdog_fired, "the loop never ran empty after fanout_stop; open: %s", handles);
    cr_assert_eq(done, 1, "done_cb fired %d times", done);
    uv_close((uv_handle_t *)&wd, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    handles[0] = '\0';
    uv_walk(&loop, describe_handle, handles);
    cr_assert_eq(uv_loop_close(&loop), 0, "handles left open: %s", handles);
}

typedef struct {
    fanout_t *f;
    unsigned long long n;
} count_t;

static bool done_at_least(void *arg)
{
    count_t *c = arg;
    return atomic_load(&fanout_stats(c->f)->jobs_done) >= c->n;
}

static bool writes_at_least(void *arg)
{
    count_t *c = arg;
    return atomic_load(&fanout_stats(c->f)->timeline_writes) >= c->n;
}

static bool redis_up(void *arg)
{
    return atomic_load(&fanout_stats(arg)->redis_up);
}

/* ---- life without work ---------------------------------------------------------------------- */

Test(engine, stop_without_start_closes_everything)
{
    setup(false);
    fanout_t *f = engine(redis.url, 1000, 20000);
    stop_and_drain(f, 0);
}

Test(engine, stop_right_after_start_before_connecting_closes_everything)
{
    setup(false);
    fanout_t *f = engine(redis.url, 1000, 20000);
    fanout_start(f);
    stop_and_drain(f, 1000);
}

Test(engine, stop_while_idle_and_connected_closes_everything)
{
    setup(false);
    fanout_t *f = engine(redis.url, 1000, 20000);
    fanout_start(f);
    cr_assert(run_until(redis_up, f, 10000), "the engine never connected");
    run_until(never, NULL, 500); /* a blocking read, claims and stats samples under way */
    stop_and_drain(f, 1000);
}

Test(engine, stop_with_redis_unreachable_closes_everything)
{
    cr_assert_eq(uv_loop_init(&loop), 0);
    char url[64];
    ts_redis_url(url, sizeof(url), ts_free_port()); /* nothing listens */
    fanout_t *f = engine(url, 1000, 20000);
    fanout_start(f);
    run_until(never, NULL, 700); /* refused connects and retries with backoff */
    cr_assert(!atomic_load(&fanout_stats(f)->redis_up));
    stop_and_drain(f, 1000);
}

Test(engine, stop_while_redis_is_down_closes_everything)
{
    ts_redis_skip_on_cluster(FX_RESTARTS_REDIS);
    setup(false);
    fanout_t *f = engine(redis.url, 1000, 20000);
    fanout_start(f);
    cr_assert(run_until(redis_up, f, 10000), "the engine never connected");
    ts_proc_kill(redis.pid); /* a crash: connections drop, reconnects are refused */
    redis.pid = 0;
    run_until(never, NULL, 700);
    cr_assert(!atomic_load(&fanout_stats(f)->redis_up), "the engine did not notice the outage");
    stop_and_drain(f, 1000);
}

/* ---- with work ------------------------------------------------------------------------------ */

Test(engine, a_job_runs_to_its_acknowledgement_then_stop_closes_everything)
{
    setup(false);
    redisContext *c = ts_redis_connect(redis.port);
    enum { FOLLOWERS = 5000 };
    const unsigned long long author = 501, post = 5001, base = 20000000;
    ts_add_followers(c, author, base, FOLLOWERS, 1);
    queue_post(c, post, author);
    fanout_t *f = engine(redis.url, 1000, 20000);
    fanout_start(f);
    count_t want = {f, 1};
    cr_assert(run_until(done_at_least, &want, 30000), "the job did not finish");
    cr_assert_eq(fx_count_holding(c, post, base, FOLLOWERS, NULL), (size_t)FOLLOWERS);
    cr_assert(ts_timeline_holds(c, author, post));
    cr_assert(ts_wait_queue_empty(c, 5000), "the finished job is still queued");
    const fanout_stats_t *st = fanout_stats(f);
    cr_assert_eq(atomic_load(&st->jobs_done), 1);
    cr_assert_eq(atomic_load(&st->jobs_failed), 0);
    cr_assert_geq(atomic_load(&st->timeline_writes), FOLLOWERS);
    cr_assert_eq(atomic_load(&st->active_jobs), 0);
    ts_redis_close(c);
    stop_and_drain(f, 1000);
}

/* Stopping with no grace cancels the running job: it stays pending in Redis, and another
 * engine takes it over once it has been idle long enough and finishes it. */
Test(engine, stop_with_a_job_running_leaves_it_pending_for_another_engine)
{
    setup(false);
    redisContext *c = ts_redis_connect(redis.port);
    enum { FOLLOWERS = 100000 };
    const unsigned long long author = 502, post = 5002, base = 21000000;
    ts_add_followers(c, author, base, FOLLOWERS, 1);
    queue_post(c, post, author);

    fanout_t *f = engine(redis.url, 500, 2000);
    fanout_start(f);
    count_t started = {f, 1};
    cr_assert(run_until(writes_at_least, &started, 30000), "the job never started writing");
    cr_assert_eq(atomic_load(&fanout_stats(f)->active_jobs), 1);
    stop_and_drain(f, 0);

    size_t holding = fx_count_holding(c, post, base, FOLLOWERS, NULL);
    cr_log_info("%zu of %d followers written before the stop", holding, FOLLOWERS);
    cr_assert_lt(holding, (size_t)FOLLOWERS, "the job finished before the stop: no test");
    long long length, pending;
    ts_queue(c, &length, &pending, NULL);
    cr_assert_eq(length, 1, "the cancelled job left the stream");
    cr_assert_eq(pending, 1, "the cancelled job is not pending");

    cr_assert_eq(uv_loop_init(&loop), 0);
    fanout_t *g = engine(redis.url, 500, 20000);
    fanout_start(g);
    count_t finished = {g, 1};
    cr_assert(run_until(done_at_least, &finished, 60000), "the second engine did not finish it");
    cr_assert_geq(atomic_load(&fanout_stats(g)->jobs_claimed), 1);
    cr_assert_eq(fx_count_holding(c, post, base, FOLLOWERS, NULL), (size_t)FOLLOWERS);
    cr_assert_eq(fx_count_card(c, base, FOLLOWERS, 1), (size_t)FOLLOWERS);
    cr_assert(ts_wait_queue_empty(c, 5000));
    ts_redis_close(c);
    stop_and_drain(g, 1000);
}

Test(engine, stop_with_grace_lets_the_running_job_finish)
{
    setup(false);
    redisContext *c = ts_redis_connect(redis.port);
    enum { FOLLOWERS = 30000 };
    const unsigned long long author = 503, post = 5003, base = 22000000;
    ts_add_followers(c, author, base, FOLLOWERS, 1);
    queue_post(c, post, author);
    fanout_t *f = engine(redis.url, 1000, 2000);
    fanout_start(f);
    count_t started = {f, 1};
    cr_assert(run_until(writes_at_least, &started, 30000), "the job never started writing");
    stop_and_drain(f, 60000);
    cr_assert_eq(fx_count_holding(c, post, base, FOLLOWERS, NULL), (size_t)FOLLOWERS,
                 "the grace period did not let the job finish");
    long long length, pending;
    ts_queue(c, &length, &pending, NULL);
    cr_assert(length == 0 && pending == 0, "the finished job was not acknowledged");
    ts_redis_close(c);
}

static bool active_jobs_are(void *arg)
{
    count_t *c = arg;
    return (unsigned long long)atomic_load(&fanout_stats(c->f)->active_jobs) == c->n;
}

/* Three jobs under a small in-flight budget: one writes while the other two are parked
 * waiting for budget. A stop with a generous grace period must let all three finish (the
 * parked ones included), and free them. */
Test(engine, stop_with_grace_lets_parked_jobs_finish_too)
{
    setup(false);
    redisContext *c = ts_redis_connect(redis.port);
    enum { FOLLOWERS = 20000, JOBS = 3 };
    const unsigned long long base = 24000000;
    for (unsigned long long a = 0; a < JOBS; a++) {
        ts_add_followers(c, 701 + a, base, FOLLOWERS, 1);
        queue_post(c, 7001 + a, 701 + a);
    }
    fanout_t *f = engine(redis.url, 1000, 2000);
    fanout_start(f);
    count_t three = {f, JOBS};
    cr_assert(run_until(active_jobs_are, &three, 30000), "the three jobs never ran at once");
    count_t started = {f, 1};
    cr_assert(run_until(writes_at_least, &started, 30000), "the jobs never started writing");
    uint64_t t0 = ts_now_ms();
    stop_and_drain(f, 15000);
    uint64_t took = ts_now_ms() - t0;
    for (unsigned long long a = 0; a < JOBS; a++) {
        size_t holding = fx_count_holding(c, 7001 + a, base, FOLLOWERS, NULL);
        cr_assert_eq(holding, (size_t)FOLLOWERS,
                     "job %llu of %d reached %zu of %d followers within the 15 s grace (the stop "
                     "took %llu ms)",
                     a + 1, JOBS, holding, FOLLOWERS, (unsigned long long)took);
    }
    long long length, pending;
    ts_queue(c, &length, &pending, NULL);
    cr_assert(length == 0 && pending == 0, "%lld jobs queued, %lld pending after the stop", length,
              pending);
    ts_redis_close(c);
}

/* ---- redis restarted under several jobs ------------------------------------------------------ */

typedef struct restart_watch_s {
    fanout_t *f;
    redisContext *c;
    long long max_deliveries;
    unsigned long long jobs;
} restart_watch_t;

/* Samples the delivery counts of the pending jobs. */
static void sample_deliveries(void *arg)
{
    restart_watch_t *w = arg;
    redisReply *r = redisCommand(w->c, "XPENDING fanout:{0} engine - + 100");
    if (r && r->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i < r->elements; i++)
            if (r->element[i]->element[3]->integer > w->max_deliveries)
                w->max_deliveries = r->element[i]->element[3]->integer;
    if (r)
        freeReplyObject(r);
}

static bool all_jobs_done(void *arg)
{
    restart_watch_t *w = arg;
    return atomic_load(&fanout_stats(w->f)->jobs_done) >= w->jobs;
}

/* Three post jobs at once under a small in-flight budget, so most of the time two of them are
 * parked waiting for budget when Redis goes away; after it comes back, the engine re-reads
 * its own pending jobs and finishes all three. */
Test(engine, redis_restart_under_parked_jobs_finishes_them_all, .timeout = 240)
{
    ts_redis_skip_on_cluster(FX_RESTARTS_REDIS);
    setup(true);
    redisContext *c = ts_redis_connect(redis.port);
    enum { FOLLOWERS = 30000, JOBS = 3 };
    const unsigned long long base = 23000000;
    for (unsigned long long a = 0; a < JOBS; a++)
        ts_add_followers(c, 601 + a, base, FOLLOWERS, 1);
    for (unsigned long long a = 0; a < JOBS; a++)
        queue_post(c, 6001 + a, 601 + a);
    fanout_t *f = engine(redis.url, 1000, 2000);
    fanout_start(f);
    count_t started = {f, 3000};
    cr_assert(run_until(writes_at_least, &started, 30000), "the jobs never started writing");
    cr_assert_eq(atomic_load(&fanout_stats(f)->active_jobs), JOBS, "not all jobs running at once");
    ts_redis_close(c);

    /* The loop does not run while redis restarts: the engine finds out afterwards. */
    ts_redis_shutdown(&redis);
    ts_redis_start(&redis, redis.port);
    c = ts_redis_connect(redis.port);
    restart_watch_t w = {f, c, 0, JOBS};
    cr_assert(run_until_tick(all_jobs_done, &w, sample_deliveries, 90000),
              "only %llu of %d jobs finished after the restart",
              (unsigned long long)atomic_load(&fanout_stats(f)->jobs_done), JOBS);
    for (unsigned long long a = 0; a < JOBS; a++)
        cr_assert_eq(fx_count_holding(c, 6001 + a, base, FOLLOWERS, NULL), (size_t)FOLLOWERS,
                     "post %llu did not reach every follower", 6001 + a);
    cr_assert_eq(fx_count_card(c, base, FOLLOWERS, JOBS), (size_t)FOLLOWERS);
    cr_assert(ts_wait_queue_empty(c, 5000));
    cr_assert_eq(ts_redis_int(c, "XLEN fanout:dead"), 0);
    /* Each job was handed out once before the restart and once after: re-reading one's own
     * pending jobs must not hand them out again and again (every hand-out counts towards
     * dead-lettering when another process has to claim the job). */
    cr_log_info("highest delivery count seen after the restart: %lld", w.max_deliveries);
    cr_assert_leq(w.max_deliveries, 3,
                  "a pending job was delivered %lld times while one engine worked on it",
                  w.max_deliveries);
    ts_redis_close(c);
    stop_and_drain(f, 1000);
}
