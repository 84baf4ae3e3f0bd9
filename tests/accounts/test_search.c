/* tests/accounts/test_search.c -- GET /v1/users/search: handles starting with a prefix in any
 * case, ordered by handle, limited; users in a block either way left out with the page still
 * filled; handles written before the index existed found once a server fills it at startup;
 * and every bad input a problem. */
#include "tests/accounts/accounts.h"

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>

TestSuite(search, .init = accounts_setup, .fini = accounts_teardown, .timeout = 120);

/* The handles a search answers, as "h1,h2,..." (ids checked against the handles' users by
 * the callers that know them). */
static void search(const ts_user_t *as, const char *query, char *out, size_t size)
{
    json_t *page = ts_callf(PORT, "GET", as, NULL, 200, "/v1/users/search?%s", query);
    json_t *items = json_object_get(page, "items");
    cr_assert(json_is_array(items), "%s: no items", query);
    cr_expect_eq(json_object_size(page), 1, "%s: items only, no cursor", query);
    out[0] = '\0';
    size_t i, used = 0;
    json_t *u;
    json_array_foreach(items, i, u)
    {
        cr_expect_geq(ts_int(u, "followers_count"), 0, "users come with their counts");
        used +=
            (size_t)snprintf(out + used, size - used, "%s%s", i ? "," : "", ts_str(u, "handle"));
    }
    json_decref(page);
}

static void lowercase(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s + 32);
}

static void uppercase(char *s)
{
    for (; *s; s++)
        if (*s >= 'a' && *s <= 'z')
            *s = (char)(*s - 32);
}

Test(search, finds_handles_by_prefix_in_any_case_ordered_by_handle)
{
    char base[24], h[8][40], q[64], got[512], want[512];
    ts_unique(base, sizeof(base), "S");
    static const char *const tails[] = {"_b", "_Ab", "_a", "_c", "_a_x", "_A9"};
    ts_user_t u[6], viewer;
    for (size_t i = 0; i < 6; i++) {
        snprintf(h[i], sizeof(h[i]), "%s%s", base, tails[i]);
        accounts_register_handle(h[i], &u[i]);
    }
    ts_register(PORT, "sv", &viewer);
    /* Lowercase order: _a, _a9, _a_x, _ab, _b, _c ('9' < '_' < 'b'). */
    snprintf(want, sizeof(want), "%s_a,%s_A9,%s_a_x,%s_Ab,%s_b,%s_c", base, base, base, base, base,
             base);
    char lower[24], upper[24];
    snprintf(lower, sizeof(lower), "%s", base);
    lowercase(lower);
    snprintf(upper, sizeof(upper), "%s", base);
    uppercase(upper);
    const char *forms[] = {base, lower, upper};
    for (size_t i = 0; i < 3; i++) {
        snprintf(q, sizeof(q), "q=%s", forms[i]);
        search(&viewer, q, got, sizeof(got));
        cr_expect_str_eq(got, want, "q=%s", forms[i]);
    }
    snprintf(q, sizeof(q), "q=%s&limit=2", base);
    search(&viewer, q, got, sizeof(got));
    snprintf(want, sizeof(want), "%s_a,%s_A9", base, base);
    cr_expect_str_eq(got, want, "limit 2: the first two");
    snprintf(q, sizeof(q), "q=%s_a&limit=50", lower);
    search(&viewer, q, got, sizeof(got));
    snprintf(want, sizeof(want), "%s_a,%s_A9,%s_a_x,%s_Ab", base, base, base, base);
    cr_expect_str_eq(got, want, "a longer prefix narrows");
    snprintf(q, sizeof(q), "q=%s_c", upper);
    search(&viewer, q, got, sizeof(got));
    snprintf(want, sizeof(want), "%s_c", base);
    cr_expect_str_eq(got, want, "a whole handle finds itself");
    snprintf(q, sizeof(q), "q=%s_d", base);
    search(&viewer, q, got, sizeof(got));
    cr_expect_str_eq(got, "", "no handle starts so: an empty page");
    /* The ids are those of the users with those handles. */
    snprintf(q, sizeof(q), "q=%s_b", base);
    json_t *page = ts_callf(PORT, "GET", &viewer, NULL, 200, "/v1/users/search?%s", q);
    json_t *first = json_array_get(json_object_get(page, "items"), 0);
    cr_expect_str_eq(ts_str(first, "id"), u[0].id);
    json_decref(page);
}

