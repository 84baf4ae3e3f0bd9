/* tests/live_state/ls.h -- what the live-state tests share: a tidings server on a private
 * Redis of the fixture's kind (a redis-server, or in test_live_state_cluster a Redis Cluster
 * of its own), and reading a stream for the events these tests are about. */
#ifndef TIDINGS_TEST_LIVE_STATE_LS_H
#define TIDINGS_TEST_LIVE_STATE_LS_H

#include "tests/support/sse.h"

#include <jansson.h>

/* Every suite's .timeout (Criterion 2.4.1 leaks when suites of one binary differ). */
#define LS_TIMEOUT 300
/* How long anything the engine does may take (sanitizer builds under ctest -j2 are slow). */
#define LS_WAIT_MS 30000

extern ts_server_t ls_srv;
extern ts_redis_t ls_redis;
#define PORT (ls_srv.port)
/* Suites' .init: a private Redis and a server on it (extra flags: none). */
void ls_setup(void);
/* Suites' .fini: stops the server (expecting a clean exit) and removes the Redis. */
void ls_teardown(void);

/* Waits until every job queued so far is done (the job queue empty, nothing pending). */
void ls_wait_idle(void);

/* The next event on c that is not a feed, delete or counts event (the user's own posts reach
 * their timeline too; test_counts.c reads the counts) within timeout_ms; it must be of type. Its data is returned as JSON (new
 * reference); its id goes to id unless NULL. */
json_t *ls_expect(ts_sse_t *c, const char *type, char id[64], int timeout_ms, const char *what);
/* Reads c for quiet_ms and asserts that no event but feed, delete and counts events came. */
void ls_expect_quiet(ts_sse_t *c, int quiet_ms, const char *what);

#endif
