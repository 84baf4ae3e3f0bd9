/* tests/accounts/test_me.c -- GET /v1/me and PATCH /v1/me: the caller's own profile read
 * fresh, display name and bio edits shown everywhere a user is, and every refused edit a
 * problem document that changed nothing. */
#include "tests/accounts/accounts.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

TestSuite(me, .init = accounts_setup, .fini = accounts_teardown, .timeout = 120);

static json_t *patch_me(const ts_user_t *u, const char *body, int status)
{
    return ts_call(PORT, "PATCH", "/v1/me", u->token, body, status);
}

Test(me, get_answers_the_caller_with_an_empty_bio_and_counts)
{
    ts_user_t a, b;
    ts_register_all(PORT, "me", &a, &b, NULL);
    ts_follow(PORT, &b, &a);
    char post[24];
    ts_post(PORT, &a, "hello", post);
    json_t *me = ts_call(PORT, "GET", "/v1/me", a.token, NULL, 200);
    cr_expect_str_eq(ts_str(me, "id"), a.id);
    cr_expect_str_eq(ts_str(me, "handle"), a.handle);
    cr_expect_str_eq(ts_str(me, "bio"), "");
    cr_expect_eq(ts_int(me, "followers_count"), 1);
    cr_expect_eq(ts_int(me, "posts_count"), 1);
    json_decref(me);
}

Test(me, patch_sets_name_and_bio_and_every_view_shows_them_at_once)
{
    ts_user_t a, b;
    ts_register_all(PORT, "mp", &a, &b, NULL);
    /* The token cache holds a's old profile now; GET /v1/me must not answer from it. */
    json_decref(ts_call(PORT, "GET", "/v1/me", a.token, NULL, 200));
    json_t *u = patch_me(
        &a, "{\"display_name\":\"Ana \xc3\x89lise\",\"bio\":\"line one\\nline two\"}", 200);
    cr_expect_str_eq(ts_str(u, "display_name"), "Ana \xc3\x89lise");
    cr_expect_str_eq(ts_str(u, "bio"), "line one\nline two");
    cr_expect_str_eq(ts_str(u, "id"), a.id);
    json_decref(u);

    json_t *me = ts_call(PORT, "GET", "/v1/me", a.token, NULL, 200);
    cr_expect_str_eq(ts_str(me, "display_name"), "Ana \xc3\x89lise");
    cr_expect_str_eq(ts_str(me, "bio"), "line one\nline two");
    json_decref(me);
    json_t *seen = ts_callf(PORT, "GET", &b, NULL, 200, "/v1/users/%s", a.id);
    cr_expect_str_eq(ts_str(seen, "bio"), "line one\nline two");
    json_decref(seen);

    /* One field alone leaves the other; an empty bio clears it. */
    u = patch_me(&a, "{\"bio\":\"\"}", 200);
    cr_expect_str_eq(ts_str(u, "bio"), "");
    cr_expect_str_eq(ts_str(u, "display_name"), "Ana \xc3\x89lise");
    json_decref(u);
    u = patch_me(&a, "{\"display_name\":\"Ana\"}", 200);
    cr_expect_str_eq(ts_str(u, "display_name"), "Ana");
    json_decref(u);
}

Test(me, bio_counts_code_points_not_bytes)
{
    ts_user_t a;
    ts_register(PORT, "mb", &a);
    /* 160 four-byte characters (640 bytes) fit; 161 do not. */
    char body[1024];
    size_t n = (size_t)snprintf(body, sizeof(body), "{\"bio\":\"");
    for (int i = 0; i < 160; i++)
        n += (size_t)snprintf(body + n, sizeof(body) - n, "\xf0\x9f\x8c\x8a");
    snprintf(body + n, sizeof(body) - n, "\"}");
    json_t *u = patch_me(&a, body, 200);
    cr_expect_eq(strlen(ts_str(u, "bio")), 640);
    json_decref(u);
    snprintf(body + n, sizeof(body) - n, "x\"}");
    accounts_problem(a.token, "PATCH", "/v1/me", body, 400);
    json_t *me = ts_call(PORT, "GET", "/v1/me", a.token, NULL, 200);
    cr_expect_eq(strlen(ts_str(me, "bio")), 640, "the refused edit changed nothing");
    json_decref(me);
}

Test(me, refused_edits_are_problems_and_change_nothing)
{
    ts_user_t a;
    ts_register(PORT, "mr", &a);
    json_decref(patch_me(&a, "{\"display_name\":\"Kept\",\"bio\":\"kept\"}", 200));
    static const char *const bad[] = {
        "{}",
        "[]",
        "\"bio\"",
        "{\"bio\":",
        "{\"handle\":\"other\"}",
        "{\"bio\":\"ok\",\"extra\":1}",
        "{\"bio\":null}",
        "{\"bio\":7}",
        "{\"display_name\":null}",
        "{\"display_name\":[\"x\"]}",
        "{\"display_name\":\"\"}",
        "{\"display_name\":\"123456789012345678901234567890123456789012345678901\"}",
        "{\"display_name\":\"tab\\there\"}",
        "{\"display_name\":\"new\\nline\"}",
        "{\"display_name\":\"c1\\u0085\"}",
        "{\"display_name\":\"zero\\u200bwidth\"}",
        "{\"display_name\":\"joiner\\u200d\"}",
        "{\"display_name\":\"soft\\u00adhyphen\"}",
        "{\"display_name\":\"bom\\ufeff\"}",
        "{\"display_name\":\"inv\\u2064\"}",
        "{\"display_name\":\"rlo\\u202eevil\"}",
        "{\"bio\":\"isolate\\u2066x\\u2069\"}",
        "{\"bio\":\"override\\u202a\"}",
        "{\"bio\":\"tab\\tinside\"}",
        "{\"bio\":\"cr\\r\"}",
        "{\"bio\":\"del\\u007f\"}",
        "{\"bio\":\"ok\",\"display_name\":\"\\u202e\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        accounts_problem(a.token, "PATCH", "/v1/me", bad[i], 400);
    json_t *me = ts_call(PORT, "GET", "/v1/me", a.token, NULL, 200);
    cr_expect_str_eq(ts_str(me, "display_name"), "Kept");
    cr_expect_str_eq(ts_str(me, "bio"), "kept");
    json_decref(me);

    /* A zero-width character is fine in a bio, and a 50-character name is fine. */
    json_decref(patch_me(&a, "{\"bio\":\"a\\u200db\"}", 200));
    json_decref(patch_me(
        &a, "{\"display_name\":\"12345678901234567890123456789012345678901234567890\"}", 200));
}

Test(me, needs_a_valid_token)
{
    accounts_problem(NULL, "GET", "/v1/me", NULL, 401);
    accounts_problem(NULL, "PATCH", "/v1/me", "{\"bio\":\"x\"}", 401);
    accounts_problem("tdg_1_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "GET", "/v1/me", NULL,
                     401);
    ts_user_t a;
    ts_register(PORT, "mt", &a);
    accounts_problem(a.token, "PUT", "/v1/me", "{\"bio\":\"x\"}", 405);
}
