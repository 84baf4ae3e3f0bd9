/* fanout/fanout_internal.h -- shared by the engine (engine.c) and the jobs (job.c).
 *
 * Everything here is the loop thread's (LOOP_ONLY checks it at the entry points): the engine
 * owns the job list and the budget, a job owns its walk and phase (both described in
 * fanout/job.c).
 */
#ifndef TIDINGS_FANOUT_INTERNAL_H
#define TIDINGS_FANOUT_INTERNAL_H

#include "fanout/fanout.h"
#include "storage/storage_async.h"

#include <assert.h>
#include <stdbool.h>

typedef struct fanout__job_s fanout__job_t;

/* The reading of one queue shard: each has its own blocking read in flight. */
typedef struct fanout__shard_s {
    struct fanout_s *f;
    int index;
    bool reading, own_pending; /* own_pending: re-read what we were handed and did not ack */
} fanout__shard_t;

struct fanout_s {
    uv_loop_t *loop;
    uv_thread_t loop_thread; /* the one that runs loop: fanout_create's caller */
    fanout_config_t cfg;
    char consumer[128];
    storage_async_t *sa;
    fanout_stats_t stats;

    uv_timer_t read_retry, claim_timer, stats_timer, touch_timer, stop_timer;
    uv_timer_t yield_timer; /* wakes jobs that yield (fanout__yield) */
    int open_handles;
    bool started, stopping, closed, claiming, stats_running;
    fanout__shard_t shards[STORAGE_MAX_SHARDS];
    int n_shards, reading;       /* reading: shards with a read in flight */
    int claims_left;             /* shards still to claim from in this round */
    bool resuming, resume_again; /* resume_parked is running / must scan again */

    fanout__job_t *jobs; /* active jobs (doubly linked); parked ones have waiting set */
    int active;
    int held; /* of the active ones, those held behind their author's job (no slot of their own) */
    size_t writes_in_flight; /* write operations sent by all jobs, each up to a chunk */

    uint64_t stop_deadline;
    void (*done_cb)(void *arg);
    void *done_arg;
};

/* Where a job is in its life (fanout/job.c advance() runs them top to bottom). */
typedef enum fanout__phase_e {
    FANOUT_PHASE_CHECK,        /* well-formed, and the action still holds? */
    FANOUT_PHASE_TURN,         /* a post or delete: its author's earlier ones done, anywhere? */
    FANOUT_PHASE_READ,         /* post, delete, repost: the post's state chooses the walk */
    FANOUT_PHASE_WRITES,       /* the other kinds: a handful of writes */
    FANOUT_PHASE_WALK,         /* over the followers (walk says which) */
    FANOUT_PHASE_ANNOUNCE,     /* after a marking walk: the new celebrity and the post */
    FANOUT_PHASE_RECHECK,      /* a post: deleted while we wrote it? */
    FANOUT_PHASE_QUEUE_DELETE, /* it was: a delete job goes after our writes */
    FANOUT_PHASE_SETTLE,       /* acknowledge */
    FANOUT_PHASE_DONE,         /* acknowledged or dead-lettered: its reply frees the job */
} fanout__phase_t;

/* Which pass over the followers a walking job makes. */
typedef enum fanout__walk_e {
    FANOUT_WALK_NONE,
    FANOUT_WALK_LIVE,      /* live events only, before the timeline walk of a post */
    FANOUT_WALK_TIMELINES, /* timeline writes, with the live events unless published */
    FANOUT_WALK_MARK,      /* a new celebrity: each follower records the merge */
} fanout__walk_t;

