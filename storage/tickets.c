/* storage/tickets.c -- one-use stream tickets.
 *
 * A ticket lets a browser open its event stream without a long-lived token in the URL. It is
 * tkt:{user}:<SHA-256 of its text, hex> holding the id of the token it was issued with,
 * with the ticket's lifetime as the key's own expiry. Using it is one script on the user's
 * slot: GETDEL (so a second use finds nothing), then a check that the token is still there,
 * so a ticket does not outlive the revocation of the token that made it.
 */
#include "storage/storage_internal.h"
#include "storage/tickets.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static void hex32(char out[65], const uint8_t in[32])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[64] = '\0';
}

int storage_ticket_create(storage_t *s, uint64_t user, const uint8_t hash[32], uint64_t token_id,
                          uint64_t ttl_ms)
{
    char hex[65];
    hex32(hex, hash);
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    storage_redis_batch_add(&b, "SET " K_TICKET " %llu PX %llu", (ull)user, hex, (ull)token_id,
                            (ull)ttl_ms);
    int rc = storage_redis_batch_run_checked(&b);
    storage_redis_batch_free(&b);
    return rc;
}

/* KEYS: the ticket, user:{user}; ARGV: "tok:{user}:", the user's id. Returns the token id,
 * or false when the ticket or its token is gone. */
static const char use_script[] =
    "local token = redis.call('GETDEL', KEYS[1])\n"
    "if not token then return false end\n"
    "if token == ARGV[2] then\n"
    "  if redis.call('HEXISTS', KEYS[2], 'token') == 0 then return false end\n"
    "elseif redis.call('EXISTS', ARGV[1] .. token) == 0 then\n"
    "  return false\n"
    "end\n"
    "return token\n";

int storage_ticket_use(storage_t *s, uint64_t user, const uint8_t hash[32], uint64_t *token_id)
{
    char hex[65], ticket[128], user_key[48], prefix[48], id[24];
    hex32(hex, hash);
    snprintf(ticket, sizeof(ticket), K_TICKET, (ull)user, hex);
    snprintf(user_key, sizeof(user_key), K_USER, (ull)user);
    snprintf(prefix, sizeof(prefix), K_TOKEN_PREFIX, (ull)user);
    snprintf(id, sizeof(id), "%llu", (ull)user);
    const char *argv[] = {"EVAL", use_script, "2", ticket, user_key, prefix, id};
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    storage_redis_batch_addargv(&b, 7, argv, NULL);
    int rc = storage_redis_batch_run_checked(&b);
    *token_id = rc == 0 ? storage_redis_uint_str(b.r[0]) : 0;
    if (rc == 0 && *token_id == 0)
        rc = -ENOENT;
    storage_redis_batch_free(&b);
    return rc;
}
