/* tests/interactions/ix.c -- users, posts, timelines and notifications over HTTP for the
 * interaction tests (see ix.h). Lists are walked page by page to the end, so a helper sees
 * everything a user has, and polls re-read until the engine has written what they wait for.
 */
#include "tests/interactions/ix.h"

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#define POLL_MS 25
#define MAX_PAGES 200

/* ---- the server ------------------------------------------------------------------------- */

ts_redis_t ix_redis;
ts_server_t ix_srv;

void ix_start(const char *const *extra)
{
    if (!ix_redis.pid)
        ts_redis_start_like_fixture(&ix_redis);
    ts_server_start(&ix_srv, ix_redis.url, extra, true);
}

void ix_setup(void)
{
    ix_start(NULL);
}

void ix_stop(void)
{
    if (ix_srv.pid <= 0)
        return;
    int status = ts_server_stop(&ix_srv, 10000);
    cr_expect(status != -1, "the server did not stop within 10 s of SIGTERM");
    cr_expect(status == -1 || (WIFEXITED(status) && WEXITSTATUS(status) == 0),
              "the server did not exit cleanly (wait status 0x%x)", status);
}

void ix_teardown(void)
{
    ix_stop();
    ts_redis_cleanup(&ix_redis);
}

/* ---- requests --------------------------------------------------------------------------- */

json_t *ix_call(int port, const char *method, const ix_user_t *as, const char *body,
                int expect_status, const char *path_fmt, ...)
{
    char path[1024];
    va_list ap;
    va_start(ap, path_fmt);
    vsnprintf(path, sizeof(path), path_fmt, ap);
    va_end(ap);
    return ts_call(port, method, path, as ? as->token : NULL, body, expect_status);
}

int ix_status(int port, const char *method, const ix_user_t *as, const char *body,
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

const char *ix_str(const json_t *obj, const char *key)
{
    const char *v = json_string_value(json_object_get(obj, key));
    return v ? v : "";
}

long long ix_int(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_integer(v) ? (long long)json_integer_value(v) : -1;
}

/* ---- users and posts -------------------------------------------------------------------- */

void ix_register(int port, const char *prefix, ix_user_t *u)
{
    memset(u, 0, sizeof(*u));
    ts_unique(u->handle, sizeof(u->handle), prefix);
    char body[128];
    snprintf(body, sizeof(body), "{\"handle\":\"%s\"}", u->handle);
    json_t *j = ts_call(port, "POST", "/v1/users", NULL, body, 201);
    json_t *user = json_object_get(j, "user");
    cr_assert(*ix_str(user, "id") && *ix_str(j, "token"), "registration answer lacks id or token");
    snprintf(u->id, sizeof(u->id), "%s", ix_str(user, "id"));
    snprintf(u->token, sizeof(u->token), "%s", ix_str(j, "token"));
    json_decref(j);
}

json_t *ix_post_json(int port, const ix_user_t *u, const char *text, const char *reply_to,
                     char id[24])
{
    json_t *body = reply_to ? json_pack("{s:s, s:s}", "text", text, "reply_to", reply_to)
                            : json_pack("{s:s}", "text", text);
    char *s = json_dumps(body, JSON_COMPACT);
    json_t *j = ts_call(port, "POST", "/v1/posts", u->token, s, 202);
    cr_assert(*ix_str(j, "id"), "publishing answered no post id");
    snprintf(id, 24, "%s", ix_str(j, "id"));
    free(s);
    json_decref(body);
    return j;
}

void ix_post(int port, const ix_user_t *u, const char *text, const char *reply_to, char id[24])
{
    json_decref(ix_post_json(port, u, text, reply_to, id));
}

void ix_follow(int port, const ix_user_t *a, const ix_user_t *b)
{
    json_decref(ix_call(port, "PUT", a, NULL, 204, "/v1/users/%s/follow", b->id));
}

static long long post_field(int port, const ix_user_t *u, const char *post, const char *field)
{
    json_t *p = ix_call(port, "GET", u, NULL, 200, "/v1/posts/%s", post);
    long long v = ix_int(p, field);
    json_decref(p);
    return v;
}

long long ix_like_count(int port, const ix_user_t *u, const char *post)
{
    return post_field(port, u, post, "like_count");
}

long long ix_repost_count(int port, const ix_user_t *u, const char *post)
{
    return post_field(port, u, post, "repost_count");
}

bool ix_list_has(const json_t *list, const char *id)
{
    size_t i;
    const json_t *v;
    json_array_foreach(json_object_get(list, "items"), i, v)
    {
        if (strcmp(ix_str(v, "id"), id) == 0)
            return true;
    }
    return false;
}

/* ---- lists ----------------------------------------------------------------------------------- */

/* Every item of a paginated GET path (query appended when not NULL), as a new array. */
static json_t *walk(int port, const ix_user_t *u, const char *path, const char *query, int limit)
{
    json_t *all = json_array();
    char cursor[32] = "";
    for (int pages = 0;; pages++) {
        cr_assert_lt(pages, MAX_PAGES, "%s: more than %d pages (a cursor loop?)", path, MAX_PAGES);
        json_t *page = ix_call(port, "GET", u, NULL, 200, "%s?limit=%d%s%s%s%s", path, limit,
                               query ? "&" : "", query ? query : "", cursor[0] ? "&cursor=" : "",
                               cursor);
        json_t *items = json_object_get(page, "items");
        cr_assert(json_is_array(items), "%s: no items array", path);
        json_array_extend(all, items);
        const json_t *next = json_object_get(page, "next_cursor");
        cr_assert(json_is_null(next) || json_is_string(next), "%s: next_cursor is neither null "
                                                              "nor a string",
                  path);
        if (json_is_null(next)) {
            json_decref(page);
            return all;
        }
        snprintf(cursor, sizeof(cursor), "%s", json_string_value(next));
        json_decref(page);
    }
}

/* ---- timelines -------------------------------------------------------------------------- */

json_t *ix_timeline(int port, const ix_user_t *u)
{
    return walk(port, u, "/v1/timeline", NULL, 100);
}

int ix_count_post(const json_t *timeline, const char *id, const json_t **entry)
{
    int n = 0;
    size_t i;
    const json_t *v;
    if (entry)
        *entry = NULL;
    json_array_foreach(timeline, i, v)
    {
        if (strcmp(ix_str(v, "id"), id) == 0) {
            if (entry && !*entry)
                *entry = v;
            n++;
        }
    }
    return n;
}

static char *dump(const json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);
    if (s && strlen(s) > 4000)
        strcpy(s + 3990, "…");
    return s;
}

