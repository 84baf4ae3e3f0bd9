/* api/seen.c -- marking the caller seen, coarsely.
 *
 * Every authenticated request (a stream opened with a token or a ticket too) marks its caller
 * seen (storage/seen.h), which is what keeps their timeline written by the fan-out. A write a
 * request would be a write a request: this process remembers whom it marked in the last
 * STORAGE_SEEN_GRAIN_MS (a hashed table of SEEN_SLOTS, like the token cache: a collision only
 * costs one more round trip), and the storage script itself writes only when the stored time
 * is that old, so many processes together still write about once an hour per user. When the
 * caller was inactive, the same call queues the rebuild of their timeline.
 */
#include "api/api.h"
#include "api/log.h"
#include "storage/seen.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#define SEEN_SLOTS 4096
#define DAY_MS (86400ull * 1000)

typedef struct seen_slot_s {
    uint64_t user, at_ms; /* at_ms on the storage clock */
} seen_slot_t;

struct api_seen_s {
    pthread_mutex_t mu;
    seen_slot_t slots[SEEN_SLOTS];
};

int api_seen_create(api_t *api)
{
    api->seen = calloc(1, sizeof(*api->seen));
    if (!api->seen)
        return -ENOMEM;
    pthread_mutex_init(&api->seen->mu, NULL);
    return 0;
}

void api_seen_destroy(api_t *api)
{
    if (api->seen) {
        pthread_mutex_destroy(&api->seen->mu);
        free(api->seen);
        api->seen = NULL;
    }
}

static seen_slot_t *slot_of(struct api_seen_s *t, uint64_t user)
{
    /* Ids' low bits are a node and a sequence: mix them all into the index. */
    return &t->slots[(user * 0x9E3779B97F4A7C15ull) >> 52 & (SEEN_SLOTS - 1)];
}

void api_seen(api_req_t *r)
{
    struct api_seen_s *t = r->api->seen;
    uint64_t user = r->caller.id, now = storage_now_ms();
    if (!t || !user)
        return;
    seen_slot_t *slot = slot_of(t, user);
    pthread_mutex_lock(&t->mu);
    bool fresh = slot->user == user && now - slot->at_ms < STORAGE_SEEN_GRAIN_MS;
    pthread_mutex_unlock(&t->mu);
    if (fresh)
        return;
    int days = r->api->cfg->fanout.inactive_days;
    uint64_t span = (uint64_t)(days > 0 ? days : 0) * DAY_MS;
    bool rebuild;
    int rc = storage_user_seen(r->api->storage, user, now, days > 0 && now > span ? now - span : 0,
                               &rebuild);
    if (rc) {
        /* Best effort: the next request tries again; the request itself goes on. */
        LOG_RATELIMITED(LOG_WARN, "api", -rc, "marking user %llu seen failed",
                        (unsigned long long)user);
        return;
    }
    pthread_mutex_lock(&t->mu);
    *slot = (seen_slot_t){user, now};
    pthread_mutex_unlock(&t->mu);
    if (rebuild)
        LOG(LOG_INFO, "api", "user %llu is back after %d days or more: timeline rebuild queued",
            (unsigned long long)user, days);
}
