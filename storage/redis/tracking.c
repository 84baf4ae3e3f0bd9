/* storage/redis/tracking.c -- Redis' invalidations for a cache in the process.
 *
 * One connection, on a thread of its own, to the node that holds every slot: CLIENT
 * TRACKING in broadcast mode over the caller's key prefixes, redirected to itself, then
 * SUBSCRIBE __redis__:invalidate (hiredis 0.14 speaks RESP2, where invalidations come as
 * messages on that channel). From then on every write to a matching key, by anyone, is a
 * message naming the key; a flush of Redis is a message with no keys. The tracking lives as
 * long as the connection: when it ends, or the deployment stops being one node, the caller
 * is told to drop everything and keep nothing until it is back.
 *
 * "Settled" is what a read from the cache checks: every invalidation Redis sent before now
 * has been handed over. Redis writes a broadcast invalidation in the same event-loop turn as
 * the write's reply, and before it (the tracking connection is queued for writing last, and
 * Redis writes the newest queued first), so on one host a write whose answer anyone has seen
 * is either on this socket or handed over. The check: nothing waiting on the socket (a
 * peek) and the thread not between reading and handing over (applying).
 *
 * Alive: a Redis that stops answering (paused, or cut off from this host while others still
 * write to it) sends no invalidations either, and the cache would serve what others have
 * since changed. So the thread PINGs every PING_EVERY_MS while nothing else comes, and the
 * cache is read only while Redis was heard from within ALIVE_MS; a ping unanswered past that
 * ends the connection (everything dropped; the reconnect starts afresh).
 *
 * A blocking connection on a thread rather than the event loop: it is idle but for
 * invalidations, and the peek needs its descriptor and a plain read/hand-over step.
 */
#include "storage/redis/redis_internal.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define RETRY_MS 500
#define TOPOLOGY_CHECK_MS 1000
#define PING_EVERY_MS 250
#define ALIVE_MS 1000
#define PREFIXES_MAX 8

struct storage_redis_tracking_s {
    storage_redis_t *redis;
    storage_redis_tracking_cb_t cb;
    const char *prefixes[PREFIXES_MAX];
    int n_prefixes;
    pthread_t thread;
    int stop_fd; /* eventfd: written once to stop */
    atomic_bool up;
    atomic_ullong client_id; /* the connection's CLIENT ID while up, 0 otherwise */
    /* The tracking connection's socket (-1: none). Read under fd_lock, written under it as
     * a writer: the socket is never closed under a reader's peek. */
    pthread_rwlock_t fd_lock;
    int fd;
    atomic_int applying;    /* 1 from a read of the socket until its messages are handed over */
    atomic_ullong heard_ms; /* when Redis last sent anything on the connection */
};

/* The node holding slot 0 when every slot is on one node; -1 otherwise. */
static int one_node(storage_redis_t *s)
{
    bool cluster;
    int masters;
    uint64_t redirects, refreshes, pipelines;
    storage_redis_topology_stats(s, &cluster, &masters, &redirects, &refreshes, &pipelines);
    return masters == 1 ? storage_redis__topology_node(s, 0) : -1;
}

static bool reply_ok(redisReply *r, int type)
{
    bool ok = r && r->type == type;
    freeReplyObject(r);
    return ok;
}

/* Opens node's connection with tracking on and the channel subscribed (*client_id: its
 * CLIENT ID); NULL on failure. */
static redisContext *open_tracking(storage_redis_tracking_t *t, int node,
                                   unsigned long long *client_id)
{
    redisContext *c = storage_redis__connect_node(t->redis, node, t->redis->connect_timeout_ms);
    if (!c)
        return NULL;
    redisReply *id = redisCommand(c, "CLIENT ID");
    const char *argv[6 + 2 * PREFIXES_MAX] = {"CLIENT",   "TRACKING", "on",
                                              "REDIRECT", NULL,       "BCAST"};
    char id_str[24];
    int argc = 6;
    if (id && id->type == REDIS_REPLY_INTEGER) {
        snprintf(id_str, sizeof(id_str), "%lld", id->integer);
        argv[4] = id_str;
        *client_id = (unsigned long long)id->integer;
        for (int i = 0; i < t->n_prefixes; i++) {
            argv[argc++] = "PREFIX";
            argv[argc++] = t->prefixes[i];
        }
    }
    freeReplyObject(id);
    if (!argv[4] || !reply_ok(redisCommandArgv(c, argc, argv, NULL), REDIS_REPLY_STATUS) ||
        !reply_ok(redisCommand(c, "SUBSCRIBE __redis__:invalidate"), REDIS_REPLY_ARRAY)) {
        redisFree(c);
        return NULL;
    }
    return c;
}

