/* storage/async.c -- two self-healing hiredis async connections on a libuv loop.
 *
 * hiredis's own adapters/libuv.h (0.14) drops poll errors on the floor: a refused
 * connect never reaches the connect callback and the loop waits forever. This file has
 * its own adapter that hands an error status to hiredis (a write attempt while
 * connecting, a read once connected), so hiredis reports it, plus a connect timeout of
 * its own for peers that never answer. A lost connection is retried with backoff
 * (100 ms doubling to 2 s). hiredis answers every pending callback with a NULL reply when
 * a context goes away; the trampoline turns that into -EAGAIN (or -ECANCELED on close).
 */
#include "storage/storage_async.h"
#include "storage/storage_internal.h"

#include <errno.h>
#include <hiredis/async.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define CONNECT_TIMEOUT_MS 2000
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000

enum { READER = STORAGE__READER, WRITER = STORAGE__WRITER, SUB = 2, CONNS = 3 };

typedef struct aconn_s {
    storage_async_t *sa;
    redisAsyncContext *ac;
    bool connected;
    int backoff_ms;
    uv_timer_t timer; /* connect timeout while connecting, retry delay while down */
} aconn_t;

struct storage_async_s {
    uv_loop_t *loop;
    storage_t *cfg; /* parsed URL and shard count; never connects */
    aconn_t conn[CONNS];
    unsigned conn_mask; /* which of conn[] this instance opens */
    storage_sub_callbacks_t sub;
    size_t in_flight;
    bool closing;
    int open_timers;
    storage_async_state_cb on_state;
    void *state_arg;
    void (*closed_cb)(void *arg);
    void *closed_arg;
};

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

static int uvio_attach(redisAsyncContext *ac, uv_loop_t *loop)
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

/* ---- connections ------------------------------------------------------------------------ */

static void connect_now(aconn_t *c);

static void on_retry(uv_timer_t *t)
{
    connect_now(t->data);
}

static void schedule_retry(aconn_t *c)
{
    if (c->sa->closing)
        return;
    c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (c->backoff_ms > BACKOFF_MAX_MS)
        c->backoff_ms = BACKOFF_MAX_MS;
    uv_timer_start(&c->timer, on_retry, (uint64_t)c->backoff_ms, 0);
}

static void subscribe_live(storage_async_t *sa);

static void set_state(aconn_t *c, bool up)
{
    bool was = c->connected;
    c->connected = up;
    storage_async_t *sa = c->sa;
    if (c == &sa->conn[WRITER] && was != up && sa->on_state && !sa->closing)
        sa->on_state(sa->state_arg, up);
    if (c == &sa->conn[SUB] && up && !was)
        subscribe_live(sa);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    aconn_t *c = ac->data;
    uv_timer_stop(&c->timer);
    if (status != REDIS_OK) {
        c->ac = NULL; /* hiredis frees it after this callback */
        schedule_retry(c);
        return;
    }
    c->backoff_ms = 0;
    set_state(c, true);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    (void)status;
    aconn_t *c = ac->data;
    c->ac = NULL;
    set_state(c, false);
    schedule_retry(c);
}

static void on_connect_timeout(uv_timer_t *t)
{
    aconn_t *c = t->data;
    if (c->ac && !c->connected) {
        redisAsyncContext *ac = c->ac;
        c->ac = NULL;
        redisAsyncFree(ac); /* never connected: no disconnect callback */
        schedule_retry(c);
    }
}

static void connect_now(aconn_t *c)
{
    storage_t *cfg = c->sa->cfg;
    redisAsyncContext *ac = cfg->unix_path ? redisAsyncConnectUnix(cfg->unix_path)
                                           : redisAsyncConnect(cfg->host, cfg->port);
    if (!ac || ac->err || uvio_attach(ac, c->sa->loop) != 0) {
        if (ac)
            redisAsyncFree(ac);
        schedule_retry(c);
        return;
    }
    ac->data = c;
    c->ac = ac;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    /* Commands queue up until the connection is made, so these go first. */
    if (cfg->password)
        redisAsyncCommand(ac, NULL, NULL, "AUTH %s", cfg->password);
    if (cfg->db)
        redisAsyncCommand(ac, NULL, NULL, "SELECT %d", cfg->db);
    uv_timer_start(&c->timer, on_connect_timeout, CONNECT_TIMEOUT_MS, 0);
}

static storage_async_t *create(uv_loop_t *loop, const storage_config_t *cfg, unsigned mask)
{
    storage_async_t *sa = calloc(1, sizeof(*sa));
    if (!sa)
        return NULL;
    sa->cfg = storage_create(cfg);
    if (!sa->cfg) {
        free(sa);
        return NULL;
    }
    sa->loop = loop;
    sa->conn_mask = mask;
    for (int i = 0; i < CONNS; i++)
        sa->conn[i].sa = sa;
    return sa;
}

