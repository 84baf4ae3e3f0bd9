/* storage/storage.h -- every Redis key and command of Tidings, behind domain functions.
 *
 * Nothing outside storage/ builds a Redis command. Functions here are synchronous and
 * thread-safe (thread: any): each borrows a connection from a pool, runs one pipelined
 * batch (one round trip) or a few, and returns it. While Redis is unreachable, or stopped
 * answering (a node's breaker, storage/redis/pool.c), they fail fast and the pool reconnects
 * with exponential backoff.
 *
 * Return codes: 0, -ENOENT (no such user/post), -EEXIST (taken), -ENOTCONN (Redis
 * unreachable: nothing of the failing round trip was sent), -ETIMEDOUT (sent, and Redis did
 * not answer: it may have run), -EAGAIN (unavailable for now, retry later), -EIO (Redis
 * answered with an error), -ENOMEM, -EINVAL. storage/redis/redis.h details the first three.
 */
#ifndef TIDINGS_STORAGE_H
#define TIDINGS_STORAGE_H

#include "storage/redis/embedded.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct storage_s storage_t;

typedef struct storage_config_s {
    const char *url;        /* redis://[:password@]host:port[/db] or unix:///path (borrowed) */
    int pool_size;          /* connections kept open */
    int connect_timeout_ms; /* per connect attempt */
    int command_timeout_ms; /* per round trip */
    int fanout_shards;      /* streams fanout:{0..n-1}, 1..STORAGE_MAX_SHARDS */
    size_t read_cache;      /* posts (and as many briefs and relation sets) kept in the
                             * process, coherent through Redis' invalidations; 0: none */
} storage_config_t;

/* The most job queue streams (--fanout-shards): the engine keeps a reader for each. */
#define STORAGE_MAX_SHARDS 64

/* Fills in the defaults. */
void storage_config_defaults(storage_config_t *cfg);

/* Moves the data model's clock offset_ms ahead of the wall clock (--clock-offset-ms, for tests
 * that need a server weeks in the future). Never backwards: ids are time-ordered, and a clock
 * behind ids already minted would break their order. Thread: any, once, before the modules
 * start. */
void storage_clock_offset_set(uint64_t offset_ms);
/* Milliseconds since the Unix epoch on that clock. Thread: any. */
uint64_t storage_now_ms(void);

/* Returns new storage or NULL on a bad URL or no memory. Does not connect yet. */
storage_t *storage_create(const storage_config_t *cfg);
void storage_destroy(storage_t *s);

/* Round trip to Redis: 0 when it answers. Updates the readiness flag. */
int storage_ping(storage_t *s);
/* Can Redis take a write? One expiring post-sized write: 0, -ENOSPC when Redis refuses writes for
 * memory (now, or any request met that within the last few seconds), -EAGAIN, -EIO. */
int storage_write_probe(storage_t *s);
/* Readiness as last observed by any command (cheap). */
bool storage_is_up(const storage_t *s);
/* Readiness as the background probe (storage_readiness_probe, storage_async.h) last found
 * it; never waits. redis: Redis replied to the latest probe, none is overdue (a paused
 * Redis is "down" within a quarter of a second) and the requests' breaker is closed. writes: 0, -ENOSPC (refused for memory, by
 * the probe or any request within the last few seconds), or another negative errno (the
 * write probe failed, or Redis is down). Thread: any. */
typedef struct storage_readiness_s {
    bool redis;
    int writes;
} storage_readiness_t;
void storage_readiness(storage_t *s, storage_readiness_t *out);
/* Counters for /metrics. */
uint64_t storage_reconnects(const storage_t *s);
/* What the request path knows of the Redis deployment, for /metrics. */
typedef struct storage_topology_stats_s {
    bool cluster;       /* Redis Cluster (false: one Redis) */
    int masters;        /* nodes that own slots */
    uint64_t redirects; /* MOVED and ASK replies followed */
    uint64_t refreshes; /* times the slot map was learnt */
    uint64_t pipelines; /* pipelines the synchronous client sent: round trips, per node */
} storage_topology_stats_t;
void storage_topology_stats(storage_t *s, storage_topology_stats_t *out);

