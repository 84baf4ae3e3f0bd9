/* fanout/job_erase.c -- an erasure job's work, on libuv's thread pool.
 *
 * Erasing a user walks every index they have and touches many other users' keys; written as
 * synchronous storage calls (storage/erase.h) it is straight-line code, and on the thread pool
 * it never holds up the loop that runs the other jobs. The job stays in the engine's list
 * meanwhile, so it is touched like any running job and nobody claims it; if the process dies,
 * the job is claimed after the idle timeout and runs again from what is left (every step is
 * idempotent). A stopping engine waits for it like for any write in flight.
 */
#include "fanout/fanout_internal.h"
#include "storage/erase.h"

#include <errno.h>
#include <stdlib.h>

typedef struct erase_work_s {
    uv_work_t req;
    storage_t *storage;
    storage_job_kind_t kind;
    uint64_t user;
    int status;
    void (*cb)(void *arg, int status);
    void *arg;
} erase_work_t;

/* Thread: the pool's. */
static void erase_work(uv_work_t *req)
{
    erase_work_t *w = req->data;
    w->status = w->kind == STORAGE_JOB_ERASE ? storage_erase_posts(w->storage, w->user)
                                             : storage_erase_rest(w->storage, w->user);
}

static void erase_done(uv_work_t *req, int status)
{
    erase_work_t *w = req->data;
    /* "Unreachable, nothing sent" is retried like any unreachable Redis. */
    int rc = w->status == -ENOTCONN ? -EAGAIN : w->status;
    w->cb(w->arg, status == UV_ECANCELED ? -ECANCELED : rc);
    free(w);
}

int fanout__erase_run(fanout__job_t *j, void (*cb)(void *arg, int status))
{
    LOOP_ONLY(j->f);
    if (!j->f->cfg.storage)
        return -ENOTSUP;
    erase_work_t *w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    *w = (erase_work_t){.storage = j->f->cfg.storage,
                        .kind = j->job.kind,
                        .user = j->job.author,
                        .cb = cb,
                        .arg = j};
    w->req.data = w;
    int rc = uv_queue_work(j->f->loop, &w->req, erase_work, erase_done);
    if (rc) {
        free(w);
        return -EIO;
    }
    return 0;
}
