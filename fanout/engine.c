/* fanout/engine.c -- the engine: reading jobs, claiming abandoned ones, bounding the work
 * in flight, sampling queue statistics, and stopping cleanly.
 *
 * Flow control has two bounds: at most max_jobs jobs at once (reads ask for no more than
 * the free slots), and at most max_in_flight Redis commands outstanding; a job that
 * would exceed the latter parks until replies come back. When Redis slows down, replies
 * slow down, and so does the engine: nothing queues up in our memory.
 */
#include "fanout/fanout_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define READ_RETRY_MS 200
#define STOP_POLL_MS 20

/* Claims run every half of --claim-idle-ms, and running jobs tell Redis they are alive every
 * third of it (so no one claims them), neither more often than every TIMER_MIN_MS. */
#define CLAIM_DIVISOR 2
#define TOUCH_DIVISOR 3
#define TIMER_MIN_MS 100

#define MS_PER_S 1000
#define NS_PER_MS 1000000

static void read_more(fanout_t *f);
static void on_read_retry(uv_timer_t *t);

void fanout_config_defaults(fanout_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->max_jobs = 64;
    cfg->chunk = 1000;
    cfg->max_in_flight = 100000;
    cfg->timeline_max = 800;
    cfg->notifications_max = 1000;
    cfg->celebrity_threshold = 10000;
    cfg->refollow_window_s = 86400;
    cfg->claim_idle_ms = 30000;
    cfg->max_attempts = 5;
    cfg->block_ms = 1000;
    cfg->stats_interval_ms = 2000;
    cfg->inactive_days = 30;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * MS_PER_S + (uint64_t)ts.tv_nsec / NS_PER_MS;
}

const fanout_stats_t *fanout_stats(const fanout_t *f)
{
    return &f->stats;
}

const char *fanout_consumer(const fanout_t *f)
{
    return f->consumer;
}

/* ---- jobs ---------------------------------------------------------------------------------- */

/* A chunk's writes are one script call, so Redis commands in flight no longer measure the
 * work queued in Redis: each write operation counts as up to a chunk of writes. */
bool fanout__budget_ok(const fanout_t *f)
{
    return storage_async_in_flight(f->sa) + (f->writes_in_flight + 1) * (size_t)f->cfg.chunk <=
           (size_t)f->cfg.max_in_flight;
}

void fanout__park(fanout__job_t *j)
{
    LOOP_ONLY(j->f);
    j->waiting = true;
}

static void arm_yield_timer(fanout_t *f);
static void resume_parked(fanout_t *f);

static void on_yield_timer(uv_timer_t *t)
{
    fanout_t *f = t->data;
    uint64_t now = uv_now(f->loop);
    for (fanout__job_t *j = f->jobs; j; j = j->next)
        if (j->not_before_ms && j->not_before_ms <= now)
            j->not_before_ms = 0;
    resume_parked(f);
    arm_yield_timer(f);
}

/* Due at the earliest yielding job's time, if any. */
static void arm_yield_timer(fanout_t *f)
{
    uint64_t next = 0;
    for (fanout__job_t *j = f->jobs; j; j = j->next)
        if (j->not_before_ms && (!next || j->not_before_ms < next))
            next = j->not_before_ms;
    if (!next || f->closed)
        return;
    uint64_t now = uv_now(f->loop);
    uv_timer_start(&f->yield_timer, on_yield_timer, next > now ? next - now : 0, 0);
}

void fanout__yield(fanout__job_t *j, uint64_t ms)
{
    LOOP_ONLY(j->f);
    j->waiting = true;
    j->not_before_ms = uv_now(j->f->loop) + ms;
    if (!j->not_before_ms)
        j->not_before_ms = 1; /* 0 means not yielding */
    arm_yield_timer(j->f);
}

/* Gives parked jobs their turn while the budget allows. Pumping a job may finish and
 * free any job (this one included) and call back in here, so the scan restarts from the
 * head after every pump, and a nested call only asks the running one to go on. */
static void resume_parked(fanout_t *f)
{
    if (f->resuming) {
        f->resume_again = true;
        return;
    }
    f->resuming = true;
    do {
        f->resume_again = false;
        for (fanout__job_t *j = f->jobs; j && fanout__budget_ok(f); j = j->next)
            if (j->waiting && !j->not_before_ms) {
                fanout__job_pump(j);
                f->resume_again = true;
                break;
            }
    } while (f->resume_again);
    f->resuming = false;
}