/* The read cache (storage_config_t.read_cache), for /metrics. */
#define STORAGE_READ_CACHE_DEFAULT 50000
typedef struct storage_read_cache_stats_s {
    bool on;              /* configured */
    bool live;            /* in use now: one node, Redis' invalidations flowing */
    uint64_t hits;        /* post reads served from the cache alone */
    uint64_t misses;      /* post reads that went to Redis while it was on */
    uint64_t page_hits;   /* timeline first pages whose ids came from the cache */
    uint64_t page_misses; /* timeline first pages whose ids Redis read while it was on */
} storage_read_cache_stats_t;
void storage_read_cache_stats(storage_t *s, storage_read_cache_stats_t *out);

/* Creates the fan-out consumer group on every shard if missing, and fills the handle index
 * from the handle keys once per deployment (a SCAN of every master; see handle_index.c). */
int storage_prepare(storage_t *s);

/* ---- ids (ids.c) ---------------------------------------------------------------------
 * 53-bit Snowflake-like ids: 41 bits of milliseconds since 2024-01-01, 6 bits of node id,
 * 6 bits of sequence. 53 bits keep them exact as sorted-set scores and as JavaScript
 * numbers. The node id is leased in Redis so that processes sharing a Redis never clash. */
#define STORAGE_ID_EPOCH_MS 1704067200000ULL
#define STORAGE_ID_MAX_DIGITS 16

/* Leases a node id; call once at start, then storage_node_renew every second or so. */
int storage_node_acquire(storage_t *s);
/* Confirms and extends the lease in one script; a lease found lost is dropped at once and
 * another node taken. */
int storage_node_renew(storage_t *s);
void storage_node_release(storage_t *s);
/* The node id while the lease is known to be ours, else -1. */
int storage_node_id(const storage_t *s);
/* Thread: any. Never returns the same id twice in this process; never goes backwards.
 * Returns 0 while the lease is not known to be ours: none yet, lost, not confirmed within
 * its lifetime less a margin, or not confirmed since the client reconnected to Redis (which
 * may have lost its data, and the lease with it). Callers answer -EAGAIN then, since an id
 * without a lease could clash with another process's. */
uint64_t storage_id_next(storage_t *s);
/* Milliseconds since the Unix epoch encoded in an id. */
uint64_t storage_id_time_ms(uint64_t id);

/* ---- users (users.c) ------------------------------------------------------------------ */
#define STORAGE_HANDLE_MAX 30
#define STORAGE_NAME_MAX 200 /* bytes of UTF-8: 50 characters of up to 4 bytes */
#define STORAGE_BIO_MAX 640  /* bytes of UTF-8: 160 characters of up to 4 bytes */

typedef struct storage_user_s {
    uint64_t id;
    char handle[STORAGE_HANDLE_MAX + 1];
    char display_name[STORAGE_NAME_MAX + 1];
    char bio[STORAGE_BIO_MAX + 1]; /* empty when none */
    uint64_t created_ms;
    int64_t followers_count, following_count, posts_count;
} storage_user_t;

/* Creates user id (from storage_id_next). handle is case-preserving, unique
 * case-insensitively. token_hash is the SHA-256 of its API token as users had one before
 * they could hold several; NULL now (storage/tokens.h keeps their tokens). -EEXIST when the
 * handle is taken. */
int storage_user_create(storage_t *s, uint64_t id, const char *handle, const char *display_name,
                        const uint8_t token_hash[32], storage_user_t *out);
/* Sets a user's display_name and/or bio (NULL: unchanged) and reads the profile back, with
 * counts, into out. -ENOENT when the user is unknown. */
int storage_user_update(storage_t *s, uint64_t id, const char *display_name, const char *bio,
                        storage_user_t *out);
/* Profile with counts. -ENOENT when unknown. */
int storage_user_get(storage_t *s, uint64_t id, storage_user_t *out);
/* Profiles with counts for n ids in one round trip; missing users get id 0. */
int storage_users_get(storage_t *s, const uint64_t *ids, size_t n, storage_user_t *out);
/* The same without the counts (zero): for showing authors, one command per user. */
int storage_profiles_get(storage_t *s, const uint64_t *ids, size_t n, storage_user_t *out);
/* storage_users_get / storage_profiles_get as viewer sees them: a user with whom viewer has
 * one of the relations hide (STORAGE_REL_* bits) comes back with id 0, as an unknown one
 * does. The relations are tested for exactly these ids in the same round trip (viewer 0 or
 * hide 0: none is). */
