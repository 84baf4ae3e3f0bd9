/* tests/e2e/test_users.c -- registration, profiles and the follow graph over real HTTP. */
#include "tests/e2e/world.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

static world_t w;
#define PORT (w.srv.port)

static void setup(void)
{
    world_start(&w);
}

static void teardown(void)
{
    world_stop(&w);
}

TestSuite(users_e2e, .init = setup, .fini = teardown, .timeout = 120);

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
    const char *id = e2e_str(user, "id");
    char location[128], want[128];
    snprintf(want, sizeof(want), "/v1/users/%s", id);
    cr_expect_str_eq(ts_resp_header(&r, "Location", location, sizeof(location)), want);
    cr_expect_str_eq(e2e_str(user, "handle"), handle);
    cr_expect_str_eq(e2e_str(user, "display_name"), "Reg \xc3\x89xample");
    cr_expect(strncmp(e2e_str(j, "token"), "tdg_", 4) == 0);
    e2e_user_t me = {0};
    snprintf(me.id, sizeof(me.id), "%s", id);
    snprintf(me.token, sizeof(me.token), "%s", e2e_str(j, "token"));

    json_t *p = e2e_call(PORT, "GET", &me, NULL, 200, "/v1/users/%s", id);
    cr_expect_str_eq(e2e_str(p, "id"), id);
    cr_expect_str_eq(e2e_str(p, "handle"), handle);
    cr_expect_str_eq(e2e_str(p, "display_name"), "Reg \xc3\x89xample");
    cr_expect_str_eq(e2e_str(p, "created_at"), e2e_str(user, "created_at"));
    cr_expect_eq(json_integer_value(json_object_get(p, "followers_count")), 0);
    cr_expect_eq(json_integer_value(json_object_get(p, "following_count")), 0);
    cr_expect_eq(json_integer_value(json_object_get(p, "posts_count")), 0);
    json_decref(p);
    json_decref(j);
    ts_resp_free(&r);
}

Test(users_e2e, display_name_defaults_to_the_handle)
{
    json_t *p = e2e_call(PORT, "GET", &w.a, NULL, 200, "/v1/users/%s", w.a.id);
    cr_expect_str_eq(e2e_str(p, "display_name"), w.a.handle);
    json_decref(p);
}

Test(users_e2e, another_user_reads_a_profile_with_counts)
{
    json_t *p = e2e_call(PORT, "GET", &w.b, NULL, 200, "/v1/users/%s", w.a.id);
    cr_expect_str_eq(e2e_str(p, "handle"), w.a.handle);
    cr_expect_eq(json_integer_value(json_object_get(p, "posts_count")), 1);
    json_decref(p);
}

