/* tests/sse/test_render_failure.c -- a stream never skips an event it failed to render.
 *
 * A bare `id:` says "gone" (the post deleted, the notification undone): the client moves its
 * Last-Event-ID past it for good. A Redis error while reading the event's subject is not
 * "gone": the stream must end without the id, so the client resumes before the event and
 * gets it once Redis answers again. The failing read is made deterministic by putting a key
 * of the wrong type where the subject is kept (the real one set aside in the same slot, so
 * this runs alike on a Redis Cluster), while the event waits in the reader's log. That
 * "gone" stays a bare id is test_events.c's a_feed_event_whose_post_is_gone_is_sent_as_a_bare_id. */
#include "tests/sse/sx.h"

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>

TestSuite(sse_render_failure, .fini = sx_teardown, .timeout = SX_TIMEOUT);

static ts_server_t srv;

static void redis_ok(const char *what, const char *fmt, const char *a, const char *b)
{
    struct redisReply *r = ts_redis_command(sx_redis_url, fmt, a, b);
    cr_assert(r && r->type != REDIS_REPLY_ERROR, "%s: %s", what, r ? r->str : "no reply");
    freeReplyObject(r);
}

/* Puts a string where key is kept, the real value aside (same hash tag: same slot). */
static void break_key(const char *key, char aside[96])
{
    snprintf(aside, 96, "%s:aside", key);
    redis_ok("setting the key aside", "RENAME %s %s", key, aside);
    redis_ok("putting a string in its place", "SET %s %s", key, "not-what-tidings-keeps-here");
}

static void mend_key(const char *key, const char *aside)
{
    redis_ok("putting the key back", "RENAME %s %s", aside, key);
}

/* Opens reader's stream after cursor, which must end (failing to render the event that
 * waits) without sending any event: no id, so the client's Last-Event-ID stays. */
static void expect_end_without_event(const ts_user_t *reader, const char *cursor, const char *what)
{
    ts_sse_t *c = ts_stream(srv.port, reader, cursor);
    ts_sse_item_t ev;
    ts_sse_kind_t k = ts_sse_next_event(c, &ev, SX_WAIT_MS);
    cr_assert(k != TS_SSE_TIMEOUT, "%s: the stream neither ended nor sent anything", what);
    cr_assert(k == TS_SSE_END,
              "%s: the stream sent an event (id %s, type '%s', %s) instead of ending; a bare id "
              "moves the client past an event it never got",
              what, ev.id, ev.type, ev.has_data ? "with data" : "no data");
    cr_assert_str_eq(c->last_id, "", "%s: the stream sent id %s before ending", what, c->last_id);
    ts_sse_close(c);
}

Test(sse_render_failure, a_post_redis_cannot_read_ends_the_stream_and_comes_on_resume)
{
    ts_user_t reader, author;
    ts_sse_t *c = sx_reader_of(&srv, NULL, "rfpost", &reader, &author);
    ts_sse_t *watch = ts_stream(srv.port, &reader, NULL); /* another device: tells when logged */
    char first[24], pending[24], cursor[64];
    ts_post(srv.port, &author, "before the hang-up", first);
    sx_expect(c, "feed", first, cursor, "the first post");
    sx_expect(watch, "feed", first, NULL, "the first post (watcher)");
    ts_sse_close(c);
    ts_post(srv.port, &author, "waiting in the log", pending);
    sx_expect(watch, "feed", pending, NULL, "the pending post (watcher)");
    ts_sse_close(watch);

    char key[64], aside[96];
    snprintf(key, sizeof(key), "post:{%s}", pending);
    break_key(key, aside);
    expect_end_without_event(&reader, cursor, "resuming while the post cannot be read");
    expect_end_without_event(&reader, cursor, "resuming again, still unreadable");
    mend_key(key, aside);

    c = ts_stream(srv.port, &reader, cursor);
    sx_expect(c, "feed", pending, NULL, "the post, once Redis can read it");
    ts_sse_close(c);
}

Test(sse_render_failure, a_notification_redis_cannot_read_ends_the_stream_and_comes_on_resume)
{
    ts_user_t reader, author;
    ts_sse_t *c = sx_reader_of(&srv, NULL, "rfnote", &reader, &author);
    ts_sse_t *watch = ts_stream(srv.port, &reader, NULL);
    char mine[24], cursor[64];
    ts_post(srv.port, &reader, "like this", mine);
    sx_expect(c, "feed", mine, cursor, "the reader's own post");
    sx_expect(watch, "feed", mine, NULL, "the reader's own post (watcher)");
    ts_sse_close(c);
    ts_like(srv.port, &author, mine);
    sx_expect(watch, "notification", NULL, NULL, "the like (watcher)");
    ts_sse_close(watch);

    /* The notifications index (read first) of the wrong type. */
    char key[64], aside[96];
    snprintf(key, sizeof(key), "nt:{%s}", reader.id);
    break_key(key, aside);
    expect_end_without_event(&reader, cursor, "resuming while the notification cannot be read");
    mend_key(key, aside);

    c = ts_stream(srv.port, &reader, cursor);
    ts_sse_item_t ev;
    ts_sse_expect(c, "notification", &ev, SX_WAIT_MS, "the like, once Redis can read it");
    json_t *data = ts_sse_data(&ev);
    cr_assert_str_eq(ts_str(data, "type"), "like", "the notification is not the like");
    json_decref(data);
    ts_sse_item_clear(&ev);
    ts_sse_close(c);
}
