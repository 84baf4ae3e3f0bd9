/* storage/async.c -- self-healing hiredis async connections on a libuv loop, each command
 * sent to its slot's node.
 *
 * One writer connection per master node carries every command; one reader per queue
 * shard carries the blocking job reads. The slot map comes from storage/topology.c, learnt
 * here on the loop thread at start, after a connection is lost (a failover moves a node's
 * slots to its replica) and after a MOVED redirect; connections are then re-arranged to the
 * current masters. A MOVED or ASK reply resends the command to the node named, so a
 * resharding costs a round trip, not an error. A lost connection is retried with backoff
 * (100 ms doubling to 2 s); hiredis answers every pending callback with a NULL reply when a
 * context goes away, which the trampoline turns into -EAGAIN (or -ECANCELED on close).
 */
#include "storage/async_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define CONNECT_TIMEOUT_MS 2000
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000
#define REDIRECTS_MAX 5
#define REFRESH_AFTER_LOSS_MS 200 /* give the cluster a moment to notice and promote */

/* ---- connections ------------------------------------------------------------------------ */

static void connect_now(aconn_t *c);
static void update_up(storage_async_t *sa);

static void on_retry(uv_timer_t *t)
{
    connect_now(t->data);
}

static void schedule_retry(aconn_t *c)
{
    if (c->sa->closing || c->retired)
        return;
    c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (c->backoff_ms > BACKOFF_MAX_MS)
        c->backoff_ms = BACKOFF_MAX_MS;
    uv_timer_start(&c->timer, on_retry, (uint64_t)c->backoff_ms, 0);
    /* The node may be gone for good (failed over): ask where its slots went. */
    storage__async_refresh_soon(c->sa, REFRESH_AFTER_LOSS_MS);
}

static void set_state(aconn_t *c, bool up)
{
    bool was = c->connected;
    c->connected = up;
    if (c->role == ROLE_SUB && up && !was && !c->retired)
        storage__sub_connected(c);
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
    if (c->role == ROLE_READER)
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
    storage_t *s = c->sa->cfg;
    const storage__node_t *n = &s->nodes[c->node];
    redisAsyncContext *ac = n->port == 0 ? redisAsyncConnectUnix(n->host)
                                         : redisAsyncConnect(n->host, n->port);
    if (!ac || ac->err || storage__uv_attach(ac, c->sa->loop) != 0) {
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
    storage_async_t *sa = h->data;
    if (h != (uv_handle_t *)&sa->topology_timer) {
        aconn_t *c = (aconn_t *)((char *)h - offsetof(aconn_t, timer));
        sa = c->sa;
        free(c);
    }
    if (--sa->open_handles > 0)
        return;
    if (sa->closed_cb)
        sa->closed_cb(sa->closed_arg);
    storage_destroy(sa->cfg);
    free(sa);
}

static aconn_t *conn_open(storage_async_t *sa, int role, int index, int node)
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

static void update_up(storage_async_t *sa)
{
    bool up = !sa->closing && sa->cfg->topology_known;
    for (int i = 0; up && i < STORAGE__MAX_NODES; i++)
        if (sa->writer[i] && !sa->writer[i]->connected)
            up = false;
    if (up == sa->up)
        return;
    sa->up = up;
    if (sa->on_state && !sa->closing)
        sa->on_state(sa->state_arg, up);
}

/* Opens what the current masters call for and retires what they no longer do. */
static void arrange(storage_async_t *sa)
{
    storage_t *s = sa->cfg;
    bool master[STORAGE__MAX_NODES] = {0};
    int reader_node[STORAGE__MAX_SHARDS];
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < STORAGE_SLOTS; i++)
        master[s->slot_node[i]] = true;
    for (int i = 0; i < s->fanout_shards; i++)
        reader_node[i] = s->slot_node[sa->shard_slot[i]];
    pthread_mutex_unlock(&s->mu);
    aconn_t **conns = sa->subscriber ? sa->sub : sa->writer;
    int role = sa->subscriber ? ROLE_SUB : ROLE_WRITER;
    for (int i = 0; i < STORAGE__MAX_NODES; i++) {
        char channel[32] = "";
        if (master[i] && sa->subscriber)
            storage__live_channel(s, i, channel, sizeof(channel));
        if (conns[i] && (!master[i] || strcmp(conns[i]->channel, channel) != 0)) {
            conn_retire(conns[i]);
            conns[i] = NULL;
        }
        if (master[i] && !conns[i]) {
            conns[i] = conn_open(sa, role, i, i);
            if (conns[i])
                snprintf(conns[i]->channel, sizeof(conns[i]->channel), "%s", channel);
        }
    }
    for (int i = 0; !sa->subscriber && i < s->fanout_shards; i++) {
        if (sa->reader[i] && sa->reader[i]->node != reader_node[i]) {
            conn_retire(sa->reader[i]);
            sa->reader[i] = NULL;
        }
        if (!sa->reader[i])
            sa->reader[i] = conn_open(sa, ROLE_READER, i, reader_node[i]);
    }
    update_up(sa);
}

