/* storage/tokens.c -- a user's API tokens, one per device.
 *
 * tok:{user}:<id> holds one token's SHA-256 (hex) and metadata; toks:{user} indexes the ids,
 * scored by creation time: the one place that lists a user's tokens (an account's erasure
 * deletes what it lists). Both carry the user's hash tag, so every operation here is one
 * pipeline to one node, and a script may touch them all. A token with an expiry has it as
 * the key's own PEXPIREAT as well, so Redis drops it when it passes; its index entry goes
 * at the next creation's prune.
 *
 * A revocation is announced on the live channel of the user's node ("revoke <user> <token>",
 * see celebrity_live.c), which every process hears: each forgets its cached verification of
 * the token and ends the streams it opened. The announcement goes after the delete, in a
 * round trip of its own; should it fail, the caller hears of it (the token is gone, but
 * other processes learn only when their cache entry lapses, and its streams stay open).
 *
 * A token issued before users held several is the user record's "token" field; it is read
 * (and revoked) there, listed as a token whose id is the user's own id (which no token id
 * can be: ids are never handed out twice).
 */
#include "storage/storage_internal.h"
#include "storage/tokens.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LEGACY_NAME "registration"

static void hex32(char out[65], const uint8_t in[32])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[64] = '\0';
}

static int unhex32(uint8_t out[32], const redisReply *r)
{
    if (!r || r->type != REDIS_REPLY_STRING || r->len != 64)
        return -EIO;
    for (int i = 0; i < 64; i++) {
        char c = r->str[i];
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (v < 0)
            return -EIO;
        out[i / 2] = i % 2 == 0 ? (uint8_t)(v << 4) : (uint8_t)(out[i / 2] | v);
    }
    return 0;
}

static bool is_string(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_STRING;
}

static bool is_array(const redisReply *r, size_t n)
{
    return r && r->type == REDIS_REPLY_ARRAY && r->elements >= n;
}

/* KEYS: toks:{user}, tok:{user}:<id>; ARGV: max, "tok:{user}:", id, hash, name, created,
 * expires (ms, "0": never). Index entries whose token is gone are dropped before counting. */
static const char create_script[] =
    "for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do\n"
    "  if redis.call('EXISTS', ARGV[2] .. id) == 0 then redis.call('ZREM', KEYS[1], id) end\n"
    "end\n"
    "if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return -1 end\n"
    "redis.call('HSET', KEYS[2], 'hash', ARGV[4], 'name', ARGV[5], 'created', ARGV[6],\n"
    "           'last_used', '0', 'expires', ARGV[7])\n"
    "if ARGV[7] ~= '0' then redis.call('PEXPIREAT', KEYS[2], ARGV[7]) end\n"
    "redis.call('ZADD', KEYS[1], ARGV[6], ARGV[3])\n"
    "return 0\n";

int storage_token_create(storage_t *s, uint64_t user, const storage_token_t *tok,
                         const uint8_t hash[32], size_t max)
{
    char index[48], key[64], prefix[48], maxs[24], id[24], hex[65], created[24], expires[24];
    snprintf(index, sizeof(index), K_TOKENS, (ull)user);
    snprintf(key, sizeof(key), K_TOKEN, (ull)user, (ull)tok->id);
    snprintf(prefix, sizeof(prefix), K_TOKEN_PREFIX, (ull)user);
    snprintf(maxs, sizeof(maxs), "%zu", max);
    snprintf(id, sizeof(id), "%llu", (ull)tok->id);
    hex32(hex, hash);
    snprintf(created, sizeof(created), "%llu", (ull)tok->created_ms);
    snprintf(expires, sizeof(expires), "%llu", (ull)tok->expires_ms);
    const char *argv[] = {"EVAL", create_script, "2",       index,   key,    maxs, prefix,
                          id,     hex,           tok->name, created, expires};
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    storage_redis_batch_addargv(&b, (int)(sizeof(argv) / sizeof(argv[0])), argv, NULL);
    int rc = storage_redis_batch_run_checked(&b);
    if (rc == 0 && storage_redis_int(b.r[0]) != 0)
        rc = -ENOSPC;
    storage_redis_batch_free(&b);
    return rc;
}

