/* storage/events.c -- the live-event log and registry of connected users.
 *
 * Events are logged for users with a stream open, or whose last stream closed within the
 * retention (--stream-retention): their log ev:{user} exists exactly then, since the
 * stream's process creates it and keeps renewing its expiry to the retention. Presence is
 * apart from it, on the shorter grace (--stream-grace-ms): online:{user} exists while the
 * user has a stream open and for the grace after. For each chunk of followers, one script
 * per node appends the event to each follower's log that exists (XADD NOMKSTREAM: followers
 * without a log cost one call that writes nothing) and publishes, on the node's live
 * channel (sharded pub/sub), the ids of those present, one message per call: a user away
 * for longer than the grace gets their events logged for a replay, but no process is told
 * of them live. Log ids are assigned at write time and so strictly increase per user. A
 * stream resumes from the log after its Last-Event-ID with neither gap nor duplicate,
 * because both paths carry the same ids. A user away past the retention has no log for
 * that time: a reconnect then gets a reset instead of a silent gap.
 */
#include "storage/storage_async.h"
#include "storage/storage_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* KEYS: ev:{user}…; ARGV: maxlen kind ref job since settled muted channel (see
 * SCRIPT_NODE_KEYS). One call per node per chunk of followers, and one message for all
 * of them ("<kind> <ref> <user>:<id> …"), not one per follower: at ten thousand connected
 * followers, per-command
 * and per-message costs (in Redis, and parsing ten thousand messages on the loop) were most
 * of the delivery latency. An entry is one field, e = "<kind> <ref> <job>", and one
 * append in TRIM_EVERY_STR trims the log (by the key's place and the job's millisecond, so
 * every log gets its turn): each argument and field was Redis time per follower. A job
 * run again (since is set) skips a user whose log has an entry of that job since it was
 * queued. A delete the post's own fan-out queued on finding it deleted (settled is set)
 * skips a user whose latest entry about the post since then is a delete: the first delete
 * job already followed the feed event there, and a second would repeat it. Entries written
 * before this format (fields k, r, j) are read as well. Only users present (online:{user})
 * are in the message and the count returned; the others' entries wait in their logs. */
static const char publish_script[] =
    SCRIPT_NODE_KEYS SCRIPT_PUBLISH_EVENTS "return publish_events(KEYS, ARGV)\n";

/* Entries of the first run come after the job was queued; the margin covers clocks of
 * different nodes (the queue and the log may live on two). */
#define RERUN_CLOCK_MARGIN_MS 10000

/* The publish script's ARGV for job's event (its buffers and the list that points into them). */
typedef struct {
    char maxlen[16], name[64], since[32], settled[32], muted[24];
    const char *args[7];
} publish_args_t;

static void publish_args(publish_args_t *pa, const storage_job_t *job, const char *kind,
                         storage_event_kind_t event, const char *ref, bool skip_muters)
{
    *pa = (publish_args_t){.since = "", .settled = "", .muted = ""};
    snprintf(pa->maxlen, sizeof(pa->maxlen), "%d", EVENTS_MAXLEN);
    snprintf(pa->name, sizeof(pa->name), "%d/%s", job->shard, job->entry_id);
    if (job->deliveries > 1 || job->rerun) {
        unsigned long long queued = strtoull(job->entry_id, NULL, 10);
        snprintf(pa->since, sizeof(pa->since), "%llu-0",
                 queued > RERUN_CLOCK_MARGIN_MS ? queued - RERUN_CLOCK_MARGIN_MS : 0);
    }
    if (job->retract_after_ms && event == STORAGE_EVENT_DELETE) {
        uint64_t after = job->retract_after_ms;
        snprintf(pa->settled, sizeof(pa->settled), "%llu-0",
                 (unsigned long long)(after > RERUN_CLOCK_MARGIN_MS ? after - RERUN_CLOCK_MARGIN_MS
                                                                    : 0));
    }
    if (skip_muters)
        snprintf(pa->muted, sizeof(pa->muted), "%llu", (unsigned long long)job->author);
    const char *args[] = {pa->maxlen, kind, ref, pa->name, pa->since, pa->settled, pa->muted};
    memcpy(pa->args, args, sizeof(args));
}

