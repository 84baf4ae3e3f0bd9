/* tests/tokens/test_tokens.c -- tokens, one per device: issuing, listing, expiry, revoking one
 * or the caller's own, the cap, and every refused request a problem document. */
#define _DEFAULT_SOURCE /* timegm */
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

TestSuite(tokens, .init = setup, .fini = teardown, .timeout = 120);

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* An RFC 3339 time of the API ("2026-12-05T05:17:45.123Z") as ms since the epoch; 0 if not. */
static uint64_t time_ms(const char *s)
{
    struct tm tm = {0};
    int ms = 0;
    if (sscanf(s, "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec, &ms) < 6)
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (uint64_t)timegm(&tm) * 1000 + (uint64_t)ms;
}

static void expect_no_secret(json_t *items)
{
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it)
    {
        cr_expect_null(json_object_get(it, "token"), "a listed token shows its secret");
        char *text = json_dumps(it, 0);
        cr_expect(!strstr(text, "tdg_"), "a listed token holds token text: %s", text);
        free(text);
    }
}

Test(tokens, registration_token_is_listed_as_current_and_used)
{
    ts_user_t a;
    ts_register(PORT, "tr", &a);
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "tdg_%s_", a.id);
    cr_expect_eq(strncmp(a.token, prefix, strlen(prefix)), 0, "token %s", a.token);
    size_t digits = strspn(a.token + strlen(prefix), "0123456789");
    cr_expect(digits > 0 && a.token[strlen(prefix) + digits] == '_' &&
                  strlen(a.token) == strlen(prefix) + digits + 1 + 43,
              "user, token id and secret: %s", a.token);

    json_t *items = tk_list(PORT, a.token);
    cr_assert_eq(json_array_size(items), 1);
    json_t *t = json_array_get(items, 0);
    cr_expect_str_eq(ts_str(t, "name"), "registration");
    cr_expect(json_is_true(json_object_get(t, "current")));
    cr_expect(json_is_null(json_object_get(t, "expires_at")));
    uint64_t created = time_ms(ts_str(t, "created_at"));
    cr_expect(created && created <= wall_ms() + 1000, "created_at %s", ts_str(t, "created_at"));
    /* This very request used it. */
    uint64_t used = time_ms(ts_str(t, "last_used_at"));
    cr_expect(used >= created && used <= wall_ms() + 1000, "last_used_at %s",
              ts_str(t, "last_used_at"));
    expect_no_secret(items);
    /* Its id is in the token's text. */
    cr_expect(strstr(a.token, ts_str(t, "id")), "token id %s not in %s", ts_str(t, "id"), a.token);
    json_decref(items);
}

Test(tokens, a_second_device_token_works_and_only_it_is_current_for_itself)
{
    ts_user_t a;
    ts_register(PORT, "td", &a);
    char phone[128];
    ts_resp_t r;
    ts_http(PORT, "POST", "/v1/tokens", a.token, NULL, "{\"name\":\"phone\"}", &r);
    cr_assert_eq(r.status, 201, "%s", r.body);
    json_t *t = ts_resp_json(&r);
    snprintf(phone, sizeof(phone), "%s", ts_str(t, "token"));
    char loc[96], want[96];
    snprintf(want, sizeof(want), "/v1/tokens/%s", ts_str(t, "id"));
    cr_expect(ts_resp_header(&r, "Location", loc, sizeof(loc)) && strcmp(loc, want) == 0);
    ts_resp_free(&r);
    cr_expect_str_eq(ts_str(t, "name"), "phone");
    cr_expect(json_is_false(json_object_get(t, "current")));
    cr_expect(json_is_null(json_object_get(t, "expires_at")));
    cr_expect(json_is_null(json_object_get(t, "last_used_at")));
    cr_expect(time_ms(ts_str(t, "created_at")));
    char id[24];
    snprintf(id, sizeof(id), "%s", ts_str(t, "id"));
    json_decref(t);
    cr_expect_str_neq(phone, a.token);

    json_t *me = ts_call(PORT, "GET", "/v1/me", phone, NULL, 200);
    cr_expect_str_eq(ts_str(me, "id"), a.id);
    json_decref(me);

    json_t *items = tk_list(PORT, phone);
    cr_assert_eq(json_array_size(items), 2);
    cr_expect(json_is_true(json_object_get(tk_find(items, id), "current")));
    cr_expect_str_eq(ts_str(json_array_get(items, 0), "name"), "registration", "oldest first");
    cr_expect(json_is_false(json_object_get(json_array_get(items, 0), "current")));
    expect_no_secret(items);
    json_decref(items);
    items = tk_list(PORT, a.token);
    cr_expect(json_is_false(json_object_get(tk_find(items, id), "current")));
    json_decref(items);
}

