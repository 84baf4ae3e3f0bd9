/* tests/notify/stress.c -- the two-thread publish/close stress run (see stress.h).
 *
 * The log is simulated: event k of user u has id "<k>-<u>", and user u's log holds events
 * 1..logged[u]. The publisher appends to the log before it publishes, as the real path
 * writes the Redis log before the live message, so a stream that misses a live event
 * finds it in its next catch-up. A client therefore must see k, k+1, k+2... of its user
 * with nothing skipped or repeated, whatever the interleaving: a cut-off or a hang-up
 * closes its stream, and it resumes after the last event it was sent, as a browser's
 * EventSource does with Last-Event-ID.
 */
#include "tests/notify/stress.h"

#include "notify/notify.h"

#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_USERS 256
#define MAX_CLIENTS 512
#define PACE 256

typedef struct client_s {
    notify_sub_t *sub;
    uint64_t user;
    unsigned last; /* the last event of its user it was sent (its Last-Event-ID) */
    atomic_bool parked;
    struct run_s *run;
} client_t;

typedef struct run_s {
    const nx_stress_t *cfg;
    nx_stress_result_t *res;
    notify_hub_t *hub;
    atomic_uint logged[MAX_USERS];
    atomic_bool done;
    atomic_uint passes; /* the reader's passes over its clients: the publisher's pace */
    atomic_ullong failures;
    pthread_mutex_t fail_mu; /* guards res->first_failure */
    client_t clients[MAX_CLIENTS];
} run_t;

static void fail(run_t *run, const char *fmt, ...)
{
    if (atomic_fetch_add(&run->failures, 1) > 0)
        return;
    pthread_mutex_lock(&run->fail_mu);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(run->res->first_failure, sizeof(run->res->first_failure), fmt, ap);
    va_end(ap);
    pthread_mutex_unlock(&run->fail_mu);
}

/* The hooks run with the subscriber locked: park on the reader's thread, wake on the
 * publisher's. A wake must find its stream parked, and a park must not find it parked. */
static void park(void *arg)
{
    client_t *c = arg;
    if (atomic_exchange(&c->parked, true))
        fail(c->run, "user %llu parked twice without a wake", (unsigned long long)c->user);
}

