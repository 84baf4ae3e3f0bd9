/* storage/ids.c -- time-ordered 53-bit ids and the lease on this process's node id.
 *
 * Layout: 41 bits of milliseconds since STORAGE_ID_EPOCH_MS | 6 bits node | 6 bits sequence.
 * 53 bits, not 64: sorted-set scores are doubles, exact only up to 2^53, and every ordered
 * index (timelines, post lists, follow lists) is scored by an id. When a millisecond's 64
 * sequence numbers are spent, the generator borrows the next millisecond instead of
 * waiting, so ids never repeat and never go backwards, even if the wall clock does.
 *
 * Node ids are leases (SET NX PX) renewed by the caller every few seconds; processes that
 * share a Redis therefore hold distinct node ids, up to 64 at once.
 */
#include "storage/storage_internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define NODES (1 << NODE_BITS)

uint64_t storage_id_time_ms(uint64_t id)
{
    return (id >> (NODE_BITS + SEQ_BITS)) + STORAGE_ID_EPOCH_MS;
}

int storage_node_id(const storage_t *s)
{
    return atomic_load(&s->node);
}

uint64_t storage_id_next(storage_t *s)
{
    int leased = atomic_load(&s->node);
    if (leased < 0)
        return 0;
    uint64_t now = storage__now_ms() - STORAGE_ID_EPOCH_MS;
    uint64_t node = (uint64_t)leased;
    pthread_mutex_lock(&s->id_mu);
    if (now > s->id_last_ms) {
        s->id_last_ms = now;
        s->id_seq = 0;
    } else if (++s->id_seq == (1u << SEQ_BITS)) {
        s->id_last_ms++;
        s->id_seq = 0;
    }
    uint64_t id = (s->id_last_ms << (NODE_BITS + SEQ_BITS)) | (node << SEQ_BITS) | s->id_seq;
    pthread_mutex_unlock(&s->id_mu);
    return id;
}

int storage_node_acquire(storage_t *s)
{
    if (!s->node_token[0])
        snprintf(s->node_token, sizeof(s->node_token), "%ld:%llu", (long)getpid(),
                 (ull)storage__now_ms());
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    storage_redis_batch_add(&b, "INCR " K_NODE_SEQ);
    int rc = storage_redis_batch_run(&b);
    int64_t start = rc == 0 ? storage_redis_int(b.r[0]) : -1;
    storage_redis_batch_free(&b);
    if (rc)
        return rc;
    if (start < 0)
        return -EIO;

    /* Try every slot once, starting where the counter points; the first is usually free. */
    for (int i = 0; i < NODES; i++) {
        int slot = (int)((start + i) % NODES);
        storage_redis_batch_init(&b, s->redis);
        storage_redis_batch_add(&b, "SET " K_NODE " %s NX PX %d", slot, s->node_token,
                                NODE_LEASE_MS);
        rc = storage_redis_batch_run(&b);
        bool taken = rc == 0 && b.r[0]->type == REDIS_REPLY_STATUS;
        storage_redis_batch_free(&b);
        if (rc)
            return rc;
        if (taken) {
            atomic_store(&s->node, slot);
            return 0;
        }
    }
    return -EBUSY;
}

int storage_node_renew(storage_t *s)
{
    int node = atomic_load(&s->node);
    if (node < 0)
        return storage_node_acquire(s);
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    storage_redis_batch_add(&b, "GET " K_NODE, node);
    int rc = storage_redis_batch_run(&b);
    bool ours =
        rc == 0 && b.r[0]->type == REDIS_REPLY_STRING && strcmp(b.r[0]->str, s->node_token) == 0;
    storage_redis_batch_free(&b);
    if (rc)
        return rc;
    if (!ours) /* the lease expired while Redis was away: take a free node id again */
        return storage_node_acquire(s);
    storage_redis_batch_init(&b, s->redis);
    storage_redis_batch_add(&b, "PEXPIRE " K_NODE " %d", node, NODE_LEASE_MS);
    rc = storage_redis_batch_run(&b);
    storage_redis_batch_free(&b);
    return rc;
}

void storage_node_release(storage_t *s)
{
    int node = atomic_exchange(&s->node, -1); /* no ids from a node we no longer hold */
    if (node < 0)
        return;
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    storage_redis_batch_add(&b, "GET " K_NODE, node);
    if (storage_redis_batch_run(&b) == 0 && b.r[0]->type == REDIS_REPLY_STRING &&
        strcmp(b.r[0]->str, s->node_token) == 0) {
        storage_redis_batch_free(&b);
        storage_redis_batch_init(&b, s->redis);
        storage_redis_batch_add(&b, "DEL " K_NODE, node);
        (void)storage_redis_batch_run(&b);
    }
    storage_redis_batch_free(&b);
}
