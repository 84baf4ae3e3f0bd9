/* storage/redis/pool.c -- pools of synchronous hiredis connections, one per node.
 *
 * HTTP threads call Redis synchronously (a loopback round trip is tens of microseconds).
 * Each node's pool keeps up to pool_size idle connections. When a connection breaks, that
 * pool's generation moves on so that every idle connection opened before is dropped instead
 * of failing one request each. Connect attempts back off exponentially (100 ms .. 2 s); in
 * between, callers fail fast so requests answer 503 instead of waiting.
 *
 * A node can also accept connections and answer nothing (a stopped or overloaded Redis: the
 * kernel completes the handshake). Backoff does not see that, so each node has a breaker:
 * after a command timeout, or a connection that died though it was just opened, the node is
 * suspect, and until a command on it is answered again only one batch at a time, at most one
 * per PROBE_EVERY_MS, gets a connection (the probe, which tries for real); every other batch
 * fails at once without sending anything. Without it each request held an HTTP thread for the
 * whole command timeout, and a handful of threads were all held. A pooled connection found
 * dead at once (Redis restarted) does not open the breaker: the batch replays on a fresh one.
 */
#include "storage/redis/redis_internal.h"

#include <errno.h>
#include <stdlib.h>

#define PROBE_EVERY_MS 250 /* a suspect node is tried by one batch at most this often */

void storage_redis__conn_free(storage_redis__conn_t *c)
{
    if (c) {
        redisFree(c->c);
        free(c);
    }
}

/* Whether a suspect node refuses a connection now. Caller holds mu. */
static bool refuses(const storage_redis__node_t *n, uint64_t now)
{
    return n->suspect && (n->probing || now < n->probe_at_ms);
}

bool storage_redis__breaker_open(storage_redis_t *s, int i)
{
    pthread_mutex_lock(&s->mu);
    bool open = refuses(&s->nodes[i], storage_redis__monotonic_ms());
    pthread_mutex_unlock(&s->mu);
    return open;
}

bool storage_redis_breaker_open(storage_redis_t *s)
{
    pthread_mutex_lock(&s->mu);
    uint64_t now = storage_redis__monotonic_ms();
    bool open = false;
    for (int i = 0; i < s->n_nodes && !open; i++)
        open = refuses(&s->nodes[i], now);
    pthread_mutex_unlock(&s->mu);
    return open;
}

bool storage_redis__node_suspect(storage_redis_t *s, int i)
{
    pthread_mutex_lock(&s->mu);
    bool suspect = s->nodes[i].suspect;
    pthread_mutex_unlock(&s->mu);
    return suspect;
}

storage_redis__conn_t *storage_redis__acquire(storage_redis_t *s, int i, bool *fresh)
{
    storage_redis__node_t *n = &s->nodes[i];
    pthread_mutex_lock(&s->mu);
    uint64_t now = storage_redis__monotonic_ms();
    if (refuses(n, now)) {
        pthread_mutex_unlock(&s->mu);
        return NULL;
    }
    bool probe = n->suspect;
    if (probe) {
        n->probing = true;
        n->probe_at_ms = now + PROBE_EVERY_MS;
    }
    while (n->n_idle > 0) {
        storage_redis__conn_t *c = n->idle[--n->n_idle];
        if (c->gen == n->gen) {
            pthread_mutex_unlock(&s->mu);
            c->probe = probe;
            *fresh = false;
            return c;
        }
        storage_redis__conn_free(c);
    }
    if (now < n->next_attempt_ms) {
        if (probe)
            n->probing = false;
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
        if (probe)
            n->probing = false;
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
    c->probe = probe;
    *fresh = true;
    return c;
}

storage_redis__conn_end_t storage_redis__conn_failure(const redisContext *c, int err)
{
    /* hiredis 0.14 reports a blocking socket's SO_RCVTIMEO/SO_SNDTIMEO as REDIS_ERR_IO with
     * errno EAGAIN (it has no timeout code of its own). */
    bool timeout = c->err == REDIS_ERR_IO &&
                   (err == EAGAIN || err == EWOULDBLOCK || err == ETIMEDOUT || err == EINPROGRESS);
    return timeout ? STORAGE_REDIS__CONN_TIMED_OUT : STORAGE_REDIS__CONN_DEAD;
}

void storage_redis__release(storage_redis_t *s, int i, storage_redis__conn_t *c, bool fresh,
                            storage_redis__conn_end_t end)
{
    storage_redis__node_t *n = &s->nodes[i];
    pthread_mutex_lock(&s->mu);
    if (c->probe)
        n->probing = false;
    if (end != STORAGE_REDIS__CONN_OK) {
        n->gen++;
        atomic_store(&s->up, false);
        if ((end == STORAGE_REDIS__CONN_TIMED_OUT || fresh) && !n->suspect) {
            n->suspect = true;
            n->probe_at_ms = storage_redis__monotonic_ms() + PROBE_EVERY_MS;
        }
    } else {
        n->suspect = false; /* the node answers: the probe, or one sent before it failed */
        if (c->gen == n->gen && n->n_idle < (size_t)s->pool_size) {
            n->idle[n->n_idle++] = c;
            c = NULL;
        }
    }
    pthread_mutex_unlock(&s->mu);
    storage_redis__conn_free(c);
}

void storage_redis__node_answered(storage_redis_t *s, int i, storage_redis__conn_t *c)
{
    storage_redis__node_t *n = &s->nodes[i];
    pthread_mutex_lock(&s->mu);
    if (c->probe)
        n->probing = false;
    c->probe = false;
    n->suspect = false;
    pthread_mutex_unlock(&s->mu);
}