/* Posts and deletes of one author run one at a time, in queue order, so that followers'
 * streams get them in the order they were made: on Redis Cluster the first steps of two jobs
 * go to different nodes and may come back in either order. (Across processes, jobs of one
 * author may still overlap.) */
/* A held job waits for its author's turn and takes no job slot: a burst of one author's posts
 * would otherwise fill every slot with waiting jobs, and another author's post on the same
 * shard would wait for the whole burst. Held jobs are bounded on their own. */
#define HELD_PER_SLOT 16

static int running(const fanout_t *f)
{
    return f->active - f->held;
}

static bool has_room(const fanout_t *f)
{
    return running(f) < f->cfg.max_jobs && f->held < f->cfg.max_jobs * HELD_PER_SLOT;
}

static bool in_author_order(const storage_job_t *job)
{
    return job->kind == STORAGE_JOB_POST || job->kind == STORAGE_JOB_DELETE ||
           job->kind == STORAGE_JOB_ERASE || job->kind == STORAGE_JOB_ERASE_REST;
}

/* Is one of the author's jobs running here? Jobs held or awaiting their turn do not count:
 * the order list in Redis decides among those, and a job claimed from a dead process is often
 * the one the others await (seen with kill -9 during an erasure: held behind the delete jobs
 * it had queued, which waited for it, it never ran). */
static bool author_busy(const fanout_t *f, const fanout__job_t *j)
{
    for (const fanout__job_t *o = f->jobs; o; o = o->next)
        if (o != j && in_author_order(&o->job) && o->job.author == j->job.author && !o->held &&
            !o->awaiting_turn)
            return true;
    return false;
}

/* Starts the oldest job held behind one of author's that just ended. The list is newest
 * first, so that is the last held one found. */
static void start_held(fanout_t *f, uint64_t author)
{
    fanout__job_t *next = NULL;
    for (fanout__job_t *o = f->jobs; o; o = o->next)
        if (o->held && o->job.author == author)
            next = o;
    if (next) {
        next->held = false;
        f->held--;
        next->started_ms = now_ms();
        fanout__job_start(next);
    }
}

void fanout__job_finished(fanout__job_t *j, bool ok)
{
    fanout_t *f = j->f;
    LOOP_ONLY(f);
    bool ordered = in_author_order(&j->job) && !j->held;
    uint64_t author = j->job.author;
    if (j->held || j->awaiting_turn)
        f->held--;
    if (j->prev)
        j->prev->next = j->next;
    else
        f->jobs = j->next;
    if (j->next)
        j->next->prev = j->prev;
    f->active--;
    atomic_store_explicit(&f->stats.active_jobs, f->active, memory_order_relaxed);
    if (ok) {
        atomic_fetch_add_explicit(&f->stats.jobs_done, 1, memory_order_relaxed);
        if (f->cfg.on_job_done)
            f->cfg.on_job_done(f->cfg.hook_arg, (double)(now_ms() - j->started_ms) / MS_PER_S);
    } else {
        atomic_fetch_add_explicit(&f->stats.jobs_failed, 1, memory_order_relaxed);
    }
    free(j->muted_by);
    free(j->prefetched);
    free(j);
    if (ordered && !f->closed)
        start_held(f, author);
    if (!f->closed) /* parked jobs go on during a graceful stop too */
        resume_parked(f);
    if (!f->stopping)
        read_more(f);
}

#define RETRY_FIRST_MS 100
#define RETRY_MAX_MS 5000

static bool transient(int status)
{
    return status == -EAGAIN || status == -ENOSPC || status == -ENOMEM || status == -ETIMEDOUT;
}

void fanout__job_await_turn(fanout__job_t *j, bool awaiting)
{
    bool began = awaiting && !j->awaiting_turn;
    if (j->awaiting_turn != awaiting)
        j->f->held += awaiting ? 1 : -1;
    j->awaiting_turn = awaiting;
    /* A job that waits for its turn is not running, so a job of its author held behind it
     * starts (and asks for its turn too): the one they all wait for may be among the held,
     * claimed from a dead process, and would otherwise wait for a job that waits for it. */
    if (began && !j->f->closed)
        start_held(j->f, j->job.author);
}

