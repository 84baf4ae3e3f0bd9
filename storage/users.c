/* storage/users.c -- user profiles, the handle index and credentials.
 *
 * A user is a hash user:{id}; handle:{lowercase} maps a handle to its id and is claimed
 * with SET NX, which is what makes handles unique; the same batch adds the handle to the
 * ordered index that search reads (handle_index.c). The API token is never stored: only
 * its SHA-256, hex-encoded. Counts come from the follow and post indexes (ZCARD), so
 * they cannot drift from the lists they count.
 */
#include "storage/storage_internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void lowercase(char *dst, const char *src)
{
    size_t i = 0;
    for (; src[i] && i < STORAGE_HANDLE_MAX; i++)
        dst[i] = (char)tolower((unsigned char)src[i]);
    dst[i] = '\0';
}

static void hex32(char out[65], const uint8_t in[32])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[64] = '\0';
}

static int unhex32(uint8_t out[32], const char *in, size_t len)
{
    if (len != 64)
        return -EIO;
    for (int i = 0; i < 64; i++) {
        char c = in[i];
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (v < 0)
            return -EIO;
        if (i % 2 == 0)
            out[i / 2] = (uint8_t)(v << 4);
        else
            out[i / 2] |= (uint8_t)v;
    }
    return 0;
}

/* KEYS: the handle, its quarantine mark; ARGV: the user id. OK when claimed, nil when taken. */
static const char claim_script[] = "if redis.call('EXISTS', KEYS[2]) == 1 then return false end\n"
                                   "return redis.call('SET', KEYS[1], ARGV[1], 'NX')\n";

int storage_user_create(storage_t *s, uint64_t id, const char *handle, const char *display_name,
                        const uint8_t token_hash[32], storage_user_t *out)
{
    char lower[STORAGE_HANDLE_MAX + 1], hex[65];
    lowercase(lower, handle);
    if (token_hash)
        hex32(hex, token_hash);
    uint64_t created = storage_id_time_ms(id);

    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    /* A handle in quarantine (its user left, storage/erase.c) is not free: same slot. */
    storage_redis_batch_add(&b, "EVAL %s 2 " K_HANDLE " " K_HANDLE_QUARANTINE " %llu", claim_script,
                            lower, lower, (ull)id);
    if (token_hash)
        storage_redis_batch_add(&b,
                                "HSET " K_USER " handle %s display_name %s token %s created %llu",
                                (ull)id, handle, display_name, hex, (ull)created);
    else
        storage_redis_batch_add(&b, "HSET " K_USER " handle %s display_name %s created %llu",
                                (ull)id, handle, display_name, (ull)created);
    /* Seen at registration (storage/seen.c): a user who never comes back turns inactive. */
    storage_redis_batch_add(&b, "SET " K_SEEN " %llu", (ull)id, (ull)created);
    storage__handle_index_add(&b, lower, id);
    int rc = storage_redis_batch_run_checked(&b);
    bool claimed = rc == 0 && b.r[0]->type == REDIS_REPLY_STATUS;
    storage_redis_batch_free(&b);
    if (rc)
        return rc;
    if (!claimed) {
        /* Taken, unless a replayed batch of ours took it: compare the owner. */
        storage_redis_batch_init(&b, s->redis);
        storage_redis_batch_add(&b, "GET " K_HANDLE, lower);
        rc = storage_redis_batch_run(&b);
        bool ours = rc == 0 && storage_redis_uint_str(b.r[0]) == id;
        storage_redis_batch_free(&b);
        if (rc)
            return rc;
        if (!ours) {
            storage_redis_batch_init(&b, s->redis);
            storage_redis_batch_add(&b, "DEL " K_USER, (ull)id);
            storage_redis_batch_add(&b, "DEL " K_SEEN, (ull)id);
            storage__handle_index_del(&b, lower, id);
            (void)storage_redis_batch_run(&b);
            storage_redis_batch_free(&b);
            return -EEXIST;
        }
    }
    memset(out, 0, sizeof(*out));
    out->id = id;
    snprintf(out->handle, sizeof(out->handle), "%s", handle);
    snprintf(out->display_name, sizeof(out->display_name), "%s", display_name);
    out->created_ms = created;
    return 0;
}

/* Appends the 4 commands that read one profile with its counts. */
static void add_profile(storage_redis_batch_t *b, uint64_t id)
{
    storage_redis_batch_add(b, "HMGET " K_USER " handle display_name created bio", (ull)id);
    storage_redis_batch_add(b, "ZCARD " K_FOLLOWERS, (ull)id);
    storage_redis_batch_add(b, "ZCARD " K_FOLLOWING, (ull)id);
    storage_redis_batch_add(b, "ZCARD " K_POSTS, (ull)id);
}

/* Reads one HMGET handle display_name created bio reply; false when the user is unknown. */
static bool read_profile(const redisReply *r, uint64_t id, storage_user_t *out)
{
    memset(out, 0, sizeof(*out));
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 4 ||
        r->element[0]->type != REDIS_REPLY_STRING)
        return false;
    out->id = id;
    storage_redis_copy_str(out->handle, sizeof(out->handle), r->element[0]);
    storage_redis_copy_str(out->display_name, sizeof(out->display_name), r->element[1]);
    out->created_ms = storage_redis_uint_str(r->element[2]);
    storage_redis_copy_str(out->bio, sizeof(out->bio),
                           r->element[3]); /* absent for users from before bios */
    return true;
}

