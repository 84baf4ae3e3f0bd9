/* tests/sse/test_lifecycle.c -- a stream's life around its events: heartbeats on an idle
 * stream, SIGTERM ending every stream cleanly, CORS for browsers on another origin, and
 * delivery across two tidings processes sharing one Redis. */
#include "tests/sse/sx.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

TestSuite(sse_lifecycle, .fini = sx_teardown, .timeout = SX_TIMEOUT);

static ts_server_t srv, other;

Test(sse_lifecycle, heartbeats_arrive_on_an_idle_stream)
{
    sx_use_private_redis(); /* events are ordered: no other binary's engine may touch its jobs */
    sx_server(&srv, (const char *const[]){"--heartbeat", "1", NULL});
    ts_user_t u;
    ts_register(srv.port, "beat", &u);
    ts_sse_t *c = ts_stream(srv.port, &u, NULL);
    int beats = sx_heartbeats(c, 3, 5000);
    cr_assert_eq(beats, 3, "%d heartbeats in 5 s with --heartbeat 1", beats);
    /* And they go on after an event. */
    char post[24];
    ts_post(srv.port, &u, "between heartbeats", post);
    sx_expect(c, "feed", post, NULL, "a post between heartbeats");
    ts_sse_item_t ev;
    ts_sse_kind_t k = ts_sse_next(c, &ev, 3000);
    cr_assert(k == TS_SSE_COMMENT && strcmp(ev.text, "heartbeat") == 0,
              "no heartbeat within 3 s after an event (item kind %d)", k);
    ts_sse_item_clear(&ev);
    cr_assert_eq(c->unknown_fields, 0, "unknown SSE line: %s", c->unknown_line);
    ts_sse_close(c);
}

Test(sse_lifecycle, sigterm_ends_every_stream_cleanly_and_exits_promptly)
{
    sx_use_private_redis(); /* events are ordered: no other binary's engine may touch its jobs */
    sx_server(&srv, NULL);
    ts_user_t a, b;
    ts_register_all(srv.port, "term", &a, &b, NULL);
    ts_sse_t *s[3] = {ts_stream(srv.port, &a, NULL), ts_stream(srv.port, &a, NULL),
                      ts_stream(srv.port, &b, NULL)};
    char post[24];
    ts_post(srv.port, &a, "before the end", post);
    for (int i = 0; i < 2; i++)
        sx_expect(s[i], "feed", post, NULL, "a post before SIGTERM");
    /* s[2] is idle (parked), s[0..1] have just sent. */
    uint64_t t0 = ts_now_ms();
    cr_assert(kill(srv.pid, SIGTERM) == 0);
    for (int i = 0; i < 3; i++) {
        int extra = 0;
        cr_assert(ts_sse_drain(s[i], 5000, &extra), "stream %d still open 5 s after SIGTERM", i);
        cr_assert(s[i]->clean_end,
                  "stream %d was cut (reset, or closed mid-event) rather "
                  "than ended in order",
                  i);
        cr_assert(!s[i]->framing_error, "stream %d: %s", i, s[i]->framing_what);
        cr_assert_eq(extra, 0, "stream %d got %d events after SIGTERM", i, extra);
    }
    uint64_t ended = ts_now_ms() - t0;
    uint64_t took = sx_server_reap(&srv, 8000) + ended;
    /* Well under --shutdown-grace (10 s): open streams must not hold the shutdown up. */
    cr_assert_lt(took, 5000, "the server took %llu ms to exit after SIGTERM with 3 streams open",
                 (unsigned long long)took);
    for (int i = 0; i < 3; i++)
        ts_sse_close(s[i]);
}

#define ORIGIN "https://app.example.test"