int storage_users_get_as(storage_t *s, uint64_t viewer, unsigned hide, const uint64_t *ids,
                         size_t n, storage_user_t *out);
int storage_profiles_get_as(storage_t *s, uint64_t viewer, unsigned hide, const uint64_t *ids,
                            size_t n, storage_user_t *out);
/* The stored token hash and the profile (without counts) of a user; -ENOENT. */
int storage_user_credentials(storage_t *s, uint64_t id, uint8_t token_hash[32],
                             storage_user_t *out);
/* Resolves handles (case-insensitively) to ids; 0 where no such user. */
int storage_users_by_handle(storage_t *s, const char *const *handles, size_t n, uint64_t *ids);

/* ---- the handle index (handle_index.c) ---------------------------------------------------- */
#define STORAGE_SEARCH_MAX 50
/* Up to limit (1..STORAGE_SEARCH_MAX) users, with counts, whose handle starts with prefix
 * (compared lowercase), ordered by handle, into out (room for limit); *n says how many.
 * Users with whom viewer has a block either way are left out, and more are read in their
 * place (a few rounds at most: see handle_index.c). -EINVAL for an empty prefix or a limit
 * out of range. Thread: any. */
int storage_users_search(storage_t *s, uint64_t viewer, const char *prefix, size_t limit,
                         storage_user_t *out, size_t *n);
/* Takes user id's handle out of the index: for erasing an account (the handle key's DEL). */
int storage_handle_index_remove(storage_t *s, const char *handle, uint64_t id);

/* ---- follow graph (graph.c) ------------------------------------------------------------ */
/* Idempotent. *changed tells whether an edge was added or removed; the follow/unfollow
 * job is queued either way. -ENOENT when followee is unknown, -EPERM (follow only) when
 * either blocked the other. The block check and the write of each half of the edge are one
 * script on that half's slot, so a block racing the follow wins (docs/architecture.md). */
int storage_follow(storage_t *s, uint64_t follower, uint64_t followee, bool *changed);
/* The same, and -ENOSPC when follower already follows max_following users (0: no cap),
 * checked in the script that writes the edge. */
int storage_follow_at_most(storage_t *s, uint64_t follower, uint64_t followee, int max_following,
                           bool *changed);
int storage_unfollow(storage_t *s, uint64_t follower, uint64_t followee, bool *changed);

typedef enum { STORAGE_FOLLOWERS, STORAGE_FOLLOWING } storage_edge_t;

/* A page of ids, newest first. cursor 0 means the first page; next_cursor is 0 on the last. */
typedef struct storage_page_s {
    uint64_t *ids; /* returns new: free with storage_page_free */
    size_t n;
    uint64_t next_cursor;
} storage_page_t;
void storage_page_free(storage_page_t *p);

/* Followers or followees of user, newest edge first. -ENOENT when the user is unknown. */
int storage_edges_page(storage_t *s, storage_edge_t which, uint64_t user, uint64_t cursor,
                       size_t limit, storage_page_t *out);
/* The same as viewer sees it: -ENOENT too when viewer and user blocked one another (tested
 * in the same round trip). */
int storage_edges_page_as(storage_t *s, storage_edge_t which, uint64_t user, uint64_t viewer,
                          uint64_t cursor, size_t limit, storage_page_t *out);

/* ---- posts (posts.c) ------------------------------------------------------------------- */
#define STORAGE_MENTIONS_MAX 20

typedef struct storage_post_s {
    uint64_t id;
    uint64_t author;
    char *text; /* owned: freed by storage_post_clear */
    uint64_t reply_to;
    uint64_t reply_author; /* author of reply_to, set by the caller of create */
    uint64_t mentions[STORAGE_MENTIONS_MAX];
    size_t n_mentions;
    int64_t like_count, repost_count;
    bool deleted;
} storage_post_t;
void storage_post_clear(storage_post_t *p);

/* Writes the post and the author's post index, then queues the fan-out job (two round
 * trips when they live on two nodes, else one). Borrows p. 0: the post and its job are in
 * Redis (a 202 may be answered). Otherwise answered tells whether Redis answered every
 * command: if so, nothing of this call can still run, and storage_post_abandon clears
 * what it wrote; if not (a timeout, a lost connection), some of it may have run or may
 * still run, and only storage_post_settle can tell. */