static int publish(storage_async_t *sa, const storage_job_t *job, const uint64_t *users, size_t n,
                   storage_event_kind_t event, const char *ref, bool skip_muters, size_t *published,
                   storage_status_cb cb, void *arg)
{
    const char *kind = storage_event_kind_name(event);
    if (!kind || (event != STORAGE_EVENT_FEED && event != STORAGE_EVENT_DELETE &&
                  event != STORAGE_EVENT_NOTIFICATION))
        return -EINVAL; /* open markers and resets are written by the reader, not published */
    storage_redis_group_t *g = storage_redis_group_new(sa->redis, cb, arg);
    if (!g)
        return -ENOMEM;
    g->sum = published; /* each call answers how many it published to */
    publish_args_t pa;
    publish_args(&pa, job, kind, event, ref, skip_muters);
    storage_redis_group_eval_by_node(g, publish_script, K_EVENTS, users, n, 7, pa.args);
    return storage_redis_group_end(g);
}

int storage_events_publish(storage_async_t *sa, const storage_job_t *job, const uint64_t *users,
                           size_t n, storage_event_kind_t kind, const char *ref, size_t *published,
                           storage_status_cb cb, void *arg)
{
    return publish(sa, job, users, n, kind, ref, false, published, cb, arg);
}

int storage_events_publish_announced(storage_async_t *sa, const storage_job_t *job,
                                     const uint64_t *users, size_t n, storage_event_kind_t kind,
                                     const char *ref, storage_status_cb cb, void *arg)
{
    storage_job_t rerun = *job;
    rerun.deliveries = 2; /* another process may have logged it for a user already */
    return publish(sa, &rerun, users, n, kind, ref, true, NULL, cb, arg);
}

int storage__events_publish_announced_sync(storage_t *s, uint64_t user,
                                           const storage_announcement_t *a)
{
    const char *kind = storage_event_kind_name(a->event);
    if (a->kind != STORAGE_ANNOUNCE_POST || !kind ||
        (a->event != STORAGE_EVENT_FEED && a->event != STORAGE_EVENT_DELETE))
        return -EINVAL;
    storage_job_t job = {.shard = a->job_shard, .author = a->author, .deliveries = 2};
    snprintf(job.entry_id, sizeof(job.entry_id), "%s", a->job_entry);
    publish_args_t pa;
    publish_args(&pa, &job, kind, a->event, a->ref, true);
    return storage__eval_events_key_sync(s, publish_script, user, 7, pa.args);
}

/* KEYS: ev:{user}…; ARGV: retention grace (see SCRIPT_NODE_KEYS). Renews each log's expiry
 * to the retention, and makes a log that lapsed exist again (an empty stream, made by
 * creating an unused consumer group), and marks each user present for the grace, in one call
 * per node: the live loop that sends it never waits on Redis. */
static const char refresh_script[] =
    SCRIPT_NODE_KEYS "for i = 1, #KEYS do\n"
                     "  if redis.call('PEXPIRE', KEYS[i], ARGV[1]) == 0 then\n"
                     "    redis.call('XGROUP', 'CREATE', KEYS[i], 'live', '$', 'MKSTREAM')\n"
                     "    redis.call('PEXPIRE', KEYS[i], ARGV[1])\n"
                     "  end\n"
                     "  redis.call('SET', 'online' .. string.sub(KEYS[i], 3), '1', 'PX', ARGV[2])\n"
                     "end\n"
                     "return 0\n";

int storage_events_refresh_async(storage_async_t *sa, const uint64_t *users, size_t n,
                                 const storage_events_keep_t *keep, storage_status_cb cb, void *arg)
{
    storage_redis_group_t *g = storage_redis_group_new(sa->redis, cb, arg);
    if (!g)
        return -ENOMEM;
    char retention[24], grace[24];
    snprintf(retention, sizeof(retention), "%lld", (long long)keep->retention_ms);
    snprintf(grace, sizeof(grace), "%lld", (long long)keep->grace_ms);
    const char *args[] = {retention, grace};
    storage_redis_group_eval_by_node(g, refresh_script, K_EVENTS, users, n, 2, args);
    return storage_redis_group_end(g);
}

