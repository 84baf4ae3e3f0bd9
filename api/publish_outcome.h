/* api/publish_outcome.h -- publishes whose answer from Redis was lost: decided before the
 * request is answered, or after, by a thread that retracts what a 503 left standing. */
#ifndef TIDINGS_API_PUBLISH_OUTCOME_H
#define TIDINGS_API_PUBLISH_OUTCOME_H

#include "storage/storage.h"

#include <stdatomic.h>
#include <stdint.h>

typedef struct api_publish_doubts_s api_publish_doubts_t;

/* For /metrics. Thread: any. */
typedef struct api_publish_outcome_stats_s {
    atomic_ullong settled_published; /* decided in the request: the post stands, 202 */
    atomic_ullong settled_abandoned; /* decided in the request: no post, 503 */
    atomic_ullong undecided;         /* answered 503 undecided, handed to the thread */
    atomic_ullong retracted;         /* of those, found published and deleted */
} api_publish_outcome_stats_t;

/* Starts the thread that decides what requests could not (it borrows s). NULL on failure. */
api_publish_doubts_t *api_publish_doubts_start(storage_t *s);
/* Stops the thread after one last try; what is still undecided is logged. NULL: no-op. */
void api_publish_doubts_stop(api_publish_doubts_t *d);
const api_publish_outcome_stats_t *api_publish_outcome_stats(const api_publish_doubts_t *d);

typedef enum {
    API_PUBLISH_NOT_PUBLISHED = 0,
    API_PUBLISH_PUBLISHED = 1,
    API_PUBLISH_UNDECIDED = -1, /* handed to the thread: it will be made not to stand */
} api_publish_outcome_t;

/* Decides the publish of post, whose create's outcome is unknown, asking Redis again for up
 * to wait_ms. Thread: any (an HTTP thread; it blocks). */
api_publish_outcome_t api_publish_settle(api_publish_doubts_t *d, storage_t *s,
                                         const storage_post_t *post, uint64_t wait_ms);

#endif
