/* tests/tokens/test_tickets.c -- POST /v1/stream/tickets: a ticket opens one stream within
 * 60 s and nothing else; used, expired, malformed or orphaned (its token revoked) it is 401,
 * and a stream it opened ends when the token that asked for it is revoked. */
#define _DEFAULT_SOURCE /* timegm */
#include "tests/support/sse.h"
#include "tests/tokens/tokens_suite.h"

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static ts_server_t srv;
#define PORT (srv.port)

static void setup(void)
{
    ts_server_start_default(&srv);
}

static void teardown(void)
{
    ts_server_stop_clean(&srv, 10000);
}

TestSuite(tickets, .init = setup, .fini = teardown, .timeout = 120);

/* POST /v1/stream/tickets as token (201): the ticket into out (128 bytes). */
static void new_ticket(const char *token, char *out)
{
    json_t *t = ts_call(PORT, "POST", "/v1/stream/tickets", token, NULL, 201);
    snprintf(out, 128, "%s", ts_str(t, "ticket"));
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    /* expires_at is 60 s out ("…T05:17:45.123Z"): compare seconds of the day, roughly. */
    struct tm tm = {0};
    cr_expect_eq(sscanf(ts_str(t, "expires_at"), "%d-%d-%dT%d:%d:%d", &tm.tm_year, &tm.tm_mon,
                        &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec),
                 6, "expires_at %s", ts_str(t, "expires_at"));
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    long long in = (long long)timegm(&tm) - (long long)now.tv_sec;
    cr_expect(in >= 58 && in <= 60, "expires in %lld s", in);
    cr_expect_eq(json_object_size(t), 2, "ticket and expires_at only");
    json_decref(t);
}

static char *stream_path(const char *ticket)
{
    static char path[512];
    snprintf(path, sizeof(path), "/v1/stream?ticket=%s", ticket);
    return path;
}

Test(tickets, a_ticket_opens_one_stream_once)
{
    ts_user_t u, author;
    ts_register_all(PORT, "tk", &u, &author, NULL);
    ts_follow(PORT, &u, &author);
    char ticket[128];
    new_ticket(u.token, ticket);
    cr_expect_eq(strncmp(ticket, "tkt_", 4), 0, "ticket %s", ticket);
    cr_expect(!strstr(ticket, u.token + 10), "the ticket holds the token");

    ts_sse_t *c = ts_stream_opts(PORT, &(ts_sse_opts_t){.path = stream_path(ticket)});
    char post[24];
    ts_post(PORT, &author, "via a ticket", post);
    ts_sse_item_t it = {0};
    ts_sse_expect(c, "feed", &it, 10000, "the ticket's stream");
    char id[32];
    cr_expect_str_eq(ts_sse_data_id(&it, id, sizeof(id)), post);
    ts_sse_item_clear(&it);
    /* Used: a second stream is refused, while the first goes on. */
    char *detail = tk_expect_problem(PORT, NULL, "GET", stream_path(ticket), NULL, 401);
    cr_expect(strstr(detail, "ticket"), "detail: %s", detail);
    free(detail);
    cr_expect(!c->ended);
    ts_sse_close(c);
}

Test(tickets, an_expired_ticket_is_401)
{
    ts_user_t u;
    ts_register(PORT, "tx", &u);
    char ticket[128], hex[65];
    new_ticket(u.token, ticket);
    tk_sha256_hex(ticket, hex);
    redisContext *c = ts_redis_connect(ts_redis_port());
    long long ttl = ts_redis_int(c, "PTTL tkt:{%s}:%s", u.id, hex);
    cr_expect(ttl > 55000 && ttl <= 60000, "PTTL %lld", ttl);
    ts_redis_int(c, "PEXPIRE tkt:{%s}:%s 1", u.id, hex);
    ts_redis_close(c);
    ts_sleep_ms(20);
    free(tk_expect_problem(PORT, NULL, "GET", stream_path(ticket), NULL, 401));
}

Test(tickets, a_ticket_is_no_token_and_bad_tickets_are_401)
{
    ts_user_t u;
    ts_register(PORT, "tb", &u);
    char ticket[128], path[256];
    new_ticket(u.token, ticket);
    /* Not a bearer token, nor a ticket anywhere but the stream. */
    free(tk_expect_problem(PORT, ticket, "GET", "/v1/me", NULL, 401));
    free(tk_expect_problem(PORT, ticket, "GET", "/v1/stream", NULL, 401));
    snprintf(path, sizeof(path), "/v1/timeline?ticket=%s", ticket);
    free(tk_expect_problem(PORT, NULL, "GET", path, NULL, 401));
    snprintf(path, sizeof(path), "/v1/stream?access_token=%s", ticket);
    free(tk_expect_problem(PORT, NULL, "GET", path, NULL, 401));
    /* None of that used it up. */
    ts_sse_t *c = ts_stream_opts(PORT, &(ts_sse_opts_t){.path = stream_path(ticket)});
    ts_sse_close(c);

    static const char *const bad[] = {
        "",
        "x",
        "tkt_",
        "tkt_1_short",
        "tdg_1_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "tkt_0_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "tkt_1_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        free(tk_expect_problem(PORT, NULL, "GET", stream_path(bad[i]), NULL, 401));
    /* A made-up secret for u. */
    snprintf(path, sizeof(path), "tkt_%s_%.43s", u.id,
             "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB");
    free(tk_expect_problem(PORT, NULL, "GET", stream_path(path), NULL, 401));
    /* Asking for one needs a token. */
    free(tk_expect_problem(PORT, NULL, "POST", "/v1/stream/tickets", NULL, 401));
    free(tk_expect_problem(PORT, "tdg_1_2", "POST", "/v1/stream/tickets", NULL, 401));
}

Test(tickets, a_ticket_dies_with_its_token_and_so_does_its_stream)
{
    ts_user_t u;
    ts_register(PORT, "tr", &u);
    char phone[128], first[128], second[128];
    json_t *t = tk_create(PORT, u.token, "phone", 0, phone);
    new_ticket(phone, first);
    new_ticket(phone, second);
    ts_sse_t *c = ts_stream_opts(PORT, &(ts_sse_opts_t){.path = stream_path(first)});
    char path[64];
    snprintf(path, sizeof(path), "/v1/tokens/%s", ts_str(t, "id"));
    json_decref(ts_call(PORT, "DELETE", path, u.token, NULL, 204));
    ts_sse_item_t it = {0};
    cr_assert_eq(ts_sse_next_event(c, &it, 2000), TS_SSE_EVENT);
    cr_expect_str_eq(it.type, "revoked");
    ts_sse_item_clear(&it);
    cr_expect_eq(ts_sse_next_event(c, &it, 2000), TS_SSE_END);
    ts_sse_close(c);
    /* The unused ticket is worth nothing now. */
    free(tk_expect_problem(PORT, NULL, "GET", stream_path(second), NULL, 401));
    /* The registration token's tickets still work. */
    char third[128];
    new_ticket(u.token, third);
    c = ts_stream_opts(PORT, &(ts_sse_opts_t){.path = stream_path(third)});
    ts_sse_close(c);
    json_decref(t);
}
