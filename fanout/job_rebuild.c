/* fanout/job_rebuild.c -- a returning user's timeline rebuild, on libuv's thread pool.
 *
 * The rebuild reads what everyone the user follows posted and reposted and writes the newest
 * of it (storage/timeline_rebuild.c): straight-line synchronous storage code, which on the
 * thread pool never holds up the loop, as for the erasure job (fanout/job_erase.c). The job
 * stays in the engine's list meanwhile, so it is touched like any running job; if the process
 * dies, it is claimed after the idle timeout and runs again (the rebuild is idempotent).
 */
#include "fanout/fanout_internal.h"
#include "storage/seen.h"

#include <errno.h>
#include <stdlib.h>

typedef struct rebuild_work_s {
    uv_work_t req;
    storage_t *storage;
    uint64_t user;
    int timeline_max;
    int status;
    void (*cb)(void *arg, int status);
    void *arg;
} rebuild_work_t;

/* Thread: the pool's. */
static void rebuild_work(uv_work_t *req)
{
    rebuild_work_t *w = req->data;
    w->status = storage_timeline_rebuild(w->storage, w->user, w->timeline_max);
}

static void rebuild_done(uv_work_t *req, int status)
{
    rebuild_work_t *w = req->data;
    /* "Unreachable, nothing sent" is retried like any unreachable Redis. */
    int rc = w->status == -ENOTCONN ? -EAGAIN : w->status;
    w->cb(w->arg, status == UV_ECANCELED ? -ECANCELED : rc);
    free(w);
}

int fanout__rebuild_run(fanout__job_t *j, void (*cb)(void *arg, int status))
{
    LOOP_ONLY(j->f);
    if (!j->f->cfg.storage)
        return -ENOTSUP;
    rebuild_work_t *w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    *w = (rebuild_work_t){.storage = j->f->cfg.storage,
                          .user = j->job.user,
                          .timeline_max = j->f->cfg.timeline_max,
                          .cb = cb,
                          .arg = j};
    w->req.data = w;
    int rc = uv_queue_work(j->f->loop, &w->req, rebuild_work, rebuild_done);
    if (rc) {
        free(w);
        return -EIO;
    }
    return 0;
}
