/* storage/tickets.h -- one-use stream tickets (tickets.c). Thread: any. */
#ifndef TIDINGS_STORAGE_TICKETS_H
#define TIDINGS_STORAGE_TICKETS_H

#include "storage/storage.h"

#include <stdint.h>

/* Stores a ticket of user whose text has SHA-256 hash (borrowed), issued with token token_id
 * (see storage/tokens.h; the user's id for a pre-device token), valid ttl_ms. */
int storage_ticket_create(storage_t *s, uint64_t user, const uint8_t hash[32], uint64_t token_id,
                          uint64_t ttl_ms);
/* Uses up the ticket of user with hash: *token_id is the token it was issued with. -ENOENT
 * when there is none (never issued, used already, expired) or when that token is gone
 * (revoked or expired since). One round trip, atomic: two uses cannot both succeed. */
int storage_ticket_use(storage_t *s, uint64_t user, const uint8_t hash[32], uint64_t *token_id);

#endif
