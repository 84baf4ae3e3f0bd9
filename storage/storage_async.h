/* storage/storage_async.h -- the asynchronous side of storage, for the fan-out engine.
 *
 * Thread: loop (every function, every callback). Two hiredis async connections on the
 * caller's libuv loop: one for blocking stream reads, one for everything else, so a
 * blocked XREADGROUP never delays a write. They reconnect by themselves with backoff.
 * Every operation's callback fires exactly once: with 0, or -EAGAIN when the connection
 * was lost (nothing was confirmed), -EIO on an error reply, -ECANCELED on close.
 * Submitting while disconnected fails at once with -EAGAIN and calls no callback.
 */
#ifndef TIDINGS_STORAGE_ASYNC_H
#define TIDINGS_STORAGE_ASYNC_H

#include "storage/storage.h"

#include <uv.h>

typedef struct storage_async_s storage_async_t;

/* Called when the writer connection comes up (true) or goes down (false). */
typedef void (*storage_async_state_cb)(void *arg, bool up);
typedef void (*storage_status_cb)(void *arg, int status);

/* Returns new or NULL; connects at once. cfg is borrowed only during the call. */
storage_async_t *storage_async_create(uv_loop_t *loop, const storage_config_t *cfg,
                                      storage_async_state_cb on_state, void *arg);
/* Cancels every pending operation (-ECANCELED), disconnects, and calls closed_cb once
 * every handle is closed; the object is freed after that. */
void storage_async_close(storage_async_t *sa, void (*closed_cb)(void *arg), void *arg);
bool storage_async_up(const storage_async_t *sa);
/* Commands sent and not yet answered (the engine's backpressure measure). */
size_t storage_async_in_flight(const storage_async_t *sa);

/* ---- readiness (readiness.c) ------------------------------------------------------------
 * Sends the next readiness probe on sa (its writer for the readiness key's slot) unless the
 * last is unanswered, and records the outcome in s for storage_readiness (any thread). Call
 * it every STORAGE_READINESS_PROBE_MS. 0, or -EAGAIN (disconnected; recorded as such) or
 * -ENOMEM. s is borrowed until sa is closed. */
#define STORAGE_READINESS_PROBE_MS 100
int storage_readiness_probe(storage_async_t *sa, storage_t *s);

/* ---- the job queue (jobs.c) ------------------------------------------------------------- */
typedef enum {
    STORAGE_JOB_UNKNOWN,
    STORAGE_JOB_POST,     /* post, author */
    STORAGE_JOB_DELETE,   /* post, author */
    STORAGE_JOB_FOLLOW,   /* follower, followee */
    STORAGE_JOB_UNFOLLOW, /* follower, followee */
    STORAGE_JOB_LIKE,     /* post, author, actor */
    STORAGE_JOB_UNLIKE,
    STORAGE_JOB_REPOST, /* post, author, actor */
    STORAGE_JOB_UNREPOST,
    STORAGE_JOB_BLOCK, /* user, target */
    STORAGE_JOB_UNBLOCK,
    STORAGE_JOB_MUTE, /* user, target */
    STORAGE_JOB_UNMUTE,
    STORAGE_JOB_ERASE,      /* author: the user leaving; stage 1, their posts (storage/erase.h) */
    STORAGE_JOB_ERASE_REST, /* author: stage 2, everything else */
    STORAGE_JOB_REBUILD,    /* user: refill a returning user's home timeline (storage/seen.h) */
} storage_job_kind_t;

typedef struct storage_job_s {
    int shard;
    char entry_id[48]; /* the stream entry id */
    storage_job_kind_t kind;
    uint64_t post, author, follower, followee, actor, user, target;
    uint64_t event_id;         /* a unique, time-ordered score for its effects: the id the request
                         * minted ("at"), which orders jobs of all shards alike */
    int64_t deliveries;        /* how many times it was handed out; 1 for a fresh read */
    bool rerun;                /* an earlier attempt in this process may have logged its live
                                * events (a retry after a transient failure) */
    uint64_t retract_after_ms; /* a delete queued by a post job that found its post deleted
                                * as it finished: when that job was queued (else 0) */
} storage_job_t;

/* jobs is borrowed for the duration of the callback. */
typedef void (*storage_jobs_cb)(void *arg, int status, const storage_job_t *jobs, size_t n);

/* The number of queue shards (fanout:{0} … fanout:{n-1}). */
int storage_jobs_shards(const storage_async_t *sa);
/* Reads up to count jobs for consumer from one shard: new ones (blocking up to block_ms),
 * or with own_pending the ones this consumer was handed and did not ack. */
int storage_jobs_read(storage_async_t *sa, int shard, const char *consumer, size_t count,
                      int block_ms, bool own_pending, storage_jobs_cb cb, void *arg);
