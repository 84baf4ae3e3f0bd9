/* tests/tokens/tokens_suite.h -- what the tokens suite's files share (tokens_suite.c). */
#ifndef TIDINGS_TESTS_TOKENS_SUITE_H
#define TIDINGS_TESTS_TOKENS_SUITE_H

#include "tests/support/support.h"

#include <jansson.h>

/* Sends the request (token may be NULL) to port and expects status with a problem+json body
 * repeating it; a 401 also carries WWW-Authenticate. Returns the problem's detail (new: free
 * it). */
char *tk_expect_problem(int port, const char *token, const char *method, const char *path,
                        const char *body, int status);
/* POST /v1/tokens {name[, expires_in]} as token (201): the response (new reference); its
 * token text goes to text (128 bytes) unless NULL. expires_in 0: none given. */
json_t *tk_create(int port, const char *token, const char *name, long expires_in, char *text);
/* GET /v1/tokens as token (200): its items (new reference). */
json_t *tk_list(int port, const char *token);
/* The item of list whose id is id (borrowed), or NULL. */
json_t *tk_find(json_t *items, const char *id);
/* The status of GET /v1/me with token. */
int tk_me_status(int port, const char *token);
/* The hex SHA-256 of text into out. */
void tk_sha256_hex(const char *text, char out[65]);

#endif
