/* fanout/job.c -- one job's work, from its first read to its acknowledgement.
 *
 * A job's life is a phase (fanout__phase_t), and advance() alone moves it on: a switch whose
 * cases read top to bottom in the order a job meets them.
 *
 * CHECK       a malformed job is dead-lettered. A like, repost or follow (or its undoing)
 *             applies only if the user has not changed their mind since.
 * TURN        a post or delete waits until its author's earlier ones are done, in whatever
 *             process: followers' streams get an author's posts in the order they were made.
 *             Its first ask also reads the post and its first followers (job_first.c).
 * READ        post, delete, repost and unrepost read the post's state; from it they send
 *             the notices and the author's own entry, and choose the walk.
 * WRITES      the other kinds: a handful of independent writes.
 * WALK        the followers in chunks: read a chunk, send its writes, read the next while
 *             they fly, as long as the engine's in-flight budget allows.
 * ANNOUNCE    after a marking walk: the processes learn who follows, then get this post.
 * RECHECK     a post is checked again with its last writes (recheck_due): deleted
 * QUEUE_DELETE  meanwhile means a delete job is queued (it runs after our writes: it wins).
 * SETTLE      acknowledge; DONE: the ack (or dead-letter) is on its way.
 *
 * The walks (fanout__walk_t): TIMELINES writes each follower's home timeline (the post, its
 * removal, or a repost entry) and sends the live events. A post with more followers than one
 * chunk first makes a LIVE walk, events only, so connected followers need not wait for the
 * timeline writes. An author past the celebrity threshold gets a MARK walk instead, and
 * their followers merge them at read time; an author already marked has no walk: the post is
 * announced to every process. Followers who muted the author are skipped.
 *
 * A phase's step runs only once everything the job sent before is confirmed; the walk alone
 * reads on while its writes fly. Any failure ends the job unacknowledged once nothing of it
 * is in flight: it is retried after the claim timeout and dead-lettered after too many
 * attempts.
 */
#include "fanout/fanout_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NS_PER_MS 1000000

/* A post id as an event's or announcement's ref. */
#define REF_SIZE 24
/* "<kind>:<post>" or "follow:<yyyymmdd>". */
#define GROUP_SIZE 48

static void advance(fanout__job_t *j);

/* ---- writes and their replies -------------------------------------------------------------- */

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

static void post_ref(char ref[REF_SIZE], uint64_t post)
{
    snprintf(ref, REF_SIZE, "%llu", (unsigned long long)post);
}

/* A celebrity's post, announced to every process instead of walked over the followers. */
static void announce_post(fanout__job_t *j)
{
    char ref[REF_SIZE];
    post_ref(ref, j->job.post);
    sent(j, storage_announce_post(j->f->sa, &j->job, STORAGE_EVENT_FEED, ref, on_written, j));
}

/* ---- notifications ------------------------------------------------------------------------- */

/* "<kind>:<post>" */
static void group_of(char *buf, size_t size, const char *kind, uint64_t post)
{
    snprintf(buf, size, "%s:%llu", kind, (unsigned long long)post);
}

/* "follow:<yyyymmdd>" of the day the follow happened (UTC): follows group by day. */
static void follow_group(char *buf, size_t size, uint64_t event_id)
{
    time_t secs = (time_t)(storage_id_time_ms(event_id) / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    strftime(buf, size, "follow:%Y%m%d", &tm);
}

/* A like or repost notice to the post's author, or its removal; none for acting on your
 * own post. */
static void notify_interaction(fanout__job_t *j, const char *kind, bool add)
{
    fanout_t *f = j->f;
    const storage_job_t *job = &j->job;
    if (job->actor == job->author)
        return;
    char group[GROUP_SIZE];
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
    char group[GROUP_SIZE];
    static const char *const own[] = {"like", "repost"};
    for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++) {
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
    char group[GROUP_SIZE];
    if (st->reply_author && st->reply_author != job->author) {
        group_of(group, sizeof(group), "reply", job->post);
        sent(j, storage_group_add(f->sa, st->reply_author, group, job->author, job->event_id,
                                  f->cfg.notifications_max, on_written, j));
    }
    group_of(group, sizeof(group), "mention", job->post);
    for (size_t i = 0; i < st->n_mentions; i++)
        if (st->mentions[i] != job->author && st->mentions[i] != st->reply_author)
            sent(j, storage_group_add(f->sa, st->mentions[i], group, job->author, job->event_id,
                                      f->cfg.notifications_max, on_written, j));
}

/* ---- the walk over the followers ----------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The users of a chunk that get the post: all but those who muted its author (muted_by,
 * sorted). Returns users itself when nobody is left out, else a new array (*owned set). */
static const uint64_t *without_muted(const uint64_t *muted_by, size_t n_muted_by,
                                     const uint64_t *users, size_t *n, uint64_t **owned)
{
    *owned = NULL;
    if (!n_muted_by)
        return users;
    uint64_t *keep = malloc((*n ? *n : 1) * sizeof(*keep));
    if (!keep)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < *n; i++)
        if (!bsearch(&users[i], muted_by, n_muted_by, sizeof(uint64_t), cmp_u64))
            keep[k++] = users[i];
    *n = k;
    *owned = keep;
    return keep;
}

