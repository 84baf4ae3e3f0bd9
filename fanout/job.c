/* fanout/job.c -- one job's work, from its first read to its acknowledgement.
 *
 * post:      own timeline, reply and mention notices, then the author's followers in
 *            chunks: read a chunk, send its writes, read the next while they fly, as long
 *            as the engine's in-flight budget allows. Followers who muted the author are
 *            skipped. When the last write is confirmed the post is checked again: deleted
 *            meanwhile means a delete job is queued (it runs after our writes: it wins).
 *            An author past the celebrity threshold is marked instead, and their
 *            followers are told to merge them at read time.
 * delete:    the same walk, removing the post.
 * repost:    a notice to the author, then the reposter's followers get the post as a
 *            repost entry (unless they have it); unrepost takes those entries back.
 * like, follow, block, mute and their undoings: a few writes each.
 * Any failure leaves the job unacknowledged: it is retried after the claim timeout and
 * dead-lettered after too many attempts.
 */
#include "fanout/fanout_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* Records a write sent (rc 0) or failed to send. */
static void sent(fanout__job_t *j, int rc)
{
    if (rc == 0) {
        j->writes_pending++;
        j->f->writes_in_flight++;
    } else {
        fail(j, rc);
    }
}

static void on_published(void *arg, int status);

/* Records a live-event publish sent: small, so outside the write budget, which bounds the
 * timeline work queued in Redis. */
static void sent_event(fanout__job_t *j, int rc)
{
    if (rc == 0)
        j->writes_pending++;
    else
        fail(j, rc);
}

static void on_written(void *arg, int status)
{
    fanout__job_t *j = arg;
    j->writes_pending--;
    j->f->writes_in_flight--;
    if (status)
        fail(j, status);
    fanout__job_pump(j);
}

static void on_published(void *arg, int status)
{
    fanout__job_t *j = arg;
    j->writes_pending--;
    if (status)
        fail(j, status);
    fanout__job_pump(j);
}

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
        int rc = storage_job_queue_delete(j->f->sa, j->job.post, j->job.author,
                                          strtoull(j->job.entry_id, NULL, 10), on_delete_queued,
                                          j);
        if (rc)
            fanout__job_finished(j, false);
        return;
    }
    fanout__job_settle(j, NULL);
}

/* How long the timeline walk lets the live delivery have the machine: about what sending
 * one event costs a stream writer (loopback, measured in bench/sse.sh), per event the live
 * walk published (no wait when no follower is connected), and no more than
 * LIVE_YIELD_MAX_MS. */
#define LIVE_YIELD_NS_PER_EVENT 5000
#define LIVE_YIELD_MAX_MS 100

/* A celebrity's post, announced to every process instead of walked over the followers. */
static void announce_post(fanout__job_t *j)
{
    char ref[24];
    snprintf(ref, sizeof(ref), "%llu", (unsigned long long)j->job.post);
    j->all_fetched = true;
    sent(j, storage_announce_post(j->f->sa, &j->job, "feed", ref, on_written, j));
}

