/* fanout/job_first.c -- a post or delete job's first round trip: its turn, the post's state
 * and the first chunk of the author's followers, asked together.
 *
 * Asked one after the other they were three round trips before the first write
 * (bench/job_round_trips.sh: six in all for a post to five followers; three with this, two
 * when storage/post_job.c then does the rest in one script). The state and the chunk are
 * read for nothing when the turn is not the job's yet; so only a job's first ask reads them,
 * and a job that had to wait asks for its turn alone after that (fanout/job.c). Read in the same instant as the turn, they are what a read right after it
 * would have found: the turn is decided in the same pipeline, and a later change to the post
 * or the followers reaches the job's walk as it would have before (a delete is queued behind
 * the job and runs after it; a follow backfills the newcomer's timeline).
 */
#include "fanout/fanout_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct first_op_s {
    fanout__job_t *j;
    fanout__first_cb cb;
    int pending, status;
    bool mine;
    storage_post_state_t st; /* muted_by owned */
    uint64_t *ids;           /* the chunk, owned until handed to the job */
    size_t n;
    uint64_t last;
} first_op_t;

static void finish(first_op_t *op, int status)
{
    if (status && !op->status)
        op->status = status;
    if (--op->pending > 0)
        return;
    fanout__job_t *j = op->j;
    if (op->status == 0 && op->mine) {
        j->prefetched = op->ids; /* the walk starts from it (fanout/job.c, read_chunk) */
        j->n_prefetched = op->n;
        j->prefetched_last = op->last;
        j->has_prefetch = true;
        op->ids = NULL;
    }
    op->cb(j, op->status, op->mine, &op->st);
    free(op->st.muted_by);
    free(op->ids);
    free(op);
}

static void on_turn(void *arg, int status, bool mine)
{
    first_op_t *op = arg;
    op->mine = mine;
    finish(op, status);
}

static void on_state(void *arg, int status, const storage_post_state_t *st)
{
    first_op_t *op = arg;
    if (status == 0) {
        op->st = *st;
        op->st.muted_by = NULL;
        op->st.n_muted_by = 0;
        if (st->n_muted_by) {
            op->st.muted_by = malloc(st->n_muted_by * sizeof(uint64_t));
            if (op->st.muted_by) {
                memcpy(op->st.muted_by, st->muted_by, st->n_muted_by * sizeof(uint64_t));
                op->st.n_muted_by = st->n_muted_by;
            } else {
                status = -ENOMEM;
            }
        }
    }
    finish(op, status);
}

static void on_chunk(void *arg, int status, const uint64_t *ids, size_t n, uint64_t last)
{
    first_op_t *op = arg;
    if (status == 0 && n) {
        op->ids = malloc(n * sizeof(uint64_t));
        if (op->ids)
            memcpy(op->ids, ids, n * sizeof(uint64_t));
        else
            status = -ENOMEM;
    }
    op->n = op->ids ? n : 0;
    op->last = last;
    finish(op, status);
}

int fanout__first_ask(fanout__job_t *j, fanout__first_cb cb)
{
    fanout_t *f = j->f;
    const storage_job_t *job = &j->job;
    first_op_t *op = calloc(1, sizeof(*op));
    if (!op)
        return -ENOMEM;
    op->j = j;
    op->cb = cb;
    /* One reference for this call, so that no reply can end the op before all are sent. */
    op->pending = 1;
    int rc = storage_job_turn(f->sa, job, on_turn, op);
    op->pending += rc == 0;
    if (rc == 0) {
        rc = storage_post_state(f->sa, job->post, job->author, on_state, op);
        op->pending += rc == 0;
    }
    if (rc == 0) {
        rc = storage_followers_chunk(f->sa, job->author, 0, (size_t)f->cfg.chunk, on_chunk, op);
        op->pending += rc == 0;
    }
    if (rc && op->pending == 1) {
        free(op); /* nothing went out: the caller fails the job */
        return rc;
    }
    finish(op, rc); /* a send that failed after others went out fails the job with their replies */
    return 0;
}
