/* tests/sse/test_shutdown_streams.c -- SIGTERM with thousands of streams open exits 0, with
 * no grace as with the usual one.
 *
 * With --shutdown-grace 0, libmicrohttpd used to be stopped while the writer threads were
 * still resuming the parked (suspended) streams: it aborts then ("MHD_stop_daemon() called
 * while we have suspended connections"), or a writer touches a connection it freed. A post
 * just before the signal keeps the writers busy with every stream as it comes. Repeated:
 * the abort is a race. */
#include "tests/sse/sx.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

TestSuite(sse_shutdown, .fini = sx_teardown, .timeout = SX_TIMEOUT);

static ts_server_t srv;

#define STREAMS 2000
#define ROUNDS                                                                                     \
    3 /* 1 against a ThreadSanitizer server: a round takes it half a minute, and
                  * the other builds repeat the race */

/* Streams are sockets here as on the server. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    }
    cr_assert_geq(rl.rlim_cur, (rlim_t)STREAMS + 256,
                  "%d streams need a larger open-files limit than %llu", STREAMS,
                  (unsigned long long)rl.rlim_cur);
}

/* Starts a server with grace, opens STREAMS streams of one follower, posts and stops it. */
static void stop_with_streams_open(const char *grace, int round)
{
    sx_server(&srv, (const char *const[]){"--shutdown-grace", grace, "--max-streams-per-user", "0",
                                          "--max-streams-per-address", "0",
                                          "--max-connections-per-address", "0", NULL});
    ts_user_t reader, author;
    ts_register_all(srv.port, "shut", &reader, &author, NULL);
    ts_follow(srv.port, &reader, &author);
    static ts_sse_t *c[STREAMS];
    for (int i = 0; i < STREAMS; i++)
        c[i] = ts_stream(srv.port, &reader, NULL);
    char first[24], last[24];
    ts_post(srv.port, &author, "every stream parked after this", first);
    sx_expect(c[0], "feed", first, NULL, "the first post");
    sx_expect(c[STREAMS - 1], "feed", first, NULL, "the first post (last stream)");
    ts_post(srv.port, &author, "on its way at the signal", last);
    sx_expect(c[0], "feed", last, NULL, "the second post");
    cr_assert_eq(kill(srv.pid, SIGTERM), 0);
    uint64_t took = sx_server_reap(&srv, 60000);
    cr_log_info("--shutdown-grace %s, round %d: exited 0 in %llu ms with %d streams open", grace,
                round, (unsigned long long)took, STREAMS);
    for (int i = 0; i < STREAMS; i++)
        ts_sse_close(c[i]);
}

Test(sse_shutdown, no_grace_and_thousands_of_streams_exits_0)
{
    raise_fd_limit();
    sx_use_private_redis();
    int rounds = getenv("TIDINGS_TEST_SERVER_TSAN") ? 1 : ROUNDS;
    for (int round = 0; round < rounds; round++)
        stop_with_streams_open("0", round);
}

Test(sse_shutdown, the_usual_grace_and_thousands_of_streams_exits_0)
{
    raise_fd_limit();
    sx_use_private_redis();
    stop_with_streams_open("10000", 0);
}
