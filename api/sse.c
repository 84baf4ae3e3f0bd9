/* api/sse.c -- GET /v1/stream: the notify hub adapted to libmicrohttpd.
 *
 * A stream is a callback response. Its reader asks the subscriber what to do next: send
 * a queued event (rendered here: a feed event is the hydrated post, a notification the
 * grouped notification, as the REST API shows them), read the user's event log after the
 * cursor (catch-up), or park: the reader suspends the connection and returns 0, and the
 * hub's wake hook resumes it when an event is queued. A parked stream holds no thread and
 * costs its connection's memory only. The reader's Redis reads run as a fiber that parks
 * the same way while Redis answers (run_fill), so no HTTP thread waits on Redis.
 *
 * The fast path: a parked stream's connection is suspended, so nothing of libmicrohttpd
 * touches its socket and everything it had to send is sent (it asks the reader for more
 * only then). A heartbeat or a live feed or delete event for it is written straight to
 * the socket by a writer thread (api/stream_writers.c); the stream stays parked. Whatever
 * the fast path cannot finish (the socket is full, a catch-up, a notification to read,
 * the end) it hands back by resuming the connection, with any unsent bytes left in the
 * stream's buffer for the reader. That is why the body is close-delimited, not chunked:
 * bytes written by either path read the same. It saves, per event, libmicrohttpd's resume
 * (an eventfd write, a walk over every suspended connection of the worker, a pass of its
 * state machine); with ten thousand followers that was a quarter of the server's CPU.
 * Heartbeats take the fast path too: a send to a peer that is gone fails and ends the
 * stream as before, and libmicrohttpd restarts a connection's idle timer on resume, so
 * a stream written only this way is not timed out when it next needs the reader.
 *
 * Rendered feed events are cached for a couple of seconds, so a post fanned out to ten
 * thousand connected followers is hydrated once, not ten thousand times. The streams the
 * fast path finds the cache empty for wait in api/render_waits.c for that one read and go
 * on with the fast path: handed back to the reader, each had read the post itself.
 */
#include "api/api.h"
#include "api/address_counts.h"
#include "api/log.h"
#include "api/render_waits.h"
#include "api/stream_writers.h"
#include "storage/redis/redis.h"

#include <errno.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define RETRY_MS 3000
#define CATCHUP_BATCH 256
#define STREAM_BLOCK 256 /* MHD allocates this per stream up front: idle streams stay small */
#define CACHE_SLOTS 1024
#define CACHE_TTL_MS 2000
#define FLUSH_BYTES 16384 /* the fast path sends once this much is rendered */
#define OUT_INITIAL 1024  /* a stream's output buffer when it has something to send */

/* ---- the render cache ------------------------------------------------------------------- */

typedef struct cache_entry_s {
    char ref[96];
    char *json; /* owned */
    uint64_t expires_ms;
} cache_entry_t;

struct api_render_cache_s {
    pthread_mutex_t mu;
    cache_entry_t slots[CACHE_SLOTS];
};

static uint64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void serve(void *item);
static int fill_feed(void *arg, const char *ref);
static void rendered(void *waiter, bool ok);

int api_sse_create(api_t *api)
{
    api->render_cache = calloc(1, sizeof(*api->render_cache));
    api->stream_addresses = api_address_counts_create();
    if (!api->render_cache || !api->stream_addresses)
        return -ENOMEM;
    pthread_mutex_init(&api->render_cache->mu, NULL);
    if (api->cfg->stream_writers > 0) {
        api->stream_writers = stream_writers_start(api->cfg->stream_writers, serve);
        render_waits_hooks_t hooks = {fill_feed, rendered, api};
        if (api->stream_writers)
            api->render_waits = render_waits_start(&hooks);
        if (!api->render_waits)
            return -errno;
    }
    return 0;
}

void api_sse_stop_writers(api_t *api)
{
    render_waits_stop(api->render_waits); /* first: it hands its waiters to the writers */
    stream_writers_stop(api->stream_writers);
}

long long api_sse_suspended(const api_t *api)
{
    return atomic_load(&api->metrics.streams_suspended);
}

void api_sse_destroy(api_t *api)
{
    render_waits_destroy(api->render_waits);
    api->render_waits = NULL;
    stream_writers_destroy(api->stream_writers);
    api->stream_writers = NULL;
    api_address_counts_destroy(api->stream_addresses);
    api->stream_addresses = NULL;
    struct api_render_cache_s *c = api->render_cache;
    if (!c)
        return;
    for (size_t i = 0; i < CACHE_SLOTS; i++)
        free(c->slots[i].json);
    pthread_mutex_destroy(&c->mu);
    free(c);
    api->render_cache = NULL;
}

