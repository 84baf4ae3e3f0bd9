/* tests/live_state/ls.c -- the live-state suites' server and stream reading (ls.h). */
#include "tests/live_state/ls.h"

#include <criterion/criterion.h>
#include <string.h>

ts_server_t ls_srv;
ts_redis_t ls_redis;

void ls_setup(void)
{
    ts_redis_start_like_fixture(&ls_redis);
    ts_server_start(&ls_srv, ls_redis.url, NULL, true);
}

void ls_teardown(void)
{
    ts_server_stop_clean(&ls_srv, 10000);
    ts_redis_cleanup(&ls_redis);
}

void ls_wait_idle(void)
{
    struct redisContext *c = ts_redis_connect(ls_redis.port);
    bool idle = ts_wait_queue_empty(c, LS_WAIT_MS);
    ts_redis_close(c);
    cr_assert(idle, "the job queue did not drain within %d ms", LS_WAIT_MS);
}

static bool skipped(const ts_sse_item_t *it)
{
    return strcmp(it->type, "feed") == 0 || strcmp(it->type, "delete") == 0 ||
           strcmp(it->type, "counts") == 0;
}

json_t *ls_expect(ts_sse_t *c, const char *type, char id[64], int timeout_ms, const char *what)
{
    uint64_t deadline = ts_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        uint64_t now = ts_now_ms();
        cr_assert(now < deadline, "%s: no %s event within %d ms", what, type, timeout_ms);
        ts_sse_item_t it = {0};
        ts_sse_kind_t k = ts_sse_next_event(c, &it, (int)(deadline - now));
        cr_assert(k == TS_SSE_EVENT, "%s: the stream %s before a %s event", what,
                  k == TS_SSE_END ? "ended" : "went quiet", type);
        if (skipped(&it)) {
            ts_sse_item_clear(&it);
            continue;
        }
        cr_assert(strcmp(it.type, type) == 0, "%s: expected a %s event, got '%s' (id %s): %s", what,
                  type, it.type, it.id, it.data ? it.data : "no data");
        json_t *data = ts_sse_data(&it);
        if (id)
            snprintf(id, 64, "%s", it.id);
        ts_sse_item_clear(&it);
        return data;
    }
}

void ls_expect_quiet(ts_sse_t *c, int quiet_ms, const char *what)
{
    uint64_t deadline = ts_now_ms() + (uint64_t)quiet_ms;
    for (uint64_t now = ts_now_ms(); now < deadline; now = ts_now_ms()) {
        ts_sse_item_t it = {0};
        ts_sse_kind_t k = ts_sse_next_event(c, &it, (int)(deadline - now));
        if (k == TS_SSE_TIMEOUT)
            return;
        cr_assert(k == TS_SSE_EVENT, "%s: the stream ended", what);
        cr_assert(skipped(&it), "%s: an unexpected %s event (id %s): %s", what, it.type, it.id,
                  it.data ? it.data : "no data");
        ts_sse_item_clear(&it);
    }
}
