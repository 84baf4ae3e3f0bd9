/* storage/handle_index.c -- the handle index: handles in lexicographic order, for prefix
 * search (mention autocomplete) without a scan.
 *
 * Members are "<lowercase handle> <id>" at score 0 in one sorted set per first character
 * (K_HANDLE_INDEX), so ZRANGEBYLEX finds a prefix's handles in O(log n + limit) and, on a
 * cluster, the 37 sets spread over the slots. A space sorts below every handle character,
 * so "an 7" comes before "ana 3": members sort as their handles do. Registration adds the
 * member in the batch that claims the handle (users.c) and takes it back when the claim
 * lost; search trusts a member only when the user still exists and still has that handle,
 * so a member left behind by a crash between the two is never shown. Handles from before
 * the index are added once per deployment at startup (storage_prepare), from their keys.
 */
#include "storage/storage_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Rounds of reads one search may take when blocks hide candidates, and the members read
 * beyond those still needed in each: a page falls short of limit only when more than
 * (SEARCH_ROUNDS * SEARCH_SLACK) candidates in a row are hidden from the caller. */
#define SEARCH_ROUNDS 3
#define SEARCH_SLACK 10
#define MEMBER_MAX (STORAGE_HANDLE_MAX + 1 + 20)

static void lower_copy(char *dst, const char *src, size_t n)
{
    size_t i = 0;
    for (; i < n && src[i] && i < STORAGE_HANDLE_MAX; i++)
        dst[i] = (char)(src[i] >= 'A' && src[i] <= 'Z' ? src[i] + ('a' - 'A') : src[i]);
    dst[i] = '\0';
}

/* The member of lower's user id, one argument (a format's space would split it in two). */
static void member(char out[MEMBER_MAX], const char *lower, uint64_t id)
{
    snprintf(out, MEMBER_MAX, "%s %llu", lower, (ull)id);
}

void storage__handle_index_add(storage_redis_batch_t *b, const char *lower, uint64_t id)
{
    char m[MEMBER_MAX];
    member(m, lower, id);
    storage_redis_batch_add(b, "ZADD " K_HANDLE_INDEX " 0 %s", lower, (size_t)1, m);
}

void storage__handle_index_del(storage_redis_batch_t *b, const char *lower, uint64_t id)
{
    char m[MEMBER_MAX];
    member(m, lower, id);
    storage_redis_batch_add(b, "ZREM " K_HANDLE_INDEX " %s", lower, (size_t)1, m);
}

int storage_handle_index_remove(storage_t *s, const char *handle, uint64_t id)
{
    char lower[STORAGE_HANDLE_MAX + 1];
    lower_copy(lower, handle, strlen(handle));
    if (!lower[0])
        return -EINVAL;
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    storage__handle_index_del(&b, lower, id);
    int rc = storage_redis_batch_run_checked(&b);
    storage_redis_batch_free(&b);
    return rc;
}

/* ---- search ------------------------------------------------------------------------------ */

/* Splits a member "<handle> <id>" into handle (lowercase) and id; false when malformed. */
static bool parse_member(const redisReply *m, char handle[STORAGE_HANDLE_MAX + 1], uint64_t *id)
{
    if (m->type != REDIS_REPLY_STRING)
        return false;
    const char *sp = memchr(m->str, ' ', m->len);
    if (!sp || sp == m->str || (size_t)(sp - m->str) > STORAGE_HANDLE_MAX)
        return false;
    size_t hn = (size_t)(sp - m->str);
    memcpy(handle, m->str, hn);
    handle[hn] = '\0';
    *id = storage_redis_parse_u64(sp + 1, m->len - hn - 1);
    return *id != 0;
}

/* One round: up to want members after min (a ZRANGEBYLEX bound), kept in out when the user
 * exists, still has the member's handle and is not hidden from viewer, until limit. Sets
 * min past the last member read and *more when the index may hold more. */
