/* tests/sse/test_events.c -- what a stream carries: feed, notification and delete events,
 * each rendered as the REST API shows its subject, on every stream a user holds. */
#include "tests/sse/sx.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(sse_events, .fini = sx_teardown, .timeout = SX_TIMEOUT);

static ts_server_t srv;

/* An event's data must equal what the API shows (what names the API's side). */
static void expect_same(const json_t *data, const json_t *api, const char *what)
{
    char *a = json_dumps(data, JSON_COMPACT | JSON_SORT_KEYS);
    char *b = json_dumps(api, JSON_COMPACT | JSON_SORT_KEYS);
    cr_assert(json_equal(data, api), "the event's data differs from %s:\nevent: %s\napi:   %s",
              what, a, b);
    free(a);
    free(b);
}

/* The item of the caller's timeline whose id is post (new reference), waiting for it. */
static json_t *timeline_entry(int port, const ts_user_t *u, const char *post)
{
    uint64_t deadline = ts_now_ms() + SX_WAIT_MS;
    for (;;) {
        json_t *tl = ts_call(port, "GET", "/v1/timeline?limit=100", u->token, NULL, 200);
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(tl, "items"), i, v)
        {
            if (strcmp(ts_str(v, "id"), post) == 0) {
                json_t *copy = json_deep_copy(v);
                json_decref(tl);
                return copy;
            }
        }
        json_decref(tl);
        cr_assert(ts_now_ms() < deadline, "post %s never reached %s's timeline", post, u->handle);
        ts_sleep_ms(25);
    }
}

Test(sse_events, feed_event_is_the_post_as_the_timeline_shows_it)
{
    ts_user_t reader, author;
    ts_sse_t *c = sx_reader_of(&srv, NULL, "feed", &reader, &author);

    char post[24];
    ts_post(srv.port, &author, "hello from the author, @nobody_here", post);
    ts_sse_item_t ev;
    ts_sse_expect(c, "feed", &ev, SX_WAIT_MS, "a followed author's post");
    json_t *data = ts_sse_data(&ev);
    cr_assert_str_eq(ts_str(data, "id"), post, "the feed event is about post %s, not %s",
                     ts_str(data, "id"), post);
    cr_assert_str_eq(ts_str(data, "text"), "hello from the author, @nobody_here");
    cr_assert_str_eq(ts_str(json_object_get(data, "author"), "id"), author.id);
    cr_assert_str_eq(ts_str(json_object_get(data, "author"), "handle"), author.handle);
    json_t *entry = timeline_entry(srv.port, &reader, post);
    expect_same(data, entry, "the timeline entry");
    json_decref(entry);
    json_decref(data);
    ts_sse_item_clear(&ev);

    /* The author sees their own posts at home too: the reader's own post is a feed event. */
    ts_post(srv.port, &reader, "my own words", post);
    sx_expect(c, "feed", post, NULL, "the reader's own post");
    cr_assert(!c->framing_error, "chunked framing error: %s", c->framing_what);
    ts_sse_close(c);
}

