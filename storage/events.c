/* storage/events.c -- the live-event log and registry of connected users.
 *
 * Events go to users with a stream open (or closed within a grace period): the engine
 * looks them up in the "online" sorted set (user -> expiry) once per chunk, and for each
 * one a script appends the event to the user's log ev:{user} (a capped stream, whose ids
 * are assigned at write time and so strictly increase per user) and publishes the ids on
 * the live channel, one message per chunk. A stream resumes from the log after its
 * Last-Event-ID with neither gap nor duplicate, because both paths carry the same ids.
 * A user offline past the grace period has no log for that time: a reconnect then gets a
 * reset instead of a silent gap.
 */
#include "storage/storage_async.h"
#include "storage/storage_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* KEYS: ev:{user}…; ARGV: maxlen kind ref channel. One call per chunk of followers and
 * one message for all of them ("<kind> <ref> <user>:<id> …"), not one per follower: at ten
 * thousand connected followers, per-command and per-message costs (in Redis, and parsing
 * ten thousand messages on the loop) were most of the delivery latency. */
static const char publish_script[] =
    "local parts = {ARGV[2], ARGV[3]}\n"
    "for _, key in ipairs(KEYS) do\n"
    "  local id = redis.call('XADD', key, 'MAXLEN', '~', ARGV[1], '*', 'k', ARGV[2],\n"
    "                        'r', ARGV[3])\n"
    "  parts[#parts + 1] = string.sub(key, 5, -2) .. ':' .. id\n"
    "end\n"
    "redis.call('PUBLISH', ARGV[4], table.concat(parts, ' '))\n"
    "return #KEYS\n";

/* ---- the engine's side (async) ----------------------------------------------------------- */

typedef struct publish_op_s {
    storage_async_t *sa;
    storage__group_t *group; /* completes the caller's callback */
    char kind[16], ref[96];
    uint64_t *users;
    size_t n;
} publish_op_t;

/* Appends one call that logs and publishes the event for each of users (n > 0). */
static void publish_many(storage__group_t *g, const uint64_t *users, size_t n, const char *kind,
                         const char *ref)
{
    const char **argv = malloc((n + 7) * sizeof(*argv));
    char (*keys)[40] = malloc(n * sizeof(*keys));
    char numkeys[24], maxlen[16];
    if (!argv || !keys) {
        free(argv);
        free(keys);
        if (!g->status)
            g->status = -ENOMEM;
        return;
    }
    snprintf(numkeys, sizeof(numkeys), "%zu", n);
    snprintf(maxlen, sizeof(maxlen), "%d", EVENTS_MAXLEN);
    size_t a = 0;
    argv[a++] = "EVAL";
    argv[a++] = publish_script;
    argv[a++] = numkeys;
    for (size_t i = 0; i < n; i++) {
        snprintf(keys[i], sizeof(keys[i]), K_EVENTS, (ull)users[i]);
        argv[a++] = keys[i];
    }
    argv[a++] = maxlen;
    argv[a++] = kind;
    argv[a++] = ref;
    argv[a++] = CHANNEL_LIVE;
    storage__group_add_argv(g, (int)a, argv);
    free(argv);
    free(keys);
}

static void on_online(void *priv, int status, redisReply *r)
{
    publish_op_t *op = priv;
    storage__group_t *g = op->group;
    if (status) {
        if (!g->status)
            g->status = status;
    } else if (r->type == REDIS_REPLY_ARRAY) {
        uint64_t now = storage__now_ms();
        size_t online = 0; /* compacts op->users to those connected */
        for (size_t i = 0; i < r->elements && i < op->n; i++) {
            const redisReply *e = r->element[i];
            uint64_t expiry = e->type == REDIS_REPLY_STRING ? strtoull(e->str, NULL, 10) : 0;
            if (expiry > now)
                op->users[online++] = op->users[i];
        }
        if (online)
            publish_many(g, op->users, online, op->kind, op->ref);
    }
    free(op->users);
    free(op);
    storage__group_unref(g); /* the reference held for this reply */
}

int storage_events_publish(storage_async_t *sa, const uint64_t *users, size_t n,
                           const char *kind, const char *ref, storage_status_cb cb, void *arg)
{
    publish_op_t *op = calloc(1, sizeof(*op));
    storage__group_t *g = op ? storage__group_new(sa, cb, arg) : NULL;
    if (op)
        op->users = malloc((n ? n : 1) * sizeof(*op->users));
    if (!op || !g || !op->users) {
        free(g);
        if (op)
            free(op->users);
        free(op);
        return -ENOMEM;
    }
    op->sa = sa;
    op->group = g;
    op->n = n;
    memcpy(op->users, users, n * sizeof(*users));
    snprintf(op->kind, sizeof(op->kind), "%s", kind);
    snprintf(op->ref, sizeof(op->ref), "%s", ref);
    /* ZMSCORE online u1 … un: one command per chunk finds who is listening. */
    const char **argv = malloc((n + 2) * sizeof(*argv));
    char (*ids)[24] = malloc((n ? n : 1) * sizeof(*ids));
    int rc = argv && ids ? 0 : -ENOMEM;
    if (rc == 0) {
        argv[0] = "ZMSCORE";
        argv[1] = K_ONLINE;
        for (size_t i = 0; i < n; i++) {
            snprintf(ids[i], sizeof(ids[i]), "%llu", (ull)users[i]);
            argv[i + 2] = ids[i];
        }
        g->pending++; /* held for on_online */
        rc = storage__asend_argv(sa, STORAGE__WRITER, on_online, op, (int)n + 2, argv, NULL);
        if (rc)
            g->pending--;
    }
    free(argv);
    free(ids);
    if (rc) {
        free(op->users);
        free(op);
        free(g);
        return rc;
    }
    return storage__group_end(g);
}