static cache_entry_t *slot_of(struct api_render_cache_s *c, const char *ref)
{
    uint64_t h = 1469598103934665603ull;
    for (const char *p = ref; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return &c->slots[h % CACHE_SLOTS];
}

/* Returns a new copy of the cached rendering of ref, or NULL. */
static char *cache_get(struct api_render_cache_s *c, const char *ref)
{
    cache_entry_t *e = slot_of(c, ref);
    char *json = NULL;
    pthread_mutex_lock(&c->mu);
    if (e->json && e->expires_ms > monotonic_ms() && strcmp(e->ref, ref) == 0)
        json = strdup(e->json);
    pthread_mutex_unlock(&c->mu);
    return json;
}

static void cache_put(struct api_render_cache_s *c, const char *ref, const char *json)
{
    cache_entry_t *e = slot_of(c, ref);
    char *copy = strdup(json);
    if (!copy)
        return;
    pthread_mutex_lock(&c->mu);
    free(e->json);
    e->json = copy;
    snprintf(e->ref, sizeof(e->ref), "%s", ref);
    e->expires_ms = monotonic_ms() + CACHE_TTL_MS;
    pthread_mutex_unlock(&c->mu);
}

/* Drops the renderings of a deleted post ("<post>" and its "<post>:<reposter>" forms). */
static void cache_forget_post(struct api_render_cache_s *c, const char *post)
{
    size_t n = strlen(post);
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < CACHE_SLOTS; i++) {
        cache_entry_t *e = &c->slots[i];
        if (e->json && strncmp(e->ref, post, n) == 0 && (e->ref[n] == '\0' || e->ref[n] == ':')) {
            free(e->json);
            e->json = NULL;
        }
    }
    pthread_mutex_unlock(&c->mu);
}

/* ---- one stream ------------------------------------------------------------------------ */

/* A stream that starts with a reset: at the event id id, "since" after (the client's id,
 * or ""). */
typedef struct stream_reset_s {
    char id[NOTIFY_ID_MAX], after[NOTIFY_ID_MAX];
} stream_reset_t;

typedef struct stream_s {
    api_t *api;
    struct MHD_Connection *conn;
    int fd;          /* the connection's socket, for the fast path; -1: none */
    unsigned writer; /* which writer thread serves it */
    notify_sub_t *sub;
    uint64_t user;
    uint64_t token; /* the token it was opened with (a ticket's issuing token); 0: none */
    char *out;      /* bytes rendered and not yet sent */
    size_t out_len, out_off, out_cap;
    bool started;
    bool failed;          /* the fast path could not render an event */
    notify_event_t *held; /* taken by the fast path, which would have had to read Redis */
    struct storage_redis_fiber_s *fiber; /* the reader's step, while it waits for Redis */
    int fill;                            /* how the reader's last step ended (fill_t) */
    char catchup_cursor[NOTIFY_ID_MAX];  /* non-empty: a catch-up after it is due (a fiber's) */
    bool peer_gone;                      /* the fast path's send failed: the client went away */
    struct stream_reset_s *reset;        /* owned: the reset to start with, or NULL (rare: a
                                          * stream's idle memory is what 10,000 of them cost) */
    api_address_t client;
    bool holds_address; /* counts towards its client address's --max-streams-per-address */
    bool told_revoked;  /* its final revoked event is rendered */
} stream_t;

/* Every suspend and resume goes through these two: shutdown waits until none is
 * suspended, since libmicrohttpd must not be stopped with a connection suspended. */
static void park(void *arg)
{
    stream_t *st = arg;
    atomic_fetch_add(&st->api->metrics.streams_suspended, 1);
    MHD_suspend_connection(st->conn);
}

/* Counted down after the resume: by then the stream may be freed (api is not). */
static void resume(stream_t *st)
{
    api_t *api = st->api;
    MHD_resume_connection(st->conn);
    atomic_fetch_sub(&api->metrics.streams_suspended, 1);
}

static void wake(void *arg)
{
    stream_t *st = arg;
    /* Parked means suspended: a writer may take it, unless the writers are stopping. */
    if (st->fd < 0 || !st->api->stream_writers ||
        !stream_writers_push(st->api->stream_writers, st->writer, st))
        resume(st);
}

/* Makes room for more bytes and a NUL after what out holds. */
static bool reserve(stream_t *st, size_t more)
{
    if (st->out && st->out_cap - st->out_len > more)
        return true;
    size_t cap = st->out_cap ? st->out_cap : OUT_INITIAL;
    while (cap <= st->out_len + more)
        cap *= 2;
    char *grown = realloc(st->out, cap);
    if (!grown)
        return false;
    atomic_fetch_add(&st->api->metrics.stream_buffer_bytes, (long long)(cap - st->out_cap));
    st->out = grown;
    st->out_cap = cap;
    return true;
}

