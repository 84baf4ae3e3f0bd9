/* tests/sse/test_auth.c -- who may open a stream, and whose events it carries: the token by
 * header or ?access_token=, 401 for none or a bad one, and never another user's events. */
#include "tests/sse/sx.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

TestSuite(sse_auth, .fini = sx_teardown, .timeout = SX_TIMEOUT);

static ts_server_t srv;

/* Opens with o and expects a 401 problem, not a stream. */
static void expect_401(const ts_sse_opts_t *o, const char *what)
{
    ts_sse_t *c = ts_sse_open(srv.port, o, TS_SSE_OPEN_MS);
    cr_assert_eq(c->status, 401, "%s: expected 401, got %d: %s", what, c->status,
                 c->body ? c->body : "");
    char v[256];
    cr_assert(ts_sse_header(c, "Content-Type", v, sizeof(v)) &&
                  strncmp(v, "application/problem+json", 24) == 0,
              "%s: the 401 is not application/problem+json", what);
    cr_assert(ts_sse_header(c, "WWW-Authenticate", v, sizeof(v)) && strncmp(v, "Bearer", 6) == 0,
              "%s: the 401 has no WWW-Authenticate: Bearer", what);
    json_t *p = json_loads(c->body, 0, NULL);
    cr_assert(p && json_integer_value(json_object_get(p, "status")) == 401,
              "%s: the problem body is %s", what, c->body);
    json_decref(p);
    ts_sse_close(c);
}

Test(sse_auth, no_token_or_a_bad_one_is_401)
{
    sx_use_fixture_redis();
    sx_server(&srv, NULL);
    ts_user_t u;
    ts_register(srv.port, "authu", &u);
    /* A well-formed token of a real user with one character of its secret changed. */
    char forged[128];
    snprintf(forged, sizeof(forged), "%s", u.token);
    size_t n = strlen(forged);
    forged[n - 1] = forged[n - 1] == 'A' ? 'B' : 'A';

    expect_401(&(ts_sse_opts_t){0}, "no token");
    expect_401(&(ts_sse_opts_t){.token = "nonsense"}, "a malformed bearer token");
    expect_401(&(ts_sse_opts_t){.token = forged}, "a forged bearer token");
    expect_401(&(ts_sse_opts_t){.extra_headers = "Authorization: Basic dXNlcjpwYXNz\r\n"},
               "basic credentials");
    char path[512];
    expect_401(&(ts_sse_opts_t){.path = "/v1/stream?access_token=nonsense"},
               "a malformed access_token");
    expect_401(&(ts_sse_opts_t){.path = "/v1/stream?access_token="}, "an empty access_token");
    snprintf(path, sizeof(path), "/v1/stream?access_token=%s", forged);
    expect_401(&(ts_sse_opts_t){.path = path}, "a forged access_token");
    /* The query parameter, when present, is the credential: a good header does not rescue a
     * bad parameter. */
    expect_401(&(ts_sse_opts_t){.path = path, .token = u.token},
               "a forged access_token beside a valid header");
}

Test(sse_auth, access_token_parameter_opens_the_callers_own_stream)
{
    sx_use_fixture_redis();
    sx_server(&srv, NULL);
    ts_user_t u;
    ts_register(srv.port, "qtok", &u);
    char path[512];
    snprintf(path, sizeof(path), "/v1/stream?access_token=%s", u.token);
    ts_sse_t *c = ts_stream_opts(srv.port, &(ts_sse_opts_t){.path = path});
    char post[24];
    ts_post(srv.port, &u, "through the query token", post);
    sx_expect(c, "feed", post, NULL, "the user's own post");
    ts_sse_close(c);
}

/* Reads events until one is about marker; every event before it must be one of allowed
 * (post ids, NULL-terminated) or the test fails naming the stranger. */
static int read_until(ts_sse_t *c, const char *marker, const char *const *allowed, const char *who)
{
    int seen = 0;
    for (;;) {
        ts_sse_item_t ev;
        ts_sse_expect(c, NULL, &ev, SX_WAIT_MS, who);
        char subject[64] = "";
        if (ev.data && strcmp(ev.type, "notification") != 0)
            ts_sse_data_id(&ev, subject, sizeof(subject));
        bool mine = strcmp(subject, marker) == 0;
        bool ok = mine;
        for (size_t i = 0; allowed && allowed[i] && !ok; i++)
            ok = strcmp(subject, allowed[i]) == 0;
        cr_assert(ok,
                  "%s's stream carried an event that is not theirs: id %s, type %s, data %.300s",
                  who, ev.id, ev.type, ev.data ? ev.data : "(none)");
        ts_sse_item_clear(&ev);
        seen++;
        if (mine)
            return seen;
    }
}

Test(sse_auth, a_stream_never_carries_another_users_events)
{
    sx_use_private_redis();
    sx_server(&srv, NULL);
    ts_user_t alice, bob, carol;
    ts_register_all(srv.port, "iso", &alice, &bob, &carol, NULL);
    ts_follow(srv.port, &bob, &carol);
    ts_sse_t *a = ts_stream(srv.port, &alice, NULL);
    char path[512];
    snprintf(path, sizeof(path), "/v1/stream?access_token=%s", alice.token);
    ts_sse_t *a2 = ts_stream_opts(srv.port, &(ts_sse_opts_t){.path = path});
    ts_sse_t *b = ts_stream(srv.port, &bob, NULL);

    /* Bob gets carol's posts, a follower, a like and a deletion; alice none of it. */
    char p1[24], p2[24], own[24];
    ts_post(srv.port, &carol, "for bob's eyes", p1);
    ts_post(srv.port, &carol, "also for bob @nobody", p2);
    ts_post(srv.port, &bob, "bob speaks", own);
    ts_follow(srv.port, &carol, &bob);
    ts_like(srv.port, &carol, own);
    int kinds[4] = {0}; /* feed, notification, delete, other */
    for (int got = 0; got < 6; got++) {
        if (got == 5) /* after p2's feed event was sent, so it is not rendered as a bare id */
            ts_delete_post(srv.port, &carol, p2);
        ts_sse_item_t ev;
        ts_sse_expect(b, NULL, &ev, SX_WAIT_MS, "bob's events");
        kinds[strcmp(ev.type, "feed") == 0           ? 0
              : strcmp(ev.type, "notification") == 0 ? 1
              : strcmp(ev.type, "delete") == 0       ? 2
                                                     : 3]++;
        ts_sse_item_clear(&ev);
    }
    cr_assert(kinds[0] == 3 && kinds[1] == 2 && kinds[2] == 1,
              "bob got %d feed, %d notification, %d delete, %d other events", kinds[0], kinds[1],
              kinds[2], kinds[3]);

    /* Everything of bob's has been logged; now alice's own post marks her stream's end. */
    char mark[24];
    ts_post(srv.port, &alice, "alice's marker", mark);
    cr_assert_eq(read_until(a, mark, NULL, "alice"), 1);
    cr_assert_eq(read_until(a2, mark, NULL, "alice (access_token)"), 1);
    ts_sse_close(a);
    ts_sse_close(a2);
    ts_sse_close(b);
}