int storage_post_create(storage_t *s, const storage_post_t *p, bool *answered);
/* Decides the fate of a create whose outcome is unknown, in one round trip on the job
 * queue's slot: published when the job was queued; otherwise it is made never to be
 * (a late copy of the create queues nothing and writes no post) and what was written is
 * cleared. An error: Redis did not answer; call again. */
int storage_post_settle(storage_t *s, const storage_post_t *p, bool *published);
/* Clears what a failed create wrote: the post reads as missing, and its index entry goes. */
int storage_post_abandon(storage_t *s, const storage_post_t *p);
/* Where a post's fan-out stands (storage/delivery.c). */
typedef enum {
    STORAGE_DELIVERY_QUEUED,
    STORAGE_DELIVERY_RUNNING,
    STORAGE_DELIVERY_DONE,
    STORAGE_DELIVERY_DEAD,
} storage_delivery_state_t;
typedef struct storage_delivery_s {
    uint64_t author;
    storage_delivery_state_t state;
    bool merged;                      /* a celebrity's post: followers merge it at read time */
    int64_t followers;                /* at the job's start; -1 while queued */
    uint64_t timelines, live;         /* timelines written, live events logged */
    uint64_t started_ms, finished_ms; /* Unix ms; 0: not yet */
} storage_delivery_t;
/* A post's delivery status in one round trip. -ENOENT: no such post (or deleted); -ENODATA:
 * the post has no status (older than a day, or published before statuses were kept). A
 * post whose job has not started yet is QUEUED. */
int storage_delivery_get(storage_t *s, uint64_t post, storage_delivery_t *out);
/* "queued", "running", "done", "dead". */
const char *storage_delivery_state_name(storage_delivery_state_t state);
/* -ENOENT when unknown; a deleted post comes back with deleted set. */
int storage_post_get(storage_t *s, uint64_t id, storage_post_t *out);
/* n posts in one round trip; unknown ones get id 0. out must hold n entries. */
int storage_posts_get(storage_t *s, const uint64_t *ids, size_t n, storage_post_t *out);
/* Marks the post deleted, drops it from its author's index, queues the retraction job. */
int storage_post_delete(storage_t *s, uint64_t id, uint64_t author);
/* A page of an author's post ids, newest first. -ENOENT when the user is unknown. */
int storage_author_posts_page(storage_t *s, uint64_t author, uint64_t cursor, size_t limit,
                              storage_page_t *out);
/* The same as viewer sees it: -ENOENT too when viewer and author blocked one another. */
int storage_author_posts_page_as(storage_t *s, uint64_t author, uint64_t viewer, uint64_t cursor,
                                 size_t limit, storage_page_t *out);

/* ---- interactions (interactions.c) ------------------------------------------------------
 * Idempotent. Each also queues the job whose consequences the engine writes
 * (notifications, repost entries, purges). -ENOENT for an unknown or deleted post, and
 * (like, repost) for a post whose author and user blocked one another. A repost that a
 * block overtook is taken back before -ENOENT is answered. */
int storage_like(storage_t *s, uint64_t user, uint64_t post, bool on);
/* A page of the posts user likes (or reposted), newest post first; the same paging as
 * storage_author_posts_page. Interactions from before these indexes existed are not in them. */
int storage_likes_page(storage_t *s, uint64_t user, uint64_t cursor, size_t limit,
                       storage_page_t *out);
int storage_reposts_page(storage_t *s, uint64_t user, uint64_t cursor, size_t limit,
                         storage_page_t *out);
int storage_repost(storage_t *s, uint64_t user, uint64_t post, bool on);

typedef enum { STORAGE_BLOCK, STORAGE_MUTE } storage_relation_t;
/* user blocks (or mutes) target, or stops. A block also ends the follows both ways and takes
 * back the reposts either made of the other's posts (queueing their unrepost jobs).
 * -ENOENT when target is no user. */
int storage_relation_set(storage_t *s, storage_relation_t rel, uint64_t user, uint64_t target,
                         bool on);
/* The users user blocked (or muted), newest first. */
int storage_relations_page(storage_t *s, storage_relation_t rel, uint64_t user, uint64_t cursor,
                           size_t limit, storage_page_t *out);
/* Whether either of a and b blocked the other. */
int storage_blocked_between(storage_t *s, uint64_t a, uint64_t b, bool *blocked);

