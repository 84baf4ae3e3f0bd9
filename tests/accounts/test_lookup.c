/* tests/accounts/test_lookup.c -- GET /v1/users/lookup: a handle in any case finds its user,
 * blocks either way hide it (404 as an unknown handle), and a missing or impossible handle
 * is a 400 problem. */
#include "tests/accounts/accounts.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

TestSuite(lookup, .init = accounts_setup, .fini = accounts_teardown, .timeout = 120);

/* accounts_problem for GET path_fmt with one string argument. */
static void expect_at(const char *token, const char *path_fmt, const char *arg, int status)
{
    char path[256];
    snprintf(path, sizeof(path), path_fmt, arg);
    accounts_problem(token, "GET", path, NULL, status);
}

static json_t *lookup(const ts_user_t *as, const char *handle, int status)
{
    return ts_callf(PORT, "GET", as, NULL, status, "/v1/users/lookup?handle=%s", handle);
}

Test(lookup, finds_a_handle_in_any_case)
{
    ts_user_t a, b;
    ts_register_all(PORT, "Lk", &a, &b, NULL);
    char upper[40], lower[40];
    for (size_t i = 0; i <= strlen(b.handle); i++) {
        upper[i] =
            (char)(b.handle[i] >= 'a' && b.handle[i] <= 'z' ? b.handle[i] - 32 : b.handle[i]);
        lower[i] =
            (char)(b.handle[i] >= 'A' && b.handle[i] <= 'Z' ? b.handle[i] + 32 : b.handle[i]);
    }
    const char *forms[] = {b.handle, upper, lower};
    for (size_t i = 0; i < 3; i++) {
        json_t *u = lookup(&a, forms[i], 200);
        cr_expect_str_eq(ts_str(u, "id"), b.id, "%s", forms[i]);
        cr_expect_str_eq(ts_str(u, "handle"), b.handle, "the handle keeps its case");
        cr_expect_str_eq(ts_str(u, "bio"), "");
        json_decref(u);
    }
    /* Yourself too. */
    json_t *self = lookup(&a, a.handle, 200);
    cr_expect_str_eq(ts_str(self, "id"), a.id);
    json_decref(self);
}

Test(lookup, blocks_either_way_answer_404)
{
    ts_user_t a, b, c;
    ts_register_all(PORT, "lb", &a, &b, &c, NULL);
    json_decref(ts_callf(PORT, "PUT", &a, NULL, 204, "/v1/users/%s/block", b.id));
    expect_at(b.token, "/v1/users/lookup?handle=%s", a.handle, 404);
    expect_at(a.token, "/v1/users/lookup?handle=%s", b.handle, 404);
    json_decref(lookup(&c, b.handle, 200)); /* others still see both */
    json_decref(lookup(&c, a.handle, 200));
    json_decref(ts_callf(PORT, "DELETE", &a, NULL, 204, "/v1/users/%s/block", b.id));
    json_decref(lookup(&b, a.handle, 200));
}

Test(lookup, bad_and_unknown_handles_are_problems)
{
    ts_user_t a;
    ts_register(PORT, "lu", &a);
    expect_at(a.token, "/v1/users/lookup%s", "", 400);
    expect_at(a.token, "/v1/users/lookup?h%s", "andle_typo=x", 400);
    static const char *const bad[] = {
        "",      "has%20space", "dash-ed", "%C3%A9",
        "a%00b", "%40at",       "a.b",     "1234567890123456789012345678901"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_at(a.token, "/v1/users/lookup?handle=%s", bad[i], 400);
    expect_at(a.token, "/v1/users/lookup?handle=%s", "nobody_has_this_1", 404);
    expect_at(NULL, "/v1/users/lookup?handle=%s", a.handle, 401);
}

Test(lookup, other_methods_are_405_with_each_allowed_method_once)
{
    ts_user_t a;
    ts_register(PORT, "lm", &a);
    accounts_problem(a.token, "POST", "/v1/users/lookup?handle=x", NULL, 405);
    ts_resp_t r;
    ts_http(PORT, "DELETE", "/v1/users/lookup", a.token, NULL, NULL, &r);
    char allow[64];
    const char *got = ts_resp_header(&r, "Allow", allow, sizeof(allow));
    cr_expect(got && strcmp(got, "GET, HEAD") == 0, "Allow: %s", got ? got : "(none)");
    ts_resp_free(&r);
    /* "lookup" is no id: GET /v1/users/lookup never reaches /v1/users/{id}. */
    accounts_problem(a.token, "GET", "/v1/users/lookups", NULL, 400);
}
