/* storage/job_queue.c -- queueing a fan-out job exactly once.
 *
 * The request path's batches may be sent twice: a pooled connection that dies mid-batch is
 * replaced and the batch replayed, and a command that timed out may have run. A plain
 * `XADD fanout:{n} *` replayed queues a second job (a post delivered twice). Each job carries
 * its request's unique id ("at"), so the queueing is a script that adds the entry only when
 * a marker for that id is new; the marker shares the stream's slot and outlives any replay.
 *
 * Posts and deletes also join their author's order list (K_JOB_ORDER): the engine runs an
 * author's jobs one at a time in that order, across processes (storage_job_turn).
 */
#include "storage/storage_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define K_QUEUED "fanout:{%d}:q:%llu" /* string: job "at" was queued on the shard; expires */
#define QUEUED_TTL_S 300
#define FIELDS_MAX 16
#define ABANDONED "abandoned" /* the marker's value once a lost publish was given up */
#define ABANDONED_ERROR "ABANDONED the request that queues this job was answered as failed"

/* KEYS[1] the stream, KEYS[2] the marker, KEYS[3] (optional) the author's order list; ARGV[1]
 * the marker's lifetime, then field, value… The order list gets the entry in the stream's
 * order: one script on one slot, so no other entry comes between. */
static const char enqueue_script[] =
    "if not redis.call('SET', KEYS[2], 1, 'NX', 'EX', ARGV[1]) then\n"
    "  if redis.call('GET', KEYS[2]) == '" ABANDONED "' then\n"
    "    return redis.error_reply('" ABANDONED_ERROR "')\n"
    "  end\n"
    "  return false\n"
    "end\n"
    "local id = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 2))\n"
    "if KEYS[3] then redis.call('RPUSH', KEYS[3], id) end\n"
    "return id\n";

void storage__job_enqueue(storage_redis_batch_t *b, int shard, uint64_t at, uint64_t in_order_of,
                          const char *fields, ...)
{
    char text[512], stream[32], marker[64], order[64], ttl[16];
    va_list ap;
    va_start(ap, fields);
    int len = vsnprintf(text, sizeof(text), fields, ap);
    va_end(ap);
    snprintf(stream, sizeof(stream), K_FANOUT, shard);
    snprintf(marker, sizeof(marker), K_QUEUED, shard, (unsigned long long)at);
    snprintf(order, sizeof(order), K_JOB_ORDER, shard, (unsigned long long)in_order_of);
    snprintf(ttl, sizeof(ttl), "%d", QUEUED_TTL_S);
    const char *argv[7 + FIELDS_MAX] = {"EVAL", enqueue_script, in_order_of ? "3" : "2", stream,
                                        marker};
    int argc = 5;
    if (in_order_of)
        argv[argc++] = order;
    argv[argc++] = ttl;
    for (char *save = NULL,
              *f = len > 0 && (size_t)len < sizeof(text) ? strtok_r(text, " ", &save) : NULL;
         f && argc < (int)(sizeof(argv) / sizeof(argv[0])); f = strtok_r(NULL, " ", &save))
        argv[argc++] = f;
    storage_redis_batch_addargv(b, argc, argv, NULL);
}

/* KEYS[1] the marker; ARGV[1] its lifetime, ARGV[2] "1" to fence. 1: the job was queued;
 * 0: it was not, and with fence it never will be (the marker says so to a late enqueue). */
static const char fence_script[] =
    "local v = redis.call('GET', KEYS[1])\n"
    "if v == '" ABANDONED "' then return 0 end\n"
    "if v then return 1 end\n"
    "if ARGV[2] == '1' then redis.call('SET', KEYS[1], '" ABANDONED "', 'EX', ARGV[1]) end\n"
    "return 0\n";

void storage__job_fence(storage_redis_batch_t *b, int shard, uint64_t at, bool fence)
{
    char marker[64], ttl[16];
    snprintf(marker, sizeof(marker), K_QUEUED, shard, (unsigned long long)at);
    snprintf(ttl, sizeof(ttl), "%d", QUEUED_TTL_S);
    const char *argv[] = {"EVAL", fence_script, "1", marker, ttl, fence ? "1" : "0"};
    storage_redis_batch_addargv(b, 6, argv, NULL);
}
