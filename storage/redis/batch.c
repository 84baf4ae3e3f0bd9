/* storage/pool.c -- pools of synchronous hiredis connections, one per node, and the batch
 * runner that sends each command to its slot's node.
 *
 * HTTP threads call Redis synchronously (a loopback round trip is tens of microseconds).
 * Each node's pool keeps up to pool_size idle connections. When a connection breaks, that
 * pool's generation moves on so that every idle connection opened before is dropped instead
 * of failing one request each. Connect attempts back off exponentially (100 ms .. 2 s); in
 * between, callers fail fast with -EAGAIN so requests answer 503 instead of waiting.
 * A batch is split per node (one pipeline each); MOVED and ASK replies send the command on
 * to the node named, TRYAGAIN and CLUSTERDOWN (a failover in progress) are retried briefly.
 */
#include "storage/storage_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


uint64_t storage__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void storage_config_defaults(storage_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->url = "redis://127.0.0.1:6379";
    cfg->pool_size = 64;
    cfg->connect_timeout_ms = 1000;
    cfg->command_timeout_ms = 2000;
    cfg->fanout_shards = 1;
}

storage_t *storage_create(const storage_config_t *cfg)
{
    storage_t *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->pool_size = cfg->pool_size > 0 ? cfg->pool_size : 1;
    s->connect_timeout_ms = cfg->connect_timeout_ms;
    s->command_timeout_ms = cfg->command_timeout_ms;
    s->fanout_shards = cfg->fanout_shards > 0 ? cfg->fanout_shards : 1;
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->refresh_mu, NULL);
    pthread_mutex_init(&s->id_mu, NULL);
    atomic_init(&s->up, false);
    atomic_init(&s->reconnects, 0);
    atomic_init(&s->redirects, 0);
    atomic_init(&s->refreshes, 0);
    atomic_init(&s->node, -1);
    if (storage__parse_url(s, cfg->url ? cfg->url : "") != 0) {
        storage_destroy(s);
        return NULL;
    }
    return s;
}

static void conn_free(storage__conn_t *c)
{
    if (c) {
        redisFree(c->c);
        free(c);
    }
}

void storage_destroy(storage_t *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->n_nodes; i++) {
        for (size_t k = 0; k < s->nodes[i].n_idle; k++)
            conn_free(s->nodes[i].idle[k]);
        free(s->nodes[i].idle);
    }
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->refresh_mu);
    pthread_mutex_destroy(&s->id_mu);
    free(s->password);
    free(s);
}

bool storage_is_up(const storage_t *s)
{
    return atomic_load(&s->up);
}

uint64_t storage_reconnects(const storage_t *s)
{
    return atomic_load(&s->reconnects);
}

/* Returns a connection to node i (*fresh tells whether it was just opened) or NULL when the
 * node is unreachable or we are still backing off from it. */
static storage__conn_t *acquire(storage_t *s, int i, bool *fresh)
{
    storage__node_t *n = &s->nodes[i];
    pthread_mutex_lock(&s->mu);
    while (n->n_idle > 0) {
        storage__conn_t *c = n->idle[--n->n_idle];
        if (c->gen == n->gen) {
            pthread_mutex_unlock(&s->mu);
            *fresh = false;
            return c;
        }
        conn_free(c);
    }
    if (storage__monotonic_ms() < n->next_attempt_ms) {
        pthread_mutex_unlock(&s->mu);
        return NULL;
    }
    unsigned gen = n->gen;
    pthread_mutex_unlock(&s->mu);

    redisContext *rc = storage__connect_node(s, i, s->connect_timeout_ms);
    storage__conn_t *c = rc ? malloc(sizeof(*c)) : NULL;
    pthread_mutex_lock(&s->mu);
    if (!c) {
        if (rc)
            redisFree(rc);
        n->backoff_ms = storage__backoff_next(n->backoff_ms);
        n->next_attempt_ms = storage__monotonic_ms() + (uint64_t)n->backoff_ms;
        atomic_store(&s->up, false);
        pthread_mutex_unlock(&s->mu);
        return NULL;
    }
    if (!atomic_load(&s->up))
        atomic_fetch_add(&s->reconnects, 1);
    n->backoff_ms = 0;
    n->next_attempt_ms = 0;
    atomic_store(&s->up, true);
    pthread_mutex_unlock(&s->mu);
    c->c = rc;
    c->gen = gen;
    *fresh = true;
    return c;
}