Test(search, default_limit_is_10)
{
    char base[24], h[40], q[64], got[1024];
    ts_unique(base, sizeof(base), "sd");
    ts_user_t u;
    for (int i = 0; i < 12; i++) {
        snprintf(h, sizeof(h), "%s_%02d", base, i);
        accounts_register_handle(h, &u);
    }
    snprintf(q, sizeof(q), "q=%s", base);
    search(&u, q, got, sizeof(got));
    size_t commas = 0;
    for (const char *p = got; *p; p++)
        commas += *p == ',';
    cr_expect_eq(commas + 1, 10, "%s", got);
    snprintf(h, sizeof(h), "%s_09", base);
    cr_expect(strstr(got, h) != NULL && strstr(got, "_10") == NULL, "the first ten: %s", got);
}

Test(search, blocks_either_way_are_left_out_and_the_page_still_fills)
{
    char base[24], h[40], q[64], got[1024], want[256];
    ts_unique(base, sizeof(base), "sb");
    ts_user_t me, u;
    ts_register(PORT, "sbme", &me);
    /* 15 handles that sort first, each in a block with me (either way), then 3 visible. */
    for (int i = 0; i < 15; i++) {
        snprintf(h, sizeof(h), "%s_a%02d", base, i);
        accounts_register_handle(h, &u);
        if (i % 2)
            json_decref(ts_callf(PORT, "PUT", &me, NULL, 204, "/v1/users/%s/block", u.id));
        else
            json_decref(ts_callf(PORT, "PUT", &u, NULL, 204, "/v1/users/%s/block", me.id));
    }
    for (int i = 0; i < 3; i++) {
        snprintf(h, sizeof(h), "%s_b%d", base, i);
        accounts_register_handle(h, &u);
    }
    snprintf(q, sizeof(q), "q=%s&limit=3", base);
    search(&me, q, got, sizeof(got));
    snprintf(want, sizeof(want), "%s_b0,%s_b1,%s_b2", base, base, base);
    cr_expect_str_eq(got, want, "the hidden ones are skipped, the page is full");
    snprintf(q, sizeof(q), "q=%s_a", base);
    search(&me, q, got, sizeof(got));
    cr_expect_str_eq(got, "", "all hidden");
    /* Others see them all, the blocked ones too. */
    snprintf(q, sizeof(q), "q=%s&limit=3", base);
    search(&u, q, got, sizeof(got));
    snprintf(want, sizeof(want), "%s_a00,%s_a01,%s_a02", base, base, base);
    cr_expect_str_eq(got, want);
}

Test(search, index_members_without_their_user_are_not_shown)
{
    char base[24], h[40], member[80], key[48], q[64], got[256];
    ts_unique(base, sizeof(base), "sg");
    ts_user_t u, me;
    ts_register(PORT, "sgme", &me);
    snprintf(h, sizeof(h), "%s_real", base);
    accounts_register_handle(h, &u);
    /* A member whose user never existed, and one naming a real user under another handle
     * (what a crash between a lost claim and its clean-up could leave). */
    snprintf(key, sizeof(key), "hx:{%c}", base[0]);
    struct redisContext *c = ts_redis_connect(ts_redis_port());
    snprintf(member, sizeof(member), "%s_ghost 999999999999999", base);
    freeReplyObject(ts_redis_cmd_ok(c, "ZADD %s 0 %s", key, member));
    snprintf(member, sizeof(member), "%s_other %s", base, u.id);
    freeReplyObject(ts_redis_cmd_ok(c, "ZADD %s 0 %s", key, member));
    ts_redis_close(c);
    snprintf(q, sizeof(q), "q=%s", base);
    search(&me, q, got, sizeof(got));
    cr_expect_str_eq(got, h);
}

Test(search, a_lost_handle_claim_leaves_no_member)
{
    char h[40], upper[40], key[48], min[64], max[64];
    ts_user_t u;
    ts_unique(h, sizeof(h), "sl");
    accounts_register_handle(h, &u);
    snprintf(upper, sizeof(upper), "%s", h);
    uppercase(upper);
    char body[96];
    snprintf(body, sizeof(body), "{\"handle\":\"%s\"}", upper);
    accounts_problem(NULL, "POST", "/v1/users", body, 409);
    struct redisContext *c = ts_redis_connect(ts_redis_port());
    snprintf(key, sizeof(key), "hx:{%c}", h[0]);
    snprintf(min, sizeof(min), "[%s ", h);
    snprintf(max, sizeof(max), "[%s~", h);
    cr_expect_eq(ts_redis_int(c, "ZLEXCOUNT %s %s %s", key, min, max), 1,
                 "only the winner's member");
    ts_redis_close(c);
}