/* Everything rendered was sent: give the buffer back. An idle stream then holds none (10,000
 * idle streams held 10 MB that way), and one long post does not cost every follower's
 * stream its size for as long as the stream stays open. The allocator keeps freed blocks
 * per thread, so a busy stream gets one back at little cost. */
static void drained(stream_t *st)
{
    st->out_len = st->out_off = 0;
    if (!st->out)
        return;
    atomic_fetch_sub(&st->api->metrics.stream_buffer_bytes, (long long)st->out_cap);
    free(st->out);
    st->out = NULL;
    st->out_cap = 0;
}

static bool append(stream_t *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool append(stream_t *st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !reserve(st, (size_t)n))
        return false;
    va_start(ap, fmt);
    vsnprintf(st->out + st->out_len, st->out_cap - st->out_len, fmt, ap);
    va_end(ap);
    st->out_len += (size_t)n;
    return true;
}

/* Appends the strings of a NULL-terminated list: the per-event path, where vsnprintf's
 * parsing cost more than the copying. */
static bool append_strs(stream_t *st, const char *const *strs)
{
    size_t len[8], total = 0, k = 0;
    for (; k < 8 && strs[k]; k++)
        total += len[k] = strlen(strs[k]);
    if (!reserve(st, total))
        return false;
    for (size_t i = 0; i < k; i++) {
        memcpy(st->out + st->out_len, strs[i], len[i]);
        st->out_len += len[i];
    }
    st->out[st->out_len] = '\0';
    return true;
}

/* The renderers tell "gone" (0 with *json NULL: the id alone is sent) from a failure (a
 * negative errno: Redis could not be read, or no memory), which must never pass for gone. */

/* Reads the JSON of a feed event "<post>[:<reposter>]" from Redis into *json (new; NULL
 * when the post is gone) and caches it. */
static int hydrate_feed(api_t *api, const char *ref, char **json)
{
    char *colon;
    uint64_t post = strtoull(ref, &colon, 10),
             reposter = *colon == ':' ? strtoull(colon + 1, NULL, 10) : 0;
    api_hydrate_t opt = {.reposted_by = &reposter};
    json_t *items = json_array();
    *json = NULL;
    int rc = items ? api_posts_hydrate(api, &post, 1, &opt, items) : -ENOMEM;
    if (rc == 0 && json_array_size(items) == 1) {
        *json = json_dumps(json_array_get(items, 0), JSON_COMPACT);
        if (*json)
            cache_put(api->render_cache, ref, *json);
        else
            rc = -ENOMEM;
    }
    json_decref(items);
    return rc;
}

/* render_waits' fill: the cache has ref's rendering after it, unless the post is gone. */
static int fill_feed(void *arg, const char *ref)
{
    api_t *api = arg;
    char *json = cache_get(api->render_cache, ref);
    int rc = json ? 0 : hydrate_feed(api, ref, &json);
    free(json);
    return rc;
}

/* The JSON of a feed event "<post>[:<reposter>]" into *json (new); -EWOULDBLOCK when it
 * is not cached and cached_only says not to read Redis for it. */
static int render_feed(stream_t *st, const char *ref, bool fresh, bool cached_only, char **json)
{
    /* A replayed event may be old: render it fresh, so a post deleted since is not sent. */
    *json = fresh ? NULL : cache_get(st->api->render_cache, ref);
    if (*json)
        return 0;
    if (cached_only)
        return -EWOULDBLOCK;
    return hydrate_feed(st->api, ref, json);
}

/* The JSON of the notification group into *json (new). */
static int render_notification(stream_t *st, const char *group, char **json)
{
    storage_notifications_t page = {0};
    storage_notification_t one;
    *json = NULL;
    int rc = storage_notification_get(st->api->storage, st->user, group, &one);
    if (rc)
        return rc == -ENOENT ? 0 : rc; /* undone since, or trimmed: gone */
    page.items = &one;
    page.n = 1;
    json_t *items = json_array();
    rc = items ? api_notices_json(st->api, &page, items) : -ENOMEM;
    if (rc == 0 && json_array_size(items) == 1 &&
        !(*json = json_dumps(json_array_get(items, 0), JSON_COMPACT)))
        rc = -ENOMEM;
    json_decref(items);
    return rc;
}

/* The markers of a marker event into *json (new), or NULL for the streams of the device
 * that moved them (opened with that token): it knows, and its id moves on alone. */
static int render_marker(stream_t *st, const char *ref, char **json)
{
    uint64_t token;
    storage_markers_t m;
    *json = NULL;
    if (!storage_marker_event_parse(ref, &token, &m) || (token && token == st->token))
        return 0;
    json_t *obj = api_markers_json(&m);
    *json = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    return *json ? 0 : -ENOMEM;
}