json_t *ix_wait_timeline_has(int port, const ix_user_t *u, const char *id)
{
    uint64_t deadline = ts_now_ms() + IX_WAIT_MS;
    for (;;) {
        json_t *tl = ix_timeline(port, u);
        const json_t *entry;
        int n = ix_count_post(tl, id, &entry);
        if (n > 0) {
            char *s = dump(tl);
            cr_assert_eq(n, 1, "post %s is %d times in %s's timeline: %s", id, n, u->handle, s);
            free(s);
            json_t *copy = json_deep_copy(entry);
            json_decref(tl);
            return copy;
        }
        if (ts_now_ms() > deadline) {
            char *s = dump(tl);
            cr_assert_fail("post %s did not reach %s's timeline within %d ms: %s", id, u->handle,
                           IX_WAIT_MS, s);
        }
        json_decref(tl);
        ts_sleep_ms(POLL_MS);
    }
}

void ix_wait_timeline_lacks(int port, const ix_user_t *u, const char *id)
{
    uint64_t deadline = ts_now_ms() + IX_WAIT_MS;
    for (;;) {
        json_t *tl = ix_timeline(port, u);
        int n = ix_count_post(tl, id, NULL);
        if (n == 0) {
            json_decref(tl);
            return;
        }
        if (ts_now_ms() > deadline) {
            char *s = dump(tl);
            cr_assert_fail("post %s stayed in %s's timeline for %d ms: %s", id, u->handle,
                           IX_WAIT_MS, s);
        }
        json_decref(tl);
        ts_sleep_ms(POLL_MS);
    }
}

/* ---- notifications ------------------------------------------------------------------------ */

json_t *ix_notifications(int port, const ix_user_t *u, const char *query, int limit)
{
    return walk(port, u, "/v1/notifications", query, limit);
}

static bool matches(const json_t *n, const char *type, const char *post)
{
    if (strcmp(ix_str(n, "type"), type) != 0)
        return false;
    return !post || strcmp(ix_str(json_object_get(n, "post"), "id"), post) == 0;
}

const json_t *ix_find(const json_t *list, const char *type, const char *post)
{
    size_t i;
    const json_t *v;
    json_array_foreach(list, i, v)
    {
        if (matches(v, type, post))
            return v;
    }
    return NULL;
}

int ix_count(const json_t *list, const char *type, const char *post)
{
    int n = 0;
    size_t i;
    const json_t *v;
    json_array_foreach(list, i, v)
    {
        n += matches(v, type, post);
    }
    return n;
}

json_t *ix_poll_notification(int port, const ix_user_t *u, const char *type, const char *post,
                             long long actor_count, int timeout_ms)
{
    uint64_t deadline = ts_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        json_t *list = ix_notifications(port, u, NULL, 100);
        const json_t *n = ix_find(list, type, post);
        if (n && (actor_count < 0 || ix_int(n, "actor_count") == actor_count)) {
            json_t *copy = json_deep_copy(n);
            json_decref(list);
            return copy;
        }
        json_decref(list);
        if (ts_now_ms() > deadline)
            return NULL;
        ts_sleep_ms(POLL_MS);
    }
}

