/* tests/support/api.c -- the HTTP API as the tests call it: users, follows, posts, likes,
 * paged lists and timelines, JSON members and /metrics samples.
 *
 * Every helper asserts the status the API answers on success and fails the test with the body
 * otherwise (through ts_call), so a test reads as the calls it makes. Ids travel as the decimal
 * strings the API uses; ts_user_t also keeps its id as a number for the tests that compare it
 * with what they read behind the server. Paged walks are bounded in pages, so a cursor that
 * loops fails the test instead of hanging it.
 */
#include "tests/support/support.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PAGES 10000

/* ---- requests and JSON ----------------------------------------------------------------------- */

json_t *ts_callf(int port, const char *method, const ts_user_t *as, const char *body,
                 int expect_status, const char *path_fmt, ...)
{
    char path[1024];
    va_list ap;
    va_start(ap, path_fmt);
    vsnprintf(path, sizeof(path), path_fmt, ap);
    va_end(ap);
    return ts_call(port, method, path, as ? as->token : NULL, body, expect_status);
}

int ts_status(int port, const char *method, const ts_user_t *as, const char *body,
              const char *path_fmt, ...)
{
    char path[1024];
    va_list ap;
    va_start(ap, path_fmt);
    vsnprintf(path, sizeof(path), path_fmt, ap);
    va_end(ap);
    ts_resp_t r;
    ts_http(port, method, path, as ? as->token : NULL, NULL, body, &r);
    int status = r.status;
    ts_resp_free(&r);
    return status;
}

const char *ts_str(const json_t *obj, const char *key)
{
    const char *v = json_string_value(json_object_get(obj, key));
    return v ? v : "";
}

long long ts_int(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_integer(v) ? (long long)json_integer_value(v) : -1;
}

uint64_t ts_id(const char *s)
{
    if (!s || *s < '0' || *s > '9')
        return 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    return *end ? 0 : (uint64_t)v;
}

uint64_t ts_json_id(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_integer(v) ? (uint64_t)json_integer_value(v) : ts_id(json_string_value(v));
}

/* ---- users, follows, posts ------------------------------------------------------------------- */

void ts_register(int port, const char *prefix, ts_user_t *u)
{
    memset(u, 0, sizeof(*u));
    ts_unique(u->handle, sizeof(u->handle), prefix);
    char body[128];
    snprintf(body, sizeof(body), "{\"handle\":\"%s\"}", u->handle);
    json_t *j = ts_call(port, "POST", "/v1/users", NULL, body, 201);
    snprintf(u->id, sizeof(u->id), "%s", ts_str(json_object_get(j, "user"), "id"));
    snprintf(u->token, sizeof(u->token), "%s", ts_str(j, "token"));
    u->num = ts_id(u->id);
    bool same = strcmp(ts_str(json_object_get(j, "user"), "handle"), u->handle) == 0;
    json_decref(j);
    cr_assert(u->num && u->token[0], "the registration answer has no user id or token");
    cr_assert(same, "the registration answer is not about handle %s", u->handle);
}

void ts_register_all(int port, const char *prefix, ts_user_t *u, ...)
{
    va_list ap;
    va_start(ap, u);
    for (char letter = 'a'; u; u = va_arg(ap, ts_user_t *), letter++) {
        char name[24];
        snprintf(name, sizeof(name), "%s_%c", prefix, letter);
        ts_register(port, name, u);
    }
    va_end(ap);
}

void ts_follow(int port, const ts_user_t *a, const ts_user_t *b)
{
    json_decref(ts_callf(port, "PUT", a, NULL, 204, "/v1/users/%s/follow", b->id));
}

void ts_unfollow(int port, const ts_user_t *a, const ts_user_t *b)
{
    json_decref(ts_callf(port, "DELETE", a, NULL, 204, "/v1/users/%s/follow", b->id));
}

uint64_t ts_post(int port, const ts_user_t *u, const char *text, char id[24])
{
    /* Serialised onto the stack: a failed assertion in ts_call must not leak the body. */
    static _Thread_local char s[32768];
    json_t *body = json_pack("{s:s}", "text", text);
    size_t n = json_dumpb(body, s, sizeof(s) - 1, JSON_COMPACT);
    json_decref(body);
    cr_assert(n > 0 && n < sizeof(s) - 1, "the post text is too long for ts_post");
    s[n] = '\0';
    json_t *j = ts_call(port, "POST", "/v1/posts", u->token, s, 202);
    uint64_t num = ts_json_id(j, "id");
    if (id)
        snprintf(id, 24, "%s", ts_str(j, "id"));
    json_decref(j);
    cr_assert(num, "publishing answered no post id");
    return num;
}

