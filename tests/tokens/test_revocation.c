/* tests/tokens/test_revocation.c -- a revoked token stops working on every process within a
 * second, and every stream opened with it ends at once with a final revoked event, on the
 * process that revoked it and on others, while the user's other streams stay open. */
#include "tests/support/sse.h"
#include "tests/tokens/tokens_suite.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ts_server_t a_srv, b_srv;

static void setup(void)
{
    ts_server_start_default(&a_srv);
    ts_server_start_default(&b_srv);
}

static void teardown(void)
{
    ts_server_stop_clean(&a_srv, 10000);
    ts_server_stop_clean(&b_srv, 10000);
}

TestSuite(revocation, .init = setup, .fini = teardown, .timeout = 120);

/* Polls GET /v1/me with token on port until it answers 401; the ms it took, or -1 after
 * limit_ms. */
static long ms_until_401(int port, const char *token, long limit_ms)
{
    uint64_t start = ts_now_ms();
    for (;;) {
        int status = tk_me_status(port, token);
        long took = (long)(ts_now_ms() - start);
        if (status == 401)
            return took;
        cr_assert_eq(status, 200, "GET /v1/me: %d", status);
        if (took > limit_ms)
            return -1;
        ts_sleep_ms(10);
    }
}

Test(revocation, a_token_revoked_on_one_process_is_401_on_another_within_a_second)
{
    ts_user_t u;
    ts_register(a_srv.port, "rv", &u);
    char phone[128];
    json_t *t = tk_create(a_srv.port, u.token, "phone", 0, phone);
    /* B verifies it, so B's cache holds it for 10 s unless told. */
    cr_assert_eq(tk_me_status(b_srv.port, phone), 200);
    cr_assert_eq(tk_me_status(b_srv.port, phone), 200);
    char path[64];
    snprintf(path, sizeof(path), "/v1/tokens/%s", ts_str(t, "id"));
    uint64_t start = ts_now_ms();
    json_decref(ts_call(a_srv.port, "DELETE", path, u.token, NULL, 204));
    long took = ms_until_401(b_srv.port, phone, 3000);
    long total = (long)(ts_now_ms() - start);
    cr_log_info("revocation seen by another process after %ld ms (%ld ms from the DELETE)", took,
                total);
    cr_expect(took >= 0 && total < 1000, "401 on the other process after %ld ms", total);
    free(tk_expect_problem(b_srv.port, phone, "GET", "/v1/timeline", NULL, 401));
    /* The user's other token is untouched there. */
    cr_expect_eq(tk_me_status(b_srv.port, u.token), 200);
    json_decref(t);
}

Test(revocation, signing_out_on_one_process_is_401_on_another_within_a_second)
{
    ts_user_t u;
    ts_register(a_srv.port, "rs", &u);
    char phone[128];
    json_decref(tk_create(a_srv.port, u.token, "phone", 0, phone));
    cr_assert_eq(tk_me_status(b_srv.port, phone), 200);
    cr_assert_eq(tk_me_status(a_srv.port, phone), 200);
    uint64_t start = ts_now_ms();
    json_decref(ts_call(a_srv.port, "DELETE", "/v1/tokens/current", phone, NULL, 204));
    cr_expect_eq(tk_me_status(a_srv.port, phone), 401, "at once on the revoking process");
    long took = ms_until_401(b_srv.port, phone, 3000);
    cr_expect(took >= 0 && ts_now_ms() - start < 1000, "401 on the other process after %ld ms",
              took);
    cr_expect_eq(tk_me_status(b_srv.port, u.token), 200);
}

/* The stream ends with a revoked event (no id), then a clean end. */
static void expect_revoked_end(ts_sse_t *c, const char *what)
{
    ts_sse_item_t it = {0};
    /* Not ts_sse_expect, which insists on an id: this one has none, as nothing follows it. */
    cr_assert_eq(ts_sse_next_event(c, &it, 2000), TS_SSE_EVENT, "%s: no event", what);
    cr_expect_str_eq(it.type, "revoked", "%s", what);
    cr_expect(!it.has_id, "%s: the revoked event carries an id", what);
    json_t *data = ts_sse_data(&it);
    cr_expect(strstr(ts_str(data, "reason"), "revoked"), "%s: reason %s", what,
              ts_str(data, "reason"));
    json_decref(data);
    ts_sse_item_clear(&it);
    cr_expect_eq(ts_sse_next_event(c, &it, 2000), TS_SSE_END, "%s: the stream did not end", what);
    cr_expect(c->clean_end && !c->framing_error, "%s: not a clean end", what);
    ts_sse_item_clear(&it);
}

