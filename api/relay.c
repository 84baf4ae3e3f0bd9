/* api/relay.c -- a mutex-guarded list plus uv_async_send: the only way work crosses from
 * HTTP threads to the loop. Posting appends under the lock and signals only when the list
 * was empty; the loop takes the whole list at once and applies it in order, so many
 * signals coalesce into one wake-up.
 */
#include "api/relay.h"

#include <pthread.h>
#include <stdlib.h>

typedef struct op_s {
    uint64_t user;
    bool subscribe;
} op_t;

struct api_relay_s {
    uv_async_t async;
    storage_async_t *sub;
    pthread_mutex_t mu;
    op_t *ops;
    size_t n, cap;
};

static void on_async(uv_async_t *h)
{
    api_relay_t *relay = h->data;
    pthread_mutex_lock(&relay->mu);
    op_t *ops = relay->ops;
    size_t n = relay->n;
    relay->ops = NULL;
    relay->n = relay->cap = 0;
    pthread_mutex_unlock(&relay->mu);
    for (size_t i = 0; i < n; i++) {
        if (ops[i].subscribe)
            storage_sub_add(relay->sub, ops[i].user);
        else
            storage_sub_remove(relay->sub, ops[i].user);
    }
    free(ops);
}

api_relay_t *api_relay_create(uv_loop_t *loop, storage_async_t *sub)
{
    api_relay_t *relay = calloc(1, sizeof(*relay));
    if (!relay)
        return NULL;
    if (uv_async_init(loop, &relay->async, on_async) != 0) {
        free(relay);
        return NULL;
    }
    relay->async.data = relay;
    relay->sub = sub;
    pthread_mutex_init(&relay->mu, NULL);
    return relay;
}

void api_relay_post(api_relay_t *relay, uint64_t user, bool subscribe)
{
    pthread_mutex_lock(&relay->mu);
    bool was_empty = relay->n == 0;
    if (relay->n == relay->cap) {
        size_t cap = relay->cap ? relay->cap * 2 : 64;
        op_t *grown = realloc(relay->ops, cap * sizeof(*grown));
        if (!grown) { /* the stream then only sees what catch-up reads: degraded, not lost */
            pthread_mutex_unlock(&relay->mu);
            return;
        }
        relay->ops = grown;
        relay->cap = cap;
    }
    relay->ops[relay->n++] = (op_t){user, subscribe};
    pthread_mutex_unlock(&relay->mu);
    if (was_empty)
        uv_async_send(&relay->async);
}

static void on_closed(uv_handle_t *h)
{
    api_relay_t *relay = h->data;
    pthread_mutex_destroy(&relay->mu);
    free(relay->ops);
    free(relay);
}

void api_relay_close(api_relay_t *relay)
{
    uv_close((uv_handle_t *)&relay->async, on_closed);
}
