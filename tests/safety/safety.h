/* tests/safety/safety.h -- what the abuse suites share beyond tests/support: sockets from a
 * chosen loopback source address. */
#ifndef TIDINGS_TEST_SAFETY_H
#define TIDINGS_TEST_SAFETY_H

#include "tests/support/support.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* ts_server_start against the fixture Redis with the NULL-terminated extra flags (may be
 * NULL), waiting for readiness. */
void sf_server_start(ts_server_t *s, const char *const *extra);
/* A TCP connection from source (a 127/8 address) to 127.0.0.1:port; -1 when connect fails. */
int sf_connect_from(const char *source, int port);
/* Whether the peer closed or reset fd within wait_ms (0: only what has already happened).
 * Bytes that arrive meanwhile are read and dropped. */
bool sf_closed_by_peer(int fd, int wait_ms);
/* One request from source (Connection: close; token, extra "Name: value\r\n" lines and a
 * JSON body each optional) and its answer into buf; returns the status (0: none). */
int sf_request_from(const char *source, int port, const char *method, const char *path,
                    const char *token, const char *extra, const char *body, char *buf, size_t size);
/* A header's value in a raw answer (case-sensitive name) into out; NULL when absent. */
const char *sf_header(const char *answer, const char *name, char *out, size_t size);
/* Reads until a whole response head (and a Content-Length body) is in buf or timeout_ms
 * passes; returns the bytes read (buf NUL-terminated), 0 when none came. */
ssize_t sf_read_response(int fd, char *buf, size_t size, int timeout_ms);

#endif