/* Sends the writes of one chunk of users, and the live events of those connected. Returns
 * the chunk's write operation's send status (counted by the caller), -ENODATA when the chunk
 * has no such operation. */
#define DAY_MS (86400ull * 1000)

/* Followers last seen before this get no timeline entries (0: --inactive-days 0, everyone
 * does); their first read rebuilds the timeline (fanout/job_rebuild.c). */
static uint64_t seen_after(const fanout_t *f)
{
    uint64_t span = (uint64_t)f->cfg.inactive_days * DAY_MS, now = storage_now_ms();
    return f->cfg.inactive_days > 0 && now > span ? now - span : 0;
}

static int write_chunk(fanout__job_t *j, const uint64_t *users, size_t n)
{
    fanout_t *f = j->f;
    const storage_job_t *job = &j->job;
    char ref[REF_SIZE];
    post_ref(ref, job->post);
    if (j->walk == FANOUT_WALK_MARK)
        return storage_celebrity_followers_add(f->sa, job->author, users, n, on_written, j);
    switch (job->kind) {
    case STORAGE_JOB_DELETE:
        sent_event(j, storage_events_publish(f->sa, job, users, n, STORAGE_EVENT_DELETE, ref, NULL,
                                             on_published, j));
        return storage_timelines_remove(f->sa, job->post, users, n, on_written, j);
    case STORAGE_JOB_REPOST:
    case STORAGE_JOB_UNREPOST:
        return storage_repost_entries(f->sa, job->post, job->author, job->actor, job->event_id,
                                      users, n, job->kind == STORAGE_JOB_REPOST,
                                      f->cfg.timeline_max, seen_after(f), on_written, j);
    default:
        break;
    }
    uint64_t *owned;
    const uint64_t *to = without_muted(j->muted_by, j->n_muted_by, users, &n, &owned);
    if (!to)
        return -ENOMEM;
    int rc = -ENODATA;
    if (n && j->walk == FANOUT_WALK_LIVE)
        rc = storage_events_publish(f->sa, job, to, n, STORAGE_EVENT_FEED, ref, &j->live_published,
                                    on_written, j); /* the chunk's work */
    else if (n) {
        if (!j->published)
            sent_event(j, storage_events_publish(f->sa, job, to, n, STORAGE_EVENT_FEED, ref,
                                                 &j->events_logged, on_published, j));
        rc = storage_timelines_add(f->sa, job->post, to, n, f->cfg.timeline_max, seen_after(f),
                                   on_written, j);
        if (rc == 0)
            j->timelines_sent += n;
    }
    free(owned);
    return rc;
}

/* ---- the post's delivery status (storage/delivery.c) -------------------------------------- */

static uint64_t live_logged(const fanout__job_t *j)
{
    return (uint64_t)(j->live_published + j->events_logged);
}

/* Once per chunk of followers: what is written so far (live events as confirmed, so they
 * trail by a chunk; the last report comes with the job's end). */
static void report_progress(fanout__job_t *j)
{
    sent_event(j, storage_delivery_progress(j->f->sa, j->job.post, j->timelines_sent,
                                            live_logged(j), on_published, j));
}

static void ignore_status(void *arg, int status)
{
    (void)arg;
    (void)status; /* a status line that did not get written ages out with the rest */
}

