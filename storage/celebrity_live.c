/* storage/celebrity_live.c -- live delivery of celebrities' posts, fanned out on read.
 *
 * A celebrity's post is not walked over their followers to find the few who are connected
 * (with a million followers that walk cost Redis a second per post). The engine announces
 * it once on the live channel instead ("@feed <post> <author> <shard>/<entry>"), and each
 * process logs and publishes it for its own connected users who follow the author, with
 * storage_events_publish as for a job run again: a user with streams on two processes is
 * logged once. A process learns which celebrities a connected user follows from
 * celebs:{user} when the stream opens, and keeps that current from the announcements
 * "@follow <user> <author>", "@unfollow <user> <author>" (sent with the edge's write) and
 * "@celebrity <author>" (an author just marked: it asks Redis which of its users follow).
 * "@revoke <user> <token>" (storage/tokens.c; token 0: all of the user's) tells every process
 * that a token is gone, so that it forgets its cached verification and ends its streams.
 * Announcements travel on the live channel of the node of the user they are about, so
 * each is ordered after the writes it announces. Pub/sub forgets what a disconnected
 * subscriber missed, so each is also kept in that node's announce:{k} stream (the channel
 * live:{k}'s tag) and carries its id there ("@<id> <announcement>"): a process that
 * resubscribes, or failed to deliver one, reads on from the last id it handled.
 */
#include "storage/storage_async.h"
#include "storage/storage_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ANNOUNCE_LOG_MAX "10000" /* announcements kept for processes that missed some */

/* KEYS: one key of the user the message is about; ARGV: message maxlen channel. */
static const char announce_script[] = SCRIPT_NODE_KEYS
    "local log = 'announce' .. string.sub(ARGV[3], 5)\n"
    "local id = redis.call('XADD', log, 'MAXLEN', '~', ARGV[2], '*', 'm', ARGV[1])\n"
    "redis.call('SPUBLISH', ARGV[3], '@' .. id .. ' ' .. ARGV[1])\n"
    "return 0\n";

void storage__announce_in_group(storage_redis_group_t *g, uint64_t about, const char *msg)
{
    const char *args[] = {msg, ANNOUNCE_LOG_MAX};
    storage_redis_group_eval_by_node(g, announce_script, K_EVENTS, &about, 1, 2, args);
}

static int announce(storage_async_t *sa, uint64_t about, const char *msg, storage_status_cb cb,
                    void *arg)
{
    storage_redis_group_t *g = storage_redis_group_new(sa->redis, cb, arg);
    if (!g)
        return -ENOMEM;
    storage__announce_in_group(g, about, msg);
    return storage_redis_group_end(g);
}

int storage_announce_post(storage_async_t *sa, const storage_job_t *job, storage_event_kind_t kind,
                          const char *ref, storage_status_cb cb, void *arg)
{
    const char *name = storage_event_kind_name(kind);
    if (kind != STORAGE_EVENT_FEED && kind != STORAGE_EVENT_DELETE)
        return -EINVAL; /* only posts and their retractions are announced */
    char msg[192];
    snprintf(msg, sizeof(msg), "%s %s %llu %d/%s", name, ref, (ull)job->author, job->shard,
             job->entry_id);
    return announce(sa, job->author, msg, cb, arg);
}

int storage_announce_celebrity(storage_async_t *sa, uint64_t author, storage_status_cb cb,
                               void *arg)
{
    char msg[48];
    snprintf(msg, sizeof(msg), "celebrity %llu", (ull)author);
    return announce(sa, author, msg, cb, arg);
}

int storage__eval_events_key_sync(storage_t *s, const char *script, uint64_t id, int nargs,
                                  const char **args)
{
    char key[48], channel[32];
    snprintf(key, sizeof(key), K_EVENTS, (ull)id);
    int rc = storage_redis_live_channel_of_key(s->redis, key, channel, sizeof(channel));
    if (rc)
        return rc;
    if (nargs < 0 || nargs > 8)
        return -EINVAL;
    /* As storage_redis_group_eval_by_node calls it: the key declared, then "1 <key>", the
     * arguments and the node's channel. */
    const char *argv[6 + 8 + 1] = {"EVAL", script, "1", key, "1", key};
    int argc = 6;
    for (int i = 0; i < nargs; i++)
        argv[argc++] = args[i];
    argv[argc++] = channel;
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    storage_redis_batch_addargv(&b, argc, argv, NULL);
    rc = storage_redis_batch_run_checked(&b);
    storage_redis_batch_free(&b);
    return rc;
}

/* The same from a synchronous caller (a request's thread): one round trip. */
int storage__announce_sync(storage_t *s, uint64_t about, const char *msg)
{
    const char *args[] = {msg, ANNOUNCE_LOG_MAX};
    return storage__eval_events_key_sync(s, announce_script, about, 2, args);
}

/* ---- a process's side (sync) -------------------------------------------------------------- */