Test(users_e2e, head_answers_like_get_without_a_body)
{
    char req[512];
    int n = snprintf(req, sizeof(req),
                     "HEAD /v1/users/%s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                     "Connection: close\r\n\r\n", w.a.id, w.a.token);
    ts_resp_t r;
    cr_assert_eq(ts_http_raw(PORT, req, (size_t)n, 10000, &r), 0);
    cr_expect_eq(r.status, 200);
    cr_expect_eq(r.body_len, 0);
    char ct[64];
    cr_expect_str_eq(ts_resp_header(&r, "Content-Type", ct, sizeof(ct)), "application/json");
    ts_resp_free(&r);
}

static json_int_t count(const e2e_user_t *as, const char *id, const char *field)
{
    json_t *p = e2e_call(PORT, "GET", as, NULL, 200, "/v1/users/%s", id);
    json_int_t n = json_integer_value(json_object_get(p, field));
    json_decref(p);
    return n;
}

Test(users_e2e, follow_and_unfollow_are_idempotent)
{
    json_decref(e2e_call(PORT, "PUT", &w.a, NULL, 204, "/v1/users/%s/follow", w.b.id));
    json_decref(e2e_call(PORT, "PUT", &w.a, NULL, 204, "/v1/users/%s/follow", w.b.id));
    cr_expect_eq(count(&w.a, w.b.id, "followers_count"), 1);
    cr_expect_eq(count(&w.a, w.a.id, "following_count"), 1);
    json_t *list = e2e_call(PORT, "GET", &w.a, NULL, 200, "/v1/users/%s/followers", w.b.id);
    json_t *items = json_object_get(list, "items");
    cr_assert_eq(json_array_size(items), 1);
    cr_expect_str_eq(e2e_str(json_array_get(items, 0), "id"), w.a.id);
    cr_expect(json_is_null(json_object_get(list, "next_cursor")));
    json_decref(list);

    json_decref(e2e_call(PORT, "DELETE", &w.a, NULL, 204, "/v1/users/%s/follow", w.b.id));
    json_decref(e2e_call(PORT, "DELETE", &w.a, NULL, 204, "/v1/users/%s/follow", w.b.id));
    cr_expect_eq(count(&w.a, w.b.id, "followers_count"), 0);
    cr_expect_eq(count(&w.a, w.a.id, "following_count"), 0);
    list = e2e_call(PORT, "GET", &w.a, NULL, 200, "/v1/users/%s/following", w.a.id);
    cr_expect_eq(json_array_size(json_object_get(list, "items")), 0);
    json_decref(list);
}

/* Walks every page of path with limit; fills ids (newest first) and returns how many. */
static size_t walk(const e2e_user_t *as, const char *path, int limit, char (*ids)[24],
                   size_t max, int *pages)
{
    size_t n = 0;
    char cursor[32] = "";
    *pages = 0;
    do {
        json_t *page = cursor[0]
                           ? e2e_call(PORT, "GET", as, NULL, 200, "%s?limit=%d&cursor=%s", path,
                                      limit, cursor)
                           : e2e_call(PORT, "GET", as, NULL, 200, "%s?limit=%d", path, limit);
        json_t *items = json_object_get(page, "items");
        cr_assert(json_is_array(items));
        cr_assert_leq(json_array_size(items), (size_t)limit);
        for (size_t i = 0; i < json_array_size(items); i++) {
            cr_assert_lt(n, max, "more items than exist");
            snprintf(ids[n++], 24, "%s", e2e_str(json_array_get(items, i), "id"));
        }
        json_t *next = json_object_get(page, "next_cursor");
        cr_assert(json_is_null(next) || json_is_string(next), "next_cursor is neither");
        snprintf(cursor, sizeof(cursor), "%s", json_is_string(next) ? json_string_value(next) : "");
        json_decref(page);
        (*pages)++;
    } while (cursor[0] && *pages < 100);
    return n;
}

Test(users_e2e, followers_paginate_newest_first_without_gaps_or_duplicates)
{
    enum { N = 17 };
    e2e_user_t fans[N];
    for (int i = 0; i < N; i++) {
        e2e_register(PORT, "fan", &fans[i]);
        json_decref(e2e_call(PORT, "PUT", &fans[i], NULL, 204, "/v1/users/%s/follow", w.a.id));
    }
    char path[64], ids[N + 5][24];
    snprintf(path, sizeof(path), "/v1/users/%s/followers", w.a.id);
    int pages;
    size_t n = walk(&w.b, path, 5, ids, N + 5, &pages);
    cr_expect_eq(n, N);
    cr_expect_eq(pages, 4, "17 in pages of 5 took %d pages", pages);
    for (size_t i = 0; i < n && i < N; i++)
        cr_expect_str_eq(ids[i], fans[N - 1 - i].id, "item %zu", i);
}

Test(users_e2e, following_paginates_and_exact_multiple_ends_with_null_cursor)
{
    enum { N = 6 };
    e2e_user_t stars[N];
    for (int i = 0; i < N; i++) {
        e2e_register(PORT, "star", &stars[i]);
        json_decref(e2e_call(PORT, "PUT", &w.b, NULL, 204, "/v1/users/%s/follow", stars[i].id));
    }
    char path[64], ids[N + 5][24];
    snprintf(path, sizeof(path), "/v1/users/%s/following", w.b.id);
    int pages;
    size_t n = walk(&w.a, path, 3, ids, N + 5, &pages);
    cr_expect_eq(n, N);
    cr_expect_eq(pages, 2, "6 in pages of 3 took %d pages", pages);
    for (size_t i = 0; i < n && i < N; i++)
        cr_expect_str_eq(ids[i], stars[N - 1 - i].id, "item %zu", i);
}

Test(users_e2e, list_items_are_full_user_objects)
{
    json_decref(e2e_call(PORT, "PUT", &w.b, NULL, 204, "/v1/users/%s/follow", w.a.id));
    json_t *list = e2e_call(PORT, "GET", &w.a, NULL, 200, "/v1/users/%s/followers?limit=1",
                            w.a.id);
    json_t *u = json_array_get(json_object_get(list, "items"), 0);
    cr_assert(json_is_object(u));
    cr_expect_str_eq(e2e_str(u, "handle"), w.b.handle);
    cr_expect(json_is_string(json_object_get(u, "created_at")));
    cr_expect_eq(json_integer_value(json_object_get(u, "following_count")), 1);
    cr_expect_eq(json_integer_value(json_object_get(u, "posts_count")), 1);
    json_decref(list);
}
