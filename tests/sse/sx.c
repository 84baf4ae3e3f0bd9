/* tests/sse/sx.c -- the servers of a stream test and what one user received (sx.h).
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
    forget(s);
    return ts_server_stop_clean(s, timeout_ms);
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
        if (servers[i])
            ts_server_stop_clean(servers[i], 10000);
        servers[i] = NULL;
    }
    if (redis.pid)
        ts_redis_cleanup(&redis);
}

/* ---- users, posts, metrics --------------------------------------------------------------- */

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
        snprintf(id, 24, "%s", ts_str(j, "id"));
        json_decref(j);
    }
    ts_resp_free(&r);
    free(req);
    free(body);
    return status;
}

json_t *sx_newest_notification(int port, const ts_user_t *u)
{
    json_t *list = ts_call(port, "GET", "/v1/notifications?limit=1", u->token, NULL, 200);
    json_t *first = json_array_get(json_object_get(list, "items"), 0);
    json_t *copy = first ? json_deep_copy(first) : NULL;
    json_decref(list);
    return copy;
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

void sx_read_feed(ts_sse_t *c, sx_got_t *g, int timeout_ms, const char *what)
{
    ts_sse_item_t ev;
    ts_sse_expect(c, "feed", &ev, timeout_ms, what);
    char post[24];
    ts_sse_data_id(&ev, post, sizeof(post));
    if (g->n)
        cr_assert_gt(ts_sse_id_cmp(ev.id, g->event[g->n - 1]), 0,
                     "%s: event %s (post %s) came after %s (post %s): a duplicate or out of "
                     "order",
                     what, ev.id, post, g->event[g->n - 1], g->post[g->n - 1]);
    sx_got_add(g, ev.id, post);
    ts_sse_item_clear(&ev);
}

ts_sse_t *sx_resume_until(int port, const ts_user_t *u, sx_got_t *g, size_t total,
                       const char *what)
{
    cr_assert(g->n > 0, "nothing to resume from");
    for (int attempt = 1;; attempt++) {
        char last[64];
        snprintf(last, sizeof(last), "%s", g->event[g->n - 1]);
        ts_sse_t *c = ts_stream(port, u, last);
        size_t before = g->n;
        while (g->n < total) {
            ts_sse_item_t ev;
            ts_sse_kind_t k = ts_sse_next_event(c, &ev, SX_WAIT_MS);
            cr_assert(k != TS_SSE_TIMEOUT, "%s: resuming after %s (connection %d): nothing for %d ms "
                                        "with %zu of %zu events received",
                      what, last, attempt, SX_WAIT_MS, g->n, total);
            if (k == TS_SSE_END)
                break;
            cr_assert_str_eq(ev.type, "feed", "%s: resuming after %s: a '%s' event (id %s)", what,
                             last, ev.type, ev.id);
            char post[24];
            ts_sse_data_id(&ev, post, sizeof(post));
            cr_assert_gt(ts_sse_id_cmp(ev.id, g->event[g->n - 1]), 0,
                         "%s: event %s came after %s: a duplicate or out of order", what, ev.id,
                         g->event[g->n - 1]);
            sx_got_add(g, ev.id, post);
            ts_sse_item_clear(&ev);
        }
        if (g->n >= total)
            return c;
        cr_assert_gt(g->n, before,
                     "%s: the server ended the stream resumed after %s (connection %d) without "
                     "sending any of the %zu events still missing; a client resuming from there "
                     "would repeat this forever",
                     what, last, attempt, total - g->n);
        ts_sse_close(c);
    }
}
