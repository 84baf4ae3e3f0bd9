/* api/live.c -- the live path's receiving end on a thread of its own.
 *
 * A post to ten thousand connected followers arrives as ten messages of a thousand users
 * each; handing them to the hub means a thousand queue pushes and stream resumes per message.
 * On the engine's loop that work delayed the engine's next chunk (a step of the very fan-out
 * being delivered), so the subscriber gets its own loop and thread. The hub is thread-safe.
 *
 * It also receives the announcements of celebrities' posts (api/announcements.c).
 */
#include "api/live.h"

#include "api/announcements.h"
#include "storage/storage_async.h"

#include <stdlib.h>
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
    announcements_t *announcements;
    int status;
};

static void on_event(void *arg, uint64_t user, const char *id, storage_event_kind_t kind,
                     const char *ref)
{
    live_t *l = arg;
    notify_event_t *e = notify_event_new(id, (int)kind, ref);
    if (e) {
        notify_hub_publish(l->hub, user, e);
        notify_event_unref(e);
    }
}

static void on_batch(void *arg, bool begin)
{
    notify_hub_batch(((live_t *)arg)->hub, begin);
}

static void on_subscribed(void *arg, const char *channel)
{
    live_t *l = arg;
    notify_hub_subscribed(l->hub);
    announcements_on_subscribed(l->announcements, channel);
}

static void on_announce(void *arg, const char *channel, const storage_announcement_t *msg)
{
    announcements_on_message(((live_t *)arg)->announcements, channel, msg);
}

static void on_stop(uv_async_t *a)
{
    live_t *l = a->data;
    announcements_close(l->announcements);
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
    l->announcements = announcements_create(&l->loop, l->storage, l->hub);
    l->sub = l->announcements ? storage_sub_create(&l->loop, l->cfg, &cb) : NULL;
    announcements_attach(l->announcements, l->sub);
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
        announcements_close(l->announcements);
        uv_close((uv_handle_t *)&l->stop, NULL);
        uv_run(&l->loop, UV_RUN_DEFAULT);
        uv_loop_close(&l->loop);
        announcements_free(l->announcements);
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
    announcements_free(l->announcements);
    free(l);
}
