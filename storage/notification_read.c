/* storage/notification_read.c -- reading notifications and the read mark (request side).
 *
 * Groups are read newest activity first; a page shows each group's newest few actors
 * and its actor count. Actors the reader has blocked, been blocked by or muted are left
 * out here too (the engine scrubs them, but a read may come first): one script on the
 * reader's slot reads each group's newest actors and tests exactly those against the
 * reader's three relation sets (ZMSCORE), never reading a set strangers can grow (200,000
 * blockers of one user) whole. The read mark is an
 * activity id: groups whose last activity is above it are unread, so the unread count is
 * one ZCOUNT and "mark read up to" is one atomic max.
 */
#include "storage/storage_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const storage_notification_types[STORAGE_NOTIFICATION_TYPES] = {
    "follow", "like", "repost", "reply", "mention"};

static const char unread_script[] = "local r = redis.call('GET', KEYS[2]) or '0'\n"
                                    "return redis.call('ZCOUNT', KEYS[1], '(' .. r, '+inf')\n";

static int parse_type(const char *group, size_t len)
{
    for (int t = 0; t < STORAGE_NOTIFICATION_TYPES; t++) {
        size_t n = strlen(storage_notification_types[t]);
        if (len > n && memcmp(group, storage_notification_types[t], n) == 0 && group[n] == ':')
            return t;
    }
    return -1;
}

/* How many of a group's newest actors the group script tests. Hidden actors deeper than this
 * (a block's scrub not yet done on a group of more than this many) still count in
 * actor_count; if all of them are hidden the group is left out. */
#define GROUP_SCAN 64

/* KEYS: blocks blockedby mutes nt, then one actor set per group; ARGV: want scan, then the
 * groups' keys. Per group: {shown actors (up to want, newest first), actors not hidden
 * among the scanned (the count is ZCARD minus the hidden scanned), its activity or false}. */
static const char groups_script[] =
    "local want, scan = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
    "local out = {}\n"
    "for i = 5, #KEYS do\n"
    "  local actors = redis.call('ZREVRANGE', KEYS[i], 0, scan - 1)\n"
    "  local shown, hidden = {}, 0\n"
    "  if #actors > 0 then\n"
    "    local b = redis.call('ZMSCORE', KEYS[1], unpack(actors))\n"
    "    local bb = redis.call('ZMSCORE', KEYS[2], unpack(actors))\n"
    "    local m = redis.call('ZMSCORE', KEYS[3], unpack(actors))\n"
    "    for k = 1, #actors do\n"
    "      if b[k] or bb[k] or m[k] then hidden = hidden + 1\n"
    "      elseif #shown < want then shown[#shown + 1] = actors[k] end\n"
    "    end\n"
    "  end\n"
    "  out[#out + 1] = {shown, redis.call('ZCARD', KEYS[i]) - hidden,\n"
    "                   redis.call('ZSCORE', KEYS[4], ARGV[i - 2]) or false}\n"
    "end\n"
    "return out\n";

/* Reads n groups (keys) of user with the group script in one round trip and fills
 * actors, actor_count, id and read of items[i] from it (id from the group's activity now: an
 * actor who joined since the first read moved it, and the id must be that of the newest
 * actor shown). A group gone since is left without actors, so that the caller drops it. */
