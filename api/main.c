/* api/main.c -- the composition root: reads the configuration, creates the modules in
 * dependency order, runs the libuv loop until a signal, and shuts down in reverse.
 *
 * The loop thread owns housekeeping: the id-node lease (acquired, then renewed every
 * second; retried while Redis is away) and the signal handlers. Shutdown: stop accepting,
 * end every stream, let in-flight requests finish (up to --shutdown-grace), stop the stream
 * writers and wait until no stream is suspended, stop the HTTP threads, release the lease,
 * stop the embedded Redis, which flushes its AOF.
 */
#include "api/admin.h"
#include "api/api.h"
#include "api/config.h"
#include "api/log.h"
#include "api/publish_outcome.h"
#include "api/server.h"
#include "fanout/fanout.h"
#include "fanout/live.h"
#include "notify/notify.h"
#include "storage/storage.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <uv.h>

#define LEASE_RETRY_MS 500
/* Every second: after a reconnect (Redis may have lost its data) ids wait for the next
 * renewal, so this is how long id-minting requests may answer 503 after one. */
#define LEASE_RENEW_MS 1000
#define DRAIN_POLL_MS 20
#define STREAM_ROOM_SHARE 16 /* streams may take all connections but a sixteenth */

typedef struct tidings_s {
    api_config_t cfg;
    storage_embedded_t *embedded;
    storage_t *storage;
    fanout_t *fanout;
    notify_hub_t *hub;
    fanout_live_t *live;
    api_t *api;
    api_server_t *server;
    uv_loop_t loop;
    uv_signal_t sigint, sigterm;
    uv_timer_t lease_timer, drain_timer;
    uint64_t drain_deadline, suspended_logged;
    bool loop_ready, prepared, stopping, streams_released;
} tidings_t;

static void on_lease_timer(uv_timer_t *t)
{
    tidings_t *app = t->data;
    int rc = 0;
    if (!app->prepared) {
        rc = storage_prepare(app->storage);
        if (rc == 0)
            rc = storage_node_acquire(app->storage);
        if (rc == 0) {
            app->prepared = true;
            LOG(LOG_INFO, "storage", "redis ready; id node %d", storage_node_id(app->storage));
            if (app->fanout) { /* the consumer group exists now */
                fanout_start(app->fanout);
                LOG(LOG_INFO, "fanout", "engine started as consumer %s",
                    fanout_consumer(app->fanout));
            }
        }
    } else {
        int before = storage_node_id(app->storage);
        rc = storage_node_renew(app->storage);
        if (rc == 0 && before >= 0 && storage_node_id(app->storage) != before)
            LOG(LOG_WARN, "storage", "id node lease lost; now node %d",
                storage_node_id(app->storage));
    }
    if (rc)
        LOG_RATELIMITED(LOG_WARN, "storage", 0, "redis not ready (%s); retrying",
                        rc == -EAGAIN || rc == -ENOTCONN ? "unreachable" : strerror(-rc));
    uv_timer_start(t, on_lease_timer, app->prepared && rc == 0 ? LEASE_RENEW_MS : LEASE_RETRY_MS,
                   0);
}

static void close_all(tidings_t *app)
{
    uv_close((uv_handle_t *)&app->sigint, NULL);
    uv_close((uv_handle_t *)&app->sigterm, NULL);
    uv_close((uv_handle_t *)&app->lease_timer, NULL);
    uv_close((uv_handle_t *)&app->drain_timer, NULL);
    fanout_live_stop(app->live);
    app->live = NULL;
}

/* The live path's reports (it writes no log lines itself). */
static void on_live_error(void *arg, int err, const char *what)
{
    (void)arg;
    LOG_RATELIMITED(LOG_WARN, "live", 0, "%s (%s)", what, strerror(err < 0 ? -err : err));
}

/* Another process (or this one) revoked a token: forget this process's verifications of it. */
static void on_token_revoked(void *arg, uint64_t user, uint64_t token)
{
    api_auth_forget(arg, user, token);
}