/* u's stream on port opened with token. */
static ts_sse_t *stream_with(int port, const char *token)
{
    return ts_stream_opts(port, &(ts_sse_opts_t){.token = token});
}

/* A stream that stays open delivers a post of someone its user follows. */
static void expect_alive(ts_sse_t *c, int port, const ts_user_t *author, const char *what)
{
    char post[24];
    ts_post(port, author, what, post);
    ts_sse_item_t it = {0};
    char id[32] = "";
    /* An earlier post of the test may come first. */
    while (strcmp(id, post) != 0) {
        ts_sse_item_clear(&it);
        ts_sse_expect(c, NULL, &it, 10000, what);
        if (strcmp(it.type, "feed") == 0)
            ts_sse_data_id(&it, id, sizeof(id));
    }
    ts_sse_item_clear(&it);
}

static void streams_end_when_revoked_on(bool same_process)
{
    ts_user_t u, author;
    ts_register_all(a_srv.port, same_process ? "rsa" : "rsb", &u, &author, NULL);
    ts_follow(a_srv.port, &u, &author);
    char phone[128];
    json_t *t = tk_create(a_srv.port, u.token, "phone", 0, phone);
    int port = same_process ? a_srv.port : b_srv.port;
    ts_sse_t *by_phone = stream_with(port, phone);
    ts_sse_t *by_phone_too = stream_with(port, phone);
    ts_sse_t *other = stream_with(port, u.token);
    ts_sse_t *other_elsewhere = stream_with(same_process ? b_srv.port : a_srv.port, u.token);

    char path[64];
    snprintf(path, sizeof(path), "/v1/tokens/%s", ts_str(t, "id"));
    uint64_t start = ts_now_ms();
    json_decref(ts_call(a_srv.port, "DELETE", path, u.token, NULL, 204));
    expect_revoked_end(by_phone, "the phone's stream");
    cr_log_info("stream ended %llu ms after the DELETE (%s process)",
                (unsigned long long)(ts_now_ms() - start), same_process ? "same" : "another");
    expect_revoked_end(by_phone_too, "the phone's second stream");
    cr_expect(ts_now_ms() - start < 1000, "the streams ended after %llu ms",
              (unsigned long long)(ts_now_ms() - start));
    /* Nor can it open another. */
    free(tk_expect_problem(port, phone, "GET", "/v1/stream", NULL, 401));

    expect_alive(other, a_srv.port, &author, "the other token's stream");
    expect_alive(other_elsewhere, a_srv.port, &author, "the other token's stream elsewhere");
    ts_sse_close(by_phone);
    ts_sse_close(by_phone_too);
    ts_sse_close(other);
    ts_sse_close(other_elsewhere);
    json_decref(t);
}

Test(revocation, streams_of_a_revoked_token_end_on_the_same_process_and_others_stay)
{
    streams_end_when_revoked_on(true);
}

Test(revocation, streams_of_a_revoked_token_end_on_another_process_and_others_stay)
{
    streams_end_when_revoked_on(false);
}

Test(revocation, signing_out_ends_the_callers_query_token_stream)
{
    ts_user_t u;
    ts_register(a_srv.port, "rq", &u);
    char phone[128], path[200];
    json_decref(tk_create(a_srv.port, u.token, "browser", 0, phone));
    snprintf(path, sizeof(path), "/v1/stream?access_token=%s", phone);
    ts_sse_t *c = ts_stream_opts(b_srv.port, &(ts_sse_opts_t){.path = path});
    json_decref(ts_call(a_srv.port, "DELETE", "/v1/tokens/current", phone, NULL, 204));
    expect_revoked_end(c, "the access_token stream");
    ts_sse_close(c);
}