int ts_post_raw(int port, const char *token, const char *text, int timeout_ms, ts_resp_t *out)
{
    memset(out, 0, sizeof(*out));
    json_t *b = json_pack("{s:s}", "text", text);
    char *body = b ? json_dumps(b, JSON_COMPACT) : NULL;
    json_decref(b);
    size_t cap = (body ? strlen(body) : 0) + strlen(token) + 512;
    char *req = body ? malloc(cap) : NULL;
    int rc = -ENOMEM;
    if (req) {
        int n = snprintf(req, cap,
                         "POST /v1/posts HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n"
                         "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
                         "Content-Length: %zu\r\n\r\n%s",
                         port, token, strlen(body), body);
        rc = ts_http_raw(port, req, (size_t)n, timeout_ms, out);
    }
    free(req);
    free(body);
    return rc;
}

void ts_delete_post(int port, const ts_user_t *u, const char *id)
{
    json_decref(ts_callf(port, "DELETE", u, NULL, 204, "/v1/posts/%s", id));
}

void ts_like(int port, const ts_user_t *u, const char *post)
{
    json_decref(ts_callf(port, "PUT", u, NULL, 204, "/v1/posts/%s/like", post));
}

/* ---- lists and timelines --------------------------------------------------------------------- */

json_t *ts_list(int port, const ts_user_t *u, const char *path, const char *query, int limit)
{
    json_t *all = json_array();
    char cursor[64] = "";
    for (int pages = 0;; pages++) {
        cr_assert_lt(pages, MAX_PAGES, "%s: more than %d pages (a cursor loop?)", path, MAX_PAGES);
        json_t *page =
            ts_callf(port, "GET", u, NULL, 200, "%s?limit=%d%s%s%s%s", path, limit,
                     query ? "&" : "", query ? query : "", cursor[0] ? "&cursor=" : "", cursor);
        json_t *items = json_object_get(page, "items");
        cr_assert(json_is_array(items), "%s: no items array", path);
        cr_assert_leq(json_array_size(items), (size_t)limit, "%s: a page of %zu items for limit %d",
                      path, json_array_size(items), limit);
        json_array_extend(all, items);
        const json_t *next = json_object_get(page, "next_cursor");
        cr_assert(!next || json_is_null(next) || json_is_string(next),
                  "%s: next_cursor is neither null nor a string", path);
        if (!json_is_string(next) || json_array_size(items) == 0) {
            json_decref(page);
            return all;
        }
        snprintf(cursor, sizeof(cursor), "%s", json_string_value(next));
        json_decref(page);
    }
}

size_t ts_timeline(int port, const ts_user_t *u, int limit, uint64_t *ids, uint64_t *authors,
                   size_t cap)
{
    json_t *all = ts_list(port, u, "/v1/timeline", NULL, limit);
    uint64_t last = UINT64_MAX;
    size_t i;
    json_t *item;
    json_array_foreach(all, i, item)
    {
        uint64_t id = ts_json_id(item, "id");
        cr_assert(id, "a timeline item without an id");
        cr_assert_lt(id, last, "timeline not strictly newest first: %llu after %llu",
                     (unsigned long long)id, (unsigned long long)last);
        last = id;
        if (i < cap && ids)
            ids[i] = id;
        if (i < cap && authors)
            authors[i] = ts_json_id(json_object_get(item, "author"), "id");
    }
    size_t found = json_array_size(all);
    json_decref(all);
    return found;
}

size_t ts_wait_timeline(int port, const ts_user_t *u, size_t n, uint64_t *ids, size_t cap,
                        int timeout_ms)
{
    uint64_t deadline = ts_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        size_t got = ts_timeline(port, u, 100, ids, NULL, cap);
        if (got >= n || ts_now_ms() >= deadline)
            return got;
        ts_sleep_ms(20);
    }
}

/* ---- /metrics -------------------------------------------------------------------------------- */

bool ts_has_metric(int port, const char *name, double *value)
{
    ts_resp_t r;
    ts_http(port, "GET", "/metrics", NULL, NULL, NULL, &r);
    cr_assert_eq(r.status, 200, "GET /metrics answered %d", r.status);
    size_t len = strlen(name);
    bool found = false;
    for (const char *line = r.body; line && *line && !found;) {
        if (strncmp(line, name, len) == 0 && line[len] == ' ') {
            if (value)
                *value = strtod(line + len + 1, NULL);
            found = true;
        }
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    ts_resp_free(&r);
    return found;
}

double ts_metric(int port, const char *name)
{
    double v = 0;
    cr_assert(ts_has_metric(port, name, &v), "GET /metrics has no sample %s", name);
    return v;
}
