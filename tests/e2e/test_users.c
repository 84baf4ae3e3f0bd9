/* tests/e2e/test_users.c -- registration, profiles and the follow graph over real HTTP. */
#include "tests/e2e/world.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

TestSuite(users_e2e, .init = world_setup, .fini = world_teardown, .timeout = 120);

Test(users_e2e, registers_and_reads_a_profile)
{
    char handle[32], body[128];
    ts_unique(handle, sizeof(handle), "Reg");
    snprintf(body, sizeof(body), "{\"handle\":\"%s\",\"display_name\":\"Reg \\u00c9xample\"}",
             handle);
    ts_resp_t r;
    ts_http(PORT, "POST", "/v1/users", NULL, NULL, body, &r);
    cr_assert_eq(r.status, 201, "%s", r.body);
    json_t *j = ts_resp_json(&r);
    json_t *user = json_object_get(j, "user");
    const char *id = ts_str(user, "id");
    char location[128], want[128];
    snprintf(want, sizeof(want), "/v1/users/%s", id);
    cr_expect_str_eq(ts_resp_header(&r, "Location", location, sizeof(location)), want);
    cr_expect_str_eq(ts_str(user, "handle"), handle);
    cr_expect_str_eq(ts_str(user, "display_name"), "Reg \xc3\x89xample");
    cr_expect(strncmp(ts_str(j, "token"), "tdg_", 4) == 0);
    ts_user_t me = {0};
    snprintf(me.id, sizeof(me.id), "%s", id);
    snprintf(me.token, sizeof(me.token), "%s", ts_str(j, "token"));

    json_t *p = ts_callf(PORT, "GET", &me, NULL, 200, "/v1/users/%s", id);
    cr_expect_str_eq(ts_str(p, "id"), id);
    cr_expect_str_eq(ts_str(p, "handle"), handle);
    cr_expect_str_eq(ts_str(p, "display_name"), "Reg \xc3\x89xample");
    cr_expect_str_eq(ts_str(p, "created_at"), ts_str(user, "created_at"));
    cr_expect_eq(json_integer_value(json_object_get(p, "followers_count")), 0);
    cr_expect_eq(json_integer_value(json_object_get(p, "following_count")), 0);
    cr_expect_eq(json_integer_value(json_object_get(p, "posts_count")), 0);
    json_decref(p);
    json_decref(j);
    ts_resp_free(&r);
}

Test(users_e2e, display_name_defaults_to_the_handle)
{
    json_t *p = ts_callf(PORT, "GET", &world.a, NULL, 200, "/v1/users/%s", world.a.id);
    cr_expect_str_eq(ts_str(p, "display_name"), world.a.handle);
    json_decref(p);
}

Test(users_e2e, another_user_reads_a_profile_with_counts)
{
    json_t *p = ts_callf(PORT, "GET", &world.b, NULL, 200, "/v1/users/%s", world.a.id);
    cr_expect_str_eq(ts_str(p, "handle"), world.a.handle);
    cr_expect_eq(json_integer_value(json_object_get(p, "posts_count")), 1);
    json_decref(p);
}

Test(users_e2e, head_answers_like_get_without_a_body)
{
    char req[512];
    int n = snprintf(req, sizeof(req),
                     "HEAD /v1/users/%s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                     "Connection: close\r\n\r\n",
                     world.a.id, world.a.token);
    ts_resp_t r;
    cr_assert_eq(ts_http_raw(PORT, req, (size_t)n, 10000, &r), 0);
    cr_expect_eq(r.status, 200);
    cr_expect_eq(r.body_len, 0);
    char ct[64];
    cr_expect_str_eq(ts_resp_header(&r, "Content-Type", ct, sizeof(ct)), "application/json");
    ts_resp_free(&r);
}

static json_int_t count(const ts_user_t *as, const char *id, const char *field)
{
    json_t *p = ts_callf(PORT, "GET", as, NULL, 200, "/v1/users/%s", id);
    json_int_t n = json_integer_value(json_object_get(p, field));
    json_decref(p);
    return n;
}

