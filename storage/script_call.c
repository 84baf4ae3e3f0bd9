/* storage/script_call.c -- a read-only script called by its SHA1 (EVALSHA_RO).
 *
 * The page scripts of timeline_view.c and post_views.c are a few kilobytes; sent with every
 * EVAL, Redis reads and hashes them on every page. Loaded once (SCRIPT LOAD, a round trip of
 * its own per process, and again after a Redis that forgot its scripts answers NOSCRIPT),
 * a page sends 40 hex digits instead. Only for one Redis node: SCRIPT LOAD goes to one node.
 */
#include "storage/storage_internal.h"

#include <errno.h>
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

int storage__script_ro(storage_t *s, storage__script_t *sc, int argc, const char **argv,
                       storage_redis_batch_t *b)
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
        storage_redis_batch_addargv(b, argc + 2, full, NULL);
        rc = storage_redis_batch_run(b);
        if (rc || !noscript(b->r[0]))
            break; /* else a Redis that forgot its scripts: load it again */
    }
    free(full);
    return rc;
}
