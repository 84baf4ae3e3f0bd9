/* notify/notify.h -- the live-event hub: who is connected, and a bounded queue per stream.
 *
 * Knows neither HTTP nor Redis. A subscriber is one open stream of one user; the hub maps
 * users to their subscribers. Events are small immutable records (an id, a kind and a
 * reference) shared by reference between queues. Each subscriber has a mutex, a bounded
 * queue and two hooks set by its adapter: park (suspend the stream) and wake (resume it).
 * The adapter's reader takes what is queued; finding nothing, it parks while holding the
 * subscriber's lock, and a publisher wakes it only if parked, under the same lock.
 *
 * Threads: notify_hub_publish and notify_hub_subscribed are called on the loop thread;
 * subscribers are added, read and removed on HTTP threads. Everything here is
 * thread-safe.
 */
#ifndef TIDINGS_NOTIFY_H
#define TIDINGS_NOTIFY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct notify_hub_s notify_hub_t;
typedef struct notify_sub_s notify_sub_t;

#define NOTIFY_ID_MAX 48
#define NOTIFY_REF_MAX 96

/* An event as it travels: immutable once published, shared by refcount. */
typedef struct notify_event_s {
    atomic_int refs;
    char id[NOTIFY_ID_MAX];   /* the event log's entry id: "<ms>-<seq>", ordered */
    int kind;                 /* the adapter's (opaque here), or NOTIFY_KIND_HEARTBEAT */
    char ref[NOTIFY_REF_MAX]; /* what the event is about, for the adapter to render */
    bool from_log;            /* read back from the log (a replay), not live */
} notify_event_t;

/* The kind of the hub's own heartbeat events; every other kind is a small non-negative
 * integer the hub passes through untouched (the adapter's, e.g. storage_event_kind_t). */
#define NOTIFY_KIND_HEARTBEAT (-1)

/* Returns new with one reference, or NULL. id and ref are copied (cut short if need be). */
notify_event_t *notify_event_new(const char *id, int kind, const char *ref);
notify_event_t *notify_event_ref(notify_event_t *e);
void notify_event_unref(notify_event_t *e);
/* Compares two log ids numerically; "" sorts first. */
int notify_id_cmp(const char *a, const char *b);

typedef struct notify_config_s {
    size_t queue_max;            /* events queued per stream before it is cut off */
    size_t max_streams;          /* streams open at once */
    size_t max_streams_per_user; /* streams one user may hold; 0: no cap */
} notify_config_t;

void notify_config_defaults(notify_config_t *cfg);

typedef struct notify_stats_s {
    atomic_llong open;
    atomic_ullong opened, replayed, dropped;
} notify_stats_t;

notify_hub_t *notify_hub_create(const notify_config_t *cfg);
void notify_hub_destroy(notify_hub_t *hub);
const notify_stats_t *notify_hub_stats(const notify_hub_t *hub);
notify_stats_t *notify_hub_stats_mut(notify_hub_t *hub);

/* ---- subscribers ------------------------------------------------------------------------- */
typedef struct notify_sub_hooks_s {
    void (*park)(void *arg); /* called with the subscriber locked */
    void (*wake)(void *arg); /* called with the subscriber locked */
    void *arg;
} notify_sub_hooks_t;

/* Opens a stream for user resuming after cursor ("" for none). Returns new, or NULL when
 * the hub is full (errno EBUSY), the user holds max_streams_per_user already (EDQUOT),
 * the hub is shutting down (ECANCELED) or out of memory. */
notify_sub_t *notify_sub_open(notify_hub_t *hub, uint64_t user, const char *cursor,
                              const notify_sub_hooks_t *hooks);
/* Closes and frees it (the adapter's stream ended). */
void notify_sub_close(notify_sub_t *sub);
uint64_t notify_sub_user(const notify_sub_t *sub);
/* Events one stream may have queued. */
size_t notify_hub_queue_max(const notify_hub_t *hub);