/* Profiles of n users in one round trip, with their counts (3 more commands each) or not;
 * as viewer sees them: those with whom viewer has a relation in hide are left unknown (id 0),
 * tested with one ZMSCORE per relation over exactly these ids, in the same round trip. */
static int users_get(storage_t *s, const uint64_t *ids, size_t n, storage_user_t *out, bool counts,
                     uint64_t viewer, unsigned hide)
{
    if (n == 0)
        return 0;
    bool *hidden = calloc(n, sizeof(*hidden));
    if (!hidden)
        return -ENOMEM;
    size_t stride = counts ? 4 : 1;
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    for (size_t i = 0; i < n; i++) {
        if (counts)
            add_profile(&b, ids[i]);
        else
            storage_redis_batch_add(&b, "HMGET " K_USER " handle display_name created bio",
                                    (ull)ids[i]);
    }
    size_t rels = storage__add_relation_reads(&b, viewer, hide, ids, n);
    int rc = storage_redis_batch_run(&b);
    if (rc == 0)
        rc = storage__relation_hits(b.r + stride * n, rels, n, hidden);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        redisReply **r = b.r + stride * i;
        if (storage_redis_is_error(r[0])) {
            rc = -EIO;
        } else if (hidden[i]) {
            memset(&out[i], 0, sizeof(out[i]));
        } else if (read_profile(r[0], ids[i], &out[i]) && counts) {
            out[i].followers_count = storage_redis_int(r[1]);
            out[i].following_count = storage_redis_int(r[2]);
            out[i].posts_count = storage_redis_int(r[3]);
        }
    }
    storage_redis_batch_free(&b);
    free(hidden);
    return rc;
}

int storage_users_get(storage_t *s, const uint64_t *ids, size_t n, storage_user_t *out)
{
    return users_get(s, ids, n, out, true, 0, 0);
}

int storage_profiles_get(storage_t *s, const uint64_t *ids, size_t n, storage_user_t *out)
{
    return users_get(s, ids, n, out, false, 0, 0);
}

int storage_users_get_as(storage_t *s, uint64_t viewer, unsigned hide, const uint64_t *ids,
                         size_t n, storage_user_t *out)
{
    return users_get(s, ids, n, out, true, viewer, hide);
}

int storage_profiles_get_as(storage_t *s, uint64_t viewer, unsigned hide, const uint64_t *ids,
                            size_t n, storage_user_t *out)
{
    return users_get(s, ids, n, out, false, viewer, hide);
}

int storage_user_update(storage_t *s, uint64_t id, const char *display_name, const char *bio,
                        storage_user_t *out)
{
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    /* Only an existing user is changed: HSET on a missing hash would create a half user. */
    storage_redis_batch_add(&b, "EXISTS " K_USER, (ull)id);
    int rc = storage_redis_batch_run_checked(&b);
    bool exists = rc == 0 && storage_redis_int(b.r[0]) == 1;
    storage_redis_batch_free(&b);
    if (rc)
        return rc;
    if (!exists)
        return -ENOENT;
    storage_redis_batch_init(&b, s->redis);
    if (display_name)
        storage_redis_batch_add(&b, "HSET " K_USER " display_name %s", (ull)id, display_name);
    if (bio)
        storage_redis_batch_add(&b, "HSET " K_USER " bio %s", (ull)id, bio);
    rc = storage_redis_batch_run_checked(&b);
    storage_redis_batch_free(&b);
    return rc ? rc : storage_user_get(s, id, out);
}

int storage_user_get(storage_t *s, uint64_t id, storage_user_t *out)
{
    int rc = storage_users_get(s, &id, 1, out);
    if (rc == 0 && out->id == 0)
        rc = -ENOENT;
    return rc;
}

int storage_user_credentials(storage_t *s, uint64_t id, uint8_t token_hash[32], storage_user_t *out)
{
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    storage_redis_batch_add(&b, "HMGET " K_USER " handle display_name created bio token", (ull)id);
    int rc = storage_redis_batch_run(&b);
    if (rc == 0) {
        const redisReply *r = b.r[0];
        if (storage_redis_is_error(r))
            rc = -EIO;
        else if (!read_profile(r, id, out) || r->elements < 5 ||
                 r->element[4]->type != REDIS_REPLY_STRING)
            rc = -ENOENT;
        else
            rc = unhex32(token_hash, r->element[4]->str, r->element[4]->len);
    }
    storage_redis_batch_free(&b);
    return rc;
}

int storage_users_by_handle(storage_t *s, const char *const *handles, size_t n, uint64_t *ids)
{
    if (n == 0)
        return 0;
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    for (size_t i = 0; i < n; i++) {
        char lower[STORAGE_HANDLE_MAX + 1];
        lowercase(lower, handles[i]);
        storage_redis_batch_add(&b, "GET " K_HANDLE, lower);
    }
    int rc = storage_redis_batch_run(&b);
    for (size_t i = 0; rc == 0 && i < n; i++)
        ids[i] = storage_redis_uint_str(b.r[i]);
    storage_redis_batch_free(&b);
    return rc;
}
