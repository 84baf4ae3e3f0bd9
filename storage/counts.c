/* storage/counts.c -- the counts window's flush: the deferred half of SCRIPT_COUNTS.
 *
 * A change of a user's unread count inside their counts window marks the window dirty and
 * publishes "counts_due <ms>" once; the live loops holding the user's streams run this flush
 * after the window. It logs the count as it is then, so the last value wins, and it opens a
 * new window, so two counts events are never closer than the window (by Redis' clock, which
 * also stamps the event ids). If no flush comes (every such process died inside the window),
 * the window stays dirty until the next change, which logs at once once the window is over;
 * a reconnecting client refetches the count anyway.
 */
#include "storage/storage_async.h"
#include "storage/storage_internal.h"

#include <errno.h>
#include <stdio.h>

/* KEYS: nt nr cw ev; ARGV: maxlen channel user. Returns 0, or the ms left of the window. */
static const char flush_script[] = SCRIPT_LOG_EVENT SCRIPT_COUNTS
    "local w = redis.call('HMGET', KEYS[3], 'until', 'dirty')\n"
    "if w[2] ~= '1' then return 0 end\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local untl = tonumber(w[1] or '0')\n"
    "if now < untl then return untl - now end\n"
    "redis.call('HSET', KEYS[3], 'until', string.format('%.0f', now + 1 + " COUNTS_WINDOW_STR "),\n"
    "           'dirty', '0')\n"
    "redis.call('PEXPIRE', KEYS[3], 10000)\n"
    "if redis.call('EXISTS', KEYS[4]) == 1 then\n"
    "  log_event(KEYS[4], ARGV[1], ARGV[2], ARGV[3], 'counts', tostring(unread(KEYS[1], "
    "KEYS[2])))\n"
    "end\n"
    "return 0\n";

int storage_counts_flush(storage_async_t *sa, uint64_t user, size_t *again_ms, storage_status_cb cb,
                         void *arg)
{
    char nt[40], nr[40], cw[40], ev[40], maxlen[16], channel[40], u[24];
    snprintf(nt, sizeof(nt), K_NOTIFS, (ull)user);
    snprintf(nr, sizeof(nr), K_NOTIF_READ, (ull)user);
    snprintf(cw, sizeof(cw), K_COUNTS_WINDOW, (ull)user);
    snprintf(ev, sizeof(ev), K_EVENTS, (ull)user);
    snprintf(maxlen, sizeof(maxlen), "%d", EVENTS_MAXLEN);
    snprintf(u, sizeof(u), "%llu", (ull)user);
    storage_redis_live_channel(storage_redis_async_client(sa->redis),
                               storage_redis_async_user_node(sa->redis, user), channel,
                               sizeof(channel));
    const char *argv[] = {"EVAL", flush_script, "4", nt, nr, cw, ev, maxlen, channel, u};
    storage_redis_group_t *g = storage_redis_group_new(sa->redis, cb, arg);
    if (!g)
        return -ENOMEM;
    *again_ms = 0;
    g->sum = again_ms;
    storage_redis_group_add_argv(g, (int)(sizeof(argv) / sizeof(argv[0])), argv);
    return storage_redis_group_end(g);
}