bool fanout__job_retry(fanout__job_t *j)
{
    fanout_t *f = j->f;
    LOOP_ONLY(f);
    if (f->stopping || !transient(j->status))
        return false;
    /* Every step is safe to repeat (claims retry jobs the same way); a live walk that had
     * finished is not repeated, so connected followers get no second copy. */
    fanout__job_t keep = *j;
    memset(j, 0, sizeof(*j));
    j->f = f;
    j->job = keep.job;
    /* A live walk sent in part, or whose script ran but whose reply was lost, must not
     * log a second copy for the followers it reached: the rerun skips them. */
    j->job.rerun = true;
    j->prev = keep.prev;
    j->next = keep.next;
    j->started_ms = keep.started_ms;
    j->published = keep.published;
    j->retries = keep.retries + 1;
    if (keep.awaiting_turn)
        f->held--;
    free(keep.muted_by);
    free(keep.prefetched);
    j->phase = FANOUT_PHASE_CHECK;
    atomic_fetch_add_explicit(&f->stats.jobs_retried, 1, memory_order_relaxed);
    int shift = j->retries < 7 ? j->retries - 1 : 6;
    uint64_t backoff = (uint64_t)RETRY_FIRST_MS << shift;
    fanout__yield(j, backoff < RETRY_MAX_MS ? backoff : RETRY_MAX_MS);
    return true;
}

static bool is_active(const fanout_t *f, const char *entry_id, int shard)
{
    for (const fanout__job_t *j = f->jobs; j; j = j->next)
        if (j->job.shard == shard && strcmp(j->job.entry_id, entry_id) == 0)
            return true;
    return false;
}

/* Starts the jobs not already running; returns how many it started. */
static size_t start_jobs(fanout_t *f, const storage_job_t *jobs, size_t n, bool claimed)
{
    size_t started = 0;
    for (size_t i = 0; i < n; i++) {
        if (is_active(f, jobs[i].entry_id, jobs[i].shard))
            continue;
        started++;
        fanout__job_t *j = calloc(1, sizeof(*j));
        if (!j)
            return started; /* stays pending in Redis; claimed again later */
        j->f = f;
        j->job = jobs[i];
        j->started_ms = now_ms();
        j->next = f->jobs;
        if (f->jobs)
            f->jobs->prev = j;
        f->jobs = j;
        f->active++;
        atomic_store_explicit(&f->stats.active_jobs, f->active, memory_order_relaxed);
        if (claimed)
            atomic_fetch_add_explicit(&f->stats.jobs_claimed, 1, memory_order_relaxed);
        if (claimed && jobs[i].deliveries > f->cfg.max_attempts) {
            fanout__job_settle(j, "too many attempts");
        } else if (in_author_order(&j->job) && author_busy(f, j)) {
            j->held = true; /* started when the author's job before it ends */
            f->held++;
        } else {
            fanout__job_start(j);
        }
    }
    return started;
}

/* ---- reading ------------------------------------------------------------------------------- */

static void on_prepared(void *arg, int status)
{
    (void)status; /* BUSYGROUP is fine; anything else shows up on the next read */
    fanout_t *f = arg;
    if (!f->stopping)
        uv_timer_start(&f->read_retry, on_read_retry, READ_RETRY_MS, 0);
}

static void on_read(void *arg, int status, const storage_job_t *jobs, size_t n)
{
    fanout__shard_t *sh = arg;
    fanout_t *f = sh->f;
    sh->reading = false;
    f->reading--;
    if (f->stopping && !f->closed && status == 0) {
        /* A read that was in flight when the stop began: its jobs are ours now, so run
         * them within the grace period rather than leave them to the claim timeout. */
        start_jobs(f, jobs, n, false);
        return;
    }
    if (f->stopping)
        return;
    /* An error reply (NOGROUP: Redis came back without its data) recreates the group. */
    if (status == -EIO && storage_jobs_prepare(f->sa, on_prepared, f) == 0)
        return;
    if (status) {
        uv_timer_start(&f->read_retry, on_read_retry, READ_RETRY_MS, 0);
        return;
    }
    /* Our own backlog holds the jobs we are running too (each read of it counts as a
     * delivery): once it has nothing we are not already running, read new jobs. */
    if (start_jobs(f, jobs, n, false) == 0)
        sh->own_pending = false;
    read_more(f);
}

/* Each shard has a read in flight while there is room for more jobs; the room is shared
 * out so that all of them together stay near --fanout-jobs. */
