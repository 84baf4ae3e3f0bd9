/* tests/sse/sx.c -- servers, users, posts and checked streams for the stream tests (sx.h).
 *
 * Servers a test starts are remembered, so the suite's .fini can stop them all with SIGTERM
 * and insist on a clean exit: a stream test is also a shutdown test with streams open.
 */
#include "tests/sse/sx.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#define MAX_SERVERS 8

char sx_redis_url[256];
static ts_redis_t redis;
static ts_server_t *servers[MAX_SERVERS];

/* ---- servers ----------------------------------------------------------------------------- */

void sx_use_private_redis(void)
{
    ts_redis_start_like_fixture(&redis);
    snprintf(sx_redis_url, sizeof(sx_redis_url), "%s", redis.url);
}

void sx_use_fixture_redis(void)
{
    ts_redis_fixture_url(sx_redis_url, sizeof(sx_redis_url));
}

void sx_server(ts_server_t *s, const char *const *extra)
{
    cr_assert(sx_redis_url[0], "choose a Redis first");
    ts_server_start(s, sx_redis_url, extra, true);
    for (int i = 0; i < MAX_SERVERS; i++) {
        if (servers[i] == s)
            return;
    }
    for (int i = 0; i < MAX_SERVERS; i++) {
        if (!servers[i]) {
            servers[i] = s;
            return;
        }
    }
    cr_assert_fail("too many servers");
}

static void forget(ts_server_t *s)
{
    for (int i = 0; i < MAX_SERVERS; i++)
        if (servers[i] == s)
            servers[i] = NULL;
}

uint64_t sx_server_stop(ts_server_t *s, int timeout_ms)
{
    uint64_t t0 = ts_now_ms();
    int status = ts_server_stop(s, timeout_ms);
    uint64_t took = ts_now_ms() - t0;
    forget(s);
    cr_assert(status != -1, "the server did not exit within %d ms of SIGTERM", timeout_ms);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "the server did not exit cleanly after SIGTERM (wait status 0x%x)", status);
    return took;
}

uint64_t sx_server_reap(ts_server_t *s, int timeout_ms)
{
    uint64_t t0 = ts_now_ms();
    int status = ts_proc_wait(s->pid, timeout_ms);
    uint64_t took = ts_now_ms() - t0;
    if (status == -1)
        ts_proc_kill(s->pid);
    s->pid = 0;
    forget(s);
    cr_assert(status != -1, "the server did not exit within %d ms", timeout_ms);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "the server did not exit cleanly (wait status 0x%x)", status);
    return took;
}

void sx_teardown(void)
{
    for (int i = 0; i < MAX_SERVERS; i++) {
        ts_server_t *s = servers[i];
        if (s && s->pid > 0) {
            int status = ts_server_stop(s, 10000);
            cr_expect(status != -1, "a server did not stop within 10 s of SIGTERM");
            cr_expect(status == -1 || (WIFEXITED(status) && WEXITSTATUS(status) == 0),
                      "a server did not exit cleanly (wait status 0x%x)", status);
        }
        servers[i] = NULL;
    }
    if (redis.pid)
        ts_redis_cleanup(&redis);
}

/* ---- users, posts, metrics --------------------------------------------------------------- */

const char *sx_str(const json_t *obj, const char *key)
{
    const char *v = json_string_value(json_object_get(obj, key));
    return v ? v : "";
}

void sx_register(int port, const char *prefix, sx_user_t *u)
{
    memset(u, 0, sizeof(*u));
    ts_unique(u->handle, sizeof(u->handle), prefix);
    char body[128];
    snprintf(body, sizeof(body), "{\"handle\":\"%s\"}", u->handle);
    json_t *j = ts_call(port, "POST", "/v1/users", NULL, body, 201);
    snprintf(u->id, sizeof(u->id), "%s", sx_str(json_object_get(j, "user"), "id"));
    snprintf(u->token, sizeof(u->token), "%s", sx_str(j, "token"));
    cr_assert(u->id[0] && u->token[0], "registration answered no id or token");
    json_decref(j);
}

void sx_follow(int port, const sx_user_t *a, const sx_user_t *b)
{
    char path[96];
    snprintf(path, sizeof(path), "/v1/users/%s/follow", b->id);
    json_decref(ts_call(port, "PUT", path, a->token, NULL, 204));
}

char *sx_text(const char *tag, size_t len)
{
    static const char wide[] = "\xF0\x9D\x84\x9E"; /* U+1D11E: one character, four bytes */
    size_t tl = strlen(tag), fill = len > tl ? len - tl : 0;
    char *s = malloc(tl + 4 * fill + 1);
    cr_assert(s);
    memcpy(s, tag, tl);
    for (size_t i = 0; i < fill; i++)
        memcpy(s + tl + 4 * i, wide, 4);
    s[tl + 4 * fill] = '\0';
    return s;
}