Test(sse_lifecycle, cors_origin_marks_the_stream_and_answers_the_preflight)
{
    sx_use_private_redis(); /* events are ordered: no other binary's engine may touch its jobs */
    sx_server(&srv, (const char *const[]){"--cors-origin", ORIGIN, NULL});
    ts_user_t u;
    ts_register(srv.port, "cors", &u);
    const char *origin = "Origin: " ORIGIN "\r\n";
    char v[256];

    ts_sse_t *c =
        ts_stream_opts(srv.port, &(ts_sse_opts_t){.token = u.token, .extra_headers = origin});
    cr_assert(ts_sse_header(c, "Access-Control-Allow-Origin", v, sizeof(v)),
              "the stream has no Access-Control-Allow-Origin");
    cr_assert_str_eq(v, ORIGIN);
    ts_sse_close(c);

    /* A browser reads errors only when they carry the header too. */
    c = ts_sse_open(srv.port, &(ts_sse_opts_t){.extra_headers = origin}, TS_SSE_OPEN_MS);
    cr_assert_eq(c->status, 401);
    cr_assert(ts_sse_header(c, "Content-Type", v, sizeof(v)) &&
                  strncmp(v, "application/problem+json", 24) == 0,
              "the stream's 401 is not a problem");
    cr_assert(ts_sse_header(c, "Access-Control-Allow-Origin", v, sizeof(v)) &&
                  strcmp(v, ORIGIN) == 0,
              "the stream's 401 has no Access-Control-Allow-Origin");
    ts_sse_close(c);

    c = ts_sse_open(
        srv.port,
        &(ts_sse_opts_t){.method = "OPTIONS",
                         .extra_headers =
                             "Origin: " ORIGIN "\r\nAccess-Control-Request-Method: GET\r\n"
                             "Access-Control-Request-Headers: authorization, last-event-id\r\n"},
        TS_SSE_OPEN_MS);
    cr_assert_eq(c->status, 204, "the preflight answered %d: %s", c->status, c->body);
    cr_assert(ts_sse_header(c, "Access-Control-Allow-Origin", v, sizeof(v)) &&
                  strcmp(v, ORIGIN) == 0,
              "the preflight has no Access-Control-Allow-Origin: " ORIGIN);
    cr_assert(ts_sse_header(c, "Access-Control-Allow-Methods", v, sizeof(v)) && strstr(v, "GET"),
              "the preflight does not allow GET");
    cr_assert(ts_sse_header(c, "Access-Control-Allow-Headers", v, sizeof(v)),
              "the preflight has no Access-Control-Allow-Headers");
    cr_assert(strcasestr(v, "authorization") && strcasestr(v, "last-event-id"),
              "the preflight allows headers '%s', not Authorization and Last-Event-ID", v);
    cr_assert_eq(c->body_len, 0, "a 204 with a body");
    ts_sse_close(c);
}

Test(sse_lifecycle, without_cors_origin_there_are_no_cors_headers)
{
    sx_use_private_redis(); /* events are ordered: no other binary's engine may touch its jobs */
    sx_server(&srv, NULL);
    ts_user_t u;
    ts_register(srv.port, "nocors", &u);
    char v[256];
    ts_sse_t *c = ts_stream_opts(
        srv.port, &(ts_sse_opts_t){.token = u.token, .extra_headers = "Origin: " ORIGIN "\r\n"});
    cr_assert(!ts_sse_header(c, "Access-Control-Allow-Origin", v, sizeof(v)),
              "Access-Control-Allow-Origin '%s' without --cors-origin", v);
    ts_sse_close(c);
    c = ts_sse_open(srv.port,
                    &(ts_sse_opts_t){.method = "OPTIONS",
                                     .extra_headers = "Origin: " ORIGIN "\r\n"
                                                      "Access-Control-Request-Method: GET\r\n"},
                    TS_SSE_OPEN_MS);
    cr_assert_eq(c->status, 204, "OPTIONS /v1/stream answered %d", c->status);
    cr_assert(!ts_sse_header(c, "Access-Control-Allow-Origin", v, sizeof(v)),
              "the preflight allows origin '%s' without --cors-origin", v);
    ts_sse_close(c);
}

Test(sse_lifecycle, two_processes_on_one_redis_deliver_to_each_others_streams)
{
    sx_use_private_redis();  /* events are ordered: no other binary's engine may touch its jobs */
    sx_server(&srv, NULL);   /* A: holds the user's stream */
    sx_server(&other, NULL); /* B: takes the other user's requests */
    ts_user_t user, author;
    ts_register(srv.port, "twopu", &user);
    ts_register(other.port, "twopa", &author);
    ts_follow(other.port, &user, &author);
    ts_sse_t *on_a = ts_stream(srv.port, &user, NULL);
    ts_sse_t *on_b = ts_stream(other.port, &user, NULL);

    char post[24], mine[24], ida[64], idb[64];
    ts_post(other.port, &author, "made through B", post);
    sx_expect(on_a, "feed", post, ida, "a post made through B, stream on A");
    sx_expect(on_b, "feed", post, idb, "a post made through B, stream on B");
    cr_assert_str_eq(ida, idb, "one event, two ids");

    ts_post(srv.port, &user, "mine, through A", mine);
    sx_expect(on_a, "feed", mine, ida, "the user's own post, stream on A");
    sx_expect(on_b, "feed", mine, idb, "the user's own post, stream on B");
    ts_like(other.port, &author, mine);
    sx_expect(on_a, "notification", NULL, ida, "a like made through B, stream on A");
    sx_expect(on_b, "notification", NULL, idb, "a like made through B, stream on B");
    cr_assert_str_eq(ida, idb);

    ts_delete_post(other.port, &author, post);
    sx_expect(on_a, "delete", post, ida, "a deletion made through B, stream on A");
    sx_expect(on_b, "delete", post, idb, "a deletion made through B, stream on B");
    cr_assert_str_eq(ida, idb);

    /* B stops: A's stream is untouched and still gets what B's clients did before. */
    ts_sse_close(on_b);
    sx_server_stop(&other, 10000);
    char late[24];
    ts_post(srv.port, &author, "through A now", late);
    sx_expect(on_a, "feed", late, ida, "a post after B stopped");
    ts_sse_close(on_a);
}
