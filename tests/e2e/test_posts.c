/* tests/e2e/test_posts.c -- publishing, reading, deleting, author pages, idempotency keys,
 * mentions and replies over real HTTP. */
#include "tests/e2e/world.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

TestSuite(posts_e2e, .init = world_setup, .fini = world_teardown, .timeout = 120);

/* POST /v1/posts as u with body and extra headers; the response is the caller's. */
static void publish(const ts_user_t *u, const char *headers, const char *body, ts_resp_t *r)
{
    ts_http(PORT, "POST", "/v1/posts", u->token, headers, body, r);
}

/* An Idempotency-Key header line with a fresh key. */
static void fresh_key(char headers[128])
{
    char key[64];
    ts_unique(key, sizeof(key), "key");
    snprintf(headers, 128, "Idempotency-Key: %s\r\n", key);
}

Test(posts_e2e, publishes_with_202_and_location_then_reads_it)
{
    ts_resp_t r;
    publish(&world.a, NULL, "{\"text\":\"hello world\"}", &r);
    cr_assert_eq(r.status, 202, "%s", r.body);
    json_t *p = ts_resp_json(&r);
    const char *id = ts_str(p, "id");
    char location[128], want[128];
    snprintf(want, sizeof(want), "/v1/posts/%s", id);
    cr_expect_str_eq(ts_resp_header(&r, "Location", location, sizeof(location)), want);
    json_t *author = json_object_get(p, "author");
    cr_expect_str_eq(ts_str(author, "id"), world.a.id);
    cr_expect_str_eq(ts_str(author, "handle"), world.a.handle);
    cr_expect_str_eq(ts_str(p, "text"), "hello world");
    cr_expect(json_is_null(json_object_get(p, "reply_to")));
    cr_expect_eq(json_array_size(json_object_get(p, "mentions")), 0);
    cr_expect(json_is_string(json_object_get(p, "created_at")));
    cr_expect_eq(json_integer_value(json_object_get(p, "like_count")), 0);

    json_t *got = ts_callf(PORT, "GET", &world.b, NULL, 200, "%s", location);
    cr_expect_str_eq(ts_str(got, "id"), id);
    cr_expect_str_eq(ts_str(got, "text"), "hello world");
    cr_expect_str_eq(ts_str(json_object_get(got, "author"), "id"), world.a.id);
    cr_expect_str_eq(ts_str(got, "created_at"), ts_str(p, "created_at"));
    json_decref(got);
    json_decref(p);
    ts_resp_free(&r);
}

Test(posts_e2e, author_posts_paginate_newest_first_without_gaps_or_duplicates)
{
    enum { N = 23 };
    char ids[N][24];
    for (int i = 0; i < N; i++) {
        char text[32];
        snprintf(text, sizeof(text), "post %d", i);
        ts_post(PORT, &world.b, text, ids[i]);
    }
    /* b also has the world's post_b, the oldest: N + 1 posts in pages of 5. */
    char seen[N + 8][24], path[64];
    snprintf(path, sizeof(path), "/v1/users/%s/posts", world.b.id);
    int pages;
    size_t n = world_walk(&world.a, path, 5, seen, N + 8, &pages);
    cr_expect_eq(n, N + 1);
    cr_expect_eq(pages, 5);
    for (size_t i = 0; i < N && i < n; i++)
        cr_expect_str_eq(seen[i], ids[N - 1 - i], "item %zu", i);
    if (n == N + 1)
        cr_expect_str_eq(seen[N], world.post_b);
    json_t *u = ts_callf(PORT, "GET", &world.a, NULL, 200, "/v1/users/%s", world.b.id);
    cr_expect_eq(json_integer_value(json_object_get(u, "posts_count")), N + 1);
    json_decref(u);
}

Test(posts_e2e, author_deletes_with_204_then_it_is_gone)
{
    json_decref(ts_callf(PORT, "DELETE", &world.a, NULL, 204, "/v1/posts/%s", world.post_a));
    json_decref(ts_callf(PORT, "GET", &world.a, NULL, 404, "/v1/posts/%s", world.post_a));
    json_decref(ts_callf(PORT, "DELETE", &world.a, NULL, 404, "/v1/posts/%s", world.post_a));
    json_t *list = ts_callf(PORT, "GET", &world.b, NULL, 200, "/v1/users/%s/posts", world.a.id);
    cr_expect_eq(json_array_size(json_object_get(list, "items")), 0);
    json_decref(list);
    json_t *u = ts_callf(PORT, "GET", &world.b, NULL, 200, "/v1/users/%s", world.a.id);
    cr_expect_eq(json_integer_value(json_object_get(u, "posts_count")), 0);
    json_decref(u);
}

Test(posts_e2e, someone_elses_post_cannot_be_deleted)
{
    json_t *p = ts_callf(PORT, "DELETE", &world.b, NULL, 403, "/v1/posts/%s", world.post_a);
    cr_expect_eq(json_integer_value(json_object_get(p, "status")), 403);
    json_decref(p);
    json_decref(ts_callf(PORT, "GET", &world.b, NULL, 200, "/v1/posts/%s", world.post_a));
}

