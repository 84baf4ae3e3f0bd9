/* tests/sse/test_resume.c -- reconnecting with Last-Event-ID: replay without gap or duplicate
 * (also while posts keep arriving), a reset when the cursor is older than what the server
 * kept (past --stream-retention, or trimmed from the capped log), and 400 for ids the server
 * never sends. */
#include "tests/sse/sx.h"

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

TestSuite(sse_resume, .fini = sx_teardown, .timeout = SX_TIMEOUT);

static ts_server_t srv;

/* ---- a writer that keeps posting ---------------------------------------------------------- */

#define WRITER_MAX 3000

typedef struct writer_s {
    int port;
    char token[128];
    atomic_bool stop;
    atomic_size_t n;
    char ids[WRITER_MAX][24];
    int failures, last_status;
} writer_t;

static void *write_loop(void *arg)
{
    writer_t *w = arg;
    while (!atomic_load(&w->stop) && atomic_load(&w->n) < WRITER_MAX) {
        char text[48], id[24];
        snprintf(text, sizeof(text), "under load %zu", atomic_load(&w->n));
        ts_resp_t r;
        int status = ts_post_raw(w->port, w->token, text, 15000, &r) == 0 ? r.status : 0;
        json_t *j = ts_resp_json(&r);
        snprintf(id, sizeof(id), "%s", ts_str(j, "id"));
        json_decref(j);
        ts_resp_free(&r);
        if (status != 202 || !id[0]) {
            w->failures++;
            w->last_status = status;
            ts_sleep_ms(20);
            continue;
        }
        size_t i = atomic_load(&w->n);
        memcpy(w->ids[i], id, sizeof(w->ids[i]));
        atomic_store(&w->n, i + 1);
        ts_sleep_ms(2);
    }
    return NULL;
}

static unsigned rnd(unsigned below)
{
    unsigned v = 0;
    cr_assert(getrandom(&v, sizeof(v), 0) == (ssize_t)sizeof(v));
    return v % below;
}

/* Opens the reader's stream after last: by header, by ?last_event_id=, or by both. */
static ts_sse_t *reopen(const ts_user_t *u, const char *last, int how)
{
    char path[256];
    snprintf(path, sizeof(path), "/v1/stream?last_event_id=%s", last);
    ts_sse_opts_t o = {.token = u->token};
    if (how % 3 != 1)
        o.last_event_id = last;
    if (how % 3 != 0)
        o.path = path;
    return ts_stream_opts(srv.port, &o);
}

Test(sse_resume, replay_while_posts_keep_arriving_has_no_gap_and_no_duplicate)
{
    ts_user_t reader, author;
    const char *const flags[] = {"--heartbeat", "1", NULL};
    ts_sse_t *c = sx_reader_of(&srv, flags, "load", &reader, &author);

    static writer_t w;
    memset(&w, 0, sizeof(w));
    w.port = srv.port;
    snprintf(w.token, sizeof(w.token), "%s", author.token);
    pthread_t th;
    cr_assert(pthread_create(&th, NULL, write_loop, &w) == 0);

    ts_feed_t g = {0};
    enum { CYCLES = 30 };
    for (int cycle = 0; cycle < CYCLES; cycle++) {
        unsigned k = 1 + rnd(8);
        for (unsigned i = 0; i < k; i++)
            ts_feed_read(c, &g, SX_WAIT_MS, "a post under load");
        cr_assert_eq(c->unknown_fields, 0, "unknown SSE line: %s", c->unknown_line);
        ts_sse_close(c); /* hang up mid-stream, events in flight */
        ts_sleep_ms((int)rnd(40));
        c = reopen(&reader, g.event[g.n - 1], cycle);
    }
    atomic_store(&w.stop, true);
    pthread_join(th, NULL);
    size_t posted = atomic_load(&w.n);
    cr_assert_eq(w.failures, 0, "%d posts failed (last status %d)", w.failures, w.last_status);
    cr_assert_geq(posted, (size_t)CYCLES, "the writer made only %zu posts", posted);

    /* Everything posted arrives, and then nothing more. */
    while (g.n < posted)
        ts_feed_read(c, &g, SX_WAIT_MS, "the rest of the posts");
    ts_sse_item_t ev;
    ts_sse_kind_t extra = ts_sse_next_event(c, &ev, 1500);
    cr_assert_eq(extra, TS_SSE_TIMEOUT,
                 "an event beyond the %zu posted: id %s, type %s, data %.200s", posted, ev.id,
                 ev.type, ev.data ? ev.data : "");
    ts_sse_item_clear(&ev);

    for (size_t i = 0; i < posted; i++) {
        size_t times = ts_feed_count(&g, w.ids[i]);
        cr_assert_eq(times, 1, "post %zu of %zu (%s) was received %zu times", i + 1, posted,
                     w.ids[i], times);
    }
    cr_assert_eq(g.n, posted, "received %zu events for %zu posts", g.n, posted);
    ts_sse_close(c);
    ts_feed_free(&g);
}

