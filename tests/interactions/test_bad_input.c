/* tests/interactions/test_bad_input.c -- refusals of the interaction routes: missing and
 * deleted posts (404, or 422 as a reply's parent), yourself (422), unknown users (404), bad
 * ids, pages and read bodies (400), no token (401); each a problem document. */
#include "tests/interactions/ix.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

TestSuite(bad_input, .init = ix_setup, .fini = ix_teardown, .timeout = 120);

/* Sends the request and expects status with a problem+json body repeating it. */
static void expect_problem(const ts_user_t *as, const char *method, const char *path,
                           const char *body, int status)
{
    ts_resp_t r;
    ts_http(PORT, method, path, as ? as->token : NULL, NULL, body, &r);
    cr_expect_eq(r.status, status, "%s %s %s: expected %d, got %d: %s", method, path,
                 body ? body : "", status, r.status, r.body);
    char ct[96];
    const char *got = ts_resp_header(&r, "Content-Type", ct, sizeof(ct));
    cr_expect(got && strncmp(got, "application/problem+json", 24) == 0, "%s %s: Content-Type %s",
              method, path, got ? got : "(none)");
    json_t *j = ts_resp_json(&r);
    cr_expect_eq(ts_int(j, "status"), status, "%s %s: the problem's status", method, path);
    json_decref(j);
    ts_resp_free(&r);
}

Test(bad_input, likes_and_reposts_need_a_live_post)
{
    ts_user_t a, b;
    ts_register_all(PORT, "bl", &a, &b, NULL);
    char p[24], path[96];
    ts_post(PORT, &a, "soon gone", p);
    json_decref(ts_callf(PORT, "PUT", &b, NULL, 204, "/v1/posts/%s/like", p));

    static const char *const actions[][2] = {
        {"PUT", "like"}, {"DELETE", "like"}, {"POST", "repost"}, {"DELETE", "repost"}};
    for (size_t i = 0; i < 4; i++) {
        snprintf(path, sizeof(path), "/v1/posts/%s/%s", IX_UNKNOWN_ID, actions[i][1]);
        expect_problem(&b, actions[i][0], path, NULL, 404);
    }
    json_decref(ix_wait_actor(PORT, &a, "like", p, b.id));
    json_decref(ts_callf(PORT, "DELETE", &a, NULL, 204, "/v1/posts/%s", p));
    json_t *list = ix_notifications(PORT, &a, NULL, 100);
    cr_expect_eq(json_array_size(list), 0, "a deleted post's like group is skipped");
    json_decref(list);
    for (size_t i = 0; i < 4; i++) {
        snprintf(path, sizeof(path), "/v1/posts/%s/%s", p, actions[i][1]);
        expect_problem(&b, actions[i][0], path, NULL, 404);
    }
    snprintf(path, sizeof(path), "/v1/posts/%s", p);
    expect_problem(&b, "GET", path, NULL, 404);

    /* Bad ids are 400, before the post is looked up. */
    static const char *const ids[] = {
        "abc", "0", "-1", "12x", "007", "99999999999999999999", "9007199254740993"};
    for (size_t k = 0; k < sizeof(ids) / sizeof(ids[0]); k++)
        for (size_t i = 0; i < 4; i++) {
            snprintf(path, sizeof(path), "/v1/posts/%s/%s", ids[k], actions[i][1]);
            expect_problem(&b, actions[i][0], path, NULL, 400);
        }
    /* No token: 401, whatever else is wrong. */
    snprintf(path, sizeof(path), "/v1/posts/%s/like", p);
    expect_problem(NULL, "PUT", path, NULL, 401);
    expect_problem(NULL, "POST", "/v1/posts/abc/repost", NULL, 401);
}

