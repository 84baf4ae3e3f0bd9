/* tests/fuzz/fuzz_cluster_slots.c -- storage_cluster_slots_parse (storage/redis/
 * cluster_slots.c) on CLUSTER SLOTS replies that hiredis's reader builds from any bytes.
 *
 * Each range handed over lies in 0..16383 in order, with a port of 1..65535 and a host
 * that is the reply's string without NUL inside; a malformed reply hands over nothing; a
 * callback's nonzero return stops the walk and is returned. */
#include "storage/redis/cluster_slots.h"
#include "tests/fuzz/fuzz.h"

#include <errno.h>

typedef struct seen_s {
    size_t calls, stop_after;
} seen_t;

static int on_range(void *arg, const storage_slot_range_t *range)
{
    seen_t *seen = arg;
    FUZZ_CHECK(range->first >= 0 && range->first <= range->last && range->last < STORAGE_SLOTS);
    FUZZ_CHECK(range->port >= 1 && range->port <= 65535);
    FUZZ_CHECK(range->host != NULL && strlen(range->host) < 1u << 20);
    seen->calls++;
    return seen->calls == seen->stop_after ? -ENOSPC : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || !fuzz_resp_arrays_small(data, size))
        return 0;
    size_t stop_after = data[0] % 4; /* 0: never stop */
    redisReader *reader = redisReaderCreate();
    FUZZ_CHECK(reader != NULL);
    void *reply = NULL;
    if (redisReaderFeed(reader, (const char *)data + 1, size - 1) == REDIS_OK &&
        redisReaderGetReply(reader, &reply) == REDIS_OK && reply) {
        const redisReply *r = reply;
        seen_t seen = {.stop_after = stop_after};
        int rc = storage_cluster_slots_parse(r, on_range, &seen);
        if (rc == -EPROTO) {
            FUZZ_CHECK(seen.calls == 0);
        } else if (rc == -ENOSPC) {
            FUZZ_CHECK(stop_after && seen.calls == stop_after);
        } else {
            FUZZ_CHECK(rc == 0 && r->type == REDIS_REPLY_ARRAY && seen.calls == r->elements);
            FUZZ_CHECK(!stop_after || seen.calls < stop_after);
        }
        freeReplyObject(reply);
    }
    FUZZ_CHECK(storage_cluster_slots_parse(NULL, on_range, NULL) == -EPROTO);
    redisReaderFree(reader);
    return 0;
}