static void release(storage_t *s, int i, storage__conn_t *c, bool broken)
{
    storage__node_t *n = &s->nodes[i];
    pthread_mutex_lock(&s->mu);
    if (broken) {
        n->gen++;
        atomic_store(&s->up, false);
    } else if (c->gen == n->gen && n->n_idle < (size_t)s->pool_size) {
        n->idle[n->n_idle++] = c;
        c = NULL;
    }
    pthread_mutex_unlock(&s->mu);
    conn_free(c);
}

/* ---- batches ------------------------------------------------------------------------- */

void storage__batch_init(storage__batch_t *b, storage_t *s)
{
    memset(b, 0, sizeof(*b));
    b->s = s;
}

static bool batch_reserve(storage__batch_t *b)
{
    if (b->n < b->cap)
        return true;
    size_t cap = b->cap ? b->cap * 2 : STORAGE__BATCH_INLINE;
    char **cmds = realloc(b->cmds, cap * sizeof(*cmds));
    if (!cmds)
        return false;
    b->cmds = cmds;
    size_t *lens = realloc(b->lens, cap * sizeof(*lens));
    if (!lens)
        return false;
    b->lens = lens;
    b->cap = cap;
    return true;
}

static void batch_push(storage__batch_t *b, char *cmd, int len)
{
    if (len < 0 || !cmd) {
        b->err = -ENOMEM;
        return;
    }
    if (!batch_reserve(b)) {
        redisFreeCommand(cmd);
        b->err = -ENOMEM;
        return;
    }
    b->cmds[b->n] = cmd;
    b->lens[b->n] = (size_t)len;
    b->n++;
}

void storage__batch_add(storage__batch_t *b, const char *fmt, ...)
{
    char *cmd = NULL;
    va_list ap;
    va_start(ap, fmt);
    int len = redisvFormatCommand(&cmd, fmt, ap);
    va_end(ap);
    batch_push(b, cmd, len);
}

void storage__batch_addargv(storage__batch_t *b, int argc, const char **argv, const size_t *lens)
{
    char *cmd = NULL;
    int len = redisFormatCommandArgv(&cmd, argc, argv, lens);
    batch_push(b, cmd, len);
}

static void free_replies(storage__batch_t *b)
{
    if (!b->r)
        return;
    for (size_t i = 0; i < b->n; i++)
        if (b->r[i])
            freeReplyObject(b->r[i]);
    free(b->r);
    b->r = NULL;
}

/* ---- running a batch: every command to its slot's node, redirects followed ------------- */

/* Where one command of a batch stands while the batch runs. */
typedef struct route_s {
    int slot; /* -1: any node */
    int node;
    bool asking; /* an ASK redirect: the next attempt goes after ASKING */
    bool done;
    bool held; /* behind a barrier whose first part has not succeeded yet */
    int sent;  /* the round it was last sent in */
} route_t;

#define ROUNDS_MAX 6       /* first try plus redirects and retries */
#define CLUSTER_PAUSE_MS 50 /* between rounds while the cluster says TRYAGAIN/CLUSTERDOWN */

static const char asking_cmd[] = "*1\r\n$6\r\nASKING\r\n";

static bool pending_on(const route_t *rt, int node, int round)
{
    return !rt->done && !rt->held && rt->node == node && rt->sent != round;
}

/* Sends node's pending commands on c in one pipeline and reads their replies. false on an
 * I/O error. */
