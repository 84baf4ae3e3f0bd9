/* storage/redis/pool.c -- pools of synchronous hiredis connections, one per node.
 *
 * HTTP threads call Redis synchronously (a loopback round trip is tens of microseconds).
 * Each node's pool keeps up to pool_size idle connections. When a connection breaks, that
 * pool's generation moves on so that every idle connection opened before is dropped instead
 * of failing one request each. Connect attempts back off exponentially (100 ms .. 2 s); in
 * between, callers fail fast with -EAGAIN so requests answer 503 instead of waiting.
 */
#include "storage/redis/redis_internal.h"

#include <stdlib.h>

void storage_redis__conn_free(storage_redis__conn_t *c)
{
    if (c) {
        redisFree(c->c);
        free(c);
    }
}

storage_redis__conn_t *storage_redis__acquire(storage_redis_t *s, int i, bool *fresh)
{
    storage_redis__node_t *n = &s->nodes[i];
    pthread_mutex_lock(&s->mu);
    while (n->n_idle > 0) {
        storage_redis__conn_t *c = n->idle[--n->n_idle];
        if (c->gen == n->gen) {
            pthread_mutex_unlock(&s->mu);
            *fresh = false;
            return c;
        }
        storage_redis__conn_free(c);
    }
    if (storage_redis__monotonic_ms() < n->next_attempt_ms) {
        pthread_mutex_unlock(&s->mu);
        return NULL;
    }
    unsigned gen = n->gen;
    pthread_mutex_unlock(&s->mu);

    redisContext *rc = storage_redis__connect_node(s, i, s->connect_timeout_ms);
    storage_redis__conn_t *c = rc ? malloc(sizeof(*c)) : NULL;
    pthread_mutex_lock(&s->mu);
    if (!c) {
        if (rc)
            redisFree(rc);
        n->backoff_ms = storage_redis__backoff_next(n->backoff_ms);
        n->next_attempt_ms = storage_redis__monotonic_ms() + (uint64_t)n->backoff_ms;
        atomic_store(&s->up, false);
        pthread_mutex_unlock(&s->mu);
        return NULL;
    }
    if (!atomic_load(&s->up))
        atomic_fetch_add(&s->reconnects, 1);
    n->backoff_ms = 0;
    n->next_attempt_ms = 0;
    atomic_store(&s->up, true);
    pthread_mutex_unlock(&s->mu);
    c->c = rc;
    c->gen = gen;
    *fresh = true;
    return c;
}

void storage_redis__release(storage_redis_t *s, int i, storage_redis__conn_t *c, bool broken)
{
    storage_redis__node_t *n = &s->nodes[i];
    pthread_mutex_lock(&s->mu);
    if (broken) {
        n->gen++;
        atomic_store(&s->up, false);
    } else if (c->gen == n->gen && n->n_idle < (size_t)s->pool_size) {
        n->idle[n->n_idle++] = c;
        c = NULL;
    }
    pthread_mutex_unlock(&s->mu);
    storage_redis__conn_free(c);
}
