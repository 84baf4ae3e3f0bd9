/* tests/fuzz/fuzz_command.c -- the routing of a RESP-formatted command (storage/redis/
 * slots.c): storage_command_slot, storage_command_reads_only and storage_key_slot, on any
 * bytes in an exact-size buffer (a formatted command does not end in NUL).
 *
 * A slot is -1 or below 16384. When hiredis's own reader takes the bytes as one array of
 * bulk strings, a slot is the slot of one of its arguments after the command name, and a
 * command said to only read is named first. A key's slot is its hash tag's when it has a
 * non-empty one. */
#include "storage/redis/slots.h"
#include "tests/fuzz/fuzz.h"

#include <hiredis/hiredis.h>
#include <strings.h>

/* The bytes as hiredis reads them: one complete reply using every byte, or NULL. */
static redisReply *read_whole(const char *buf, size_t len)
{
    redisReader *reader = redisReaderCreate();
    FUZZ_CHECK(reader != NULL);
    void *reply = NULL;
    if (redisReaderFeed(reader, buf, len) != REDIS_OK ||
        redisReaderGetReply(reader, &reply) != REDIS_OK)
        reply = NULL;
    /* bytes left over: not one command */
    void *more = NULL;
    if (reply &&
        (redisReaderGetReply(reader, &more) != REDIS_OK || more || reader->pos != reader->len)) {
        freeReplyObject(reply);
        if (more)
            freeReplyObject(more);
        reply = NULL;
    }
    redisReaderFree(reader);
    return reply;
}

static void check_key_slot(const char *key, size_t len)
{
    int slot = storage_key_slot(key, len);
    FUZZ_CHECK(slot >= 0 && slot < STORAGE_SLOTS);
    const char *open = memchr(key, '{', len);
    const char *close = open ? memchr(open + 1, '}', len - (size_t)(open - key) - 1) : NULL;
    if (close && close > open + 1)
        FUZZ_CHECK(slot == (storage_crc16(open + 1, (size_t)(close - open - 1)) & 16383));
    else
        FUZZ_CHECK(slot == (storage_crc16(key, len) & 16383));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *cmd = malloc(size ? size : 1);
    FUZZ_CHECK(cmd != NULL);
    memcpy(cmd, data, size);
    int slot = storage_command_slot(cmd, size);
    bool reads = storage_command_reads_only(cmd, size);
    check_key_slot(cmd, size);
    FUZZ_CHECK(slot >= -1 && slot < STORAGE_SLOTS);
    redisReply *r = fuzz_resp_arrays_small(data, size) ? read_whole(cmd, size) : NULL;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements > 0) {
        bool strings = true;
        for (size_t i = 0; i < r->elements; i++)
            strings = strings && r->element[i]->type == REDIS_REPLY_STRING;
        if (strings && slot >= 0) {
            bool found = false;
            for (size_t i = 1; i < r->elements && !found; i++)
                found = storage_key_slot(r->element[i]->str, r->element[i]->len) == slot;
            FUZZ_CHECK(found);
        }
    }
    if (reads)
        FUZZ_CHECK(size > 0 && cmd[0] == '*');
    if (r)
        freeReplyObject(r);
    free(cmd);
    return 0;
}