Test(sse_events, notification_event_is_the_notification_as_the_api_shows_it)
{
    sx_use_private_redis(); /* events are ordered: no other binary's engine may touch its jobs */
    sx_server(&srv, NULL);
    ts_user_t owner, fan;
    ts_register_all(srv.port, "ntf", &owner, &fan, NULL);
    ts_sse_t *c = ts_stream(srv.port, &owner, NULL);

    ts_follow(srv.port, &fan, &owner);
    ts_sse_item_t ev;
    ts_sse_expect(c, "notification", &ev, SX_WAIT_MS, "a new follower");
    json_t *data = ts_sse_data(&ev);
    json_t *listed = sx_newest_notification(srv.port, &owner);
    cr_assert_str_eq(ts_str(data, "type"), "follow", "%s", ev.data);
    expect_same(data, listed, "GET /v1/notifications");
    cr_assert_str_eq(ts_str(json_array_get(json_object_get(data, "actors"), 0), "id"), fan.id);
    json_decref(listed);
    json_decref(data);
    ts_sse_item_clear(&ev);

    char post[24];
    ts_post(srv.port, &owner, "like this", post);
    sx_expect(c, "feed", post, NULL, "the owner's own post");
    ts_like(srv.port, &fan, post);
    ts_sse_expect(c, "notification", &ev, SX_WAIT_MS, "a like of the owner's post");
    data = ts_sse_data(&ev);
    listed = sx_newest_notification(srv.port, &owner);
    cr_assert_str_eq(ts_str(data, "type"), "like", "%s", ev.data);
    cr_assert_str_eq(ts_str(json_object_get(data, "post"), "id"), post, "%s", ev.data);
    expect_same(data, listed, "GET /v1/notifications");
    json_decref(listed);
    json_decref(data);
    ts_sse_item_clear(&ev);
    cr_assert_eq(c->unknown_fields, 0, "unknown SSE line: %s", c->unknown_line);
    ts_sse_close(c);
}

Test(sse_events, delete_event_names_the_retracted_post)
{
    ts_user_t reader, author;
    ts_sse_t *c = sx_reader_of(&srv, NULL, "del", &reader, &author);

    char post[24], feed_id[64];
    ts_post(srv.port, &author, "soon gone", post);
    sx_expect(c, "feed", post, feed_id, "the post before its deletion");

    ts_delete_post(srv.port, &author, post);
    ts_sse_item_t ev;
    ts_sse_expect(c, "delete", &ev, SX_WAIT_MS, "the deletion");
    json_t *data = ts_sse_data(&ev);
    json_t *want = json_pack("{s:s}", "id", post);
    expect_same(data, want, "{\"id\": <the post>}");
    cr_assert_gt(ts_sse_id_cmp(ev.id, feed_id), 0, "the delete event's id %s is not after %s",
                 ev.id, feed_id);
    json_decref(want);
    json_decref(data);
    ts_sse_item_clear(&ev);
    ts_sse_close(c);
}

/* One user's event sequence as (event id, type, subject id) lines. */
static void read_n(ts_sse_t *c, int n, char (*out)[160], const char *what)
{
    for (int i = 0; i < n; i++) {
        ts_sse_item_t ev;
        char label[96];
        snprintf(label, sizeof(label), "%s, event %d of %d", what, i + 1, n);
        ts_sse_expect(c, NULL, &ev, SX_WAIT_MS, label);
        char subject[64];
        if (strcmp(ev.type, "notification") == 0)
            snprintf(subject, sizeof(subject), "%s", "notification");
        else
            ts_sse_data_id(&ev, subject, sizeof(subject));
        snprintf(out[i], sizeof(out[i]), "%s %s %s", ev.id, ev.type, subject);
        ts_sse_item_clear(&ev);
    }
}