/* The relations of a viewer to others, as bits: whom viewer blocked, who blocked viewer,
 * whom viewer muted. STORAGE_REL_BLOCK is either way of a block. */
enum {
    STORAGE_REL_BLOCKS = 1,
    STORAGE_REL_BLOCKED_BY = 2,
    STORAGE_REL_MUTES = 4,
    STORAGE_REL_BLOCK = STORAGE_REL_BLOCKS | STORAGE_REL_BLOCKED_BY,
};
/* hit[i]: whether viewer has one of the relations which with ids[i]. Tests exactly these
 * ids (one ZMSCORE per relation, all on viewer's slot, one round trip), never reading a set
 * others can grow whole. n may be 0. */
int storage_relations_among(storage_t *s, uint64_t viewer, unsigned which, const uint64_t *ids,
                            size_t n, bool *hit);

/* ---- notifications (notification_read.c) --------------------------------------------------- */
enum {
    STORAGE_NOTIFICATION_FOLLOW,
    STORAGE_NOTIFICATION_LIKE,
    STORAGE_NOTIFICATION_REPOST,
    STORAGE_NOTIFICATION_REPLY,
    STORAGE_NOTIFICATION_MENTION,
    STORAGE_NOTIFICATION_TYPES
};
extern const char *const storage_notification_types[STORAGE_NOTIFICATION_TYPES];
#define STORAGE_NOTIFICATION_ACTORS 3

typedef struct storage_notification_s {
    uint64_t id;      /* the group's last activity: also its cursor */
    int type;         /* STORAGE_NOTIFICATION_* */
    uint64_t subject; /* the post it concerns (the reply or mentioning post); 0 for follows */
    uint64_t actors[STORAGE_NOTIFICATION_ACTORS]; /* newest first */
    size_t n_actors;
    int64_t actor_count;
    bool read;
    char group[96]; /* its key ("like:<post>", "follow:<yyyymmdd>", …): stable while it lives */
} storage_notification_t;

typedef struct storage_notifications_s {
    storage_notification_t *items; /* returns new: free with storage_notifications_free */
    size_t n;
    uint64_t next_cursor;
} storage_notifications_t;
void storage_notifications_free(storage_notifications_t *n);

/* A page of user's notification groups, newest activity first, of the types whose bits
 * (1 << STORAGE_NOTIFICATION_*) are set; at most scan_max groups are looked at. */
int storage_notifications_page(storage_t *s, uint64_t user, uint64_t cursor, size_t limit,
                               unsigned types, size_t scan_max, storage_notifications_t *out);
int storage_notifications_unread(storage_t *s, uint64_t user, int64_t *count);
/* One group by its key ("like:<post>", …); -ENOENT when gone or all its actors hidden. */
int storage_notification_get(storage_t *s, uint64_t user, const char *group,
                             storage_notification_t *out);
/* Marks every group with activity up to up_to read (never beyond the newest): the
 * notifications marker, moved by storage_markers_move with no token. */
int storage_notifications_mark_read(storage_t *s, uint64_t user, uint64_t up_to);
/* The newest group's last activity (notification_newest.c) into *id; 0 when user has none.
 * One round trip on user's slot. */
int storage_notification_newest(storage_t *s, uint64_t user, uint64_t *id);

/* ---- markers (markers.c) -------------------------------------------------------------------
 * Where a user stopped reading, shared by their devices: home, a post id of their home
 * timeline, and notifications, the read mark (the same one storage_notifications_mark_read
 * moves). 0: none yet. */
typedef struct storage_markers_s {
    uint64_t home;
    uint64_t notifications;
} storage_markers_t;
/* Moves user's markers forward: home and notifications each when not 0 and above the marker
 * (a lower one is ignored; notifications is capped at the newest notification and moves
 * nothing while there is none). When either moved, a marker event (ref "<token>:<home>:
 * <notifications>", see storage_marker_event_parse) is logged and published to the user's
 * streams in the same step; token is the caller's (its device's streams skip it; 0: none).
 * The markers as they now are go to out unless NULL. Thread: any (synchronous). */
int storage_markers_move(storage_t *s, uint64_t user, uint64_t home, uint64_t notifications,
                         uint64_t token, storage_markers_t *out);
int storage_markers_get(storage_t *s, uint64_t user, storage_markers_t *out);
/* A marker event's ref into the token that moved the markers and the markers then; false
 * when ref is not one. */
