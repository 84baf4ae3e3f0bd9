/* fanout/live_internal.h -- what fanout/live.c and fanout/live_celebrity.c share. Thread:
 * the live thread, throughout. */
#ifndef TIDINGS_FANOUT_LIVE_INTERNAL_H
#define TIDINGS_FANOUT_LIVE_INTERNAL_H

#include "fanout/live.h"
#include "storage/storage_async.h"

#include <uv.h>

/* Formats a report and hands it to cfg's on_error hook (if any). */
void fanout__live_report(const fanout_live_config_t *cfg, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- celebrities' live events (live_celebrity.c) --------------------------------------- */
typedef struct fanout__celebrity_s fanout__celebrity_t;

/* NULL when out of memory. storage is read synchronously on the loop's thread; live (its
 * error hook) is borrowed. */
fanout__celebrity_t *fanout__celebrity_create(uv_loop_t *loop, const fanout_live_config_t *live,
                                              storage_t *storage, notify_hub_t *hub);
/* The connection events are logged and published with (may be NULL: nothing is sent). */
void fanout__celebrity_attach(fanout__celebrity_t *a, storage_async_t *sa);
/* An announcement as received on channel (borrowed for the call). */
void fanout__celebrity_on_message(fanout__celebrity_t *a, const char *channel,
                                  const storage_announcement_t *msg);
/* channel's subscription is (again) in place: read what was missed since the last one. */
void fanout__celebrity_on_subscribed(fanout__celebrity_t *a, const char *channel);
/* Closes the retry timer (on the loop's thread, before the loop's last run); NULL: no-op. */
void fanout__celebrity_close(fanout__celebrity_t *a);
/* After the loop ended; NULL: no-op. */
void fanout__celebrity_free(fanout__celebrity_t *a);

/* ---- unread counts' deferred events (live_counts.c) ------------------------------------- */
typedef struct fanout__counts_s fanout__counts_t;

/* NULL when out of memory; live (its error hook) is borrowed. */
fanout__counts_t *fanout__counts_create(uv_loop_t *loop, const fanout_live_config_t *live);
/* The connection flushes are sent with (may be NULL: nothing is sent). */
void fanout__counts_attach(fanout__counts_t *c, storage_async_t *sa);
/* A counts_due message: user's counts are flushed in_ms from now (once, however often it
 * comes meanwhile). */
void fanout__counts_due(fanout__counts_t *c, uint64_t user, uint64_t in_ms);
/* Closes the timer (before the loop's last run); NULL: no-op. */
void fanout__counts_close(fanout__counts_t *c);
/* After the loop ended; NULL: no-op. */
void fanout__counts_free(fanout__counts_t *c);

#endif
