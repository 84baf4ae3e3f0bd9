/* tests/tokens/test_revoke_all.c -- storage_tokens_revoke_all, which an account's erasure
 * calls: every token of the user's (the pre-device one too) is gone from Redis, answers 401
 * on every process within a second, and every stream of the user's ends with revoked, on
 * every process; another user is untouched. */
#include "storage/tokens.h"
#include "tests/support/sse.h"
#include "tests/tokens/tokens_suite.h"

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
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

TestSuite(revoke_all, .init = setup, .fini = teardown, .timeout = 120);

static storage_t *fixture_storage(void)
{
    char url[256];
    ts_redis_fixture_url(url, sizeof(url));
    storage_config_t cfg;
    storage_config_defaults(&cfg);
    cfg.url = url;
    storage_t *s = storage_create(&cfg);
    cr_assert(s, "storage_create(%s)", url);
    return s;
}

static void expect_revoked_end(ts_sse_t *c, const char *what)
{
    ts_sse_item_t it = {0};
    cr_assert_eq(ts_sse_next_event(c, &it, 2000), TS_SSE_EVENT, "%s: no event", what);
    cr_expect_str_eq(it.type, "revoked", "%s", what);
    ts_sse_item_clear(&it);
    cr_expect_eq(ts_sse_next_event(c, &it, 2000), TS_SSE_END, "%s: the stream did not end", what);
    ts_sse_item_clear(&it);
}

Test(revoke_all, every_token_and_stream_of_the_user_ends_everywhere)
{
    ts_user_t u, other;
    ts_register_all(a_srv.port, "ra", &u, &other, NULL);
    char phone[128], laptop[128], old[128];
    json_decref(tk_create(a_srv.port, u.token, "phone", 0, phone));
    json_decref(tk_create(a_srv.port, u.token, "laptop", 3600, laptop));
    /* And a token of the old kind in the user record. */
    snprintf(old, sizeof(old), "tdg_%s_%s", u.id, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFG");
    char hex[65];
    tk_sha256_hex(old, hex);
    redisContext *c = ts_redis_connect(ts_redis_port());
    ts_redis_int(c, "HSET user:{%s} token %s", u.id, hex);
    const char *tokens[] = {u.token, phone, laptop, old};
    for (size_t i = 0; i < 4; i++) {
        cr_assert_eq(tk_me_status(a_srv.port, tokens[i]), 200, "token %zu", i);
        cr_assert_eq(tk_me_status(b_srv.port, tokens[i]), 200, "token %zu", i);
    }
    ts_sse_t *streams[] = {
        ts_stream_opts(a_srv.port, &(ts_sse_opts_t){.token = phone}),
        ts_stream_opts(b_srv.port, &(ts_sse_opts_t){.token = laptop}),
        ts_stream_opts(b_srv.port, &(ts_sse_opts_t){.token = old}),
    };
    ts_sse_t *others = ts_stream_opts(b_srv.port, &(ts_sse_opts_t){.token = other.token});

    storage_t *s = fixture_storage();
    size_t n = 0;
    uint64_t start = ts_now_ms();
    cr_assert_eq(storage_tokens_revoke_all(s, u.num, &n), 0);
    cr_expect_eq(n, 4, "revoked %zu tokens", n);
    for (size_t i = 0; i < 3; i++) {
        char what[32];
        snprintf(what, sizeof(what), "stream %zu", i);
        expect_revoked_end(streams[i], what);
        ts_sse_close(streams[i]);
    }
    for (size_t i = 0; i < 4; i++) {
        cr_expect_eq(tk_me_status(a_srv.port, tokens[i]), 401, "token %zu on A", i);
        cr_expect_eq(tk_me_status(b_srv.port, tokens[i]), 401, "token %zu on B", i);
    }
    cr_expect(ts_now_ms() - start < 1000, "took %llu ms",
              (unsigned long long)(ts_now_ms() - start));

    /* Nothing of them is left in Redis. */
    cr_expect_eq(ts_redis_int(c, "EXISTS toks:{%s}", u.id), 0);
    redisReply *r = ts_redis_cmd_ok(c, "HEXISTS user:{%s} token", u.id);
    cr_expect_eq(r->integer, 0);
    freeReplyObject(r);
    storage_token_t *left;
    size_t n_left;
    cr_expect_eq(storage_tokens_list(s, u.num, &left, &n_left), 0);
    cr_expect_eq(n_left, 0);
    free(left);
    /* Twice is harmless: nothing to revoke. */
    cr_expect_eq(storage_tokens_revoke_all(s, u.num, &n), 0);
    cr_expect_eq(n, 0);

    /* The other user's stream and token go on. */
    cr_expect_eq(tk_me_status(b_srv.port, other.token), 200);
    ts_sse_item_t it = {0};
    cr_expect_eq(ts_sse_next_event(others, &it, 300), TS_SSE_TIMEOUT, "the other stream got %s",
                 it.type);
    ts_sse_item_clear(&it);
    cr_expect(!others->ended, "the other user's stream ended");
    ts_sse_close(others);
    storage_destroy(s);
    ts_redis_close(c);
}