Test(sse_resume, reconnecting_within_the_grace_replays_what_was_missed)
{
    ts_user_t reader, author;
    ts_sse_t *c = sx_reader_of(&srv, NULL, "grace", &reader, &author);
    ts_sse_t *watch = ts_stream(srv.port, &reader, NULL); /* another device; tells when logged */
    ts_feed_t g = {0}, wg = {0};
    char post[24];
    ts_post(srv.port, &author, "before the hang-up", post);
    ts_feed_read(c, &g, SX_WAIT_MS, "the first post");
    ts_feed_read(watch, &wg, SX_WAIT_MS, "the first post (watcher)");
    ts_sse_close(c);

    enum { MISSED = 5 };
    char missed[MISSED][24];
    for (int i = 0; i < MISSED; i++) {
        char text[32];
        snprintf(text, sizeof(text), "while away %d", i);
        ts_post(srv.port, &author, text, missed[i]);
    }
    for (int i = 0; i < MISSED; i++)
        ts_feed_read(watch, &wg, SX_WAIT_MS, "a missed post (watcher)");
    double replayed = ts_metric(srv.port, "tidings_stream_events_replayed_total");

    /* Every missed event, once, in log order: the watcher saw the same log. */
    c = ts_stream(srv.port, &reader, g.event[0]);
    for (int i = 0; i < MISSED; i++)
        ts_feed_read(c, &g, SX_WAIT_MS, "a replayed post");
    for (int i = 0; i < MISSED; i++)
        cr_assert(strcmp(g.event[i + 1], wg.event[i + 1]) == 0 &&
                      strcmp(g.post[i + 1], wg.post[i + 1]) == 0,
                  "replayed event %d is %s (post %s); the log has %s (post %s)", i, g.event[i + 1],
                  g.post[i + 1], wg.event[i + 1], wg.post[i + 1]);
    cr_assert_geq(ts_metric(srv.port, "tidings_stream_events_replayed_total") - replayed, MISSED,
                  "tidings_stream_events_replayed_total did not count the replay");

    /* Then live again, with no seam. */
    ts_post(srv.port, &author, "after the return", post);
    ts_feed_read(c, &g, SX_WAIT_MS, "a live post after the replay");
    cr_assert_str_eq(g.post[g.n - 1], post);
    ts_sse_close(c);
    ts_sse_close(watch);
    ts_feed_free(&g);
    ts_feed_free(&wg);
}

/* Posts n posts as author, and waits until the watcher stream has them all (so they are in
 * the log). */
static void post_many(const ts_user_t *author, int n, ts_sse_t *watch, ts_feed_t *wg,
                      char *last_post)
{
    for (int i = 0; i < n; i++) {
        char text[32];
        snprintf(text, sizeof(text), "many %d", i);
        ts_post(srv.port, author, text, last_post);
    }
    for (int i = 0; i < n; i++)
        ts_feed_read(watch, wg, SX_WAIT_MS, "a post (watcher)");
}