/* Writes a user as registrations did before the handle index: the profile and the handle
 * key, no member. */
static void write_old_user(struct redisContext *c, const char *handle, unsigned long long id)
{
    char lower[40];
    snprintf(lower, sizeof(lower), "%s", handle);
    lowercase(lower);
    freeReplyObject(ts_redis_cmd_ok(c, "HSET user:{%llu} handle %s display_name %s created 1", id,
                                    handle, handle));
    freeReplyObject(ts_redis_cmd_ok(c, "SET handle:{%s} %llu", lower, id));
}

Test(search, handles_from_before_the_index_are_found_after_a_startup_fill_that_runs_once)
{
    char base[24], h1[40], h2[40], h3[40], q[64], got[256], want[128];
    ts_unique(base, sizeof(base), "so");
    snprintf(h1, sizeof(h1), "%s_Old1", base);
    snprintf(h2, sizeof(h2), "%s_old2", base);
    snprintf(h3, sizeof(h3), "%s_late", base);
    unsigned long long id = 900000000000000ULL + ts_now_ms() % 1000000 * 10;
    ts_user_t me;
    ts_register(PORT, "some", &me);
    struct redisContext *c = ts_redis_connect(ts_redis_port());
    write_old_user(c, h1, id);
    write_old_user(c, h2, id + 1);
    snprintf(q, sizeof(q), "q=%s", base);
    search(&me, q, got, sizeof(got));
    cr_expect_str_eq(got, "", "not in the index yet");
    /* A deployment from before the index: no marker. A server starting fills the index. */
    freeReplyObject(ts_redis_cmd_ok(c, "DEL hx:filled"));
    ts_server_t fresh;
    ts_server_start_default(&fresh);
    cr_expect_eq(ts_redis_int(c, "EXISTS hx:filled"), 1, "the fill leaves its marker");
    json_t *page = ts_callf(fresh.port, "GET", &me, NULL, 200, "/v1/users/search?%s", q);
    json_t *items = json_object_get(page, "items");
    snprintf(want, sizeof(want), "%s", h1);
    cr_expect_eq(json_array_size(items), 2);
    cr_expect_str_eq(ts_str(json_array_get(items, 0), "handle"), h1);
    cr_expect_str_eq(ts_str(json_array_get(items, 1), "handle"), h2);
    cr_expect_eq(ts_json_id(json_array_get(items, 0), "id"), id);
    json_decref(page);
    search(&me, q, got, sizeof(got));
    snprintf(want, sizeof(want), "%s,%s", h1, h2);
    cr_expect_str_eq(got, want, "every process reads the same index");
    ts_server_stop_clean(&fresh, 10000);
    /* With the marker set, the next start does not scan again. */
    write_old_user(c, h3, id + 2);
    ts_server_start_default(&fresh);
    search(&me, q, got, sizeof(got));
    cr_expect_str_eq(got, want, "the fill ran once");
    ts_server_stop_clean(&fresh, 10000);
    ts_redis_close(c);
}

Test(search, bad_input_is_a_problem)
{
    ts_user_t a;
    ts_register(PORT, "sx", &a);
    static const char *const bad[] = {
        "",
        "?q=",
        "?limit=5",
        "?query=ab",
        "?q=has%20space",
        "?q=dash-",
        "?q=%C3%A9",
        "?q=a%00b",
        "?q=%40at",
        "?q=1234567890123456789012345678901",
        "?q=ab&limit=0",
        "?q=ab&limit=51",
        "?q=ab&limit=-1",
        "?q=ab&limit=abc",
        "?q=ab&limit=1.5",
        "?q=ab&limit=",
        "?q=ab&limit=010",
    };
    char path[128];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(path, sizeof(path), "/v1/users/search%s", bad[i]);
        accounts_problem(a.token, "GET", path, NULL, 400);
    }
    accounts_problem(NULL, "GET", "/v1/users/search?q=ab", NULL, 401);
    accounts_problem("tdg_1_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "GET",
                     "/v1/users/search?q=ab", NULL, 401);
    accounts_problem(a.token, "POST", "/v1/users/search?q=ab", NULL, 405);
    json_decref(ts_callf(PORT, "GET", &a, NULL, 200, "/v1/users/search?q=ab&limit=50"));
    json_decref(ts_callf(PORT, "GET", &a, NULL, 200, "/v1/users/search?q=_"));
}