static char *post_body(const char *text)
{
    json_t *b = json_pack("{s:s}", "text", text);
    char *s = b ? json_dumps(b, JSON_COMPACT) : NULL;
    json_decref(b);
    return s;
}

void sx_post(int port, const sx_user_t *u, const char *text, char id[24])
{
    char *body = post_body(text);
    cr_assert(body);
    json_t *j = ts_call(port, "POST", "/v1/posts", u->token, body, 202);
    free(body);
    snprintf(id, 24, "%s", sx_str(j, "id"));
    cr_assert(id[0], "publishing answered no post id");
    json_decref(j);
}

int sx_post_raw(int port, const char *token, const char *text, char id[24])
{
    id[0] = '\0';
    char *body = post_body(text);
    if (!body)
        return 0;
    size_t cap = strlen(body) + strlen(token) + 512;
    char *req = malloc(cap);
    if (!req) {
        free(body);
        return 0;
    }
    int n = snprintf(req, cap,
                     "POST /v1/posts HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n"
                     "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     port, token, strlen(body), body);
    ts_resp_t r;
    int status = 0;
    if (ts_http_raw(port, req, (size_t)n, 15000, &r) == 0) {
        status = r.status;
        json_t *j = ts_resp_json(&r);
        snprintf(id, 24, "%s", sx_str(j, "id"));
        json_decref(j);
    }
    ts_resp_free(&r);
    free(req);
    free(body);
    return status;
}

void sx_delete_post(int port, const sx_user_t *u, const char *id)
{
    char path[96];
    snprintf(path, sizeof(path), "/v1/posts/%s", id);
    json_decref(ts_call(port, "DELETE", path, u->token, NULL, 204));
}

void sx_like(int port, const sx_user_t *u, const char *post)
{
    char path[96];
    snprintf(path, sizeof(path), "/v1/posts/%s/like", post);
    json_decref(ts_call(port, "PUT", path, u->token, NULL, 204));
}

double sx_metric(int port, const char *name)
{
    ts_resp_t r;
    ts_http(port, "GET", "/metrics", NULL, NULL, NULL, &r);
    cr_assert_eq(r.status, 200, "GET /metrics answered %d", r.status);
    size_t nlen = strlen(name);
    double v = 0;
    bool found = false;
    for (const char *line = r.body; line && *line && !found;) {
        const char *eol = strchr(line, '\n');
        if (strncmp(line, name, nlen) == 0 && line[nlen] == ' ') {
            v = strtod(line + nlen + 1, NULL);
            found = true;
        }
        line = eol ? eol + 1 : NULL;
    }
    ts_resp_free(&r);
    cr_assert(found, "GET /metrics has no sample %s", name);
    return v;
}

json_t *sx_newest_notification(int port, const sx_user_t *u)
{
    json_t *list = ts_call(port, "GET", "/v1/notifications?limit=1", u->token, NULL, 200);
    json_t *first = json_array_get(json_object_get(list, "items"), 0);
    json_t *copy = first ? json_deep_copy(first) : NULL;
    json_decref(list);
    return copy;
}

/* ---- streams ------------------------------------------------------------------------------ */

sse_t *sx_stream_opts(int port, const sse_opts_t *o)
{
    sse_t *c = sse_open(port, o, SX_OPEN_MS);
    cr_assert_eq(c->status, 200, "GET %s answered %d, not a stream: %s",
                 o->path ? o->path : "/v1/stream", c->status, c->body);
    char ct[128];
    cr_assert(sse_header(c, "Content-Type", ct, sizeof(ct)), "the stream has no Content-Type");
    cr_assert(strncmp(ct, "text/event-stream", 17) == 0, "the stream's Content-Type is %s", ct);
    sse_item_t it;
    sse_kind_t k = sse_next(c, &it, SX_OPEN_MS);
    cr_assert(k == SSE_RETRY && it.retry_ms == 3000,
              "the stream did not start with retry: 3000 (item kind %d, retry %ld, type '%s', "
              "comment '%s')",
              k, it.retry_ms, it.type, it.text);
    sse_item_clear(&it);
    return c;
}

sse_t *sx_stream(int port, const sx_user_t *u, const char *last_event_id)
{
    sse_opts_t o = {.token = u->token, .last_event_id = last_event_id};
    return sx_stream_opts(port, &o);
}

void sx_expect_event(sse_t *c, const char *type, sse_item_t *it, int timeout_ms,
                     const char *what)
{
    sse_kind_t k = sse_next_event(c, it, timeout_ms);
    cr_assert(k != SSE_TIMEOUT, "%s: no event within %d ms", what, timeout_ms);
    cr_assert(k != SSE_END, "%s: the stream ended (%s%s)", what,
              c->clean_end ? "clean end" : "connection closed",
              c->framing_error ? ", framing error" : "");
    cr_assert(it->has_id && it->id[0], "%s: an event without id (type '%s')", what, it->type);
    if (type)
        cr_assert_str_eq(it->type, type, "%s: expected a '%s' event, got '%s' (id %s, data %.300s)",
                         what, type, it->type, it->id, it->data ? it->data : "(none)");
}

json_t *sx_data(const sse_item_t *it)
{
    json_error_t err;
    json_t *j = it->data ? json_loads(it->data, 0, &err) : NULL;
    cr_assert(j, "event %s (%s): data is not JSON: %.300s", it->id, it->type,
              it->data ? it->data : "(none)");
    return j;
}

const char *sx_data_id(const sse_item_t *it, char *buf, size_t size)
{
    json_t *j = sx_data(it);
    snprintf(buf, size, "%s", sx_str(j, "id"));
    json_decref(j);
    return buf;
}

int sx_id_cmp(const char *a, const char *b)
{
    unsigned long long ams = 0, aseq = 0, bms = 0, bseq = 0;
    sscanf(a, "%llu-%llu", &ams, &aseq);
    sscanf(b, "%llu-%llu", &bms, &bseq);
    if (ams != bms)
        return ams < bms ? -1 : 1;
    return aseq < bseq ? -1 : aseq > bseq;
}

/* ---- what one user received ----------------------------------------------------------------- */

void sx_got_add(sx_got_t *g, const char *event, const char *post)
{
    if (g->n == g->cap) {
        g->cap = g->cap ? g->cap * 2 : 256;
        g->event = realloc(g->event, g->cap * sizeof(*g->event));
        g->post = realloc(g->post, g->cap * sizeof(*g->post));
        cr_assert(g->event && g->post);
    }
    snprintf(g->event[g->n], sizeof(g->event[g->n]), "%s", event);
    snprintf(g->post[g->n], sizeof(g->post[g->n]), "%s", post);
    g->n++;
}

void sx_got_free(sx_got_t *g)
{
    free(g->event);
    free(g->post);
    memset(g, 0, sizeof(*g));
}

void sx_read_feed(sse_t *c, sx_got_t *g, int timeout_ms, const char *what)
{
    sse_item_t ev;
    sx_expect_event(c, "feed", &ev, timeout_ms, what);
    char post[24];
    sx_data_id(&ev, post, sizeof(post));
    if (g->n)
        cr_assert_gt(sx_id_cmp(ev.id, g->event[g->n - 1]), 0,
                     "%s: event %s (post %s) came after %s (post %s): a duplicate or out of "
                     "order",
                     what, ev.id, post, g->event[g->n - 1], g->post[g->n - 1]);
    sx_got_add(g, ev.id, post);
    sse_item_clear(&ev);
}

sse_t *sx_resume_until(int port, const sx_user_t *u, sx_got_t *g, size_t total,
                       const char *what)
{
    cr_assert(g->n > 0, "nothing to resume from");
    for (int attempt = 1;; attempt++) {
        char last[64];
        snprintf(last, sizeof(last), "%s", g->event[g->n - 1]);
        sse_t *c = sx_stream(port, u, last);
        size_t before = g->n;
        while (g->n < total) {
            sse_item_t ev;
            sse_kind_t k = sse_next_event(c, &ev, SX_WAIT_MS);
            cr_assert(k != SSE_TIMEOUT, "%s: resuming after %s (connection %d): nothing for %d ms "
                                        "with %zu of %zu events received",
                      what, last, attempt, SX_WAIT_MS, g->n, total);
            if (k == SSE_END)
                break;
            cr_assert_str_eq(ev.type, "feed", "%s: resuming after %s: a '%s' event (id %s)", what,
                             last, ev.type, ev.id);
            char post[24];
            sx_data_id(&ev, post, sizeof(post));
            cr_assert_gt(sx_id_cmp(ev.id, g->event[g->n - 1]), 0,
                         "%s: event %s came after %s: a duplicate or out of order", what, ev.id,
                         g->event[g->n - 1]);
            sx_got_add(g, ev.id, post);
            sse_item_clear(&ev);
        }
        if (g->n >= total)
            return c;
        cr_assert_gt(g->n, before,
                     "%s: the server ended the stream resumed after %s (connection %d) without "
                     "sending any of the %zu events still missing; a client resuming from there "
                     "would repeat this forever",
                     what, last, attempt, total - g->n);
        sse_close(c);
    }
}
