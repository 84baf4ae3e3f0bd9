/* tests/fuzz/fuzz_reply.c -- our own reading of hiredis replies (storage/redis/reply.c):
 * storage_redis_is_error, _int, _uint_str, _parse_u64, _error_is_transient and
 * _error_status, on replies hiredis's reader builds from any bytes, and on the raw bytes.
 *
 * A number read from a string is the string's value (only digits, within 64 bits); an
 * error's status is one of -EIO, -EAGAIN, -ENOSPC, transient ones never -EIO, and a reply
 * that is no error is neither an error nor transient. */
#include "storage/redis/redis.h"
#include "tests/fuzz/fuzz.h"

#include <errno.h>

static void check_u64(const char *p, size_t n)
{
    uint64_t v = storage_redis_parse_u64(p, n);
    bool digits = n >= 1 && n <= 20;
    for (size_t i = 0; digits && i < n; i++)
        digits = p[i] >= '0' && p[i] <= '9';
    if (v == 0)
        return; /* "0", or refused */
    FUZZ_CHECK(digits);
    char back[24];
    int len = snprintf(back, sizeof(back), "%llu", (unsigned long long)v);
    size_t zeros = 0;
    while (zeros < n && p[zeros] == '0')
        zeros++;
    FUZZ_CHECK((size_t)len == n - zeros && memcmp(back, p + zeros, (size_t)len) == 0);
}

static void check_reply(const redisReply *r, int depth)
{
    bool error = storage_redis_is_error(r);
    FUZZ_CHECK(error == (r->type == REDIS_REPLY_ERROR));
    if (r->type == REDIS_REPLY_INTEGER)
        FUZZ_CHECK(storage_redis_int(r) == r->integer);
    else
        FUZZ_CHECK(storage_redis_int(r) == -1);
    if (r->type == REDIS_REPLY_STRING) {
        uint64_t v = storage_redis_uint_str(r);
        FUZZ_CHECK(v == storage_redis_parse_u64(r->str, r->len));
        check_u64(r->str, r->len);
    } else {
        FUZZ_CHECK(storage_redis_uint_str(r) == 0);
    }
    bool transient = storage_redis_error_is_transient(r);
    int status = storage_redis_error_status(r);
    FUZZ_CHECK(!transient || error);
    FUZZ_CHECK(status == -EIO || status == -EAGAIN || status == -ENOSPC);
    FUZZ_CHECK(transient == (status != -EIO));
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && depth < 8 && i < r->elements; i++)
        check_reply(r->element[i], depth + 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *raw = malloc(size ? size : 1);
    FUZZ_CHECK(raw != NULL);
    memcpy(raw, data, size);
    check_u64(raw, size);
    redisReader *reader = redisReaderCreate();
    FUZZ_CHECK(reader != NULL);
    void *reply = NULL;
    if (fuzz_resp_arrays_small(data, size) && redisReaderFeed(reader, raw, size) == REDIS_OK) {
        while (redisReaderGetReply(reader, &reply) == REDIS_OK && reply) {
            check_reply(reply, 0);
            freeReplyObject(reply);
            reply = NULL;
        }
    }
    FUZZ_CHECK(storage_redis_is_error(NULL) && storage_redis_int(NULL) == -1);
    FUZZ_CHECK(storage_redis_error_status(NULL) == -EIO);
    redisReaderFree(reader);
    free(raw);
    return 0;
}
