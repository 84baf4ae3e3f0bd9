/* storage/async_internal.h -- the asynchronous connections' shared shape: async.c owns
 * them, uv_adapter.c puts them on the loop, subscriber.c speaks pub/sub on some of them. */
#ifndef TIDINGS_STORAGE_ASYNC_INTERNAL_H
#define TIDINGS_STORAGE_ASYNC_INTERNAL_H

#include "storage/storage_async.h"
#include "storage/storage_internal.h"

#include <hiredis/async.h>

#define STORAGE__MAX_SHARDS 64

/* Puts a hiredis async context on loop (uv_adapter.c). */
int storage__uv_attach(redisAsyncContext *ac, uv_loop_t *loop);

enum { ROLE_WRITER, ROLE_READER, ROLE_SUB };

/* One connection: a writer or a subscriber per master node, a reader per queue shard (its
 * blocking reads must not wait behind another shard's). */
typedef struct aconn_s {
    storage_async_t *sa;
    int role, index; /* index: node (writer, subscriber) or shard (reader) */
    int node;        /* the node it talks to */
    redisAsyncContext *ac;
    bool connected, retired;
    int backoff_ms;
    uv_timer_t timer;  /* connect timeout while connecting, retry delay while down */
    char channel[32];  /* subscriber: the node's live channel */
    long long client_id; /* reader: its CLIENT ID, to unblock it (0: not known yet) */
} aconn_t;

struct storage_async_s {
    uv_loop_t *loop;
    storage_t *cfg; /* parsed URL, shard count and the slot map (refreshed on this loop) */
    bool subscriber;
    aconn_t *writer[STORAGE__MAX_NODES];
    aconn_t *reader[STORAGE__MAX_SHARDS];
    aconn_t *sub[STORAGE__MAX_NODES];
    int shard_slot[STORAGE__MAX_SHARDS];
    uv_timer_t topology_timer; /* learns the slot map again, then re-arranges connections */
    int topology_backoff_ms;
    storage_sub_callbacks_t sub_cb;
    size_t in_flight;
    bool closing, up;
    int open_handles;
    storage_async_state_cb on_state;
    void *state_arg;
    void (*closed_cb)(void *arg);
    void *closed_arg;
};

/* Asks for the slot map to be learnt again after delay_ms (sooner wins). */
void storage__async_refresh_soon(storage_async_t *sa, int delay_ms);

/* The writer connection to node, opened now if there is none (a redirect's target). */
aconn_t *storage__writer_for(storage_async_t *sa, int node);

/* subscriber.c: a subscriber connection came up; it subscribes its node's live channel. */
void storage__sub_connected(aconn_t *c);

#endif