/* Ends the job once nothing of it is in flight. */
static void maybe_finish(fanout__job_t *j)
{
    if (j->fetching || j->writes_pending > 0 || j->waiting || (!j->all_fetched && !j->status))
        return;
    if (j->status) {
        fanout__job_finished(j, false);
        return;
    }
    if (j->live_first) {
        /* Every connected follower has the event: now walk again for the timelines, after
         * the streams had time to send it. The timeline walk is the one part of a fan-out
         * nobody waits for (the event carries the post), and on a busy machine its Redis
         * and engine time came out of the delivery's. */
        j->live_first = j->live_only = false;
        j->published = true;
        j->all_fetched = false;
        j->cursor = 0;
        uint64_t yield_ms = j->live_published * LIVE_YIELD_NS_PER_EVENT / 1000000;
        if (yield_ms)
            fanout__yield(j, yield_ms < LIVE_YIELD_MAX_MS ? yield_ms : LIVE_YIELD_MAX_MS);
        else
            fanout__job_pump(j);
        return;
    }
    if (j->celebrity_mark && !j->announced) {
        /* Marked: the processes learn who follows, then deliver this post as the next. */
        j->announced = true;
        sent(j, storage_announce_celebrity(j->f->sa, j->job.author, on_written, j));
        announce_post(j);
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

static bool muted(const fanout__job_t *j, uint64_t user)
{
    size_t lo = 0, hi = j->n_muted_by;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (j->muted_by[mid] == user)
            return true;
        if (j->muted_by[mid] < user)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

/* The users of a chunk that get the post: all but those who muted its author. Returns
 * users itself when nobody is left out, else a new array (*owned set). */
static const uint64_t *without_muted(const fanout__job_t *j, const uint64_t *users, size_t *n,
                                     uint64_t **owned)
{
    *owned = NULL;
    if (!j->n_muted_by)
        return users;
    uint64_t *keep = malloc(*n * sizeof(*keep));
    if (!keep)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < *n; i++)
        if (!muted(j, users[i]))
            keep[k++] = users[i];
    *n = k;
    *owned = keep;
    return keep;
}

/* Sends the writes of one chunk of users, and the live events of those connected. */
static int write_chunk(fanout__job_t *j, const uint64_t *users, size_t n)
{
    fanout_t *f = j->f;
    const storage_job_t *job = &j->job;
    char ref[48];
    snprintf(ref, sizeof(ref), "%llu", (unsigned long long)job->post);
    switch (j->celebrity_mark ? STORAGE_JOB_UNKNOWN : job->kind) {
    case STORAGE_JOB_UNKNOWN:
        return storage_celebrity_followers_add(f->sa, job->author, users, n, on_written, j);
    case STORAGE_JOB_DELETE:
        sent_event(j, storage_events_publish(f->sa, job, users, n, "delete", ref, NULL,
                                             on_published, j));
        return storage_timelines_remove(f->sa, job->post, users, n, on_written, j);
    case STORAGE_JOB_REPOST:
    case STORAGE_JOB_UNREPOST:
        return storage_repost_entries(f->sa, job->post, job->author, job->actor, job->event_id,
                                      users, n,
                                      job->kind == STORAGE_JOB_REPOST, f->cfg.timeline_max,
                                      on_written, j);
    default:
        break;
    }
    uint64_t *owned;
    const uint64_t *to = without_muted(j, users, &n, &owned);
    if (!to)
        return -ENOMEM;
    int rc = -ENODATA;
    if (n && j->live_only)
        rc = storage_events_publish(f->sa, job, to, n, "feed", ref, &j->live_published, on_written,
                                    j); /* the chunk's work */
    else if (n) {
        if (!j->published)
            sent_event(j, storage_events_publish(f->sa, job, to, n, "feed", ref, NULL, on_published,
                                                 j));
        rc = storage_timelines_add(f->sa, job->post, to, n, f->cfg.timeline_max, on_written, j);
    }
    free(owned);
    return rc;
}

/* Followers per step. A live-only walk writes no timelines, only one event per connected
 * follower, so it takes bigger steps: fewer round trips before the last follower's event.
 * (Its script calls still take 1,000 followers each; steps of 2,000 or 20,000 measured no
 * better at 10,000 connected followers.) */
#define LIVE_CHUNK 5000

/* The live walk's first step is small: its events go out while Redis appends the rest. */
#define LIVE_FIRST_STEP 250

static size_t walk_step(const fanout__job_t *j)
{
    size_t chunk = (size_t)j->f->cfg.chunk;
    if (!j->live_only || chunk >= LIVE_CHUNK)
        return chunk;
    return j->cursor == 0 ? LIVE_FIRST_STEP : LIVE_CHUNK;
}

static void on_chunk(void *arg, int status, const uint64_t *ids, size_t n, uint64_t last)
{
    fanout__job_t *j = arg;
    j->fetching = false;
    if (status) {
        fail(j, status);
    } else {
        if (n < walk_step(j))
            j->all_fetched = true;
        j->cursor = last;
        if (n && !j->status) {
            int rc = write_chunk(j, ids, n);
            if (rc != -ENODATA)
                sent(j, rc);
            if (rc == 0 && !j->celebrity_mark && !j->live_only)
                atomic_fetch_add_explicit(&j->f->stats.timeline_writes, n, memory_order_relaxed);
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
        int rc = storage_followers_chunk(f->sa, j->walk_user, j->cursor, walk_step(j), on_chunk,
                                         j);
        if (rc)
            fail(j, rc);
        else
            j->fetching = true;
    }
    maybe_finish(j);
}

/* "<kind>:<post>" */
static void group_of(char *buf, size_t size, const char *kind, uint64_t post)
{
    snprintf(buf, size, "%s:%llu", kind, (unsigned long long)post);
}

/* A like or repost notice to the post's author, or its removal; none for acting on your
 * own post. */
static void notify_interaction(fanout__job_t *j, const char *kind, bool add)
{
    fanout_t *f = j->f;
    const storage_job_t *job = &j->job;
    if (job->actor == job->author)
        return;
    char group[48];
    group_of(group, sizeof(group), kind, job->post);
    sent(j, add ? storage_group_add(f->sa, job->author, group, job->actor, job->event_id,
                                     f->cfg.notifications_max, on_written, j)
                : storage_group_remove(f->sa, job->author, group, job->actor, on_written, j));
}

/* A deleted post's notifications go too: the likes and reposts of it, and the reply and
 * mention notices it caused. The unread count then counts only what can be read. */
static void withdraw_notices(fanout__job_t *j, const storage_post_state_t *st)
{
    fanout_t *f = j->f;
    const storage_job_t *job = &j->job;
    char group[48];
    static const char *const own[] = {"like", "repost"};
    for (size_t i = 0; i < 2; i++) {
        group_of(group, sizeof(group), own[i], job->post);
        sent(j, storage_group_drop(f->sa, job->author, group, on_written, j));
    }
    if (st->reply_author) {
        group_of(group, sizeof(group), "reply", job->post);
        sent(j, storage_group_drop(f->sa, st->reply_author, group, on_written, j));
    }
    group_of(group, sizeof(group), "mention", job->post);
    for (size_t i = 0; i < st->n_mentions; i++)
        sent(j, storage_group_drop(f->sa, st->mentions[i], group, on_written, j));
}

/* Reply and mention notices of a new post. */
static void notify_post(fanout__job_t *j, const storage_post_state_t *st)
{
    fanout_t *f = j->f;
    const storage_job_t *job = &j->job;
    char group[48];
    if (st->reply_author && st->reply_author != job->author) {
        group_of(group, sizeof(group), "reply", job->post);
        sent(j, storage_group_add(f->sa, st->reply_author, group, job->author, job->event_id,
                                   f->cfg.notifications_max, on_written, j));
    }
    group_of(group, sizeof(group), "mention", job->post);
    for (size_t i = 0; i < st->n_mentions; i++)
        if (st->mentions[i] != job->author && st->mentions[i] != st->reply_author)
            sent(j, storage_group_add(f->sa, st->mentions[i], group, job->author,
                                       job->event_id, f->cfg.notifications_max, on_written, j));
}

static void on_post_state(void *arg, int status, const storage_post_state_t *st)
{
    fanout__job_t *j = arg;
    fanout_t *f = j->f;
    const storage_job_t *job = &j->job;
    if (status) {
        fanout__job_finished(j, false);
        return;
    }
    if (!st->exists || (st->deleted && job->kind != STORAGE_JOB_DELETE)) {
        fanout__job_settle(j, NULL); /* nothing to write; a delete job retracts */
        return;
    }
    if (job->kind == STORAGE_JOB_REPOST || job->kind == STORAGE_JOB_UNREPOST) {
        notify_interaction(j, "repost", job->kind == STORAGE_JOB_REPOST);
        fanout__job_pump(j);
        return;
    }
    if (job->kind == STORAGE_JOB_DELETE)
        withdraw_notices(j, st);
    if (job->kind == STORAGE_JOB_POST) {
        notify_post(j, st);
        if (st->n_muted_by) {
            j->muted_by = malloc(st->n_muted_by * sizeof(uint64_t));
            if (!j->muted_by) {
                fail(j, -ENOMEM);
            } else {
                memcpy(j->muted_by, st->muted_by, st->n_muted_by * sizeof(uint64_t));
                j->n_muted_by = st->n_muted_by;
            }
        }
        if (st->celebrity) {
            /* Merged into timelines at read time; connected followers still get the live
             * event, from the processes holding their streams: no walk over the followers
             * (storage/celebrity_live.c). */
            announce_post(j);
        } else if (st->followers > f->cfg.celebrity_threshold) {
            j->celebrity_mark = true; /* walk the followers once, recording the merge */
            sent(j, storage_celebrity_mark(f->sa, job->author, on_written, j));
        } else if (st->followers > f->cfg.chunk) {
            /* More than one step: connected followers first. Publishing each chunk after
             * the timeline writes of the ones before it put the last follower's event behind
             * all of them (a third of the Redis time of a fan-out is the live events). The
             * timeline walk follows at once; a feed event can thus come a few tens of ms
             * before GET /v1/timeline shows the entry. */
            j->live_first = j->live_only = true;
        }
    }
    /* The author sees their own posts at home too; a delete takes it back. */
    uint64_t author = job->author;
    char ref[48];
    snprintf(ref, sizeof(ref), "%llu", (unsigned long long)job->post);
    sent_event(j, storage_events_publish(f->sa, job, &author, 1,
                                         job->kind == STORAGE_JOB_DELETE ? "delete" : "feed", ref,
                                         NULL, on_published, j));
    sent(j, job->kind == STORAGE_JOB_DELETE
                ? storage_timelines_remove(f->sa, job->post, &author, 1, on_written, j)
                : storage_timelines_add(f->sa, job->post, &author, 1, f->cfg.timeline_max,
                                        on_written, j));
    fanout__job_pump(j);
}

/* "follow:<yyyymmdd>" of the day the follow happened (UTC): follows group by day. */
static void follow_group(char *buf, size_t size, uint64_t event_id)
{
    time_t secs = (time_t)(storage_id_time_ms(event_id) / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    strftime(buf, size, "follow:%Y%m%d", &tm);
}

/* The jobs that are a handful of independent writes. */
static void start_simple(fanout__job_t *j)
{
    fanout_t *f = j->f;
    const storage_job_t *job = &j->job;
    int max = f->cfg.timeline_max;
    char group[48];
    j->all_fetched = true;
    switch (job->kind) {
    case STORAGE_JOB_FOLLOW:
        follow_group(group, sizeof(group), job->event_id);
        sent(j, storage_timeline_backfill(f->sa, job->follower, job->followee, max, on_written, j));
        sent(j, storage_group_add(f->sa, job->followee, group, job->follower, job->event_id,
                                   f->cfg.notifications_max, on_written, j));
        break;
    case STORAGE_JOB_UNFOLLOW:
        sent(j, storage_timeline_purge(f->sa, job->follower, job->followee, max, on_written, j));
        sent(j, storage_group_remove(f->sa, job->followee, NULL, job->follower, on_written, j));
        break;
    case STORAGE_JOB_LIKE:
    case STORAGE_JOB_UNLIKE:
        notify_interaction(j, "like", job->kind == STORAGE_JOB_LIKE);
        break;
    case STORAGE_JOB_BLOCK: /* nothing between the two, either way */
        sent(j, storage_timeline_hide(f->sa, job->user, job->target, max, on_written, j));
        sent(j, storage_timeline_hide(f->sa, job->target, job->user, max, on_written, j));
        sent(j, storage_group_scrub(f->sa, job->user, job->target, on_written, j));
        sent(j, storage_group_scrub(f->sa, job->target, job->user, on_written, j));
        break;
    case STORAGE_JOB_MUTE:
        sent(j, storage_timeline_hide(f->sa, job->user, job->target, max, on_written, j));
        sent(j, storage_group_scrub(f->sa, job->user, job->target, on_written, j));
        break;
    case STORAGE_JOB_UNMUTE: /* posts missed while muted come back if still followed */
        sent(j, storage_timeline_backfill(f->sa, job->user, job->target, max, on_written, j));
        break;
    default: /* unblock: the block's effects are not undone (follows stay ended) */
        break;
    }
    maybe_finish(j);
}

/* Why a job cannot be run at all, or NULL when its fields are complete. */
static const char *malformed(const storage_job_t *job)
{
    switch (job->kind) {
    case STORAGE_JOB_POST:
    case STORAGE_JOB_DELETE:
        return job->post && job->author ? NULL : "malformed job: no post or author";
    case STORAGE_JOB_REPOST:
    case STORAGE_JOB_UNREPOST:
    case STORAGE_JOB_LIKE:
    case STORAGE_JOB_UNLIKE:
        return job->post && job->author && job->actor ? NULL
                                                      : "malformed job: no post, author or actor";
    case STORAGE_JOB_FOLLOW:
    case STORAGE_JOB_UNFOLLOW:
        return job->follower && job->followee ? NULL : "malformed job: no follower or followee";
    case STORAGE_JOB_BLOCK:
    case STORAGE_JOB_UNBLOCK:
    case STORAGE_JOB_MUTE:
    case STORAGE_JOB_UNMUTE:
        return job->user && job->target ? NULL : "malformed job: no user or target";
    default:
        return "malformed job: unknown kind";
    }
}

static void start_checked(fanout__job_t *j);

static bool is_undo(storage_job_kind_t kind)
{
    return kind == STORAGE_JOB_UNLIKE || kind == STORAGE_JOB_UNREPOST ||
           kind == STORAGE_JOB_UNFOLLOW;
}

/* A like, repost or follow job (or its undoing) applies only if the user has not changed
 * their mind since: a late "like" after the unlike would otherwise bring the notice back. */
static void on_action_checked(void *arg, int status, bool holds)
{
    fanout__job_t *j = arg;
    if (status)
        fanout__job_finished(j, false);
    else if (holds == is_undo(j->job.kind))
        fanout__job_settle(j, NULL); /* superseded: a later job carries the current state */
    else
        start_checked(j);
}

void fanout__job_start(fanout__job_t *j)
{
    const char *reason = malformed(&j->job);
    if (reason) {
        fanout__job_settle(j, reason); /* no retry can mend it */
        return;
    }
    switch (j->job.kind) {
    case STORAGE_JOB_LIKE:
    case STORAGE_JOB_UNLIKE:
    case STORAGE_JOB_REPOST:
    case STORAGE_JOB_UNREPOST:
    case STORAGE_JOB_FOLLOW:
    case STORAGE_JOB_UNFOLLOW:
        if (storage_action_holds(j->f->sa, &j->job, on_action_checked, j) != 0)
            fanout__job_finished(j, false);
        return;
    default:
        start_checked(j);
    }
}

static void start_checked(fanout__job_t *j)
{
    const storage_job_t *job = &j->job;
    switch (job->kind) {
    case STORAGE_JOB_POST:
    case STORAGE_JOB_DELETE:
    case STORAGE_JOB_REPOST:
    case STORAGE_JOB_UNREPOST: {
        bool repost = job->kind == STORAGE_JOB_REPOST || job->kind == STORAGE_JOB_UNREPOST;
        j->walk_user = repost ? job->actor : job->author;
        if (storage_post_state(j->f->sa, job->post, job->author, on_post_state, j) != 0)
            fanout__job_finished(j, false);
        return;
    }
    default:
        start_simple(j);
    }
}