Test(bad_input, replies_need_a_live_parent)
{
    ts_user_t a, b;
    ts_register_all(PORT, "br", &a, &b, NULL);
    char p[24], body[128];
    ts_post(PORT, &a, "parent, soon gone", p);
    snprintf(body, sizeof(body), "{\"text\":\"orphan\",\"reply_to\":\"%s\"}", IX_UNKNOWN_ID);
    expect_problem(&b, "POST", "/v1/posts", body, 422);
    json_decref(ts_callf(PORT, "DELETE", &a, NULL, 204, "/v1/posts/%s", p));
    snprintf(body, sizeof(body), "{\"text\":\"too late\",\"reply_to\":\"%s\"}", p);
    expect_problem(&b, "POST", "/v1/posts", body, 422);
    expect_problem(&a, "POST", "/v1/posts", body, 422);
    expect_problem(&b, "POST", "/v1/posts", "{\"text\":\"x\",\"reply_to\":\"abc\"}", 400);
    snprintf(body, sizeof(body), "{\"text\":\"x\",\"reply_to\":%s}", IX_UNKNOWN_ID);
    expect_problem(&b, "POST", "/v1/posts", body, 400); /* a number, not an id string */
    /* None of them was published. */
    json_t *posts = ts_callf(PORT, "GET", &b, NULL, 200, "/v1/users/%s/posts", b.id);
    cr_expect_eq(json_array_size(json_object_get(posts, "items")), 0);
    json_decref(posts);
}

Test(bad_input, blocks_and_mutes_refuse_yourself_unknown_users_and_bad_ids)
{
    ts_user_t a;
    ts_register(PORT, "bb_a", &a);
    static const char *const rels[] = {"block", "mute"};
    static const char *const methods[] = {"PUT", "DELETE"};
    char path[96];
    for (size_t r = 0; r < 2; r++)
        for (size_t m = 0; m < 2; m++) {
            snprintf(path, sizeof(path), "/v1/users/%s/%s", a.id, rels[r]);
            expect_problem(&a, methods[m], path, NULL, 422);
            snprintf(path, sizeof(path), "/v1/users/%s/%s", IX_UNKNOWN_ID, rels[r]);
            expect_problem(&a, methods[m], path, NULL, 404);
            snprintf(path, sizeof(path), "/v1/users/abc/%s", rels[r]);
            expect_problem(&a, methods[m], path, NULL, 400);
            snprintf(path, sizeof(path), "/v1/users/0/%s", rels[r]);
            expect_problem(&a, methods[m], path, NULL, 400);
            snprintf(path, sizeof(path), "/v1/users/%s/%s", a.id, rels[r]);
            expect_problem(NULL, methods[m], path, NULL, 401);
        }
    json_t *j = ts_callf(PORT, "GET", &a, NULL, 200, "/v1/blocks");
    cr_expect_eq(json_array_size(json_object_get(j, "items")), 0, "nothing was blocked");
    json_decref(j);
    j = ts_callf(PORT, "GET", &a, NULL, 200, "/v1/mutes");
    cr_expect_eq(json_array_size(json_object_get(j, "items")), 0, "nothing was muted");
    json_decref(j);
    static const char *const lists[] = {"/v1/blocks", "/v1/mutes", "/v1/notifications"};
    static const char *const queries[] = {"limit=0", "limit=101", "limit=abc", "cursor=abc",
                                          "cursor=0"};
    for (size_t l = 0; l < 3; l++)
        for (size_t q = 0; q < sizeof(queries) / sizeof(queries[0]); q++) {
            snprintf(path, sizeof(path), "%s?%s", lists[l], queries[q]);
            expect_problem(&a, "GET", path, NULL, 400);
        }
    expect_problem(NULL, "GET", "/v1/blocks", NULL, 401);
    expect_problem(NULL, "GET", "/v1/notifications", NULL, 401);
    expect_problem(NULL, "GET", "/v1/notifications/unread_count", NULL, 401);
}

Test(bad_input, mark_read_needs_an_id_string)
{
    ts_user_t a;
    ts_register(PORT, "bm_a", &a);
    static const char *const bodies[] = {
        "{}",
        "{\"up_to\":5}",
        "{\"up_to\":\"abc\"}",
        "{\"up_to\":\"0\"}",
        "{\"up_to\":null}",
        "{\"up_to\":\"1\",\"extra\":true}",
        "[\"1\"]",
        "not json",
        "{\"up_to\":\"1\",\"up_to\":\"2\"}",
    };
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++)
        expect_problem(&a, "POST", "/v1/notifications/read", bodies[i], 400);
    expect_problem(&a, "POST", "/v1/notifications/read", NULL, 415); /* no JSON body at all */
    expect_problem(NULL, "POST", "/v1/notifications/read", "{\"up_to\":\"1\"}", 401);
    json_decref(ts_callf(PORT, "POST", &a, "{\"up_to\":\"1\"}", 204, "/v1/notifications/read"));
    cr_expect_eq(ix_unread(PORT, &a), 0);
}
