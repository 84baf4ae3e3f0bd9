/* tests/e2e/world.h -- a running server with two registered users and a post by each. */
/* Every suite in a binary uses the same .timeout: Criterion 2.4.1 leaks 48 bytes (a
 * LeakSanitizer report that fails the Asan build) when suites in one binary differ. */
#ifndef TIDINGS_TEST_E2E_WORLD_H
#define TIDINGS_TEST_E2E_WORLD_H

#include "tests/support/support.h"

typedef struct world_s {
    ts_server_t srv;
    ts_user_t a, b;
    char post_a[24], post_b[24];
} world_t;

/* Starts a server on the fixture Redis and creates users a and b and a post by each. */
void world_start(world_t *w);
/* Stops the server and expects that it exited with status 0 (clean shutdown, no leak). */
void world_stop(world_t *w);

/* The world of a suite's tests (each test runs in its own process), and the .init / .fini
 * that start and stop it. */
extern world_t world;
#define PORT (world.srv.port)
void world_setup(void);
void world_teardown(void);

#endif