/* Reads "name created last_used expires" from r's elements from on. */
static void read_token(const redisReply *r, size_t from, uint64_t id, storage_token_t *tok)
{
    memset(tok, 0, sizeof(*tok));
    tok->id = id;
    storage_redis_copy_str(tok->name, sizeof(tok->name), r->element[from]);
    tok->created_ms = storage_redis_uint_str(r->element[from + 1]);
    tok->last_used_ms = storage_redis_uint_str(r->element[from + 2]);
    tok->expires_ms = storage_redis_uint_str(r->element[from + 3]);
}

int storage_token_credentials(storage_t *s, uint64_t user, uint64_t id, uint8_t hash[32],
                              storage_token_t *tok, storage_user_t *profile)
{
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    storage_redis_batch_add(&b, "HMGET " K_USER " handle display_name created bio", (ull)user);
    storage_redis_batch_add(&b, "HMGET " K_TOKEN " hash name created last_used expires", (ull)user,
                            (ull)id);
    int rc = storage_redis_batch_run(&b);
    if (rc == 0) {
        const redisReply *u = b.r[0], *t = b.r[1];
        if (storage_redis_is_error(u) || storage_redis_is_error(t))
            rc = -EIO;
        else if (!is_array(u, 4) || !is_string(u->element[0]) || !is_array(t, 5) ||
                 !is_string(t->element[0]))
            rc = -ENOENT;
        else
            rc = unhex32(hash, t->element[0]);
        if (rc == 0) {
            memset(profile, 0, sizeof(*profile));
            profile->id = user;
            storage_redis_copy_str(profile->handle, sizeof(profile->handle), u->element[0]);
            storage_redis_copy_str(profile->display_name, sizeof(profile->display_name),
                                   u->element[1]);
            profile->created_ms = storage_redis_uint_str(u->element[2]);
            storage_redis_copy_str(profile->bio, sizeof(profile->bio), u->element[3]);
            read_token(t, 1, id, tok);
        }
    }
    storage_redis_batch_free(&b);
    return rc;
}

/* The ids in toks:{user} (*ids new, NULL when none) and whether the user record holds a
 * pre-device token (and the user's creation time, its created_at). One round trip. */
static int token_ids(storage_t *s, uint64_t user, uint64_t **ids, size_t *n, bool *legacy,
                     uint64_t *legacy_created)
{
    *ids = NULL;
    *n = 0;
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    storage_redis_batch_add(&b, "ZRANGE " K_TOKENS " 0 -1", (ull)user);
    storage_redis_batch_add(&b, "HMGET " K_USER " token created", (ull)user);
    int rc = storage_redis_batch_run_checked(&b);
    if (rc == 0 && (!is_array(b.r[0], 0) || !is_array(b.r[1], 2)))
        rc = -EIO;
    if (rc == 0) {
        *legacy = is_string(b.r[1]->element[0]);
        *legacy_created = storage_redis_uint_str(b.r[1]->element[1]);
        size_t count = b.r[0]->elements;
        if (count && !(*ids = calloc(count, sizeof(**ids))))
            rc = -ENOMEM;
        for (size_t i = 0; rc == 0 && i < count; i++)
            (*ids)[(*n)++] = storage_redis_uint_str(b.r[0]->element[i]);
    }
    storage_redis_batch_free(&b);
    return rc;
}