static int read_groups(storage_t *s, uint64_t user, char (*keys)[96], size_t n,
                       storage_notification_t *items, uint64_t read_mark)
{
    if (n == 0)
        return 0;
    size_t argc = 3 + 4 + 2 * n + 2;
    const char **argv = calloc(argc, sizeof(*argv));
    char(*names)[160] = calloc(n + 4, sizeof(*names));
    if (!argv || !names) {
        free(argv);
        free(names);
        return -ENOMEM;
    }
    char numkeys[24], want[24], scan[24];
    snprintf(numkeys, sizeof(numkeys), "%zu", 4 + n);
    snprintf(want, sizeof(want), "%d", STORAGE_NOTIFICATION_ACTORS);
    snprintf(scan, sizeof(scan), "%d", GROUP_SCAN);
    snprintf(names[0], sizeof(names[0]), K_BLOCKS, (ull)user);
    snprintf(names[1], sizeof(names[1]), K_BLOCKED_BY, (ull)user);
    snprintf(names[2], sizeof(names[2]), K_MUTES, (ull)user);
    snprintf(names[3], sizeof(names[3]), K_NOTIFS, (ull)user);
    size_t a = 0;
    argv[a++] = "EVAL";
    argv[a++] = groups_script;
    argv[a++] = numkeys;
    for (size_t i = 0; i < 4; i++)
        argv[a++] = names[i];
    for (size_t i = 0; i < n; i++) {
        snprintf(names[4 + i], sizeof(names[0]), K_NOTIF_PREFIX "%s", (ull)user, keys[i]);
        argv[a++] = names[4 + i];
    }
    argv[a++] = want;
    argv[a++] = scan;
    for (size_t i = 0; i < n; i++)
        argv[a++] = keys[i];
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    storage_redis_batch_addargv(&b, (int)a, argv, NULL);
    int rc = storage_redis_batch_run_checked(&b);
    const redisReply *r = rc == 0 ? b.r[0] : NULL;
    if (rc == 0 && (r->type != REDIS_REPLY_ARRAY || r->elements != n))
        rc = -EIO;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const redisReply *g = r->element[i];
        storage_notification_t *it = &items[i];
        it->n_actors = 0;
        if (g->type != REDIS_REPLY_ARRAY || g->elements != 3 ||
            g->element[0]->type != REDIS_REPLY_ARRAY) {
            rc = -EIO;
            break;
        }
        if (g->element[2]->type != REDIS_REPLY_STRING)
            continue; /* gone since the first read */
        it->actor_count = storage_redis_int(g->element[1]);
        it->id = storage_redis_uint_str(g->element[2]);
        it->read = it->id <= read_mark;
        const redisReply *actors = g->element[0];
        for (size_t k = 0; k < actors->elements && k < STORAGE_NOTIFICATION_ACTORS; k++)
            it->actors[it->n_actors++] = storage_redis_uint_str(actors->element[k]);
    }
    storage_redis_batch_free(&b);
    free(argv);
    free(names);
    return rc;
}

void storage_notifications_free(storage_notifications_t *n)
{
    free(n->items);
    memset(n, 0, sizeof(*n));
}

int storage_notifications_page(storage_t *s, uint64_t user, uint64_t cursor, size_t limit,
                               unsigned types, size_t scan_max, storage_notifications_t *out)
{
    memset(out, 0, sizeof(*out));
    char max[32] = "+inf";
    if (cursor)
        snprintf(max, sizeof(max), "(%llu", (ull)cursor);
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    storage_redis_batch_add(&b, "ZREVRANGEBYSCORE " K_NOTIFS " %s -inf WITHSCORES LIMIT 0 %llu",
                            (ull)user, max, (ull)scan_max);
    storage_redis_batch_add(&b, "GET " K_NOTIF_READ, (ull)user);
    int rc = storage_redis_batch_run_checked(&b);
    if (rc) {
        storage_redis_batch_free(&b);
        return rc;
    }
    uint64_t read_mark = storage_redis_uint_str(b.r[1]);
    const redisReply *groups = b.r[0];
    out->items = calloc(limit + 1, sizeof(*out->items));
    if (!out->items) {
        storage_redis_batch_free(&b);
        storage_notifications_free(out);
        return -ENOMEM;
    }
    /* Pick the groups of the wanted types, keeping their keys for the second trip. */
    char(*keys)[96] = calloc(limit + 1, sizeof(*keys));
    size_t picked = 0;
    for (size_t i = 0; keys && i + 1 < groups->elements && picked <= limit; i += 2) {
        const redisReply *g = groups->element[i];
        int type = parse_type(g->str, g->len);
        if (type < 0 || !(types & (1u << type)) || g->len >= sizeof(keys[0]))
            continue;
        storage_notification_t *it = &out->items[picked];
        it->id = storage_redis_uint_str(groups->element[i + 1]);
        it->type = type;
        it->read = it->id <= read_mark;
        const char *colon = memchr(g->str, ':', g->len);
        if (type != STORAGE_NOTIFICATION_FOLLOW)
            it->subject = storage_redis_parse_u64(colon + 1, g->len - (size_t)(colon + 1 - g->str));
        memcpy(keys[picked], g->str, g->len);
        memcpy(it->group, g->str, g->len); /* both as large: g->len fits, checked above */
        picked++;
    }
    storage_redis_batch_free(&b);
    if (!keys) {
        storage_notifications_free(out);
        return -ENOMEM;
    }
    if (picked > limit) {
        out->next_cursor = out->items[limit - 1].id;
        picked = limit;
    }
    rc = read_groups(s, user, keys, picked, out->items, read_mark);
    size_t kept = 0;
    for (size_t i = 0; rc == 0 && i < picked; i++)
        if (out->items[i].n_actors > 0)
            out->items[kept++] = out->items[i];
    out->n = kept;
    free(keys);
    if (rc)
        storage_notifications_free(out);
    return rc;
}

