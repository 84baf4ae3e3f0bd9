/* api/connections.c -- admission and deadlines for every HTTP connection.
 *
 * libmicrohttpd's idle timeout restarts with every byte, so a request fed one byte at a time
 * stays open for ever, and its own per-IP limit is kept per worker thread. So we keep our
 * own books: a count per client address (looked at on accept, counted exactly when the
 * connection starts, where one over the cap is cut, released when it closes) and, for each connection whose request is still
 * arriving, the time it must have arrived by. Armed connections sit in one list in the order
 * they were armed, which is the order they expire in (one deadline for all), so the sweeper
 * thread only looks at the head. Cutting is shutdown(2), never close(2): the fd stays
 * libmicrohttpd's, which then reads the end of the stream and closes the connection itself.
 * A connection leaves the books (under the lock) before libmicrohttpd closes its fd, so the
 * sweeper never shuts an fd that has been reused.
 */
#include "api/connections.h"
#include "api/address_counts.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

#define SWEEP_MAX_MS 250 /* how late past its deadline a connection may be cut */
#define FD_RESERVE_BASE 256
#define FD_RESERVE_SHARE 32 /* plus 1/32 of the limit: pools grow with the cluster's size */

typedef struct conn_s {
    struct conn_s *prev, *next; /* in the armed list while a request is arriving */
    api_connections_t *owner;
    int fd;
    api_address_t peer;
    bool counted; /* holds a place in the peer's address count */
    bool armed;
    uint64_t deadline_ms;
} conn_t;