/* Followers per step. A live walk writes no timelines, only one event per connected
 * follower, so it takes bigger steps: fewer round trips before the last follower's event.
 * (Its script calls still take 1,000 followers each; steps of 2,000 or 20,000 measured no
 * better at 10,000 connected followers.) */
#define LIVE_CHUNK 5000

/* The live walk's first step is small: its events go out while Redis appends the rest. */
#define LIVE_FIRST_STEP 250

static size_t walk_step(const fanout__job_t *j)
{
    size_t chunk = (size_t)j->f->cfg.chunk;
    if (j->walk != FANOUT_WALK_LIVE || chunk >= LIVE_CHUNK)
        return chunk;
    return j->cursor == 0 ? LIVE_FIRST_STEP : LIVE_CHUNK;
}

/* A chunk read (or the one read with the turn): its writes go out. */
static void take_chunk(fanout__job_t *j, int status, const uint64_t *ids, size_t n, uint64_t last)
{
    if (status) {
        fail(j, status);
    } else {
        if (n < walk_step(j))
            j->walk_ended = true;
        j->cursor = last;
        if (n && !j->status) {
            int rc = write_chunk(j, ids, n);
            if (rc != -ENODATA)
                sent(j, rc);
            if (rc == 0 && j->walk == FANOUT_WALK_TIMELINES)
                atomic_fetch_add_explicit(&j->f->stats.timeline_writes, n, memory_order_relaxed);
            if (rc == 0 && j->job.kind == STORAGE_JOB_POST && j->walk != FANOUT_WALK_MARK)
                report_progress(j);
        }
    }
}

static void on_chunk(void *arg, int status, const uint64_t *ids, size_t n, uint64_t last)
{
    fanout__job_t *j = arg;
    j->fetching = false;
    take_chunk(j, status, ids, n, last);
    fanout__job_pump(j);
}

/* The walk's first chunk when the job's first round trip read it (job_first.c): it was read
 * from the author's first follower, a chunk long, which fits a timeline or marking walk over
 * the author's followers; a live walk (a smaller first step) or a repost's reads its own.
 * Returns whether it was taken. */
static bool take_prefetched(fanout__job_t *j)
{
    if (!j->has_prefetch)
        return false;
    uint64_t *ids = j->prefetched;
    bool fits =
        j->cursor == 0 && j->walk_user == j->job.author && walk_step(j) == (size_t)j->f->cfg.chunk;
    j->has_prefetch = false;
    j->prefetched = NULL;
    if (fits)
        take_chunk(j, 0, ids, j->n_prefetched, j->prefetched_last);
    free(ids);
    return fits;
}

/* Reads the next chunk, or parks the job while the in-flight budget is spent. */
static void read_chunk(fanout__job_t *j)
{
    fanout_t *f = j->f;
    if (!fanout__budget_ok(f)) {
        fanout__park(j);
        return;
    }
    if (take_prefetched(j))
        return;
    int rc = storage_followers_chunk(f->sa, j->walk_user, j->cursor, walk_step(j), on_chunk, j);
    if (rc)
        fail(j, rc);
    else
        j->fetching = true;
}

/* How long the timeline walk lets the live delivery have the machine: about what sending
 * one event costs a stream writer (loopback, measured in bench/sse.sh), per event the live
 * walk published (no wait when no follower is connected), and no more than
 * LIVE_YIELD_MAX_MS. */
#define LIVE_YIELD_NS_PER_EVENT 5000
#define LIVE_YIELD_MAX_MS 100

/* ---- replies that choose the next phase ---------------------------------------------------- */

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
        fail(j, status);
    else if (holds == is_undo(j->job.kind))
        j->phase = FANOUT_PHASE_SETTLE; /* superseded: a later job carries the current state */
    advance(j);
}

/* How long a job waits before it asks for its turn again: soon at first (the earlier job is
 * usually about to end), then less often. */
#define TURN_FIRST_MS 2
#define TURN_MAX_MS 200

