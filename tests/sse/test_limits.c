/* tests/sse/test_limits.c -- the server protecting itself: a reader that never reads is cut
 * off at --stream-buffer (counted in tidings_streams_dropped_total) while other streams go
 * on, the cut reader resumes with Last-Event-ID, and --max-streams answers 503 beyond. */
#include "tests/sse/sx.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(sse_limits, .fini = sx_teardown, .timeout = SX_TIMEOUT);

static ts_server_t srv;

/* At most this many big posts to overflow a 4 KiB stream buffer (8 events) behind a small
 * socket buffer; it takes a few dozen. */
#define MAX_BIG_POSTS 400

/* Posts big posts as author until the server reports a dropped stream, then `after` more.
 * fast (may be NULL) must receive each post before the next is made (so it never falls
 * behind), in order, on its one connection; its record goes to fg. Returns how many posts
 * were made; ids receives them. */
static int post_until_dropped(const ts_user_t *author, ts_sse_t *fast, ts_feed_t *fg, int after,
                              char (*ids)[24])
{
    double dropped0 = ts_metric(srv.port, "tidings_streams_dropped_total");
    int n = 0, cut_at = -1;
    while (n < MAX_BIG_POSTS && (cut_at < 0 || n < cut_at + after)) {
        char tag[32];
        snprintf(tag, sizeof(tag), "big %d ", n);
        char *text = sx_text(tag, SX_BIG_TEXT);
        ts_post(srv.port, author, text, ids[n]);
        free(text);
        if (fast) {
            char what[64];
            snprintf(what, sizeof(what), "the fast reader, post %d", n + 1);
            ts_feed_read(fast, fg, SX_WAIT_MS, what);
            cr_assert_str_eq(fg->post[fg->n - 1], ids[n], "the fast reader got post %s, not %s",
                             fg->post[fg->n - 1], ids[n]);
        }
        n++;
        if (cut_at < 0 && ts_metric(srv.port, "tidings_streams_dropped_total") > dropped0)
            cut_at = n;
    }
    cr_assert(cut_at >= 0,
              "no stream was cut off after %d posts of %d characters with "
              "--stream-buffer 4096 and a reader that never reads",
              n, SX_BIG_TEXT);
    return n;
}

Test(sse_limits, a_reader_that_never_reads_is_cut_off_while_others_keep_receiving)
{
    sx_use_private_redis();
    sx_server(&srv, (const char *const[]){"--stream-buffer", "4096", NULL});
    ts_user_t author, slow, fast;
    ts_register_all(srv.port, "cut", &author, &slow, &fast, NULL);
    ts_follow(srv.port, &slow, &author);
    ts_follow(srv.port, &fast, &author);
    ts_sse_t *s = ts_stream_opts(srv.port, &(ts_sse_opts_t){.token = slow.token, .rcvbuf = 4096});
    ts_sse_t *f = ts_stream(srv.port, &fast, NULL);
    cr_assert_eq(ts_metric(srv.port, "tidings_streams_dropped_total"), 0);

    static char ids[MAX_BIG_POSTS][24];
    ts_feed_t fg = {0};
    int n = post_until_dropped(&author, f, &fg, 20, ids);
    cr_assert_eq(ts_metric(srv.port, "tidings_streams_dropped_total"), 1,
                 "exactly one stream (the one never read) should have been cut off");
    cr_assert(!f->ended, "the fast reader's stream ended");
    cr_assert_eq(fg.n, (size_t)n);

    /* The slow stream, read at last, ends after what was already on its way. */
    int got = 0;
    cr_assert(ts_sse_drain(s, 15000, &got), "the cut-off stream did not end");
    cr_assert_lt(got, n, "the cut-off stream delivered all %d posts", n);
    cr_assert(!s->framing_error, "the cut-off stream's framing broke: %s", s->framing_what);
    /* Its bytes came from both paths (the writers until its socket filled, then
     * libmicrohttpd): a line cut or interleaved would name no SSE field. */
    cr_assert_eq(s->unknown_fields, 0, "the cut-off stream has a garbled line: %s",
                 s->unknown_line);
    uint64_t deadline = ts_now_ms() + 15000;
    while (ts_metric(srv.port, "tidings_streams_open") != 1) {
        cr_assert(ts_now_ms() < deadline, "tidings_streams_open is not back to 1");
        ts_sleep_ms(50);
    }

    /* The fast reader is still live. */
    char post[24];
    ts_post(srv.port, &author, "still here", post);
    ts_feed_read(f, &fg, SX_WAIT_MS, "the fast reader after the cut");
    cr_assert_str_eq(fg.post[fg.n - 1], post);
    ts_sse_close(s);
    ts_sse_close(f);
    ts_feed_free(&fg);
}

