/* tests/sse/sx.h -- what the stream tests share: the Redis and tidings servers of the running
 * test, and what one user receives over any number of stream connections (the users, posts
 * and the SSE client are tests/support's).
 *
 * Each Criterion test runs in its own process, so the servers are per test. A test picks
 * the fixture Redis (sx_use_fixture_redis) when sharing it cannot disturb what it checks,
 * or a private one (sx_use_private_redis) when it counts or orders events, or must know that
 * its own engine does the fan-out: on the fixture every test binary's engines work one job
 * queue, and a job stranded by a server another test stops waits --claim-idle-ms (30 s) for
 * another engine. Either is of the run's kind: a redis-server, or in test_sse_cluster a Redis
 * Cluster (the fixture's, or a private one of 3 masters). Handles are random either way.
 */
#ifndef TIDINGS_TEST_SSE_SX_H
#define TIDINGS_TEST_SSE_SX_H

#include "tests/support/sse.h"

#include <jansson.h>
#include <stdbool.h>

/* Every suite's .timeout (Criterion 2.4.1 leaks when suites of one binary differ). */
#define SX_TIMEOUT 300
/* How long anything the engine does may take: a stranded job on the fixture waits 30 s
 * before another engine claims it, and sanitizer builds under ctest -j2 are slow. */
#define SX_WAIT_MS 60000
/* Long post texts fill kernel buffers quickly (the limit is 5,000 characters). */
#define SX_BIG_TEXT 4900

/* ---- servers ----------------------------------------------------------------------------- */
extern char sx_redis_url[256];
/* Starts a private Redis for this test (removed at exit): a redis-server, or in
 * test_sse_cluster a Redis Cluster (see ts_redis_start_like_fixture). */
void sx_use_private_redis(void);
/* Uses the fixture: a redis-server, or the Redis Cluster in test_sse_cluster. */
void sx_use_fixture_redis(void);
/* Starts a tidings server on the chosen Redis with the extra flags (NULL-terminated, may be
 * NULL) and waits until it is ready. */
void sx_server(ts_server_t *s, const char *const *extra);
/* The usual start: a private Redis, s on it with extra flags, reader and author registered
 * as "<prefix>_a" and "<prefix>_b", reader following author. Returns reader's stream, open. */
ts_sse_t *sx_reader_of(ts_server_t *s, const char *const *extra, const char *prefix,
                       ts_user_t *reader, ts_user_t *author);
/* SIGTERM; expects exit status 0 within timeout_ms. Returns how long it took (ms). */
uint64_t sx_server_stop(ts_server_t *s, int timeout_ms);
/* Waits (sending nothing) up to timeout_ms for s to exit, expects status 0 and forgets it.
 * Returns how long it took (ms). */
uint64_t sx_server_reap(ts_server_t *s, int timeout_ms);
/* Suites' .fini: stops every server still running (expecting clean exits) and removes the
 * private Redis. */
void sx_teardown(void);

/* ---- events ------------------------------------------------------------------------------ */
/* The next event on c must be of type (NULL: any) about subject (a post id; NULL: any), after
 * no line that names no SSE field; its event id goes to id unless NULL. what names it. */
void sx_expect(ts_sse_t *c, const char *type, const char *subject, char id[64], const char *what);

/* Reads c for up to within_ms, or until want heartbeats came, and returns how many did; the
 * stream must not end and must send nothing but heartbeat comments meanwhile. */
int sx_heartbeats(ts_sse_t *c, int want, int within_ms);

/* ---- posts ------------------------------------------------------------------------------- */
/* A text of len characters starting with tag (len 0: just tag), filled with a character that
 * takes four bytes in UTF-8, so a 4,900-character post is about 20 KB. Returns new. */
char *sx_text(const char *tag, size_t len);
/* The first item of the caller's GET /v1/notifications (new reference, NULL when empty). */
json_t *sx_newest_notification(int port, const ts_user_t *u);

#endif
