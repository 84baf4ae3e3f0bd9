/* api/render_waits.c -- the thread that fills the render cache for waiting streams (see
 * render_waits.h).
 *
 * Its own thread, reading Redis synchronously: a writer thread must never wait for Redis (a
 * paused one would hold the heartbeats of every stream it serves), and one read per post
 * costs a round trip, so a single thread keeps up with any post rate a process delivers. */
#define _GNU_SOURCE /* pthread_setname_np */
#include "api/render_waits.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REF_MAX 96      /* as the render cache's keys */
#define PENDING_MAX 256 /* distinct refs waited for at once; beyond, streams read for themselves */

typedef struct pending_s {
    char ref[REF_MAX];
    void **waiters;
    size_t n, cap;
} pending_t;

struct render_waits_s {
    render_waits_hooks_t hooks;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pending_t pending[PENDING_MAX]; /* [0, n): waited for, the oldest first */
    size_t n;
    bool stopping, stopped;
    pthread_t thread;
};

static pending_t *find(render_waits_t *w, const char *ref)
{
    for (size_t i = 0; i < w->n; i++)
        if (strcmp(w->pending[i].ref, ref) == 0)
            return &w->pending[i];
    return NULL;
}

static bool add_waiter(pending_t *p, void *waiter)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 64;
        void **grown = realloc(p->waiters, cap * sizeof(*grown));
        if (!grown)
            return false;
        p->waiters = grown;
        p->cap = cap;
    }
    p->waiters[p->n++] = waiter;
    return true;
}

/* Fills the oldest ref. Its entry stays listed meanwhile, so that streams that want it too
 * join its waiters rather than queue a second read; then it is taken out and they go back. */
static void fill_oldest(render_waits_t *w)
{
    char ref[REF_MAX];
    snprintf(ref, sizeof(ref), "%s", w->pending[0].ref);
    pthread_mutex_unlock(&w->mu);
    bool ok = w->hooks.fill(w->hooks.ctx, ref) == 0;
    pthread_mutex_lock(&w->mu);
    pending_t done = w->pending[0];
    memmove(&w->pending[0], &w->pending[1], (w->n - 1) * sizeof(w->pending[0]));
    w->n--;
    pthread_mutex_unlock(&w->mu);
    for (size_t i = 0; i < done.n; i++)
        w->hooks.done(done.waiters[i], ok);
    free(done.waiters);
    pthread_mutex_lock(&w->mu);
}

static void *run(void *arg)
{
    render_waits_t *w = arg;
    pthread_setname_np(pthread_self(), "sse-render");
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->n && !w->stopping)
            pthread_cond_wait(&w->cv, &w->mu);
        if (!w->n)
            break;
        fill_oldest(w);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

render_waits_t *render_waits_start(const render_waits_hooks_t *hooks)
{
    render_waits_t *w = calloc(1, sizeof(*w));
    if (!w) {
        errno = ENOMEM;
        return NULL;
    }
    w->hooks = *hooks;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    int rc = pthread_create(&w->thread, NULL, run, w);
    if (rc) {
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
        free(w);
        errno = rc;
        return NULL;
    }
    return w;
}

bool render_waits_add(render_waits_t *w, const char *ref, void *waiter)
{
    if (strlen(ref) >= REF_MAX)
        return false;
    pthread_mutex_lock(&w->mu);
    pending_t *p = w->stopping ? NULL : find(w, ref);
    bool first = !p && !w->stopping && w->n < PENDING_MAX; /* the first to wait for ref */
    if (first) {
        p = &w->pending[w->n];
        *p = (pending_t){0};
        snprintf(p->ref, sizeof(p->ref), "%s", ref);
    }
    bool ok = p && add_waiter(p, waiter);
    if (ok && first && w->n++ == 0)
        pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return ok;
}

void render_waits_stop(render_waits_t *w)
{
    if (!w || w->stopped)
        return;
    w->stopped = true;
    pthread_mutex_lock(&w->mu);
    w->stopping = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
}

void render_waits_destroy(render_waits_t *w)
{
    if (!w)
        return;
    render_waits_stop(w);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w);
}