static void connect_all(storage_async_t *sa)
{
    for (int i = 0; i < CONNS; i++) {
        if (!(sa->conn_mask & (1u << i)))
            continue;
        uv_timer_init(sa->loop, &sa->conn[i].timer);
        sa->conn[i].timer.data = &sa->conn[i];
        sa->open_timers++;
        connect_now(&sa->conn[i]);
    }
}

storage_async_t *storage_async_create(uv_loop_t *loop, const storage_config_t *cfg,
                                      storage_async_state_cb on_state, void *arg)
{
    storage_async_t *sa = create(loop, cfg, 1u << READER | 1u << WRITER);
    if (sa) {
        sa->on_state = on_state;
        sa->state_arg = arg;
        connect_all(sa);
    }
    return sa;
}

storage_async_t *storage_sub_create(uv_loop_t *loop, const storage_config_t *cfg,
                                    const storage_sub_callbacks_t *cb)
{
    storage_async_t *sa = create(loop, cfg, 1u << SUB);
    if (sa) {
        sa->sub = *cb;
        connect_all(sa);
    }
    return sa;
}

static void on_timer_closed(uv_handle_t *h)
{
    aconn_t *c = h->data;
    storage_async_t *sa = c->sa;
    if (--sa->open_timers > 0)
        return;
    if (sa->closed_cb)
        sa->closed_cb(sa->closed_arg);
    storage_destroy(sa->cfg);
    free(sa);
}

void storage_async_close(storage_async_t *sa, void (*closed_cb)(void *arg), void *arg)
{
    sa->closing = true;
    sa->closed_cb = closed_cb;
    sa->closed_arg = arg;
    for (int i = 0; i < CONNS; i++) {
        aconn_t *c = &sa->conn[i];
        if (!(sa->conn_mask & (1u << i)))
            continue;
        uv_timer_stop(&c->timer);
        if (c->ac) {
            redisAsyncContext *ac = c->ac;
            c->ac = NULL;
            c->connected = false;
            redisAsyncFree(ac); /* pending callbacks run now, with -ECANCELED */
        }
        uv_close((uv_handle_t *)&c->timer, on_timer_closed);
    }
}

bool storage_async_up(const storage_async_t *sa)
{
    return sa->conn[WRITER].connected;
}

size_t storage_async_in_flight(const storage_async_t *sa)
{
    return sa->in_flight;
}

int storage__async_shards(const storage_async_t *sa)
{
    return sa->cfg->fanout_shards;
}

/* ---- commands --------------------------------------------------------------------------- */

typedef struct acmd_s {
    storage_async_t *sa;
    storage__reply_fn fn;
    void *priv;
} acmd_t;

static void trampoline(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    acmd_t *cmd = privdata;
    storage_async_t *sa = cmd->sa;
    redisReply *r = reply;
    int status = !r ? (sa->closing ? -ECANCELED : -EAGAIN)
                    : r->type == REDIS_REPLY_ERROR ? -EIO : 0;
    sa->in_flight--;
    cmd->fn(cmd->priv, status, r);
    free(cmd);
}

/* Sends a formatted command; fn fires exactly once unless this returns non-zero. */
static int send_formatted(storage_async_t *sa, int which, storage__reply_fn fn, void *priv,
                          const char *formatted, size_t len)
{
    aconn_t *c = &sa->conn[which];
    if (sa->closing)
        return -ECANCELED;
    if (!c->ac || !c->connected)
        return -EAGAIN;
    acmd_t *cmd = malloc(sizeof(*cmd));
    if (!cmd)
        return -ENOMEM;
    *cmd = (acmd_t){sa, fn, priv};
    if (redisAsyncFormattedCommand(c->ac, trampoline, cmd, formatted, len) != REDIS_OK) {
        free(cmd);
        return -ENOMEM;
    }
    sa->in_flight++;
    return 0;
}

int storage__asend(storage_async_t *sa, int which, storage__reply_fn fn, void *priv,
                   const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *cmd = NULL;
    int len = redisvFormatCommand(&cmd, fmt, ap);
    va_end(ap);
    if (len < 0)
        return -ENOMEM;
    int rc = send_formatted(sa, which, fn, priv, cmd, (size_t)len);
    redisFreeCommand(cmd);
    return rc;
}

int storage__asend_argv(storage_async_t *sa, int which, storage__reply_fn fn, void *priv, int argc,
                        const char **argv, const size_t *lens)
{
    char *cmd = NULL;
    int len = redisFormatCommandArgv(&cmd, argc, argv, lens);
    if (len < 0)
        return -ENOMEM;
    int rc = send_formatted(sa, which, fn, priv, cmd, (size_t)len);
    redisFreeCommand(cmd);
    return rc;
}