static void on_topology_timer(uv_timer_t *t)
{
    storage_async_t *sa = t->data;
    if (sa->closing)
        return;
    /* A blocking round trip on the loop: rare (start, failover, resharding) and short. */
    if (storage__topology_refresh(sa->cfg, 0) == 0) {
        sa->topology_backoff_ms = 0;
        arrange(sa);
        return;
    }
    sa->topology_backoff_ms =
        sa->topology_backoff_ms ? sa->topology_backoff_ms * 2 : BACKOFF_MIN_MS;
    if (sa->topology_backoff_ms > BACKOFF_MAX_MS)
        sa->topology_backoff_ms = BACKOFF_MAX_MS;
    uv_timer_start(&sa->topology_timer, on_topology_timer, (uint64_t)sa->topology_backoff_ms, 0);
}

void storage__async_refresh_soon(storage_async_t *sa, int delay_ms)
{
    if (sa->closing)
        return;
    if (uv_is_active((uv_handle_t *)&sa->topology_timer) &&
        uv_timer_get_due_in(&sa->topology_timer) <= (uint64_t)delay_ms)
        return;
    uv_timer_start(&sa->topology_timer, on_topology_timer, (uint64_t)delay_ms, 0);
}

static storage_async_t *create(uv_loop_t *loop, const storage_config_t *cfg, bool subscriber)
{
    storage_async_t *sa = calloc(1, sizeof(*sa));
    if (!sa)
        return NULL;
    sa->cfg = storage_create(cfg);
    if (!sa->cfg || sa->cfg->fanout_shards > STORAGE__MAX_SHARDS) {
        storage_destroy(sa->cfg);
        free(sa);
        return NULL;
    }
    sa->loop = loop;
    sa->subscriber = subscriber;
    for (int i = 0; i < sa->cfg->fanout_shards; i++) {
        char key[24];
        int len = snprintf(key, sizeof(key), K_FANOUT, i);
        sa->shard_slot[i] = storage_key_slot(key, (size_t)len);
    }
    uv_timer_init(loop, &sa->topology_timer);
    sa->topology_timer.data = sa;
    sa->open_handles = 1;
    storage__async_refresh_soon(sa, 0);
    return sa;
}

storage_async_t *storage_async_create(uv_loop_t *loop, const storage_config_t *cfg,
                                      storage_async_state_cb on_state, void *arg)
{
    storage_async_t *sa = create(loop, cfg, false);
    if (sa) {
        sa->on_state = on_state;
        sa->state_arg = arg;
    }
    return sa;
}

storage_async_t *storage_sub_create(uv_loop_t *loop, const storage_config_t *cfg,
                                    const storage_sub_callbacks_t *cb)
{
    storage_async_t *sa = create(loop, cfg, true);
    if (sa)
        sa->sub_cb = *cb;
    return sa;
}

void storage_async_close(storage_async_t *sa, void (*closed_cb)(void *arg), void *arg)
{
    sa->closing = true;
    sa->up = false;
    sa->closed_cb = closed_cb;
    sa->closed_arg = arg;
    for (int i = 0; i < STORAGE__MAX_NODES; i++) {
        if (sa->writer[i])
            conn_retire(sa->writer[i]);
        if (sa->sub[i])
            conn_retire(sa->sub[i]);
        sa->writer[i] = sa->sub[i] = NULL;
    }
    for (int i = 0; i < STORAGE__MAX_SHARDS; i++) {
        if (sa->reader[i])
            conn_retire(sa->reader[i]);
        sa->reader[i] = NULL;
    }
    uv_timer_stop(&sa->topology_timer);
    uv_close((uv_handle_t *)&sa->topology_timer, on_handle_closed);
}

