/* tests/sse/test_retention.c -- a user's event log outlives their last stream by
 * --stream-retention (an hour by default), apart from the grace (--stream-grace-ms) that
 * presence keeps: a client away for a while replays what it missed instead of a reset.
 *
 * What the server keeps is read from Redis (the log ev:{user}, presence online:{user}); what
 * a reconnect gets is read from the stream. Each post made while the reader is away is
 * awaited in the reader's log (or, once the log is gone, in the reader's timeline), so the
 * reconnect finds its fan-out done and a replay really comes from the log. */
#include "tests/sse/sx.h"

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>

TestSuite(sse_retention, .fini = sx_teardown, .timeout = SX_TIMEOUT);

static ts_server_t srv;

/* An integer reply of a command about user's keys, on the test's Redis (routed). */
static long long redis_int(const char *fmt, const ts_user_t *u)
{
    struct redisReply *r = ts_redis_command(sx_redis_url, fmt, u->id);
    cr_assert(r && r->type == REDIS_REPLY_INTEGER, "'%s' for user %s: %s", fmt, u->id,
              r && r->type == REDIS_REPLY_ERROR ? r->str : "no integer reply");
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

static void wait_no_streams(void)
{
    uint64_t deadline = ts_now_ms() + 20000;
    while (ts_metric(srv.port, "tidings_streams_open") > 0) {
        cr_assert(ts_now_ms() < deadline, "streams still open 20 s after the last hang-up");
        ts_sleep_ms(50);
    }
}

/* Whether u's log holds an entry "<kind> <post> …". */
static bool logged(const ts_user_t *u, const char *kind, const char *post)
{
    struct redisReply *r = ts_redis_command(sx_redis_url, "XRANGE ev:{%s} - +", u->id);
    cr_assert(r && r->type == REDIS_REPLY_ARRAY, "reading the log of %s", u->id);
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "%s %s ", kind, post);
    bool found = false;
    for (size_t i = 0; i < r->elements && !found; i++) {
        const struct redisReply *f = r->element[i]->element[1];
        found = f->elements == 2 && strncmp(f->element[1]->str, prefix, strlen(prefix)) == 0;
    }
    freeReplyObject(r);
    return found;
}

/* Posts as author and waits until the post is in reader's log. Returns its id in post. */
static void post_logged(const ts_user_t *author, const ts_user_t *reader, const char *text,
                        char post[24])
{
    ts_post(srv.port, author, text, post);
    uint64_t deadline = ts_now_ms() + SX_WAIT_MS;
    while (!logged(reader, "feed", post)) {
        cr_assert(ts_now_ms() < deadline, "post %s never reached the reader's log", post);
        ts_sleep_ms(20);
    }
}

/* Posts as author and waits until the post is first in reader's home timeline (its fan-out
 * is done; with no log, no event of it was kept). */
static void post_in_timeline(const ts_user_t *author, const ts_user_t *reader, const char *text,
                             char post[24])
{
    ts_post(srv.port, author, text, post);
    uint64_t deadline = ts_now_ms() + SX_WAIT_MS;
    for (bool there = false; !there;) {
        json_t *tl = ts_call(srv.port, "GET", "/v1/timeline?limit=1", reader->token, NULL, 200);
        there = strcmp(ts_str(json_array_get(json_object_get(tl, "items"), 0), "id"), post) == 0;
        json_decref(tl);
        cr_assert(there || ts_now_ms() < deadline, "post %s never reached the timeline", post);
        if (!there)
            ts_sleep_ms(20);
    }
}

/* Opens reader's stream after cursor and expects the posts (n of them) replayed in order,
 * with no reset before them. */
static void expect_replay(const ts_user_t *reader, const char *cursor, char posts[][24], size_t n,
                          const char *what)
{
    ts_sse_t *c = ts_stream(srv.port, reader, cursor);
    for (size_t i = 0; i < n; i++)
        sx_expect(c, "feed", posts[i], NULL, what); /* a reset first fails here, by its type */
    ts_sse_close(c);
}