static int search_round(storage_t *s, uint64_t viewer, const char *lower, char *min, size_t want,
                        size_t limit, storage_user_t *out, size_t *n, bool *more)
{
    char handles[STORAGE_SEARCH_MAX + SEARCH_SLACK][STORAGE_HANDLE_MAX + 1];
    uint64_t ids[STORAGE_SEARCH_MAX + SEARCH_SLACK];
    size_t got = 0;
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    /* Every handle with the prefix sorts below "<prefix>\x7f": handle characters are ASCII. */
    storage_redis_batch_add(&b, "ZRANGEBYLEX " K_HANDLE_INDEX " %s (%s\x7f LIMIT 0 %llu", lower,
                            (size_t)1, min, lower, (ull)want);
    int rc = storage_redis_batch_run_checked(&b);
    *more = false;
    if (rc == 0) {
        const redisReply *r = b.r[0];
        if (r->type != REDIS_REPLY_ARRAY) {
            rc = -EIO;
        } else {
            *more = r->elements == want;
            for (size_t i = 0; i < r->elements && got < want; i++)
                if (parse_member(r->element[i], handles[got], &ids[got]))
                    got++;
            if (r->elements > 0) {
                const redisReply *last = r->element[r->elements - 1];
                if (last->type == REDIS_REPLY_STRING && last->len < MEMBER_MAX)
                    snprintf(min, MEMBER_MAX + 2, "(%.*s", (int)last->len, last->str);
                else
                    *more = false;
            }
        }
    }
    storage_redis_batch_free(&b);
    if (rc || got == 0)
        return rc;
    storage_user_t *users = calloc(got, sizeof(*users));
    if (!users)
        return -ENOMEM;
    rc = storage_users_get_as(s, viewer, STORAGE_REL_BLOCK, ids, got, users);
    for (size_t i = 0; rc == 0 && i < got && *n < limit; i++) {
        char now[STORAGE_HANDLE_MAX + 1];
        lower_copy(now, users[i].handle, sizeof(users[i].handle));
        if (users[i].id != 0 && strcmp(now, handles[i]) == 0)
            out[(*n)++] = users[i];
    }
    free(users);
    return rc;
}

int storage_users_search(storage_t *s, uint64_t viewer, const char *prefix, size_t limit,
                         storage_user_t *out, size_t *n)
{
    *n = 0;
    char lower[STORAGE_HANDLE_MAX + 1];
    lower_copy(lower, prefix, strlen(prefix));
    if (!lower[0] || limit < 1 || limit > STORAGE_SEARCH_MAX)
        return -EINVAL;
    char min[MEMBER_MAX + 2];
    snprintf(min, sizeof(min), "[%s", lower);
    bool more = true;
    for (int round = 0; round < SEARCH_ROUNDS && more && *n < limit; round++) {
        int rc =
            search_round(s, viewer, lower, min, limit - *n + SEARCH_SLACK, limit, out, n, &more);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- filling the index from the handle keys (once per deployment) ---------------------- */

/* Adds the handles of one page of handle keys: their ids in one round trip, the members in
 * another. */
static int fill_page(void *arg, const redisReply *keys)
{
    storage_t *s = arg;
    static const char open[] = "handle:{";
    size_t n = keys->elements;
    if (n == 0)
        return 0;
    char(*handles)[STORAGE_HANDLE_MAX + 1] = calloc(n, sizeof(*handles));
    if (!handles)
        return -ENOMEM;
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const redisReply *key = keys->element[i];
        size_t len = key->type == REDIS_REPLY_STRING ? key->len : 0;
        size_t hn = len > sizeof(open) ? len - sizeof(open) : 0; /* less "handle:{" and "}" */
        if (hn < 1 || hn > STORAGE_HANDLE_MAX || memcmp(key->str, open, sizeof(open) - 1) != 0 ||
            key->str[len - 1] != '}')
            continue;
        memcpy(handles[k], key->str + sizeof(open) - 1, hn);
        handles[k][hn] = '\0';
        storage_redis_batch_add(&b, "GET " K_HANDLE, handles[k]);
        k++;
    }
    int rc = k ? storage_redis_batch_run(&b) : 0;
    storage_redis_batch_t add;
    storage_redis_batch_init(&add, s->redis);
    for (size_t i = 0; rc == 0 && i < k; i++) {
        uint64_t id = storage_redis_uint_str(b.r[i]); /* 0: gone, or not a user's id */
        if (id)
            storage__handle_index_add(&add, handles[i], id);
    }
    if (rc == 0 && add.n)
        rc = storage_redis_batch_run_checked(&add);
    storage_redis_batch_free(&add);
    storage_redis_batch_free(&b);
    free(handles);
    return rc;
}

int storage__handle_index_fill(storage_t *s)
{
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    storage_redis_batch_add(&b, "EXISTS " K_HANDLE_INDEX_FILLED);
    int rc = storage_redis_batch_run_checked(&b);
    bool filled = rc == 0 && storage_redis_int(b.r[0]) == 1;
    storage_redis_batch_free(&b);
    if (rc || filled)
        return rc;
    /* Registrations meanwhile index themselves; a second process filling at the same time
     * adds the same members. The marker goes last, so a fill cut short runs again. */
    rc = storage_redis_scan(s->redis, "handle:{*}", fill_page, s);
    if (rc)
        return rc;
    storage_redis_batch_init(&b, s->redis);
    storage_redis_batch_add(&b, "SET " K_HANDLE_INDEX_FILLED " %llu", (ull)storage__now_ms());
    rc = storage_redis_batch_run_checked(&b);
    storage_redis_batch_free(&b);
    return rc;
}