Test(posts_e2e, idempotency_key_replay_returns_the_same_post_once)
{
    char headers[128];
    fresh_key(headers);
    const char *body = "{\"text\":\"exactly once\"}";
    ts_resp_t r1, r2;
    publish(&world.a, headers, body, &r1);
    publish(&world.a, headers, body, &r2);
    cr_assert_eq(r1.status, 202, "%s", r1.body);
    cr_assert_eq(r2.status, 202, "%s", r2.body);
    json_t *p1 = ts_resp_json(&r1), *p2 = ts_resp_json(&r2);
    cr_expect_str_eq(ts_str(p1, "id"), ts_str(p2, "id"));
    char l1[128], l2[128];
    cr_expect_str_eq(ts_resp_header(&r1, "Location", l1, sizeof(l1)),
                     ts_resp_header(&r2, "Location", l2, sizeof(l2)));
    json_t *list = ts_callf(PORT, "GET", &world.a, NULL, 200, "/v1/users/%s/posts", world.a.id);
    size_t copies = 0;
    json_t *items = json_object_get(list, "items");
    for (size_t i = 0; i < json_array_size(items); i++)
        copies += strcmp(ts_str(json_array_get(items, i), "text"), "exactly once") == 0;
    cr_expect_eq(copies, 1, "%zu copies in the author's list", copies);
    cr_expect_eq(json_array_size(items), 2); /* post_a and this one */
    json_decref(list);
    json_decref(p1);
    json_decref(p2);
    ts_resp_free(&r1);
    ts_resp_free(&r2);
}

Test(posts_e2e, idempotency_key_with_another_body_is_422)
{
    char headers[128];
    fresh_key(headers);
    ts_resp_t r;
    publish(&world.a, headers, "{\"text\":\"first\"}", &r);
    cr_assert_eq(r.status, 202, "%s", r.body);
    ts_resp_free(&r);
    publish(&world.a, headers, "{\"text\":\"second\"}", &r);
    cr_expect_eq(r.status, 422, "%s", r.body);
    ts_resp_free(&r);
}

Test(posts_e2e, idempotency_keys_belong_to_their_user)
{
    char headers[128];
    fresh_key(headers);
    ts_resp_t ra, rb;
    publish(&world.a, headers, "{\"text\":\"same\"}", &ra);
    publish(&world.b, headers, "{\"text\":\"same\"}", &rb);
    cr_assert_eq(ra.status, 202);
    cr_assert_eq(rb.status, 202);
    json_t *pa = ts_resp_json(&ra), *pb = ts_resp_json(&rb);
    cr_expect_str_neq(ts_str(pa, "id"), ts_str(pb, "id"));
    json_decref(pa);
    json_decref(pb);
    ts_resp_free(&ra);
    ts_resp_free(&rb);
}

Test(posts_e2e, idempotency_replay_of_a_deleted_post_is_409)
{
    char headers[128];
    fresh_key(headers);
    ts_resp_t r;
    publish(&world.a, headers, "{\"text\":\"short lived\"}", &r);
    cr_assert_eq(r.status, 202);
    json_t *p = ts_resp_json(&r);
    json_decref(ts_callf(PORT, "DELETE", &world.a, NULL, 204, "/v1/posts/%s", ts_str(p, "id")));
    json_decref(p);
    ts_resp_free(&r);
    publish(&world.a, headers, "{\"text\":\"short lived\"}", &r);
    cr_expect_eq(r.status, 409, "%s", r.body);
    ts_resp_free(&r);
}

Test(posts_e2e, mentions_resolve_to_ids_and_drop_unknown_handles)
{
    char body[256], ghost[32];
    ts_unique(ghost, sizeof(ghost), "ghost");
    char upper_a[32];
    for (size_t i = 0; i <= strlen(world.a.handle); i++)
        upper_a[i] =
            (char)(world.a.handle[i] >= 'a' && world.a.handle[i] <= 'z' ? world.a.handle[i] - 32
                                                                        : world.a.handle[i]);
    snprintf(body, sizeof(body), "{\"text\":\"hi @%s and @%s and @%s, again @%s\"}", world.b.handle,
             ghost, upper_a, world.b.handle);
    ts_resp_t r;
    publish(&world.a, NULL, body, &r);
    cr_assert_eq(r.status, 202, "%s", r.body);
    json_t *p = ts_resp_json(&r);
    json_t *m = json_object_get(p, "mentions");
    cr_assert_eq(json_array_size(m), 2, "mentions: %s", r.body);
    cr_expect_str_eq(json_string_value(json_array_get(m, 0)), world.b.id);
    cr_expect_str_eq(json_string_value(json_array_get(m, 1)), world.a.id);
    json_t *got = ts_callf(PORT, "GET", &world.b, NULL, 200, "/v1/posts/%s", ts_str(p, "id"));
    cr_expect(json_equal(json_object_get(got, "mentions"), m), "stored mentions differ");
    json_decref(got);
    json_decref(p);
    ts_resp_free(&r);
}

Test(posts_e2e, reply_to_an_existing_post_is_kept)
{
    char body[128];
    snprintf(body, sizeof(body), "{\"text\":\"a reply\",\"reply_to\":\"%s\"}", world.post_a);
    json_t *p = ts_callf(PORT, "POST", &world.b, body, 202, "/v1/posts");
    cr_expect_str_eq(ts_str(p, "reply_to"), world.post_a);
    json_decref(p);
}

Test(posts_e2e, reply_to_a_missing_or_deleted_post_is_422)
{
    char body[128];
    snprintf(body, sizeof(body), "{\"text\":\"into the void\",\"reply_to\":\"%s\"}",
             "9007199254740991");
    json_decref(ts_callf(PORT, "POST", &world.b, body, 422, "/v1/posts"));
    json_decref(ts_callf(PORT, "DELETE", &world.a, NULL, 204, "/v1/posts/%s", world.post_a));
    snprintf(body, sizeof(body), "{\"text\":\"too late\",\"reply_to\":\"%s\"}", world.post_a);
    json_decref(ts_callf(PORT, "POST", &world.b, body, 422, "/v1/posts"));
}