/* Hands one message over; false when the reply is not one (the connection is not sane). */
static bool hand_over(storage_redis_tracking_t *t, const redisReply *r)
{
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[0]->type == REDIS_REPLY_STRING && strcmp(r->element[0]->str, "pong") == 0)
        return true; /* a PING's answer (subscribed, RESP2): heard from */
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        r->element[0]->type != REDIS_REPLY_STRING)
        return false;
    if (strcmp(r->element[0]->str, "message") != 0)
        return true; /* a subscription's confirmation */
    const redisReply *keys = r->element[2];
    if (keys->type == REDIS_REPLY_NIL) { /* FLUSHALL, FLUSHDB: everything */
        t->cb.reset(t->cb.arg, true);
        return true;
    }
    if (keys->type == REDIS_REPLY_STRING) {
        t->cb.invalidate(t->cb.arg, keys->str, keys->len);
        return true;
    }
    for (size_t i = 0; keys->type == REDIS_REPLY_ARRAY && i < keys->elements; i++)
        if (keys->element[i]->type == REDIS_REPLY_STRING)
            t->cb.invalidate(t->cb.arg, keys->element[i]->str, keys->element[i]->len);
    return true;
}

/* Reads what the socket holds and hands every whole message over; false when the
 * connection ended or broke. */
static bool drain(storage_redis_tracking_t *t, redisContext *c)
{
    atomic_store(&t->applying, 1);
    bool ok = redisBufferRead(c) == REDIS_OK;
    if (ok)
        atomic_store(&t->heard_ms, storage_redis__now_ms());
    void *reply = NULL;
    while (ok && redisGetReplyFromReader(c, &reply) == REDIS_OK && reply) {
        ok = hand_over(t, reply);
        freeReplyObject(reply);
        reply = NULL;
    }
    ok = ok && c->err == 0;
    atomic_store(&t->applying, 0);
    return ok;
}

/* Waits for the socket (or the stop) at most ms; 1 readable, 0 timeout, -1 stop. */
static int wait_for(storage_redis_tracking_t *t, int fd, int ms)
{
    struct pollfd p[2] = {{.fd = t->stop_fd, .events = POLLIN}, {.fd = fd, .events = POLLIN}};
    int n = poll(p, fd >= 0 ? 2 : 1, ms);
    if (n > 0 && (p[0].revents & POLLIN))
        return -1;
    return n > 0 && fd >= 0 && p[1].revents ? 1 : 0;
}

static void *run(void *arg)
{
    storage_redis_tracking_t *t = arg;
    for (;;) {
        int node = one_node(t->redis);
        unsigned long long client_id = 0;
        redisContext *c = node >= 0 ? open_tracking(t, node, &client_id) : NULL;
        if (!c) {
            if (wait_for(t, -1, RETRY_MS) < 0)
                return NULL;
            continue;
        }
        pthread_rwlock_wrlock(&t->fd_lock);
        t->fd = c->fd;
        pthread_rwlock_unlock(&t->fd_lock);
        t->cb.reset(t->cb.arg, true); /* what was written while nobody listened */
        atomic_store(&t->heard_ms, storage_redis__now_ms());
        atomic_store(&t->client_id, client_id);
        atomic_store(&t->up, true);
        int w;
        uint64_t pinged = 0, topology_checked = storage_redis__now_ms();
        while ((w = wait_for(t, c->fd, PING_EVERY_MS)) >= 0) {
            if (w == 1 && !drain(t, c))
                break;
            uint64_t now = storage_redis__now_ms(), heard = atomic_load(&t->heard_ms);
            if (pinged > heard && now - pinged > ALIVE_MS)
                break; /* no answer: Redis stopped, or the path to it */
            if (now - heard >= PING_EVERY_MS && pinged <= heard) {
                pinged = now;
                int done = 0;
                if (redisAppendCommand(c, "PING") != REDIS_OK ||
                    redisBufferWrite(c, &done) != REDIS_OK)
                    break;
            }
            if (now - topology_checked >= TOPOLOGY_CHECK_MS) {
                topology_checked = now;
                if (one_node(t->redis) != node)
                    break;
            }
        }
        /* Down before the drop: a read that checks "settled" after this misses the cache. */
        pthread_rwlock_wrlock(&t->fd_lock);
        atomic_store(&t->up, false);
        atomic_store(&t->client_id, 0);
        t->fd = -1;
        pthread_rwlock_unlock(&t->fd_lock);
        t->cb.reset(t->cb.arg, false);
        redisFree(c);
        if (w < 0)
            return NULL;
    }
}

