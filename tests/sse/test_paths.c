/* tests/sse/test_paths.c -- the two ways a stream is written: writer threads sending
 * straight to a parked stream's socket (the default), and libmicrohttpd's resume path
 * (--stream-writers 0, and what the writers hand back). Both carry the same stream, the
 * body is close-delimited so that bytes from either read the same, and a client that hangs
 * up is noticed by whichever path writes next. */
#include "tests/sse/sx.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

TestSuite(sse_paths, .fini = sx_teardown, .timeout = SX_TIMEOUT);

static ts_server_t srv;

/* Feed, delete and a heartbeat, in order, on one stream of a server run with args. */
static void feed_delete_heartbeat(const char *const *args, const char *tag)
{
    /* A private Redis: events are ordered, so no other binary's engine may touch its jobs. */
    ts_user_t reader, author;
    ts_sse_t *c = sx_reader_of(&srv, args, tag, &reader, &author);
    char post[24], feed_id[64], delete_id[64];
    ts_post(srv.port, &author, "both paths", post);
    sx_expect(c, "feed", post, feed_id, "the post");
    ts_delete_post(srv.port, &author, post);
    sx_expect(c, "delete", post, delete_id, "the deletion");
    cr_assert_gt(ts_sse_id_cmp(delete_id, feed_id), 0);
    cr_assert_eq(sx_heartbeats(c, 1, 2500), 1, "no heartbeat within 2.5 s with --heartbeat 1");
    cr_assert_eq(c->unknown_fields, 0, "unknown SSE line: %s", c->unknown_line);
    cr_assert(!c->chunked, "the stream body is chunked");
    ts_sse_close(c);
}

Test(sse_paths, writer_threads_carry_feed_delete_and_heartbeats)
{
    feed_delete_heartbeat((const char *const[]){"--heartbeat", "1", NULL}, "pathw");
}

Test(sse_paths, the_resume_path_alone_carries_feed_delete_and_heartbeats)
{
    feed_delete_heartbeat((const char *const[]){"--heartbeat", "1", "--stream-writers", "0", NULL},
                          "pathr");
}

Test(sse_paths, the_body_is_close_delimited)
{
    sx_use_private_redis();
    sx_server(&srv, NULL);
    ts_user_t u;
    ts_register(srv.port, "pathc", &u);
    ts_sse_t *c = ts_stream(srv.port, &u, NULL);
    char v[64];
    cr_assert(!ts_sse_header(c, "Transfer-Encoding", v, sizeof(v)), "Transfer-Encoding: %s", v);
    cr_assert(!ts_sse_header(c, "Content-Length", v, sizeof(v)), "Content-Length: %s", v);
    cr_assert(ts_sse_header(c, "Connection", v, sizeof(v)) && strcasecmp(v, "close") == 0,
              "no Connection: close on a close-delimited body");
    cr_assert(ts_sse_header(c, "X-Accel-Buffering", v, sizeof(v)) && strcmp(v, "no") == 0,
              "a proxy may buffer the stream: no X-Accel-Buffering: no");
    /* Once: a second Content-Type (the stream's own and the reply's) is a malformed head. */
    int content_types = 0;
    for (const char *p = c->head; (p = strcasestr(p, "\nContent-Type:")) != NULL; p++)
        content_types++;
    cr_assert_eq(content_types, 1, "Content-Type %d times in the head:\n%s", content_types,
                 c->head);
    ts_sse_close(c);
}

/* A client that hangs up is found by the next write, whichever path makes it: the stream
 * is closed and counted out, and the other streams go on. */
static void hang_up_is_noticed(const char *const *args, const char *tag)
{
    ts_user_t gone, author, stays;
    ts_sse_t *g = sx_reader_of(&srv, args, tag, &gone, &author);
    ts_register(srv.port, tag, &stays);
    ts_follow(srv.port, &stays, &author);
    ts_sse_t *s = ts_stream(srv.port, &stays, NULL);
    cr_assert_eq(ts_metric(srv.port, "tidings_streams_open"), 2);
    ts_sse_close(g);
    ts_feed_t got = {0};
    char post[24];
    /* The first write after a hang-up may still be taken by the kernel; the peer's reset
     * makes a later one fail. */
    uint64_t deadline = ts_now_ms() + 10000;
    for (int i = 0; ts_metric(srv.port, "tidings_streams_open") != 1; i++) {
        cr_assert(ts_now_ms() < deadline, "the hung-up stream is still counted open after %d posts",
                  i);
        ts_post(srv.port, &author, "anyone there?", post);
        ts_feed_read(s, &got, SX_WAIT_MS, "the stream that stays");
        cr_assert_str_eq(got.post[got.n - 1], post);
    }
    ts_sse_close(s);
    ts_feed_free(&got);
}

Test(sse_paths, a_hang_up_is_noticed_by_the_writer_threads)
{
    hang_up_is_noticed(NULL, "hangw");
}

Test(sse_paths, a_hang_up_is_noticed_by_the_resume_path)
{
    hang_up_is_noticed((const char *const[]){"--stream-writers", "0", NULL}, "hangr");
}
