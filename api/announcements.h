/* api/announcements.h -- a process's side of celebrities' live events: it delivers each
 * announced post to its own connected followers of the author (storage/celebrity_live.c),
 * keeps the hub's record of who follows which celebrity current, and reads back from the
 * announcement log whatever it missed. Runs on the live thread (api/live.c). */
#ifndef TIDINGS_API_ANNOUNCEMENTS_H
#define TIDINGS_API_ANNOUNCEMENTS_H

#include "notify/notify.h"
#include "storage/storage.h"
#include "storage/storage_async.h"

#include <uv.h>

typedef struct announcements_s announcements_t;

/* NULL when out of memory. storage is read synchronously on the loop's thread. */
announcements_t *announcements_create(uv_loop_t *loop, storage_t *storage, notify_hub_t *hub);
/* The connection events are logged and published with (may be NULL: nothing is sent). */
void announcements_attach(announcements_t *a, storage_async_t *sa);
/* An announcement as received on channel (borrowed for the call). */
void announcements_on_message(announcements_t *a, const char *channel,
                              const storage_announcement_t *msg);
/* channel's subscription is (again) in place: read what was missed since the last one. */
void announcements_on_subscribed(announcements_t *a, const char *channel);
/* Closes the retry timer (on the loop's thread, before the loop's last run); NULL: no-op. */
void announcements_close(announcements_t *a);
/* After the loop ended; NULL: no-op. */
void announcements_free(announcements_t *a);

#endif