storage_redis_tracking_t *storage_redis_tracking_start(storage_redis_t *s,
                                                       const char *const *prefixes, int n,
                                                       const storage_redis_tracking_cb_t *cb)
{
    if (n < 1 || n > PREFIXES_MAX)
        return NULL;
    storage_redis_tracking_t *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->redis = s;
    t->cb = *cb;
    for (int i = 0; i < n; i++)
        t->prefixes[i] = prefixes[i];
    t->n_prefixes = n;
    atomic_init(&t->up, false);
    atomic_init(&t->client_id, 0);
    t->fd = -1;
    pthread_rwlock_init(&t->fd_lock, NULL);
    atomic_init(&t->applying, 0);
    atomic_init(&t->heard_ms, 0);
    t->stop_fd = eventfd(0, EFD_CLOEXEC);
    if (t->stop_fd < 0 || pthread_create(&t->thread, NULL, run, t) != 0) {
        if (t->stop_fd >= 0)
            close(t->stop_fd);
        pthread_rwlock_destroy(&t->fd_lock);
        free(t);
        return NULL;
    }
    return t;
}

void storage_redis_tracking_stop(storage_redis_tracking_t *t)
{
    if (!t)
        return;
    uint64_t one = 1;
    if (write(t->stop_fd, &one, sizeof(one)) != (ssize_t)sizeof(one))
        abort(); /* an eventfd write of 1 cannot fail; the join below would hang */
    pthread_join(t->thread, NULL);
    close(t->stop_fd);
    pthread_rwlock_destroy(&t->fd_lock);
    free(t);
}

/* A PING's answer on a subscribed RESP2 connection. */
#define PONG "*2\r\n$4\r\npong\r\n$0\r\n\r\n"

/* Whether the n bytes waiting are nothing but whole answers to our pings (no invalidation). */
static bool only_pongs(const char *waiting, ssize_t n)
{
    size_t len = sizeof(PONG) - 1;
    if (n <= 0 || (size_t)n % len != 0)
        return false;
    for (size_t at = 0; at < (size_t)n; at += len)
        if (memcmp(waiting + at, PONG, len) != 0)
            return false;
    return true;
}

bool storage_redis_tracking_settled(storage_redis_tracking_t *t)
{
    if (!t || !atomic_load(&t->up))
        return false;
    /* The peek first, then applying: a read that emptied the socket set applying before it. */
    pthread_rwlock_rdlock(&t->fd_lock);
    char waiting[4 * (sizeof(PONG) - 1) + 1]; /* filled, it may hide more behind: not settled */
    ssize_t n = t->fd >= 0 ? recv(t->fd, waiting, sizeof(waiting), MSG_PEEK | MSG_DONTWAIT) : 0;
    bool empty = n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    bool settled = (empty || (n < (ssize_t)sizeof(waiting) && only_pongs(waiting, n))) &&
                   atomic_load(&t->applying) == 0 && atomic_load(&t->up) &&
                   storage_redis__now_ms() - atomic_load(&t->heard_ms) <= ALIVE_MS;
    pthread_rwlock_unlock(&t->fd_lock);
    return settled;
}

unsigned long long storage_redis_tracking_client_id(storage_redis_tracking_t *t)
{
    return t && atomic_load(&t->up) ? atomic_load(&t->client_id) : 0;
}