/* A stream's last event when its token is revoked (openapi.yaml's StreamRevoked). */
#define REVOKED_EVENT                                                                              \
    "event: revoked\ndata: {\"reason\":\"the token this stream was opened with was "               \
    "revoked\"}\n\n"

/* The SSE "event:" name of each kind a stream shows (the one table of them). */
static const char *const event_names[] = {
    [STORAGE_EVENT_FEED] = "feed",
    [STORAGE_EVENT_DELETE] = "delete",
    [STORAGE_EVENT_NOTIFICATION] = "notification",
    [STORAGE_EVENT_RESET] = "reset",
    [STORAGE_EVENT_NOTIFICATION_REMOVED] = "notification_removed",
    [STORAGE_EVENT_MARKER] = "marker",
    [STORAGE_EVENT_COUNTS] = "counts",
};

/* {"group_key": key} into *json (new): what a notification_removed event carries. */
static int render_group_removed(const char *key, char **json)
{
    json_t *obj = json_pack("{s:s}", "group_key", key);
    *json = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    return *json ? 0 : -ENOMEM;
}

/* Frames one event: 0, or -EWOULDBLOCK when cached_only and the event needs Redis (nothing
 * is framed), or another negative errno when the stream must end. An event that could not
 * be rendered ends it without its id: the client resumes before it and gets it then. */
static int render_event(stream_t *st, const notify_event_t *ev, bool cached_only)
{
    if (ev->kind == NOTIFY_KIND_HEARTBEAT)
        return append_strs(st, (const char *const[]){": heartbeat\n\n", NULL}) ? 0 : -ENOMEM;
    char *json = NULL;
    int rc = 0;
    storage_event_kind_t kind = (storage_event_kind_t)ev->kind; /* the name it is sent as */
    switch (kind) {
    case STORAGE_EVENT_RESET: /* ref: the last id the client saw, "" when not to be told */
        if (cached_only)
            return -EWOULDBLOCK;
        rc = api_stream_reset_json(st->api, st->user, ev->ref, ev->id, &json);
        break;
    case STORAGE_EVENT_FEED:
        rc = render_feed(st, ev->ref, ev->from_log, cached_only, &json);
        if (rc == -EWOULDBLOCK)
            return rc;
        break;
    case STORAGE_EVENT_NOTIFICATION:
        if (cached_only)
            return -EWOULDBLOCK;
        rc = render_notification(st, ev->ref, &json);
        if (rc == 0 && !json) { /* gone by now: the client drops the row of that key */
            kind = STORAGE_EVENT_NOTIFICATION_REMOVED;
            rc = render_group_removed(ev->ref, &json);
        }
        break;
    case STORAGE_EVENT_NOTIFICATION_REMOVED:
        rc = render_group_removed(ev->ref, &json);
        break;
    case STORAGE_EVENT_MARKER:
        rc = render_marker(st, ev->ref, &json);
        break;
    case STORAGE_EVENT_COUNTS: /* the count is in the entry: nothing to read */
        json = malloc(64);
        if (json)
            snprintf(json, 64, "{\"notifications_unread\":%lld}", strtoll(ev->ref, NULL, 10));
        else
            rc = -ENOMEM;
        break;
    case STORAGE_EVENT_DELETE:
        cache_forget_post(st->api->render_cache, ev->ref);
        json = malloc(64);
        if (json)
            snprintf(json, 64, "{\"id\":\"%.40s\"}", ev->ref);
        break;
    case STORAGE_EVENT_UNKNOWN:
    case STORAGE_EVENT_OPEN:
    case STORAGE_EVENT_COUNTS_DUE: /* never logged nor queued */
        break;                     /* no data: the id alone moves on */
    }
    if (rc) {
        LOG_RATELIMITED(LOG_WARN, "sse", 0,
                        "rendering event %s (%s) for user %llu failed (%d); ending the stream",
                        ev->id, ev->ref, (unsigned long long)st->user, rc);
        return rc;
    }
    if (ev->kind != STORAGE_EVENT_RESET) { /* a reset's id is the log's end: no delivery */
        unsigned long long ms = strtoull(ev->id, NULL, 10);
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        double lag =
            ((double)now.tv_sec * 1000.0 + (double)now.tv_nsec / 1e6 - (double)ms) / 1000.0;
        api_histogram_observe(&st->api->metrics.stream_delivery, &api_delivery_bounds, lag);
    }
    /* Gone since (a deleted post, a notification undone): the id still moves on. */
    bool ok =
        json ? append_strs(st, (const char *const[]){"id: ", ev->id, "\nevent: ", event_names[kind],
                                                     "\ndata: ", json, "\n\n", NULL})
             : append_strs(st, (const char *const[]){"id: ", ev->id, "\n\n", NULL});
    free(json);
    return ok ? 0 : -ENOMEM;
}