bool storage_marker_event_parse(const char *ref, uint64_t *token, storage_markers_t *out);

/* ---- posts as a reader sees them (post_views.c) ---------------------------------------- */
/* A post with what a page shows beside it. A caller shows it only when post.id is set,
 * post.deleted is not, author.id is set and, when reposted_by is, reposter.id too: an
 * unknown or deleted post, an author or reposter gone, or one with whom the viewer has a
 * hidden relation, leaves those ids 0. */
typedef struct storage_post_view_s {
    storage_post_t post;     /* with its counts; id 0: unknown */
    storage_user_t author;   /* id, handle, display_name only */
    uint64_t reposted_by;    /* the entry came through this user's repost (0: none) */
    storage_user_t reposter; /* id, handle, display_name only */
} storage_post_view_t;
/* Frees what n views own (not v itself). */
void storage_post_views_clear(storage_post_view_t *v, size_t n);
/* Views of the n posts ids (reposted_by: per post, the reposter to show, or NULL), as viewer
 * (0: nobody) sees them with the relations hide (STORAGE_REL_* bits); out holds n. On one
 * Redis node it is one script call; on a Redis Cluster, two or three pipelined round trips
 * (the posts, then their people and the viewer's relations to exactly them). */
int storage_post_views(storage_t *s, uint64_t viewer, unsigned hide, const uint64_t *ids,
                       const uint64_t *reposted_by, size_t n, storage_post_view_t *out);

/* ---- home timelines (timeline_read.c, timeline_view.c) ---------------------------------- */
typedef struct storage_timeline_s {
    storage_page_t page;        /* post ids, newest entry first; next_cursor is an entry score */
    uint64_t *reposted_by;      /* per entry: who reposted it into this timeline, or 0 */
    bool rebuilding;            /* a rebuild job is refilling it (storage/seen.h): more may come */
    storage_post_view_t *views; /* per entry, from storage_timeline_view only (else NULL) */
} storage_timeline_t;
void storage_timeline_free(storage_timeline_t *t);

/* A page of user's home timeline, newest first: the fanned-out entries (the newest
 * timeline_max of them) merged with the posts of the celebrities user follows. Entries of
 * users the reader blocked, was blocked by or muted are left for the caller to drop, by
 * their authors and reposters (storage_profiles_get_as). Reads only: the timeline is trimmed
 * where it is written. */
int storage_timeline_page(storage_t *s, uint64_t user, uint64_t cursor, size_t limit,
                          int timeline_max, storage_timeline_t *out);
/* The first entry of that page with limit 1 (the post GET /v1/timeline shows first): its post
 * (*post) and its score (*score: the post's id, or for an entry that came by a repost the
 * repost's), when it came; both 0 when the timeline shows nothing. The same read on one
 * Redis node as on a Redis Cluster. */
int storage_timeline_newest(storage_t *s, uint64_t user, int timeline_max, uint64_t *post,
                            uint64_t *score);
/* The same page with its views (out->views) as user sees them with the relations hide: one
 * script call on one Redis node; on a Redis Cluster storage_timeline_page, then
 * storage_post_views. */
int storage_timeline_view(storage_t *s, uint64_t user, uint64_t cursor, size_t limit,
                          int timeline_max, unsigned hide, storage_timeline_t *out);

/* Forgets an Idempotency-Key, so that a retry after a publish that failed mints a new post. */
int storage_idempotency_release(storage_t *s, uint64_t user, const char *key);
/* Idempotency-Key: claims key for user with a request fingerprint and a new post id.
 * Returns 0 when claimed (proceed with new_id), -EEXIST with *existing_id set and
 * *same_request telling whether the fingerprints match. Claims last 24 hours. */
int storage_idempotency_claim(storage_t *s, uint64_t user, const char *key, const char *fingerprint,
                              uint64_t new_id, uint64_t *existing_id, bool *same_request);

/* ---- live events (events.c) -------------------------------------------------------------
 * A user's events are logged (capped) while they have a stream open, or closed within the
 * retention, and published live while they have one open or closed within the grace; the log
 * lets a stream resume without gap or duplicate. */
#define STORAGE_EVENT_ID_MAX 48
/* What an event says, parsed where the wire text is read (the log reader, the subscriber):
 * callers compare these, never the names. */