Test(sse_limits, a_cut_off_reader_resumes_with_last_event_id)
{
    sx_use_private_redis();
    sx_server(&srv, (const char *const[]){"--stream-buffer", "4096", NULL});
    ts_user_t author, slow;
    ts_register_all(srv.port, "res", &author, &slow, NULL);
    ts_follow(srv.port, &slow, &author);
    ts_sse_t *s = ts_stream_opts(srv.port, &(ts_sse_opts_t){.token = slow.token, .rcvbuf = 4096});
    static char ids[MAX_BIG_POSTS][24];
    ts_feed_t g = {0};
    char first[24];
    ts_post(srv.port, &author, "read this one", first);
    ts_feed_read(s, &g, SX_WAIT_MS, "the first post");
    int n = post_until_dropped(&author, NULL, NULL, 5, ids);

    /* Read what got through, then resume after it as EventSource would. */
    for (;;) {
        ts_sse_item_t ev;
        ts_sse_kind_t k = ts_sse_next_event(s, &ev, 15000);
        cr_assert(k != TS_SSE_TIMEOUT, "the cut-off stream did not end");
        if (k == TS_SSE_END)
            break;
        if (strcmp(ev.type, "feed") == 0) {
            char post[24];
            ts_sse_data_id(&ev, post, sizeof(post));
            ts_feed_add(&g, ev.id, post, "");
        }
        ts_sse_item_clear(&ev);
    }
    ts_sse_close(s);
    s = ts_feed_resume_until(&g, srv.port, &slow, 1 + (size_t)n, SX_WAIT_MS,
                             "resuming after the cut");
    for (int i = 0; i < n; i++)
        cr_assert_str_eq(g.post[1 + i], ids[i], "post %d of %d: got %s, posted %s", i + 1, n,
                         g.post[1 + i], ids[i]);
    ts_sse_close(s);
    ts_feed_free(&g);
}

Test(sse_limits, max_streams_answers_503_beyond_the_limit)
{
    sx_use_fixture_redis();
    sx_server(&srv, (const char *const[]){"--max-streams", "3", "--heartbeat", "1", NULL});
    ts_user_t a, b;
    ts_register_all(srv.port, "max", &a, &b, NULL);
    ts_sse_t *s1 = ts_stream(srv.port, &a, NULL);
    ts_sse_t *s2 = ts_stream(srv.port, &a, NULL);
    ts_sse_t *s3 = ts_stream(srv.port, &b, NULL);
    cr_assert_eq(ts_metric(srv.port, "tidings_streams_open"), 3);

    ts_sse_t *s4 = ts_sse_open(srv.port, &(ts_sse_opts_t){.token = b.token}, TS_SSE_OPEN_MS);
    cr_assert_eq(s4->status, 503, "the 4th stream with --max-streams 3 answered %d", s4->status);
    char v[128];
    cr_assert(ts_sse_header(s4, "Retry-After", v, sizeof(v)), "the 503 has no Retry-After");
    cr_assert(ts_sse_header(s4, "Content-Type", v, sizeof(v)) &&
                  strncmp(v, "application/problem+json", 24) == 0,
              "the 503 is not a problem");
    json_t *problem = json_loads(s4->body, 0, NULL);
    cr_assert_eq(json_integer_value(json_object_get(problem, "status")), 503,
                 "the problem body is %s", s4->body);
    json_decref(problem);
    ts_sse_close(s4);
    /* Other requests are not limited. */
    json_decref(ts_call(srv.port, "GET", "/v1/timeline", a.token, NULL, 200));

    /* A stream that hangs up frees its place (noticed at the next heartbeat). */
    ts_sse_close(s1);
    uint64_t deadline = ts_now_ms() + 15000;
    for (;;) {
        s4 = ts_sse_open(srv.port, &(ts_sse_opts_t){.token = b.token}, TS_SSE_OPEN_MS);
        if (s4->status == 200)
            break;
        cr_assert_eq(s4->status, 503, "a stream request answered %d", s4->status);
        ts_sse_close(s4);
        cr_assert(ts_now_ms() < deadline, "no place freed 15 s after a stream hung up");
        ts_sleep_ms(100);
    }
    ts_sse_t *s5 = ts_sse_open(srv.port, &(ts_sse_opts_t){.token = a.token}, TS_SSE_OPEN_MS);
    cr_assert_eq(s5->status, 503, "the limit no longer holds: %d", s5->status);
    ts_sse_close(s5);
    ts_sse_close(s2);
    ts_sse_close(s3);
    ts_sse_close(s4);
}
