/* tests/sse/test_reset_payload.c -- a `reset` says what to refetch (openapi.yaml's Reset):
 * `timeline` when the home timeline has an entry newer than the last event the client saw,
 * `notifications` likewise for the newest notification group, both when that cannot be told,
 * and `newest` with the ids GET /v1/timeline and GET /v1/notifications show first.
 *
 * The reader sees a follow notice and a post (its cursor), then goes away past a 1 s
 * retention, so its log lapses and the reconnect gets a reset on connect; what happens while
 * it is away decides the fields. A reset in the middle of a stream (the log's catch-up finds
 * the cursor's entry gone) and a Redis error while computing the fields are covered too. */
#include "tests/sse/sx.h"

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>

TestSuite(sse_reset_payload, .fini = sx_teardown, .timeout = SX_TIMEOUT);

static ts_server_t srv;

/* A short retention, so that an absence of a second or two loses the log. */
static const char *const short_keep[] = {
    "--stream-retention", "1", "--stream-grace-ms", "1000", "--heartbeat", "1", NULL};

typedef struct scene_s {
    ts_user_t reader, author;
    char mine[24];   /* the reader's own post, made before the cursor */
    char seen[24];   /* the author's post the reader saw last */
    char cursor[64]; /* the id of the last event the reader saw */
} scene_t;