static void wake(void *arg)
{
    client_t *c = arg;
    if (!atomic_exchange(&c->parked, false))
        fail(c->run, "user %llu woken while not parked", (unsigned long long)c->user);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A small deterministic generator: each thread its own state. */
static unsigned next_rand(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return *s >> 16;
}

/* Publishes one event to user u: its log first, then the live message; twice sends the
 * live message again, as a stream that read the event from the log meets it live later
 * (the seam's duplicate, which the stream must drop). */
static bool publish(run_t *run, uint64_t u, bool twice)
{
    unsigned k = atomic_load(&run->logged[u]) + 1;
    char id[NOTIFY_ID_MAX];
    snprintf(id, sizeof(id), "%u-%llu", k, (unsigned long long)u);
    notify_event_t *e = notify_event_new(id, 1 /* any kind: the hub passes it on */, "post");
    if (!e) {
        fail(run, "out of memory");
        return false;
    }
    atomic_store(&run->logged[u], k);
    notify_hub_publish(run->hub, u, e);
    if (twice)
        notify_hub_publish(run->hub, u, e);
    notify_event_unref(e);
    return true;
}

/* The loop thread's part: events one at a time and in batches (a message of many users,
 * whose streams resume at its end), a heartbeat slice every few, now and then every
 * stream asked to catch up (as after a reconnect to Redis). */
static void *publisher(void *arg)
{
    run_t *run = arg;
    const nx_stress_t *cfg = run->cfg;
    unsigned seed = 1, tick = 0;
    double until = now() + cfg->seconds;
    unsigned i = 0;
    for (unsigned round = 0; i < cfg->events; round++) {
        if (round % 64 == 0 && now() > until)
            break;
        /* At most PACE events per pass of the reader: both threads run throughout, on a
         * loaded machine too, instead of one finishing before the other is scheduled. */
        while (i / PACE > atomic_load(&run->passes) && now() <= until)
            sched_yield();
        bool batch = round % 8 == 0;
        if (batch)
            notify_hub_batch(run->hub, true);
        for (unsigned j = 0; j < (batch ? 8u : 1u) && i < cfg->events; j++, i++)
            if (!publish(run, next_rand(&seed) % cfg->users, round % 16 == 1))
                break;
        if (batch)
            notify_hub_batch(run->hub, false);
        if (round % 4 == 0)
            notify_hub_heartbeat(run->hub, tick++, 16);
        if (round % 2048 == 0)
            notify_hub_subscribed(run->hub);
    }
    run->res->published = i;
    atomic_store(&run->done, true);
    return NULL;
}

static bool open_client(run_t *run, client_t *c)
{
    char cursor[NOTIFY_ID_MAX] = "";
    if (c->last)
        snprintf(cursor, sizeof(cursor), "%u-%llu", c->last, (unsigned long long)c->user);
    notify_sub_hooks_t hooks = {park, wake, c};
    atomic_store(&c->parked, false);
    c->sub = notify_sub_open(run->hub, c->user, cursor, &hooks);
    if (!c->sub) {
        fail(run, "user %llu: open failed", (unsigned long long)c->user);
        return false;
    }
    run->res->opened++;
    return true;
}

static void close_client(client_t *c)
{
    notify_sub_close(c->sub);
    c->sub = NULL;
}

/* Reads the simulated log after cursor: up to a queue's worth, as the adapter does. */
static void catch_up(run_t *run, client_t *c, const char *cursor)
{
    unsigned from = (unsigned)strtoul(cursor, NULL, 10);
    if (from != c->last)
        fail(run, "user %llu: catch-up from %u, but %u was the last sent",
             (unsigned long long)c->user, from, c->last);
    unsigned logged = atomic_load(&run->logged[c->user]);
    size_t n = logged > from ? logged - from : 0, max = run->cfg->queue_max;
    bool more = n > max;
    if (more)
        n = max;
    notify_event_t **events = calloc(n ? n : 1, sizeof(*events));
    if (!events) {
        fail(run, "out of memory");
        notify_sub_catchup_done(c->sub, NULL, 0, true);
        return;
    }
    sched_yield(); /* a log read is a round trip to Redis: live events come meanwhile */
    size_t made = 0;
    for (size_t i = 0; i < n; i++) {
        char id[NOTIFY_ID_MAX];
        snprintf(id, sizeof(id), "%u-%llu", from + 1 + (unsigned)i, (unsigned long long)c->user);
        if (!(events[made] = notify_event_new(id, 1 /* any kind: the hub passes it on */, "post")))
            break;
        events[made++]->from_log = true;
    }
    notify_sub_catchup_done(c->sub, events, made, more || made < n);
    for (size_t i = 0; i < made; i++)
        notify_event_unref(events[i]);
    free(events);
}

/* Takes up to budget steps of one client; returns how many it took. */
static unsigned step(run_t *run, client_t *c, unsigned budget)
{
    unsigned steps = 0;
    while (steps < budget) {
        steps++;
        notify_event_t *e = NULL;
        char cursor[NOTIFY_ID_MAX];
        switch (notify_sub_next(c->sub, &e, cursor)) {
        case NOTIFY_NEXT_EVENT:
            if (e->kind == NOTIFY_KIND_HEARTBEAT) {
                run->res->heartbeats++;
            } else {
                unsigned k = (unsigned)strtoul(e->id, NULL, 10);
                if (k != c->last + 1)
                    fail(run, "user %llu: event %u after %u (%s)", (unsigned long long)c->user, k,
                         c->last, k <= c->last ? "a duplicate or out of order" : "a gap");
                c->last = k;
                run->res->delivered++;
            }
            notify_event_unref(e);
            break;
        case NOTIFY_NEXT_CATCHUP:
            catch_up(run, c, cursor);
            break;
        case NOTIFY_NEXT_PARKED:
            return steps;
        case NOTIFY_NEXT_END: /* cut off: the client comes back after its last event */
            run->res->cut_off++;
            close_client(c);
            return steps;
        }
    }
    return steps;
}

static void *reader(void *arg)
{
    run_t *run = arg;
    const nx_stress_t *cfg = run->cfg;
    unsigned seed = 2;
    while (!atomic_load(&run->done) && !atomic_load(&run->failures)) {
        unsigned steps = 0;
        for (unsigned i = 0; i < cfg->clients; i++) {
            client_t *c = &run->clients[i];
            if (!c->sub && !open_client(run, c))
                return NULL;
            if (!atomic_load(&c->parked))
                steps += step(run, c, 1 + next_rand(&seed) % 16);
            if (c->sub && next_rand(&seed) % 64 == 0) { /* hangs up, parked or not */
                run->res->hung_up++;
                close_client(c);
            }
        }
        atomic_fetch_add(&run->passes, 1);
        if (!steps)
            sched_yield(); /* every stream parked: let the publisher run */
    }
    return NULL;
}

/* After both threads: a parked stream must hold everything (a lost wake would leave it
 * behind), and every other stream must reach its user's last event by reading on. */
static void settle(run_t *run)
{
    for (unsigned i = 0; i < run->cfg->clients; i++) {
        client_t *c = &run->clients[i];
        unsigned logged = atomic_load(&run->logged[c->user]);
        if (c->sub && atomic_load(&c->parked)) {
            if (c->last != logged)
                fail(run, "user %llu: parked at %u, but the log holds %u",
                     (unsigned long long)c->user, c->last, logged);
        } else {
            for (int tries = 0; tries < 8 && !(c->sub && atomic_load(&c->parked)); tries++) {
                if (!c->sub && !open_client(run, c))
                    break;
                step(run, c, 4 * logged + 16);
            }
            if (c->last != logged)
                fail(run, "user %llu: settled at %u, but the log holds %u",
                     (unsigned long long)c->user, c->last, logged);
        }
        if (c->sub)
            close_client(c);
    }
}

void nx_stress_defaults(nx_stress_t *cfg)
{
    *cfg =
        (nx_stress_t){.users = 48, .clients = 96, .events = 200000, .seconds = 3, .queue_max = 16};
}

int nx_stress_run(const nx_stress_t *cfg, nx_stress_result_t *res)
{
    memset(res, 0, sizeof(*res));
    if (cfg->users == 0 || cfg->users > MAX_USERS || cfg->clients > MAX_CLIENTS)
        return -1;
    run_t *run = calloc(1, sizeof(*run));
    if (!run)
        return -1;
    run->cfg = cfg;
    run->res = res;
    pthread_mutex_init(&run->fail_mu, NULL);
    notify_config_t hub_cfg = {.queue_max = cfg->queue_max, .max_streams = cfg->clients};
    run->hub = notify_hub_create(&hub_cfg);
    for (unsigned i = 0; i < cfg->clients; i++) {
        run->clients[i].user = i % cfg->users;
        run->clients[i].run = run;
    }
    int rc = -1;
    pthread_t pub, rd;
    if (!run->hub || pthread_create(&rd, NULL, reader, run) != 0)
        goto out;
    if (pthread_create(&pub, NULL, publisher, run) != 0) {
        atomic_store(&run->done, true);
        pthread_join(rd, NULL);
        goto out;
    }
    pthread_join(pub, NULL);
    pthread_join(rd, NULL);
    settle(run);
    rc = 0;
out:
    for (unsigned i = 0; i < cfg->clients; i++)
        if (run->clients[i].sub)
            close_client(&run->clients[i]);
    res->failures = atomic_load(&run->failures);
    notify_hub_destroy(run->hub);
    pthread_mutex_destroy(&run->fail_mu);
    free(run);
    return rc;
}
