/* storage/redis/cluster_slots.h -- reading a CLUSTER SLOTS reply into slot ranges. A pure
 * function of the reply (no I/O, no client state): topology.c installs what it reads, and
 * tests/fuzz feeds it replies built from arbitrary bytes. Thread: any. */
#ifndef TIDINGS_STORAGE_REDIS_CLUSTER_SLOTS_H
#define TIDINGS_STORAGE_REDIS_CLUSTER_SLOTS_H

#include "storage/redis/slots.h"

#include <hiredis/hiredis.h>

/* One range of a CLUSTER SLOTS reply and the master that owns it. */
typedef struct storage_slot_range_s {
    int first, last;  /* 0 <= first <= last < STORAGE_SLOTS */
    const char *host; /* borrowed from the reply, without NUL inside; "": the node that answered */
    int port;         /* 1..65535 */
} storage_slot_range_t;

/* Returns nonzero to stop the walk; arg is the caller's. */
typedef int (*storage_slot_range_cb)(void *arg, const storage_slot_range_t *range);

/* Reads r, [[first, last, [host, port, id…], replicas…]…], and calls range for each range in
 * order, but only once every range has been read and found well formed, so a malformed
 * reply changes nothing. r is borrowed. Returns 0, -EPROTO when r is not such a reply (range
 * never called), or the first nonzero value range returned. */
int storage_cluster_slots_parse(const redisReply *r, storage_slot_range_cb range, void *arg);

#endif
