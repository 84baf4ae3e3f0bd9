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

ts_sse_t *sx_reader_of(ts_server_t *s, const char *const *extra, const char *prefix,
                       ts_user_t *reader, ts_user_t *author)
{
    sx_use_private_redis();
    sx_server(s, extra);
    ts_register_all(s->port, prefix, reader, author, NULL);
    ts_follow(s->port, reader, author);
    return ts_stream(s->port, reader, NULL);
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

/* ---- events ------------------------------------------------------------------------------ */

void sx_expect(ts_sse_t *c, const char *type, const char *subject, char id[64], const char *what)
{
    ts_sse_item_t ev;
    ts_sse_expect(c, type, &ev, SX_WAIT_MS, what);
    if (subject) {
        char got[24];
        cr_assert_str_eq(ts_sse_data_id(&ev, got, sizeof(got)), subject, "%s: about %s, not %s",
                         what, got, subject);
    }
    cr_assert_eq(c->unknown_fields, 0, "%s: the stream sent a line naming no SSE field: %s", what,
                 c->unknown_line);
    if (id)
        snprintf(id, 64, "%s", ev.id);
    ts_sse_item_clear(&ev);
}

int sx_heartbeats(ts_sse_t *c, int want, int within_ms)
{
    int beats = 0;
    for (uint64_t until = ts_now_ms() + (uint64_t)within_ms; beats < want;) {
        int64_t left = (int64_t)until - (int64_t)ts_now_ms();
        ts_sse_item_t it;
        ts_sse_kind_t k = ts_sse_next(c, &it, left > 0 ? (int)left : 0);
        if (k == TS_SSE_TIMEOUT)
            break;
        cr_assert(k == TS_SSE_COMMENT,
                  "a stream between heartbeats sent item kind %d (type '%s', "
                  "id %s)",
                  k, it.type, it.id);
        cr_assert_str_eq(it.text, "heartbeat");
        beats++;
        ts_sse_item_clear(&it);
    }
    return beats;
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

json_t *sx_newest_notification(int port, const ts_user_t *u)
{
    json_t *list = ts_call(port, "GET", "/v1/notifications?limit=1", u->token, NULL, 200);
    json_t *first = json_array_get(json_object_get(list, "items"), 0);
    json_t *copy = first ? json_deep_copy(first) : NULL;
    json_decref(list);
    return copy;
}
