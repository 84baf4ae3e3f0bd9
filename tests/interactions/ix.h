/* tests/interactions/ix.h -- what the interaction tests share: a tidings server on a private
 * Redis, replies and the API calls of likes, reposts, blocks, mutes and notifications over
 * real HTTP (users, posts and follows are tests/support's), and bounded polls for what the fan-out engine writes asynchronously
 * (timeline entries, notifications).
 *
 * Each test runs its own Redis (as tests/fanout does, for the same reasons) of the fixture's
 * kind: a redis-server, or in test_interactions_cluster a Redis Cluster of 3 masters (see
 * ts_redis_start_like_fixture). On the fixture Redis every test binary's engines work one
 * shared job queue, so a server started with other flags (--notifications-max 5, --engine
 * off) would work other tests' jobs with them, and a server another test stops can leave our
 * jobs pending for --claim-idle-ms (30 s), which reorders them (see test_concurrency.c).
 * Alone on its Redis a test also knows when every job it queued is done (ix_wait_idle), so
 * "nothing was written" can be checked exactly. Handles are random all the same. Every wait
 * is bounded by IX_WAIT_MS; a poll that times out fails the test with what it last saw.
 */
#ifndef TIDINGS_TEST_INTERACTIONS_IX_H
#define TIDINGS_TEST_INTERACTIONS_IX_H

#include "tests/support/support.h"

#include <stdbool.h>

/* How long a poll waits for the engine: generous, for sanitizer builds under ctest -j2. A
 * test that cares about promptness uses its own bound. */
#ifndef IX_WAIT_MS
#define IX_WAIT_MS 30000
#endif
/* A well-formed id (below 2^53) that no server hands out before the year 2100. */
#define IX_UNKNOWN_ID "9007199254740000"

/* ---- the server ------------------------------------------------------------------------- */
/* The private Redis (a redis-server or a cluster; ix_redis.url names it) and the tidings
 * server of the running test (each test runs in its own process). */
extern ts_redis_t ix_redis;
extern ts_server_t ix_srv;
#define PORT (ix_srv.port)
/* Starts ix_redis unless it runs, then ix_srv on it with extra flags (NULL-terminated, may be
 * NULL), and waits until it is ready. */
void ix_start(const char *const *extra);
/* Suites' .init: ix_start(NULL). */
void ix_setup(void);
/* Stops ix_srv with SIGTERM and expects a clean exit (status 0) within 10 s; ix_redis stays. */
void ix_stop(void);
/* Suites' .fini: ix_stop(), then ix_redis is killed and its directory removed. */
void ix_teardown(void);
/* Waits until ix_redis's job queue, every shard of it, is empty (no entry, none pending):
 * every job queued so far has been done. Fails the test after IX_WAIT_MS. */
void ix_wait_idle(void);

/* ---- posts --------------------------------------------------------------------------- */
/* Publishes text as u, a reply to reply_to unless NULL (202 asserted); writes the post's id
 * and returns the answer (new reference). Plain posts are ts_post's. */
json_t *ix_reply_json(int port, const ts_user_t *u, const char *text, const char *reply_to,
                      char id[24]);
/* The same, dropping the answer. */
void ix_reply(int port, const ts_user_t *u, const char *text, const char *reply_to, char id[24]);
/* ix_reply of "hey @<who's handle>" as author: a post mentioning who. */
void ix_mention(int port, const ts_user_t *author, const ts_user_t *who, const char *reply_to,
                char id[24]);
/* POST /v1/posts/{post}/repost as u (202). */
void ix_repost(int port, const ts_user_t *u, const char *post);
/* GET /v1/posts/{id} as u (200 asserted); its like_count or repost_count. */
long long ix_like_count(int port, const ts_user_t *u, const char *post);
long long ix_repost_count(int port, const ts_user_t *u, const char *post);
/* Is user id among the items of a list answer? */
bool ix_list_has(const json_t *list, const char *id);
/* A list of ids and its length, as two arguments: ix_actors_are(n, IX_IDS(b.id, c.id)). */
#define IX_IDS(...)                                                                                \
    (const char *const[]){__VA_ARGS__},                                                            \
        sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *)

