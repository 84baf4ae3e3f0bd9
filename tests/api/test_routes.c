/* tests/api/test_routes.c -- api_route_match: every route, 405 Allow lists, unknown paths. */
#include "api/api.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

TestSuite(routes, .timeout = 10);

typedef struct {
    int route;
    const char *params[API_MAX_PARAMS];
    char allow[64];
} match_t;

static match_t match(const char *method, const char *path)
{
    char buf[8192];
    size_t len = strlen(path);
    cr_assert_lt(len, sizeof(buf), "the test path does not fit");
    memcpy(buf, path, len + 1);
    match_t m;
    memset(&m, 0, sizeof(m));
    m.route = api_route_match(method, buf, m.params, m.allow, sizeof(m.allow));
    /* params point into buf: keep only whether they were set */
    for (int i = 0; i < API_MAX_PARAMS; i++)
        m.params[i] = m.params[i] ? "set" : NULL;
    return m;
}

/* The pattern with every {capture} replaced by value. */
static void concrete(const char *pattern, const char *value, char *out, size_t size)
{
    size_t o = 0;
    for (const char *p = pattern; *p && o + 1 < size;) {
        if (*p == '{') {
            o += (size_t)snprintf(out + o, size - o, "%s", value);
            p = strchr(p, '}') + 1;
        } else {
            out[o++] = *p++;
        }
    }
    out[o] = '\0';
}

Test(routes, every_route_matches_its_own_method_and_path)
{
    cr_assert_gt(api_routes_count, 0);
    for (size_t i = 0; i < api_routes_count; i++) {
        char path[256];
        concrete(api_routes[i].pattern, "374267957444672", path, sizeof(path));
        match_t m = match(api_routes[i].method, path);
        cr_expect_eq(m.route, (int)i, "%s %s matched route %d, not %zu", api_routes[i].method, path,
                     m.route, i);
    }
}

Test(routes, captures_the_id_segment)
{
    char path[] = "/v1/users/42/followers";
    const char *params[API_MAX_PARAMS] = {0};
    char allow[64];
    int route = api_route_match("GET", path, params, allow, sizeof(allow));
    cr_assert_geq(route, 0);
    cr_expect_str_eq(api_routes[route].pattern, "/v1/users/{id}/followers");
    cr_expect_str_eq(params[0], "42");
}

Test(routes, head_is_served_by_get_routes)
{
    for (size_t i = 0; i < api_routes_count; i++) {
        if (strcmp(api_routes[i].method, "GET") != 0)
            continue;
        char path[256];
        concrete(api_routes[i].pattern, "7", path, sizeof(path));
        cr_expect_eq(match("HEAD", path).route, (int)i, "HEAD %s", path);
    }
}

