/* fanout/live_celebrity.c -- celebrities' live events, on this process's side: it delivers
 * each announced post to its own connected followers of the author (storage/celebrity_live.c),
 * keeps the hub's record of who follows which celebrity current, and reads back from the
 * announcement log whatever it missed. Runs on the live thread (fanout/live.c).
 *
 * Each live channel's announcements are handled in log order, and the id of the last one
 * handled is kept per channel. A resubscribe (pub/sub drops what a disconnected subscriber
 * missed) or a failed delivery reads the log on from there, after RETRY_MS for a failure.
 * Handling one twice is harmless: a post is logged at most once per user (the publish
 * runs as a re-run of its job), and follows replayed in order end where they ended.
 */
#include "fanout/live_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CHANNELS 64 /* one per master */
#define REPLAY_BATCH 256
#define RETRY_MS 500

typedef struct channel_s {
    char name[32];
    char last[STORAGE_EVENT_ID_MAX]; /* the last announcement handled; "": not subscribed yet */
    char retry_from[STORAGE_EVENT_ID_MAX]; /* a delivery failed after this id */
    bool retry;
} channel_t;

struct fanout__celebrity_s {
    const fanout_live_config_t *live; /* its error hook */
    storage_t *storage;
    notify_hub_t *hub;
    storage_async_t *sa;
    uv_timer_t retry_timer;
    bool closed;
    channel_t channels[MAX_CHANNELS];
    size_t n_channels;
};

typedef struct delivery_s {
    fanout__celebrity_t *a;
    channel_t *ch;
    char before[STORAGE_EVENT_ID_MAX]; /* the id handled before this one */
} delivery_t;

static channel_t *channel_of(fanout__celebrity_t *a, const char *name)
{
    for (size_t i = 0; i < a->n_channels; i++)
        if (strcmp(a->channels[i].name, name) == 0)
            return &a->channels[i];
    if (a->n_channels == MAX_CHANNELS)
        return NULL;
    channel_t *ch = &a->channels[a->n_channels++];
    snprintf(ch->name, sizeof(ch->name), "%s", name);
    return ch;
}

static void on_retry(uv_timer_t *t);

/* Reads ch's log again after id, soon. */
static void retry_after(fanout__celebrity_t *a, channel_t *ch, const char *id)
{
    if (a->closed)
        return;
    if (!ch->retry || notify_id_cmp(id, ch->retry_from) < 0)
        snprintf(ch->retry_from, sizeof(ch->retry_from), "%s", id);
    ch->retry = true;
    if (!uv_is_active((uv_handle_t *)&a->retry_timer))
        uv_timer_start(&a->retry_timer, on_retry, RETRY_MS, 0);
}

/* Users with a stream here who follow author (*n of them), or NULL. */
static uint64_t *followers_here(fanout__celebrity_t *a, uint64_t author, size_t *n)
{
    size_t max = 256;
    for (;;) {
        uint64_t *users = malloc(max * sizeof(*users));
        if (!users)
            return NULL;
        *n = notify_hub_celebrity_followers(a->hub, author, users, max);
        if (*n <= max)
            return users;
        free(users);
        max = *n + 256;
    }
}

static void on_delivered(void *arg, int status)
{
    delivery_t *d = arg;
    if (status) {
        fanout__live_report(d->a->live, status,
                            "a celebrity's event could not be logged for this server's streams; "
                            "retrying");
        retry_after(d->a, d->ch, d->before);
    }
    free(d);
}

/* A celebrity's post event: log and publish it for our users who follow. */
static void deliver_post(fanout__celebrity_t *a, channel_t *ch, const char *before,
                         const storage_announcement_t *msg)
{
    if (msg->event != STORAGE_EVENT_FEED && msg->event != STORAGE_EVENT_DELETE)
        return;
    uint64_t author = msg->author;
    storage_job_t job = {.author = author, .shard = msg->job_shard};
    snprintf(job.entry_id, sizeof(job.entry_id), "%s", msg->job_entry);
    size_t n = 0;
    uint64_t *users = followers_here(a, author, &n);
    delivery_t *d = users && n ? malloc(sizeof(*d)) : NULL;
    int rc = !users || (n && !d) ? -ENOMEM : 0;
    if (d) {
        *d = (delivery_t){.a = a, .ch = ch};
        snprintf(d->before, sizeof(d->before), "%s", before);
        rc = a->sa ? storage_events_publish_announced(a->sa, &job, users, n, msg->event, msg->ref,
                                                      on_delivered, d)
                   : -ENOTCONN;
        if (rc)
            free(d);
    }
    if (rc)
        retry_after(a, ch, before);
    free(users);
}

/* author was just marked: which of our users follow them, from Redis (a blocking read, as
 * rare as an author passing the celebrity threshold). */
static void learn_celebrity(fanout__celebrity_t *a, channel_t *ch, const char *before,
                            uint64_t author)
{
    size_t max = 0, n;
    uint64_t *users = NULL;
    while ((n = notify_hub_users(a->hub, 0, 1, users, max)) > max) {
        free(users);
        max = n + 256;
        if (!(users = malloc(max * sizeof(*users)))) {
            retry_after(a, ch, before);
            return;
        }
    }
    bool *follows = calloc(n ? n : 1, sizeof(*follows));
    int rc = follows ? storage_followers_among(a->storage, author, users, n, follows) : -ENOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (follows[i])
            notify_hub_celebrity_follow(a->hub, users[i], author, true);
    if (rc)
        retry_after(a, ch, before);
    free(follows);
    free(users);
}

