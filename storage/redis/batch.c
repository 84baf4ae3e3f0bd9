/* storage/redis/batch.c -- the batch runner: each command to its slot's node, one pipeline
 * per node, redirects followed.
 *
 * A batch is split per node (one pipeline each); MOVED and ASK replies send the command on
 * to the node named, TRYAGAIN and CLUSTERDOWN (a failover in progress) are retried briefly,
 * for up to ROUNDS_MAX rounds. A barrier holds the commands after it until those before it
 * have succeeded, when they span nodes (on one node, one pipeline's order sees to that).
 *
 * A failed batch says whether any of it was sent (redis.h): -ENOTCONN when nothing was (a
 * node unreachable, backing off or behind its open breaker, checked for every node before
 * the first pipeline goes), -ETIMEDOUT when a node that was sent commands did not answer.
 * A pooled connection that dies at once is replayed on a fresh one; a timeout is not (the
 * fresh connection would wait out the timeout again on a Redis that answers nothing).
 */
#include "storage/redis/redis_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BATCH_INLINE 8 /* commands room is first made for */

/* ---- batches ------------------------------------------------------------------------- */

void storage_redis_batch_init(storage_redis_batch_t *b, storage_redis_t *client)
{
    memset(b, 0, sizeof(*b));
    b->client = client;
}

static bool batch_reserve(storage_redis_batch_t *b)
{
    if (b->n < b->cap)
        return true;
    size_t cap = b->cap ? b->cap * 2 : BATCH_INLINE;
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

static void batch_push(storage_redis_batch_t *b, char *cmd, int len)
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

void storage_redis_batch_add(storage_redis_batch_t *b, const char *fmt, ...)
{
    char *cmd = NULL;
    va_list ap;
    va_start(ap, fmt);
    int len = redisvFormatCommand(&cmd, fmt, ap);
    va_end(ap);
    batch_push(b, cmd, len);
}

void storage_redis__batch_push_copy(storage_redis_batch_t *b, const char *cmd, size_t len)
{
    char *copy = malloc(len + 1); /* freed by redisFreeCommand, which is free() */
    if (copy) {
        memcpy(copy, cmd, len);
        copy[len] = '\0';
    }
    batch_push(b, copy, (int)len);
}

void storage_redis_batch_addargv(storage_redis_batch_t *b, int argc, const char **argv,
                                 const size_t *lens)
{
    char *cmd = NULL;
    int len = redisFormatCommandArgv(&cmd, argc, argv, lens);
    batch_push(b, cmd, len);
}

static void free_replies(storage_redis_batch_t *b)
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

#define ROUNDS_MAX 6        /* first try plus redirects and retries */
#define CLUSTER_PAUSE_MS 50 /* between rounds while the cluster says TRYAGAIN/CLUSTERDOWN */

static const char asking_cmd[] = "*1\r\n$6\r\nASKING\r\n";

static bool pending_on(const route_t *rt, int node, int round)
{
    return !rt->done && !rt->held && rt->node == node && rt->sent != round;
}

/* Sends node's pending commands on c in one pipeline and reads their replies; *sent once
 * the pipeline may have left (the first read writes it). How the connection ended. */
static storage_redis__conn_end_t run_on(storage_redis_batch_t *b, route_t *rt, int node, int round,
                                        redisContext *c, bool *sent)
{
    atomic_fetch_add_explicit(&b->client->pipelines, 1, memory_order_relaxed);
    for (size_t i = 0; i < b->n; i++) {
        if (!pending_on(&rt[i], node, round))
            continue;
        if (rt[i].asking &&
            redisAppendFormattedCommand(c, asking_cmd, sizeof(asking_cmd) - 1) != REDIS_OK)
            return STORAGE_REDIS__CONN_DEAD;
        if (redisAppendFormattedCommand(c, b->cmds[i], b->lens[i]) != REDIS_OK)
            return STORAGE_REDIS__CONN_DEAD;
    }
    *sent = true;
    for (size_t i = 0; i < b->n; i++) {
        if (!pending_on(&rt[i], node, round))
            continue;
        void *reply = NULL;
        if (rt[i].asking) {
            if (redisGetReply(c, &reply) != REDIS_OK || !reply)
                return storage_redis__conn_failure(c, errno);
            freeReplyObject(reply);
        }
        if (redisGetReply(c, &reply) != REDIS_OK || !reply)
            return storage_redis__conn_failure(c, errno);
        if (b->r[i])
            freeReplyObject(b->r[i]);
        b->r[i] = reply;
        rt[i].sent = round;
    }
    return STORAGE_REDIS__CONN_OK;
}

/* Runs node's share, replaying it once on a fresh connection when a pooled one was dead
 * (every batch is idempotent), never after a timeout. false when the node cannot be reached
 * or did not answer. */
static bool run_node(storage_redis_batch_t *b, route_t *rt, int node, int round, bool *sent)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        bool fresh = false;
        storage_redis__conn_t *c = storage_redis__acquire(b->client, node, &fresh);
        if (!c)
            return false;
        storage_redis__conn_end_t end = run_on(b, rt, node, round, c->c, sent);
        storage_redis__release(b->client, node, c, fresh, end);
        if (end == STORAGE_REDIS__CONN_OK)
            return true;
        if (fresh || end == STORAGE_REDIS__CONN_TIMED_OUT)
            break; /* the node is in trouble, not just a stale connection */
    }
    return false;
}