static void read_more(fanout_t *f)
{
    if (f->stopping || !storage_async_up(f->sa) || !has_room(f))
        return;
    size_t free_slots = (size_t)(f->cfg.max_jobs - running(f));
    size_t count = free_slots / (size_t)f->n_shards;
    bool failed = false;
    for (int i = 0; i < f->n_shards; i++) {
        fanout__shard_t *sh = &f->shards[i];
        if (sh->reading)
            continue;
        int rc = storage_jobs_read(f->sa, i, f->consumer, count ? count : 1, f->cfg.block_ms,
                                   sh->own_pending, on_read, sh);
        if (rc == 0) {
            sh->reading = true;
            f->reading++;
        } else {
            failed = true;
        }
    }
    if (failed)
        uv_timer_start(&f->read_retry, on_read_retry, READ_RETRY_MS, 0);
}

static void read_own_pending(fanout_t *f)
{
    for (int i = 0; i < f->n_shards; i++)
        f->shards[i].own_pending = true;
}

static void on_read_retry(uv_timer_t *t)
{
    read_more(t->data);
}

static void on_redis_state(void *arg, bool up)
{
    fanout_t *f = arg;
    atomic_store(&f->stats.redis_up, up);
    if (up && f->started && !f->stopping) {
        read_own_pending(f); /* jobs cut off by the outage resume at once */
        read_more(f);
    }
}

/* ---- claiming, touching, statistics -------------------------------------------------------- */

static void claim_next(fanout_t *f);

static void on_claimed(void *arg, int status, const storage_job_t *jobs, size_t n)
{
    fanout_t *f = arg;
    f->claiming = false;
    if (status == 0 && !f->stopping)
        start_jobs(f, jobs, n, true);
    claim_next(f);
}

/* One claim per shard (each call takes the next shard), a round per tick. Claims are not held
 * back by the bound on held jobs: the job all the held ones wait for is often one a dead process
 * was handed (seen with kill -9 during an erasure, whose hundreds of delete jobs filled the
 * bound while the erasure job they wait for stayed unclaimed). */
static void claim_next(fanout_t *f)
{
    if (f->claims_left <= 0 || f->stopping || running(f) >= f->cfg.max_jobs)
        return;
    f->claims_left--;
    if (storage_jobs_claim(f->sa, f->consumer, f->cfg.claim_idle_ms,
                           (size_t)(f->cfg.max_jobs - running(f)), on_claimed, f) == 0)
        f->claiming = true;
}

static void on_claim_timer(uv_timer_t *t)
{
    fanout_t *f = t->data;
    if (f->claiming)
        return;
    f->claims_left = f->n_shards;
    claim_next(f);
}

static void ignore_status(void *arg, int status)
{
    (void)arg;
    (void)status;
}

/* Long jobs tell Redis they are alive, so no one claims them while they run. */
static void on_touch_timer(uv_timer_t *t)
{
    fanout_t *f = t->data;
    uint64_t old = now_ms() - (uint64_t)f->cfg.claim_idle_ms / TOUCH_DIVISOR;
    for (fanout__job_t *j = f->jobs; j; j = j->next)
        if (j->started_ms < old)
            (void)storage_job_touch(f->sa, f->consumer, &j->job, ignore_status, NULL);
}

static void on_stats(void *arg, int status, const storage_queue_stats_t *st)
{
    fanout_t *f = arg;
    f->stats_running = false;
    if (status)
        return;
    atomic_store(&f->stats.queue_length, st->length);
    atomic_store(&f->stats.queue_pending, st->pending);
    atomic_store(&f->stats.oldest_pending_ms, st->oldest_pending_ms);
    atomic_store(&f->stats.dead_letters, st->dead);
}

static void on_stats_timer(uv_timer_t *t)
{
    fanout_t *f = t->data;
    if (!f->stats_running && storage_queue_stats(f->sa, on_stats, f) == 0)
        f->stats_running = true;
}

/* ---- life ---------------------------------------------------------------------------------- */

static void name_consumer(fanout_t *f)
{
    if (f->cfg.consumer) {
        snprintf(f->consumer, sizeof(f->consumer), "%s", f->cfg.consumer);
        return;
    }
    char host[64] = "host";
    gethostname(host, sizeof(host) - 1);
    unsigned rnd = 0;
    if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
        rnd = (unsigned)now_ms();
    snprintf(f->consumer, sizeof(f->consumer), "%s:%ld:%08x", host, (long)getpid(), rnd);
}

