/* storage/notification_read.c -- reading notifications and the read mark (request side).
 *
 * Groups are read newest activity first; a page shows each group's newest few actors
 * and its actor count. Actors the reader has blocked, been blocked by or muted are left
 * out here too (the engine scrubs them, but a read may come first). The read mark is an
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

static const char unread_script[] =
    "local r = redis.call('GET', KEYS[2]) or '0'\n"
    "return redis.call('ZCOUNT', KEYS[1], '(' .. r, '+inf')\n";

/* Never marks beyond the newest notification, so later ones stay unread. */
static const char mark_script[] =
    "local top = redis.call('ZREVRANGE', KEYS[1], 0, 0, 'WITHSCORES')\n"
    "if #top == 0 then return 0 end\n"
    "local upto = math.min(tonumber(ARGV[1]), tonumber(top[2]))\n"
    "local cur = tonumber(redis.call('GET', KEYS[2]) or '0')\n"
    "if upto > cur then redis.call('SET', KEYS[2], string.format('%.0f', upto)) end\n"
    "return 1\n";

static int parse_type(const char *group, size_t len)
{
    for (int t = 0; t < STORAGE_NOTIFICATION_TYPES; t++) {
        size_t n = strlen(storage_notification_types[t]);
        if (len > n && memcmp(group, storage_notification_types[t], n) == 0 && group[n] == ':')
            return t;
    }
    return -1;
}

static bool hidden(const uint64_t *h, size_t n, uint64_t id)
{
    for (size_t i = 0; i < n; i++)
        if (h[i] == id)
            return true;
    return false;
}

/* Appends the reads of one group: its newest actors (enough to show STORAGE_NOTIFICATION_ACTORS
 * even if the hidden ones are among them), its size, and which hidden users are in it.
 * Returns how many commands it added. */
static size_t add_group_reads(storage_redis_batch_t *b, uint64_t user, const char *group,
                              const uint64_t *hide, size_t n_hidden)
{
    storage_redis_batch_add(b, "ZREVRANGE " K_NOTIF_PREFIX "%s 0 %llu", (ull)user, group,
                            (ull)(STORAGE_NOTIFICATION_ACTORS + n_hidden - 1));
    storage_redis_batch_add(b, "ZCARD " K_NOTIF_PREFIX "%s", (ull)user, group);
    /* The group's activity again: an actor who joined since the first read moved it, and
     * the id must be that of the newest actor shown. */
    storage_redis_batch_add(b, "ZSCORE " K_NOTIFS " %s", (ull)user, group);
    if (!n_hidden)
        return 3;
    char key[160];
    snprintf(key, sizeof(key), K_NOTIF_PREFIX "%s", (ull)user, group);
    const char **argv = malloc((n_hidden + 2) * sizeof(*argv));
    char (*ids)[24] = malloc(n_hidden * sizeof(*ids));
    if (!argv || !ids) {
        free(argv);
        free(ids);
        b->err = -ENOMEM;
        return 2;
    }
    argv[0] = "ZMSCORE";
    argv[1] = key;
    for (size_t i = 0; i < n_hidden; i++) {
        snprintf(ids[i], sizeof(ids[i]), "%llu", (ull)hide[i]);
        argv[i + 2] = ids[i];
    }
    storage_redis_batch_addargv(b, (int)n_hidden + 2, argv, NULL);
    free(argv);
    free(ids);
    return 4;
}

/* Fills actors and actor_count of it from the replies of add_group_reads: the count is
 * exact, hidden actors excluded wherever they are in the group. */
