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

#define POLL_MS 25

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
    ts_server_stop_clean(&ix_srv, 10000);
}

void ix_teardown(void)
{
    ix_stop();
    ts_redis_cleanup(&ix_redis);
}

/* ---- posts ------------------------------------------------------------------------------ */

json_t *ix_reply_json(int port, const ts_user_t *u, const char *text, const char *reply_to,
                      char id[24])
{
    json_t *body = reply_to ? json_pack("{s:s, s:s}", "text", text, "reply_to", reply_to)
                            : json_pack("{s:s}", "text", text);
    char *s = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    json_t *j = ts_call(port, "POST", "/v1/posts", u->token, s, 202);
    free(s);
    cr_assert(*ts_str(j, "id"), "publishing answered no post id");
    snprintf(id, 24, "%s", ts_str(j, "id"));
    return j;
}

void ix_reply(int port, const ts_user_t *u, const char *text, const char *reply_to, char id[24])
{
    json_decref(ix_reply_json(port, u, text, reply_to, id));
}

void ix_mention(int port, const ts_user_t *author, const ts_user_t *who, const char *reply_to,
                char id[24])
{
    char text[80];
    snprintf(text, sizeof(text), "hey @%s", who->handle);
    ix_reply(port, author, text, reply_to, id);
}

void ix_repost(int port, const ts_user_t *u, const char *post)
{
    json_decref(ts_callf(port, "POST", u, NULL, 202, "/v1/posts/%s/repost", post));
}

static long long post_field(int port, const ts_user_t *u, const char *post, const char *field)
{
    json_t *p = ts_callf(port, "GET", u, NULL, 200, "/v1/posts/%s", post);
    long long v = ts_int(p, field);
    json_decref(p);
    return v;
}

long long ix_like_count(int port, const ts_user_t *u, const char *post)
{
    return post_field(port, u, post, "like_count");
}

long long ix_repost_count(int port, const ts_user_t *u, const char *post)
{
    return post_field(port, u, post, "repost_count");
}

bool ix_list_has(const json_t *list, const char *id)
{
    return ix_count_post(json_object_get(list, "items"), id, NULL) > 0;
}

/* ---- polls ------------------------------------------------------------------------------ */

static char *dump(const json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);
    if (s && strlen(s) > 4000)
        strcpy(s + 3990, "…");
    return s;
}

/* What a poll looks for in a list: the entry pick returns (borrowed), or its absence. */
typedef struct want_s {
    const char *type, *post, *actor, *id;
    long long actor_count;
    const char *const *actors; /* when set: exactly these, newest first */
    size_t n_actors;
} want_t;
typedef const json_t *(*pick_fn)(const json_t *list, const want_t *w);

/* Reads list(port, u) every POLL_MS until pick finds an entry (present) or finds none (!present)
 * and returns a copy of the entry (NULL when absent). After timeout_ms it returns NULL, or
 * with what set fails the test naming it and showing the last list. */
static json_t *poll_list(json_t *(*list)(int, const ts_user_t *), int port, const ts_user_t *u,
                         pick_fn pick, const want_t *w, bool present, int timeout_ms,
                         const char *what)
{
    uint64_t deadline = ts_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        json_t *l = list(port, u);
        const json_t *hit = pick(l, w);
        if (!hit == !present) {
            json_t *copy = hit ? json_deep_copy(hit) : NULL;
            json_decref(l);
            return copy;
        }
        if (ts_now_ms() > deadline) {
            char *s = what ? dump(l) : NULL;
            cr_assert(!what, "%s %s for %s within %d ms (post %s, actor %s, count %lld): %s",
                      present ? "no" : "still", what, u->handle, timeout_ms,
                      w->post ? w->post : "-", w->actor ? w->actor : "-", w->actor_count, s);
            json_decref(l);
            return NULL;
        }
        json_decref(l);
        ts_sleep_ms(POLL_MS);
    }
}

/* ---- timelines -------------------------------------------------------------------------- */

json_t *ix_timeline(int port, const ts_user_t *u)
{
    return ts_list(port, u, "/v1/timeline", NULL, 100);
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
        if (strcmp(ts_str(v, "id"), id) == 0) {
            if (entry && !*entry)
                *entry = v;
            n++;
        }
    }
    return n;
}

int ix_timeline_count(int port, const ts_user_t *u, const char *id)
{
    json_t *tl = ix_timeline(port, u);
    int n = ix_count_post(tl, id, NULL);
    json_decref(tl);
    return n;
}

static const json_t *pick_post(const json_t *tl, const want_t *w)
{
    const json_t *entry;
    int n = ix_count_post(tl, w->id, &entry);
    cr_assert_leq(n, 1, "post %s is %d times in a timeline", w->id, n);
    return entry;
}

json_t *ix_wait_timeline_has(int port, const ts_user_t *u, const char *id)
{
    want_t w = {.id = id, .post = id, .actor_count = -1};
    return poll_list(ix_timeline, port, u, pick_post, &w, true, IX_WAIT_MS, "post in the timeline");
}

void ix_wait_timeline_holds(int port, const ts_user_t *u, ...)
{
    va_list ap;
    va_start(ap, u);
    for (const char *id; (id = va_arg(ap, const char *)) != NULL;)
        json_decref(ix_wait_timeline_has(port, u, id));
    va_end(ap);
}