int storage_celebrities_followed(storage_t *s, uint64_t user, uint64_t **ids, size_t *n)
{
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    storage_redis_batch_add(&b, "SMEMBERS " K_CELEB_FOLLOWS, (ull)user);
    int rc = storage_redis_batch_run(&b);
    *ids = NULL;
    *n = 0;
    const redisReply *r = rc == 0 ? b.r[0] : NULL;
    if (rc == 0 && r->type != REDIS_REPLY_ARRAY)
        rc = -EIO;
    if (rc == 0 && r->elements && !(*ids = malloc(r->elements * sizeof(**ids))))
        rc = -ENOMEM;
    for (size_t i = 0; rc == 0 && i < r->elements; i++)
        (*ids)[(*n)++] = storage_redis_uint_str(r->element[i]);
    storage_redis_batch_free(&b);
    return rc;
}

#define AMONG_PER_CALL 1000

int storage_followers_among(storage_t *s, uint64_t author, const uint64_t *users, size_t n,
                            bool *follows)
{
    char key[40], (*nums)[24] = malloc((n ? n : 1) * sizeof(*nums));
    const char **argv = malloc((AMONG_PER_CALL + 2) * sizeof(*argv));
    if (!nums || !argv) {
        free(nums);
        free(argv);
        return -ENOMEM;
    }
    snprintf(key, sizeof(key), K_FOLLOWERS, (ull)author);
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    for (size_t first = 0; first < n; first += AMONG_PER_CALL) {
        int argc = 0;
        argv[argc++] = "ZMSCORE";
        argv[argc++] = key;
        for (size_t i = first; i < n && i < first + AMONG_PER_CALL; i++) {
            snprintf(nums[i], sizeof(nums[i]), "%llu", (ull)users[i]);
            argv[argc++] = nums[i];
        }
        storage_redis_batch_addargv(&b, argc, argv, NULL);
    }
    int rc = n ? storage_redis_batch_run(&b) : 0;
    for (size_t c = 0; rc == 0 && c * AMONG_PER_CALL < n; c++) {
        const redisReply *r = b.r[c];
        size_t base = c * AMONG_PER_CALL;
        if (r->type != REDIS_REPLY_ARRAY) {
            rc = -EIO;
            break;
        }
        for (size_t i = 0; i < r->elements && base + i < n; i++)
            follows[base + i] = r->element[i]->type != REDIS_REPLY_NIL;
    }
    storage_redis_batch_free(&b);
    free(nums);
    free(argv);
    return rc;
}

/* An announcement's text (see the top of this file) into a (all of it but the id).
 * Unreadable text leaves kind UNKNOWN: its id still counts as handled. */
static void parse_announcement(const char *msg, storage_announcement_t *a)
{
    char kind[16], ref[64], job_id[64];
    uint64_t user, author, token;
    *a = (storage_announcement_t){.kind = STORAGE_ANNOUNCE_UNKNOWN};
    if (sscanf(msg, "follow %" SCNu64 " %" SCNu64, &user, &author) == 2) {
        *a = (storage_announcement_t){
            .kind = STORAGE_ANNOUNCE_FOLLOW, .user = user, .author = author};
    } else if (sscanf(msg, "unfollow %" SCNu64 " %" SCNu64, &user, &author) == 2) {
        *a = (storage_announcement_t){
            .kind = STORAGE_ANNOUNCE_UNFOLLOW, .user = user, .author = author};
    } else if (sscanf(msg, "revoke %" SCNu64 " %" SCNu64, &user, &token) == 2) {
        *a =
            (storage_announcement_t){.kind = STORAGE_ANNOUNCE_REVOKE, .user = user, .token = token};
    } else if (sscanf(msg, "celebrity %" SCNu64, &author) == 1) {
        *a = (storage_announcement_t){.kind = STORAGE_ANNOUNCE_CELEBRITY, .author = author};
    } else if (sscanf(msg, "%15s %63s %" SCNu64 " %63s", kind, ref, &author, job_id) == 4 &&
               strchr(job_id, '/')) {
        /* "<kind> <ref> <author> <shard>/<entry>" */
        *a = (storage_announcement_t){.kind = STORAGE_ANNOUNCE_POST,
                                      .author = author,
                                      .event = storage_event_kind_parse(kind, strlen(kind)),
                                      .job_shard = atoi(job_id)};
        snprintf(a->ref, sizeof(a->ref), "%s", ref);
        snprintf(a->job_entry, sizeof(a->job_entry), "%s", strchr(job_id, '/') + 1);
    }
}

/* XRANGE (or XREVRANGE) of channel's announcement log from..to, up to max entries. */
static int read_log(storage_t *s, const char *channel, const char *cmd, const char *from,
                    const char *to, size_t max, storage_announcement_t *out, size_t *n)
{
    char key[48], count[16];
    snprintf(key, sizeof(key), "announce%s", channel + 4); /* live:{k} -> announce:{k} */
    snprintf(count, sizeof(count), "%zu", max);
    const char *argv[] = {cmd, key, from, to, "COUNT", count};
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    storage_redis_batch_addargv(&b, 6, argv, NULL);
    int rc = storage_redis_batch_run(&b);
    *n = 0;
    const redisReply *r = rc == 0 ? b.r[0] : NULL;
    if (rc == 0 && r->type != REDIS_REPLY_ARRAY)
        rc = -EIO;
    for (size_t i = 0; rc == 0 && i < r->elements && *n < max; i++) {
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 ||
            e->element[1]->type != REDIS_REPLY_ARRAY || e->element[1]->elements < 2 ||
            e->element[1]->element[1]->type != REDIS_REPLY_STRING)
            continue;
        parse_announcement(e->element[1]->element[1]->str, &out[*n]);
        snprintf(out[*n].id, sizeof(out[*n].id), "%s", e->element[0]->str);
        (*n)++;
    }
    storage_redis_batch_free(&b);
    return rc;
}