/* The reader's render, which may read Redis: false when the stream must end. */
static bool render(stream_t *st, const notify_event_t *ev)
{
    return render_event(st, ev, false) == 0;
}

/* How long a user's log and presence outlive their last stream (--stream-retention,
 * --stream-grace-ms). */
static storage_events_keep_t keep_of(const api_t *api)
{
    return (storage_events_keep_t){.retention_ms = api->cfg->live.stream_retention_ms,
                                   .grace_ms = api->cfg->live.stream_grace_ms};
}

/* The log lost events after cursor: the stream goes on from the log's end with a reset
 * (into *reset, new; what to refetch is judged against cursor), as a resume after cursor
 * does on connect (api_stream_get). A log that is gone is made again, and one that ends
 * before the cursor (Redis lost its newest entries) is lifted, its ids above the cursor.
 * Should the log still end at or before the cursor, no reset could come after what the
 * stream sent: -ESTALE ends the stream, and the client's resume gets its reset there. */
static int reset_from_log(stream_t *st, const char *cursor, notify_event_t **reset)
{
    bool was_online = false;
    char tail[STORAGE_EVENT_ID_MAX];
    *reset = NULL;
    storage_events_keep_t keep = keep_of(st->api);
    int rc = storage_events_online(st->api->storage, st->user, &keep, cursor, &was_online, tail);
    if (rc == 0 && notify_id_cmp(tail, cursor) <= 0)
        rc = -ESTALE;
    if (rc == 0 && !(*reset = notify_event_new(tail, STORAGE_EVENT_RESET, cursor)))
        rc = -ENOMEM;
    return rc;
}

/* Reads the log after cursor and hands it to the subscriber. */
static bool catch_up(stream_t *st, const char *cursor)
{
    /* No more than the queue holds: it is empty now (notify_sub_next saw to that). */
    size_t batch = notify_hub_queue_max(st->api->hub);
    if (batch > CATCHUP_BATCH)
        batch = CATCHUP_BATCH;
    storage_event_t *events = calloc(batch, sizeof(*events));
    notify_event_t *made[CATCHUP_BATCH];
    size_t n = 0, m = 0;
    bool trimmed = false;
    int rc = events ? storage_events_since(st->api->storage, st->user, cursor, batch, events, &n,
                                           &trimmed)
                    : -ENOMEM;
    if (rc == 0 && trimmed) {
        /* The log lost events after the cursor (to its cap; or it is gone, or went back):
         * what a resume after the cursor does on connect, without the reconnect. */
        rc = reset_from_log(st, cursor, &made[0]);
        m = made[0] ? 1 : 0;
        n = 0;
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (events[i].kind == STORAGE_EVENT_OPEN)
            continue; /* the log's first entry, no event */
        if ((made[m] = notify_event_new(events[i].id, (int)events[i].kind, events[i].ref)) != NULL)
            made[m++]->from_log = true;
    }
    if (rc == 0)
        notify_sub_catchup_done(st->sub, made, m, n == batch);
    for (size_t i = 0; i < m; i++)
        notify_event_unref(made[i]);
    free(events);
    if (rc)
        LOG_RATELIMITED(LOG_WARN, "sse", 0, "catch-up for user %llu failed (%d); ending stream",
                        (unsigned long long)st->user, rc);
    return rc == 0;
}

/* ---- the reader: what libmicrohttpd asks for, and the Redis work it takes ------------------ */

/* One step of the reader's work, whose outcome it then acts on. */
typedef enum {
    FILL_MORE,   /* something was rendered, or there is more to do */
    FILL_PARKED, /* nothing to send: the hub parked the stream (suspended) */
    FILL_END,    /* the stream is over */
    FILL_ERROR,  /* it must end as failed: the client resumes from its last id */
    FILL_REDIS,  /* the next work reads Redis: a fiber does it (kept on the stream) */
} fill_t;

/* Renders what comes next into out (empty now): the retry line, a reset, the event the fast
 * path held, the next queued event, or a catch-up from the log. Reads Redis only when
 * in_fiber; otherwise such work is kept on the stream (held, catchup_cursor, reset) and
 * FILL_REDIS says so: most steps need no Redis, and a fiber for each would cost a stack
 * and two context switches (and, under ThreadSanitizer, a thread context each). */