/* ---- groups: many commands, one completion ---------------------------------------------- */

storage__group_t *storage__group_new(storage_async_t *sa, storage_status_cb cb, void *arg)
{
    storage__group_t *g = calloc(1, sizeof(*g));
    if (g) {
        g->sa = sa;
        g->cb = cb;
        g->arg = arg;
        g->pending = 1; /* the submitter's own reference, dropped by storage__group_end */
    }
    return g;
}

void storage__group_unref(storage__group_t *g)
{
    if (--g->pending > 0)
        return;
    g->cb(g->arg, g->status);
    free(g);
}

/* A group's commands reply here directly, with the group as privdata: no allocation per
 * command, which matters at a thousand timeline writes per chunk. */
static void group_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    storage__group_t *g = priv;
    storage_async_t *sa = g->sa;
    redisReply *r = reply;
    int status = !r ? (sa->closing ? -ECANCELED : -EAGAIN) : r->type == REDIS_REPLY_ERROR ? -EIO : 0;
    sa->in_flight--;
    if (status && !g->status)
        g->status = status;
    storage__group_unref(g);
}

/* The writer connection, or NULL with the group's status set. */
static redisAsyncContext *group_conn(storage__group_t *g)
{
    aconn_t *c = &g->sa->conn[WRITER];
    if (g->sa->closing || !c->ac || !c->connected) {
        g->status = g->sa->closing ? -ECANCELED : -EAGAIN;
        return NULL;
    }
    return c->ac;
}

void storage__group_add(storage__group_t *g, const char *fmt, ...)
{
    redisAsyncContext *ac = g->status ? NULL : group_conn(g);
    if (!ac)
        return;
    va_list ap;
    va_start(ap, fmt);
    int rc = redisvAsyncCommand(ac, group_reply, g, fmt, ap);
    va_end(ap);
    if (rc != REDIS_OK) {
        g->status = -ENOMEM;
        return;
    }
    g->sa->in_flight++;
    g->pending++;
}

void storage__group_add_argv(storage__group_t *g, int argc, const char **argv)
{
    redisAsyncContext *ac = g->status ? NULL : group_conn(g);
    if (!ac)
        return;
    if (redisAsyncCommandArgv(ac, group_reply, g, argc, argv, NULL) != REDIS_OK) {
        g->status = -ENOMEM;
        return;
    }
    g->sa->in_flight++;
    g->pending++;
}

int storage__group_end(storage__group_t *g)
{
    /* A group that failed before sending anything reports to its caller, not its callback. */
    if (g->status && g->pending == 1) {
        int rc = g->status;
        free(g);
        return rc;
    }
    storage__group_unref(g);
    return 0;
}

/* ---- pub/sub ------------------------------------------------------------------------------ */

/* "<kind> <ref> <user>:<id> <user>:<id> …": one event for many users. */
static void deliver(storage_async_t *sa, const char *msg)
{
    char kind[32], ref[128];
    int used = 0;
    if (sscanf(msg, "%31s %127s %n", kind, ref, &used) != 2)
        return;
    for (const char *p = msg + used; *p;) {
        char *end;
        unsigned long long user = strtoull(p, &end, 10);
        if (*end != ':')
            return;
        const char *id = end + 1;
        size_t len = strcspn(id, " ");
        char idbuf[64];
        if (len == 0 || len >= sizeof(idbuf))
            return;
        memcpy(idbuf, id, len);
        idbuf[len] = '\0';
        sa->sub.message(sa->sub.arg, (uint64_t)user, idbuf, kind, ref);
        p = id + len;
        while (*p == ' ')
            p++;
    }
}

static void on_sub_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    storage_async_t *sa = priv;
    redisReply *r = reply;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 3 || sa->closing ||
        r->element[0]->type != REDIS_REPLY_STRING)
        return;
    const char *type = r->element[0]->str;
    if (strcmp(type, "subscribe") == 0 && sa->sub.subscribed)
        sa->sub.subscribed(sa->sub.arg);
    else if (strcmp(type, "message") == 0 && sa->sub.message &&
             r->element[2]->type == REDIS_REPLY_STRING)
        deliver(sa, r->element[2]->str);
}

/* Each new connection subscribes the live channel (again, after an outage). */
static void subscribe_live(storage_async_t *sa)
{
    aconn_t *c = &sa->conn[SUB];
    if (c->ac && c->connected)
        redisAsyncCommand(c->ac, on_sub_reply, sa, "SUBSCRIBE " CHANNEL_LIVE);
}
