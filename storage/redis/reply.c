/* storage/redis/reply.c -- reading hiredis replies: NULL-safe helpers that never keep the
 * reply (it belongs to its batch or callback). */
#include "storage/redis/redis.h"

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
