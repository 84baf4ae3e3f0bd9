/* api/publish_outcome.c -- publishes whose answer from Redis was lost.
 *
 * When Redis does not answer a publish (a command timeout while it is paused, a connection
 * lost as it crashes), the post may or may not have been written and its fan-out job may or
 * may not be queued, or may still be, by a batch waiting in a paused Redis's socket. A 503
 * then would be wrong about half the time: the client posts again and the post is there
 * twice. So the request asks storage_post_settle again and again, for a few seconds, and
 * answers by what it learns: published (202) or made never to be (503). A publish still
 * undecided after that is answered 503 and handed to a thread here that keeps asking; if it
 * turns out published, the thread deletes it (retracted like any delete), so a 503 never
 * leaves a post standing. The list lives in memory: a process killed before it decided
 * leaves such posts as they are (its client got a 503 for them).
 */
#include "api/publish_outcome.h"
#include "api/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#define ASK_AGAIN_MS 100    /* between two tries of a request's settle */
#define THREAD_EVERY_MS 500 /* between two rounds of the thread */

typedef struct doubt_s {
    storage_post_t post; /* id and author only */
    struct doubt_s *next;
} doubt_t;

struct api_publish_doubts_s {
    storage_t *storage;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    bool stopping;
    doubt_t *list;
    api_publish_outcome_stats_t stats;
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(uint64_t ms)
{
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* One try: true when decided; a publish found standing is deleted. */
static bool decide(api_publish_doubts_t *d, const storage_post_t *post)
{
    bool published;
    if (storage_post_settle(d->storage, post, &published) != 0)
        return false;
    if (!published)
        return true;
    if (storage_post_delete(d->storage, post->id, post->author) != 0)
        return false;
    atomic_fetch_add(&d->stats.retracted, 1);
    LOG(LOG_WARN, "publish",
        "post %llu was answered 503 while Redis did not answer, but it had been published: "
        "deleted",
        (unsigned long long)post->id);
    return true;
}

/* Tries every doubt once, without holding the lock across Redis calls. */
static void round_of(api_publish_doubts_t *d)
{
    pthread_mutex_lock(&d->mu);
    doubt_t *taken = d->list;
    d->list = NULL;
    pthread_mutex_unlock(&d->mu);
    doubt_t *left = NULL;
    while (taken) {
        doubt_t *x = taken;
        taken = x->next;
        if (decide(d, &x->post)) {
            free(x);
        } else {
            x->next = left;
            left = x;
        }
    }
    pthread_mutex_lock(&d->mu);
    while (left) {
        doubt_t *x = left;
        left = x->next;
        x->next = d->list;
        d->list = x;
    }
    pthread_mutex_unlock(&d->mu);
}

static void *run(void *arg)
{
    api_publish_doubts_t *d = arg;
    pthread_mutex_lock(&d->mu);
    while (!d->stopping) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += THREAD_EVERY_MS * 1000000L;
        until.tv_sec += until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&d->wake, &d->mu, &until);
        if (d->list && !d->stopping) {
            pthread_mutex_unlock(&d->mu);
            round_of(d);
            pthread_mutex_lock(&d->mu);
        }
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

api_publish_doubts_t *api_publish_doubts_start(storage_t *s)
{
    api_publish_doubts_t *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    d->storage = s;
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->wake, NULL);
    if (pthread_create(&d->thread, NULL, run, d) != 0) {
        pthread_mutex_destroy(&d->mu);
        pthread_cond_destroy(&d->wake);
        free(d);
        return NULL;
    }
    return d;
}

void api_publish_doubts_stop(api_publish_doubts_t *d)
{
    if (!d)
        return;
    pthread_mutex_lock(&d->mu);
    d->stopping = true;
    pthread_cond_signal(&d->wake);
    pthread_mutex_unlock(&d->mu);
    pthread_join(d->thread, NULL);
    round_of(d);
    for (doubt_t *x = d->list, *next; x; x = next) {
        next = x->next;
        LOG(LOG_WARN, "publish",
            "post %llu was answered 503 and Redis never said whether it was published; it may "
            "stand",
            (unsigned long long)x->post.id);
        free(x);
    }
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->wake);
    free(d);
}

const api_publish_outcome_stats_t *api_publish_outcome_stats(const api_publish_doubts_t *d)
{
    return &d->stats;
}

api_publish_outcome_t api_publish_settle(api_publish_doubts_t *d, storage_t *s,
                                         const storage_post_t *post, uint64_t wait_ms)
{
    uint64_t until = now_ms() + wait_ms;
    for (;;) {
        bool published;
        if (storage_post_settle(s, post, &published) == 0) {
            atomic_fetch_add(published ? &d->stats.settled_published : &d->stats.settled_abandoned,
                             1);
            return published ? API_PUBLISH_PUBLISHED : API_PUBLISH_NOT_PUBLISHED;
        }
        if (now_ms() + ASK_AGAIN_MS >= until)
            break;
        sleep_ms(ASK_AGAIN_MS);
    }
    doubt_t *x = calloc(1, sizeof(*x));
    if (x) {
        x->post.id = post->id;
        x->post.author = post->author;
        pthread_mutex_lock(&d->mu);
        x->next = d->list;
        d->list = x;
        pthread_mutex_unlock(&d->mu);
    } else {
        LOG(LOG_ERROR, "publish", "out of memory: post %llu, answered 503, may stand",
            (unsigned long long)post->id);
    }
    atomic_fetch_add(&d->stats.undecided, 1);
    LOG(LOG_WARN, "publish",
        "Redis did not say within %llu ms whether post %llu was published: answered 503, "
        "deciding later",
        (unsigned long long)wait_ms, (unsigned long long)post->id);
    return API_PUBLISH_UNDECIDED;
}