/* Ends every blocking read now (CLIENT UNBLOCK): each completes at once with no jobs, or
 * with the jobs it was handed, so a stopping engine need not wait out the block time. */
void storage_jobs_unblock(storage_async_t *sa);
/* Creates the consumer group on every shard where it is missing (Redis lost its data). */
int storage_jobs_prepare(storage_async_t *sa, storage_status_cb cb, void *arg);
/* Takes over jobs idle for idle_ms or more, whoever held them (a dead consumer), with
 * their delivery counts. */
int storage_jobs_claim(storage_async_t *sa, const char *consumer, int idle_ms, size_t count,
                       storage_jobs_cb cb, void *arg);
/* Resets the idle time of a job still being worked on, so no one else claims it. */
int storage_job_touch(storage_async_t *sa, const char *consumer, const storage_job_t *job,
                      storage_status_cb cb, void *arg);
/* Acknowledges and deletes a finished job. */
int storage_job_ack(storage_async_t *sa, const storage_job_t *job, storage_status_cb cb, void *arg);
/* Moves a job to the dead-letter stream fanout:dead with reason, then acks it. */
int storage_job_dead_letter(storage_async_t *sa, const storage_job_t *job, const char *reason,
                            storage_status_cb cb, void *arg);
/* Queues a job to retract post from every timeline (used when a fan-out finds its post
 * deleted under it; after_ms is when that fan-out's job was queued). */
int storage_job_queue_delete(storage_async_t *sa, uint64_t post, uint64_t author, uint64_t after_ms,
                             storage_status_cb cb, void *arg);

typedef struct storage_queue_stats_s {
    int64_t length;            /* entries in every shard */
    int64_t pending;           /* handed out, not acknowledged */
    int64_t oldest_pending_ms; /* age of the oldest pending job; 0 when none */
    int64_t dead;              /* entries in the dead-letter stream */
} storage_queue_stats_t;
typedef void (*storage_queue_stats_cb)(void *arg, int status, const storage_queue_stats_t *st);
int storage_queue_stats(storage_async_t *sa, storage_queue_stats_cb cb, void *arg);

/* ---- timelines, written by the engine (timeline_write.c) ------------------------------- */
#define STORAGE_MUTED_BY_MAX 4096
typedef struct storage_post_state_s {
    bool exists, deleted;
    int64_t followers;                       /* the author's follower count */
    bool celebrity;                          /* the author is read-time merged */
    uint64_t reply_author;                   /* author of the parent post, or 0 */
    uint64_t mentions[STORAGE_MENTIONS_MAX]; /* mentioned users */
    size_t n_mentions;
    uint64_t *muted_by; /* users who muted the author (sorted; borrowed for the callback) */
    size_t n_muted_by;
} storage_post_state_t;
typedef void (*storage_post_state_cb)(void *arg, int status, const storage_post_state_t *st);
/* The post's state and its author's follower count and celebrity mark. */
int storage_post_state(storage_async_t *sa, uint64_t post, uint64_t author,
                       storage_post_state_cb cb, void *arg);

/* ids borrowed for the callback; last is the cursor for the next chunk (0: none). */
typedef void (*storage_ids_cb)(void *arg, int status, const uint64_t *ids, size_t n, uint64_t last);
/* Up to n followers of author after cursor (0 = from the start), oldest edge first. */
int storage_followers_chunk(storage_async_t *sa, uint64_t author, uint64_t cursor, size_t n,
                            storage_ids_cb cb, void *arg);

/* Adds post to each follower's timeline (idempotent), trimming them to timeline_max now
 * and then rather than on every insert (reads trim exactly). A follower last seen before
 * seen_after_ms (0: nobody) is skipped: inactive (storage/seen.h). One callback when every
 * write is confirmed. */
int storage_timelines_add(storage_async_t *sa, uint64_t post, const uint64_t *users, size_t n,
                          int timeline_max, uint64_t seen_after_ms, storage_status_cb cb,
                          void *arg);
/* Removes post from each user's timeline. */
int storage_timelines_remove(storage_async_t *sa, uint64_t post, const uint64_t *users, size_t n,
                             storage_status_cb cb, void *arg);
/* Follow: copies followee's newest posts into follower's timeline, unless the edge is
 * gone by now; for a celebrity followee, records it for read-time merging instead. */
int storage_timeline_backfill(storage_async_t *sa, uint64_t follower, uint64_t followee,
                              int timeline_max, storage_status_cb cb, void *arg);
/* Unfollow: removes followee's posts from follower's timeline, unless followed again. */
int storage_timeline_purge(storage_async_t *sa, uint64_t follower, uint64_t followee,
                           int timeline_max, storage_status_cb cb, void *arg);