void ix_wait_timeline_lacks(int port, const ts_user_t *u, const char *id)
{
    want_t w = {.id = id, .post = id, .actor_count = -1};
    poll_list(ix_timeline, port, u, pick_post, &w, false, IX_WAIT_MS, "post in the timeline");
}

/* ---- notifications ------------------------------------------------------------------------ */

json_t *ix_notifications(int port, const ts_user_t *u, const char *query, int limit)
{
    return ts_list(port, u, "/v1/notifications", query, limit);
}

static json_t *all_notifications(int port, const ts_user_t *u)
{
    return ix_notifications(port, u, NULL, 100);
}

ix_inbox_t ix_inbox(int port, const ts_user_t *u, const char *query)
{
    ix_inbox_t in = {.list = ix_notifications(port, u, query, 100)};
    in.text = json_dumps(in.list, JSON_COMPACT);
    cr_assert_not_null(in.text, "%s's notifications could not be written as JSON", u->handle);
    return in;
}

void ix_inbox_free(ix_inbox_t *in)
{
    free(in->text);
    json_decref(in->list);
}

size_t ix_inbox_size(int port, const ts_user_t *u)
{
    json_t *list = all_notifications(port, u);
    size_t n = json_array_size(list);
    json_decref(list);
    return n;
}

static bool matches(const json_t *n, const char *type, const char *post)
{
    if (strcmp(ts_str(n, "type"), type) != 0)
        return false;
    return !post || strcmp(ts_str(json_object_get(n, "post"), "id"), post) == 0;
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

static bool has_actor(const json_t *n, const char *actor)
{
    size_t i;
    const json_t *v;
    json_array_foreach(json_object_get(n, "actors"), i, v)
    {
        if (strcmp(ts_str(v, "id"), actor) == 0)
            return true;
    }
    return false;
}

/* The first notification of w's type and post, when it has w's actor and actor count. */
static const json_t *pick_notification(const json_t *list, const want_t *w)
{
    const json_t *n = ix_find(list, w->type, w->post);
    if (n && w->actor_count >= 0 && ts_int(n, "actor_count") != w->actor_count)
        return NULL;
    if (n && w->actors && !ix_actors_are(n, w->actors, w->n_actors))
        return NULL;
    return n && (!w->actor || has_actor(n, w->actor)) ? n : NULL;
}

json_t *ix_poll_notification(int port, const ts_user_t *u, const char *type, const char *post,
                             long long actor_count, int timeout_ms)
{
    want_t w = {.type = type, .post = post, .actor_count = actor_count};
    return poll_list(all_notifications, port, u, pick_notification, &w, true, timeout_ms, NULL);
}

json_t *ix_wait_notification(int port, const ts_user_t *u, const char *type, const char *post,
                             long long actor_count)
{
    want_t w = {.type = type, .post = post, .actor_count = actor_count};
    return poll_list(all_notifications, port, u, pick_notification, &w, true, IX_WAIT_MS, type);
}

json_t *ix_wait_actors(int port, const ts_user_t *u, const char *type, const char *post,
                       const char *const *ids, size_t n)
{
    want_t w = {.type = type, .post = post, .actor_count = -1, .actors = ids, .n_actors = n};
    return poll_list(all_notifications, port, u, pick_notification, &w, true, IX_WAIT_MS, type);
}

json_t *ix_wait_actor(int port, const ts_user_t *u, const char *type, const char *post,
                      const char *actor)
{
    want_t w = {.type = type, .post = post, .actor = actor, .actor_count = -1};
    return poll_list(all_notifications, port, u, pick_notification, &w, true, IX_WAIT_MS, type);
}

void ix_wait_actions(int port, const ts_user_t *u, const char *actor, ...)
{
    va_list ap;
    va_start(ap, actor);
    for (const char *type; (type = va_arg(ap, const char *)) != NULL;) {
        const char *post = va_arg(ap, const char *);
        json_decref(ix_wait_actor(port, u, type, post, actor));
    }
    va_end(ap);
}

void ix_wait_no_notification(int port, const ts_user_t *u, const char *type, const char *post)
{
    want_t w = {.type = type, .post = post, .actor_count = -1};
    poll_list(all_notifications, port, u, pick_notification, &w, false, IX_WAIT_MS, type);
}

long long ix_unread(int port, const ts_user_t *u)
{
    json_t *j = ts_callf(port, "GET", u, NULL, 200, "/v1/notifications/unread_count");
    long long n = ts_int(j, "count");
    cr_assert_geq(n, 0, "unread_count answered no integer count");
    json_decref(j);
    return n;
}

void ix_wait_unread(int port, const ts_user_t *u, long long want)
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
        if (strcmp(ts_str(json_array_get(actors, i), "id"), ids[i]) != 0)
            return false;
    return true;
}

/* ---- the job queue ------------------------------------------------------------------------- */

void ix_wait_idle(void)
{
    redisContext *c = ts_redis_connect(ix_redis.port);
    bool idle = ts_wait_queue_empty(c, IX_WAIT_MS);
    long long length, pending;
    ts_queue(c, &length, &pending, NULL);
    ts_redis_close(c);
    cr_assert(idle, "the job queue still holds %lld jobs (%lld pending) after %d ms", length,
              pending, IX_WAIT_MS);
}
