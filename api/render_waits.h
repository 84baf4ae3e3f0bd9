/* api/render_waits.h -- one Redis read of a live post for every stream that waits for it.
 *
 * A post to ten thousand connected followers wakes ten thousand streams within a few
 * milliseconds, before any of them has rendered it. Each that found the render cache empty
 * had handed its connection back to libmicrohttpd to read Redis itself: thousands of resumes
 * (libmicrohttpd walks every suspended connection of a thread per batch of them) and
 * thousands of reads of the same post. Here they wait instead, for one read on a thread of
 * its own, and are handed back to the writers once it is in the cache. */
#ifndef TIDINGS_API_RENDER_WAITS_H
#define TIDINGS_API_RENDER_WAITS_H

#include <stdbool.h>

typedef struct render_waits_s render_waits_t;

typedef struct render_waits_hooks_s {
    /* Puts the rendering of ref in the cache (on the waits' thread; may read Redis): 0, or a
     * negative errno. */
    int (*fill)(void *ctx, const char *ref);
    /* Hands a waiter back once its ref is filled (ok) or could not be (its owner reads). */
    void (*done)(void *waiter, bool ok);
    void *ctx;
} render_waits_hooks_t;

/* NULL on failure (errno). */
render_waits_t *render_waits_start(const render_waits_hooks_t *hooks);
/* Makes waiter wait for ref's fill (one fill for all who wait for the same ref at once).
 * False once stopping or when too much is waited for: the caller reads it some other way. */
bool render_waits_add(render_waits_t *w, const char *ref, void *waiter);
/* Fills what is waited for and hands every waiter back, then joins the thread; adds fail
 * from the start of the call. */
void render_waits_stop(render_waits_t *w);
/* Frees w (stopped first if need be). */
void render_waits_destroy(render_waits_t *w);

#endif