/* Block or mute: removes author's posts from user's timeline whatever the follow graph. */
int storage_timeline_hide(storage_async_t *sa, uint64_t user, uint64_t author, int timeline_max,
                          storage_status_cb cb, void *arg);

/* Marks author a celebrity: from now on, posts are merged at read time. */
int storage_celebrity_mark(storage_async_t *sa, uint64_t author, storage_status_cb cb, void *arg);

/* ---- a post's delivery status, written by the engine (delivery.c) ---------------------- */
/* The post's job began: followers at that moment, and whether they merge it at read time
 * (a celebrity's post: no timeline is written). Counts start from zero (a retry too). */
int storage_delivery_started(storage_async_t *sa, uint64_t post, int64_t followers, bool merged,
                             storage_status_cb cb, void *arg);
/* Timelines written and live events logged so far. */
int storage_delivery_progress(storage_async_t *sa, uint64_t post, uint64_t timelines, uint64_t live,
                              storage_status_cb cb, void *arg);
/* The job ended: done (acknowledged) or dead (dead-lettered), with the final counts. */
int storage_delivery_finished(storage_async_t *sa, uint64_t post, bool dead, uint64_t timelines,
                              uint64_t live, storage_status_cb cb, void *arg);
/* Records, for each user, that they follow celebrity author (read-time merge). */
int storage_celebrity_followers_add(storage_async_t *sa, uint64_t author, const uint64_t *users,
                                    size_t n, storage_status_cb cb, void *arg);

/* Adds (or removes) post of author as reposted by reposter to users' timelines at score; a
 * user who already has the post, or blocked, was blocked by or muted author or reposter,
 * gets nothing, one last seen before seen_after_ms (0: nobody) only the live event, and
 * removal only takes this repost's entries. */
int storage_repost_entries(storage_async_t *sa, uint64_t post, uint64_t author, uint64_t reposter,
                           uint64_t score, const uint64_t *users, size_t n, bool add,
                           int timeline_max, uint64_t seen_after_ms, storage_status_cb cb,
                           void *arg);

/* ---- notification groups, written by the engine (notification_write.c) -----------------
 * group is "like:<post>", "repost:<post>", "follow:<yyyymmdd>", "reply:<post>" or
 * "mention:<post>". Adding skips actors target blocked, was blocked by or muted, and an
 * actor already in the group (no bump); a new actor moves the group to the top (score).
 * The user's groups are capped at cap, oldest dropped. */
int storage_group_add(storage_async_t *sa, uint64_t target, const char *group, uint64_t actor,
                      uint64_t score, int cap, storage_status_cb cb, void *arg);
/* storage_group_add for a follow notice (group "follow:<yyyymmdd>"): a follower whose last
 * notified follow is less than window_ms older than this one (score, its event id) is not
 * notified again; their earlier notice is listed again as it was, without a live event.
 * window_ms 0: no window (every follow after an unfollow notifies). Thread: loop. */
int storage_follow_notice_add(storage_async_t *sa, uint64_t target, const char *group,
                              uint64_t follower, uint64_t score, int cap, uint64_t window_ms,
                              storage_status_cb cb, void *arg);
/* Removes actor from group (NULL: from the follow group their follow went to); a group
 * left without actors disappears. */
int storage_group_remove(storage_async_t *sa, uint64_t target, const char *group, uint64_t actor,
                         storage_status_cb cb, void *arg);
/* Removes the whole group from user's notifications (its post was deleted). */
int storage_group_drop(storage_async_t *sa, uint64_t user, const char *group, storage_status_cb cb,
                       void *arg);
/* Removes actor from every notification group of user. */
int storage_group_scrub(storage_async_t *sa, uint64_t user, uint64_t actor, storage_status_cb cb,
                        void *arg);

/* ---- unread counts (counts.c) -------------------------------------------------------------
 * Runs after a counts_due message (STORAGE_EVENT_COUNTS_DUE, SCRIPT_COUNTS in storage/): when
 * user's counts window is dirty and over, logs and publishes "counts <unread>" as it is now
 * and opens a new window. *again_ms (set before cb) is 0, or how many ms are left of a window
 * that is not over yet (this process's clock ran ahead of Redis'): flush again then. Any
 * number of processes may flush one user: the first that finds the window dirty logs it.
 * Thread: loop. */
int storage_counts_flush(storage_async_t *sa, uint64_t user, size_t *again_ms, storage_status_cb cb,
                         void *arg);

/* ---- whether a job's action still holds (interactions.c) -------------------------------- */
/* Whether the action behind a like, repost or follow job (or its undoing) still holds:
 * the like, repost or follow exists now. A job that arrives after a later change of mind
 * must not apply its stale effect. */