static bool run_on(storage__batch_t *b, route_t *rt, int node, int round, redisContext *c)
{
    for (size_t i = 0; i < b->n; i++) {
        if (!pending_on(&rt[i], node, round))
            continue;
        if (rt[i].asking &&
            redisAppendFormattedCommand(c, asking_cmd, sizeof(asking_cmd) - 1) != REDIS_OK)
            return false;
        if (redisAppendFormattedCommand(c, b->cmds[i], b->lens[i]) != REDIS_OK)
            return false;
    }
    for (size_t i = 0; i < b->n; i++) {
        if (!pending_on(&rt[i], node, round))
            continue;
        void *reply = NULL;
        if (rt[i].asking) {
            if (redisGetReply(c, &reply) != REDIS_OK || !reply)
                return false;
            freeReplyObject(reply);
        }
        if (redisGetReply(c, &reply) != REDIS_OK || !reply)
            return false;
        if (b->r[i])
            freeReplyObject(b->r[i]);
        b->r[i] = reply;
        rt[i].sent = round;
    }
    return true;
}

/* Runs node's share, replaying it once on a fresh connection when a pooled one was dead
 * (every batch is idempotent). false when the node cannot be reached. */
static bool run_node(storage__batch_t *b, route_t *rt, int node, int round)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        bool fresh = false;
        storage__conn_t *c = acquire(b->s, node, &fresh);
        if (!c)
            return false;
        bool ok = run_on(b, rt, node, round, c->c);
        release(b->s, node, c, !ok);
        if (ok)
            return true;
        if (fresh)
            break; /* a connection we just opened failed: the node is in trouble */
    }
    return false;
}

typedef struct round_s {
    bool refresh; /* the slot map is stale */
    bool pause;   /* the cluster asked us to wait */
} round_t;

/* Keeps a reply, or routes its command again after a redirect or a transient refusal. */
static void settle(storage_t *s, route_t *rt, redisReply **r, round_t *next)
{
    if ((*r)->type == REDIS_REPLY_ERROR) {
        int slot, port;
        char host[108];
        storage_redirect_t kind =
            storage_redirect_parse((*r)->str, (*r)->len, &slot, host, sizeof(host), &port);
        int node = -1;
        if (kind != STORAGE_REDIRECT_NONE) {
            atomic_fetch_add(&s->redirects, 1);
            if (!host[0]) /* a node without an endpoint: the one that replied */
                snprintf(host, sizeof(host), "%s", s->nodes[rt->node].host);
        }
        if (kind == STORAGE_REDIRECT_MOVED) {
            node = storage__topology_moved(s, slot, host, port);
            next->refresh = true;
        } else if (kind == STORAGE_REDIRECT_ASK) {
            pthread_mutex_lock(&s->mu);
            node = storage__node_find_or_add(s, host, port);
            pthread_mutex_unlock(&s->mu);
        } else if (strncmp((*r)->str, "TRYAGAIN", 8) == 0 ||
                   strncmp((*r)->str, "CLUSTERDOWN", 11) == 0) {
            next->pause = next->refresh = true;
            return; /* stays pending on its node */
        }
        if (node >= 0) {
            rt->node = node;
            rt->asking = kind == STORAGE_REDIRECT_ASK;
            return;
        }
    }
    rt->done = true;
}

/* Runs the rounds for every command not yet done or held: true when none is left over. */
static bool run_rounds(storage__batch_t *b, route_t *rt)
{
    size_t n = b->n;
    bool left = true;
    for (int round = 0; left && round < ROUNDS_MAX; round++) {
        round_t next = {0};
        bool unreachable[STORAGE__MAX_NODES] = {0};
        for (size_t i = 0; i < n; i++)
            if (pending_on(&rt[i], rt[i].node, round) && !unreachable[rt[i].node] &&
                !run_node(b, rt, rt[i].node, round))
                unreachable[rt[i].node] = next.refresh = true;
        left = false;
        for (size_t i = 0; i < n; i++) {
            if (rt[i].done || rt[i].held)
                continue;
            if (rt[i].sent == round)
                settle(b->s, &rt[i], &b->r[i], &next);
            left |= !rt[i].done;
        }
        if (!left)
            break;
        if (next.pause)
            nanosleep(&(struct timespec){0, CLUSTER_PAUSE_MS * 1000000L}, NULL);
        if (next.refresh && storage__topology_refresh(b->s, 100) == 0)
            for (size_t i = 0; i < n; i++)
                if (!rt[i].done && !rt[i].asking)
                    rt[i].node = storage__topology_node(b->s, rt[i].slot);
        /* A node that failed and still owns a pending command: give up (503) now. */
        for (size_t i = 0; i < n; i++)
            if (!rt[i].done && !rt[i].held && unreachable[rt[i].node])
                return false;
    }
    return !left;
}