Test(routes, known_core_routes_exist)
{
    static const char *const want[][2] = {
        {"POST", "/v1/users"},
        {"GET", "/v1/users/1"},
        {"GET", "/v1/users/lookup"},
        {"PUT", "/v1/users/1/follow"},
        {"DELETE", "/v1/users/1/follow"},
        {"GET", "/v1/users/1/followers"},
        {"GET", "/v1/users/1/following"},
        {"GET", "/v1/users/1/posts"},
        {"POST", "/v1/posts"},
        {"GET", "/v1/posts/1"},
        {"DELETE", "/v1/posts/1"},
        {"GET", "/healthz"},
        {"GET", "/readyz"},
        {"GET", "/metrics"},
        {"GET", "/openapi.yaml"},
        {"GET", "/"},
        {"POST", "/v1/tokens"},
        {"GET", "/v1/tokens"},
        {"DELETE", "/v1/tokens/current"},
        {"DELETE", "/v1/tokens/1"},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        cr_expect_geq(match(want[i][0], want[i][1]).route, 0, "%s %s has no route", want[i][0],
                      want[i][1]);
}

Test(routes, wrong_method_gives_405_with_the_allow_list)
{
    static const char *const cases[][3] = {
        {"GET", "/v1/users", "POST"},
        {"DELETE", "/v1/users", "POST"},
        {"POST", "/v1/users/1", "GET, HEAD"},
        {"PATCH", "/v1/users/1", "GET, HEAD"},
        {"GET", "/v1/users/1/follow", "PUT, DELETE"},
        {"POST", "/v1/users/1/follow", "PUT, DELETE"},
        {"POST", "/v1/users/1/followers", "GET, HEAD"},
        {"DELETE", "/v1/users/1/posts", "GET, HEAD"},
        {"GET", "/v1/posts", "POST"},
        {"PUT", "/v1/posts/1", "GET, HEAD, DELETE"},
        {"POST", "/healthz", "GET, HEAD"},
        {"DELETE", "/metrics", "GET, HEAD"},
        {"POST", "/", "GET, HEAD"},
        /* A literal route and a {capture} route both match: each method once. */
        {"POST", "/v1/users/lookup", "GET, HEAD"},
        {"DELETE", "/v1/users/lookup", "GET, HEAD"},
        /* both "/v1/tokens/current" and "/v1/tokens/{id}" match: DELETE is listed once */
        {"GET", "/v1/tokens/current", "DELETE"},
        {"GET", "/v1/tokens/1", "DELETE"},
        {"PUT", "/v1/tokens", "POST, GET, HEAD"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        match_t m = match(cases[i][0], cases[i][1]);
        cr_expect_eq(m.route, -2, "%s %s: %d", cases[i][0], cases[i][1], m.route);
        cr_expect_str_eq(m.allow, cases[i][2], "%s %s", cases[i][0], cases[i][1]);
    }
}

Test(routes, unknown_paths_give_minus_one)
{
    static const char *const paths[] = {
        "",           "//",        "v1/users",      "/v1",
        "/v1/",       "/v2/users", "/v1/user",      "/v1/users/1/friends",
        "/healthz/x", "/HEALTHZ",  "/v1/posts/1/2", "/v1//users",
        "//v1/users",
    };
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        match_t m = match("GET", paths[i]);
        cr_expect_eq(m.route, -1, "'%s' matched %d", paths[i], m.route);
        m = match("POST", paths[i]);
        cr_expect_eq(m.route, -1, "POST '%s' matched %d", paths[i], m.route);
    }
}

Test(routes, trailing_slash_and_empty_segments_do_not_match)
{
    static const char *const paths[] = {
        "/v1/users/",          "/v1/posts/",        "/healthz/",   "/v1/users/1/",
        "/v1/users/1/follow/", "/v1/users//follow", "/v1/posts//",
    };
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        cr_expect_eq(match("GET", paths[i]).route, -1, "GET '%s'", paths[i]);
        cr_expect_eq(match("PUT", paths[i]).route, -1, "PUT '%s'", paths[i]);
        cr_expect_eq(match("POST", paths[i]).route, -1, "POST '%s'", paths[i]);
    }
}

Test(routes, too_many_segments_do_not_match)
{
    cr_expect_eq(match("GET", "/a/b/c/d/e/f/g/h").route, -1);
    cr_expect_eq(match("GET", "/a/b/c/d/e/f/g/h/i").route, -1);
    cr_expect_eq(match("GET", "/v1/users/1/posts/a/b/c/d/e/f/g/h/i/j/k").route, -1);
    char long_path[4096];
    memset(long_path, 0, sizeof(long_path));
    for (size_t i = 0; i + 2 < sizeof(long_path); i += 2)
        memcpy(long_path + i, "/x", 2);
    cr_expect_eq(match("GET", long_path).route, -1);
}

Test(routes, literal_segments_win_over_captures)
{
    match_t m = match("GET", "/v1/users/lookup");
    cr_assert_geq(m.route, 0);
    cr_expect_str_eq(api_routes[m.route].pattern, "/v1/users/lookup");
    cr_expect_null(m.params[0], "a literal route captures nothing");
    m = match("GET", "/v1/users/lookups");
    cr_assert_geq(m.route, 0);
    cr_expect_str_eq(api_routes[m.route].pattern, "/v1/users/{id}");
}

Test(routes, methods_are_case_sensitive)
{
    cr_expect_eq(match("get", "/healthz").route, -2);
    cr_expect_eq(match("post", "/v1/users").route, -2);
}
