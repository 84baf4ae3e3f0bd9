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
    sx_use_private_redis(); /* events are ordered: no other binary's engine may touch its jobs */
    sx_server(&srv, args);
    char rh[32], ah[32];
    snprintf(rh, sizeof(rh), "%sr", tag);
    snprintf(ah, sizeof(ah), "%sa", tag);
    ts_user_t reader, author;
    ts_register(srv.port, rh, &reader);
    ts_register(srv.port, ah, &author);
    ts_follow(srv.port, &reader, &author);
    ts_sse_t *c = ts_stream(srv.port, &reader, NULL);

    char post[24], id[24];
    ts_post(srv.port, &author, "both paths", post);
    ts_sse_item_t ev;
    ts_sse_expect(c, "feed", &ev, SX_WAIT_MS, "the post");
    cr_assert_str_eq(ts_sse_data_id(&ev, id, sizeof(id)), post);
    char feed_id[64];
    snprintf(feed_id, sizeof(feed_id), "%s", ev.id);
    ts_sse_item_clear(&ev);
    ts_delete_post(srv.port, &author, post);
    ts_sse_expect(c, "delete", &ev, SX_WAIT_MS, "the deletion");
    cr_assert_str_eq(ts_sse_data_id(&ev, id, sizeof(id)), post);
    cr_assert_gt(ts_sse_id_cmp(ev.id, feed_id), 0);
    ts_sse_item_clear(&ev);
    int beats = 0;
    for (uint64_t until = ts_now_ms() + 2500; beats == 0 && ts_now_ms() < until;) {
        ts_sse_kind_t k = ts_sse_next(c, &ev, 500);
        cr_assert(k != TS_SSE_END, "the stream ended");
        cr_assert(k != TS_SSE_EVENT, "an unexpected event %s %s", ev.id, ev.type);
        beats += k == TS_SSE_COMMENT && strcmp(ev.text, "heartbeat") == 0;
        ts_sse_item_clear(&ev);
    }
    cr_assert_eq(beats, 1, "no heartbeat within 2.5 s with --heartbeat 1");
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
    ts_sse_close(c);
}

/* A client that hangs up is found by the next write, whichever path makes it: the stream
 * is closed and counted out, and the other streams go on. */
static void hang_up_is_noticed(const char *const *args, const char *tag)
{
    sx_use_private_redis();
    sx_server(&srv, args);
    char gh[32], sh[32], ah[32];
    snprintf(gh, sizeof(gh), "%sg", tag);
    snprintf(sh, sizeof(sh), "%ss", tag);
    snprintf(ah, sizeof(ah), "%sa", tag);
    ts_user_t gone, stays, author;
    ts_register(srv.port, gh, &gone);
    ts_register(srv.port, sh, &stays);
    ts_register(srv.port, ah, &author);
    ts_follow(srv.port, &gone, &author);
    ts_follow(srv.port, &stays, &author);
    ts_sse_t *g = ts_stream(srv.port, &gone, NULL);
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