int storage_tokens_list(storage_t *s, uint64_t user, storage_token_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    uint64_t *ids, legacy_created;
    size_t count;
    bool legacy;
    int rc = token_ids(s, user, &ids, &count, &legacy, &legacy_created);
    if (rc)
        return rc;
    storage_token_t *toks = (count + legacy) > 0 ? calloc(count + legacy, sizeof(*toks)) : NULL;
    if (count + legacy && !toks) {
        free(ids);
        return -ENOMEM;
    }
    if (legacy) {
        toks[(*n)++] = (storage_token_t){.id = user, .created_ms = legacy_created};
        snprintf(toks[0].name, sizeof(toks[0].name), "%s", LEGACY_NAME);
    }
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    for (size_t i = 0; i < count; i++)
        storage_redis_batch_add(&b, "HMGET " K_TOKEN " name created last_used expires", (ull)user,
                                (ull)ids[i]);
    rc = count ? storage_redis_batch_run(&b) : 0;
    for (size_t i = 0; rc == 0 && i < count; i++) {
        const redisReply *r = b.r[i];
        if (storage_redis_is_error(r))
            rc = -EIO;
        /* An index entry whose token is gone (expired, or revoked as we read) is no token. */
        else if (is_array(r, 4) && is_string(r->element[1]))
            read_token(r, 0, ids[i], &toks[(*n)++]);
    }
    storage_redis_batch_free(&b);
    free(ids);
    if (rc || *n == 0) {
        free(toks);
        *n = 0;
        return rc;
    }
    *out = toks;
    return 0;
}

/* Tells every process that token id of user (0: every token of the user's) is gone. */
static int announce_revoked(storage_t *s, uint64_t user, uint64_t id)
{
    char msg[64];
    snprintf(msg, sizeof(msg), "revoke %llu %llu", (ull)user, (ull)id);
    return storage__announce_sync(s, user, msg);
}

int storage_token_revoke(storage_t *s, uint64_t user, uint64_t id)
{
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    if (id == user) {
        storage_redis_batch_add(&b, "HDEL " K_USER " token", (ull)user);
    } else {
        storage_redis_batch_add(&b, "DEL " K_TOKEN, (ull)user, (ull)id);
        storage_redis_batch_add(&b, "ZREM " K_TOKENS " %llu", (ull)user, (ull)id);
    }
    int rc = storage_redis_batch_run_checked(&b);
    if (rc == 0 && storage_redis_int(b.r[0]) == 0)
        rc = -ENOENT;
    storage_redis_batch_free(&b);
    return rc ? rc : announce_revoked(s, user, id);
}

int storage_tokens_revoke_all(storage_t *s, uint64_t user, size_t *n)
{
    int rc = storage_tokens_delete_all(s, user, n);
    return rc ? rc : announce_revoked(s, user, 0);
}

int storage_tokens_delete_all(storage_t *s, uint64_t user, size_t *n)
{
    uint64_t *ids, legacy_created;
    size_t count;
    bool legacy;
    int rc = token_ids(s, user, &ids, &count, &legacy, &legacy_created);
    if (rc)
        return rc;
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    for (size_t i = 0; i < count; i++)
        storage_redis_batch_add(&b, "DEL " K_TOKEN, (ull)user, (ull)ids[i]);
    /* The index goes last: a failure before it leaves every token still listed. */
    storage_redis_batch_add(&b, "HDEL " K_USER " token", (ull)user);
    storage_redis_batch_add(&b, "DEL " K_TOKENS, (ull)user);
    rc = storage_redis_batch_run_checked(&b);
    storage_redis_batch_free(&b);
    free(ids);
    if (rc == 0 && n)
        *n = count + legacy;
    return rc;
}

/* Writes last_used only while the token exists: a plain HSET racing a revocation would
 * bring the key back without its hash. */
static const char touch_script[] = "if redis.call('EXISTS', KEYS[1]) == 1 then\n"
                                   "  redis.call('HSET', KEYS[1], 'last_used', ARGV[1])\n"
                                   "end\n"
                                   "return 0\n";

int storage_token_touch(storage_t *s, uint64_t user, uint64_t id, uint64_t now_ms)
{
    char key[64], now[24];
    snprintf(key, sizeof(key), K_TOKEN, (ull)user, (ull)id);
    snprintf(now, sizeof(now), "%llu", (ull)now_ms);
    const char *argv[] = {"EVAL", touch_script, "1", key, now};
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    storage_redis_batch_addargv(&b, 5, argv, NULL);
    int rc = storage_redis_batch_run_checked(&b);
    storage_redis_batch_free(&b);
    return rc;
}