void storage_jobs_unblock(storage_async_t *sa)
{
    for (int i = 0; i < STORAGE__MAX_SHARDS; i++) {
        const aconn_t *r = sa->reader[i];
        const aconn_t *w = r ? sa->writer[r->node] : NULL;
        if (r && r->client_id && w && w->ac && w->connected)
            redisAsyncCommand(w->ac, NULL, NULL, "CLIENT UNBLOCK %lld", r->client_id);
    }
}

bool storage_async_up(const storage_async_t *sa)
{
    return sa->up;
}

size_t storage_async_in_flight(const storage_async_t *sa)
{
    return sa->in_flight;
}

int storage__async_shards(const storage_async_t *sa)
{
    return sa->cfg->fanout_shards;
}

storage_t *storage__async_storage(storage_async_t *sa)
{
    return sa->cfg;
}

int storage__async_user_node(storage_async_t *sa, uint64_t user)
{
    char tag[24];
    int len = snprintf(tag, sizeof(tag), "%llu", (ull)user);
    int slot = storage_crc16(tag, (size_t)len) & (STORAGE_SLOTS - 1);
    pthread_mutex_lock(&sa->cfg->mu);
    int node = sa->cfg->slot_node[slot];
    pthread_mutex_unlock(&sa->cfg->mu);
    return node;
}

/* ---- commands --------------------------------------------------------------------------- */

typedef struct acmd_s {
    storage_async_t *sa;
    storage__reply_fn fn;
    void *priv;
    int which, redirects;
    size_t len;
    char cmd[]; /* the formatted command, kept to follow a redirect */
} acmd_t;

static const char asking_cmd[] = "*1\r\n$6\r\nASKING\r\n";

/* The connection a command for slot goes out on, or NULL. */
static aconn_t *route(storage_async_t *sa, int which, int slot)
{
    if (which == STORAGE__READER) {
        for (int i = 0; i < sa->cfg->fanout_shards; i++)
            if (sa->shard_slot[i] == slot)
                return sa->reader[i];
        return NULL;
    }
    pthread_mutex_lock(&sa->cfg->mu);
    int node = sa->cfg->slot_node[slot < 0 ? 0 : slot];
    pthread_mutex_unlock(&sa->cfg->mu);
    return sa->writer[node];
}

static void trampoline(redisAsyncContext *ac, void *reply, void *privdata);

/* Follows a MOVED or ASK reply; true when the command went out again. */
static bool redirect(acmd_t *cmd, const redisReply *r)
{
    storage_async_t *sa = cmd->sa;
    int slot, port;
    char host[108];
    storage_redirect_t kind = storage_redirect_parse(r->str, r->len, &slot, host, sizeof(host),
                                                     &port);
    if (kind == STORAGE_REDIRECT_NONE || sa->closing || cmd->redirects >= REDIRECTS_MAX)
        return false;
    int node;
    if (kind == STORAGE_REDIRECT_MOVED) {
        node = storage__topology_moved(sa->cfg, slot, host, port);
        storage__async_refresh_soon(sa, 0);
    } else {
        pthread_mutex_lock(&sa->cfg->mu);
        node = storage__node_find_or_add(sa->cfg, host, port);
        pthread_mutex_unlock(&sa->cfg->mu);
    }
    /* Readers follow the map on the next arrangement; only writers are resent. */
    if (node < 0 || cmd->which != STORAGE__WRITER)
        return false;
    if (!sa->writer[node])
        sa->writer[node] = conn_open(sa, ROLE_WRITER, node, node);
    aconn_t *c = sa->writer[node];
    if (!c || !c->ac)
        return false;
    if (kind == STORAGE_REDIRECT_ASK &&
        redisAsyncFormattedCommand(c->ac, NULL, NULL, asking_cmd, sizeof(asking_cmd) - 1) !=
            REDIS_OK)
        return false;
    cmd->redirects++;
    return redisAsyncFormattedCommand(c->ac, trampoline, cmd, cmd->cmd, cmd->len) == REDIS_OK;
}

