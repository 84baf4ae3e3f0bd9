/* fanout/live.h -- the live path's receiving end: what the engine publishes on the live
 * channels comes back here and goes to the hub's streams, on a thread and loop of its own.
 *
 * It subscribes every master's live channel and hands each event to the hub; it delivers
 * celebrities' posts to this process's streams (fanout/live_celebrity.c) and ends the
 * streams of revoked tokens (announced the same way); and it keeps the
 * streams healthy: a heartbeat for each stream every period, and the event logs and presence
 * of connected users renewed well within the retention and the grace, both spread over
 * slices of a period.
 * Failures go to the on_error hook: nothing below api/ writes a log line.
 */
#ifndef TIDINGS_FANOUT_LIVE_H
#define TIDINGS_FANOUT_LIVE_H

#include "notify/notify.h"
#include "storage/storage.h"

typedef struct fanout_live_s fanout_live_t;

typedef struct fanout_live_config_s {
    int heartbeat_ms;            /* each stream gets a heartbeat once per this period */
    int stream_grace_ms;         /* a user counts as present this long after their last stream */
    int64_t stream_retention_ms; /* a user's event log outlives their last stream by this */
    /* Hook to the layer above (may be NULL; thread: the live thread): something failed and
     * is retried or lost; err is a negative errno, what a lowercase sentence fragment. */
    void (*on_error)(void *arg, int err, const char *what);
    /* Hook (may be NULL; thread: the live thread): token of user was revoked (0: every token
     * of the user's), as any process announced it; this process's streams opened with it
     * are ended already (notify_hub_revoke). */
    void (*on_revoke)(void *arg, uint64_t user, uint64_t token);
    void *hook_arg;
} fanout_live_config_t;

void fanout_live_config_defaults(fanout_live_config_t *cfg);

/* Thread: any. Starts the live thread; cfg is copied, storage_cfg borrowed for the call,
 * storage and hub borrowed until fanout_live_stop. Returns new, or NULL when the thread or
 * the subscriber cannot be made. */
fanout_live_t *fanout_live_start(const fanout_live_config_t *cfg,
                                 const storage_config_t *storage_cfg, storage_t *storage,
                                 notify_hub_t *hub);
/* Thread: any but the live thread. Closes the subscriber and the timers, ends the thread and
 * frees l; NULL: no-op. */
void fanout_live_stop(fanout_live_t *l);

#endif