Test(sse_resume, a_long_absence_within_the_log_replays_every_event)
{
    /* 700 events: under the log's cap (1,000) and the timeline's (800), so the design's
     * retention window holds them all; more than one catch-up batch, and more than a
     * default --stream-buffer (256 KiB / 512 = 512 events) holds at once. */
    enum { MISSED = 700 };
    ts_user_t reader, author;
    ts_sse_t *c = sx_reader_of(&srv, NULL, "long", &reader, &author);
    ts_sse_t *watch = ts_stream(srv.port, &reader, NULL);
    ts_feed_t g = {0}, wg = {0};
    char post[24];
    ts_post(srv.port, &author, "before a long absence", post);
    ts_feed_read(c, &g, SX_WAIT_MS, "the first post");
    ts_feed_read(watch, &wg, SX_WAIT_MS, "the first post (watcher)");
    ts_sse_close(c);
    post_many(&author, MISSED, watch, &wg, post);

    c = ts_feed_resume_until(&g, srv.port, &reader, 1 + MISSED, SX_WAIT_MS, "a long absence");
    for (size_t i = 0; i < wg.n; i++)
        cr_assert_str_eq(g.event[i], wg.event[i], "replayed event %zu differs from the log", i);
    ts_post(srv.port, &author, "back", post);
    ts_feed_read(c, &g, SX_WAIT_MS, "a live post after the replay");
    ts_sse_close(c);
    ts_sse_close(watch);
    ts_feed_free(&g);
    ts_feed_free(&wg);
}

/* Waits until the server holds no stream (it notices a hang-up at the next heartbeat). */
static void wait_no_streams(int port)
{
    uint64_t deadline = ts_now_ms() + 20000;
    while (ts_metric(port, "tidings_streams_open") > 0) {
        cr_assert(ts_now_ms() < deadline, "streams still open 20 s after the last hang-up");
        ts_sleep_ms(100);
    }
}

/* The next event must be a reset; returns its id in id. */
static void expect_reset(ts_sse_t *c, char *id, size_t size)
{
    ts_sse_item_t ev;
    ts_sse_expect(c, "reset", &ev, SX_WAIT_MS, "a stale cursor");
    json_t *data = ts_sse_data(&ev);
    cr_assert(json_is_object(data), "the reset event's data is not an object: %s", ev.data);
    json_decref(data);
    snprintf(id, size, "%s", ev.id);
    ts_sse_item_clear(&ev);
}

Test(sse_resume, a_cursor_older_than_the_retention_gets_reset)
{
    ts_user_t reader, author;
    const char *const flags[] = {
        "--stream-grace-ms", "2000", "--stream-retention", "2", "--heartbeat", "1", NULL};
    ts_sse_t *c = sx_reader_of(&srv, flags, "stale", &reader, &author);
    ts_feed_t g = {0};
    char post[24];
    ts_post(srv.port, &author, "seen", post);
    ts_feed_read(c, &g, SX_WAIT_MS, "the post before leaving");
    ts_sse_close(c);
    wait_no_streams(srv.port);
    ts_sleep_ms(2000 + 700); /* past the retention: the reader's log is gone */

    char unseen[24];
    ts_post(srv.port, &author, "posted while the reader was offline", unseen);
    /* Its fan-out is done once it is in the reader's timeline (the event is not logged). */
    uint64_t deadline = ts_now_ms() + SX_WAIT_MS;
    for (bool there = false; !there;) {
        json_t *tl = ts_call(srv.port, "GET", "/v1/timeline?limit=1", reader.token, NULL, 200);
        there = strcmp(ts_str(json_array_get(json_object_get(tl, "items"), 0), "id"), unseen) == 0;
        json_decref(tl);
        cr_assert(there || ts_now_ms() < deadline, "the offline post never reached the timeline");
        if (!there)
            ts_sleep_ms(25);
    }

    c = ts_stream(srv.port, &reader, g.event[0]);
    char reset[64];
    expect_reset(c, reset, sizeof(reset));
    cr_assert_geq(ts_sse_id_cmp(reset, g.event[0]), 0, "the reset id %s is before the cursor %s",
                  reset, g.event[0]);
    /* The stream carries on live after the reset. */
    ts_post(srv.port, &author, "after the reset", post);
    ts_sse_item_t ev;
    ts_sse_expect(c, "feed", &ev, 15000, "a live post after the reset");
    char id[24];
    cr_assert_str_eq(ts_sse_data_id(&ev, id, sizeof(id)), post,
                     "expected the post made after the reset, got %s", id);
    cr_assert_gt(ts_sse_id_cmp(ev.id, reset), 0);
    ts_sse_item_clear(&ev);

    /* Resuming from the reset's id is a plain resume (no second reset). */
    ts_sse_close(c);
    c = ts_stream(srv.port, &reader, reset);
    ts_sse_expect(c, "feed", &ev, 15000, "resuming from the reset id");
    cr_assert_str_eq(ts_sse_data_id(&ev, id, sizeof(id)), post);
    ts_sse_item_clear(&ev);
    ts_sse_close(c);
    ts_feed_free(&g);
}

