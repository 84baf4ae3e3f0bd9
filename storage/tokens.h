/* storage/tokens.h -- a user's API tokens, one per device (tokens.c). Thread: any (the
 * synchronous client), like storage.h. */
#ifndef TIDINGS_STORAGE_TOKENS_H
#define TIDINGS_STORAGE_TOKENS_H

#include "storage/storage.h"

#include <stddef.h>
#include <stdint.h>

#define STORAGE_TOKEN_NAME_MAX 256 /* bytes: 64 characters of up to 4 bytes */

/* One token's metadata; the secret is never stored, only the SHA-256 of the token's text.
 * A token from before users held several (its text "tdg_<user>_<secret>", its hash in the
 * user record) is listed with the user's id as its id, named "registration". */
typedef struct storage_token_s {
    uint64_t id;
    char name[STORAGE_TOKEN_NAME_MAX + 1];
    uint64_t created_ms;
    uint64_t last_used_ms; /* 0: never; coarse, see storage_token_touch */
    uint64_t expires_ms;   /* 0: never */
} storage_token_t;

/* Stores tok for user with hash (the SHA-256 of its text), borrowed, unless the user holds max
 * live tokens already (-ENOSPC; expired and revoked ones are pruned from the index first, in
 * the same script, so the check and the write are one step). A token with an expiry vanishes
 * from Redis when it passes. */
int storage_token_create(storage_t *s, uint64_t user, const storage_token_t *tok,
                         const uint8_t hash[32], size_t max);
/* The stored hash and metadata of token id of user, with the user's profile (no counts), in
 * one round trip; -ENOENT when either is unknown. */
int storage_token_credentials(storage_t *s, uint64_t user, uint64_t id, uint8_t hash[32],
                              storage_token_t *tok, storage_user_t *profile);
/* The user's live tokens, oldest first, the pre-device token (if any) among them: *out is new
 * (free it; NULL when there are none). */
int storage_tokens_list(storage_t *s, uint64_t user, storage_token_t **out, size_t *n);
/* Deletes token id of user (the pre-device token when id is the user's id) and announces it
 * to every process (STORAGE_ANNOUNCE_REVOKE: each forgets it and ends its streams); -ENOENT
 * when the user holds no such token. A failed announcement is returned as its code after
 * the token is gone. */
int storage_token_revoke(storage_t *s, uint64_t user, uint64_t id);
/* Deletes every token of user, the pre-device one included, and announces it as one
 * revocation (token 0) that ends every stream of the user's; *n (unless NULL) is how many
 * there were. For signing out everywhere and for erasing an account. */
int storage_tokens_revoke_all(storage_t *s, uint64_t user, size_t *n);
/* storage_tokens_revoke_all without the announcement: the tokens no longer verify on a
 * process that has not cached them. Account erasure deletes them with its 202 and
 * announces from its job, ahead of the step that clears the announcement logs. */
int storage_tokens_delete_all(storage_t *s, uint64_t user, size_t *n);
/* Records a use of token id at now_ms, unless the token is gone (a revocation racing it).
 * The caller decides how often: once a minute, not once a request. */
int storage_token_touch(storage_t *s, uint64_t user, uint64_t id, uint64_t now_ms);

#endif