static void on_turn(void *arg, int status, bool mine)
{
    fanout__job_t *j = arg;
    if (status) {
        fail(j, status);
    } else if (mine) {
        fanout__job_await_turn(j, false);
        bool erase = j->job.kind == STORAGE_JOB_ERASE || j->job.kind == STORAGE_JOB_ERASE_REST;
        j->phase = erase ? FANOUT_PHASE_WRITES : FANOUT_PHASE_READ;
    } else {
        fanout__job_await_turn(j, true);
        int shift = j->turn_asks < 7 ? j->turn_asks : 7;
        j->turn_asks++;
        uint64_t wait = (uint64_t)TURN_FIRST_MS << shift;
        fanout__yield(j, wait < TURN_MAX_MS ? wait : TURN_MAX_MS);
        return; /* the yield pumps it again, still at TURN */
    }
    advance(j);
}

/* Sends what the post's state calls for before the walk, and chooses the walk. */
static void on_post_state(void *arg, int status, const storage_post_state_t *st)
{
    fanout__job_t *j = arg;
    fanout_t *f = j->f;
    const storage_job_t *job = &j->job;
    if (status) {
        fail(j, status);
        advance(j);
        return;
    }
    if (!st->exists || (st->deleted && job->kind != STORAGE_JOB_DELETE)) {
        j->phase = FANOUT_PHASE_SETTLE; /* nothing to write; a delete job retracts */
        advance(j);
        return;
    }
    j->walk = FANOUT_WALK_TIMELINES;
    if (job->kind == STORAGE_JOB_REPOST || job->kind == STORAGE_JOB_UNREPOST) {
        notify_interaction(j, "repost", job->kind == STORAGE_JOB_REPOST);
        advance(j);
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
            j->walk = FANOUT_WALK_NONE;
            j->phase = FANOUT_PHASE_RECHECK;
            announce_post(j);
        } else if (st->followers > f->cfg.celebrity_threshold) {
            j->walk = FANOUT_WALK_MARK; /* walk the followers once, recording the merge */
            sent(j, storage_celebrity_mark(f->sa, job->author, on_written, j));
        } else if (st->followers > f->cfg.chunk && !j->published) {
            /* More than one step: connected followers first. Publishing each chunk after
             * the timeline writes of the ones before it put the last follower's event behind
             * all of them (a third of the Redis time of a fan-out is the live events). The
             * timeline walk follows at once; a feed event can thus come a few tens of ms
             * before GET /v1/timeline shows the entry. (An attempt retried after a live walk
             * that ended goes straight to the timelines, without events.) */
            j->walk = FANOUT_WALK_LIVE;
        }
    }
    if (job->kind == STORAGE_JOB_POST)
        sent_event(j, storage_delivery_started(f->sa, job->post, st->followers,
                                               st->celebrity || j->walk == FANOUT_WALK_MARK,
                                               on_published, j));
    /* The author sees their own posts at home too; a delete takes it back. */
    uint64_t author = job->author;
    char ref[REF_SIZE];
    post_ref(ref, job->post);
    sent_event(j, storage_events_publish(f->sa, job, &author, 1,
                                         job->kind == STORAGE_JOB_DELETE ? STORAGE_EVENT_DELETE
                                                                         : STORAGE_EVENT_FEED,
                                         ref, NULL, on_published, j));
    sent(j, job->kind == STORAGE_JOB_DELETE
                ? storage_timelines_remove(f->sa, job->post, &author, 1, on_written, j)
                : storage_timelines_add(f->sa, job->post, &author, 1, f->cfg.timeline_max,
                                        seen_after(f), on_written, j));
    advance(j);
}

/* ---- a small author's post in one script (storage/post_job.c) ---------------------------- */

/* A post whose followers all came with the first round trip, with no reply or mention notices
 * to send and run for the first time: its writes and its acknowledgement are one script (the
 * job's second and last round trip). Anything else walks. */
static bool fits_one_script(const fanout__job_t *j, const storage_post_state_t *st)
{
    const fanout_t *f = j->f;
    const storage_job_t *job = &j->job;
    return job->kind == STORAGE_JOB_POST && job->deliveries <= 1 && !job->rerun &&
           j->has_prefetch && j->n_prefetched < (size_t)f->cfg.chunk && st->exists &&
           !st->deleted && !st->celebrity && st->followers <= f->cfg.celebrity_threshold &&
           !st->reply_author && st->n_mentions == 0;
}

