/* api/relay.h -- hands (un)subscribe requests from HTTP threads to the loop. */
#ifndef TIDINGS_API_RELAY_H
#define TIDINGS_API_RELAY_H

#include "storage/storage_async.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

typedef struct api_relay_s api_relay_t;

/* Thread: loop. sub is borrowed and must outlive the relay. Returns new or NULL. */
api_relay_t *api_relay_create(uv_loop_t *loop, storage_async_t *sub);
/* Thread: any. Queues a subscribe (or unsubscribe) of user's channel. */
void api_relay_post(api_relay_t *relay, uint64_t user, bool subscribe);
/* Thread: loop. Closes the async handle; frees the relay in its close callback. */
void api_relay_close(api_relay_t *relay);

#endif
