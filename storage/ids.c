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
#include <time.h>
#include <unistd.h>

#define NODES (1 << NODE_BITS)
/* Ids stop this long before the lease would expire unconfirmed: another process may take
 * the node the moment it does, and our clock may run slow. */
#define LEASE_MARGIN_MS 5000

/* KEYS[1] the lease; ARGV: our token, the lease's lifetime. 1: still ours, extended. */
static const char renew_script[] = "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end\n"
                                   "redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
                                   "return 1\n";

uint64_t storage_id_time_ms(uint64_t id)
{
    return (id >> (NODE_BITS + SEQ_BITS)) + STORAGE_ID_EPOCH_MS;
}

static uint64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The lease was confirmed at asked_ms (when the confirming round trip began). */
static void lease_confirmed(storage_t *s, int node, uint64_t asked_ms, uint64_t reconnects)
{
    atomic_store(&s->lease_reconnects, reconnects);
    atomic_store(&s->lease_until_ms, asked_ms + NODE_LEASE_MS - LEASE_MARGIN_MS);
    atomic_store(&s->node, node);
}

static bool lease_known(const storage_t *s)
{
    return monotonic_ms() < atomic_load(&s->lease_until_ms) &&
           storage_redis_reconnects(s->redis) == atomic_load(&s->lease_reconnects);
}

int storage_node_id(const storage_t *s)
{
    int node = atomic_load(&s->node);
    return node >= 0 && lease_known(s) ? node : -1;
}

/* Asks Redis whether node's lease is still ours and extends it: 1 yes (confirmed from now),
 * 0 no, or a negative errno. */
static int confirm_lease(storage_t *s, int node)
{
    char key[32], lease[16];
    snprintf(key, sizeof(key), K_NODE, node);
    snprintf(lease, sizeof(lease), "%d", NODE_LEASE_MS);
    const char *argv[] = {"EVAL", renew_script, "1", key, s->node_token, lease};
    uint64_t asked = monotonic_ms(), reconnects = storage_redis_reconnects(s->redis);
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    storage_redis_batch_addargv(&b, 6, argv, NULL);
    int rc = storage_redis_batch_run_checked(&b);
    int64_t ours = rc == 0 ? storage_redis_int(b.r[0]) : -1;
    storage_redis_batch_free(&b);
    if (rc)
        return rc;
    if (ours == 1)
        lease_confirmed(s, node, asked, reconnects);
    return ours == 1;
}

/* The node to mint from. A lease in its time that a reconnect made unverifiable (Redis may
 * have restarted empty, and another process taken the node) is confirmed here, one round
 * trip, rather than refusing ids until the loop's next renewal, up to a second later: a
 * reconnect found by a request after /readyz said ready had made that request a 503. */
static int minting_node(storage_t *s)
{
    int node = storage_node_id(s);
    if (node >= 0)
        return node;
    node = atomic_load(&s->node);
    if (node < 0 || monotonic_ms() >= atomic_load(&s->lease_until_ms))
        return -1; /* none, or lapsed: the loop's renewal takes it from there */
    return confirm_lease(s, node) == 1 ? storage_node_id(s) : -1;
}

uint64_t storage_id_next(storage_t *s)
{
    int leased = minting_node(s);
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
        uint64_t asked = monotonic_ms(), reconnects = storage_redis_reconnects(s->redis);
        storage_redis_batch_init(&b, s->redis);
        storage_redis_batch_add(&b, "SET " K_NODE " %s NX PX %d", slot, s->node_token,
                                NODE_LEASE_MS);
        rc = storage_redis_batch_run(&b);
        bool taken = rc == 0 && b.r[0]->type == REDIS_REPLY_STATUS;
        storage_redis_batch_free(&b);
        if (rc)
            return rc;
        if (taken) {
            lease_confirmed(s, slot, asked, reconnects);
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
    int ours = confirm_lease(s, node);
    if (ours < 0)
        return ours;
    if (ours == 1)
        return 0;
    /* Lost (expired while Redis was away, or Redis lost its data and another process took
     * it): no more ids from it, then a free node id again. */
    atomic_store(&s->node, -1);
    atomic_store(&s->lease_until_ms, 0);
    return storage_node_acquire(s);
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