Test(sse_retention, by_default_the_log_outlives_the_last_stream_by_an_hour_and_replays)
{
    ts_user_t reader, author; /* default retention and grace; heartbeats find the hang-up */
    const char *const flags[] = {"--heartbeat", "1", NULL};
    ts_sse_t *c = sx_reader_of(&srv, flags, "keep", &reader, &author);
    char first[24], cursor[64];
    ts_post(srv.port, &author, "seen before leaving", first);
    sx_expect(c, "feed", first, cursor, "the post before leaving");
    ts_sse_close(c);
    wait_no_streams();

    /* What Redis keeps now: the log for about the retention (an hour), presence for the grace
     * (five minutes by default). */
    long long log_ttl = redis_int("PTTL ev:{%s}", &reader);
    cr_expect(log_ttl > 20 * 60 * 1000 && log_ttl <= 3600 * 1000,
              "the closed stream's log expires in %lld ms, not within an hour and after 20 min",
              log_ttl);
    long long presence_ttl = redis_int("PTTL online:{%s}", &reader);
    cr_expect(presence_ttl > 0 && presence_ttl <= 300 * 1000,
              "presence expires in %lld ms, not within the grace", presence_ttl);

    char missed[2][24];
    post_logged(&author, &reader, "made while away (1)", missed[0]);
    post_logged(&author, &reader, "made while away (2)", missed[1]);
    expect_replay(&reader, cursor, missed, 2, "replayed after the absence");
}

Test(sse_retention, an_absence_past_the_grace_replays_and_past_the_retention_resets)
{
    /* Grace 1 s, retention 4 s: presence lapses long before the log does. */
    ts_user_t reader, author;
    const char *const flags[] = {
        "--stream-grace-ms", "1000", "--stream-retention", "4", "--heartbeat", "1", NULL};
    ts_sse_t *c = sx_reader_of(&srv, flags, "short", &reader, &author);
    char first[24], cursor[64];
    ts_post(srv.port, &author, "seen before leaving", first);
    sx_expect(c, "feed", first, cursor, "the post before leaving");
    ts_sse_close(c);
    wait_no_streams();

    /* Away for 2 s: past the grace (not present: no live message), within the retention. */
    ts_sleep_ms(1600);
    cr_expect_eq(redis_int("EXISTS online:{%s}", &reader), 0,
                 "still present 1.6 s after the last stream, with --stream-grace-ms 1000");
    char missed[1][24];
    post_logged(&author, &reader, "made after the grace", missed[0]);
    cr_expect_eq(redis_int("EXISTS ev:{%s}", &reader), 1, "the log is gone within the retention");
    expect_replay(&reader, cursor, missed, 1, "replayed after 2 s away");

    /* That reconnect renewed the log; away past the retention this time. */
    wait_no_streams();
    uint64_t deadline = ts_now_ms() + 15000;
    while (redis_int("EXISTS ev:{%s}", &reader) == 1) {
        cr_assert(ts_now_ms() < deadline, "the log outlived its 4 s retention by 10 s");
        ts_sleep_ms(100);
    }
    char lost[24];
    post_in_timeline(&author, &reader, "made after the retention", lost);
    c = ts_stream(srv.port, &reader, cursor);
    ts_sse_item_t ev;
    ts_sse_expect(c, "reset", &ev, SX_WAIT_MS, "resuming after the log expired");
    ts_sse_item_clear(&ev);
    ts_sse_close(c);
}

Test(sse_retention, an_absence_shorter_than_a_short_retention_replays)
{
    /* The brief case: --stream-retention 2 with a short grace; back within it. */
    ts_user_t reader, author;
    const char *const flags[] = {
        "--stream-grace-ms", "1000", "--stream-retention", "2", "--heartbeat", "1", NULL};
    ts_sse_t *c = sx_reader_of(&srv, flags, "brief", &reader, &author);
    char first[24], cursor[64];
    ts_post(srv.port, &author, "seen before leaving", first);
    sx_expect(c, "feed", first, cursor, "the post before leaving");
    ts_sse_close(c);
    char missed[1][24];
    post_logged(&author, &reader, "made while briefly away", missed[0]);
    expect_replay(&reader, cursor, missed, 1, "replayed after a short absence");
}
