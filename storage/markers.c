/* storage/markers.c -- a user's markers: where they stopped reading, shared by their devices.
 *
 * Two markers: home (the newest post of the home timeline the user has seen, mk:{user}) and
 * notifications, which is the read mark nr:{user} itself (notification_read.c counts unread
 * groups above it): one mark, not two. A marker never moves back, and the notifications
 * marker never passes the newest notification (later ones stay unread). One script on the
 * user's slot moves both and, when either moved, logs and publishes a "marker" event in the
 * same step: its ref is "<token>:<home>:<notifications>" (0: no marker), the token that
 * moved them (so that its device's streams skip it) and the markers as they now are (so
 * that rendering it reads nothing). A moved read mark changes the unread count: the same
 * script tells the user's streams (SCRIPT_COUNTS).
 */
#include "storage/storage_internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* KEYS: nt nr mk ev cw; ARGV: home notifications (each '' when not moved) maxlen channel user
 * token. Returns {home or false, notifications or false}. Ids are below 2^53 (ms << 12 until
 * the year 2100), exact in Lua's numbers. */
static const char move_script[] = SCRIPT_LOG_EVENT SCRIPT_COUNTS
    "local moved = false\n"
    "local before = unread(KEYS[1], KEYS[2])\n"
    "if ARGV[1] ~= '' and tonumber(ARGV[1]) > tonumber(redis.call('GET', KEYS[3]) or '0') then\n"
    "  redis.call('SET', KEYS[3], ARGV[1])\n"
    "  moved = true\n"
    "end\n"
    "if ARGV[2] ~= '' then\n"
    "  local top = redis.call('ZREVRANGE', KEYS[1], 0, 0, 'WITHSCORES')\n"
    "  if #top > 0 then\n"
    "    local upto = math.min(tonumber(ARGV[2]), tonumber(top[2]))\n"
    "    if upto > tonumber(redis.call('GET', KEYS[2]) or '0') then\n"
    "      redis.call('SET', KEYS[2], string.format('%.0f', upto))\n"
    "      moved = true\n"
    "    end\n"
    "  end\n"
    "end\n"
    "local home = redis.call('GET', KEYS[3])\n"
    "local nr = redis.call('GET', KEYS[2])\n"
    "if moved then\n"
    "  log_event(KEYS[4], ARGV[3], ARGV[4], ARGV[5], 'marker',\n"
    "            ARGV[6] .. ':' .. (home or '0') .. ':' .. (nr or '0'))\n"
    "  counts_changed(KEYS[1], KEYS[2], KEYS[5], KEYS[4], ARGV[3], ARGV[4], ARGV[5], before)\n"
    "end\n"
    "return {home, nr}\n";

static int markers_reply(const redisReply *r, storage_markers_t *out)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2)
        return -EIO;
    out->home = storage_redis_uint_str(r->element[0]);
    out->notifications = storage_redis_uint_str(r->element[1]);
    return 0;
}

int storage_markers_move(storage_t *s, uint64_t user, uint64_t home, uint64_t notifications,
                         uint64_t token, storage_markers_t *out)
{
    char nt[40], nr[40], mk[40], ev[40], cw[40], h[24] = "", n[24] = "", maxlen[16], channel[40],
                                                 u[24], tok[24];
    snprintf(cw, sizeof(cw), K_COUNTS_WINDOW, (ull)user);
    snprintf(nt, sizeof(nt), K_NOTIFS, (ull)user);
    snprintf(nr, sizeof(nr), K_NOTIF_READ, (ull)user);
    snprintf(mk, sizeof(mk), K_MARKER_HOME, (ull)user);
    snprintf(ev, sizeof(ev), K_EVENTS, (ull)user);
    if (home)
        snprintf(h, sizeof(h), "%llu", (ull)home);
    if (notifications)
        snprintf(n, sizeof(n), "%llu", (ull)notifications);
    snprintf(maxlen, sizeof(maxlen), "%d", EVENTS_MAXLEN);
    snprintf(u, sizeof(u), "%llu", (ull)user);
    snprintf(tok, sizeof(tok), "%llu", (ull)token);
    int rc = storage_redis_live_channel_of_key(s->redis, ev, channel, sizeof(channel));
    if (rc)
        return rc;
    const char *argv[] = {"EVAL", move_script, "5", nt,     nr,      mk, ev,
                          cw,     h,           n,   maxlen, channel, u,  tok};
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    storage_redis_batch_addargv(&b, (int)(sizeof(argv) / sizeof(argv[0])), argv, NULL);
    rc = storage_redis_batch_run_checked(&b);
    storage_markers_t ignored;
    if (rc == 0)
        rc = markers_reply(b.r[0], out ? out : &ignored);
    storage_redis_batch_free(&b);
    return rc;
}

int storage_markers_get(storage_t *s, uint64_t user, storage_markers_t *out)
{
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    storage_redis_batch_add(&b, "GET " K_MARKER_HOME, (ull)user);
    storage_redis_batch_add(&b, "GET " K_NOTIF_READ, (ull)user);
    int rc = storage_redis_batch_run_checked(&b);
    if (rc == 0) {
        out->home = storage_redis_uint_str(b.r[0]);
        out->notifications = storage_redis_uint_str(b.r[1]);
    }
    storage_redis_batch_free(&b);
    return rc;
}

bool storage_marker_event_parse(const char *ref, uint64_t *token, storage_markers_t *out)
{
    unsigned long long t, h, n;
    int used = 0;
    if (sscanf(ref, "%llu:%llu:%llu%n", &t, &h, &n, &used) != 3 || ref[used] != '\0')
        return false;
    *token = t;
    out->home = h;
    out->notifications = n;
    return true;
}
