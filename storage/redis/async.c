/* storage/redis/async.c -- self-healing hiredis async connections on a libuv loop, arranged
 * after the slot map (commands on them: async_send.c).
 *
 * One writer connection per master node carries every command; one reader per reader key
 * (the caller names them) carries the blocking reads of its slot. The slot map comes from
 * topology.c, learnt here on the loop thread at start, after a connection is lost (a failover moves
 * a node's slots to its replica) and after a MOVED redirect; connections are then re-arranged to
 * the current masters. A MOVED or ASK reply resends the command to the node named, so a resharding
 * costs a round trip, not an error. A lost connection is retried with backoff (100 ms doubling to 2
 * s); hiredis answers every pending callback with a NULL reply when a context goes away, which the
 * trampoline turns into -EAGAIN (or -ECANCELED on close).
 */
#include "storage/redis/redis_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define CONNECT_TIMEOUT_MS 2000
#define REFRESH_AFTER_LOSS_MS 200 /* give the cluster a moment to notice and promote */

/* ---- connections ------------------------------------------------------------------------ */

static void connect_now(aconn_t *c);
static void update_up(storage_redis_async_t *sa);

static void on_retry(uv_timer_t *t)
{
    connect_now(t->data);
}

static void schedule_retry(aconn_t *c)
{
    if (c->sa->closing || c->retired)
        return;
    c->backoff_ms = storage_redis__backoff_next(c->backoff_ms);
    uv_timer_start(&c->timer, on_retry, (uint64_t)c->backoff_ms, 0);
    /* The node may be gone for good (failed over): ask where its slots went. */
    storage_redis__async_refresh_soon(c->sa, REFRESH_AFTER_LOSS_MS);
}

static void set_state(aconn_t *c, bool up)
{
    bool was = c->connected;
    c->connected = up;
    if (up != was) /* a new connection: Redis may have forgotten its scripts too */
        memset(c->scripts_loaded, 0, sizeof(c->scripts_loaded));
    if (c->role == STORAGE_REDIS_SUB && up && !was && !c->retired)
        storage_redis__sub_connected(c);
    update_up(c->sa);
}