Test(users_e2e, follow_and_unfollow_are_idempotent)
{
    json_decref(ts_callf(PORT, "PUT", &world.a, NULL, 204, "/v1/users/%s/follow", world.b.id));
    json_decref(ts_callf(PORT, "PUT", &world.a, NULL, 204, "/v1/users/%s/follow", world.b.id));
    cr_expect_eq(count(&world.a, world.b.id, "followers_count"), 1);
    cr_expect_eq(count(&world.a, world.a.id, "following_count"), 1);
    json_t *list = ts_callf(PORT, "GET", &world.a, NULL, 200, "/v1/users/%s/followers", world.b.id);
    json_t *items = json_object_get(list, "items");
    cr_assert_eq(json_array_size(items), 1);
    cr_expect_str_eq(ts_str(json_array_get(items, 0), "id"), world.a.id);
    cr_expect(json_is_null(json_object_get(list, "next_cursor")));
    json_decref(list);

    json_decref(ts_callf(PORT, "DELETE", &world.a, NULL, 204, "/v1/users/%s/follow", world.b.id));
    json_decref(ts_callf(PORT, "DELETE", &world.a, NULL, 204, "/v1/users/%s/follow", world.b.id));
    cr_expect_eq(count(&world.a, world.b.id, "followers_count"), 0);
    cr_expect_eq(count(&world.a, world.a.id, "following_count"), 0);
    list = ts_callf(PORT, "GET", &world.a, NULL, 200, "/v1/users/%s/following", world.a.id);
    cr_expect_eq(json_array_size(json_object_get(list, "items")), 0);
    json_decref(list);
}

Test(users_e2e, followers_paginate_newest_first_without_gaps_or_duplicates)
{
    enum { N = 17 };
    ts_user_t fans[N];
    for (int i = 0; i < N; i++) {
        ts_register(PORT, "fan", &fans[i]);
        json_decref(ts_callf(PORT, "PUT", &fans[i], NULL, 204, "/v1/users/%s/follow", world.a.id));
    }
    char path[64], ids[N + 5][24];
    snprintf(path, sizeof(path), "/v1/users/%s/followers", world.a.id);
    int pages;
    size_t n = world_walk(&world.b, path, 5, ids, N + 5, &pages);
    cr_expect_eq(n, N);
    cr_expect_eq(pages, 4, "17 in pages of 5 took %d pages", pages);
    for (size_t i = 0; i < n && i < N; i++)
        cr_expect_str_eq(ids[i], fans[N - 1 - i].id, "item %zu", i);
}

Test(users_e2e, following_paginates_and_exact_multiple_ends_with_null_cursor)
{
    enum { N = 6 };
    ts_user_t stars[N];
    for (int i = 0; i < N; i++) {
        ts_register(PORT, "star", &stars[i]);
        json_decref(ts_callf(PORT, "PUT", &world.b, NULL, 204, "/v1/users/%s/follow", stars[i].id));
    }
    char path[64], ids[N + 5][24];
    snprintf(path, sizeof(path), "/v1/users/%s/following", world.b.id);
    int pages;
    size_t n = world_walk(&world.a, path, 3, ids, N + 5, &pages);
    cr_expect_eq(n, N);
    cr_expect_eq(pages, 2, "6 in pages of 3 took %d pages", pages);
    for (size_t i = 0; i < n && i < N; i++)
        cr_expect_str_eq(ids[i], stars[N - 1 - i].id, "item %zu", i);
}

Test(users_e2e, list_items_are_full_user_objects)
{
    json_decref(ts_callf(PORT, "PUT", &world.b, NULL, 204, "/v1/users/%s/follow", world.a.id));
    json_t *list =
        ts_callf(PORT, "GET", &world.a, NULL, 200, "/v1/users/%s/followers?limit=1", world.a.id);
    json_t *u = json_array_get(json_object_get(list, "items"), 0);
    cr_assert(json_is_object(u));
    cr_expect_str_eq(ts_str(u, "handle"), world.b.handle);
    cr_expect(json_is_string(json_object_get(u, "created_at")));
    cr_expect_eq(json_integer_value(json_object_get(u, "following_count")), 1);
    cr_expect_eq(json_integer_value(json_object_get(u, "posts_count")), 1);
    json_decref(list);
}
