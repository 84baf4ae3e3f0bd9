/* storage/erase.h -- a user leaving: what DELETE /v1/me writes at once, and the two stages of
 * the erasure job the fan-out engine runs afterwards (storage/erase.c has the design).
 *
 * Thread: any (synchronous, like storage.h): the engine runs the stages on libuv's thread
 * pool. Every function is idempotent and may be cut short at any point (a crash, an outage):
 * run again, it finds what is left and finishes it.
 */
#ifndef TIDINGS_STORAGE_ERASE_H
#define TIDINGS_STORAGE_ERASE_H

#include "storage/storage.h"

/* The user is gone for the API from now on: queues the erasure job (after the user's queued
 * posts and deletes, in their order list), then removes the user record (with the token
 * digest it holds) and releases the handle, quarantined (not registrable) for quarantine_s
 * seconds (0: none). -ENOENT when there is no such user. */
int storage_erase_begin(storage_t *s, uint64_t user, long quarantine_s);

/* Stage 1 (job kind "erase"): retracts every post of user as a delete does (tombstone and a
 * delete job each, in the author's order), then queues stage 2 behind those delete jobs. */
int storage_erase_posts(storage_t *s, uint64_t user);

/* Stage 2 (job kind "erase_rest"), once the delete jobs ran: undoes user's likes and reposts
 * (with the repost entries in followers' timelines and the notices they caused), removes
 * follows and blocks and mutes both ways, the user's id from posts that mention or answer
 * them and from the announcement logs, the post tombstones, and every key of the user. */
int storage_erase_rest(storage_t *s, uint64_t user);

#endif