static void on_one_script(void *arg, int status, const storage_post_job_outcome_t *out)
{
    fanout__job_t *j = arg;
    j->writes_pending--;
    j->f->writes_in_flight--;
    if (status) {
        fail(j, status); /* retried as a re-run, which walks */
        advance(j);
        return;
    }
    j->timelines_sent = out->timelines;
    j->events_logged = out->live;
    atomic_fetch_add_explicit(&j->f->stats.timeline_writes, out->timelines, memory_order_relaxed);
    if (out->acked) {
        fanout__job_finished(j, true);
        return;
    }
    j->phase = FANOUT_PHASE_QUEUE_DELETE; /* deleted meanwhile: its delete job goes behind */
    advance(j);
}

/* Sends the script; 0, or why not (-EPROTO: the keys span several nodes; -EBUSY: the
 * in-flight budget is spent): then it walks, which parks until the budget allows. */
static int run_in_one_script(fanout__job_t *j, const storage_post_state_t *st)
{
    fanout_t *f = j->f;
    if (!fanout__budget_ok(f))
        return -EBUSY;
    size_t n = j->n_prefetched;
    uint64_t *owned;
    const uint64_t *to = without_muted(st->muted_by, st->n_muted_by, j->prefetched, &n, &owned);
    if (!to && st->n_muted_by) /* no followers at all is no list, and no error */
        return -ENOMEM;
    storage_post_job_t p = {.timeline_max = f->cfg.timeline_max,
                            .seen_after_ms = seen_after(f),
                            .followers = st->followers};
    int rc = storage_post_job_run(f->sa, &j->job, to, n, &p, on_one_script, j);
    free(owned);
    if (rc == 0) {
        j->writes_pending++;
        f->writes_in_flight++;        /* a chunk's timeline writes, as the walk counts them */
        j->phase = FANOUT_PHASE_DONE; /* the acknowledgement is on its way, in the script */
    }
    return rc;
}

/* The first round trip's answer (job_first.c): on the job's turn, the state read with it
 * chooses the walk at once, and the walk starts from the chunk read with it -- or the whole
 * job is one more script. */
static void on_first(fanout__job_t *j, int status, bool mine, const storage_post_state_t *st)
{
    if (status || !mine) {
        on_turn(j, status, mine);
        return;
    }
    fanout__job_await_turn(j, false);
    if (fits_one_script(j, st) && run_in_one_script(j, st) == 0)
        return;
    j->walk_user = j->job.author;
    j->phase = FANOUT_PHASE_WALK;
    on_post_state(j, 0, st);
}

/* A post's recheck, sent right after its last chunk's writes rather than after their replies
 * (one round trip less): on one Redis it runs after them on the same connection, as before.
 * On a cluster the post may live on another node and be read before the writes land there;
 * a delete that comes in between is still queued behind this job in its author's order and
 * removes the entries after it. */
static bool recheck_due(const fanout__job_t *j)
{
    return j->job.kind == STORAGE_JOB_POST && j->phase == FANOUT_PHASE_WALK &&
           j->walk == FANOUT_WALK_TIMELINES && j->walk_ended && !j->fetching && !j->status &&
           !j->recheck_sent;
}

static void on_rechecked(void *arg, int status, const storage_post_state_t *st)
{
    fanout__job_t *j = arg;
    j->writes_pending--;
    if (status)
        fail(j, status);
    else
        j->deleted_meanwhile = st->deleted;
    fanout__job_pump(j);
}

static void on_final_state(void *arg, int status, const storage_post_state_t *st)
{
    fanout__job_t *j = arg;
    if (status)
        fail(j, status);
    else if (st->deleted) /* deleted while we wrote it: make sure the retraction comes after */
        j->phase = FANOUT_PHASE_QUEUE_DELETE;
    advance(j);
}

static void on_delete_queued(void *arg, int status)
{
    fanout__job_t *j = arg;
    if (status)
        fail(j, status);
    advance(j);
}

/* ---- the life of a job --------------------------------------------------------------------- */

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
    case STORAGE_JOB_ERASE:
    case STORAGE_JOB_ERASE_REST:
        return job->author ? NULL : "malformed job: no author";
    case STORAGE_JOB_REBUILD:
        return job->user ? NULL : "malformed job: no user";
    default:
        return "malformed job: unknown kind";
    }
}

/* The kinds whose action the user may have undone (or redone) since. */
static bool checks_action(storage_job_kind_t kind)
{
    switch (kind) {
    case STORAGE_JOB_LIKE:
    case STORAGE_JOB_UNLIKE:
    case STORAGE_JOB_REPOST:
    case STORAGE_JOB_UNREPOST:
    case STORAGE_JOB_FOLLOW:
    case STORAGE_JOB_UNFOLLOW:
        return true;
    default:
        return false;
    }
}

