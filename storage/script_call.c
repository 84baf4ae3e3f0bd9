/* storage/script_call.c -- a read-only script called by its SHA1 (EVALSHA_RO).
 *
 * The page scripts of timeline_view.c and post_views.c are a few kilobytes; sent with every
 * EVAL, Redis reads and hashes them on every page. Loaded once (SCRIPT LOAD, a round trip of
 * its own per process, and again after a Redis that forgot its scripts answers NOSCRIPT),
 * a page sends 40 hex digits instead. Only for one Redis node: SCRIPT LOAD goes to one node.
 */
#include "storage/storage_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Loads sc's body and keeps its SHA1. */
static int load(storage_t *s, storage__script_t *sc)
{
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    const char *argv[] = {"SCRIPT", "LOAD", sc->body};
    storage_redis_batch_addargv(&b, 3, argv, NULL);
    int rc = storage_redis_batch_run_checked(&b);
    if (rc == 0 && (b.r[0]->type != REDIS_REPLY_STRING || b.r[0]->len != 40))
        rc = -EIO;
    if (rc == 0) {
        pthread_mutex_lock(&sc->mu);
        memcpy(sc->sha, b.r[0]->str, 40);
        sc->sha[40] = '\0';
        pthread_mutex_unlock(&sc->mu);
    }
    storage_redis_batch_free(&b);
    return rc;
}

static bool noscript(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0;
}

/* Sends sc with argv after the pre_n commands of pre (argv arrays of their pre_argc), in one
 * pipeline on one connection; the script's reply is b->r[pre_n]. */
static int script_after(storage_t *s, storage__script_t *sc, int pre_n, const char **pre[],
                        const int *pre_argc, int argc, const char **argv, storage_redis_batch_t *b)
{
    storage_redis_batch_init(b, s->redis);
    const char **full = malloc(((size_t)argc + 2) * sizeof(*full));
    if (!full)
        return -ENOMEM;
    char sha[41];
    int rc = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        pthread_mutex_lock(&sc->mu);
        memcpy(sha, sc->sha, sizeof(sha));
        pthread_mutex_unlock(&sc->mu);
        if (!sha[0] || attempt > 0) {
            if ((rc = load(s, sc)) != 0)
                break;
            pthread_mutex_lock(&sc->mu);
            memcpy(sha, sc->sha, sizeof(sha));
            pthread_mutex_unlock(&sc->mu);
        }
        full[0] = "EVALSHA_RO";
        full[1] = sha;
        memcpy(full + 2, argv, (size_t)argc * sizeof(*argv));
        storage_redis_batch_free(b);
        storage_redis_batch_init(b, s->redis);
        for (int i = 0; i < pre_n; i++)
            storage_redis_batch_addargv(b, pre_argc[i], pre[i], NULL);
        storage_redis_batch_addargv(b, argc + 2, full, NULL);
        rc = storage_redis_batch_run(b);
        if (rc || !noscript(b->r[pre_n]))
            break; /* else a Redis that forgot its scripts: load it again */
    }
    free(full);
    return rc;
}

int storage__script_ro(storage_t *s, storage__script_t *sc, int argc, const char **argv,
                       storage_redis_batch_t *b)
{
    return script_after(s, sc, 0, NULL, NULL, argc, argv, b);
}

/* CLIENT TRACKING on the connection, redirected to the cache's tracking connection, in OPTIN
 * mode: only a command after CLIENT CACHING yes is remembered, so the connection's other
 * traffic (it is shared by every request of the process) costs Redis nothing. Sent with each
 * tracked read rather than once per connection: a connection made anew, or a tracking
 * connection replaced (a new CLIENT ID), then needs no bookkeeping, for one small command. */
int storage__script_ro_tracked(storage_t *s, storage__script_t *sc, unsigned long long redirect,
                               int argc, const char **argv, storage_redis_batch_t *b, bool *tracked)
{
    char id[24];
    snprintf(id, sizeof(id), "%llu", redirect);
    const char *tracking[] = {"CLIENT", "TRACKING", "on", "REDIRECT", id, "OPTIN"};
    const char *caching[] = {"CLIENT", "CACHING", "yes"};
    const char **pre[] = {tracking, caching};
    const int pre_argc[] = {6, 3};
    int rc = script_after(s, sc, 2, pre, pre_argc, argc, argv, b);
    *tracked =
        rc == 0 && b->r[0]->type == REDIS_REPLY_STATUS && b->r[1]->type == REDIS_REPLY_STATUS;
    if (rc == 0) { /* the caller reads the script's reply at [0], as from storage__script_ro */
        freeReplyObject(b->r[0]);
        freeReplyObject(b->r[1]);
        memmove(b->r, b->r + 2, (b->n - 2) * sizeof(*b->r));
        b->r[b->n - 2] = b->r[b->n - 1] = NULL;
    }
    return rc;
}
