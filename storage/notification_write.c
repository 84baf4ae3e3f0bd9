/* storage/notification_write.c -- notification groups, as the engine writes them.
 *
 * A user's notifications are groups: nt:{user} ranks group keys ("like:<post>",
 * "repost:<post>", "follow:<yyyymmdd>", "reply:<post>", "mention:<post>") by their last
 * activity, and ng:{user}:<group> holds the group's actors by action id. Each change is
 * one Lua script on keys of one user (one hash tag, so one Cluster slot), which keeps
 * "add the actor, bump the group, trim to the cap, drop trimmed groups' actors" atomic:
 * the unread count (groups above the read mark) is exact under concurrency. Blocked and
 * muted actors are filtered inside the script, so no notification is written between them.
 * (Repost entries, which also go by a repost job, are timeline writes: timeline_write.c.)
 */
#include "storage/storage_async.h"
#include "storage/storage_internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Lua: day_group(id) is "follow:<yyyymmdd>" of the UTC day of the id's millisecond (ids are
 * ms << 12), as fanout/job.c names follow groups: days to civil date, after H. Hinnant's
 * days_from_civil inverse, in whole-number arithmetic (Redis' Lua has no os.date). */
#define SCRIPT_DAY_GROUP                                                                           \
    "local function day_group(id)\n"                                                               \
    "  local z = math.floor(math.floor(id / 4096) / 86400000) + 719468\n"                          \
    "  local era = math.floor(z / 146097)\n"                                                       \
    "  local doe = z - era * 146097\n"                                                             \
    "  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)\n"           \
    "                          - math.floor(doe / 146096)) / 365)\n"                               \
    "  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))\n"              \
    "  local mp = math.floor((5 * doy + 2) / 153)\n"                                               \
    "  local d = doy - math.floor((153 * mp + 2) / 5) + 1\n"                                       \
    "  local m = mp < 10 and mp + 3 or mp - 9\n"                                                   \
    "  local y = yoe + era * 400 + (m <= 2 and 1 or 0)\n"                                          \
    "  return string.format('follow:%04d%02d%02d', y, m, d)\n"                                     \
    "end\n"

/* Most followers remembered per user for the re-follow window (the newest kept). */
#define REFOLLOW_MAX 100000

/* KEYS: nt ng blocks blockedby mutes ev nfd nfw user nr cw; ARGV: group actor score cap ng-prefix
 * now maxlen channel follow target cutoff refollow-max. For follows (ARGV[9] = 1), a
 * follower already in some day's group is not added again; and one whose last notified
 * follow (nfw) is not older than cutoff (an event id; 0: no window) is not notified again:
 * their old notice comes back where it was (its day's group, its score: the group is not
 * bumped, nothing unread is added, no live event), so that a follower who toggles follow
 * and unfollow notifies once per window and is still listed. nfw forgets follows before the
 * cutoff. A new notice is also a live event when the target is connected (its log
 * ev:{target} exists), published on the target's node's channel, and so is the unread count
 * when it changed (SCRIPT_COUNTS). A target whose record is
 * gone (a user who left, storage/erase.c) gets nothing: their inbox is being erased. */
static const char add_script[] = SCRIPT_DAY_GROUP SCRIPT_LOG_EVENT SCRIPT_COUNTS
    "if redis.call('EXISTS', KEYS[9]) == 0 then return 0 end\n"
    "local a = ARGV[2]\n"
    "if redis.call('ZSCORE', KEYS[3], a) or redis.call('ZSCORE', KEYS[4], a)\n"
    "   or redis.call('ZSCORE', KEYS[5], a) then return 0 end\n"
    "local before = unread(KEYS[1], KEYS[10])\n"
    "local function counts()\n"
    "  counts_changed(KEYS[1], KEYS[10], KEYS[11], KEYS[6], ARGV[7], ARGV[8], ARGV[10], before)\n"
    "end\n"
    "local function cap()\n"
    "  local over = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[4])\n"
    "  if over > 0 then\n"
    "    local gone = redis.call('ZPOPMIN', KEYS[1], over)\n"
    "    for i = 1, #gone, 2 do redis.call('DEL', ARGV[5] .. gone[i]) end\n"
    "  end\n"
    "end\n"
    "if ARGV[9] == '1' then\n"
    "  if redis.call('HEXISTS', KEYS[7], a) == 1 then return 0 end\n"
    "  if ARGV[11] ~= '0' then\n"
    "    redis.call('ZREMRANGEBYSCORE', KEYS[8], '-inf', '(' .. ARGV[11])\n"
    "    local last = redis.call('ZSCORE', KEYS[8], a)\n"
    "    if last then\n"
    "      local g = day_group(tonumber(last))\n"
    "      redis.call('ZADD', ARGV[5] .. g, 'NX', last, a)\n"
    "      redis.call('ZADD', KEYS[1], 'GT', last, g)\n"
    "      redis.call('HSET', KEYS[7], a, g)\n"
    "      cap()\n"
    "      counts()\n"
    "      return 0\n"
    "    end\n"
    "  end\n"
    "end\n"
    "if redis.call('ZADD', KEYS[2], 'NX', ARGV[3], a) == 0 then return 0 end\n"
    "redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])\n"
    "if ARGV[9] == '1' then\n"
    "  redis.call('HSET', KEYS[7], a, ARGV[1])\n"
    "  if ARGV[11] ~= '0' then\n"
    "    redis.call('ZADD', KEYS[8], ARGV[3], a)\n"
    "    redis.call('ZREMRANGEBYRANK', KEYS[8], 0, -tonumber(ARGV[12]) - 1)\n"
    "  end\n"
    "end\n"
    "cap()\n"
    "log_event(KEYS[6], ARGV[7], ARGV[8], ARGV[10], 'notification', ARGV[1])\n"
    "counts()\n"
    "return 1\n";

/* KEYS: nt ev nr cw [nfd]; ARGV: group actor ng-prefix maxlen channel target. With nfd, the
 * group is looked up there. A group that keeps other actors is told anew (a "notification"
 * event: the client replaces the row of that key); one left empty goes, and says so. */
static const char group_remove_script[] = SCRIPT_LOG_EVENT SCRIPT_COUNTS
    "local g = ARGV[1]\n"
    "if KEYS[5] then\n"
    "  g = redis.call('HGET', KEYS[5], ARGV[2])\n"
    "  if not g then return 0 end\n"
    "  redis.call('HDEL', KEYS[5], ARGV[2])\n"
    "end\n"
    "local before = unread(KEYS[1], KEYS[3])\n"
    "local ng = ARGV[3] .. g\n"
    "local n = redis.call('ZREM', ng, ARGV[2])\n"
    "if n == 0 then return 0 end\n"
    "if redis.call('ZCARD', ng) == 0 then\n"
    "  redis.call('ZREM', KEYS[1], g)\n"
    "  log_event(KEYS[2], ARGV[4], ARGV[5], ARGV[6], 'notification_removed', g)\n"
    "elseif redis.call('ZSCORE', KEYS[1], g) then\n"
    "  log_event(KEYS[2], ARGV[4], ARGV[5], ARGV[6], 'notification', g)\n"
    "end\n"
    "counts_changed(KEYS[1], KEYS[3], KEYS[4], KEYS[2], ARGV[4], ARGV[5], ARGV[6], before)\n"
    "return n\n";

/* KEYS: nt ev nr cw; ARGV: actor ng-prefix maxlen channel user. Removes actor from every
 * group, telling each group it was in anew, or its removal. */
static const char scrub_script[] = SCRIPT_LOG_EVENT SCRIPT_COUNTS
    "local before = unread(KEYS[1], KEYS[3])\n"
    "for _, g in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do\n"
    "  local ng = ARGV[2] .. g\n"
    "  if redis.call('ZREM', ng, ARGV[1]) == 1 then\n"
    "    if redis.call('ZCARD', ng) == 0 then\n"
    "      redis.call('ZREM', KEYS[1], g)\n"
    "      log_event(KEYS[2], ARGV[3], ARGV[4], ARGV[5], 'notification_removed', g)\n"
    "    else\n"
    "      log_event(KEYS[2], ARGV[3], ARGV[4], ARGV[5], 'notification', g)\n"
    "    end\n"
    "  end\n"
    "end\n"
    "counts_changed(KEYS[1], KEYS[3], KEYS[4], KEYS[2], ARGV[3], ARGV[4], ARGV[5], before)\n"
    "return 1\n";

/* KEYS: nt ev ng nr cw; ARGV: group maxlen channel user. Drops the whole group (its post was
 * deleted); a group that was there is told gone. */
static const char drop_script[] = SCRIPT_LOG_EVENT SCRIPT_COUNTS
    "local before = unread(KEYS[1], KEYS[4])\n"
    "redis.call('DEL', KEYS[3])\n"
    "if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then\n"
    "  log_event(KEYS[2], ARGV[2], ARGV[3], ARGV[4], 'notification_removed', ARGV[1])\n"
    "end\n"
    "counts_changed(KEYS[1], KEYS[4], KEYS[5], KEYS[2], ARGV[2], ARGV[3], ARGV[4], before)\n"
    "return 1\n";

static void key(char *buf, size_t size, const char *fmt, uint64_t id)
{
    snprintf(buf, size, fmt, (ull)id);
}

/* window_ms: the re-follow window of a follow notice (0: none, and for other groups). */
static int group_add(storage_async_t *sa, uint64_t target, const char *group, uint64_t actor,
                     uint64_t score, int cap, uint64_t window_ms, storage_status_cb cb, void *arg)
{
    char nt[40], ng[160], blocks[40], blockedby[40], mutes[40], nfd[40], nfw[40], prefix[40];
    char ev[40], channel[40], a[24], sc[24], capbuf[16], now[24], maxlen[16], target_id[24];
    char cutoff[24], refollow_max[16], user[40], nr[40], cw[40];
    key(nt, sizeof(nt), K_NOTIFS, target);
    key(nr, sizeof(nr), K_NOTIF_READ, target);
    key(cw, sizeof(cw), K_COUNTS_WINDOW, target);
    key(user, sizeof(user), K_USER, target);
    key(prefix, sizeof(prefix), K_NOTIF_PREFIX, target);
    snprintf(ng, sizeof(ng), "%s%s", prefix, group);
    key(blocks, sizeof(blocks), K_BLOCKS, target);
    key(blockedby, sizeof(blockedby), K_BLOCKED_BY, target);
    key(mutes, sizeof(mutes), K_MUTES, target);
    key(nfd, sizeof(nfd), K_NOTIF_FOLLOWS, target);
    key(nfw, sizeof(nfw), K_NOTIF_REFOLLOW, target);
    key(ev, sizeof(ev), K_EVENTS, target);
    storage_redis_live_channel(storage_redis_async_client(sa->redis),
                               storage_redis_async_user_node(sa->redis, target), channel,
                               sizeof(channel));
    snprintf(a, sizeof(a), "%llu", (ull)actor);
    snprintf(sc, sizeof(sc), "%llu", (ull)score);
    snprintf(capbuf, sizeof(capbuf), "%d", cap);
    snprintf(now, sizeof(now), "%llu", (ull)storage__now_ms());
    snprintf(maxlen, sizeof(maxlen), "%d", EVENTS_MAXLEN);
    snprintf(target_id, sizeof(target_id), "%llu", (ull)target);
    /* The cutoff is an event id, from the follow's own id rather than the clock, so that a
     * retried job decides as its first run did. (Ids are ms << 12, storage/ids.c.) */
    uint64_t span = window_ms << (NODE_BITS + SEQ_BITS);
    snprintf(cutoff, sizeof(cutoff), "%llu",
             (ull)(window_ms == 0 ? 0
                   : score > span ? score - span
                                  : 1));
    snprintf(refollow_max, sizeof(refollow_max), "%d", REFOLLOW_MAX);
    const char *follow = strncmp(group, "follow:", 7) == 0 ? "1" : "0"; /* remembered in nfd */
    const char *argv[] = {"EVAL",  add_script, "11",      nt,     ng,          blocks, blockedby,
                          mutes,   ev,         nfd,       nfw,    user,        nr,     cw,
                          group,   a,          sc,        capbuf, prefix,      now,    maxlen,
                          channel, follow,     target_id, cutoff, refollow_max};
    storage_redis_group_t *g = storage_redis_group_new(sa->redis, cb, arg);
    if (!g)
        return -ENOMEM;
    storage_redis_group_add_argv(g, (int)(sizeof(argv) / sizeof(argv[0])), argv);
    return storage_redis_group_end(g);
}

int storage_group_add(storage_async_t *sa, uint64_t target, const char *group, uint64_t actor,
                      uint64_t score, int cap, storage_status_cb cb, void *arg)
{
    return group_add(sa, target, group, actor, score, cap, 0, cb, arg);
}

int storage_follow_notice_add(storage_async_t *sa, uint64_t target, const char *group,
                              uint64_t follower, uint64_t score, int cap, uint64_t window_ms,
                              storage_status_cb cb, void *arg)
{
    return group_add(sa, target, group, follower, score, cap, window_ms, cb, arg);
}

void storage__group_remove_args(storage__group_remove_t *gr, const char *channel, uint64_t target,
                                const char *group, uint64_t actor)
{
    key(gr->nt, sizeof(gr->nt), K_NOTIFS, target);
    key(gr->ev, sizeof(gr->ev), K_EVENTS, target);
    key(gr->nr, sizeof(gr->nr), K_NOTIF_READ, target);
    key(gr->cw, sizeof(gr->cw), K_COUNTS_WINDOW, target);
    key(gr->nfd, sizeof(gr->nfd), K_NOTIF_FOLLOWS, target);
    key(gr->prefix, sizeof(gr->prefix), K_NOTIF_PREFIX, target);
    snprintf(gr->actor, sizeof(gr->actor), "%llu", (ull)actor);
    snprintf(gr->maxlen, sizeof(gr->maxlen), "%d", EVENTS_MAXLEN);
    snprintf(gr->channel, sizeof(gr->channel), "%s", channel);
    snprintf(gr->target, sizeof(gr->target), "%llu", (ull)target);
    bool follow = group == NULL; /* a follow notice is found through nfd */
    int argc = 0;
    gr->argv[argc++] = "EVAL";
    gr->argv[argc++] = group_remove_script;
    gr->argv[argc++] = follow ? "5" : "4";
    gr->argv[argc++] = gr->nt;
    gr->argv[argc++] = gr->ev;
    gr->argv[argc++] = gr->nr;
    gr->argv[argc++] = gr->cw;
    if (follow)
        gr->argv[argc++] = gr->nfd;
    gr->argv[argc++] = follow ? "" : group;
    gr->argv[argc++] = gr->actor;
    gr->argv[argc++] = gr->prefix;
    gr->argv[argc++] = gr->maxlen;
    gr->argv[argc++] = gr->channel;
    gr->argv[argc++] = gr->target;
    gr->argc = argc;
}

/* The live channel of user's node into channel (40 bytes). */
static void channel_of(storage_async_t *sa, uint64_t user, char channel[40])
{
    storage_redis_live_channel(storage_redis_async_client(sa->redis),
                               storage_redis_async_user_node(sa->redis, user), channel, 40);
}

int storage_group_remove(storage_async_t *sa, uint64_t target, const char *group, uint64_t actor,
                         storage_status_cb cb, void *arg)
{
    char channel[40];
    channel_of(sa, target, channel);
    storage__group_remove_t gr;
    storage__group_remove_args(&gr, channel, target, group, actor);
    storage_redis_group_t *g = storage_redis_group_new(sa->redis, cb, arg);
    if (!g)
        return -ENOMEM;
    storage_redis_group_add_argv(g, gr.argc, gr.argv);
    return storage_redis_group_end(g);
}

/* The keys and arguments of a user's inbox that the drop and scrub scripts take. */
typedef struct inbox_args_s {
    char nt[40], ev[40], nr[40], cw[40], prefix[40], maxlen[16], channel[40], user[24];
} inbox_args_t;

static void inbox_args(storage_async_t *sa, uint64_t user, inbox_args_t *k)
{
    key(k->nt, sizeof(k->nt), K_NOTIFS, user);
    key(k->nr, sizeof(k->nr), K_NOTIF_READ, user);
    key(k->cw, sizeof(k->cw), K_COUNTS_WINDOW, user);
    key(k->ev, sizeof(k->ev), K_EVENTS, user);
    key(k->prefix, sizeof(k->prefix), K_NOTIF_PREFIX, user);
    snprintf(k->maxlen, sizeof(k->maxlen), "%d", EVENTS_MAXLEN);
    snprintf(k->user, sizeof(k->user), "%llu", (ull)user);
    channel_of(sa, user, k->channel);
}

/* Sends one command (argc words) as a group of its own. */
static int send_one(storage_async_t *sa, int argc, const char **argv, storage_status_cb cb,
                    void *arg)
{
    storage_redis_group_t *g = storage_redis_group_new(sa->redis, cb, arg);
    if (!g)
        return -ENOMEM;
    storage_redis_group_add_argv(g, argc, argv);
    return storage_redis_group_end(g);
}

int storage_group_drop(storage_async_t *sa, uint64_t user, const char *group, storage_status_cb cb,
                       void *arg)
{
    inbox_args_t k;
    inbox_args(sa, user, &k);
    char ng[160];
    snprintf(ng, sizeof(ng), "%s%s", k.prefix, group);
    const char *argv[] = {"EVAL", drop_script, "5",   k.nt,     k.ev,      ng,
                          k.nr,   k.cw,        group, k.maxlen, k.channel, k.user};
    return send_one(sa, (int)(sizeof(argv) / sizeof(argv[0])), argv, cb, arg);
}

int storage_group_scrub(storage_async_t *sa, uint64_t user, uint64_t actor, storage_status_cb cb,
                        void *arg)
{
    inbox_args_t k;
    inbox_args(sa, user, &k);
    char a[24];
    snprintf(a, sizeof(a), "%llu", (ull)actor);
    const char *argv[] = {"EVAL", scrub_script, "4",      k.nt,      k.ev,  k.nr, k.cw,
                          a,      k.prefix,     k.maxlen, k.channel, k.user};
    return send_one(sa, (int)(sizeof(argv) / sizeof(argv[0])), argv, cb, arg);
}
