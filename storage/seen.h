/* storage/seen.h -- when each user was last seen, and the rebuild of a returning user's home
 * timeline (storage/seen.c and storage/timeline_rebuild.c have the design).
 *
 * Thread: any (synchronous, like storage.h); the engine runs the rebuild on libuv's thread
 * pool. The rebuild is idempotent and may be cut short at any point: run again, it writes
 * the same entries.
 */
#ifndef TIDINGS_STORAGE_SEEN_H
#define TIDINGS_STORAGE_SEEN_H

#include "storage/storage.h"

#include <stdbool.h>
#include <stdint.h>

/* How coarse "last seen" is: it is written only when the stored time is older than this. */
#define STORAGE_SEEN_GRAIN_MS (3600ull * 1000)

/* Records that user was seen at now_ms, unless the stored time is less than
 * STORAGE_SEEN_GRAIN_MS older (nothing is written then) or the user is gone. When the stored
 * time is older than inactive_before_ms (0: nobody is inactive), the user is coming back:
 * their timeline got no entries meanwhile, so this also marks it as rebuilding and queues a
 * rebuild job; *rebuild (may be NULL) says so. A failure to queue puts the old time back, so
 * that the next request tries again. -EAGAIN while this process holds no id node. */
int storage_user_seen(storage_t *s, uint64_t user, uint64_t now_ms, uint64_t inactive_before_ms,
                      bool *rebuild);

/* The rebuild job (kind "rebuild"): refills user's home timeline from the people they follow
 * (their posts and reposts, newest first, up to timeline_max; nothing of users they blocked,
 * were blocked by or muted; no deleted post), keeping the entries it has, then ends the
 * rebuilding mark. */
int storage_timeline_rebuild(storage_t *s, uint64_t user, int timeline_max);

#endif
