/* api/live.c -- the live path's receiving end on a thread of its own.
 *
 * A post to ten thousand connected followers arrives as ten messages of a thousand users
 * each; handing them to the hub means a thousand queue pushes and stream resumes per message.
 * On the engine's loop that work delayed the engine's next chunk (a step of the very fan-out
 * being delivered), so the subscriber gets its own loop and thread. The hub is thread-safe.
 *
 * It also delivers celebrities' posts, which are announced, not walked over the followers
 * (storage/celebrity_live.c): it logs and publishes them for the hub's users who follow
 * the author, and the events come back as any other.
 */
#include "api/live.h"

#include "api/log.h"
#include "storage/storage_async.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

struct live_s {
    uv_loop_t loop;
    uv_thread_t thread;
    uv_async_t stop;
    uv_sem_t started;
    const storage_config_t *cfg; /* until started is posted */
    storage_t *storage;
    notify_hub_t *hub;
    storage_async_t *sub;
    int status;
};

static void on_event(void *arg, uint64_t user, const char *id, const char *kind,
                     const char *ref)
{
    live_t *l = arg;
    notify_event_t *e = notify_event_new(id, kind, ref);
    if (e) {
        notify_hub_publish(l->hub, user, e);
        notify_event_unref(e);
    }
}

static void on_batch(void *arg, bool begin)
{
    notify_hub_batch(((live_t *)arg)->hub, begin);
}

static void on_subscribed(void *arg)
{
    notify_hub_subscribed(((live_t *)arg)->hub);
}

/* Users with a stream here who follow author (*n of them), or NULL. */
static uint64_t *celebrity_followers(live_t *l, uint64_t author, size_t *n)
{
    size_t max = 256;
    for (;;) {
        uint64_t *users = malloc(max * sizeof(*users));
        if (!users)
            return NULL;
        *n = notify_hub_celebrity_followers(l->hub, author, users, max);
        if (*n <= max)
            return users;
        free(users);
        max = *n + 256;
    }
}

static void on_celebrity_published(void *arg, int status)
{
    (void)arg;
    if (status)
        LOG_RATELIMITED(LOG_WARN, "live", 0,
                        "a celebrity's event could not be logged for this server's streams (%d)",
                        status);
}

/* "<kind> <ref> <author> <shard>/<entry>": log and publish it for our users who follow. */
static void deliver_celebrity_post(live_t *l, const char *msg)
{
    char kind[16], ref[64], job_id[64];
    uint64_t author;
    if (sscanf(msg, "%15s %63s %" SCNu64 " %63s", kind, ref, &author, job_id) != 4)
        return;
    storage_job_t job = {.author = author};
    char *slash = strchr(job_id, '/');
    if (!slash)
        return;
    job.shard = atoi(job_id);
    snprintf(job.entry_id, sizeof(job.entry_id), "%s", slash + 1);
    size_t n = 0;
    uint64_t *users = celebrity_followers(l, author, &n);
    if (users && n)
        on_celebrity_published(l, storage_events_publish_announced(l->sub, &job, users, n, kind, ref,
                                                                   on_celebrity_published, l));
    free(users);
}

/* author was just marked: which of our users follow them, from Redis (a blocking read, as
 * rare as an author passing the celebrity threshold). */
static void learn_celebrity(live_t *l, uint64_t author)
{
    size_t max = 0, n;
    uint64_t *users = NULL;
    while ((n = notify_hub_users(l->hub, 0, 1, users, max)) > max) {
        free(users);
        max = n + 256;
        if (!(users = malloc(max * sizeof(*users))))
            return;
    }
    bool *follows = calloc(n ? n : 1, sizeof(*follows));
    int rc = follows ? storage_followers_among(l->storage, author, users, n, follows) : -1;
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (follows[i])
            notify_hub_celebrity_follow(l->hub, users[i], author, true);
    if (rc)
        LOG_RATELIMITED(LOG_WARN, "live", 0, "could not read who follows celebrity %" PRIu64 " (%d)",
                        author, rc);
    free(follows);
    free(users);
}

static void on_announce(void *arg, const char *msg)
{
    live_t *l = arg;
    uint64_t user, author;
    if (strncmp(msg, "follow ", 7) == 0 &&
        sscanf(msg + 7, "%" SCNu64 " %" SCNu64, &user, &author) == 2)
        notify_hub_celebrity_follow(l->hub, user, author, true);
    else if (strncmp(msg, "unfollow ", 9) == 0 &&
             sscanf(msg + 9, "%" SCNu64 " %" SCNu64, &user, &author) == 2)
        notify_hub_celebrity_follow(l->hub, user, author, false);
    else if (strncmp(msg, "celebrity ", 10) == 0 && sscanf(msg + 10, "%" SCNu64, &author) == 1)
        learn_celebrity(l, author);
    else
        deliver_celebrity_post(l, msg);
}

static void on_stop(uv_async_t *a)
{
    live_t *l = a->data;
    if (l->sub)
        storage_async_close(l->sub, NULL, NULL);
    l->sub = NULL;
    uv_close((uv_handle_t *)&l->stop, NULL);
}

static void run(void *arg)
{
    live_t *l = arg;
    storage_sub_callbacks_t cb = {.message = on_event, .subscribed = on_subscribed,
                                  .batch = on_batch, .announce = on_announce, .arg = l};
    l->sub = storage_sub_create(&l->loop, l->cfg, &cb);
    l->status = l->sub ? 0 : -1;
    uv_sem_post(&l->started);
    if (l->status == 0)
        uv_run(&l->loop, UV_RUN_DEFAULT);
}

live_t *live_start(const storage_config_t *cfg, storage_t *storage, notify_hub_t *hub)
{
    live_t *l = calloc(1, sizeof(*l));
    if (!l || uv_loop_init(&l->loop) != 0) {
        free(l);
        return NULL;
    }
    l->cfg = cfg;
    l->storage = storage;
    l->hub = hub;
    uv_async_init(&l->loop, &l->stop, on_stop);
    l->stop.data = l;
    uv_sem_init(&l->started, 0);
    if (uv_thread_create(&l->thread, run, l) != 0) {
        l->status = -1;
    } else {
        uv_sem_wait(&l->started);
        if (l->status != 0)
            uv_thread_join(&l->thread);
    }
    uv_sem_destroy(&l->started);
    if (l->status != 0) {
        uv_close((uv_handle_t *)&l->stop, NULL);
        uv_run(&l->loop, UV_RUN_DEFAULT);
        uv_loop_close(&l->loop);
        free(l);
        return NULL;
    }
    return l;
}

void live_stop(live_t *l)
{
    if (!l)
        return;
    uv_async_send(&l->stop);
    uv_thread_join(&l->thread);
    uv_loop_close(&l->loop);
    free(l);
}
