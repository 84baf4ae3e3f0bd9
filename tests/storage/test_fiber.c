/* tests/storage/test_fiber.c -- batches run in fibers: they park instead of blocking, share
 * the I/O thread's connections, and keep the batch contract (timeouts, refusals, replays). The
 * test thread plays the HTTP thread: it runs fibers, sends what a parked one waits for, and
 * runs it on once the I/O thread has woken it. */
#include "storage/redis/redis.h"
#include "tests/storage/fixture.h"
#include "tests/support/support.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#define FIBERS 200

/* The owner of a set of fibers, as libmicrohttpd's thread is of its connections. */
typedef struct owner_s {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int woken[FIBERS]; /* indexes of fibers woken and not yet run on */
    int n_woken;
} owner_t;

typedef struct task_s {
    owner_t *owner;
    int index;
    storage_redis_t *client;
    storage_redis_fiber_t *fiber;
    char key[64];
    int rc;
    char got[64];
    uint64_t ms; /* how long its batch took */
} task_t;

static void task_wake(void *arg)
{
    task_t *t = arg;
    pthread_mutex_lock(&t->owner->mu);
    t->owner->woken[t->owner->n_woken++] = t->index;
    pthread_cond_signal(&t->owner->cv);
    pthread_mutex_unlock(&t->owner->mu);
}

/* SET key index, then GET it: two batches, so each fiber parks twice. */
static void set_then_get(void *arg)
{
    task_t *t = arg;
    uint64_t t0 = ts_now_ms();
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, t->client);
    storage_redis_batch_add(&b, "SET %s %d EX 60", t->key, t->index);
    t->rc = storage_redis_batch_run_checked(&b);
    storage_redis_batch_free(&b);
    if (t->rc == 0) {
        storage_redis_batch_init(&b, t->client);
        storage_redis_batch_add(&b, "GET %s", t->key);
        t->rc = storage_redis_batch_run_checked(&b);
        if (t->rc == 0 && b.r[0]->type == REDIS_REPLY_STRING)
            snprintf(t->got, sizeof(t->got), "%s", b.r[0]->str);
        storage_redis_batch_free(&b);
    }
    t->ms = ts_now_ms() - t0;
}

static storage_redis_t *client_for(const char *url, int command_timeout_ms)
{
    storage_redis_config_t cfg = {.url = url,
                                  .pool_size = 4,
                                  .connect_timeout_ms = 1000,
                                  .command_timeout_ms = command_timeout_ms};
    storage_redis_t *c = storage_redis_create(&cfg);
    cr_assert_not_null(c);
    return c;
}

/* Runs n tasks to the end on this thread; returns the most that were parked at once. */
static int run_all(owner_t *o, task_t *tasks, int n)
{
    int parked = 0, most = 0, done = 0;
    for (int i = 0; i < n; i++) {
        tasks[i].fiber = storage_redis_fiber_new(set_then_get, &tasks[i], task_wake, &tasks[i]);
        cr_assert_not_null(tasks[i].fiber);
        if (storage_redis_fiber_run(tasks[i].fiber)) {
            done++;
            continue;
        }
        storage_redis_fiber_send(tasks[i].fiber);
        parked++;
    }
    most = parked;
    uint64_t deadline = ts_now_ms() + 30000;
    while (done < n) {
        cr_assert_lt(ts_now_ms(), deadline, "%d of %d fibers still parked after 30 s", n - done, n);
        pthread_mutex_lock(&o->mu);
        while (o->n_woken == 0)
            pthread_cond_wait(&o->cv, &o->mu);
        int woken[FIBERS], k = o->n_woken;
        memcpy(woken, o->woken, sizeof(int) * (size_t)k);
        o->n_woken = 0;
        pthread_mutex_unlock(&o->mu);
        for (int j = 0; j < k; j++) {
            task_t *t = &tasks[woken[j]];
            parked--;
            if (storage_redis_fiber_run(t->fiber)) {
                done++;
            } else {
                storage_redis_fiber_send(t->fiber);
                parked++;
            }
            most = parked > most ? parked : most;
        }
    }
    for (int i = 0; i < n; i++) {
        storage_redis_fiber_free(tasks[i].fiber);
        tasks[i].fiber = NULL;
    }
    return most;
}

static void owner_init(owner_t *o)
{
    memset(o, 0, sizeof(*o));
    pthread_mutex_init(&o->mu, NULL);
    pthread_cond_init(&o->cv, NULL);
}

static void tasks_init(task_t *tasks, int n, owner_t *o, storage_redis_t *c, const char *tag)
{
    for (int i = 0; i < n; i++) {
        tasks[i] = (task_t){.owner = o, .index = i, .client = c, .rc = 1};
        snprintf(tasks[i].key, sizeof(tasks[i].key), "fiber-test:%s:%d:%u", tag, i,
                 (unsigned)ts_now_ms());
    }
}

static ts_redis_t own;

static void stop_own(void)
{
    ts_redis_cleanup(&own);
}

TestSuite(fiber, .timeout = 60, .fini = stop_own);

