/* fanout/fanout.h -- the asynchronous fan-out engine.
 *
 * Consumes the durable job streams through the Redis consumer group and writes home
 * timelines: a post goes to every follower (in pipelined chunks), a delete retracts it, a
 * follow backfills, an unfollow purges. A job is acknowledged only after every write it
 * made is confirmed; jobs of a dead process are claimed after an idle timeout; a job
 * that keeps failing goes to the dead-letter stream. Thread: loop, except fanout_stats.
 */
#ifndef TIDINGS_FANOUT_H
#define TIDINGS_FANOUT_H

#include "storage/storage.h"

#include <stdatomic.h>
#include <uv.h>

typedef struct fanout_s fanout_t;

typedef struct fanout_config_s {
    const char *consumer;    /* unique consumer name (borrowed); NULL: host:pid:random */
    int max_jobs;            /* jobs worked on at once */
    int chunk;               /* followers read and written per step */
    int max_in_flight;       /* timeline writes sent and unconfirmed, across all jobs */
    int timeline_max;        /* --timeline-max */
    int notifications_max;   /* --notifications-max */
    int celebrity_threshold; /* --celebrity-threshold */
    int refollow_window_s;   /* --refollow-window: a re-follow within it notifies no more */
    int claim_idle_ms;       /* a job idle this long in another consumer is taken over */
    int max_attempts;        /* deliveries before a job is dead-lettered */
    int block_ms;            /* how long one stream read waits for new jobs */
    int stats_interval_ms;   /* how often queue length and age are sampled */
    int inactive_days;       /* --inactive-days: followers not seen for this long get no
                              * timeline entries, rebuilt when they return; 0: off */
    /* The synchronous storage (borrowed) on which the thread pool runs erasure jobs, whose
     * walks over a user's every index are straight-line code (fanout/job_erase.c). NULL: an
     * erasure job waits (fails, and is retried) until a process that has one takes it. */
    storage_t *storage;
    /* Hooks to the layer above (may be NULL; thread: loop): a job finished, after seconds. */
    void (*on_job_done)(void *arg, double seconds);
    void *hook_arg;
} fanout_config_t;

void fanout_config_defaults(fanout_config_t *cfg);

/* Counters for /metrics. Thread: any (relaxed atomics, written by the loop). */
typedef struct fanout_stats_s {
    atomic_ullong jobs_done, jobs_failed, jobs_dead, jobs_claimed;
    atomic_ullong jobs_retried; /* attempts that met a transient Redis failure, retried here */
    atomic_ullong timeline_writes;
    atomic_llong queue_length, queue_pending, oldest_pending_ms, dead_letters;
    atomic_llong active_jobs;
    atomic_bool redis_up;
} fanout_stats_t;

/* Returns new or NULL. storage_cfg (borrowed during the call) says where Redis is. Thread:
 * the one that runs loop; the loop-thread calls below assert that they are made on it. */
fanout_t *fanout_create(uv_loop_t *loop, const storage_config_t *storage_cfg,
                        const fanout_config_t *cfg);
/* Starts consuming; returns at once. */
void fanout_start(fanout_t *f);
/* Stops taking jobs, lets running ones finish for up to grace_ms (the rest stay pending
 * in Redis for another process or the next start), closes everything, calls done_cb,
 * and frees the engine. */
void fanout_stop(fanout_t *f, int grace_ms, void (*done_cb)(void *arg), void *arg);
/* Thread: any. Valid until done_cb of fanout_stop. */
const fanout_stats_t *fanout_stats(const fanout_t *f);
const char *fanout_consumer(const fanout_t *f);

#endif