Test(sse_resume, a_connected_user_stays_online_longer_than_the_grace)
{
    /* "Online" means a stream open, or closed within --stream-grace-ms: a stream that stays
     * open longer than the grace must go on receiving. */
    ts_user_t reader, author;
    const char *const flags[] = {"--stream-grace-ms", "1000", "--heartbeat", "1", NULL};
    ts_sse_t *c = sx_reader_of(&srv, flags, "longon", &reader, &author);
    ts_feed_t g = {0};
    char post[24];
    ts_post(srv.port, &author, "at once", post);
    ts_feed_read(c, &g, SX_WAIT_MS, "a post right after connecting");
    /* Three seconds connected (heartbeats keep coming), then another post. */
    cr_assert_geq(sx_heartbeats(c, INT_MAX, 3000), 1, "no heartbeat in 3 s with --heartbeat 1");
    ts_post(srv.port, &author, "three seconds later", post);
    ts_feed_read(c, &g, 15000, "a post 3 s after connecting (--stream-grace-ms 1000)");
    cr_assert_str_eq(g.post[1], post);
    ts_sse_close(c);
    ts_feed_free(&g);
}

Test(sse_resume, a_cursor_before_the_trimmed_log_gets_reset)
{
    /* The log keeps about 1,000 events (XADD MAXLEN ~ trims whole nodes of 100): 1,150 more
     * events push the cursor's out of it. A stream buffer of 2,048 events, so that a replay
     * of the whole log would fit: the reset must come from the trim, not from an overflow. */
    enum { MORE = 1150 };
    sx_use_private_redis();
    sx_server(&srv, (const char *const[]){"--stream-buffer", "1048576", NULL});
    ts_user_t user;
    ts_register(srv.port, "trim", &user);
    ts_sse_t *c = ts_stream(srv.port, &user, NULL);
    ts_sse_t *watch = ts_stream(srv.port, &user, NULL);
    ts_feed_t g = {0}, wg = {0};
    char post[24];
    ts_post(srv.port, &user, "the first", post);
    ts_feed_read(c, &g, SX_WAIT_MS, "the first post");
    ts_feed_read(watch, &wg, SX_WAIT_MS, "the first post (watcher)");
    ts_sse_close(c);
    post_many(&user, MORE, watch, &wg, post);

    c = ts_stream(srv.port, &user, g.event[0]);
    char reset[64];
    expect_reset(c, reset, sizeof(reset));
    cr_assert_str_eq(reset, wg.event[wg.n - 1],
                     "the reset should point at the log's newest "
                     "event (%s), not %s",
                     wg.event[wg.n - 1], reset);
    ts_post(srv.port, &user, "after the reset", post);
    sx_expect(c, "feed", post, NULL, "a live post after the reset");

    /* A cursor still inside the log resumes normally: the last 10 the watcher saw. */
    ts_sse_close(c);
    c = ts_stream(srv.port, &user, wg.event[wg.n - 11]);
    for (size_t i = wg.n - 10; i < wg.n; i++) {
        char id[64];
        sx_expect(c, "feed", wg.post[i], id, "a replay from inside the log");
        cr_assert_str_eq(id, wg.event[i]);
    }
    ts_sse_close(c);
    ts_sse_close(watch);
    ts_feed_free(&g);
    ts_feed_free(&wg);
}

/* Registers u on the fixture, with a stream opened once: online, so a valid id would resume. */
static void online_user(const char *prefix, ts_user_t *u)
{
    sx_use_fixture_redis();
    sx_server(&srv, NULL);
    ts_register(srv.port, prefix, u);
    ts_sse_close(ts_stream(srv.port, u, NULL));
}