void storage__batch_barrier(storage__batch_t *b)
{
    b->barrier = b->n;
}

int storage__batch_run(storage__batch_t *b)
{
    if (b->err)
        return b->err;
    free_replies(b);
    size_t n = b->n;
    b->r = calloc(n ? n : 1, sizeof(*b->r));
    route_t *rt = calloc(n ? n : 1, sizeof(*rt));
    if (!b->r || !rt) {
        free(rt);
        return -ENOMEM;
    }
    int rc = 0;
    bool one_node = true;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rt[i].slot = storage_command_slot(b->cmds[i], b->lens[i]);
        rt[i].node = storage__topology_node(b->s, rt[i].slot);
        rt[i].sent = -1;
        if (rt[i].node < 0)
            rc = -EAGAIN;
        one_node &= rt[i].node == rt[0].node;
    }
    /* Behind a barrier that spans nodes, the rest waits for the first part to succeed;
     * on one node the order of one pipeline already sees to that. */
    bool phased = rc == 0 && b->barrier > 0 && b->barrier < n && !one_node;
    for (size_t i = b->barrier; phased && i < n; i++)
        rt[i].held = true;
    if (rc == 0 && n > 0 && !run_rounds(b, rt))
        rc = -EAGAIN;
    if (rc == 0 && phased) {
        bool ok = true;
        for (size_t i = 0; i < b->barrier; i++)
            ok &= !storage__is_error(b->r[i]);
        for (size_t i = b->barrier; ok && i < n; i++)
            rt[i].held = false;
        if (ok && !run_rounds(b, rt))
            rc = -EAGAIN;
    }
    free(rt);
    if (rc)
        free_replies(b);
    return rc;
}

void storage__batch_free(storage__batch_t *b)
{
    free_replies(b);
    for (size_t i = 0; i < b->n; i++)
        redisFreeCommand(b->cmds[i]);
    free(b->cmds);
    free(b->lens);
    memset(b, 0, sizeof(*b));
}

/* ---- replies ------------------------------------------------------------------------- */

bool storage__is_error(const redisReply *r)
{
    return !r || r->type == REDIS_REPLY_ERROR;
}

int64_t storage__int(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_INTEGER ? (int64_t)r->integer : -1;
}

uint64_t storage__parse_u64(const char *p, size_t n)
{
    if (!p || n == 0 || n > 20)
        return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return 0;
        uint64_t d = (uint64_t)(p[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return 0;
        v = v * 10 + d;
    }
    return v;
}

uint64_t storage__uint_str(const redisReply *r)
{
    if (!r || r->type != REDIS_REPLY_STRING)
        return 0;
    return storage__parse_u64(r->str, r->len);
}

int storage__shard(const storage_t *s, uint64_t user)
{
    return (int)(user % (uint64_t)s->fanout_shards);
}

int storage_ping(storage_t *s)
{
    storage__batch_t b;
    storage__batch_init(&b, s);
    storage__batch_add(&b, "PING");
    int rc = storage__batch_run(&b);
    if (rc == 0 && storage__is_error(b.r[0]))
        rc = -EIO;
    storage__batch_free(&b);
    return rc;
}

int storage_prepare(storage_t *s)
{
    storage__batch_t b;
    storage__batch_init(&b, s);
    for (int i = 0; i < s->fanout_shards; i++)
        storage__batch_add(&b, "XGROUP CREATE " K_FANOUT " " FANOUT_GROUP " 0 MKSTREAM", i);
    int rc = storage__batch_run(&b);
    for (size_t i = 0; rc == 0 && i < b.n; i++)
        if (storage__is_error(b.r[i]) && strncmp(b.r[i]->str, "BUSYGROUP", 9) != 0)
            rc = -EIO;
    storage__batch_free(&b);
    return rc;
}