static void on_client_id(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    aconn_t *c = priv;
    const redisReply *r = reply;
    if (r && r->type == REDIS_REPLY_INTEGER && !c->retired)
        c->client_id = r->integer;
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
    if (c->role == STORAGE_REDIS_READER)
        redisAsyncCommand(c->ac, on_client_id, c, "CLIENT ID");
    set_state(c, true);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    (void)status;
    aconn_t *c = ac->data;
    c->ac = NULL;
    c->client_id = 0;
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
    storage_redis_t *s = c->sa->cfg;
    const storage_redis__node_t *n = &s->nodes[c->node];
    redisAsyncContext *ac =
        n->port == 0 ? redisAsyncConnectUnix(n->host) : redisAsyncConnect(n->host, n->port);
    if (!ac || ac->err || storage_redis__uv_attach(ac, c->sa->loop) != 0) {
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
    if (s->password)
        redisAsyncCommand(ac, NULL, NULL, "AUTH %s", s->password);
    if (s->db)
        redisAsyncCommand(ac, NULL, NULL, "SELECT %d", s->db);
    uv_timer_start(&c->timer, on_connect_timeout, CONNECT_TIMEOUT_MS, 0);
}

static void on_handle_closed(uv_handle_t *h)
{
    storage_redis_async_t *sa = h->data;
    if (h != (uv_handle_t *)&sa->topology_timer) {
        aconn_t *c = (aconn_t *)((char *)h - offsetof(aconn_t, timer));
        sa = c->sa;
        free(c);
    }
    if (--sa->open_handles > 0)
        return;
    if (sa->closed_cb)
        sa->closed_cb(sa->closed_arg);
    storage_redis_destroy(sa->cfg);
    free(sa);
}

static aconn_t *conn_open(storage_redis_async_t *sa, int role, int index, int node)
{
    aconn_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    *c = (aconn_t){.sa = sa, .role = role, .index = index, .node = node};
    uv_timer_init(sa->loop, &c->timer);
    c->timer.data = c;
    sa->open_handles++;
    connect_now(c);
    return c;
}

/* Stops using c: its pending callbacks fire now (-EAGAIN, or -ECANCELED when closing) and
 * it is freed once its timer has closed. */
static void conn_retire(aconn_t *c)
{
    c->retired = true;
    uv_timer_stop(&c->timer);
    if (c->ac) {
        redisAsyncContext *ac = c->ac;
        c->ac = NULL;
        c->connected = false;
        redisAsyncFree(ac);
    }
    c->timer.data = c->sa;
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

/* ---- the slot map and the connections it calls for ---------------------------------------- */

static void update_up(storage_redis_async_t *sa)
{
    bool up = !sa->closing && sa->cfg->topology_known;
    for (int i = 0; up && i < STORAGE_REDIS_MAX_NODES; i++)
        if (sa->writer[i] && !sa->writer[i]->connected)
            up = false;
    if (up == sa->up)
        return;
    sa->up = up;
    if (sa->cb.state && !sa->closing)
        sa->cb.state(sa->cb.arg, up);
}

/* Opens what the current masters call for and retires what they no longer do. */
static void arrange(storage_redis_async_t *sa)
{
    storage_redis_t *s = sa->cfg;
    bool master[STORAGE_REDIS_MAX_NODES] = {0};
    int reader_node[STORAGE_REDIS_MAX_READERS];
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < STORAGE_SLOTS; i++)
        master[s->slot_node[i]] = true;
    for (int i = 0; i < sa->n_readers; i++)
        reader_node[i] = s->slot_node[sa->reader_slot[i]];
    pthread_mutex_unlock(&s->mu);
    /* Writers always (a subscriber's owner publishes celebrities' events for its users),
     * subscriptions for a subscriber. */
    for (int sub = 0; sub <= (sa->subscriber ? 1 : 0); sub++) {
        aconn_t **conns = sub ? sa->sub : sa->writer;
        for (int i = 0; i < STORAGE_REDIS_MAX_NODES; i++) {
            char channel[32] = "";
            if (master[i] && sub)
                storage_redis_live_channel(s, i, channel, sizeof(channel));
            if (conns[i] && (!master[i] || strcmp(conns[i]->channel, channel) != 0)) {
                conn_retire(conns[i]);
                conns[i] = NULL;
            }
            if (master[i] && !conns[i]) {
                conns[i] = conn_open(sa, sub ? STORAGE_REDIS_SUB : STORAGE_REDIS_WRITER, i, i);
                if (conns[i])
                    snprintf(conns[i]->channel, sizeof(conns[i]->channel), "%s", channel);
            }
        }
    }
    for (int i = 0; !sa->subscriber && i < sa->n_readers; i++) {
        if (sa->reader[i] && sa->reader[i]->node != reader_node[i]) {
            conn_retire(sa->reader[i]);
            sa->reader[i] = NULL;
        }
        if (!sa->reader[i])
            sa->reader[i] = conn_open(sa, STORAGE_REDIS_READER, i, reader_node[i]);
    }
    update_up(sa);
}

static void on_topology_timer(uv_timer_t *t)
{
    storage_redis_async_t *sa = t->data;
    if (sa->closing)
        return;
    /* A blocking round trip on the loop: rare (start, failover, resharding) and short. */
    if (storage_redis__topology_refresh(sa->cfg, 0) == 0) {
        sa->topology_backoff_ms = 0;
        arrange(sa);
        return;
    }
    sa->topology_backoff_ms = storage_redis__backoff_next(sa->topology_backoff_ms);
    uv_timer_start(&sa->topology_timer, on_topology_timer, (uint64_t)sa->topology_backoff_ms, 0);
}

void storage_redis__async_refresh_soon(storage_redis_async_t *sa, int delay_ms)
{
    if (sa->closing)
        return;
    if (uv_is_active((uv_handle_t *)&sa->topology_timer) &&
        uv_timer_get_due_in(&sa->topology_timer) <= (uint64_t)delay_ms)
        return;
    uv_timer_start(&sa->topology_timer, on_topology_timer, (uint64_t)delay_ms, 0);
}

storage_redis_async_t *storage_redis_async_create(uv_loop_t *loop,
                                                  const storage_redis_config_t *cfg,
                                                  const char *const *reader_keys, int n_readers,
                                                  bool subscriber,
                                                  const storage_redis_async_callbacks_t *cb)
{
    if (n_readers < 0 || n_readers > STORAGE_REDIS_MAX_READERS)
        return NULL;
    storage_redis_async_t *sa = calloc(1, sizeof(*sa));
    if (!sa)
        return NULL;
    sa->cfg = storage_redis_create(cfg);
    if (!sa->cfg) {
        free(sa);
        return NULL;
    }
    sa->loop = loop;
    sa->subscriber = subscriber;
    sa->cb = *cb;
    sa->n_readers = n_readers;
    for (int i = 0; i < n_readers; i++)
        sa->reader_slot[i] = storage_key_slot(reader_keys[i], strlen(reader_keys[i]));
    uv_timer_init(loop, &sa->topology_timer);
    sa->topology_timer.data = sa;
    sa->open_handles = 1;
    storage_redis__async_refresh_soon(sa, 0);
    return sa;
}

void storage_redis_async_close(storage_redis_async_t *sa, void (*closed_cb)(void *arg), void *arg)
{
    sa->closing = true;
    sa->up = false;
    sa->closed_cb = closed_cb;
    sa->closed_arg = arg;
    for (int i = 0; i < STORAGE_REDIS_MAX_NODES; i++) {
        if (sa->writer[i])
            conn_retire(sa->writer[i]);
        if (sa->sub[i])
            conn_retire(sa->sub[i]);
        sa->writer[i] = sa->sub[i] = NULL;
    }
    for (int i = 0; i < STORAGE_REDIS_MAX_READERS; i++) {
        if (sa->reader[i])
            conn_retire(sa->reader[i]);
        sa->reader[i] = NULL;
    }
    uv_timer_stop(&sa->topology_timer);
    uv_close((uv_handle_t *)&sa->topology_timer, on_handle_closed);
}

void storage_redis_async_unblock_readers(storage_redis_async_t *sa)
{
    for (int i = 0; i < STORAGE_REDIS_MAX_READERS; i++) {
        const aconn_t *r = sa->reader[i];
        const aconn_t *w = r ? sa->writer[r->node] : NULL;
        if (r && r->client_id && w && w->ac && w->connected)
            redisAsyncCommand(w->ac, NULL, NULL, "CLIENT UNBLOCK %lld", r->client_id);
    }
}

bool storage_redis_async_up(const storage_redis_async_t *sa)
{
    return sa->up;
}

size_t storage_redis_async_in_flight(const storage_redis_async_t *sa)
{
    return sa->in_flight;
}

storage_redis_t *storage_redis_async_client(storage_redis_async_t *sa)
{
    return sa->cfg;
}

aconn_t *storage_redis__writer_for(storage_redis_async_t *sa, int node)
{
    if (!sa->writer[node] && !sa->closing)
        sa->writer[node] = conn_open(sa, STORAGE_REDIS_WRITER, node, node);
    return sa->writer[node];
}
