/* fanout/job.c -- one job's work, from its first read to its acknowledgement.
 *
 * post:     own timeline, then followers in chunks: read a chunk, send its writes, read
 *           the next while they fly, as long as the engine's in-flight budget allows.
 *           When the last write is confirmed, the post is checked again: deleted in the
 *           meantime means a delete job is queued (it runs after our writes, so it wins).
 *           An author past the celebrity threshold is marked instead, and their
 *           followers are told to merge them at read time.
 * delete:   the same walk over followers, removing the post.
 * follow:   backfill; unfollow: purge (both in storage, idempotent).
 * Any failure leaves the job unacknowledged: it is retried after the claim timeout and
 * dead-lettered after too many attempts.
 */
#include "fanout/fanout_internal.h"

#include <errno.h>
#include <stdlib.h>

static void settle_done(void *arg, int status)
{
    fanout__job_t *j = arg;
    fanout__job_finished(j, status == 0);
}

void fanout__job_settle(fanout__job_t *j, const char *dead_reason)
{
    fanout_t *f = j->f;
    if (dead_reason)
        atomic_fetch_add_explicit(&f->stats.jobs_dead, 1, memory_order_relaxed);
    int rc = dead_reason ? storage_job_dead_letter(f->sa, &j->job, dead_reason, settle_done, j)
                         : storage_job_ack(f->sa, &j->job, settle_done, j);
    if (rc)
        fanout__job_finished(j, false);
}

static void fail(fanout__job_t *j, int status)
{
    if (!j->status)
        j->status = status ? status : -EIO;
}

/* Ends the job once nothing of it is in flight. */
static void maybe_finish(fanout__job_t *j);

static void on_delete_queued(void *arg, int status)
{
    fanout__job_t *j = arg;
    if (status)
        fanout__job_finished(j, false);
    else
        fanout__job_settle(j, NULL);
}

static void on_final_state(void *arg, int status, const storage_post_state_t *st)
{
    fanout__job_t *j = arg;
    if (status) {
        fanout__job_finished(j, false);
        return;
    }
    if (st->deleted) { /* deleted while we wrote it: make sure the retraction comes after */
        int rc = storage_job_queue_delete(j->f->sa, j->job.post, j->job.author, on_delete_queued,
                                          j);
        if (rc)
            fanout__job_finished(j, false);
        return;
    }
    fanout__job_settle(j, NULL);
}

static void maybe_finish(fanout__job_t *j)
{
    if (j->fetching || j->writes_pending > 0 || (!j->all_fetched && !j->status))
        return;
    if (j->waiting)
        return;
    if (j->status) {
        fanout__job_finished(j, false);
        return;
    }
    if (j->job.kind == STORAGE_JOB_POST && !j->celebrity_mark) {
        int rc = storage_post_state(j->f->sa, j->job.post, j->job.author, on_final_state, j);
        if (rc)
            fanout__job_finished(j, false);
        return;
    }
    fanout__job_settle(j, NULL);
}

static void on_chunk_written(void *arg, int status)
{
    fanout__job_t *j = arg;
    j->writes_pending--;
    if (status)
        fail(j, status);
    fanout__job_pump(j);
}

/* Sends the writes of one chunk of users. */
static int write_chunk(fanout__job_t *j, const uint64_t *users, size_t n)
{
    fanout_t *f = j->f;
    int rc;
    if (j->celebrity_mark)
        rc = storage_celebrity_followers_add(f->sa, j->job.author, users, n, on_chunk_written, j);
    else if (j->job.kind == STORAGE_JOB_DELETE)
        rc = storage_timelines_remove(f->sa, j->job.post, users, n, on_chunk_written, j);
    else
        rc = storage_timelines_add(f->sa, j->job.post, users, n, f->cfg.timeline_max,
                                   on_chunk_written, j);
    if (rc == 0) {
        j->writes_pending++;
        if (!j->celebrity_mark)
            atomic_fetch_add_explicit(&f->stats.timeline_writes, n, memory_order_relaxed);
    }
    return rc;
}