typedef enum {
    NOTIFY_NEXT_EVENT,   /* *out holds an event (a reference the caller drops) */
    NOTIFY_NEXT_CATCHUP, /* read the log after *cursor, then notify_sub_catchup_done */
    NOTIFY_NEXT_PARKED,  /* nothing now: the park hook was called */
    NOTIFY_NEXT_END,     /* end the stream: overflow or shutdown */
} notify_next_t;
/* What the reader should do next: queued events first, then a catch-up (the queue is
 * empty then, so a catch-up may hand over up to notify_hub_queue_max events). cursor
 * (NOTIFY_ID_MAX) receives the position to catch up from. */
notify_next_t notify_sub_next(notify_sub_t *sub, notify_event_t **out, char *cursor);
/* The fast path's view (a writer that sends on the socket itself while the stream is
 * suspended): takes the next queued event when take(arg, event) accepts it. Never parks
 * and never starts a catch-up: NOTIFY_NEXT_EVENT (*out set), NOTIFY_NEXT_PARKED (nothing
 * queued; not parked) or NOTIFY_NEXT_END (anything else: an event take refused, a
 * catch-up or the end, which notify_sub_next must handle). */
notify_next_t notify_sub_take(notify_sub_t *sub, notify_event_t **out,
                              bool (*take)(void *arg, const notify_event_t *e), void *arg);
/* Parks the stream if nothing is waiting, without calling the park hook (its connection
 * is suspended already). False: something arrived, take again. */
bool notify_sub_park_idle(notify_sub_t *sub);
/* Hands over the events read from the log after the cursor, in order (borrowed). more
 * says the read was cut short. */
void notify_sub_catchup_done(notify_sub_t *sub, notify_event_t *const *events, size_t n, bool more);

/* ---- from the loop ----------------------------------------------------------------------- */
/* A live event for user (takes no reference of e's caller: the hub adds its own). */
void notify_hub_publish(notify_hub_t *hub, uint64_t user, notify_event_t *e);
/* Between begin and end, the streams that publishing wakes are resumed only at the end,
 * together (a message carries the events of thousands of users). */
void notify_hub_batch(notify_hub_t *hub, bool begin);
/* Every stream must read its log (the subscription was made, or remade after a gap). */
void notify_hub_subscribed(notify_hub_t *hub);
/* Queues a heartbeat on every idle stream of one slice (of slices) of the hub: a slice
 * per tick spreads the beats, so ten thousand streams never all wake at once. */
void notify_hub_heartbeat(notify_hub_t *hub, unsigned slice, unsigned slices);
/* Ends every stream (shutdown) and refuses new ones. */
void notify_hub_close_all(notify_hub_t *hub);
/* Writes up to max connected users of one slice (of slices) of the hub into users; returns
 * how many there are. Every user is in exactly one slice. */
size_t notify_hub_users(notify_hub_t *hub, unsigned slice, unsigned slices, uint64_t *users,
                        size_t max);

/* Revocation. Thread: any. A stream records the credential it was opened with (token, the
 * adapter's id of it; set once, right after notify_sub_open). */
void notify_sub_set_token(notify_sub_t *sub, uint64_t token);
/* Ends, at once, every stream of user opened with token (0: every stream of user's): the
 * reader gets NOTIFY_NEXT_END, queued events unsent, and notify_sub_revoked tells it why.
 * Returns how many streams it ended. */
size_t notify_hub_revoke(notify_hub_t *hub, uint64_t user, uint64_t token);
/* Did the stream end because its credential was revoked? */
bool notify_sub_revoked(notify_sub_t *sub);

/* Celebrities' posts are delivered by announcement (storage/celebrity_live.c): the hub
 * keeps which celebrities each stream's user follows. Thread: any. */
/* Adds celebrities sub's user follows; false when out of memory. A stream adds what Redis
 * says once it is open, so an announcement that came between is kept either way. */
bool notify_sub_add_celebrities(notify_sub_t *sub, const uint64_t *authors, size_t n);
/* Every stream of user now follows author (follows true), or no longer. */
void notify_hub_celebrity_follow(notify_hub_t *hub, uint64_t user, uint64_t author, bool follows);
/* Writes up to max users with a stream here who follow author into users, each once;
 * returns how many there are. */
size_t notify_hub_celebrity_followers(notify_hub_t *hub, uint64_t author, uint64_t *users,
                                      size_t max);

#endif