int storage_announcements_after(storage_t *s, const char *channel, const char *after, size_t max,
                                storage_announcement_t *out, size_t *n)
{
    char from[STORAGE_EVENT_ID_MAX + 1];
    snprintf(from, sizeof(from), "(%s", after);
    return read_log(s, channel, "XRANGE", from, "+", max, out, n);
}

int storage_announcements_tail(storage_t *s, const char *channel, char id[STORAGE_EVENT_ID_MAX])
{
    storage_announcement_t last;
    size_t n;
    int rc = read_log(s, channel, "XREVRANGE", "+", "-", 1, &last, &n);
    if (rc == 0)
        snprintf(id, STORAGE_EVENT_ID_MAX, "%s", n ? last.id : "0-0");
    return rc;
}

/* ---- a resumed stream's backfill ----------------------------------------------------------- */

#define BACKFILL_PAGE 256
#define BACKFILL_MAX 10000 /* the log's length (ANNOUNCE_LOG_MAX): older ones are gone anyway */

static bool among(const uint64_t *ids, size_t n, uint64_t id)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] == id)
            return true;
    return false;
}

/* One node's announcement log from the millisecond of after on: each post of authors gets
 * logged for user. */
static int backfill_channel(storage_t *s, uint64_t user, const uint64_t *authors, size_t n,
                            const char *channel, const char *after, storage_announcement_t *page)
{
    /* Exclusive, so the log is read from after's millisecond on: the client's id is of
     * another log (ev:{user}), and an announcement of the same millisecond may have been
     * handled after the stream let go. Not earlier: those were handled while the stream
     * was still there (a margin delivered again a post the client had). */
    unsigned long long ms = strtoull(after, NULL, 10);
    char from[STORAGE_EVENT_ID_MAX];
    if (ms)
        snprintf(from, sizeof(from), "%llu-18446744073709551615", ms - 1);
    else
        snprintf(from, sizeof(from), "0-0");
    int rc = 0;
    for (size_t read = 0; rc == 0 && read < BACKFILL_MAX;) {
        size_t got = 0;
        rc = storage_announcements_after(s, channel, from, BACKFILL_PAGE, page, &got);
        for (size_t i = 0; rc == 0 && i < got; i++)
            if (page[i].kind == STORAGE_ANNOUNCE_POST && among(authors, n, page[i].author))
                rc = storage__events_publish_announced_sync(s, user, &page[i]);
        if (rc || got < BACKFILL_PAGE)
            break;
        snprintf(from, sizeof(from), "%s", page[got - 1].id);
        read += got;
    }
    return rc;
}

int storage_celebrity_backfill(storage_t *s, uint64_t user, const uint64_t *authors, size_t n,
                               const char *after)
{
    if (!n)
        return 0;
    char(*channels)[32] = calloc(n, sizeof(*channels));
    storage_announcement_t *page = malloc(BACKFILL_PAGE * sizeof(*page));
    int rc = channels && page ? 0 : -ENOMEM;
    size_t n_channels = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        char key[48], channel[32];
        snprintf(key, sizeof(key), K_EVENTS, (ull)authors[i]);
        rc = storage_redis_live_channel_of_key(s->redis, key, channel, sizeof(channel));
        bool known = false;
        for (size_t c = 0; rc == 0 && c < n_channels && !known; c++)
            known = strcmp(channels[c], channel) == 0;
        if (rc == 0 && !known)
            memcpy(channels[n_channels++], channel, sizeof(channel));
    }
    for (size_t c = 0; rc == 0 && c < n_channels; c++)
        rc = backfill_channel(s, user, authors, n, channels[c], after, page);
    free(channels);
    free(page);
    return rc;
}

/* ---- announcements, read back (the subscriber) ----------------------------------------- */

/* "<id> <announcement>" as published (the '@' gone). */
void storage__announcement_deliver(const storage_sub_callbacks_t *cb, const char *channel,
                                   const char *msg)
{
    const char *space = strchr(msg, ' ');
    if (!cb->announce || !space || (size_t)(space - msg) >= STORAGE_EVENT_ID_MAX)
        return;
    char id[STORAGE_EVENT_ID_MAX];
    memcpy(id, msg, (size_t)(space - msg));
    id[space - msg] = '\0';
    storage_announcement_t a;
    parse_announcement(space + 1, &a);
    snprintf(a.id, sizeof(a.id), "%s", id);
    cb->announce(cb->arg, channel, &a);
}