struct fanout__job_s {
    fanout_t *f;
    storage_job_t job;
    fanout__job_t *prev, *next;
    uint64_t started_ms;
    fanout__phase_t phase;
    fanout__walk_t walk;
    uint64_t walk_user;      /* whose followers the job walks */
    uint64_t cursor;         /* last follower edge read */
    bool fetching;           /* a chunk read is in flight */
    bool walk_ended;         /* the last chunk was read */
    bool published;          /* a live walk sent the events: the timeline walk sends none */
    size_t live_published;   /* events the live walk published */
    uint64_t timelines_sent; /* followers' timelines written by the timeline walk */
    size_t events_logged;    /* live events the timeline walk logged (a post's status) */
    uint64_t *muted_by;      /* followers who muted the author: skipped (sorted) */
    size_t n_muted_by;
    int writes_pending;     /* writes and publishes not yet confirmed */
    bool waiting;           /* parked or yielding (engine.c) */
    bool held;              /* not started: an earlier job of the same author runs (engine.c) */
    uint64_t not_before_ms; /* yielding: parked until then (fanout__yield) */
    int status;             /* first failure */
    int retries;            /* attempts that met a transient failure (fanout__job_retry) */
    bool awaiting_turn;     /* an earlier job of its author runs elsewhere (engine.c) */
    int turn_asks;          /* times it asked for its turn */
    bool has_prefetch;      /* the first chunk of followers, read with the turn (job_first.c) */
    uint64_t *prefetched;   /* its followers (owned; NULL when none) */
    size_t n_prefetched;
    uint64_t prefetched_last;
    bool recheck_sent;      /* a post's recheck went out with its last writes */
    bool deleted_meanwhile; /* and found the post deleted */
};

/* True on the thread that runs f's loop. */
static inline bool fanout__on_loop(const fanout_t *f)
{
    uv_thread_t self = uv_thread_self();
    return uv_thread_equal(&self, &f->loop_thread);
}

/* At the top of a loop-thread entry point (STYLE §3); our builds keep assertions. */
#define LOOP_ONLY(f) assert(fanout__on_loop(f))

/* engine.c: a job whose attempt failed with a transient Redis failure (j->status: Redis
 * unreachable, out of memory, a failover) starts over after a backoff, keeping its slot and
 * its claim (touched like any running job), so that an outage never counts towards
 * dead-lettering. false when it cannot (a hard failure, or the engine is stopping). */
bool fanout__job_retry(fanout__job_t *j);
/* engine.c: j waits (awaiting) for an earlier job of its author, which another process holds,
 * or stops waiting; a waiting job, like a held one, takes no job slot. */
void fanout__job_await_turn(fanout__job_t *j, bool awaiting);
/* engine.c: a job ended (acked, dead-lettered or failed); frees it. */
void fanout__job_finished(fanout__job_t *j, bool ok);
/* engine.c: can another chunk be sent without passing the in-flight budget? */
bool fanout__budget_ok(const fanout_t *f);
/* engine.c: parks j until the budget frees up; the engine pumps it again then. */
void fanout__park(fanout__job_t *j);
/* engine.c: parks j for ms at least (then as fanout__park). */
void fanout__yield(fanout__job_t *j, uint64_t ms);

/* job_erase.c: runs the erasure stage of j (kind erase or erase_rest) on libuv's thread pool
 * with the synchronous storage; cb(j, status) on the loop when it ends. 0 when started. */
/* job_first.c: a post or delete job's turn, its post's state and the first chunk of its
 * author's followers, in one round trip. cb gets the turn and the state (borrowed for the
 * call); on the job's turn the chunk is left in the job (has_prefetch). Returns 0 or the
 * send's error (nothing went out). */
typedef void (*fanout__first_cb)(fanout__job_t *j, int status, bool mine,
                                 const storage_post_state_t *st);
int fanout__first_ask(fanout__job_t *j, fanout__first_cb cb);

int fanout__erase_run(fanout__job_t *j, void (*cb)(void *arg, int status));
/* job_rebuild.c: runs the timeline rebuild of j (kind rebuild) on libuv's thread pool and
 * calls cb(j, status) on the loop; the same contract as fanout__erase_run. */
int fanout__rebuild_run(fanout__job_t *j, void (*cb)(void *arg, int status));

/* job.c */
void fanout__job_start(fanout__job_t *j);
void fanout__job_pump(fanout__job_t *j);
/* Acknowledge, or dead-letter with reason (NULL: ack). */
void fanout__job_settle(fanout__job_t *j, const char *dead_reason);

#endif
