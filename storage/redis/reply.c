/* storage/redis/reply.c -- reading hiredis replies: NULL-safe helpers that never keep the
 * reply (it belongs to its batch or callback). */
#include "storage/redis/redis_internal.h"

#include <errno.h>
#include <string.h>
#include <time.h>

bool storage_redis_is_error(const redisReply *r)
{
    return !r || r->type == REDIS_REPLY_ERROR;
}

int64_t storage_redis_int(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_INTEGER ? (int64_t)r->integer : -1;
}

uint64_t storage_redis_parse_u64(const char *p, size_t n)
{
    if (!p || n == 0 || n > 20)
        return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return 0;
        uint64_t d = (uint64_t)(p[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return 0;
        v = v * 10 + d;
    }
    return v;
}

uint64_t storage_redis_uint_str(const redisReply *r)
{
    if (!r || r->type != REDIS_REPLY_STRING)
        return 0;
    return storage_redis_parse_u64(r->str, r->len);
}

void storage_redis_copy_str(char *dst, size_t size, const redisReply *r)
{
    dst[0] = '\0';
    if (r && r->type == REDIS_REPLY_STRING) {
        size_t n = r->len < size - 1 ? r->len : size - 1;
        memcpy(dst, r->str, n);
        dst[n] = '\0';
    }
}

static bool starts(const redisReply *r, const char *prefix)
{
    size_t n = strlen(prefix);
    return r->len >= n && strncmp(r->str, prefix, n) == 0 && (r->len == n || r->str[n] == ' ');
}

bool storage_redis_error_is_transient(const redisReply *r)
{
    static const char *const transient[] = {"OOM",      "LOADING",    "BUSY",     "MASTERDOWN",
                                            "READONLY", "NOREPLICAS", "TRYAGAIN", "CLUSTERDOWN"};
    if (!r || r->type != REDIS_REPLY_ERROR)
        return false;
    for (size_t i = 0; i < sizeof(transient) / sizeof(transient[0]); i++)
        if (starts(r, transient[i]))
            return true;
    return false;
}

int storage_redis_error_status(const redisReply *r)
{
    if (!storage_redis_error_is_transient(r))
        return -EIO;
    return starts(r, "OOM") ? -ENOSPC : -EAGAIN;
}

uint64_t storage_redis__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 + 1;
}

bool storage_redis_writes_refused_within(storage_redis_t *client, uint64_t ms)
{
    uint64_t at = atomic_load(&client->oom_at_ms);
    return at && storage_redis__now_ms() - at < ms;
}
