/* api/stream_writers.c -- the writer threads (see stream_writers.h).
 *
 * Each thread sleeps on its own condition variable; a push signals it only when its queue
 * was empty, so the thousands of streams one live message wakes cost a wake-up per thread,
 * not one per stream (the cost libmicrohttpd's resume path pays: an eventfd write per
 * connection and a walk over every suspended one). */
#define _GNU_SOURCE /* pthread_setname_np */
#include "api/stream_writers.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

typedef struct writer_s {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    void **items; /* queued, in push order */
    size_t n, cap;
    bool stopping;
    pthread_t thread;
    void (*serve)(void *item);
} writer_t;

struct stream_writers_s {
    writer_t *w;
    int n;
    bool stopped; /* joined; only the owner's thread stops and destroys */
};

static void *run(void *arg)
{
    writer_t *w = arg;
    pthread_setname_np(pthread_self(), "sse-writer"); /* in top -H and perf */
    void **batch = NULL;
    size_t cap = 0;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->n && !w->stopping)
            pthread_cond_wait(&w->cv, &w->mu);
        if (!w->n)
            break;
        /* Swap the queue for the (empty) batch array: pushes go on while this one is served. */
        void **items = w->items;
        size_t n = w->n, items_cap = w->cap;
        w->items = batch;
        w->cap = cap;
        w->n = 0;
        pthread_mutex_unlock(&w->mu);
        for (size_t i = 0; i < n; i++)
            w->serve(items[i]);
        batch = items;
        cap = items_cap;
        pthread_mutex_lock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    free(batch);
    return NULL;
}

stream_writers_t *stream_writers_start(int n, void (*serve)(void *item))
{
    if (n < 1) {
        errno = EINVAL;
        return NULL;
    }
    stream_writers_t *ws = calloc(1, sizeof(*ws));
    if (ws)
        ws->w = calloc((size_t)n, sizeof(*ws->w));
    if (!ws || !ws->w) {
        free(ws);
        errno = ENOMEM;
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        writer_t *w = &ws->w[i];
        pthread_mutex_init(&w->mu, NULL);
        pthread_cond_init(&w->cv, NULL);
        w->serve = serve;
        int rc = pthread_create(&w->thread, NULL, run, w);
        if (rc) {
            pthread_mutex_destroy(&w->mu);
            pthread_cond_destroy(&w->cv);
            stream_writers_destroy(ws);
            errno = rc;
            return NULL;
        }
        ws->n = i + 1;
    }
    return ws;
}

bool stream_writers_push(stream_writers_t *ws, unsigned which, void *item)
{
    writer_t *w = &ws->w[which % (unsigned)ws->n];
    pthread_mutex_lock(&w->mu);
    bool ok = !w->stopping;
    if (ok && w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 256;
        void **grown = realloc(w->items, cap * sizeof(*grown));
        if (grown) {
            w->items = grown;
            w->cap = cap;
        }
        ok = grown != NULL;
    }
    if (ok) {
        w->items[w->n++] = item;
        if (w->n == 1)
            pthread_cond_signal(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return ok;
}

void stream_writers_stop(stream_writers_t *ws)
{
    if (!ws || ws->stopped)
        return;
    ws->stopped = true;
    for (int i = 0; i < ws->n; i++) {
        pthread_mutex_lock(&ws->w[i].mu);
        ws->w[i].stopping = true;
        pthread_cond_signal(&ws->w[i].cv);
        pthread_mutex_unlock(&ws->w[i].mu);
    }
    for (int i = 0; i < ws->n; i++)
        pthread_join(ws->w[i].thread, NULL);
}

void stream_writers_destroy(stream_writers_t *ws)
{
    if (!ws)
        return;
    stream_writers_stop(ws);
    for (int i = 0; i < ws->n; i++) {
        writer_t *w = &ws->w[i];
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
        free(w->items);
    }
    free(ws->w);
    free(ws);
}
