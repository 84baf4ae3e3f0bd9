/* tests/safety/test_streams.c -- one user, or one client address, cannot take every stream
 * slot: beyond --max-streams-per-user or --max-streams-per-address a stream is refused with
 * 429 and Retry-After, while other users and addresses still open theirs. */
#include "tests/safety/safety.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

TestSuite(streams, .timeout = 60);

/* Opens u's stream from source; returns the connection (the head is in head), -1 if none. */
static int open_stream(int port, const char *source, const ts_user_t *u, char *head, size_t size)
{
    int fd = sf_connect_from(source, port);
    cr_assert(fd >= 0);
    char req[512];
    int n = snprintf(req, sizeof(req),
                     "GET /v1/stream?access_token=%s HTTP/1.1\r\nHost: x\r\n"
                     "Accept: text/event-stream\r\n\r\n",
                     u->token);
    cr_assert_eq(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
    cr_assert(sf_read_response(fd, head, size, 5000) > 0, "no answer to the stream request");
    return fd;
}

static void expect_refused(const char *head, const char *why)
{
    cr_expect(strncmp(head, "HTTP/1.1 429", 12) == 0, "%s: answered %.60s", why, head);
    cr_expect(strstr(head, "application/problem+json") != NULL, "%s", why);
    cr_expect(strstr(head, "Retry-After: ") != NULL, "%s", why);
    cr_expect(strstr(head, "urn:tidings:problem:too-many-requests") != NULL, "%s", why);
}

Test(streams, one_user_holds_at_most_its_streams)
{
    ts_server_t s;
    /* A stream the client dropped is noticed at its next heartbeat: one a second here. */
    sf_server_start(&s,
                    (const char *const[]){"--max-streams-per-user", "3", "--heartbeat", "1", NULL});
    ts_user_t ana, bob;
    ts_register(s.port, "cap", &ana);
    ts_register(s.port, "cap", &bob);
    char head[4096];
    int fds[3];
    for (int i = 0; i < 3; i++) {
        fds[i] = open_stream(s.port, "127.0.0.1", &ana, head, sizeof(head));
        cr_expect(strncmp(head, "HTTP/1.1 200", 12) == 0, "stream %d: %.60s", i, head);
    }
    int extra = open_stream(s.port, "127.0.0.1", &ana, head, sizeof(head));
    expect_refused(head, "a fourth stream of one user");
    cr_expect(strstr(head, "this user has 3 event streams open") != NULL, "%s", head);
    cr_expect(strstr(head, "Retry-After: 1\r\n") != NULL, "retry after the heartbeat: %s", head);
    close(extra);
    int other = open_stream(s.port, "127.0.0.1", &bob, head, sizeof(head));
    cr_expect(strncmp(head, "HTTP/1.1 200", 12) == 0, "another user: %.60s", head);
    close(other);
    /* A closed stream gives its place back. */
    close(fds[0]);
    ts_sleep_ms(300);
    int again = -1;
    for (int tries = 0; tries < 40; tries++) {
        again = open_stream(s.port, "127.0.0.1", &ana, head, sizeof(head));
        if (strncmp(head, "HTTP/1.1 200", 12) == 0)
            break;
        close(again);
        ts_sleep_ms(100);
    }
    cr_expect(strncmp(head, "HTTP/1.1 200", 12) == 0, "after a close: %.60s", head);
    close(again);
    for (int i = 1; i < 3; i++)
        close(fds[i]);
    ts_server_stop(&s, 5000);
}

Test(streams, one_address_holds_at_most_its_streams)
{
    ts_server_t s;
    sf_server_start(&s, (const char *const[]){"--max-streams-per-address", "2", NULL});
    ts_user_t u[4];
    for (int i = 0; i < 4; i++)
        ts_register(s.port, "addr", &u[i]);
    char head[4096];
    int a = open_stream(s.port, "127.0.0.2", &u[0], head, sizeof(head));
    cr_expect(strncmp(head, "HTTP/1.1 200", 12) == 0, "%.60s", head);
    int b = open_stream(s.port, "127.0.0.2", &u[1], head, sizeof(head));
    cr_expect(strncmp(head, "HTTP/1.1 200", 12) == 0, "%.60s", head);
    int c = open_stream(s.port, "127.0.0.2", &u[2], head, sizeof(head));
    expect_refused(head, "a third stream from one address");
    int d = open_stream(s.port, "127.0.0.3", &u[3], head, sizeof(head));
    cr_expect(strncmp(head, "HTTP/1.1 200", 12) == 0, "another address: %.60s", head);
    close(a);
    close(b);
    close(c);
    close(d);
    ts_server_stop(&s, 5000);
}