typedef enum {
    STORAGE_EVENT_UNKNOWN,      /* a name this version does not write: only its id counts */
    STORAGE_EVENT_FEED,         /* ref: "<post>[:<reposter>]" */
    STORAGE_EVENT_DELETE,       /* ref: "<post>" */
    STORAGE_EVENT_NOTIFICATION, /* ref: the notification group key */
    STORAGE_EVENT_RESET,        /* never logged: a reader's "start over" (ref empty) */
    STORAGE_EVENT_OPEN,         /* a log's first entry, written when the log is made: skip it */
    STORAGE_EVENT_NOTIFICATION_REMOVED, /* ref: the key of a group that emptied */
    STORAGE_EVENT_MARKER,     /* ref: "<token>:<home>:<notifications>" (storage_markers_move) */
    STORAGE_EVENT_COUNTS,     /* ref: the user's unread notification count */
    STORAGE_EVENT_COUNTS_DUE, /* never logged: a flush of the user's counts is due (ref: in
                               * how many ms; see storage_counts_flush) */
} storage_event_kind_t;
/* The kind's name in the log and on the live channel (events.c); NULL for UNKNOWN. */
const char *storage_event_kind_name(storage_event_kind_t kind);
/* The kind named by the len bytes at name; STORAGE_EVENT_UNKNOWN when none is. */
storage_event_kind_t storage_event_kind_parse(const char *name, size_t len);

typedef struct storage_event_s {
    char id[STORAGE_EVENT_ID_MAX]; /* "<ms>-<seq>", increasing per user */
    storage_event_kind_t kind;
    char ref[96]; /* see storage_event_kind_t */
} storage_event_t;

/* How long a user's live state outlives their last stream (--stream-retention and
 * --stream-grace-ms). */
typedef struct storage_events_keep_s {
    int64_t retention_ms; /* the event log: a reconnect within it replays what was missed */
    int64_t grace_ms;     /* presence: events are published live to the user's processes */
} storage_events_keep_t;

/* Marks user connected: their event log exists for keep's retention more and they are
 * present for its grace; *was_online tells whether the log existed (so events since their
 * last stream are all in it), tail is the newest id the log has handed out. A log made anew
 * gives ids above floor (the reader's Last-Event-ID; NULL: none), and so does one that ended
 * below floor (Redis lost its newest entries): it is lifted, and *was_online is false.
 * keep is borrowed. */
int storage_events_online(storage_t *s, uint64_t user, const storage_events_keep_t *keep,
                          const char *floor, bool *was_online, char tail[STORAGE_EVENT_ID_MAX]);
/* (Connected users' marks are extended by storage_events_refresh_async, on the live loop.) */
/* The newest id the user's log has handed out, "0-0" when none. */
int storage_events_tail(storage_t *s, uint64_t user, char id[STORAGE_EVENT_ID_MAX]);
/* Up to max events after the id after (an id the log handed out), oldest first; *trimmed
 * tells that the log lost events after it: to its cap, or it is gone, or it went back (the
 * reader must reset). out holds max entries. */
int storage_events_since(storage_t *s, uint64_t user, const char *after, size_t max,
                         storage_event_t *out, size_t *n, bool *trimmed);

/* ---- celebrities' live events (celebrity_live.c) ---------------------------------------- */
/* The celebrities user follows: *n of them in *ids (new: free it; NULL when none). */
int storage_celebrities_followed(storage_t *s, uint64_t user, uint64_t **ids, size_t *n);
/* follows[i]: whether users[i] follows author. */
int storage_followers_among(storage_t *s, uint64_t author, const uint64_t *users, size_t n,
                            bool *follows);
/* An announcement (celebrity_live.c), parsed where it is read: from the live channel or
 * from its log. */