static long long redis_int(const char *fmt, const char *a)
{
    struct redisReply *r = ts_redis_command(sx_redis_url, fmt, a);
    cr_assert(r && r->type == REDIS_REPLY_INTEGER, "'%s' %s: %s", fmt, a,
              r && r->type == REDIS_REPLY_ERROR ? r->str : "no integer reply");
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

static void redis_ok(const char *fmt, const char *a, const char *b)
{
    struct redisReply *r = ts_redis_command(sx_redis_url, fmt, a, b);
    cr_assert(r && r->type != REDIS_REPLY_ERROR, "'%s': %s", fmt, r ? r->str : "no reply");
    freeReplyObject(r);
}

/* The reader (following the author) posts, gets a follow notice from the author, then the
 * author's post; the stream is then closed and, unless keep_log, the log is waited out. */
static void scene(scene_t *s, const char *const *flags, const char *prefix, bool keep_log)
{
    ts_sse_t *c = sx_reader_of(&srv, flags, prefix, &s->reader, &s->author);
    ts_post(srv.port, &s->reader, "the reader's own", s->mine);
    sx_expect(c, "feed", s->mine, NULL, "the reader's own post");
    ts_follow(srv.port, &s->author, &s->reader);
    sx_expect(c, "notification", NULL, NULL, "the author's follow");
    ts_post(srv.port, &s->author, "seen before leaving", s->seen);
    sx_expect(c, "feed", s->seen, s->cursor, "the post before leaving");
    ts_sse_close(c);
    if (keep_log)
        return;
    uint64_t deadline = ts_now_ms() + 20000;
    while (redis_int("EXISTS ev:{%s}", s->reader.id) == 1) {
        cr_assert(ts_now_ms() < deadline, "the log outlived its 1 s retention by 20 s");
        ts_sleep_ms(50);
    }
}

/* The id of the first item of GET path as u, or "" when the list is empty. */
static void first_id(const ts_user_t *u, const char *path, char id[24])
{
    json_t *list = ts_call(srv.port, "GET", path, u->token, NULL, 200);
    snprintf(id, 24, "%s", ts_str(json_array_get(json_object_get(list, "items"), 0), "id"));
    json_decref(list);
}

/* Waits until GET path's first item as u has id want. */
static void wait_first(const ts_user_t *u, const char *path, const char *want)
{
    uint64_t deadline = ts_now_ms() + SX_WAIT_MS;
    for (char id[24] = ""; strcmp(id, want) != 0;) {
        cr_assert(ts_now_ms() < deadline, "%s never showed %s first", path, want);
        first_id(u, path, id);
        if (strcmp(id, want) != 0)
            ts_sleep_ms(20);
    }
}

/* Waits until the newest notification group is of type (its activity is the author's). */
static void wait_notification(const ts_user_t *u, const char *type)
{
    uint64_t deadline = ts_now_ms() + SX_WAIT_MS;
    for (bool there = false; !there;) {
        json_t *n = sx_newest_notification(srv.port, u);
        there = n && strcmp(ts_str(n, "type"), type) == 0;
        json_decref(n);
        cr_assert(there || ts_now_ms() < deadline, "no %s notification came", type);
        if (!there)
            ts_sleep_ms(20);
    }
}

/* The string at data.newest.<which>, or "" for null. */
static const char *newest(json_t *data, const char *which)
{
    json_t *v = json_object_get(json_object_get(data, "newest"), which);
    cr_assert(json_is_string(v) || json_is_null(v), "newest.%s is neither an id nor null", which);
    return json_is_string(v) ? json_string_value(v) : "";
}

/* The stream's next event must be a reset whose data says timeline and notifications, with
 * newest ids equal to the first items of GET /v1/timeline and GET /v1/notifications. */
static void expect_reset(ts_sse_t *c, const ts_user_t *u, bool timeline, bool notifications,
                         const char *what)
{
    ts_sse_item_t ev;
    ts_sse_expect(c, "reset", &ev, SX_WAIT_MS, what);
    json_t *data = ts_sse_data(&ev);
    cr_assert(json_is_object(data), "%s: the reset's data is not an object: %s", what, ev.data);
    cr_assert(json_is_string(json_object_get(data, "reason")), "%s: no reason: %s", what, ev.data);
    cr_assert(json_is_boolean(json_object_get(data, "timeline")) &&
                  json_is_boolean(json_object_get(data, "notifications")),
              "%s: timeline and notifications must be booleans: %s", what, ev.data);
    cr_expect_eq(json_is_true(json_object_get(data, "timeline")), timeline,
                 "%s: timeline should be %s: %s", what, timeline ? "true" : "false", ev.data);
    cr_expect_eq(json_is_true(json_object_get(data, "notifications")), notifications,
                 "%s: notifications should be %s: %s", what, notifications ? "true" : "false",
                 ev.data);
    char tl[24], nt[24];
    first_id(u, "/v1/timeline?limit=1", tl);
    first_id(u, "/v1/notifications?limit=1", nt);
    cr_expect_str_eq(newest(data, "timeline"), tl,
                     "%s: newest.timeline is not GET /v1/timeline's "
                     "first item: %s",
                     what, ev.data);
    cr_expect_str_eq(newest(data, "notification"), nt,
                     "%s: newest.notification is not GET /v1/notifications' first item: %s", what,
                     ev.data);
    json_decref(data);
    ts_sse_item_clear(&ev);
}

Test(sse_reset_payload, only_posts_missed_says_timeline)
{
    scene_t s;
    scene(&s, short_keep, "rsposts", false);
    char missed[24];
    ts_post(srv.port, &s.author, "made while away", missed);
    wait_first(&s.reader, "/v1/timeline?limit=1", missed);
    ts_sse_t *c = ts_stream(srv.port, &s.reader, s.cursor);
    expect_reset(c, &s.reader, true, false, "only a post missed");
    ts_sse_close(c);
}

Test(sse_reset_payload, only_a_notification_missed_says_notifications)
{
    scene_t s;
    scene(&s, short_keep, "rsnotice", false);
    ts_like(srv.port, &s.author, s.mine);
    wait_notification(&s.reader, "like");
    ts_sse_t *c = ts_stream(srv.port, &s.reader, s.cursor);
    expect_reset(c, &s.reader, false, true, "only a like missed");
    ts_sse_close(c);
}

Test(sse_reset_payload, both_missed_says_both_and_nothing_missed_says_neither)
{
    scene_t s;
    scene(&s, short_keep, "rsboth", false);
    /* Nothing happened while away: the log is gone all the same. */
    ts_sse_t *c = ts_stream(srv.port, &s.reader, s.cursor);
    expect_reset(c, &s.reader, false, false, "nothing missed");
    ts_sse_close(c);

    uint64_t deadline = ts_now_ms() + 20000;
    while (redis_int("EXISTS ev:{%s}", s.reader.id) == 1) {
        cr_assert(ts_now_ms() < deadline, "the log outlived its 1 s retention by 20 s");
        ts_sleep_ms(50);
    }
    char missed[24];
    ts_post(srv.port, &s.author, "made while away", missed);
    ts_like(srv.port, &s.author, s.mine);
    wait_first(&s.reader, "/v1/timeline?limit=1", missed);
    wait_notification(&s.reader, "like");
    c = ts_stream(srv.port, &s.reader, s.cursor);
    expect_reset(c, &s.reader, true, true, "a post and a like missed");
    ts_sse_close(c);
}

Test(sse_reset_payload, a_last_event_id_from_the_future_says_refetch_both)
{
    scene_t s;
    scene(&s, NULL, "rsfuture", true); /* the log stays: the id is beyond it */
    ts_sse_t *c = ts_stream(srv.port, &s.reader, "99999999999999-0");
    expect_reset(c, &s.reader, true, true, "a Last-Event-ID from the future");
    ts_sse_close(c);
}

Test(sse_reset_payload, a_reset_from_the_logs_catch_up_says_what_was_missed)
{
    /* The log stays (default retention), but the cursor's own entry is gone from it (as when
     * Redis loses its newest entries): the catch-up after the cursor finds the hole and the
     * stream goes on from the log's end with a reset. */
    scene_t s;
    scene(&s, NULL, "rscatch", true);
    char missed[24];
    ts_post(srv.port, &s.author, "made while away", missed);
    wait_first(&s.reader, "/v1/timeline?limit=1", missed);
    uint64_t deadline = ts_now_ms() + SX_WAIT_MS;
    while (redis_int("XLEN ev:{%s}", s.reader.id) < 1 ||
           redis_int("EXISTS ev:{%s}", s.reader.id) == 0) {
        cr_assert(ts_now_ms() < deadline, "the reader's log is gone");
        ts_sleep_ms(20);
    }
    char key[48];
    snprintf(key, sizeof(key), "ev:{%s}", s.reader.id);
    redis_ok("XDEL %s %s", key, s.cursor);
    ts_sse_t *c = ts_stream(srv.port, &s.reader, s.cursor);
    expect_reset(c, &s.reader, true, false, "a hole at the cursor");
    ts_sse_close(c);
}

Test(sse_reset_payload, a_redis_error_ends_the_stream_before_the_reset_and_the_resume_gets_it)
{
    scene_t s;
    scene(&s, short_keep, "rserror", false);
    char missed[24];
    ts_post(srv.port, &s.author, "made while away", missed);
    wait_first(&s.reader, "/v1/timeline?limit=1", missed);
    /* The timeline cannot be read: a string where it is kept (the real one aside, same slot). */
    char key[48], aside[64];
    snprintf(key, sizeof(key), "tl:{%s}", s.reader.id);
    snprintf(aside, sizeof(aside), "%s:aside", key);
    redis_ok("RENAME %s %s", key, aside);
    redis_ok("SET %s %s", key, "not-a-timeline");
    ts_sse_t *c = ts_stream(srv.port, &s.reader, s.cursor);
    ts_sse_item_t ev = {0};
    ts_sse_kind_t k = ts_sse_next_event(c, &ev, SX_WAIT_MS);
    cr_assert_eq(k, TS_SSE_END, "the stream sent an event (type '%s', %s) instead of ending",
                 ev.type, ev.data ? ev.data : "no data");
    cr_assert_str_eq(c->last_id, "", "the stream sent id %s before ending", c->last_id);
    ts_sse_close(c);
    redis_ok("RENAME %s %s", aside, key);
    /* The client resumes from the same cursor: its events are still missed, so it still gets
     * a reset, with the fields (the log was made again meanwhile: the catch-up finds that). */
    c = ts_stream(srv.port, &s.reader, s.cursor);
    expect_reset(c, &s.reader, true, false, "resuming once Redis reads the timeline");
    ts_sse_close(c);
}