fanout_t *fanout_create(uv_loop_t *loop, const storage_config_t *storage_cfg,
                        const fanout_config_t *cfg)
{
    fanout_t *f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    f->loop = loop;
    f->loop_thread = uv_thread_self();
    f->cfg = *cfg;
    name_consumer(f);
    f->sa = storage_async_create(loop, storage_cfg, on_redis_state, f);
    if (!f->sa) {
        free(f);
        return NULL;
    }
    f->n_shards = storage_jobs_shards(f->sa);
    for (int i = 0; i < f->n_shards && i < STORAGE_MAX_SHARDS; i++)
        f->shards[i] = (fanout__shard_t){.f = f, .index = i};
    uv_timer_t *timers[] = {&f->read_retry,  &f->claim_timer, &f->stats_timer,
                            &f->touch_timer, &f->stop_timer,  &f->yield_timer};
    for (size_t i = 0; i < sizeof(timers) / sizeof(timers[0]); i++) {
        uv_timer_init(loop, timers[i]);
        timers[i]->data = f;
    }
    return f;
}

static int timer_every(int ms)
{
    return ms > TIMER_MIN_MS ? ms : TIMER_MIN_MS;
}

void fanout_start(fanout_t *f)
{
    LOOP_ONLY(f);
    f->started = true;
    read_own_pending(f);
    int claim_every = timer_every(f->cfg.claim_idle_ms / CLAIM_DIVISOR);
    int touch_every = timer_every(f->cfg.claim_idle_ms / TOUCH_DIVISOR);
    uv_timer_start(&f->claim_timer, on_claim_timer, (uint64_t)claim_every, (uint64_t)claim_every);
    uv_timer_start(&f->touch_timer, on_touch_timer, (uint64_t)touch_every, (uint64_t)touch_every);
    uv_timer_start(&f->stats_timer, on_stats_timer, 0, (uint64_t)f->cfg.stats_interval_ms);
    read_more(f);
}

static void on_closed(fanout_t *f)
{
    if (--f->open_handles > 0)
        return;
    void (*done)(void *) = f->done_cb;
    void *arg = f->done_arg;
    free(f);
    if (done)
        done(arg);
}

static void on_handle_closed(uv_handle_t *h)
{
    on_closed(h->data);
}

static void on_storage_closed(void *arg)
{
    on_closed(arg);
}

static void close_everything(fanout_t *f)
{
    f->closed = true;
    /* Parked jobs have no command in flight that closing would cancel: end them here. */
    for (fanout__job_t *j = f->jobs, *next; j; j = next) {
        next = j->next;
        if ((j->waiting && !j->fetching && j->writes_pending == 0) || j->held)
            fanout__job_finished(j, false);
    }
    uv_timer_t *timers[] = {&f->read_retry,  &f->claim_timer, &f->stats_timer,
                            &f->touch_timer, &f->stop_timer,  &f->yield_timer};
    f->open_handles = 1 + (int)(sizeof(timers) / sizeof(timers[0]));
    for (size_t i = 0; i < sizeof(timers) / sizeof(timers[0]); i++)
        uv_close((uv_handle_t *)timers[i], on_handle_closed);
    /* Jobs still running get -ECANCELED and stay pending in Redis. */
    storage_async_close(f->sa, on_storage_closed, f);
}

static void on_stop_poll(uv_timer_t *t)
{
    fanout_t *f = t->data;
    /* Wait for running jobs, and for a stream read still in flight (it may hand us jobs). */
    if ((f->active > 0 || f->reading) && now_ms() < f->stop_deadline)
        return;
    uv_timer_stop(t);
    close_everything(f);
}

void fanout_stop(fanout_t *f, int grace_ms, void (*done_cb)(void *arg), void *arg)
{
    LOOP_ONLY(f);
    f->stopping = true;
    f->done_cb = done_cb;
    f->done_arg = arg;
    uv_timer_stop(&f->read_retry);
    uv_timer_stop(&f->claim_timer);
    uv_timer_stop(&f->stats_timer);
    f->stop_deadline = now_ms() + (uint64_t)grace_ms;
    storage_jobs_unblock(f->sa);
    uv_timer_start(&f->stop_timer, on_stop_poll, 0, STOP_POLL_MS);
}