/* ---- the stream's side (sync) ------------------------------------------------------------- */

int storage_events_online(storage_t *s, uint64_t user, int grace_ms, bool *was_online)
{
    uint64_t now = storage__now_ms();
    storage__batch_t b;
    storage__batch_init(&b, s);
    storage__batch_add(&b, "ZSCORE " K_ONLINE " %llu", (ull)user);
    storage__batch_add(&b, "ZADD " K_ONLINE " %llu %llu", (ull)(now + (uint64_t)grace_ms),
                       (ull)user);
    int rc = storage__batch_run(&b);
    if (rc == 0 && (storage__is_error(b.r[0]) || storage__is_error(b.r[1])))
        rc = -EIO;
    if (rc == 0)
        *was_online = b.r[0]->type == REDIS_REPLY_STRING && strtoull(b.r[0]->str, NULL, 10) > now;
    storage__batch_free(&b);
    return rc;
}

int storage_events_refresh(storage_t *s, const uint64_t *users, size_t n, int grace_ms)
{
    uint64_t now = storage__now_ms();
    storage__batch_t b;
    storage__batch_init(&b, s);
    storage__batch_add(&b, "ZREMRANGEBYSCORE " K_ONLINE " -inf %llu", (ull)now);
    for (size_t i = 0; i < n; i++)
        storage__batch_add(&b, "ZADD " K_ONLINE " %llu %llu", (ull)(now + (uint64_t)grace_ms),
                           (ull)users[i]);
    int rc = storage__batch_run(&b);
    storage__batch_free(&b);
    return rc;
}

int storage_events_tail(storage_t *s, uint64_t user, char id[STORAGE_EVENT_ID_MAX])
{
    storage__batch_t b;
    storage__batch_init(&b, s);
    storage__batch_add(&b, "XREVRANGE " K_EVENTS " + - COUNT 1", (ull)user);
    int rc = storage__batch_run(&b);
    if (rc == 0 && storage__is_error(b.r[0]))
        rc = -EIO;
    if (rc == 0) {
        const redisReply *r = b.r[0];
        snprintf(id, STORAGE_EVENT_ID_MAX, "%s",
                 r->elements ? r->element[0]->element[0]->str : "0-0");
    }
    storage__batch_free(&b);
    return rc;
}

/* Whether the log dropped entries after the id after: it has lost entries to its cap
 * (entries-added > length, from XINFO STREAM) and its oldest entry is newer than after.
 * (max-deleted-entry-id would be simpler, but Redis 7.0 moves it only on XDEL.) */
static bool lost_after(const redisReply *info, const char *after)
{
    long long added = -1, length = -1;
    const char *first = NULL;
    for (size_t i = 0; info && info->type == REDIS_REPLY_ARRAY && i + 1 < info->elements; i += 2) {
        const char *name = info->element[i]->type == REDIS_REPLY_STRING ? info->element[i]->str : "";
        const redisReply *v = info->element[i + 1];
        if (strcmp(name, "entries-added") == 0)
            added = v->integer;
        else if (strcmp(name, "length") == 0)
            length = v->integer;
        else if (strcmp(name, "first-entry") == 0 && v->type == REDIS_REPLY_ARRAY &&
                 v->elements > 0)
            first = v->element[0]->str;
    }
    if (added <= length || !first)
        return false;
    unsigned long long ams = 0, aseq = 0, fms = 0, fseq = 0;
    sscanf(after, "%llu-%llu", &ams, &aseq);
    sscanf(first, "%llu-%llu", &fms, &fseq);
    return ams < fms || (ams == fms && aseq < fseq);
}

int storage_events_since(storage_t *s, uint64_t user, const char *after, size_t max,
                         storage_event_t *out, size_t *n, bool *trimmed)
{
    *n = 0;
    storage__batch_t b;
    storage__batch_init(&b, s);
    storage__batch_add(&b, "XRANGE " K_EVENTS " (%s + COUNT %llu", (ull)user, after, (ull)max);
    storage__batch_add(&b, "XINFO STREAM " K_EVENTS, (ull)user);
    int rc = storage__batch_run(&b);
    if (rc == 0 && storage__is_error(b.r[0]))
        rc = -EIO;
    if (rc == 0) {
        *trimmed = lost_after(storage__is_error(b.r[1]) ? NULL : b.r[1], after);
        const redisReply *r = b.r[0];
        for (size_t i = 0; i < r->elements && *n < max; i++) {
            const redisReply *e = r->element[i], *f = e->element[1];
            storage_event_t *ev = &out[*n];
            memset(ev, 0, sizeof(*ev));
            snprintf(ev->id, sizeof(ev->id), "%s", e->element[0]->str);
            for (size_t k = 0; f->type == REDIS_REPLY_ARRAY && k + 1 < f->elements; k += 2) {
                if (strcmp(f->element[k]->str, "k") == 0)
                    snprintf(ev->kind, sizeof(ev->kind), "%s", f->element[k + 1]->str);
                else if (strcmp(f->element[k]->str, "r") == 0)
                    snprintf(ev->ref, sizeof(ev->ref), "%s", f->element[k + 1]->str);
            }
            (*n)++;
        }
    }
    storage__batch_free(&b);
    return rc;
}