static void on_chunk(void *arg, int status, const uint64_t *ids, size_t n, uint64_t last)
{
    fanout__job_t *j = arg;
    j->fetching = false;
    if (status) {
        fail(j, status);
    } else {
        if (n < (size_t)j->f->cfg.chunk)
            j->all_fetched = true;
        j->cursor = last;
        if (n && !j->status) {
            int rc = write_chunk(j, ids, n);
            if (rc)
                fail(j, rc);
        }
    }
    fanout__job_pump(j);
}

void fanout__job_pump(fanout__job_t *j)
{
    fanout_t *f = j->f;
    j->waiting = false;
    if (!j->status && !j->all_fetched && !j->fetching) {
        if (!fanout__budget_ok(f)) {
            fanout__park(j);
            return;
        }
        int rc = storage_followers_chunk(f->sa, j->job.author, j->cursor, (size_t)f->cfg.chunk,
                                         on_chunk, j);
        if (rc)
            fail(j, rc);
        else
            j->fetching = true;
    }
    maybe_finish(j);
}

static void on_own_timeline(void *arg, int status)
{
    fanout__job_t *j = arg;
    j->writes_pending--;
    if (status)
        fail(j, status);
    fanout__job_pump(j);
}

static void on_marked(void *arg, int status)
{
    fanout__job_t *j = arg;
    j->writes_pending--;
    if (status)
        fail(j, status);
    fanout__job_pump(j);
}

static void on_post_state(void *arg, int status, const storage_post_state_t *st)
{
    fanout__job_t *j = arg;
    fanout_t *f = j->f;
    if (status) {
        fanout__job_finished(j, false);
        return;
    }
    if (!st->exists || (st->deleted && j->job.kind == STORAGE_JOB_POST)) {
        fanout__job_settle(j, NULL); /* nothing to write; a delete job retracts */
        return;
    }
    if (j->job.kind == STORAGE_JOB_POST && st->celebrity) {
        /* Merged at read time: only the author's own timeline gets it now. */
        j->all_fetched = true;
    } else if (j->job.kind == STORAGE_JOB_POST && st->followers > f->cfg.celebrity_threshold) {
        j->celebrity_mark = true; /* walk the followers once, recording the merge */
        if (storage_celebrity_mark(f->sa, j->job.author, on_marked, j) == 0)
            j->writes_pending++;
        else
            fail(j, -EAGAIN);
    }
    /* The author sees their own posts at home too; a delete takes it back. */
    uint64_t author = j->job.author;
    int rc = j->job.kind == STORAGE_JOB_DELETE
                 ? storage_timelines_remove(f->sa, j->job.post, &author, 1, on_own_timeline, j)
                 : storage_timelines_add(f->sa, j->job.post, &author, 1, f->cfg.timeline_max,
                                         on_own_timeline, j);
    if (rc == 0)
        j->writes_pending++;
    else
        fail(j, rc);
    fanout__job_pump(j);
}

static void on_edge_done(void *arg, int status)
{
    fanout__job_t *j = arg;
    if (status)
        fanout__job_finished(j, false);
    else
        fanout__job_settle(j, NULL);
}

void fanout__job_start(fanout__job_t *j)
{
    fanout_t *f = j->f;
    const storage_job_t *job = &j->job;
    int rc;
    switch (job->kind) {
    case STORAGE_JOB_POST:
    case STORAGE_JOB_DELETE:
        if (!job->post || !job->author) {
            fanout__job_settle(j, "malformed job: no post or author");
            return;
        }
        rc = storage_post_state(f->sa, job->post, job->author, on_post_state, j);
        break;
    case STORAGE_JOB_FOLLOW:
    case STORAGE_JOB_UNFOLLOW:
        if (!job->follower || !job->followee) {
            fanout__job_settle(j, "malformed job: no follower or followee");
            return;
        }
        rc = job->kind == STORAGE_JOB_FOLLOW
                 ? storage_timeline_backfill(f->sa, job->follower, job->followee,
                                             f->cfg.timeline_max, on_edge_done, j)
                 : storage_timeline_purge(f->sa, job->follower, job->followee,
                                          f->cfg.timeline_max, on_edge_done, j);
        break;
    default:
        fanout__job_settle(j, "malformed job: unknown kind");
        return;
    }
    if (rc)
        fanout__job_finished(j, false);
}