static fill_t fill_step(stream_t *st, bool in_fiber)
{
    drained(st);
    if (!st->started) {
        st->started = true;
        return append(st, "retry: %d\n\n", RETRY_MS) ? FILL_MORE : FILL_ERROR;
    }
    if (st->reset) { /* after the retry line: a reset that fails to render ends it */
        if (!in_fiber)
            return FILL_REDIS;
        notify_event_t reset = {.kind = STORAGE_EVENT_RESET};
        snprintf(reset.id, sizeof(reset.id), "%s", st->reset->id);
        snprintf(reset.ref, sizeof(reset.ref), "%s", st->reset->after);
        free(st->reset);
        st->reset = NULL;
        return render(st, &reset) ? FILL_MORE : FILL_ERROR;
    }
    if (st->catchup_cursor[0]) {
        if (!in_fiber)
            return FILL_REDIS;
        char cursor[NOTIFY_ID_MAX];
        snprintf(cursor, sizeof(cursor), "%s", st->catchup_cursor);
        st->catchup_cursor[0] = '\0';
        return catch_up(st, cursor) ? FILL_MORE : FILL_ERROR;
    }
    if (st->held) { /* taken before anything still queued: it goes first */
        int rc = render_event(st, st->held, !in_fiber);
        if (rc == -EWOULDBLOCK)
            return FILL_REDIS;
        notify_event_unref(st->held);
        st->held = NULL;
        return rc ? FILL_ERROR : FILL_MORE;
    }
    notify_event_t *ev = NULL;
    char cursor[NOTIFY_ID_MAX];
    switch (notify_sub_next(st->sub, &ev, cursor)) {
    case NOTIFY_NEXT_EVENT: {
        int rc = render_event(st, ev, !in_fiber);
        if (rc == -EWOULDBLOCK) {
            st->held = ev;
            return FILL_REDIS;
        }
        notify_event_unref(ev);
        return rc ? FILL_ERROR : FILL_MORE;
    }
    case NOTIFY_NEXT_CATCHUP:
        if (!in_fiber) {
            snprintf(st->catchup_cursor, sizeof(st->catchup_cursor), "%s", cursor);
            return FILL_REDIS;
        }
        return catch_up(st, cursor) ? FILL_MORE : FILL_ERROR;
    case NOTIFY_NEXT_PARKED:
        return FILL_PARKED; /* suspended: resumed by the hub when something is queued */
    case NOTIFY_NEXT_END:
    default:
        /* Its token was revoked: say so last, without an id (nothing to resume). */
        if (!st->told_revoked && notify_sub_revoked(st->sub)) {
            st->told_revoked = true;
            return append_strs(st, (const char *const[]){REVOKED_EVENT, NULL}) ? FILL_MORE
                                                                               : FILL_ERROR;
        }
        return FILL_END;
    }
}

static void fill_main(void *arg)
{
    stream_t *st = arg;
    st->fill = fill_step(st, true);
}

/* The I/O thread: the replies the step's fiber waited for are in. */
static void fill_wake(void *arg)
{
    resume(arg);
}

/* Runs (or runs on) the step as a fiber, so that its Redis reads park instead of holding
 * the HTTP thread, whose other connections (streams handed back by a writer, requests)
 * would wait behind a paused Redis's timeouts. True when the step is over (st->fill), false
 * when it parked: the connection is then suspended until fill_wake. */
static bool run_fill(stream_t *st)
{
    return api_fiber_step(st->api, &st->fiber, fill_main, fill_wake, st,
                          &st->api->metrics.streams_suspended, st->conn);
}

