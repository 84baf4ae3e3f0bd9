/* tests/e2e/world.h -- a running server with two registered users and a post by each, and
 * the API calls the end-to-end tests make over real HTTP. */
/* Every suite in a binary uses the same .timeout: Criterion 2.4.1 leaks 48 bytes (a
 * LeakSanitizer report that fails the Asan build) when suites in one binary differ. */
#ifndef TIDINGS_TEST_E2E_WORLD_H
#define TIDINGS_TEST_E2E_WORLD_H

#include "tests/support/support.h"

typedef struct e2e_user_s {
    char id[24];
    char token[128];
    char handle[32];
} e2e_user_t;

typedef struct world_s {
    ts_server_t srv;
    e2e_user_t a, b;
    char post_a[24], post_b[24];
} world_t;

/* Registers a user whose handle is prefix plus a random suffix (201 asserted). */
void e2e_register(int port, const char *prefix, e2e_user_t *u);
/* Publishes text as u (202 asserted); writes the new post's id. */
void e2e_post(int port, const e2e_user_t *u, const char *text, char id[24]);
/* The JSON of a request that must answer expect_status (see ts_call); path is formatted. */
json_t *e2e_call(int port, const char *method, const e2e_user_t *as, const char *body,
                 int expect_status, const char *path_fmt, ...)
    __attribute__((format(printf, 6, 7)));
/* A string member of obj (fails the test when it is missing or not a string). */
const char *e2e_str(const json_t *obj, const char *key);

/* Starts a server on the fixture Redis and creates users a and b and a post by each. */
void world_start(world_t *w);
/* Stops the server and asserts that it exited with status 0 (clean shutdown, no leak). */
void world_stop(world_t *w);

#endif