/* Streams are file descriptors: take the hard limit rather than the usual 1024. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            LOG_ERRNO(LOG_WARN, "main", errno, "raising the open-files limit failed");
    }
}

/* The engine's report of a finished job: its duration goes to /metrics. */
static void on_job_done(void *arg, double seconds)
{
    api_t *api = arg;
    api_histogram_observe(&api->metrics.job_duration, &api_job_bounds, seconds);
}

static void on_fanout_stopped(void *arg)
{
    tidings_t *app = arg;
    app->fanout = NULL;
    close_all(app);
}

/* After the grace: libmicrohttpd aborts when stopped with a connection suspended, and a
 * writer thread must not touch a connection it freed. So the writers stop first (serving
 * what they hold: the streams notify_hub_close_all ended are resumed) and fibers may no
 * longer park (closed before the counts are read: a step that starts later cannot suspend
 * its connection after the count said none was), then every connection must have been
 * resumed. True when the daemon may stop. */
static bool streams_released(tidings_t *app)
{
    if (!app->streams_released) {
        app->streams_released = true;
        app->suspended_logged = uv_now(&app->loop);
        api_sse_stop_writers(app->api);
        api_suspends_close(app->api);
    }
    long long suspended = api_sse_suspended(app->api) + api_server_parked(app->server);
    if (suspended > 0 && uv_now(&app->loop) >= app->suspended_logged + 1000) {
        app->suspended_logged = uv_now(&app->loop);
        LOG(LOG_WARN, "main", "waiting for %lld suspended streams to resume", suspended);
    }
    return suspended <= 0;
}

static void on_drain_timer(uv_timer_t *t)
{
    tidings_t *app = t->data;
    long long left = api_server_in_flight(app->server);
    if (left > 0 && uv_now(&app->loop) < app->drain_deadline)
        return;
    if (left > 0 && !app->streams_released)
        LOG(LOG_WARN, "main", "%lld requests still running after the grace period", left);
    if (!streams_released(app))
        return; /* polled again */
    uv_timer_stop(t);
    /* HTTP threads first: after this nobody reads the engine's statistics. */
    api_server_stop(app->server);
    app->server = NULL;
    if (app->fanout)
        fanout_stop(app->fanout, app->cfg.shutdown_grace_ms, on_fanout_stopped, app);
    else
        close_all(app);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    tidings_t *app = sig->data;
    if (app->stopping) {
        LOG(LOG_WARN, "main", "second signal: stopping now");
        app->drain_deadline = 0;
        return;
    }
    app->stopping = true;
    LOG(LOG_INFO, "main", "%s: no new connections; finishing in-flight requests",
        strsignal(signum));
    api_server_quiesce(app->server);
    notify_hub_close_all(app->hub); /* every stream ends cleanly */
    app->drain_deadline = uv_now(&app->loop) + (uint64_t)app->cfg.shutdown_grace_ms;
    uv_timer_start(&app->drain_timer, on_drain_timer, 0, DRAIN_POLL_MS);
}