Test(sse_events, every_stream_of_a_user_receives_every_event)
{
    sx_use_private_redis();
    sx_server(&srv, NULL);
    ts_user_t user, author, fan;
    ts_register_all(srv.port, "two", &user, &author, &fan, NULL);
    ts_follow(srv.port, &user, &author);
    ts_sse_t *phone = ts_stream(srv.port, &user, NULL);
    ts_sse_t *laptop = ts_stream(srv.port, &user, NULL);
    char query[256];
    snprintf(query, sizeof(query), "/v1/stream?access_token=%s", user.token);
    ts_sse_opts_t o = {.path = query};
    ts_sse_t *browser = ts_stream_opts(srv.port, &o);

    enum { POSTS = 10, EVENTS = POSTS + 2 };
    char posts[POSTS][24];
    for (int i = 0; i < POSTS; i++) {
        char text[32];
        snprintf(text, sizeof(text), "post %d", i);
        ts_post(srv.port, &author, text, posts[i]);
    }
    static char seq[3][EVENTS][160];
    read_n(phone, POSTS, seq[0], "first stream");
    read_n(laptop, POSTS, seq[1], "second stream");
    read_n(browser, POSTS, seq[2], "third stream (access_token)");
    ts_follow(srv.port, &fan, &user);
    ts_delete_post(srv.port, &author, posts[3]);
    read_n(phone, 2, seq[0] + POSTS, "first stream");
    read_n(laptop, 2, seq[1] + POSTS, "second stream");
    read_n(browser, 2, seq[2] + POSTS, "third stream (access_token)");

    for (int i = 0; i < EVENTS; i++) {
        cr_assert_str_eq(seq[1][i], seq[0][i], "event %d differs between streams: '%s' / '%s'", i,
                         seq[0][i], seq[1][i]);
        cr_assert_str_eq(seq[2][i], seq[0][i], "event %d differs between streams: '%s' / '%s'", i,
                         seq[0][i], seq[2][i]);
        if (i > 0)
            cr_assert_gt(ts_sse_id_cmp(seq[0][i], seq[0][i - 1]), 0,
                         "event ids do not increase: '%s' then '%s'", seq[0][i - 1], seq[0][i]);
    }
    for (int p = 0; p < POSTS; p++) {
        int n = 0;
        for (int i = 0; i < POSTS; i++) {
            char want[320];
            snprintf(want, sizeof(want), " feed %s", posts[p]);
            n += strstr(seq[0][i], want) != NULL;
        }
        cr_assert_eq(n, 1, "post %s came %d times", posts[p], n);
    }
    int deletes = 0, notes = 0;
    for (int i = POSTS; i < EVENTS; i++) {
        char want[320];
        snprintf(want, sizeof(want), " delete %s", posts[3]);
        deletes += strstr(seq[0][i], want) != NULL;
        notes += strstr(seq[0][i], " notification ") != NULL;
    }
    cr_assert(deletes == 1 && notes == 1, "expected one delete and one notification, got: %s | %s",
              seq[0][POSTS], seq[0][POSTS + 1]);
    ts_sse_close(phone);
    ts_sse_close(laptop);
    ts_sse_close(browser);
}

Test(sse_events, a_feed_event_whose_post_is_gone_is_sent_as_a_bare_id)
{
    /* openapi.yaml: an event whose subject is gone by the time it is sent is a bare `id:`
     * line. Here the post is deleted while the reader is away; another follower's stream
     * rendered it a moment before (so a render cache would still hold it). */
    sx_use_private_redis();
    sx_server(&srv, NULL);
    ts_user_t reader, other, author;
    ts_register_all(srv.port, "gone", &reader, &other, &author, NULL);
    ts_follow(srv.port, &reader, &author);
    ts_follow(srv.port, &other, &author);
    ts_sse_t *c = ts_stream(srv.port, &reader, NULL);
    ts_sse_t *w = ts_stream(srv.port, &other, NULL);
    char first[24], gone[24], cursor[64];
    ts_post(srv.port, &author, "seen by both", first);
    sx_expect(c, "feed", first, cursor, "the first post");
    sx_expect(w, "feed", first, NULL, "the first post (other follower)");
    ts_sse_close(c); /* the reader goes away (within the grace) */

    ts_post(srv.port, &author, "soon deleted", gone);
    sx_expect(w, "feed", gone, NULL, "the doomed post (other follower)");
    ts_delete_post(srv.port, &author, gone);
    sx_expect(w, "delete", gone, NULL, "the deletion (other follower)");

    c = ts_stream(srv.port, &reader, cursor);
    ts_sse_item_t ev;
    ts_sse_expect(c, NULL, &ev, SX_WAIT_MS, "the replayed feed event of the deleted post");
    cr_assert(!ev.has_data && ev.type[0] == '\0',
              "the feed event of deleted post %s was sent with its content (type '%s', data "
              "%.300s) instead of a bare id",
              gone, ev.type, ev.data ? ev.data : "");
    ts_sse_item_clear(&ev);
    sx_expect(c, "delete", gone, NULL, "the replayed deletion");
    ts_sse_close(c);
    ts_sse_close(w);
}
