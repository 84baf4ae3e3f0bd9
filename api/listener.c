/* api/listener.c -- the listening socket, accepted on a thread of its own.
 *
 * libmicrohttpd could listen itself, but in epoll mode with a thread pool its
 * MHD_quiesce_daemon (0.9.75) races the workers: both take the listen socket out of a
 * worker's epoll set, unlocked, and the loser aborts the process ("Failed to remove listen
 * FD from epoll set", seen at SIGTERM under ThreadSanitizer). So the daemon runs with
 * MHD_USE_NO_LISTEN_SOCKET and this thread hands each accepted connection over with
 * MHD_add_connection: the same admission as MHD's own accept (the accept policy, the
 * a worker chosen by descriptor), queued to that worker's loop. Stopping is then ours and
 * race-free: shutdown(2) wakes the blocked accept(2), the thread ends, and close(2) makes the
 * kernel refuse what comes next.
 *
 * The connection limit is kept here too. MHD counts a connection only once its worker takes
 * it off the queue, so a burst accepted faster than the workers run would pass MHD's limit
 * and hold descriptors Redis needs. Here a connection counts from its accept(2) to its
 * NOTIFY_CONNECTION_CLOSED (or MHD_add_connection's refusal), and at the limit the thread
 * waits, the rest waiting in the backlog as with MHD's own listening. The daemon's limit is
 * set above this one (api/server.c), so MHD never refuses one it has queued: such a refusal
 * is closed without a notification, and would never give its room back.
 */
#define _GNU_SOURCE /* accept4 */
#include "api/listener.h"
#include "api/log.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BACKLOG 1024
/* Out of descriptors, accept(2) fails until a connection closes: wait rather than spin. */
#define OUT_OF_FDS_PAUSE_MS 20

struct api_listener_s {
    int fd; /* -1 once closed */
    int port;
    struct MHD_Daemon *daemon;
    pthread_t thread;
    bool running;
    pthread_mutex_t mu;
    pthread_cond_t room; /* signalled when held drops below limit, or on stopping */
    size_t held, limit;  /* under mu */
    atomic_bool stopping;
};

static void pause_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int bound_port(int fd)
{
    struct sockaddr_storage a;
    socklen_t len = sizeof(a);
    if (getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        return 0;
    return a.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&a)->sin6_port)
                                   : ntohs(((struct sockaddr_in *)&a)->sin_port);
}

api_listener_t *api_listener_open(const struct sockaddr *addr, socklen_t addrlen, size_t limit)
{
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return NULL;
    int on = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (addr->sa_family == AF_INET6) /* as MHD's own: an IPv6 address takes IPv6 only */
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
    api_listener_t *l = NULL;
    if (bind(fd, addr, addrlen) != 0 || listen(fd, BACKLOG) != 0 || !(l = calloc(1, sizeof(*l)))) {
        int err = errno;
        close(fd);
        errno = err;
        return NULL;
    }
    l->fd = fd;
    l->port = bound_port(fd);
    l->limit = limit ? limit : 1;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->room, NULL);
    return l;
}

int api_listener_port(const api_listener_t *l)
{
    return l->port;
}

/* Waits for room for one more connection and takes it; false when stopping. */
static bool take_room(api_listener_t *l)
{
    pthread_mutex_lock(&l->mu);
    while (l->held >= l->limit && !atomic_load(&l->stopping))
        pthread_cond_wait(&l->room, &l->mu);
    bool ok = !atomic_load(&l->stopping);
    if (ok)
        l->held++;
    pthread_mutex_unlock(&l->mu);
    return ok;
}

void api_listener_released(api_listener_t *l)
{
    pthread_mutex_lock(&l->mu);
    if (l->held > 0)
        l->held--;
    pthread_cond_signal(&l->room);
    pthread_mutex_unlock(&l->mu);
}

static void *accept_loop(void *arg)
{
    api_listener_t *l = arg;
    while (take_room(l)) {
        struct sockaddr_storage peer;
        socklen_t len = sizeof(peer);
        int fd = accept4(l->fd, (struct sockaddr *)&peer, &len, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd >= 0) {
            /* Refused (the accept policy), MHD has closed it: a cut connection. */
            if (MHD_add_connection(l->daemon, fd, (struct sockaddr *)&peer, len) != MHD_YES)
                api_listener_released(l);
            continue;
        }
        int err = errno;
        api_listener_released(l);
        if (atomic_load(&l->stopping))
            break;
        if (err == EINTR || err == ECONNABORTED)
            continue;
        LOG_RATELIMITED(LOG_WARN, "http", err, "accept failed; pausing %d ms", OUT_OF_FDS_PAUSE_MS);
        pause_ms(OUT_OF_FDS_PAUSE_MS);
    }
    return NULL;
}

int api_listener_start(api_listener_t *l, struct MHD_Daemon *daemon)
{
    l->daemon = daemon;
    int rc = pthread_create(&l->thread, NULL, accept_loop, l);
    l->running = rc == 0;
    return rc;
}

void api_listener_close(api_listener_t *l)
{
    if (!l || l->fd < 0)
        return;
    pthread_mutex_lock(&l->mu);
    atomic_store(&l->stopping, true);
    pthread_cond_signal(&l->room);
    pthread_mutex_unlock(&l->mu);
    shutdown(l->fd, SHUT_RDWR); /* wakes the accept(2) the thread blocks in */
    if (l->running)
        pthread_join(l->thread, NULL);
    l->running = false;
    close(l->fd);
    l->fd = -1;
}

void api_listener_free(api_listener_t *l)
{
    if (!l)
        return;
    api_listener_close(l);
    pthread_cond_destroy(&l->room);
    pthread_mutex_destroy(&l->mu);
    free(l);
}