/* The kinds that read the post and walk the followers. */
static bool reads_post(storage_job_kind_t kind)
{
    return kind == STORAGE_JOB_POST || kind == STORAGE_JOB_DELETE || kind == STORAGE_JOB_REPOST ||
           kind == STORAGE_JOB_UNREPOST;
}

/* The writes of the jobs that are a handful of independent writes. */
static void send_writes(fanout__job_t *j)
{
    fanout_t *f = j->f;
    const storage_job_t *job = &j->job;
    int max = f->cfg.timeline_max;
    char group[GROUP_SIZE];
    switch (job->kind) {
    case STORAGE_JOB_FOLLOW:
        follow_group(group, sizeof(group), job->event_id);
        sent(j, storage_timeline_backfill(f->sa, job->follower, job->followee, max, on_written, j));
        sent(j,
             storage_follow_notice_add(f->sa, job->followee, group, job->follower, job->event_id,
                                       f->cfg.notifications_max,
                                       (uint64_t)f->cfg.refollow_window_s * 1000, on_written, j));
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
    case STORAGE_JOB_ERASE: /* a user leaving: one long step, off the loop */
    case STORAGE_JOB_ERASE_REST:
        sent_event(j, fanout__erase_run(j, on_published));
        break;
    case STORAGE_JOB_REBUILD: /* a user back after a while: one step, off the loop */
        sent_event(j, fanout__rebuild_run(j, on_published));
        break;
    default: /* unblock: the block's effects are not undone (follows stay ended) */
        break;
    }
}

/* Something of the job is in flight (a reply or the engine calls advance again then), or the
 * walk has more to read. */
static bool busy(const fanout__job_t *j)
{
    return j->fetching || j->writes_pending > 0 || j->waiting ||
           (j->phase == FANOUT_PHASE_WALK && !j->walk_ended && !j->status);
}

/* Runs the job as far as it can go now; called when it starts and after every reply. A case
 * does its phase's step and sets the next phase; one that waits for a reply returns, and the
 * reply's callback may choose another next phase (a superseded action, a deleted post). */