/* ---- the stream's side (sync) ------------------------------------------------------------- */

/* KEYS: ev online; ARGV: retention floor grace. Returns {existed, last id handed out}. A log
 * made anew (the user was away past the retention) starts its ids above floor, the reader's
 * last id, so a reset to it is never behind the reader and every later event comes after
 * it. So does a log that exists but ends below floor (a failover promoted a replica that had
 * not got its newest entries): it is lifted above floor and reported as not existing, since
 * what it lost cannot be told, so the reader gets a reset ahead of its own id. Its first
 * entry is an "open" marker (readers skip it): the first entry of a stream costs Redis twice
 * a later one (it lays out the node), and paid here, on connect, it is not paid by the first
 * fan-out to reach ten thousand freshly connected followers. The user is present from now on
 * (live events are published for them), for the grace. */
#define OPEN_NAME "open" /* STORAGE_EVENT_OPEN's name */
static const char online_script[] =
    "local function last_id()\n"
    "  local info = redis.call('XINFO', 'STREAM', KEYS[1])\n"
    "  for i = 1, #info - 1, 2 do\n"
    "    if info[i] == 'last-generated-id' then return info[i + 1] end\n"
    "  end\n"
    "  return '0-0'\n"
    "end\n"
    "local function below(a, b)\n"
    "  local am, as = string.match(a, '^(%d+)-?(%d*)$')\n"
    "  local bm, bs = string.match(b, '^(%d+)-?(%d*)$')\n"
    "  am, bm = tonumber(am) or 0, tonumber(bm) or 0\n"
    "  if am ~= bm then return am < bm end\n"
    "  return (tonumber(as) or 0) < (tonumber(bs) or 0)\n"
    "end\n"
    "local existed = redis.call('EXISTS', KEYS[1])\n"
    "if existed == 0 then\n"
    "  redis.call('XGROUP', 'CREATE', KEYS[1], 'live', '$', 'MKSTREAM')\n"
    "  if ARGV[2] ~= '' then redis.call('XSETID', KEYS[1], ARGV[2]) end\n"
    "  redis.call('XADD', KEYS[1], '*', 'e', '" OPEN_NAME "  ')\n"
    "elseif ARGV[2] ~= '' and below(last_id(), ARGV[2]) then\n"
    "  existed = 0\n"
    "  redis.call('XSETID', KEYS[1], ARGV[2])\n"
    "  redis.call('XADD', KEYS[1], '*', 'e', '" OPEN_NAME "  ')\n"
    "end\n"
    "redis.call('PEXPIRE', KEYS[1], ARGV[1])\n"
    "redis.call('SET', KEYS[2], '1', 'PX', ARGV[3])\n"
    "return {existed, last_id()}\n";

/* A floor from a client: an id this server could have sent, not one from the future. */
static bool plausible_floor(const char *id)
{
    unsigned long long ms = strtoull(id, NULL, 10);
    return ms <= storage__now_ms() + 1000;
}

int storage_events_online(storage_t *s, uint64_t user, const storage_events_keep_t *keep,
                          const char *floor, bool *was_online, char tail[STORAGE_EVENT_ID_MAX])
{
    char key[40], online[40], retention[24], grace[24];
    snprintf(key, sizeof(key), K_EVENTS, (ull)user);
    snprintf(online, sizeof(online), K_ONLINE, (ull)user);
    snprintf(retention, sizeof(retention), "%lld", (long long)keep->retention_ms);
    snprintf(grace, sizeof(grace), "%lld", (long long)keep->grace_ms);
    const char *argv[] = {"EVAL",
                          online_script,
                          "2",
                          key,
                          online,
                          retention,
                          floor && plausible_floor(floor) ? floor : "",
                          grace};
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    storage_redis_batch_addargv(&b, 8, argv, NULL);
    int rc = storage_redis_batch_run(&b);
    const redisReply *r = rc == 0 ? b.r[0] : NULL;
    if (rc == 0 && (storage_redis_is_error(r) || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
                    r->element[1]->type != REDIS_REPLY_STRING))
        rc = -EIO;
    if (rc == 0) {
        *was_online = storage_redis_int(r->element[0]) == 1;
        snprintf(tail, STORAGE_EVENT_ID_MAX, "%s", r->element[1]->str);
    }
    storage_redis_batch_free(&b);
    return rc;
}

