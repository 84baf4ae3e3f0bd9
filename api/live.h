/* api/live.h -- the live path's receiving end on a thread of its own. */
#ifndef TIDINGS_API_LIVE_H
#define TIDINGS_API_LIVE_H

#include "notify/notify.h"
#include "storage/storage.h"

typedef struct live_s live_t;

/* Starts a thread with its own loop that subscribes the live channels and hands every
 * event to hub; it delivers celebrities' posts to hub's streams (storage/celebrity_live.c),
 * reading storage. NULL when the thread or the subscriber cannot be made. */
live_t *live_start(const storage_config_t *cfg, storage_t *storage, notify_hub_t *hub);
/* Closes the subscriber, ends the thread and frees l. */
void live_stop(live_t *l);

#endif