static void advance(fanout__job_t *j)
{
    fanout_t *f = j->f;
    const storage_job_t *job = &j->job;
    for (;;) {
        if (j->phase == FANOUT_PHASE_WALK && !j->status && !j->walk_ended && !j->fetching)
            read_chunk(j); /* while the last chunk's writes fly */
        if (recheck_due(j)) {
            j->recheck_sent = true;
            sent_event(j, storage_post_state(f->sa, job->post, job->author, on_rechecked, j));
        }
        if (busy(j))
            return;
        if (j->status) {
            if (!fanout__job_retry(j))
                fanout__job_finished(j, false);
            return;
        }
        int rc = 0;
        switch (j->phase) {
        case FANOUT_PHASE_CHECK: {
            const char *reason = malformed(job);
            if (reason) {
                fanout__job_settle(j, reason); /* no retry can mend it */
                return;
            }
            j->phase = job->kind == STORAGE_JOB_POST || job->kind == STORAGE_JOB_DELETE ||
                               job->kind == STORAGE_JOB_ERASE || job->kind == STORAGE_JOB_ERASE_REST
                           ? FANOUT_PHASE_TURN
                       : reads_post(job->kind) ? FANOUT_PHASE_READ
                                               : FANOUT_PHASE_WRITES;
            if (checks_action(job->kind))
                rc = storage_action_holds(f->sa, job, on_action_checked, j);
            else
                continue;
            break;
        }
        case FANOUT_PHASE_TURN:
            /* The first ask reads the post and its first followers with the turn; a job that
             * had to wait asks for the turn alone, then reads (job_first.c says why). */
            rc = reads_post(job->kind) && j->turn_asks == 0
                     ? fanout__first_ask(j, on_first)
                     : storage_job_turn(f->sa, job, on_turn, j);
            break;
        case FANOUT_PHASE_READ: {
            bool repost = job->kind == STORAGE_JOB_REPOST || job->kind == STORAGE_JOB_UNREPOST;
            j->walk_user = repost ? job->actor : job->author;
            j->phase = FANOUT_PHASE_WALK; /* on_post_state chooses the walk, or none */
            rc = storage_post_state(f->sa, job->post, job->author, on_post_state, j);
            break;
        }
        case FANOUT_PHASE_WRITES:
            j->phase = FANOUT_PHASE_SETTLE;
            send_writes(j);
            continue;
        case FANOUT_PHASE_WALK:
            if (j->walk == FANOUT_WALK_LIVE) {
                /* Every connected follower has the event: now walk again for the timelines,
                 * after the streams had time to send it. The timeline walk is the one part of
                 * a fan-out nobody waits for (the event carries the post), and on a busy
                 * machine its Redis and engine time came out of the delivery's. */
                j->walk = FANOUT_WALK_TIMELINES;
                j->published = true;
                j->walk_ended = false;
                j->cursor = 0;
                uint64_t yield_ms = j->live_published * LIVE_YIELD_NS_PER_EVENT / NS_PER_MS;
                if (yield_ms) {
                    fanout__yield(j, yield_ms < LIVE_YIELD_MAX_MS ? yield_ms : LIVE_YIELD_MAX_MS);
                    return;
                }
            } else if (j->walk == FANOUT_WALK_MARK) {
                j->phase = FANOUT_PHASE_ANNOUNCE;
            } else {
                j->phase =
                    job->kind == STORAGE_JOB_POST ? FANOUT_PHASE_RECHECK : FANOUT_PHASE_SETTLE;
            }
            continue;
        case FANOUT_PHASE_ANNOUNCE:
            /* Marked: the processes learn who follows, then deliver this post as the next. */
            j->phase = FANOUT_PHASE_SETTLE;
            sent(j, storage_announce_celebrity(f->sa, job->author, on_written, j));
            announce_post(j);
            continue;
        case FANOUT_PHASE_RECHECK:
            if (j->recheck_sent) { /* with the last writes (recheck_due) */
                j->phase = j->deleted_meanwhile ? FANOUT_PHASE_QUEUE_DELETE : FANOUT_PHASE_SETTLE;
                continue;
            }
            j->phase = FANOUT_PHASE_SETTLE; /* on_final_state: or QUEUE_DELETE */
            rc = storage_post_state(f->sa, job->post, job->author, on_final_state, j);
            break;
        case FANOUT_PHASE_QUEUE_DELETE:
            j->phase = FANOUT_PHASE_SETTLE;
            rc = storage_job_queue_delete(f->sa, job->post, job->author,
                                          strtoull(job->entry_id, NULL, 10), on_delete_queued, j);
            break;
        case FANOUT_PHASE_SETTLE:
            fanout__job_settle(j, NULL);
            return;
        case FANOUT_PHASE_DONE:
            return;
        }
        /* A case that sent one command waits for its reply; if it could not be sent, the
         * loop ends the job. */
        if (rc == 0)
            return;
        fail(j, rc);
    }
}

/* ---- entry points -------------------------------------------------------------------------- */

void fanout__job_start(fanout__job_t *j)
{
    LOOP_ONLY(j->f);
    j->phase = FANOUT_PHASE_CHECK;
    advance(j);
}

void fanout__job_pump(fanout__job_t *j)
{
    LOOP_ONLY(j->f);
    j->waiting = false;
    advance(j);
}

static void settle_done(void *arg, int status)
{
    fanout__job_t *j = arg;
    fanout__job_finished(j, status == 0);
}

void fanout__job_settle(fanout__job_t *j, const char *dead_reason)
{
    LOOP_ONLY(j->f);
    fanout_t *f = j->f;
    j->phase = FANOUT_PHASE_DONE;
    if (dead_reason)
        atomic_fetch_add_explicit(&f->stats.jobs_dead, 1, memory_order_relaxed);
    if (j->job.kind == STORAGE_JOB_POST) /* alongside the ack: the job is freed after it */
        storage_delivery_finished(f->sa, j->job.post, dead_reason != NULL, j->timelines_sent,
                                  live_logged(j), ignore_status, NULL);
    int rc = dead_reason ? storage_job_dead_letter(f->sa, &j->job, dead_reason, settle_done, j)
                         : storage_job_ack(f->sa, &j->job, settle_done, j);
    if (rc)
        fanout__job_finished(j, false);
}