Test(tokens, names_count_characters_and_keep_unicode)
{
    ts_user_t a;
    ts_register(PORT, "tn", &a);
    /* 64 three-byte characters fit. */
    char name[64 * 3 + 1] = "";
    for (int i = 0; i < 64; i++)
        strcat(name, "\xe2\x98\x83");
    json_t *t = tk_create(PORT, a.token, name, 0, NULL);
    cr_expect_str_eq(ts_str(t, "name"), name);
    json_decref(t);
}

Test(tokens, expires_in_sets_expires_at_and_redis_drops_the_token_then)
{
    ts_user_t a;
    ts_register(PORT, "te", &a);
    char text[128];
    json_t *t = tk_create(PORT, a.token, "laptop", 3600, text);
    uint64_t created = time_ms(ts_str(t, "created_at")), expires = time_ms(ts_str(t, "expires_at"));
    cr_expect_eq(expires - created, 3600 * 1000ULL, "created %s, expires %s",
                 ts_str(t, "created_at"), ts_str(t, "expires_at"));
    cr_expect_eq(tk_me_status(PORT, text), 200);
    redisContext *c = ts_redis_connect(ts_redis_port());
    long long ttl = ts_redis_int(c, "PTTL tok:{%s}:%s", a.id, ts_str(t, "id"));
    cr_expect(ttl > 3500 * 1000LL && ttl <= 3600 * 1000LL, "PTTL %lld", ttl);
    ts_redis_close(c);
    json_decref(t);

    t = tk_create(PORT, a.token, "year", 365L * 24 * 3600, NULL);
    json_decref(t);
}

Test(tokens, an_expired_token_is_401_expired)
{
    ts_user_t a;
    ts_register(PORT, "tx", &a);
    char text[128];
    json_t *t = tk_create(PORT, a.token, "short", 60, text);
    /* Time passing, as Redis sees it: the stored expiry a second ago, the key kept (its own
     * PEXPIREAT would have dropped it; that case follows). Unused so far, so not cached. */
    redisContext *c = ts_redis_connect(ts_redis_port());
    ts_redis_int(c, "PERSIST tok:{%s}:%s", a.id, ts_str(t, "id"));
    ts_redis_int(c, "HSET tok:{%s}:%s expires %llu", a.id, ts_str(t, "id"),
                 (unsigned long long)(wall_ms() - 1000));
    char *detail = tk_expect_problem(PORT, text, "GET", "/v1/me", NULL, 401);
    cr_expect(strstr(detail, "expired"), "detail: %s", detail);
    free(detail);

    /* Gone at its PEXPIREAT: not valid any more, whatever the cause. */
    char text2[128];
    json_t *t2 = tk_create(PORT, a.token, "short2", 60, text2);
    ts_redis_int(c, "PEXPIRE tok:{%s}:%s 1", a.id, ts_str(t2, "id"));
    ts_sleep_ms(20);
    detail = tk_expect_problem(PORT, text2, "GET", "/v1/timeline", NULL, 401);
    free(detail);
    ts_redis_close(c);

    /* Neither is listed; the registration token is. */
    json_t *items = tk_list(PORT, a.token);
    cr_expect_null(tk_find(items, ts_str(t2, "id")));
    cr_expect_not_null(tk_find(items, ts_str(json_array_get(items, 0), "id")));
    json_decref(items);
    json_decref(t);
    json_decref(t2);
}

Test(tokens, revoking_one_ends_it_at_once_here_and_leaves_the_others)
{
    ts_user_t a;
    ts_register(PORT, "tv", &a);
    char phone[128], laptop[128];
    json_t *p = tk_create(PORT, a.token, "phone", 0, phone);
    json_t *l = tk_create(PORT, a.token, "laptop", 0, laptop);
    /* Verified once, so this process caches it. */
    cr_expect_eq(tk_me_status(PORT, phone), 200);
    char path[64];
    snprintf(path, sizeof(path), "/v1/tokens/%s", ts_str(p, "id"));
    json_decref(ts_call(PORT, "DELETE", path, laptop, NULL, 204));
    char *detail = tk_expect_problem(PORT, phone, "GET", "/v1/me", NULL, 401);
    free(detail);
    cr_expect_eq(tk_me_status(PORT, laptop), 200);
    cr_expect_eq(tk_me_status(PORT, a.token), 200);
    /* Twice is not found. */
    detail = tk_expect_problem(PORT, laptop, "DELETE", path, NULL, 404);
    free(detail);
    json_t *items = tk_list(PORT, a.token);
    cr_expect_eq(json_array_size(items), 2);
    cr_expect_null(tk_find(items, ts_str(p, "id")));
    json_decref(items);
    json_decref(p);
    json_decref(l);
}

