/* tests/tokens/test_legacy.c -- a user whose record was written before users held several
 * tokens ("tdg_<user>_<secret>", its SHA-256 in the user hash's token field): the token keeps
 * working, is listed as a token of its own, and can be revoked like any other. */
#include "tests/tokens/tokens_suite.h"

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
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

TestSuite(legacy, .init = setup, .fini = teardown, .timeout = 120);

/* Writes a user as storage/users.c did before tokens.c: the handle claimed, the hash with the
 * token's digest. id is made up (time-ordered ids are never this small, so no real user has
 * it); handle and token are written out. */
static void old_user(ts_user_t *u)
{
    ts_unique(u->handle, sizeof(u->handle), "old");
    /* From the kernel, not time ^ pid: two tests that seeded in the same millisecond with
     * neighbouring pids made the same id, and one test's user was the other's. */
    uint64_t rnd[7]; /* an id, and 43 bytes for the secret */
    cr_assert_eq(getrandom(rnd, sizeof(rnd), 0), (ssize_t)sizeof(rnd));
    u->num = 100000000000ULL + rnd[0] % 100000000000ULL;
    snprintf(u->id, sizeof(u->id), "%llu", (unsigned long long)u->num);
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char secret[44];
    for (int i = 0; i < 43; i++)
        secret[i] = abc[((const unsigned char *)&rnd[1])[i] % 64];
    secret[42] = '_'; /* base64url's '_' inside the secret must not confuse the parser */
    secret[43] = '\0';
    snprintf(u->token, sizeof(u->token), "tdg_%s_%s", u->id, secret);
    char hex[65];
    tk_sha256_hex(u->token, hex);
    redisContext *c = ts_redis_connect(ts_redis_port());
    freeReplyObject(ts_redis_cmd_ok(c, "SET handle:{%s} %s NX", u->handle, u->id));
    freeReplyObject(
        ts_redis_cmd_ok(c, "HSET user:{%s} handle %s display_name %s token %s created %llu", u->id,
                        u->handle, u->handle, hex, (unsigned long long)time(NULL) * 1000));
    ts_redis_close(c);
}

Test(legacy, an_old_token_keeps_working_and_is_listed_as_its_own)
{
    ts_user_t u;
    old_user(&u);
    json_t *me = ts_call(PORT, "GET", "/v1/me", u.token, NULL, 200);
    cr_expect_str_eq(ts_str(me, "handle"), u.handle);
    cr_expect_str_eq(ts_str(me, "id"), u.id);
    json_decref(me);

    json_t *items = tk_list(PORT, u.token);
    cr_assert_eq(json_array_size(items), 1);
    json_t *t = json_array_get(items, 0);
    cr_expect_str_eq(ts_str(t, "id"), u.id);
    cr_expect_str_eq(ts_str(t, "name"), "registration");
    cr_expect(json_is_true(json_object_get(t, "current")));
    cr_expect(json_is_null(json_object_get(t, "expires_at")));
    json_decref(items);

    /* The old token's user posts and adds a device like anyone. */
    json_decref(ts_call(PORT, "POST", "/v1/posts", u.token, "{\"text\":\"still here\"}", 202));
    char phone[128];
    json_t *p = tk_create(PORT, u.token, "phone", 0, phone);
    items = tk_list(PORT, phone);
    cr_expect_eq(json_array_size(items), 2);
    cr_expect(json_is_false(json_object_get(tk_find(items, u.id), "current")));
    cr_expect(json_is_true(json_object_get(tk_find(items, ts_str(p, "id")), "current")));
    json_decref(items);
    json_decref(p);
}

Test(legacy, an_old_token_signs_out_and_is_revoked_by_id)
{
    ts_user_t u, v;
    old_user(&u);
    old_user(&v);
    char phone[128];
    json_decref(tk_create(PORT, u.token, "phone", 0, phone));
    cr_expect_eq(tk_me_status(PORT, u.token), 200);
    json_decref(ts_call(PORT, "DELETE", "/v1/tokens/current", u.token, NULL, 204));
    free(tk_expect_problem(PORT, u.token, "GET", "/v1/me", NULL, 401));
    cr_expect_eq(tk_me_status(PORT, phone), 200);
    json_t *items = tk_list(PORT, phone);
    cr_expect_eq(json_array_size(items), 1);
    cr_expect_null(tk_find(items, u.id));
    json_decref(items);
    char path[64];
    snprintf(path, sizeof(path), "/v1/tokens/%s", u.id);
    free(tk_expect_problem(PORT, phone, "DELETE", path, NULL, 404));

    /* v's old token, revoked from another device by its id (the user's). */
    char laptop[128];
    json_decref(tk_create(PORT, v.token, "laptop", 0, laptop));
    snprintf(path, sizeof(path), "/v1/tokens/%s", v.id);
    json_decref(ts_call(PORT, "DELETE", path, laptop, NULL, 204));
    free(tk_expect_problem(PORT, v.token, "GET", "/v1/me", NULL, 401));
    /* Nor can one user revoke another's old token. */
    snprintf(path, sizeof(path), "/v1/tokens/%s", v.id);
    free(tk_expect_problem(PORT, phone, "DELETE", path, NULL, 404));
}