static void trampoline(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    acmd_t *cmd = privdata;
    storage_async_t *sa = cmd->sa;
    redisReply *r = reply;
    int status = !r ? (sa->closing ? -ECANCELED : -EAGAIN)
                    : r->type == REDIS_REPLY_ERROR ? -EIO : 0;
    if (status == -EIO) {
        if (redirect(cmd, r))
            return;
        /* A failover or resharding in progress: nothing happened, try again later. */
        if (strncmp(r->str, "CLUSTERDOWN", 11) == 0 || strncmp(r->str, "TRYAGAIN", 8) == 0 ||
            strncmp(r->str, "MOVED", 5) == 0) {
            status = -EAGAIN;
            storage__async_refresh_soon(sa, BACKOFF_MIN_MS);
        }
    }
    sa->in_flight--;
    cmd->fn(cmd->priv, status, status == -EAGAIN ? NULL : r);
    free(cmd);
}

/* Sends a formatted command; fn fires exactly once unless this returns non-zero. */
static int send_formatted(storage_async_t *sa, int which, storage__reply_fn fn, void *priv,
                          const char *formatted, size_t len)
{
    if (sa->closing)
        return -ECANCELED;
    aconn_t *c = route(sa, which, storage_command_slot(formatted, len));
    if (!c || !c->ac || !c->connected)
        return -EAGAIN;
    acmd_t *cmd = malloc(sizeof(*cmd) + len);
    if (!cmd)
        return -ENOMEM;
    *cmd = (acmd_t){.sa = sa, .fn = fn, .priv = priv, .which = which, .len = len};
    memcpy(cmd->cmd, formatted, len);
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

static void group_reply(void *priv, int status, redisReply *r)
{
    (void)r;
    storage__group_t *g = priv;
    if (status && !g->status)
        g->status = status;
    storage__group_unref(g);
}

static void group_send(storage__group_t *g, char *cmd, int len)
{
    if (len < 0) {
        g->status = -ENOMEM;
        return;
    }
    int rc = send_formatted(g->sa, STORAGE__WRITER, group_reply, g, cmd, (size_t)len);
    redisFreeCommand(cmd);
    if (rc)
        g->status = rc;
    else
        g->pending++;
}

void storage__group_add(storage__group_t *g, const char *fmt, ...)
{
    if (g->status)
        return;
    va_list ap;
    va_start(ap, fmt);
    char *cmd = NULL;
    int len = redisvFormatCommand(&cmd, fmt, ap);
    va_end(ap);
    group_send(g, cmd, len);
}

void storage__group_add_argv(storage__group_t *g, int argc, const char **argv)
{
    if (g->status)
        return;
    char *cmd = NULL;
    int len = redisFormatCommandArgv(&cmd, argc, argv, NULL);
    group_send(g, cmd, len);
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

/* ---- one script call per node ---------------------------------------------------------------- */

void storage__group_eval_by_node(storage__group_t *g, const char *script, const char *key_fmt,
                                 const uint64_t *users, size_t n, int nargs, const char **args)
{
    storage_async_t *sa = g->sa;
    int *node = malloc((n ? n : 1) * sizeof(*node));
    bool *sent = calloc(n ? n : 1, sizeof(*sent));
    const char **argv = malloc((n + (size_t)nargs + 6) * sizeof(*argv));
    char (*keys)[40] = malloc((n ? n : 1) * sizeof(*keys));
    if (!node || !sent || !argv || !keys) {
        if (!g->status)
            g->status = -ENOMEM;
        n = 0;
    }
    for (size_t i = 0; i < n; i++) {
        node[i] = storage__async_user_node(sa, users[i]);
        snprintf(keys[i], sizeof(keys[i]), key_fmt, (ull)users[i]);
    }
    for (size_t first = 0; first < n; first++) {
        if (sent[first])
            continue;
        char count[24], channel[32];
        size_t a = 0, k = 0;
        argv[a++] = "EVAL";
        argv[a++] = script;
        argv[a++] = "1";
        argv[a++] = keys[first]; /* declared, so the call is routed (and redirected) by it */
        argv[a++] = count;
        for (size_t i = first; i < n; i++)
            if (node[i] == node[first]) {
                argv[a++] = keys[i];
                sent[i] = true;
                k++;
            }
        snprintf(count, sizeof(count), "%zu", k);
        for (int i = 0; i < nargs; i++)
            argv[a++] = args[i];
        storage__live_channel(sa->cfg, node[first], channel, sizeof(channel));
        argv[a++] = channel;
        storage__group_add_argv(g, (int)a, argv);
    }
    free(node);
    free(sent);
    free(argv);
    free(keys);
}