Test(tokens, signing_out_revokes_only_the_callers_token)
{
    ts_user_t a;
    ts_register(PORT, "ts", &a);
    char phone[128];
    json_t *p = tk_create(PORT, a.token, "phone", 0, phone);
    cr_expect_eq(tk_me_status(PORT, phone), 200);
    json_decref(ts_call(PORT, "DELETE", "/v1/tokens/current", phone, NULL, 204));
    free(tk_expect_problem(PORT, phone, "GET", "/v1/me", NULL, 401));
    free(tk_expect_problem(PORT, phone, "DELETE", "/v1/tokens/current", NULL, 401));
    cr_expect_eq(tk_me_status(PORT, a.token), 200);
    json_t *items = tk_list(PORT, a.token);
    cr_expect_eq(json_array_size(items), 1);
    json_decref(items);
    /* The registration token can sign out too. */
    json_decref(ts_call(PORT, "DELETE", "/v1/tokens/current", a.token, NULL, 204));
    free(tk_expect_problem(PORT, a.token, "GET", "/v1/tokens", NULL, 401));
    json_decref(p);
}

Test(tokens, another_users_token_is_not_found_and_stays)
{
    ts_user_t a, b;
    ts_register_all(PORT, "to", &a, &b, NULL);
    char phone[128];
    json_t *p = tk_create(PORT, a.token, "phone", 0, phone);
    char path[64];
    snprintf(path, sizeof(path), "/v1/tokens/%s", ts_str(p, "id"));
    char *detail = tk_expect_problem(PORT, b.token, "DELETE", path, NULL, 404);
    cr_expect(strstr(detail, ts_str(p, "id")), "detail: %s", detail);
    free(detail);
    cr_expect_eq(tk_me_status(PORT, phone), 200);
    /* Nor is b's user id a token of b's: b never had a pre-device token. */
    snprintf(path, sizeof(path), "/v1/tokens/%s", b.id);
    free(tk_expect_problem(PORT, b.token, "DELETE", path, NULL, 404));
    free(tk_expect_problem(PORT, b.token, "DELETE", "/v1/tokens/999999999999999", NULL, 404));
    json_decref(p);
}