typedef void (*storage_bool_cb)(void *arg, int status, bool yes);
/* A post job whose followers are all in hand (one chunk, muters left out), written and
 * acknowledged in one script (post_job.c): the followers' and the author's timelines and
 * live events, the delivery status, then the acknowledgement unless the post was deleted
 * meanwhile (acked false: the writes are made, the job is not acknowledged). -EPROTO when
 * the keys span several nodes: the caller walks as usual. */
typedef struct storage_post_job_s {
    int timeline_max;
    uint64_t seen_after_ms; /* followers last seen before get no entry (0: off) */
    int64_t followers;      /* the author's follower count, for the delivery status */
} storage_post_job_t;
typedef struct storage_post_job_outcome_s {
    bool acked;
    uint64_t timelines, live; /* followers' timelines written, live events published */
} storage_post_job_outcome_t;
typedef void (*storage_post_job_cb)(void *arg, int status, const storage_post_job_outcome_t *out);
int storage_post_job_run(storage_async_t *sa, const storage_job_t *job, const uint64_t *followers,
                         size_t n, const storage_post_job_t *p, storage_post_job_cb cb, void *arg);
/* Is it job's turn among its author's posts and deletes (queue order, across processes)? A
 * job whose turn it is not yet asks again later. -EINVAL for other kinds. */
int storage_job_turn(storage_async_t *sa, const storage_job_t *job, storage_bool_cb cb, void *arg);
int storage_action_holds(storage_async_t *sa, const storage_job_t *job, storage_bool_cb cb,
                         void *arg);

/* ---- live events (events.c; announcements: celebrity_live.c) ----------------------------- */
/* Logs an event of kind (feed, delete or notification) about ref for each of users whose
 * log exists (connected, or within the retention), and publishes it live to those present
 * (connected, or within the grace), on behalf of job. A job handed out again (its first run died or stalled) publishes to no
 * user whose log already holds the event from an earlier run, so streams see it once.
 * A delete job with retract_after_ms set skips a user whose latest event about ref since
 * then is a delete: the first delete job reached them after the post's feed event.
 * When published is not NULL, the number of users it was published to live is added to
 * *published before cb runs. */
int storage_events_publish(storage_async_t *sa, const storage_job_t *job, const uint64_t *users,
                           size_t n, storage_event_kind_t kind, const char *ref, size_t *published,
                           storage_status_cb cb, void *arg);

/* Keeps each of users (connected) as storage_events_online does: their log for keep's
 * retention more (a log that lapsed is made again, empty), their presence for its grace,
 * without blocking the loop: one script per node, one callback once every node answered.
 * users and keep are borrowed for the call. */
int storage_events_refresh_async(storage_async_t *sa, const uint64_t *users, size_t n,
                                 const storage_events_keep_t *keep, storage_status_cb cb,
                                 void *arg);

/* Celebrities' posts reach connected followers by announcement (celebrity_live.c): each
 * process logs and publishes kind/ref for its own connected followers of job's author,
 * skipping those who muted the author and those who have it logged. */
int storage_events_publish_announced(storage_async_t *sa, const storage_job_t *job,
                                     const uint64_t *users, size_t n, storage_event_kind_t kind,
                                     const char *ref, storage_status_cb cb, void *arg);
int storage_announce_post(storage_async_t *sa, const storage_job_t *job, storage_event_kind_t kind,
                          const char *ref, storage_status_cb cb, void *arg);
/* author was just marked a celebrity: processes look up which of their users follow. */
int storage_announce_celebrity(storage_async_t *sa, uint64_t author, storage_status_cb cb,
                               void *arg);

/* A subscriber: its own connection to the live channel, which carries every connected
 * user's events ("<kind> <ref> <user>:<id> …", one message per chunk of users); each
 * process keeps those of the users connected to it. */
typedef struct storage_sub_callbacks_s {
    /* A live event for user: id, kind and ref as logged. Borrowed for the call. */
    void (*message)(void *arg, uint64_t user, const char *id, storage_event_kind_t kind,
                    const char *ref);
    /* The subscription to channel is in place (again, after a reconnect): anything missed
     * since must be read from the logs. */
    void (*subscribed)(void *arg, const char *channel);
    /* Around the events of one live message (begin true, then false); may be NULL. */
    void (*batch)(void *arg, bool begin);
    /* An announcement on channel (see celebrity_live.c), borrowed for the call; may be
     * NULL. */
    void (*announce)(void *arg, const char *channel, const storage_announcement_t *a);
    void *arg;
} storage_sub_callbacks_t;
storage_async_t *storage_sub_create(uv_loop_t *loop, const storage_config_t *cfg,
                                    const storage_sub_callbacks_t *cb);

#endif