/* Opening u's stream with this Last-Event-ID, by header and by query, answers a 400 problem. */
static void expect_400(const ts_user_t *u, const char *bad)
{
    char path[256], v[128];
    size_t len = (size_t)snprintf(path, sizeof(path), "/v1/stream?last_event_id=");
    for (const char *p = bad; *p; p++) /* in a query '+' is a space: %2B */
        len += (size_t)snprintf(path + len, sizeof(path) - len, *p == '+' ? "%%2B" : "%c", *p);
    const ts_sse_opts_t opts[2] = {{.token = u->token, .last_event_id = bad},
                                   {.token = u->token, .path = path}};
    for (int q = 0; q < 2; q++) {
        const char *how = q ? "?last_event_id=" : "Last-Event-ID";
        ts_sse_t *c = ts_sse_open(srv.port, &opts[q], TS_SSE_OPEN_MS);
        cr_assert_eq(c->status, 400, "%s '%s': expected 400, got %d", how, bad, c->status);
        cr_assert(ts_sse_header(c, "Content-Type", v, sizeof(v)) &&
                      strncmp(v, "application/problem+json", 24) == 0,
                  "%s '%s': the 400 is not a problem", how, bad);
        json_t *p = json_loads(c->body, 0, NULL);
        cr_assert_eq(json_integer_value(json_object_get(p, "status")), 400,
                     "%s '%s': the problem body is %s", how, bad, c->body);
        json_decref(p);
        ts_sse_close(c);
    }
}

Test(sse_resume, a_malformed_last_event_id_is_400)
{
    static const char *const bad[] = {"abc",  "12",   "-1",   "1-",    "-",   "1-2-3",
                                      "1--2", "1-2x", "x1-2", "1.5-2", "+1-2"};
    ts_user_t u;
    online_user("badid", &u);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_400(&u, bad[i]);
    expect_400(&u, "123456789012345678901-0");                            /* 21 digits */
    expect_400(&u, "1-123456789012345678901234567890123456789012345678"); /* 50 long */
    /* And a well-formed one still opens. */
    ts_sse_close(ts_stream(srv.port, &u, "1-0"));
}

Test(sse_resume, a_last_event_id_beyond_64_bits_is_400)
{
    /* Redis stream ids are two unsigned 64-bit numbers; the server never sends more. */
    ts_user_t u;
    online_user("bigid", &u);
    expect_400(&u, "18446744073709551616-0");     /* 2^64 */
    expect_400(&u, "99999999999999999999-0");     /* 20 digits, beyond 2^64 */
    expect_400(&u, "1-18446744073709551616");     /* sequence 2^64 */
    expect_400(&u, "1-999999999999999999999999"); /* 24-digit sequence */
}

Test(sse_resume, entries_of_the_earlier_log_format_replay_too)
{
    /* Logs written before the one-field entry (fields k, r, j; they live up to the grace
     * period, so an upgrade meets them) must replay like the current ones, in log order. */
    sx_use_private_redis();
    sx_server(&srv, NULL);
    ts_user_t reader, author, stranger;
    ts_register_all(srv.port, "oldf", &reader, &author, &stranger, NULL);
    ts_follow(srv.port, &reader, &author);
    ts_sse_t *c = ts_stream(srv.port, &reader, NULL);
    ts_feed_t g = {0};
    char first[24], older[24], newer[24];
    ts_post(srv.port, &author, "the cursor", first);
    ts_feed_read(c, &g, SX_WAIT_MS, "the first post");
    ts_sse_close(c);

    /* An entry as the earlier format wrote it (about a post the reader would not get
     * otherwise), then a current one. */
    ts_post(srv.port, &stranger, "written the old way", older);
    char key[48];
    snprintf(key, sizeof(key), "ev:{%s}", reader.id);
    struct redisReply *r =
        ts_redis_command(sx_redis_url, "XADD %s * k feed r %s j 0/1-0", key, older);
    cr_assert(r && r->type == REDIS_REPLY_STRING, "XADD of an old-format entry failed");
    freeReplyObject(r);
    ts_post(srv.port, &author, "written the new way", newer);

    c = ts_stream(srv.port, &reader, g.event[0]);
    ts_feed_read(c, &g, SX_WAIT_MS, "the old-format entry, replayed");
    ts_feed_read(c, &g, SX_WAIT_MS, "the post after it");
    cr_assert_str_eq(g.post[1], older, "the old-format entry came as post %s, not %s", g.post[1],
                     older);
    cr_assert_str_eq(g.post[2], newer);
    cr_assert_eq(c->unknown_fields, 0, "unknown SSE line: %s", c->unknown_line);
    ts_sse_close(c);
    ts_feed_free(&g);
}