static ssize_t reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    stream_t *st = cls;
    for (;;) {
        if (!st->fiber) { /* a step under way has rendered nothing yet */
            if (st->peer_gone)
                return MHD_CONTENT_READER_END_OF_STREAM; /* a hang-up is no server error */
            if (st->out_off < st->out_len) {
                size_t n = st->out_len - st->out_off < max ? st->out_len - st->out_off : max;
                memcpy(buf, st->out + st->out_off, n);
                st->out_off += n;
                return (ssize_t)n;
            }
            if (st->failed) /* after the events the fast path rendered before it failed */
                return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        if (!st->fiber)
            st->fill = fill_step(st, false);
        if ((st->fiber || st->fill == FILL_REDIS) && !run_fill(st))
            return 0; /* parked on Redis: fill_wake resumes it */
        switch (st->fill) {
        case FILL_MORE:
            continue;
        case FILL_PARKED:
            return 0;
        case FILL_END:
            return MHD_CONTENT_READER_END_OF_STREAM;
        case FILL_ERROR:
        case FILL_REDIS: /* a fiber's step never ends so */
        default:
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
    }
}

/* ---- the fast path (writer threads) ------------------------------------------------------ */

/* What the fast path sends: heartbeats and live feed and delete events. A replayed feed
 * event is rendered afresh and a notification read from Redis: the reader's work. */
static bool fast_event(void *arg, const notify_event_t *e)
{
    (void)arg;
    return e->kind == NOTIFY_KIND_HEARTBEAT ||
           (!e->from_log && (e->kind == STORAGE_EVENT_FEED || e->kind == STORAGE_EVENT_DELETE));
}

/* Sends what is rendered. False when some is left (the socket is full) or the peer is
 * gone (peer_gone set). */
static bool flush(stream_t *st)
{
    while (st->out_off < st->out_len) {
        ssize_t n = send(st->fd, st->out + st->out_off, st->out_len - st->out_off,
                         MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
            st->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
            st->peer_gone = true;
        return false;
    }
    drained(st);
    return true;
}

/* A writer thread's turn with a woken stream: its connection is suspended and, until this
 * parks it again or resumes it, nobody else sends on it. */
static void serve(void *item)
{
    stream_t *st = item;
    if (st->held) { /* back from render_waits: the post is cached, unless it is gone */
        int rc = render_event(st, st->held, true);
        if (rc) {
            st->failed = rc != -EWOULDBLOCK; /* not cached: the reader reads it */
            resume(st);
            return;
        }
        notify_event_unref(st->held);
        st->held = NULL;
    }
    for (;;) {
        notify_event_t *ev = NULL;
        notify_next_t next = notify_sub_take(st->sub, &ev, fast_event, st);
        if (next == NOTIFY_NEXT_EVENT) {
            /* Never Redis here: a writer waiting out a paused Redis's timeout would hold
             * the heartbeats of every stream it serves. Such an event waits for
             * render_waits' read (a live post), or goes to the reader. */
            int rc = render_event(st, ev, true);
            if (rc == -EWOULDBLOCK) {
                st->held = ev;
                if ((flush(st) || !st->peer_gone) &&
                    render_waits_add(st->api->render_waits, ev->ref, st))
                    return; /* still suspended: rendered() hands it back */
                break;
            }
            notify_event_unref(ev);
            if (rc) {
                st->failed = true;
                break;
            }
            if (st->out_len < FLUSH_BYTES)
                continue;
        }
        if (!flush(st) || next == NOTIFY_NEXT_END)
            break;
        if (next == NOTIFY_NEXT_PARKED && notify_sub_park_idle(st->sub))
            return;
    }
    resume(st); /* the reader sends the rest, or ends the stream */
}

/* render_waits' done: the writer goes on with the stream, or the reader reads its event. */
static void rendered(void *waiter, bool ok)
{
    stream_t *st = waiter;
    if (!ok || !stream_writers_push(st->api->stream_writers, st->writer, st))
        resume(st);
}

static void stream_free(void *cls)
{
    stream_t *st = cls;
    if (st->fiber) {
        /* Woken, and the connection closed before the reader ran it on (a suspended one is
         * never freed): it finishes, its batches refused from now on. */
        storage_redis_fiber_cancel(st->fiber);
        while (!storage_redis_fiber_run(st->fiber))
            ;
        storage_redis_fiber_free(st->fiber);
    }
    if (st->sub)
        notify_sub_close(st->sub);
    notify_event_unref(st->held);
    if (st->holds_address)
        api_address_counts_release(st->api->stream_addresses, &st->client);
    atomic_fetch_sub(&st->api->metrics.stream_buffer_bytes, (long long)st->out_cap);
    free(st->out);
    free(st->reset);
    free(st);
}

/* Whether s is all digits and fits in 64 bits. */
static bool u64_digits(const char *s, size_t n)
{
    if (n == 0 || n > 20 || strspn(s, "0123456789") < n)
        return false;
    char buf[21];
    memcpy(buf, s, n);
    buf[n] = '\0';
    errno = 0;
    (void)strtoull(buf, NULL, 10);
    return errno == 0;
}

/* "<ms>-<seq>", both 64-bit: a log id this server could have sent. */
static bool valid_event_id(const char *id)
{
    const char *dash = strchr(id, '-');
    return dash && u64_digits(id, (size_t)(dash - id)) && u64_digits(dash + 1, strlen(dash + 1));
}

/* Tells the hub which celebrities the stream's user follows: their posts are announced,
 * and delivered to the streams of those who follow (storage/celebrity_live.c). */
/* The celebrities the user follows, whose posts this process then logs for the stream;
 * resumed after the id after (NULL: not resumed), the posts they announced while no stream
 * of the user was open are logged first (storage_celebrity_backfill), so that the catch-up
 * finds them. After the subscription: one announced meanwhile is logged once, by either. */
static int follow_celebrities(stream_t *st, const char *after)
{
    uint64_t *ids;
    size_t n;
    int rc = storage_celebrities_followed(st->api->storage, st->user, &ids, &n);
    if (rc == 0 && !notify_sub_add_celebrities(st->sub, ids, n))
        rc = -ENOMEM;
    if (rc == 0 && after)
        rc = storage_celebrity_backfill(st->api->storage, st->user, ids, n, after);
    free(ids);
    return rc;
}

void api_stream_get(api_req_t *r)
{
    const char *last = api_header(r, "Last-Event-ID");
    if (!last)
        last = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "last_event_id");
    if (last && !*last)
        last = NULL;
    if (last && !valid_event_id(last)) {
        api_problem(r, API_BAD_REQUEST, "Last-Event-ID must be an event id this server sent");
        return;
    }
    api_t *api = r->api;
    stream_t *st = calloc(1, sizeof(*st));
    if (!st) {
        api_storage_problem(r, -ENOMEM, "user");
        return;
    }
    st->api = api;
    st->client = r->client;
    st->holds_address = api_address_counts_take(api->stream_addresses, &r->client,
                                                (size_t)api->cfg->max_streams_per_address);
    if (!st->holds_address) {
        stream_free(st);
        r->retry_after =
            api->cfg->live.heartbeat_ms / 1000; /* a dropped stream is noticed by then */
        api_problem(r, API_TOO_MANY_REQUESTS,
                    "this address has %d event streams open already; close one first",
                    api->cfg->max_streams_per_address);
        return;
    }
    bool was_online = false;
    char tail[STORAGE_EVENT_ID_MAX];
    storage_events_keep_t keep = keep_of(api);
    int rc = storage_events_online(api->storage, r->caller.id, &keep, last, &was_online, tail);
    if (rc) {
        stream_free(st);
        api_storage_problem(r, rc, "user");
        return;
    }
    st->conn = r->conn;
    st->user = r->caller.id;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    st->fd = ci ? ci->connect_fd : -1;
    static atomic_uint next_writer;
    st->writer = atomic_fetch_add_explicit(&next_writer, 1, memory_order_relaxed);
    /* Resume after Last-Event-ID when every event since is in the log; else start at the
     * log's end with a reset, so the client refetches instead of silently missing some. An
     * id beyond the log's end (another deployment's, or from before Redis lost its data)
     * gets the reset too: resumed after it, every live event below it would be taken as
     * seen and dropped. The log was lifted above such an id unless it is from the future
     * (storage_events_online), so the reset's id is after the client's. A reset, not a 400:
     * EventSource gives up for good on an error, and would resend that id on every
     * reconnect until an event carries a new one. */
    bool resume = last && was_online && notify_id_cmp(last, tail) <= 0;
    if (last && !resume) {
        if (!(st->reset = malloc(sizeof(*st->reset)))) {
            stream_free(st);
            api_storage_problem(r, -ENOMEM, "user");
            return;
        }
        snprintf(st->reset->id, sizeof(st->reset->id), "%s", tail);
        /* What the client missed is judged against its id when the log lapsed; an id beyond
         * a log that exists was never handed out here, so what it saw cannot be told. */
        snprintf(st->reset->after, sizeof(st->reset->after), "%s", was_online ? "" : last);
    }
    notify_sub_hooks_t hooks = {park, wake, st};
    st->sub = notify_sub_open(api->hub, st->user, resume ? last : tail, &hooks);
    if (!st->sub) {
        int err = errno;
        stream_free(st);
        if (err == EDQUOT) {
            r->retry_after = api->cfg->live.heartbeat_ms / 1000;
            api_problem(r, API_TOO_MANY_REQUESTS,
                        "this user has %d event streams open already; close one first",
                        (int)api->cfg->notify.max_streams_per_user);
        } else {
            api_problem(r, API_UNAVAILABLE, "%s",
                        err == EBUSY ? "too many open streams on this server; retry shortly"
                                     : "the server is shutting down");
        }
        return;
    }
    notify_sub_set_token(st->sub, r->caller_token);
    st->token = r->caller_token;
    /* After opening: a follow announced meanwhile is in Redis and here alike. */
    rc = follow_celebrities(st, resume ? last : NULL);
    if (rc) {
        stream_free(st);
        api_storage_problem(r, rc, "user");
        return;
    }
    r->custom =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, STREAM_BLOCK, reader, st, stream_free);
    if (!r->custom) {
        stream_free(st);
        api_storage_problem(r, -ENOMEM, "user");
        return;
    }
    /* Close-delimited, not chunked: the fast path and the reader then write the same bytes. */
    MHD_set_response_options(r->custom, MHD_RF_HTTP_1_0_COMPATIBLE_STRICT, MHD_RO_END);
    MHD_add_response_header(r->custom, "X-Accel-Buffering", "no");
    r->status = 200;
    r->content_type = "text/event-stream"; /* the Content-Type: send_response adds it */
}

void api_stream_options(api_req_t *r)
{
    api_reply_empty(r, 204);
    snprintf(r->allow, sizeof(r->allow), "GET, OPTIONS");
}