json_t *ix_wait_notification(int port, const ix_user_t *u, const char *type, const char *post,
                             long long actor_count)
{
    uint64_t deadline = ts_now_ms() + IX_WAIT_MS;
    for (;;) {
        json_t *list = ix_notifications(port, u, NULL, 100);
        const json_t *n = ix_find(list, type, post);
        if (n && (actor_count < 0 || ix_int(n, "actor_count") == actor_count)) {
            json_t *copy = json_deep_copy(n);
            json_decref(list);
            return copy;
        }
        if (ts_now_ms() > deadline) {
            char *s = dump(list);
            cr_assert_fail("no %s notification (post %s, actor_count %lld) for %s within %d ms: "
                           "%s",
                           type, post ? post : "-", actor_count, u->handle, IX_WAIT_MS, s);
        }
        json_decref(list);
        ts_sleep_ms(POLL_MS);
    }
}

static bool has_actor(const json_t *n, const char *actor)
{
    size_t i;
    const json_t *v;
    json_array_foreach(json_object_get(n, "actors"), i, v)
    {
        if (strcmp(ix_str(v, "id"), actor) == 0)
            return true;
    }
    return false;
}

json_t *ix_wait_actor(int port, const ix_user_t *u, const char *type, const char *post,
                      const char *actor)
{
    uint64_t deadline = ts_now_ms() + IX_WAIT_MS;
    for (;;) {
        json_t *list = ix_notifications(port, u, NULL, 100);
        const json_t *n = ix_find(list, type, post);
        if (n && has_actor(n, actor)) {
            json_t *copy = json_deep_copy(n);
            json_decref(list);
            return copy;
        }
        if (ts_now_ms() > deadline) {
            char *s = dump(list);
            cr_assert_fail("no %s notification (post %s) by %s for %s within %d ms: %s", type,
                           post ? post : "-", actor, u->handle, IX_WAIT_MS, s);
        }
        json_decref(list);
        ts_sleep_ms(POLL_MS);
    }
}

void ix_wait_no_notification(int port, const ix_user_t *u, const char *type, const char *post)
{
    uint64_t deadline = ts_now_ms() + IX_WAIT_MS;
    for (;;) {
        json_t *list = ix_notifications(port, u, NULL, 100);
        if (!ix_find(list, type, post)) {
            json_decref(list);
            return;
        }
        if (ts_now_ms() > deadline) {
            char *s = dump(list);
            cr_assert_fail("the %s notification (post %s) of %s stayed for %d ms: %s", type,
                           post ? post : "-", u->handle, IX_WAIT_MS, s);
        }
        json_decref(list);
        ts_sleep_ms(POLL_MS);
    }
}

long long ix_unread(int port, const ix_user_t *u)
{
    json_t *j = ix_call(port, "GET", u, NULL, 200, "/v1/notifications/unread_count");
    long long n = ix_int(j, "count");
    cr_assert_geq(n, 0, "unread_count answered no integer count");
    json_decref(j);
    return n;
}

void ix_wait_unread(int port, const ix_user_t *u, long long want)
{
    uint64_t deadline = ts_now_ms() + IX_WAIT_MS;
    long long got;
    while ((got = ix_unread(port, u)) != want) {
        cr_assert(ts_now_ms() < deadline, "%s's unread count stayed %lld, not %lld, for %d ms",
                  u->handle, got, want, IX_WAIT_MS);
        ts_sleep_ms(POLL_MS);
    }
}

bool ix_actors_are(const json_t *notification, const char *const *ids, size_t n)
{
    const json_t *actors = json_object_get(notification, "actors");
    if (json_array_size(actors) != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (strcmp(ix_str(json_array_get(actors, i), "id"), ids[i]) != 0)
            return false;
    return true;
}

/* ---- the job queue ------------------------------------------------------------------------- */

/* An integer reply, or XPENDING's summary count; 0 for a shard without stream or group yet. */
static long long queue_count(const char *fmt, int shard)
{
    redisReply *r = ts_redis_command(ix_redis.url, fmt, shard);
    long long v = 0;
    if (r->type == REDIS_REPLY_INTEGER)
        v = r->integer;
    else if (r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
             r->element[0]->type == REDIS_REPLY_INTEGER) /* XPENDING's summary */
        v = r->element[0]->integer;
    else
        cr_assert(r->type == REDIS_REPLY_ERROR &&
                      (strstr(r->str, "NOGROUP") || strstr(r->str, "no such key")),
                  "%s on shard %d answered type %d: %s", fmt, shard, r->type,
                  r->str ? r->str : "");
    freeReplyObject(r);
    return v;
}

void ix_wait_idle(void)
{
    uint64_t deadline = ts_now_ms() + IX_WAIT_MS;
    for (;;) {
        long long length = 0, pending = 0;
        for (int shard = 0; shard < TS_FANOUT_SHARDS; shard++) {
            length += queue_count("XLEN fanout:{%d}", shard);
            pending += queue_count("XPENDING fanout:{%d} engine", shard);
        }
        if (length == 0 && pending == 0)
            return;
        cr_assert(ts_now_ms() <= deadline,
                  "the job queue still holds %lld jobs (%lld pending) after %d ms", length,
                  pending, IX_WAIT_MS);
        ts_sleep_ms(POLL_MS);
    }
}
