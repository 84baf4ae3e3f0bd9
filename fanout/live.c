/* fanout/live.c -- the live path's receiving end on a thread of its own.
 *
 * A post to ten thousand connected followers arrives as ten messages of a thousand users
 * each; handing them to the hub means a thousand queue pushes and stream resumes per message.
 * On the engine's loop that work delayed the engine's next chunk (a step of the very fan-out
 * being delivered), so the subscriber gets its own loop and thread. The hub is thread-safe.
 *
 * Background work for the streams runs here too, spread so that it never lands at once:
 * heartbeats go to one slice of the streams per tick (HEARTBEAT_SLICES per period), and the
 * online marks (event log and presence) of one slice of the users are renewed per tick
 * (ONLINE_SLICES per refresh period, itself well within the grace and the retention). Ten thousand streams woken at once, or ten thousand
 * users renewed in one synchronous batch, had been tens of milliseconds of CPU landing on
 * whatever post was being delivered.
 *
 * Nothing on this loop waits for Redis: the online refresh is asynchronous, and the next
 * tick sends none while one is in flight (a paused Redis answers nothing for seconds; a
 * synchronous refresh had held the loop, and with it every heartbeat, for its timeout). The
 * readiness probe runs here too, for the same reason: /readyz reads its outcome.
 *
 * Celebrities' announcements are handled by fanout/live_celebrity.c.
 */
#include "fanout/live_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#define HEARTBEAT_SLICES 16     /* heartbeats are spread over this many ticks per period */
#define ONLINE_SLICES 30        /* so is the online refresh */
#define ONLINE_REFRESH_MS 30000 /* at most; a third of the grace or retention when shorter */
#define DEFAULT_HEARTBEAT_MS 15000
#define DEFAULT_GRACE_MS 300000
#define DEFAULT_RETENTION_MS 3600000
#define REPORT_MAX 256

struct fanout_live_s {
    fanout_live_config_t cfg;
    uv_loop_t loop;
    uv_thread_t thread;
    uv_async_t stop;
    uv_sem_t started;
    uv_timer_t heartbeat_timer, online_timer;
    uv_timer_t ready_timer;              /* the readiness probe (storage/readiness.c) */
    unsigned heartbeat_tick;             /* which slice of the streams the next heartbeat takes */
    unsigned online_tick;                /* which slice of the users the next refresh takes */
    bool refreshing;                     /* an online refresh awaits its answer */
    const storage_config_t *storage_cfg; /* until started is posted */
    storage_t *storage;
    notify_hub_t *hub;
    storage_async_t *sub;
    fanout__celebrity_t *celebrity;
    fanout__counts_t *counts;
    int status;
};

void fanout_live_config_defaults(fanout_live_config_t *cfg)
{
    *cfg = (fanout_live_config_t){.heartbeat_ms = DEFAULT_HEARTBEAT_MS,
                                  .stream_grace_ms = DEFAULT_GRACE_MS,
                                  .stream_retention_ms = DEFAULT_RETENTION_MS};
}