/* ---- timelines -------------------------------------------------------------------------- */
/* u's whole home timeline, every page walked (new reference to an array of posts). */
json_t *ix_timeline(int port, const ts_user_t *u);
/* How many entries of a timeline array are post id; *entry (borrowed) is the first, if any. */
int ix_count_post(const json_t *timeline, const char *id, const json_t **entry);
/* ix_count_post of post id in u's whole timeline, read now. */
int ix_timeline_count(int port, const ts_user_t *u, const char *id);
/* Waits until u's timeline holds post id (exactly once, asserted) and returns the entry
 * (new reference); fails the test after IX_WAIT_MS. */
json_t *ix_wait_timeline_has(int port, const ts_user_t *u, const char *id);
/* ix_wait_timeline_has for each post id of a NULL-terminated list, the entries dropped. */
void ix_wait_timeline_holds(int port, const ts_user_t *u, ...);
/* Waits until u's timeline does not hold post id; fails the test after IX_WAIT_MS. */
void ix_wait_timeline_lacks(int port, const ts_user_t *u, const char *id);

/* ---- notifications ------------------------------------------------------------------------ */
/* u's notifications, every page walked with query (e.g. "types=like"; NULL for none), in
 * pages of limit (new reference to an array). */
json_t *ix_notifications(int port, const ts_user_t *u, const char *query, int limit);
/* u's notifications, every page read now with query (NULL for none), and their JSON text for
 * failure messages; ix_inbox_free releases both. */
typedef struct ix_inbox_s {
    json_t *list;
    char *text;
} ix_inbox_t;
ix_inbox_t ix_inbox(int port, const ts_user_t *u, const char *query);
void ix_inbox_free(ix_inbox_t *in);
/* How many notifications (groups) u has, every page read now. */
size_t ix_inbox_size(int port, const ts_user_t *u);
/* The first notification of type (about post id, unless NULL) in a list; borrowed, or NULL. */
const json_t *ix_find(const json_t *list, const char *type, const char *post);
/* How many notifications of type (about post id, unless NULL) a list holds. */
int ix_count(const json_t *list, const char *type, const char *post);
/* Waits until u has a notification of type (about post, unless NULL) with exactly
 * actor_count actors (any count when -1), and returns it (new reference). */
json_t *ix_wait_notification(int port, const ts_user_t *u, const char *type, const char *post,
                             long long actor_count);
/* Waits until u's notification of type on post has exactly the actors ids (IX_IDS), newest
 * first: a state passed through on the way (another actor not yet undone) does not match. */
json_t *ix_wait_actors(int port, const ts_user_t *u, const char *type, const char *post,
                       const char *const *ids, size_t n);
/* The same within timeout_ms; NULL (no failure) when it did not come. */
json_t *ix_poll_notification(int port, const ts_user_t *u, const char *type, const char *post,
                             long long actor_count, int timeout_ms);
/* Waits until u has a notification of type (about post, unless NULL) whose actors include
 * user id actor, and returns it (new reference). */
json_t *ix_wait_actor(int port, const ts_user_t *u, const char *type, const char *post,
                      const char *actor);
/* ix_wait_actor for each (type, post) pair of a list ended by a NULL type. */
void ix_wait_actions(int port, const ts_user_t *u, const char *actor, ...);
/* Waits until u has no notification of type (about post, unless NULL). */
void ix_wait_no_notification(int port, const ts_user_t *u, const char *type, const char *post);
/* GET /v1/notifications/unread_count as u. */
long long ix_unread(int port, const ts_user_t *u);
/* Waits until u's unread count is want; fails the test after IX_WAIT_MS. */
void ix_wait_unread(int port, const ts_user_t *u, long long want);
/* Are the actors of a notification exactly these user ids, in this order (n of them)? */
bool ix_actors_are(const json_t *notification, const char *const *ids, size_t n);

#endif