typedef enum {
    STORAGE_ANNOUNCE_UNKNOWN,   /* unreadable: only its id counts */
    STORAGE_ANNOUNCE_POST,      /* a celebrity's post event: author, event, ref, job */
    STORAGE_ANNOUNCE_FOLLOW,    /* user now follows celebrity author */
    STORAGE_ANNOUNCE_UNFOLLOW,  /* user no longer follows celebrity author */
    STORAGE_ANNOUNCE_CELEBRITY, /* author was just marked a celebrity */
    STORAGE_ANNOUNCE_REVOKE,    /* token of user was revoked (0: all the user's tokens) */
} storage_announce_kind_t;
typedef struct storage_announcement_s {
    char id[STORAGE_EVENT_ID_MAX]; /* its place in the channel's log */
    storage_announce_kind_t kind;
    uint64_t user, author;
    uint64_t token;             /* revoke: the token's id, 0 for all the user's */
    storage_event_kind_t event; /* post: the event's kind (feed, delete) */
    char ref[64];               /* post: the event's ref */
    int job_shard;              /* post: the job that announced it (its queue shard … */
    char job_entry[48];         /* … and stream entry id), for storage_job_t */
} storage_announcement_t;
/* The id of the newest announcement made on live channel, "0-0" when none. */
int storage_announcements_tail(storage_t *s, const char *channel, char id[STORAGE_EVENT_ID_MAX]);
/* Up to max announcements made on live channel after the id after, oldest first. */
int storage_announcements_after(storage_t *s, const char *channel, const char *after, size_t max,
                                storage_announcement_t *out, size_t *n);

/* A stream resumed after the event id after (of user's log): logs for user the posts and
 * retractions the celebrities in authors announced from after's millisecond on. No
 * process logged those for user while user had no stream open, and the catch-up reads the
 * log only. Each is logged once, as by the live path (a post handled live meanwhile is
 * not logged twice); the log's ids keep increasing. A round trip per page of the
 * announcement logs and per post logged. */
int storage_celebrity_backfill(storage_t *s, uint64_t user, const uint64_t *authors, size_t n,
                               const char *after);

/* ---- embedded Redis: storage/redis/embedded.h (storage_embedded_start/stop) ---------------- */

/* ---- rate limits (rate_limit.c) ----------------------------------------------------------- */
typedef struct storage_rate_s {
    bool allowed;
    uint32_t remaining; /* requests the bucket allows right now (after this one) */
    uint64_t retry_ms;  /* when refused: until one is allowed */
    uint64_t full_ms;   /* until the bucket is full again */
} storage_rate_t;

/* Takes one token from the bucket of subject (a user id, or "a:<address>"; no braces) for
 * class_name, which refills one token every interval_us up to burst, shared by every process
 * on this Redis. One round trip. 0 (see out->allowed), -EINVAL, or a Redis failure. */
int storage_rate_take(storage_t *s, const char *subject, const char *class_name,
                      uint64_t interval_us, uint32_t burst, storage_rate_t *out);

/* The same check as a gate (storage/redis/gate.c): armed on the request's thread, it rides on
 * the request's first batch that only reads, or runs alone before its first batch that
 * writes; refused, every later batch of the thread fails with -ECANCELED, unsent. NULL on
 * -EINVAL or out of memory. */
typedef struct storage_rate_gate_s storage_rate_gate_t;
storage_rate_gate_t *storage_rate_gate_new(storage_t *s, const char *subject,
                                           const char *class_name, uint64_t interval_us,
                                           uint32_t burst);
void storage_rate_gate_arm(storage_rate_gate_t *g);
/* Runs the check now if no batch took it, disarms it: 0 with *out, or a Redis failure. */
int storage_rate_gate_settle(storage_rate_gate_t *g, storage_rate_t *out);
void storage_rate_gate_free(storage_rate_gate_t *g);

/* ---- dead letters (dead_letters.c): tidings admin dead-letters -------------------------- */
#define STORAGE_DEAD_FIELDS_MAX 24
typedef struct storage_dead_field_s {
    char name[32], value[256];
} storage_dead_field_t;
/* One entry of the dead-letter stream: the job's fields, its shard and stream entry, how
 * often it was delivered and why it died, as the engine wrote them. */
typedef struct storage_dead_letter_s {
    char id[STORAGE_EVENT_ID_MAX];
    storage_dead_field_t fields[STORAGE_DEAD_FIELDS_MAX];
    size_t n_fields;
} storage_dead_letter_t;
/* Up to max dead letters after the id after (NULL or "": from the first), oldest first. */
int storage_dead_letters_list(storage_t *s, const char *after, size_t max,
                              storage_dead_letter_t *out, size_t *n);
/* A field's value, or NULL. */
const char *storage_dead_letter_field(const storage_dead_letter_t *d, const char *name);
/* Queues the job again on its shard, then removes the letter. -ENOENT when there is no such
 * letter, -EINVAL when it names no kind or no shard this deployment has. */
int storage_dead_letter_redrive(storage_t *s, const char *id);

#endif