void fanout__live_report(const fanout_live_config_t *cfg, int err, const char *fmt, ...)
{
    if (!cfg->on_error)
        return;
    char what[REPORT_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    cfg->on_error(cfg->hook_arg, err, what);
}

/* ---- the subscriber's callbacks ------------------------------------------------------ */

static void on_event(void *arg, uint64_t user, const char *id, storage_event_kind_t kind,
                     const char *ref)
{
    fanout_live_t *l = arg;
    if (kind == STORAGE_EVENT_COUNTS_DUE) { /* no event: a flush to run (live_counts.c) */
        fanout__counts_due(l->counts, user, strtoull(ref, NULL, 10));
        return;
    }
    notify_event_t *e = notify_event_new(id, (int)kind, ref);
    if (e) {
        notify_hub_publish(l->hub, user, e);
        notify_event_unref(e);
    }
}

static void on_batch(void *arg, bool begin)
{
    notify_hub_batch(((fanout_live_t *)arg)->hub, begin);
}

static void on_subscribed(void *arg, const char *channel)
{
    fanout_live_t *l = arg;
    notify_hub_subscribed(l->hub);
    fanout__celebrity_on_subscribed(l->celebrity, channel);
}

static void on_announce(void *arg, const char *channel, const storage_announcement_t *msg)
{
    fanout__celebrity_on_message(((fanout_live_t *)arg)->celebrity, channel, msg);
}

/* ---- heartbeats and online marks ---------------------------------------------------- */

static void on_heartbeat(uv_timer_t *t)
{
    fanout_live_t *l = t->data;
    notify_hub_heartbeat(l->hub, l->heartbeat_tick++, HEARTBEAT_SLICES);
}

static void on_refreshed(void *arg, int status)
{
    fanout_live_t *l = arg;
    l->refreshing = false;
    if (status && status != -ECANCELED)
        fanout__live_report(&l->cfg, status, "refreshing online users failed");
}

/* Keeps connected users marked online, so the engine logs and publishes their events. A
 * slice whose turn comes while the previous refresh is unanswered waits for the next tick
 * (the refresh period is a third of the grace or retention, so a slow Redis costs no mark). */
static void on_online_timer(uv_timer_t *t)
{
    fanout_live_t *l = t->data;
    if (l->refreshing || !l->sub)
        return;
    unsigned slice = l->online_tick++ % ONLINE_SLICES;
    size_t n = notify_hub_users(l->hub, slice, ONLINE_SLICES, NULL, 0);
    uint64_t *users = malloc((n ? n : 1) * sizeof(*users));
    if (!users)
        return;
    n = notify_hub_users(l->hub, slice, ONLINE_SLICES, users, n);
    storage_events_keep_t keep = {.retention_ms = l->cfg.stream_retention_ms,
                                  .grace_ms = l->cfg.stream_grace_ms};
    int rc = n ? storage_events_refresh_async(l->sub, users, n, &keep, on_refreshed, l) : 0;
    if (n && rc == 0)
        l->refreshing = true;
    else if (rc)
        fanout__live_report(&l->cfg, rc, "refreshing %zu online users failed", n);
    free(users);
}

/* Keeps what /readyz says current, so that asking it never waits for Redis. */
static void on_ready_timer(uv_timer_t *t)
{
    fanout_live_t *l = t->data;
    if (l->sub)
        (void)storage_readiness_probe(l->sub, l->storage); /* a failure is recorded there */
}

static void start_timers(fanout_live_t *l)
{
    uv_timer_start(&l->ready_timer, on_ready_timer, 0, STORAGE_READINESS_PROBE_MS);
    uint64_t beat = (uint64_t)l->cfg.heartbeat_ms / HEARTBEAT_SLICES;
    uv_timer_start(&l->heartbeat_timer, on_heartbeat, beat ? beat : 1, beat ? beat : 1);
    /* Refresh well within the grace and the retention, so a connected user never lapses
     * offline and their log never lapses. */
    uint64_t shorter = (uint64_t)l->cfg.stream_grace_ms < (uint64_t)l->cfg.stream_retention_ms
                           ? (uint64_t)l->cfg.stream_grace_ms
                           : (uint64_t)l->cfg.stream_retention_ms;
    uint64_t refresh = shorter / 3 < ONLINE_REFRESH_MS ? shorter / 3 : ONLINE_REFRESH_MS;
    uint64_t tick = refresh / ONLINE_SLICES ? refresh / ONLINE_SLICES : 1;
    uv_timer_start(&l->online_timer, on_online_timer, tick, tick);
}

/* ---- the thread ---------------------------------------------------------------------- */

static void close_handles(fanout_live_t *l)
{
    fanout__celebrity_close(l->celebrity);
    fanout__counts_close(l->counts);
    uv_close((uv_handle_t *)&l->heartbeat_timer, NULL);
    uv_close((uv_handle_t *)&l->online_timer, NULL);
    uv_close((uv_handle_t *)&l->ready_timer, NULL);
    uv_close((uv_handle_t *)&l->stop, NULL);
}

static void on_stop(uv_async_t *a)
{
    fanout_live_t *l = a->data;
    if (l->sub)
        storage_async_close(l->sub, NULL, NULL);
    l->sub = NULL;
    close_handles(l);
}

static void run(void *arg)
{
    fanout_live_t *l = arg;
    storage_sub_callbacks_t cb = {.message = on_event,
                                  .subscribed = on_subscribed,
                                  .batch = on_batch,
                                  .announce = on_announce,
                                  .arg = l};
    l->celebrity = fanout__celebrity_create(&l->loop, &l->cfg, l->storage, l->hub);
    l->counts = fanout__counts_create(&l->loop, &l->cfg);
    l->sub = l->celebrity && l->counts ? storage_sub_create(&l->loop, l->storage_cfg, &cb) : NULL;
    fanout__celebrity_attach(l->celebrity, l->sub);
    fanout__counts_attach(l->counts, l->sub);
    l->status = l->sub ? 0 : -1;
    uv_sem_post(&l->started);
    if (l->status == 0) {
        start_timers(l);
        uv_run(&l->loop, UV_RUN_DEFAULT);
    }
}

fanout_live_t *fanout_live_start(const fanout_live_config_t *cfg,
                                 const storage_config_t *storage_cfg, storage_t *storage,
                                 notify_hub_t *hub)
{
    fanout_live_t *l = calloc(1, sizeof(*l));
    if (!l || uv_loop_init(&l->loop) != 0) {
        free(l);
        return NULL;
    }
    l->cfg = *cfg;
    l->storage_cfg = storage_cfg;
    l->storage = storage;
    l->hub = hub;
    uv_async_init(&l->loop, &l->stop, on_stop);
    l->stop.data = l;
    uv_timer_init(&l->loop, &l->heartbeat_timer);
    uv_timer_init(&l->loop, &l->online_timer);
    uv_timer_init(&l->loop, &l->ready_timer);
    l->heartbeat_timer.data = l->online_timer.data = l->ready_timer.data = l;
    uv_sem_init(&l->started, 0);
    if (uv_thread_create(&l->thread, run, l) != 0) {
        l->status = -1;
    } else {
        uv_sem_wait(&l->started);
        if (l->status != 0)
            uv_thread_join(&l->thread);
    }
    uv_sem_destroy(&l->started);
    if (l->status != 0) {
        close_handles(l);
        uv_run(&l->loop, UV_RUN_DEFAULT);
        uv_loop_close(&l->loop);
        fanout__celebrity_free(l->celebrity);
        fanout__counts_free(l->counts);
        free(l);
        return NULL;
    }
    return l;
}

void fanout_live_stop(fanout_live_t *l)
{
    if (!l)
        return;
    uv_async_send(&l->stop);
    uv_thread_join(&l->thread);
    uv_loop_close(&l->loop);
    fanout__celebrity_free(l->celebrity);
    fanout__counts_free(l->counts);
    free(l);
}
