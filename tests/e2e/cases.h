/* tests/e2e/cases.h -- the bad-input table as data: tests/e2e/cases/<name>/{request,expected}.
 *
 * request: the raw HTTP request. Up to the first empty line is the head, written one header
 * per line (LF; the runner sends CRLF, and Host: {{HOST}} after the request line unless the
 * head has a Host line); the rest is the body, sent byte for byte except one final newline.
 * Defaults, so a case writes only what it is about: a head followed by a body (an empty line)
 * and naming neither Content-Length nor Transfer-Encoding gets Content-Length: {{LENGTH}} as
 * its last header; one without a Content-Type line gets Content-Type: application/json, and
 * every request but a registration (POST /v1/users) without an Authorization line gets
 * Authorization: Bearer {{TOKEN_A}}, both after Host. A head line "-Content-Type" or
 * "-Authorization" opts out of that default (the 415 and 401 cases) and is not sent.
 * Placeholders, replaced before sending:
 *   {{TOKEN_A}} {{TOKEN_B}} {{ID_A}} {{ID_B}} {{HANDLE_A}} {{HANDLE_A_UPPER}} {{POST_A}}
 *   {{POST_B}}   the world's users and posts (a posted POST_A, b posted POST_B)
 *   {{WRONG_TOKEN_A}}  a well-formed token with a's id and a secret that is not a's
 *   {{UNKNOWN_ID}}     a valid id that names nothing
 *   {{UNIQUE}}         a valid handle no one has
 *   {{HOST}}           127.0.0.1:<port>
 *   {{LENGTH}}         (head only) the length of the body after substitution
 *   {{REPEAT:n:text}}  text n times;  {{HEX:c328}}  raw bytes
 *   {{BIG_BODY}}       a JSON object larger than the default --max-body
 *   {{BIG_CHUNKED}}    such a body in chunked transfer coding, final chunk included
 * expected: the status ("400" or "HTTP/1.1 400"), then headers that must be present with
 * exactly that value ("Name:" alone: present with any value), an empty line, and a JSON
 * value that the body must contain (objects: those members, recursively; others: equal).
 * Every answer of 400 or more (but libmicrohttpd's own 414 and 431) must also be an
 * application/problem+json document whose status is the HTTP status and whose type is the
 * one api/problem.c gives that status, so expected need not repeat these; every answer
 * carries Cache-Control: no-store.
 */
#ifndef TIDINGS_TEST_E2E_CASES_H
#define TIDINGS_TEST_E2E_CASES_H

#include "tests/e2e/world.h"

#include <stddef.h>

#define CASE_NAME_MAX 96

/* Fills names (up to max) with the case directories, sorted; returns how many there are. */
size_t cases_list(char (*names)[CASE_NAME_MAX], size_t max);
/* Sends case name to w's server and checks the answer with cr_expect (check false: only
 * that an answer came). */
void cases_run(const world_t *w, const char *name, bool check);

#endif