int storage_events_tail(storage_t *s, uint64_t user, char id[STORAGE_EVENT_ID_MAX])
{
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    storage_redis_batch_add(&b, "XINFO STREAM " K_EVENTS, (ull)user);
    int rc = storage_redis_batch_run(&b);
    if (rc == 0) {
        const redisReply *r = b.r[0];
        snprintf(id, STORAGE_EVENT_ID_MAX, "0-0"); /* no log: nothing handed out */
        for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2)
            if (r->element[i]->type == REDIS_REPLY_STRING &&
                strcmp(r->element[i]->str, "last-generated-id") == 0 &&
                r->element[i + 1]->type == REDIS_REPLY_STRING)
                snprintf(id, STORAGE_EVENT_ID_MAX, "%s", r->element[i + 1]->str);
    }
    storage_redis_batch_free(&b);
    return rc;
}

/* Whether id a comes before id b ("<ms>-<seq>"). */
static bool id_before(const char *a, const char *b)
{
    unsigned long long ams = 0, aseq = 0, bms = 0, bseq = 0;
    sscanf(a, "%llu-%llu", &ams, &aseq);
    sscanf(b, "%llu-%llu", &bms, &bseq);
    return ams < bms || (ams == bms && aseq < bseq);
}

/* Whether the log dropped entries after the id after: it has lost entries to its cap
 * (entries-added > length, from XINFO STREAM) and its oldest entry is newer than after.
 * (max-deleted-entry-id would be simpler, but Redis 7.0 moves it only on XDEL.) */
static bool lost_after(const redisReply *info, const char *after)
{
    long long added = -1, length = -1;
    const char *first = NULL;
    for (size_t i = 0; info && info->type == REDIS_REPLY_ARRAY && i + 1 < info->elements; i += 2) {
        const char *name =
            info->element[i]->type == REDIS_REPLY_STRING ? info->element[i]->str : "";
        const redisReply *v = info->element[i + 1];
        if (strcmp(name, "entries-added") == 0)
            added = v->integer;
        else if (strcmp(name, "length") == 0)
            length = v->integer;
        else if (strcmp(name, "first-entry") == 0 && v->type == REDIS_REPLY_ARRAY &&
                 v->elements > 0)
            first = v->element[0]->str;
    }
    return added > length && first && id_before(after, first);
}

/* A reader's cursor is an id its log handed out: an entry's (an event, the open marker, or
 * the newest when the stream opened) or "0-0" (a log made empty). The cap trims the oldest
 * entries only, and lost_after tells that. So a cursor whose entry is missing otherwise
 * means the log went back: made anew, or its newest entries lost by Redis (a restart, a
 * failover to a replica behind), and what was logged after the cursor may be lost too. */
static bool cursor_entry_missing(const redisReply *entry, const char *after)
{
    return strcmp(after, "0-0") != 0 && entry->type == REDIS_REPLY_ARRAY && entry->elements == 0;
}

/* XINFO STREAM's answer for a log that does not exist. */
static bool no_such_log(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_ERROR && strstr(r->str, "no such key") != NULL;
}

/* "<kind> <ref> <job>" (the publish script's entry) into ev's kind and ref. */
static void parse_entry(const char *v, storage_event_t *ev)
{
    size_t kind = strcspn(v, " ");
    ev->kind = storage_event_kind_parse(v, kind);
    const char *ref = v[kind] ? v + kind + 1 : v + kind;
    snprintf(ev->ref, sizeof(ev->ref), "%.*s", (int)strcspn(ref, " "), ref);
}