Test(fiber, many_requests_park_at_once_on_one_thread_and_each_gets_its_own_answer)
{
    char url[256];
    ts_redis_fixture_url(url, sizeof(url));
    storage_redis_t *c = client_for(url, 2000);
    static owner_t o;
    static task_t tasks[FIBERS];
    owner_init(&o);
    tasks_init(tasks, FIBERS, &o, c, "many");
    int most = run_all(&o, tasks, FIBERS);
    /* One thread, no blocking: every fiber had its first batch out before any answer was
     * taken in. */
    cr_expect_eq(most, FIBERS, "only %d of %d fibers were parked at once", most, FIBERS);
    for (int i = 0; i < FIBERS; i++) {
        char want[16];
        snprintf(want, sizeof(want), "%d", i);
        cr_expect_eq(tasks[i].rc, 0, "fiber %d: %d", i, tasks[i].rc);
        cr_expect_str_eq(tasks[i].got, want, "fiber %d read another's value", i);
    }
    storage_redis_destroy(c);
}

Test(fiber, a_paused_redis_times_out_once_then_refuses_at_once_and_recovers)
{
    ts_redis_start(&own, 0);
    storage_redis_t *c = client_for(own.url, 400);
    static owner_t o;
    static task_t tasks[8];
    owner_init(&o);
    tasks_init(tasks, 8, &o, c, "paused");
    run_all(&o, tasks, 8);
    for (int i = 0; i < 8; i++)
        cr_assert_eq(tasks[i].rc, 0);

    kill(own.pid, SIGSTOP);
    tasks_init(tasks, 8, &o, c, "paused");
    run_all(&o, tasks, 8);
    for (int i = 0; i < 8; i++) {
        cr_expect_eq(tasks[i].rc, -ETIMEDOUT, "fiber %d on a stopped Redis: %d", i, tasks[i].rc);
        cr_expect_lt(tasks[i].ms, 1500, "fiber %d waited %llu ms (timeout 400)", i,
                     (unsigned long long)tasks[i].ms);
    }
    /* The node is suspect now: a batch is refused before anything is sent. */
    tasks_init(tasks, 1, &o, c, "paused");
    run_all(&o, tasks, 1);
    cr_expect_eq(tasks[0].rc, -ENOTCONN, "behind the open breaker: %d", tasks[0].rc);
    cr_expect_lt(tasks[0].ms, 100);

    kill(own.pid, SIGCONT);
    int ok = 0;
    for (int attempt = 0; attempt < 50 && !ok; attempt++) {
        ts_sleep_ms(100);
        tasks_init(tasks, 1, &o, c, "paused");
        run_all(&o, tasks, 1);
        ok = tasks[0].rc == 0;
    }
    cr_expect(ok, "no batch got through within 5 s of SIGCONT");
    storage_redis_destroy(c);
}

Test(fiber, a_restarted_redis_is_reconnected_without_failing_a_request)
{
    ts_redis_start(&own, 0);
    storage_redis_t *c = client_for(own.url, 2000);
    static owner_t o;
    static task_t tasks[4];
    owner_init(&o);
    tasks_init(tasks, 4, &o, c, "restart");
    run_all(&o, tasks, 4);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(tasks[i].rc, 0);
    ts_redis_kill(&own);
    ts_redis_start(&own, own.port);
    ts_sleep_ms(100); /* the I/O thread sees the connection close */
    tasks_init(tasks, 4, &o, c, "restart");
    run_all(&o, tasks, 4);
    for (int i = 0; i < 4; i++)
        cr_expect_eq(tasks[i].rc, 0, "fiber %d after the restart: %d", i, tasks[i].rc);
    storage_redis_destroy(c);
}

Test(fiber, a_dead_redis_refuses_without_waiting)
{
    ts_redis_start(&own, 0);
    storage_redis_t *c = client_for(own.url, 2000);
    ts_redis_kill(&own);
    static owner_t o;
    static task_t tasks[4];
    owner_init(&o);
    tasks_init(tasks, 4, &o, c, "dead");
    run_all(&o, tasks, 4);
    for (int i = 0; i < 4; i++) {
        cr_expect_eq(tasks[i].rc, -ENOTCONN, "fiber %d with Redis gone: %d", i, tasks[i].rc);
        cr_expect_lt(tasks[i].ms, 1500);
    }
    storage_redis_destroy(c);
}

Test(fiber, a_cancelled_fiber_sends_nothing_and_finishes)
{
    char url[256];
    ts_redis_fixture_url(url, sizeof(url));
    storage_redis_t *c = client_for(url, 2000);
    static owner_t o;
    static task_t t;
    owner_init(&o);
    tasks_init(&t, 1, &o, c, "cancel");
    t.fiber = storage_redis_fiber_new(set_then_get, &t, task_wake, &t);
    cr_assert_not_null(t.fiber);
    storage_redis_fiber_cancel(t.fiber);
    cr_expect(storage_redis_fiber_run(t.fiber), "a cancelled fiber parked");
    cr_expect_eq(t.rc, -ECANCELED);
    storage_redis_fiber_free(t.fiber);
    redisReply *r = ts_redis_fixture_command("EXISTS %s", t.key);
    cr_expect_eq(r->integer, 0, "a cancelled fiber's SET reached Redis");
    freeReplyObject(r);
    storage_redis_destroy(c);
}