int storage_notifications_unread(storage_t *s, uint64_t user, int64_t *count)
{
    char nt[40], nr[40];
    snprintf(nt, sizeof(nt), K_NOTIFS, (ull)user);
    snprintf(nr, sizeof(nr), K_NOTIF_READ, (ull)user);
    const char *argv[] = {"EVAL", unread_script, "2", nt, nr};
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    storage_redis_batch_addargv(&b, 5, argv, NULL);
    int rc = storage_redis_batch_run(&b);
    if (rc == 0 && b.r[0]->type != REDIS_REPLY_INTEGER)
        rc = -EIO;
    if (rc == 0)
        *count = b.r[0]->integer;
    storage_redis_batch_free(&b);
    return rc;
}

int storage_notifications_mark_read(storage_t *s, uint64_t user, uint64_t up_to)
{
    return storage_markers_move(s, user, 0, up_to, 0, NULL);
}

int storage_notification_get(storage_t *s, uint64_t user, const char *group,
                             storage_notification_t *out)
{
    memset(out, 0, sizeof(*out));
    int type = parse_type(group, strlen(group));
    if (type < 0)
        return -ENOENT;
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    storage_redis_batch_add(&b, "ZSCORE " K_NOTIFS " %s", (ull)user, group);
    storage_redis_batch_add(&b, "GET " K_NOTIF_READ, (ull)user);
    int rc = storage_redis_batch_run_checked(&b);
    if (rc == 0 && b.r[0]->type != REDIS_REPLY_STRING)
        rc = -ENOENT; /* gone since: trimmed, or its last actor left */
    uint64_t read_mark = rc == 0 ? storage_redis_uint_str(b.r[1]) : 0;
    char key[1][96];
    if (rc == 0 && strlen(group) >= sizeof(key[0]))
        rc = -ENOENT;
    if (rc == 0) {
        out->id = storage_redis_uint_str(b.r[0]);
        out->type = type;
        const char *colon = strchr(group, ':');
        if (type != STORAGE_NOTIFICATION_FOLLOW)
            out->subject = storage_redis_parse_u64(colon + 1, strlen(colon + 1));
    }
    storage_redis_batch_free(&b);
    if (rc == 0) {
        snprintf(key[0], sizeof(key[0]), "%s", group);
        snprintf(out->group, sizeof(out->group), "%s", group);
        rc = read_groups(s, user, key, 1, out, read_mark);
        if (rc == 0 && out->n_actors == 0)
            rc = -ENOENT;
    }
    return rc;
}