int storage_events_since(storage_t *s, uint64_t user, const char *after, size_t max,
                         storage_event_t *out, size_t *n, bool *trimmed)
{
    *n = 0;
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    storage_redis_batch_add(&b, "XRANGE " K_EVENTS " (%s + COUNT %llu", (ull)user, after, (ull)max);
    storage_redis_batch_add(&b, "XINFO STREAM " K_EVENTS, (ull)user);
    storage_redis_batch_add(&b, "XRANGE " K_EVENTS " %s %s", (ull)user, after, after);
    int rc = storage_redis_batch_run(&b);
    if (rc == 0 && (storage_redis_is_error(b.r[0]) || storage_redis_is_error(b.r[2]) ||
                    (storage_redis_is_error(b.r[1]) && !no_such_log(b.r[1]))))
        rc = -EIO;
    if (rc == 0) {
        /* A log that is gone lost everything after the cursor (it expired, or Redis lost
         * it): whatever was published meanwhile went to nobody. */
        *trimmed =
            no_such_log(b.r[1]) || lost_after(b.r[1], after) || cursor_entry_missing(b.r[2], after);
        const redisReply *r = b.r[0];
        for (size_t i = 0; i < r->elements && *n < max; i++) {
            const redisReply *e = r->element[i], *f = e->element[1];
            storage_event_t *ev = &out[*n];
            memset(ev, 0, sizeof(*ev));
            snprintf(ev->id, sizeof(ev->id), "%s", e->element[0]->str);
            for (size_t k = 0; f->type == REDIS_REPLY_ARRAY && k + 1 < f->elements; k += 2) {
                const char *name = f->element[k]->str, *v = f->element[k + 1]->str;
                if (strcmp(name, "e") == 0)
                    parse_entry(v, ev);
                else if (strcmp(name, "k") == 0)
                    ev->kind = storage_event_kind_parse(v, strlen(v));
                else if (strcmp(name, "r") == 0)
                    snprintf(ev->ref, sizeof(ev->ref), "%s", v);
            }
            (*n)++;
        }
    }
    storage_redis_batch_free(&b);
    return rc;
}

/* ---- the live wire format, read back (the subscriber) ---------------------------------- */

static const char *const kind_names[] = {
    [STORAGE_EVENT_FEED] = "feed",
    [STORAGE_EVENT_DELETE] = "delete",
    [STORAGE_EVENT_NOTIFICATION] = "notification",
    [STORAGE_EVENT_RESET] = "reset",
    [STORAGE_EVENT_OPEN] = OPEN_NAME,
    [STORAGE_EVENT_NOTIFICATION_REMOVED] = "notification_removed",
    [STORAGE_EVENT_MARKER] = "marker",
    [STORAGE_EVENT_COUNTS] = "counts",
    [STORAGE_EVENT_COUNTS_DUE] = "counts_due",
};

const char *storage_event_kind_name(storage_event_kind_t kind)
{
    return (size_t)kind < sizeof(kind_names) / sizeof(kind_names[0]) ? kind_names[kind] : NULL;
}

storage_event_kind_t storage_event_kind_parse(const char *name, size_t len)
{
    for (size_t k = 0; k < sizeof(kind_names) / sizeof(kind_names[0]); k++)
        if (kind_names[k] && strlen(kind_names[k]) == len && memcmp(kind_names[k], name, len) == 0)
            return (storage_event_kind_t)k;
    return STORAGE_EVENT_UNKNOWN;
}

/* "<kind> <ref> <user>:<id> <user>:<id> …": one event for many users. */
void storage__live_deliver(const storage_sub_callbacks_t *cb, const char *msg)
{
    char kind[32], ref[128];
    int used = 0;
    if (sscanf(msg, "%31s %127s %n", kind, ref, &used) != 2)
        return;
    storage_event_kind_t ev = storage_event_kind_parse(kind, strlen(kind));
    for (const char *p = msg + used; *p;) {
        char *end;
        unsigned long long user = strtoull(p, &end, 10);
        if (*end != ':')
            return;
        const char *id = end + 1;
        size_t len = strcspn(id, " ");
        char idbuf[64];
        if (len == 0 || len >= sizeof(idbuf))
            return;
        memcpy(idbuf, id, len);
        idbuf[len] = '\0';
        cb->message(cb->arg, (uint64_t)user, idbuf, ev, ref);
        p = id + len;
        while (*p == ' ')
            p++;
    }
}