static void read_group(storage_notification_t *it, redisReply **r, const uint64_t *hide,
                       size_t n_hidden, uint64_t read_mark)
{
    const redisReply *actors = r[0];
    it->actor_count = storage_redis_int(r[1]);
    if (r[2]->type != REDIS_REPLY_STRING)
        return; /* gone since the first read: left without actors, so it is dropped */
    it->id = storage_redis_uint_str(r[2]);
    it->read = it->id <= read_mark;
    for (size_t k = 0; n_hidden && r[3]->type == REDIS_REPLY_ARRAY && k < r[3]->elements; k++)
        if (r[3]->element[k]->type != REDIS_REPLY_NIL)
            it->actor_count--;
    for (size_t k = 0; actors->type == REDIS_REPLY_ARRAY && k < actors->elements; k++) {
        uint64_t a = storage_redis_uint_str(actors->element[k]);
        if (!hidden(hide, n_hidden, a) && it->n_actors < STORAGE_NOTIFICATION_ACTORS)
            it->actors[it->n_actors++] = a;
    }
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
    storage__add_hidden_reads(&b, user);
    int rc = storage_redis_batch_run_checked(&b);
    if (rc) {
        storage_redis_batch_free(&b);
        return rc;
    }
    uint64_t read_mark = storage_redis_uint_str(b.r[1]);
    size_t n_hidden;
    uint64_t *hide = storage__collect_hidden(b.r + 2, &n_hidden);
    const redisReply *groups = b.r[0];
    out->items = calloc(limit + 1, sizeof(*out->items));
    if (!hide || !out->items) {
        free(hide);
        storage_redis_batch_free(&b);
        storage_notifications_free(out);
        return -ENOMEM;
    }
    /* Pick the groups of the wanted types, keeping their keys for the second trip. */
    char (*keys)[96] = calloc(limit + 1, sizeof(*keys));
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
        picked++;
    }
    storage_redis_batch_free(&b);
    if (!keys) {
        free(hide);
        storage_notifications_free(out);
        return -ENOMEM;
    }
    if (picked > limit) {
        out->next_cursor = out->items[limit - 1].id;
        picked = limit;
    }
    storage_redis_batch_init(&b, s->redis);
    size_t stride = 0;
    for (size_t i = 0; i < picked; i++)
        stride = add_group_reads(&b, user, keys[i], hide, n_hidden);
    rc = picked ? storage_redis_batch_run(&b) : 0;
    size_t kept = 0;
    for (size_t i = 0; rc == 0 && i < picked; i++) {
        storage_notification_t it = out->items[i];
        read_group(&it, b.r + stride * i, hide, n_hidden, read_mark);
        if (it.n_actors > 0)
            out->items[kept++] = it;
    }
    out->n = kept;
    storage_redis_batch_free(&b);
    free(keys);
    free(hide);
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
    char nt[40], nr[40], upto[24];
    snprintf(nt, sizeof(nt), K_NOTIFS, (ull)user);
    snprintf(nr, sizeof(nr), K_NOTIF_READ, (ull)user);
    snprintf(upto, sizeof(upto), "%llu", (ull)up_to);
    const char *argv[] = {"EVAL", mark_script, "2", nt, nr, upto};
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    storage_redis_batch_addargv(&b, 6, argv, NULL);
    int rc = storage_redis_batch_run_checked(&b);
    storage_redis_batch_free(&b);
    return rc;
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
    storage__add_hidden_reads(&b, user);
    int rc = storage_redis_batch_run_checked(&b);
    if (rc == 0 && b.r[0]->type != REDIS_REPLY_STRING)
        rc = -ENOENT; /* gone since: trimmed, or its last actor left */
    size_t n_hidden = 0;
    uint64_t read_mark = rc == 0 ? storage_redis_uint_str(b.r[1]) : 0;
    uint64_t *hide = rc == 0 ? storage__collect_hidden(b.r + 2, &n_hidden) : NULL;
    if (rc == 0 && !hide)
        rc = -ENOMEM;
    if (rc == 0) {
        out->id = storage_redis_uint_str(b.r[0]);
        out->type = type;
        const char *colon = strchr(group, ':');
        if (type != STORAGE_NOTIFICATION_FOLLOW)
            out->subject = storage_redis_parse_u64(colon + 1, strlen(colon + 1));
    }
    storage_redis_batch_free(&b);
    if (rc == 0) {
        storage_redis_batch_init(&b, s->redis);
        add_group_reads(&b, user, group, hide, n_hidden);
        rc = storage_redis_batch_run(&b);
        if (rc == 0)
            read_group(out, b.r, hide, n_hidden, read_mark);
        if (rc == 0 && out->n_actors == 0)
            rc = -ENOENT;
        storage_redis_batch_free(&b);
    }
    free(hide);
    return rc;
}
