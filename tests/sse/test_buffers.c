/* tests/sse/test_buffers.c -- a stream's output buffer shrinks back once a large event is
 * sent. Before, it kept the size of the largest event it ever sent (a 20 KB post left 32 KB
 * on every follower's stream for good). Measured with tidings_stream_buffer_bytes, the bytes
 * all streams' buffers hold, over many streams, on both paths: the writer threads (the
 * default) and libmicrohttpd's reader alone (--stream-writers 0). */
#include "tests/sse/sx.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <stdio.h>
#include <stdlib.h>

TestSuite(sse_buffers, .fini = sx_teardown, .timeout = SX_TIMEOUT);

static ts_server_t srv;

#define STREAMS 100
/* What a stream may hold between events: its first allocation, whatever it sent. */
#define IDLE_BYTES_MAX 4096

static void a_long_post_leaves_small_buffers(const char *writers)
{
    sx_use_private_redis();
    sx_server(&srv, (const char *const[]){"--stream-writers", writers, "--max-streams-per-user",
                                          "0", "--max-streams-per-address", "0",
                                          "--max-connections-per-address", "0", NULL});
    ts_user_t reader, author;
    ts_register_all(srv.port, "bufs", &reader, &author, NULL);
    ts_follow(srv.port, &reader, &author);
    static ts_sse_t *c[STREAMS];
    for (int i = 0; i < STREAMS; i++)
        c[i] = ts_stream(srv.port, &reader, NULL);
    char small[24], big[24];
    ts_post(srv.port, &author, "a short one", small);
    for (int i = 0; i < STREAMS; i++)
        sx_expect(c[i], "feed", small, NULL, "the short post");
    double base = ts_metric(srv.port, "tidings_stream_buffer_bytes");

    char *text = sx_text("long ", SX_BIG_TEXT);
    ts_post(srv.port, &author, text, big);
    free(text);
    for (int i = 0; i < STREAMS; i++)
        sx_expect(c[i], "feed", big, NULL, "the long post");
    /* The last bytes were read: the server drops the buffer when it asks for more. */
    double after = 0;
    for (uint64_t until = ts_now_ms() + 5000; ts_now_ms() < until; ts_sleep_ms(50)) {
        after = ts_metric(srv.port, "tidings_stream_buffer_bytes");
        if (after / STREAMS <= IDLE_BYTES_MAX)
            break;
    }
    cr_log_info("--stream-writers %s: %d streams hold %.0f bytes of buffers before a %d-character "
                "post, %.0f after (%.0f per stream)",
                writers, STREAMS, base, SX_BIG_TEXT, after, after / STREAMS);
    cr_assert_leq(base / STREAMS, IDLE_BYTES_MAX, "%.0f bytes per idle stream before",
                  base / STREAMS);
    cr_assert_leq(after / STREAMS, IDLE_BYTES_MAX,
                  "--stream-writers %s: each stream still holds %.0f bytes of buffer after sending "
                  "a %d-character post (%.0f before)",
                  writers, after / STREAMS, SX_BIG_TEXT, base / STREAMS);
    for (int i = 0; i < STREAMS; i++)
        ts_sse_close(c[i]);
}

Test(sse_buffers, a_long_post_leaves_no_large_buffer_on_the_fast_path)
{
    a_long_post_leaves_small_buffers("2");
}

Test(sse_buffers, a_long_post_leaves_no_large_buffer_on_the_reader_path)
{
    a_long_post_leaves_small_buffers("0");
}
