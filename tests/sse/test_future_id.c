/* tests/sse/test_future_id.c -- a Last-Event-ID beyond the end of the user's log (from another
 * deployment, or from before Redis lost its data) is answered with a reset at the log's end,
 * then live events flow. Before, the stream resumed "after" it: every live event with a
 * smaller id was taken as already seen and silently dropped. Both forms of the id are
 * checked: the Last-Event-ID header and the last_event_id query parameter. */
#include "tests/sse/sx.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(sse_future_id, .fini = sx_teardown, .timeout = SX_TIMEOUT);

static ts_server_t srv;

/* How long a reset may take: it is the stream's first event. */
#define RESET_WAIT_MS 10000

/* The stream c, opened with a last id beyond the log, must start with a reset at an id below
 * it, then deliver a new post of author's. */
static void expect_reset_then_live(ts_sse_t *c, const char *beyond, const ts_user_t *author,
                                   const char *what)
{
    ts_sse_item_t ev;
    ts_sse_expect(c, "reset", &ev, RESET_WAIT_MS, what);
    cr_assert(ev.has_id && ts_sse_id_cmp(ev.id, beyond) < 0,
              "%s: the reset's id %s is not the log's end, below %s", what, ev.id, beyond);
    char reset_id[64], post[24], id[64];
    snprintf(reset_id, sizeof(reset_id), "%s", ev.id);
    ts_sse_item_clear(&ev);
    ts_post(srv.port, author, "after the reset", post);
    sx_expect(c, "feed", post, id, what);
    cr_assert_gt(ts_sse_id_cmp(id, reset_id), 0, "%s: the live event's id %s is not after %s", what,
                 id, reset_id);
}

Test(sse_future_id, a_last_event_id_beyond_the_log_gets_reset_then_live_events)
{
    ts_user_t reader, author;
    ts_sse_t *c = sx_reader_of(&srv, NULL, "future", &reader, &author);
    char first[24], last[64];
    ts_post(srv.port, &author, "the log's last event", first);
    sx_expect(c, "feed", first, last, "the first post");
    ts_sse_close(c); /* within the grace: the log stays, and the user counts as online */

    /* Far in the future, by the header. */
    const char *far = "99999999999999-0";
    c = ts_stream(srv.port, &reader, far);
    expect_reset_then_live(c, far, &author, "Last-Event-ID far beyond the log");
    ts_sse_close(c);

    /* Just past the log's end (the same millisecond, a later sequence), by the query. */
    char near[64], path[128];
    unsigned long long ms = 0, seq = 0;
    cr_assert_eq(sscanf(last, "%llu-%llu", &ms, &seq), 2, "event id %s", last);
    snprintf(near, sizeof(near), "%llu-%llu", ms + 60000, seq);
    snprintf(path, sizeof(path), "/v1/stream?last_event_id=%s", near);
    c = ts_stream_opts(srv.port, &(ts_sse_opts_t){.token = reader.token, .path = path});
    expect_reset_then_live(c, near, &author, "last_event_id a minute beyond the log");
    ts_sse_close(c);
}

Test(sse_future_id, a_last_event_id_at_the_logs_end_resumes_without_reset)
{
    /* The line's other side: the last id the log handed out is no future one. */
    ts_user_t reader, author;
    ts_sse_t *c = sx_reader_of(&srv, NULL, "atend", &reader, &author);
    char first[24], last[64], next[24];
    ts_post(srv.port, &author, "the log's last event", first);
    sx_expect(c, "feed", first, last, "the first post");
    ts_sse_close(c);
    c = ts_stream(srv.port, &reader, last);
    ts_post(srv.port, &author, "next", next);
    sx_expect(c, "feed", next, NULL, "the next post, with no reset before it");
    ts_sse_close(c);
}