/* One announcement, its id being its place in ch's log. */
static void handle(fanout__celebrity_t *a, channel_t *ch, const storage_announcement_t *msg)
{
    char before[STORAGE_EVENT_ID_MAX];
    snprintf(before, sizeof(before), "%s", ch->last);
    snprintf(ch->last, sizeof(ch->last), "%s", msg->id);
    switch (msg->kind) {
    case STORAGE_ANNOUNCE_FOLLOW:
        notify_hub_celebrity_follow(a->hub, msg->user, msg->author, true);
        break;
    case STORAGE_ANNOUNCE_UNFOLLOW:
        notify_hub_celebrity_follow(a->hub, msg->user, msg->author, false);
        break;
    case STORAGE_ANNOUNCE_CELEBRITY:
        learn_celebrity(a, ch, before, msg->author);
        break;
    case STORAGE_ANNOUNCE_POST:
        deliver_post(a, ch, before, msg);
        break;
    case STORAGE_ANNOUNCE_REVOKE:
        /* Not a celebrity's business, but it travels their way: in order, replayed when
         * missed. */
        notify_hub_revoke(a->hub, msg->user, msg->token);
        if (a->live->on_revoke)
            a->live->on_revoke(a->live->hook_arg, msg->user, msg->token);
        break;
    case STORAGE_ANNOUNCE_UNKNOWN:
        break;
    }
}

/* Handles what ch's log holds after id, in order. */
static void replay(fanout__celebrity_t *a, channel_t *ch, const char *after)
{
    storage_announcement_t *batch = malloc(REPLAY_BATCH * sizeof(*batch));
    char from[STORAGE_EVENT_ID_MAX];
    snprintf(from, sizeof(from), "%s", after);
    size_t n = REPLAY_BATCH;
    int rc = batch ? 0 : -ENOMEM;
    while (rc == 0 && n == REPLAY_BATCH) {
        rc = storage_announcements_after(a->storage, ch->name, from, REPLAY_BATCH, batch, &n);
        for (size_t i = 0; rc == 0 && i < n; i++) {
            handle(a, ch, &batch[i]);
            snprintf(from, sizeof(from), "%s", batch[i].id);
        }
    }
    if (rc) {
        fanout__live_report(a->live, rc, "could not read the announcements on %s; retrying",
                            ch->name);
        retry_after(a, ch, from);
    }
    free(batch);
}

static void on_retry(uv_timer_t *t)
{
    fanout__celebrity_t *a = t->data;
    for (size_t i = 0; i < a->n_channels; i++) {
        channel_t *ch = &a->channels[i];
        if (ch->retry) {
            ch->retry = false;
            char from[STORAGE_EVENT_ID_MAX];
            snprintf(from, sizeof(from), "%s", ch->retry_from);
            replay(a, ch, from);
        }
    }
}

fanout__celebrity_t *fanout__celebrity_create(uv_loop_t *loop, const fanout_live_config_t *live,
                                              storage_t *storage, notify_hub_t *hub)
{
    fanout__celebrity_t *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    a->live = live;
    a->storage = storage;
    a->hub = hub;
    uv_timer_init(loop, &a->retry_timer);
    a->retry_timer.data = a;
    return a;
}

void fanout__celebrity_attach(fanout__celebrity_t *a, storage_async_t *sa)
{
    if (a)
        a->sa = sa;
}

void fanout__celebrity_on_message(fanout__celebrity_t *a, const char *channel,
                                  const storage_announcement_t *msg)
{
    channel_t *ch = channel_of(a, channel);
    if (ch && notify_id_cmp(msg->id, ch->last) > 0) /* else a replay handled it already */
        handle(a, ch, msg);
}

void fanout__celebrity_on_subscribed(fanout__celebrity_t *a, const char *channel)
{
    channel_t *ch = channel_of(a, channel);
    if (!ch)
        return;
    if (ch->last[0]) { /* a resubscribe: what came meanwhile is in the log */
        char from[STORAGE_EVENT_ID_MAX];
        snprintf(from, sizeof(from), "%s", ch->last);
        replay(a, ch, from);
        return;
    }
    /* The first: what is in the log is older than every stream here. The read races
     * announcements that arrive next, which are handled anyway. */
    int rc = storage_announcements_tail(a->storage, ch->name, ch->last);
    if (rc) {
        fanout__live_report(a->live, rc, "could not read the announcements on %s", ch->name);
        snprintf(ch->last, sizeof(ch->last), "0-0");
    }
}

void fanout__celebrity_close(fanout__celebrity_t *a)
{
    if (!a || a->closed)
        return;
    a->closed = true;
    uv_close((uv_handle_t *)&a->retry_timer, NULL);
}

void fanout__celebrity_free(fanout__celebrity_t *a)
{
    free(a);
}
