/* storage/readiness.c -- what /readyz says, kept up by a background probe so that asking never
 * waits for Redis.
 *
 * A loop sends a probe every STORAGE_READINESS_PROBE_MS on its asynchronous connection,
 * never a second while one is unanswered: a cheap read of the readiness key, and every
 * WRITE_EVERY-th time the post-sized expiring write that storage_write_probe makes (a Redis at
 * maxmemory refuses it, as it would refuse posts). The outcome goes into atomics any thread
 * reads. A probe unanswered for PROBE_LATE_MS makes Redis count as down at once, which is what
 * a paused Redis looks like (its connections stay open and nothing answers); the next answer
 * brings it back. Answering from this state takes no time, whatever Redis does. While the
 * synchronous client's breaker refuses requests (storage/redis/pool.c), Redis counts as down
 * too: those requests would be answered 503.
 *
 * The timings: probes every 100 ms and late after 150 ms, so readiness turns 503 within a
 * quarter of a second of Redis stopping (a load balancer that polls every second drains the
 * process on its next poll), while a loopback Redis that answers in milliseconds is never
 * late. The write goes only every half second: with appendfsync always it is an fsync.
 */
#include "storage/storage_async.h"
#include "storage/storage_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

#define WRITE_EVERY 5                /* every 5th probe writes: twice a second */
#define PROBE_LATE_MS 150            /* an unanswered probe this old: Redis counts as down */
#define PROBE_STALE_MS 1000          /* no answer this long (no probe sent): not ready either */
#define WRITE_REFUSED_MEMORY_MS 3000 /* an OOM a request met keeps readiness down this long */
#define PROBE_TTL_MS 10000
#define PROBE_BYTES 8192 /* as large as a large post: refused for memory when posts would be */

static uint64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 + 1; /* never 0 */
}

typedef struct probe_s {
    storage_t *s;
    bool write;
} probe_t;

/* A probe's outcome: replied (an error reply is a reply: Redis is up, though it refuses
 * something), and for a write its status. */
static void record(storage_t *s, bool write, bool replied, int status)
{
    if (write || !replied)
        atomic_store(&s->ready_write_status, status);
    atomic_store(&s->ready_replied, replied);
    atomic_store(&s->ready_answered_ms, monotonic_ms());
    atomic_store(&s->ready_sent_ms, 0);
}

static void on_probe(void *priv, int status, redisReply *r)
{
    probe_t *p = priv;
    if (status == -ECANCELED) /* closing: no answer, and no more probes */
        atomic_store(&p->s->ready_sent_ms, 0);
    else if (status == -EIO) /* an error reply: -ENOSPC for OOM, -EAGAIN for LOADING… */
        record(p->s, p->write, true, storage_redis_error_status(r));
    else
        record(p->s, p->write, status == 0, status);
    free(p);
}

int storage_readiness_probe(storage_async_t *sa, storage_t *s)
{
    if (atomic_load(&s->ready_sent_ms))
        return 0; /* the last one is unanswered: it is the one that says how late Redis is */
    bool write = s->ready_probes++ % WRITE_EVERY == 0;
    probe_t *p = malloc(sizeof(*p));
    if (!p)
        return -ENOMEM;
    *p = (probe_t){.s = s, .write = write};
    int node = storage_node_id(s);
    static const char payload[PROBE_BYTES];
    atomic_store(&s->ready_sent_ms, monotonic_ms());
    int rc = write ? storage_redis_send(sa->redis, STORAGE_REDIS_WRITER, on_probe, p,
                                        "SET " K_READY " %b PX %d", node < 0 ? 0 : node, payload,
                                        sizeof(payload), PROBE_TTL_MS)
                   : storage_redis_send(sa->redis, STORAGE_REDIS_WRITER, on_probe, p,
                                        "PTTL " K_READY, node < 0 ? 0 : node);
    if (rc) { /* disconnected: that is an outcome too */
        free(p);
        record(s, write, false, rc);
    }
    return rc;
}

void storage_readiness(storage_t *s, storage_readiness_t *out)
{
    uint64_t now = monotonic_ms();
    uint64_t sent = atomic_load(&s->ready_sent_ms), answered = atomic_load(&s->ready_answered_ms);
    bool late = sent && now > sent + PROBE_LATE_MS;
    bool stale = !answered || now > answered + PROBE_STALE_MS;
    /* The requests' own client must take commands too: its breaker is open for a moment
     * after a timeout, until a probe of its own gets through (pool.c). */
    out->redis =
        !late && !stale && atomic_load(&s->ready_replied) && !storage_redis_breaker_open(s->redis);
    if (!out->redis)
        out->writes = -EAGAIN;
    else if (storage_redis_writes_refused_within(s->redis, WRITE_REFUSED_MEMORY_MS))
        out->writes = -ENOSPC;
    else
        out->writes = atomic_load(&s->ready_write_status);
}