typedef struct round_s {
    bool refresh; /* the slot map is stale */
    bool pause;   /* the cluster asked us to wait */
} round_t;

/* Keeps a reply, or routes its command again after a redirect or a transient refusal. */
static void settle(storage_redis_t *s, route_t *rt, redisReply **r, round_t *next)
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
            node = storage_redis__topology_moved(s, slot, host, port);
            next->refresh = true;
        } else if (kind == STORAGE_REDIRECT_ASK) {
            pthread_mutex_lock(&s->mu);
            node = storage_redis__node_find_or_add(s, host, port);
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

/* ---- in a fiber: every node's share at once, on the shared connections (mux.c) ---------- */

typedef struct parked_s {
    storage_redis_fiber_t *fiber;
    storage_redis_t *client;
    storage_redis__pipe_t *pipes;
    size_t n;
    atomic_size_t pending;
} parked_t;

static void parked_done(storage_redis__pipe_t *p)
{
    parked_t *w = p->arg;
    if (atomic_fetch_sub(&w->pending, 1) == 1)
        storage_redis__fiber_wake(w->fiber);
}

/* On the fiber's owner, once it can be woken. The owner's thread is the only one that can
 * run the fiber on, so w (on the fiber's stack) outlives this loop. */
static void parked_send(void *arg)
{
    parked_t *w = arg;
    for (size_t i = 0; i < w->n; i++)
        storage_redis__mux_send(w->client, &w->pipes[i]);
}

/* Parks the running fiber until every one of the n pipes is done. */
static void park_for(storage_redis_t *client, storage_redis__pipe_t *pipes, size_t n)
{
    if (storage_redis__fiber_cancelled()) {
        for (size_t i = 0; i < n; i++) {
            pipes[i].unreachable = true;
            pipes[i].end = STORAGE_REDIS__CONN_DEAD;
        }
        return;
    }
    parked_t w = {
        .fiber = storage_redis__fiber_current(), .client = client, .pipes = pipes, .n = n};
    atomic_init(&w.pending, n);
    for (size_t i = 0; i < n; i++) {
        pipes[i].done = parked_done;
        pipes[i].arg = &w;
    }
    storage_redis__fiber_park(parked_send, &w);
}

static void pause_parked(storage_redis_t *client, int ms)
{
    storage_redis__pipe_t p = {.kind = STORAGE_REDIS__PIPE_AFTER, .after_ms = (uint64_t)ms};
    park_for(client, &p, 1);
}

typedef struct refresh_s {
    storage_redis_t *client;
    int min_interval_ms, rc;
} refresh_t;

static void refresh_work(void *arg)
{
    refresh_t *r = arg;
    r->rc = storage_redis__topology_refresh(r->client, r->min_interval_ms);
}

/* Learns the slot map; in a fiber, on libuv's thread pool (it connects and waits). */
static int refresh(storage_redis_t *client, int min_interval_ms)
{
    if (!storage_redis__fiber_current())
        return storage_redis__topology_refresh(client, min_interval_ms);
    refresh_t r = {client, min_interval_ms, -EAGAIN};
    storage_redis__pipe_t p = {
        .kind = STORAGE_REDIS__PIPE_WORK, .work = refresh_work, .work_arg = &r};
    park_for(client, &p, 1);
    return r.rc;
}

/* The fiber's version of one round of run_node calls: one pipe per node, all sent at once.
 * Marks the nodes that failed in unreachable. */
static int run_nodes_parked(storage_redis_batch_t *b, route_t *rt, int round, bool *sent,
                            bool *unreachable)
{
    int nodes[STORAGE_REDIS_MAX_NODES];
    size_t counts[STORAGE_REDIS_MAX_NODES] = {0}, n_nodes = 0, total = 0;
    for (size_t i = 0; i < b->n; i++) {
        int node = rt[i].node;
        if (!pending_on(&rt[i], node, round) || unreachable[node])
            continue;
        if (!counts[node])
            nodes[n_nodes++] = node;
        counts[node] += rt[i].asking ? 2 : 1;
        total += rt[i].asking ? 2 : 1;
    }
    if (!n_nodes)
        return 0;
    storage_redis__pipe_t *pipes = calloc(n_nodes, sizeof(*pipes));
    char **cmds = malloc(total * sizeof(*cmds));
    size_t *lens = malloc(total * sizeof(*lens));
    redisReply **replies = calloc(total, sizeof(*replies));
    if (!pipes || !cmds || !lens || !replies) {
        free(pipes), free(cmds), free(lens), free(replies);
        return -ENOMEM;
    }
    size_t at = 0;
    for (size_t k = 0; k < n_nodes; k++) {
        storage_redis__pipe_t *p = &pipes[k];
        *p = (storage_redis__pipe_t){.kind = STORAGE_REDIS__PIPE_COMMANDS,
                                     .node = nodes[k],
                                     .cmds = cmds + at,
                                     .lens = lens + at,
                                     .replies = replies + at};
        for (size_t i = 0; i < b->n; i++) {
            if (rt[i].node != nodes[k] || !pending_on(&rt[i], nodes[k], round))
                continue;
            if (rt[i].asking) {
                p->cmds[p->n] = (char *)asking_cmd; /* only read */
                p->lens[p->n++] = sizeof(asking_cmd) - 1;
            }
            p->cmds[p->n] = b->cmds[i];
            p->lens[p->n++] = b->lens[i];
        }
        at += p->n;
    }
    park_for(b->client, pipes, n_nodes);
    for (size_t k = 0; k < n_nodes; k++) {
        storage_redis__pipe_t *p = &pipes[k];
        *sent |= !p->unreachable;
        if (p->end != STORAGE_REDIS__CONN_OK) {
            unreachable[p->node] = true;
            continue;
        }
        size_t j = 0;
        for (size_t i = 0; i < b->n; i++) {
            if (rt[i].node != p->node || !pending_on(&rt[i], p->node, round))
                continue;
            if (rt[i].asking)
                freeReplyObject(p->replies[j++]);
            if (b->r[i])
                freeReplyObject(b->r[i]);
            b->r[i] = p->replies[j++];
            rt[i].sent = round;
        }
    }
    free(pipes), free(cmds), free(lens), free(replies);
    return 0;
}

/* Runs the rounds for every command not yet done or held: 0 when none is left over, else
 * -ENOTCONN or -ETIMEDOUT (a node failed: *sent tells which) or -EAGAIN (the cluster kept
 * asking to try again). */
static int run_rounds(storage_redis_batch_t *b, route_t *rt, bool *sent)
{
    size_t n = b->n;
    bool left = true;
    for (int round = 0; left && round < ROUNDS_MAX; round++) {
        round_t next = {0};
        bool unreachable[STORAGE_REDIS_MAX_NODES] = {0};
        /* A node whose breaker is open fails the batch before anything goes anywhere. */
        for (size_t i = 0; i < n; i++)
            if (pending_on(&rt[i], rt[i].node, round) &&
                storage_redis__breaker_open(b->client, rt[i].node))
                return *sent ? -ETIMEDOUT : -ENOTCONN;
        if (storage_redis__fiber_current()) {
            int rc = run_nodes_parked(b, rt, round, sent, unreachable);
            if (rc)
                return rc;
            for (int k = 0; k < STORAGE_REDIS_MAX_NODES; k++)
                next.refresh |= unreachable[k];
        } else {
            for (size_t i = 0; i < n; i++)
                if (pending_on(&rt[i], rt[i].node, round) && !unreachable[rt[i].node] &&
                    !run_node(b, rt, rt[i].node, round, sent))
                    unreachable[rt[i].node] = next.refresh = true;
        }
        left = false;
        for (size_t i = 0; i < n; i++) {
            if (rt[i].done || rt[i].held)
                continue;
            if (rt[i].sent == round)
                settle(b->client, &rt[i], &b->r[i], &next);
            left |= !rt[i].done;
        }
        if (!left)
            break;
        if (next.pause && storage_redis__fiber_current())
            pause_parked(b->client, CLUSTER_PAUSE_MS);
        else if (next.pause)
            nanosleep(&(struct timespec){0, CLUSTER_PAUSE_MS * 1000000L}, NULL);
        if (next.refresh && refresh(b->client, 100) == 0)
            for (size_t i = 0; i < n; i++)
                if (!rt[i].done && !rt[i].asking)
                    rt[i].node = storage_redis__topology_node(b->client, rt[i].slot);
        /* A node that failed and still owns a pending command: give up (503) now. */
        for (size_t i = 0; i < n; i++)
            if (!rt[i].done && !rt[i].held && unreachable[rt[i].node])
                return *sent ? -ETIMEDOUT : -ENOTCONN;
    }
    return left ? -EAGAIN : 0;
}

void storage_redis_batch_barrier(storage_redis_batch_t *b)
{
    b->barrier = b->n;
}

static int run_batch(storage_redis_batch_t *b);

static bool topology_known(storage_redis_t *s)
{
    pthread_mutex_lock(&s->mu);
    bool known = s->topology_known;
    pthread_mutex_unlock(&s->mu);
    return known;
}

/* The thread's gate, if one is armed, rides on a reading batch or runs before a writing one
 * (gate.c). */
int storage_redis_batch_run(storage_redis_batch_t *b)
{
    bool rides;
    int rc = storage_redis__gate_before(b, &rides);
    if (rc)
        return rc;
    rc = run_batch(b);
    if (rides)
        rc = storage_redis__gate_after(b, rc);
    if (rc)
        free_replies(b);
    return rc;
}

static int run_batch(storage_redis_batch_t *b)
{
    if (b->err)
        return b->err;
    if (storage_redis__fiber_cancelled())
        return -ECANCELED;
    free_replies(b);
    size_t n = b->n;
    b->r = calloc(n ? n : 1, sizeof(*b->r));
    route_t *rt = calloc(n ? n : 1, sizeof(*rt));
    if (!b->r || !rt) {
        free(rt);
        return -ENOMEM;
    }
    int rc = 0;
    bool one_node = true, sent = false;
    if (storage_redis__fiber_current() && !topology_known(b->client))
        refresh(b->client, 0); /* else topology_node would learn it here, blocking */
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rt[i].slot = storage_command_slot(b->cmds[i], b->lens[i]);
        rt[i].node = storage_redis__topology_node(b->client, rt[i].slot);
        rt[i].sent = -1;
        if (rt[i].node < 0)
            rc = -ENOTCONN; /* the slot map cannot be learnt: nothing was sent */
        one_node &= rt[i].node == rt[0].node;
    }
    /* Behind a barrier that spans nodes, the rest waits for the first part to succeed;
     * on one node the order of one pipeline already sees to that. */
    bool phased = rc == 0 && b->barrier > 0 && b->barrier < n && !one_node;
    for (size_t i = b->barrier; phased && i < n; i++)
        rt[i].held = true;
    if (rc == 0 && n > 0)
        rc = run_rounds(b, rt, &sent);
    if (rc == 0 && phased) {
        bool ok = true;
        for (size_t i = 0; i < b->barrier; i++)
            ok &= !storage_redis_is_error(b->r[i]);
        for (size_t i = b->barrier; ok && i < n; i++)
            rt[i].held = false;
        if (ok)
            rc = run_rounds(b, rt, &sent);
    }
    free(rt);
    if (rc)
        free_replies(b);
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (storage_redis_error_status(b->r[i]) == -ENOSPC)
            atomic_store(&b->client->oom_at_ms, storage_redis__now_ms());
    return rc;
}

void storage_redis_batch_free(storage_redis_batch_t *b)
{
    free_replies(b);
    for (size_t i = 0; i < b->n; i++)
        redisFreeCommand(b->cmds[i]);
    free(b->cmds);
    free(b->lens);
    memset(b, 0, sizeof(*b));
}

int storage_redis_batch_run_checked(storage_redis_batch_t *b)
{
    int rc = storage_redis_batch_run(b);
    for (size_t i = 0; rc == 0 && i < b->n; i++)
        if (storage_redis_is_error(b->r[i]))
            rc = -EIO;
    return rc;
}