Test(tokens, bad_requests_are_problems)
{
    ts_user_t a;
    ts_register(PORT, "tb", &a);
    static const char *const bad[] = {
        "{}",
        "[]",
        "\"phone\"",
        "{\"name\":",
        "{\"name\":null}",
        "{\"name\":7}",
        "{\"name\":[\"x\"]}",
        "{\"name\":\"\"}",
        "{\"name\":\"12345678901234567890123456789012345678901234567890123456789012345\"}",
        "{\"name\":\"tab\\there\"}",
        "{\"name\":\"new\\nline\"}",
        "{\"name\":\"del\\u007f\"}",
        "{\"name\":\"c1\\u0085\"}",
        "{\"name\":\"phone\",\"extra\":1}",
        "{\"name\":\"phone\",\"expires_in\":59}",
        "{\"name\":\"phone\",\"expires_in\":0}",
        "{\"name\":\"phone\",\"expires_in\":-60}",
        "{\"name\":\"phone\",\"expires_in\":31536001}",
        "{\"name\":\"phone\",\"expires_in\":3600.5}",
        "{\"name\":\"phone\",\"expires_in\":\"3600\"}",
        "{\"name\":\"phone\",\"expires_in\":true}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        free(tk_expect_problem(PORT, a.token, "POST", "/v1/tokens", bad[i], 400));
    free(tk_expect_problem(PORT, a.token, "DELETE", "/v1/tokens/abc", NULL, 400));
    free(tk_expect_problem(PORT, a.token, "DELETE", "/v1/tokens/0", NULL, 400));
    /* None of them made a token. */
    json_t *items = tk_list(PORT, a.token);
    cr_expect_eq(json_array_size(items), 1);
    json_decref(items);

    /* Without a token, or with a bad one, every route is 401. */
    static const char *const tokens[] = {NULL, "tdg_1_2", "nope", "tdg_1_2_x", ""};
    for (size_t i = 0; i < sizeof(tokens) / sizeof(tokens[0]); i++) {
        free(tk_expect_problem(PORT, tokens[i], "POST", "/v1/tokens", "{\"name\":\"x\"}", 401));
        free(tk_expect_problem(PORT, tokens[i], "GET", "/v1/tokens", NULL, 401));
        free(tk_expect_problem(PORT, tokens[i], "DELETE", "/v1/tokens/current", NULL, 401));
        free(tk_expect_problem(PORT, tokens[i], "DELETE", "/v1/tokens/1", NULL, 401));
    }
    /* A well-formed token of a's with a made-up token id or secret. */
    char forged[160];
    snprintf(forged, sizeof(forged), "tdg_%s_12345_%.43s", a.id,
             "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    free(tk_expect_problem(PORT, forged, "GET", "/v1/me", NULL, 401));
    snprintf(forged, sizeof(forged), "%s", a.token);
    forged[strlen(forged) - 1] = forged[strlen(forged) - 1] == 'A' ? 'B' : 'A';
    free(tk_expect_problem(PORT, forged, "GET", "/v1/me", NULL, 401));
}

Test(tokens, a_user_holds_at_most_50_and_a_revoked_or_expired_one_frees_its_place)
{
    ts_user_t a;
    ts_register(PORT, "tc", &a);
    char first[24] = "";
    for (int i = 1; i < 50; i++) {
        char name[16];
        snprintf(name, sizeof(name), "device %d", i);
        json_t *t = tk_create(PORT, a.token, name, 0, NULL);
        if (i == 1)
            snprintf(first, sizeof(first), "%s", ts_str(t, "id"));
        json_decref(t);
    }
    char *detail =
        tk_expect_problem(PORT, a.token, "POST", "/v1/tokens", "{\"name\":\"one more\"}", 409);
    cr_expect(strstr(detail, "50"), "detail: %s", detail);
    free(detail);
    json_t *items = tk_list(PORT, a.token);
    cr_expect_eq(json_array_size(items), 50);
    json_decref(items);

    char path[64];
    snprintf(path, sizeof(path), "/v1/tokens/%s", first);
    json_decref(ts_call(PORT, "DELETE", path, a.token, NULL, 204));
    json_t *t = tk_create(PORT, a.token, "one more", 60, NULL);
    free(tk_expect_problem(PORT, a.token, "POST", "/v1/tokens", "{\"name\":\"two more\"}", 409));
    /* That one expires (Redis drops the key): its index entry no longer counts. */
    redisContext *c = ts_redis_connect(ts_redis_port());
    ts_redis_int(c, "PEXPIRE tok:{%s}:%s 1", a.id, ts_str(t, "id"));
    ts_redis_close(c);
    ts_sleep_ms(20);
    json_decref(tk_create(PORT, a.token, "two more", 0, NULL));
    json_decref(t);
}

Test(tokens, last_used_at_is_written_at_most_once_a_minute)
{
    ts_user_t a;
    ts_register(PORT, "tl", &a);
    char text[128];
    json_t *t = tk_create(PORT, a.token, "coarse", 0, text);
    redisContext *c = ts_redis_connect(ts_redis_port());
    char key[96];
    snprintf(key, sizeof(key), "tok:{%s}:%s", a.id, ts_str(t, "id"));
    redisReply *r = ts_redis_cmd_ok(c, "HGET %s last_used", key);
    cr_expect_str_eq(r->str, "0", "unused");
    freeReplyObject(r);

    cr_expect_eq(tk_me_status(PORT, text), 200);
    r = ts_redis_cmd_ok(c, "HGET %s last_used", key);
    unsigned long long first = strtoull(r->str, NULL, 10);
    freeReplyObject(r);
    cr_expect(first > wall_ms() - 10000, "last_used %llu", first);

    /* Another process verifies it afresh (no cache there): within the minute, no write. */
    ts_server_t other;
    ts_server_start_default(&other);
    cr_expect_eq(tk_me_status(other.port, text), 200);
    r = ts_redis_cmd_ok(c, "HGET %s last_used", key);
    cr_expect_eq(strtoull(r->str, NULL, 10), first, "written again within the minute");
    freeReplyObject(r);
    ts_server_stop_clean(&other, 10000);

    /* A minute later (as stored), the next fresh verification writes it. */
    ts_redis_int(c, "HSET %s last_used %llu", key, first - 61000);
    ts_server_start_default(&other);
    cr_expect_eq(tk_me_status(other.port, text), 200);
    r = ts_redis_cmd_ok(c, "HGET %s last_used", key);
    cr_expect(strtoull(r->str, NULL, 10) >= first, "not written after a minute: %s", r->str);
    freeReplyObject(r);
    ts_server_stop_clean(&other, 10000);
    ts_redis_close(c);
    json_decref(t);
}
