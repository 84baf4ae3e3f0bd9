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

/* Walks every page of path as as in pages of limit (each page's shape asserted): the item ids,
 * newest first, into ids[0..max), and the pages read into *pages; returns how many items. */
size_t world_walk(const ts_user_t *as, const char *path, int limit, char (*ids)[24], size_t max,
                  int *pages);

/* The world of a suite's tests (each test runs in its own process), and the .init / .fini
 * that start and stop it. */
extern world_t world;
#define PORT (world.srv.port)
void world_setup(void);
void world_teardown(void);

#endif