struct api_connections_s {
    api_connections_config_t cfg;
    api_connections_stats_t stats;
    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t wake;
    pthread_t sweeper;
    bool stopping;
    conn_t armed; /* sentinel of the armed list, oldest deadline first */
    api_address_counts_t *counts;
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static bool capped(const api_connections_t *c, const api_address_t *addr)
{
    return c->cfg.per_address_max > 0 && !api_proxies_contain(c->cfg.trusted, addr);
}

static void disarm(conn_t *k)
{
    if (!k->armed)
        return;
    k->prev->next = k->next;
    k->next->prev = k->prev;
    k->prev = k->next = NULL;
    k->armed = false;
}

/* Lock held. A re-arm goes to the tail: every deadline is as long, so the list stays sorted. */
static void arm(api_connections_t *c, conn_t *k)
{
    disarm(k);
    if (c->cfg.request_deadline_ms <= 0)
        return;
    k->deadline_ms = now_ms() + (uint64_t)c->cfg.request_deadline_ms;
    k->prev = c->armed.prev;
    k->next = &c->armed;
    c->armed.prev->next = k;
    c->armed.prev = k;
    k->armed = true;
}

static void *sweep(void *arg)
{
    api_connections_t *c = arg;
    uint64_t period = (uint64_t)c->cfg.request_deadline_ms / 4;
    if (period == 0 || period > SWEEP_MAX_MS)
        period = SWEEP_MAX_MS;
    pthread_mutex_lock(&c->mu);
    while (!c->stopping) {
        uint64_t now = now_ms();
        while (c->armed.next != &c->armed && c->armed.next->deadline_ms <= now) {
            conn_t *k = c->armed.next;
            disarm(k);
            shutdown(k->fd, SHUT_RDWR);
            atomic_fetch_add_explicit(&c->stats.cut_deadline, 1, memory_order_relaxed);
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += (long)(period * 1000000);
        until.tv_sec += until.tv_nsec / 1000000000;
        until.tv_nsec %= 1000000000;
        pthread_cond_timedwait(&c->wake, &c->mu, &until);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

api_connections_t *api_connections_create(const api_connections_config_t *cfg)
{
    api_connections_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->cfg = *cfg;
    c->armed.prev = c->armed.next = &c->armed;
    c->counts = api_address_counts_create();
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->wake, NULL);
    if (!c->counts || pthread_create(&c->sweeper, NULL, sweep, c) != 0) {
        api_address_counts_destroy(c->counts);
        pthread_cond_destroy(&c->wake);
        pthread_mutex_destroy(&c->mu);
        free(c);
        return NULL;
    }
    return c;
}

void api_connections_destroy(api_connections_t *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    c->stopping = true;
    pthread_cond_signal(&c->wake);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->sweeper, NULL);
    api_address_counts_destroy(c->counts);
    pthread_cond_destroy(&c->wake);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

const api_connections_stats_t *api_connections_stats(const api_connections_t *c)
{
    return &c->stats;
}

enum MHD_Result api_connections_admit(void *cls, const struct sockaddr *addr, socklen_t len)
{
    (void)len;
    api_connections_t *c = cls;
    api_address_t a;
    if (!api_address_from_sockaddr(addr, &a) || !capped(c, &a))
        return MHD_YES;
    bool full = api_address_counts_get(c->counts, &a) >= c->cfg.per_address_max;
    if (full)
        atomic_fetch_add_explicit(&c->stats.refused_per_address, 1, memory_order_relaxed);
    return full ? MHD_NO : MHD_YES;
}

static void started(api_connections_t *c, struct MHD_Connection *conn, void **socket_context)
{
    conn_t *k = calloc(1, sizeof(*k));
    if (!k)
        return; /* the connection runs without our books: no deadline, not counted */
    k->owner = c;
    const union MHD_ConnectionInfo *fd =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    const union MHD_ConnectionInfo *peer =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    k->fd = fd ? fd->connect_fd : -1;
    bool have_peer = peer && api_address_from_sockaddr(peer->client_addr, &k->peer);
    bool refused = false;
    if (have_peer && capped(c, &k->peer)) {
        /* The accept policy's look may race another thread's accept from the same address;
         * the count is exact here, so one over the cap is cut at once. */
        k->counted = api_address_counts_take(c->counts, &k->peer, c->cfg.per_address_max);
        refused = !k->counted;
    }
    pthread_mutex_lock(&c->mu);
    if (refused && k->fd >= 0)
        shutdown(k->fd, SHUT_RDWR);
    else if (k->fd >= 0)
        arm(c, k);
    pthread_mutex_unlock(&c->mu);
    if (refused)
        atomic_fetch_add_explicit(&c->stats.refused_per_address, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->stats.open, 1, memory_order_relaxed);
    *socket_context = k;
}

static void closed(api_connections_t *c, void **socket_context)
{
    conn_t *k = *socket_context;
    if (!k)
        return;
    pthread_mutex_lock(&c->mu);
    disarm(k);
    pthread_mutex_unlock(&c->mu);
    if (k->counted)
        api_address_counts_release(c->counts, &k->peer);
    atomic_fetch_sub_explicit(&c->stats.open, 1, memory_order_relaxed);
    *socket_context = NULL;
    free(k);
}

void api_connections_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                            enum MHD_ConnectionNotificationCode code)
{
    if (code == MHD_CONNECTION_NOTIFY_STARTED)
        started(cls, conn, socket_context);
    else if (code == MHD_CONNECTION_NOTIFY_CLOSED)
        closed(cls, socket_context);
}

static conn_t *conn_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return info ? info->socket_context : NULL;
}

void api_connections_request_read(struct MHD_Connection *conn)
{
    conn_t *k = conn_of(conn);
    if (!k)
        return;
    pthread_mutex_lock(&k->owner->mu);
    disarm(k);
    pthread_mutex_unlock(&k->owner->mu);
}

void api_connections_request_done(struct MHD_Connection *conn)
{
    conn_t *k = conn_of(conn);
    if (!k || k->fd < 0)
        return;
    pthread_mutex_lock(&k->owner->mu);
    arm(k->owner, k);
    pthread_mutex_unlock(&k->owner->mu);
}

const api_address_t *api_connections_peer(struct MHD_Connection *conn)
{
    conn_t *k = conn_of(conn);
    return k ? &k->peer : NULL;
}

size_t api_connection_limit(size_t requested)
{
    struct rlimit rl;
    size_t fds = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
                     ? (size_t)rl.rlim_cur
                     : 1024;
    size_t reserve = FD_RESERVE_BASE + fds / FD_RESERVE_SHARE;
    size_t limit = fds > reserve ? fds - reserve : 1;
    return requested && requested < limit ? requested : limit;
}