static int start(tidings_t *app)
{
    const char *url = app->cfg.redis;
    if (!url[0]) {
        app->embedded = storage_embedded_start(app->cfg.data_dir, app->cfg.redis_server,
                                               app->cfg.embedded_maxmemory_mb, &url);
        if (!app->embedded) {
            LOG_ERRNO(LOG_ERROR, "storage", errno, "embedded %s in %s failed to start",
                      app->cfg.redis_server, app->cfg.data_dir);
            return -1;
        }
        LOG(LOG_INFO, "storage", "embedded redis at %s (AOF on, data in %s)", url,
            app->cfg.data_dir);
    }
    storage_config_t *scfg = &app->cfg.storage;
    storage_clock_offset_set((uint64_t)app->cfg.clock_offset_ms);
    scfg->url = url;
    scfg->pool_size = app->cfg.threads * 2 + 4; /* every HTTP thread may hold two at once */
    app->storage = storage_create(scfg);
    if (!app->storage) {
        char shown[sizeof(app->cfg.redis)];
        log_redact_url(url, shown, sizeof(shown));
        LOG(LOG_ERROR, "storage", "bad redis url %s", shown);
        return -1;
    }
    app->api = calloc(1, sizeof(*app->api));
    if (!app->api || api_auth_create(app->api) != 0)
        return -1;
    app->api->cfg = &app->cfg;
    app->api->storage = app->storage;
    app->api->publish_doubts = api_publish_doubts_start(app->storage);
    if (!app->api->publish_doubts)
        return -1;
    /* A stream is a connection: leave room beside them for requests. */
    size_t connections = api_connection_limit((size_t)app->cfg.max_connections);
    size_t stream_room = connections - connections / STREAM_ROOM_SHARE;
    if (app->cfg.notify.max_streams > stream_room) {
        LOG(LOG_INFO, "main",
            "at most %zu event streams: %zu connections are possible with the "
            "open-files limit and --max-connections",
            stream_room, connections);
        app->cfg.notify.max_streams = stream_room;
    }
    app->hub = notify_hub_create(&app->cfg.notify);
    if (!app->hub || api_sse_create(app->api) != 0)
        return -1;
    app->api->hub = app->hub;

    uv_loop_init(&app->loop);
    uv_timer_init(&app->loop, &app->lease_timer);
    uv_timer_init(&app->loop, &app->drain_timer);
    uv_signal_init(&app->loop, &app->sigint);
    uv_signal_init(&app->loop, &app->sigterm);
    app->lease_timer.data = app->drain_timer.data = app;
    app->sigint.data = app->sigterm.data = app;
    uv_signal_start(&app->sigint, on_signal, SIGINT);
    uv_signal_start(&app->sigterm, on_signal, SIGTERM);
    app->loop_ready = true;
    app->cfg.live.on_error = on_live_error;
    app->cfg.live.on_revoke = on_token_revoked;
    app->cfg.live.hook_arg = app->api;
    app->live = fanout_live_start(&app->cfg.live, scfg, app->storage, app->hub);
    if (!app->live)
        return -1;
    if (app->cfg.engine) {
        app->cfg.fanout.on_job_done = on_job_done;
        app->cfg.fanout.hook_arg = app->api;
        app->cfg.fanout.storage = app->storage;
        app->fanout = fanout_create(&app->loop, scfg, &app->cfg.fanout);
        if (!app->fanout)
            return -1;
        app->api->fanout = fanout_stats(app->fanout);
    }
    on_lease_timer(&app->lease_timer); /* try Redis before taking requests */

    app->server = api_server_start(app->api);
    if (!app->server)
        return -1;
    LOG(LOG_INFO, "main", "tidings %s listening on http://%s (port %d, %d threads)",
        TIDINGS_VERSION, app->cfg.listen, api_server_port(app->server), app->cfg.threads);
    return 0;
}

static void stop(tidings_t *app)
{
    if (app->api)
        api_sse_stop_writers(app->api);
    api_server_stop(app->server);
    if (app->api)
        api_publish_doubts_stop(app->api->publish_doubts); /* before the storage it uses */
    if (app->storage) {
        storage_node_release(app->storage);
        storage_destroy(app->storage);
    }
    if (app->api) {
        api_auth_destroy(app->api);
        api_sse_destroy(app->api);
        free(app->api);
    }
    notify_hub_destroy(app->hub);
    storage_embedded_stop(app->embedded);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "admin") == 0)
        return api_admin_main(argc - 1, argv + 1);
    tidings_t app;
    memset(&app, 0, sizeof(app));
    signal(SIGPIPE, SIG_IGN); /* a peer that hangs up is an error code, not a death */
    raise_fd_limit();
    api_config_defaults(&app.cfg);
    int rc = api_config_parse(&app.cfg, argc, argv);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    log_setup(app.cfg.log_level, app.cfg.log_json);

    rc = start(&app);
    if (app.loop_ready) {
        if (rc != 0 && app.fanout)
            fanout_stop(app.fanout, 0, on_fanout_stopped, &app);
        else if (rc != 0)
            close_all(&app);
        uv_run(&app.loop, UV_RUN_DEFAULT);
        uv_loop_close(&app.loop);
    }
    stop(&app);
    LOG(LOG_INFO, "main", rc == 0 ? "stopped" : "failed to start");
    return rc == 0 ? 0 : 1;
}
