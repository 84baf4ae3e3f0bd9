/* storage/redis/uv_adapter.c -- hiredis async contexts on a libuv loop.
 *
 * hiredis's own adapters/libuv.h (0.14) drops poll errors on the floor: a refused
 * connect never reaches the connect callback and the loop waits forever. This adapter
 * hands an error status to hiredis (a write attempt while connecting, a read once
 * connected), so hiredis reports it.
 */
#include "storage/redis/redis_internal.h"

#include <errno.h>
#include <hiredis/async.h>
#include <stdlib.h>

/* ---- the adapter ------------------------------------------------------------------------ */

typedef struct uvio_s {
    uv_poll_t poll;
    redisAsyncContext *ac; /* NULL once hiredis let go of it */
    int events;            /* what hiredis wants */
    int polling;           /* what the poll handle watches now */
} uvio_t;

static void uvio_on_poll(uv_poll_t *h, int status, int events)
{
    uvio_t *io = h->data;
    if (!io->ac)
        return;
    if (status < 0) {
        /* libuv stopped the handle; let hiredis find the socket error itself. */
        io->polling = 0;
        if (!(io->ac->c.flags & REDIS_CONNECTED))
            redisAsyncHandleWrite(io->ac);
        else
            redisAsyncHandleRead(io->ac);
        return;
    }
    if (events & UV_READABLE)
        redisAsyncHandleRead(io->ac);
    if (io->ac && (events & UV_WRITABLE))
        redisAsyncHandleWrite(io->ac);
}

/* hiredis asks for read/write interest on every command; restarting the poll handle when
 * nothing changed would cost an epoll_ctl pair each time. libuv stops a handle whose poll
 * failed, so after an error status the next change starts it afresh. */
static void uvio_update(uvio_t *io)
{
    if (io->events == io->polling)
        return;
    io->polling = io->events;
    if (io->events)
        uv_poll_start(&io->poll, io->events, uvio_on_poll);
    else
        uv_poll_stop(&io->poll);
}

static void uvio_add_read(void *p)
{
    ((uvio_t *)p)->events |= UV_READABLE;
    uvio_update(p);
}

static void uvio_del_read(void *p)
{
    ((uvio_t *)p)->events &= ~UV_READABLE;
    uvio_update(p);
}

static void uvio_add_write(void *p)
{
    ((uvio_t *)p)->events |= UV_WRITABLE;
    uvio_update(p);
}

static void uvio_del_write(void *p)
{
    ((uvio_t *)p)->events &= ~UV_WRITABLE;
    uvio_update(p);
}

static void uvio_on_close(uv_handle_t *h)
{
    free(h->data);
}

static void uvio_cleanup(void *p)
{
    uvio_t *io = p;
    io->ac = NULL;
    uv_close((uv_handle_t *)&io->poll, uvio_on_close);
}

int storage_redis__uv_attach(redisAsyncContext *ac, uv_loop_t *loop)
{
    uvio_t *io = calloc(1, sizeof(*io));
    if (!io)
        return -ENOMEM;
    if (uv_poll_init(loop, &io->poll, ac->c.fd) != 0) {
        free(io);
        return -EIO;
    }
    io->poll.data = io;
    io->ac = ac;
    ac->ev.data = io;
    ac->ev.addRead = uvio_add_read;
    ac->ev.delRead = uvio_del_read;
    ac->ev.addWrite = uvio_add_write;
    ac->ev.delWrite = uvio_del_write;
    ac->ev.cleanup = uvio_cleanup;
    return 0;
}
