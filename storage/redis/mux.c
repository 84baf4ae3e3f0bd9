/* storage/redis/mux.c -- shared pipelines: the commands of many parked request tasks go to
 * each node on one connection, in one write, and come back in one read.
 *
 * One I/O thread per client runs a libuv loop. A task's batch arrives as one pipe per node
 * (batch.c); the loop appends it to that node's connection, writes whatever has gathered
 * since its last turn in one go, and hands each pipe its replies in order (Redis answers a
 * connection's commands in the order sent). A busy server thus pays Redis' per-read and
 * per-write cost once for dozens of requests, not once each, and no HTTP thread waits.
 *
 * The connections come from pool.c's acquire (in libuv's thread pool, since connecting
 * blocks), so backoff, AUTH/SELECT and the breaker are the synchronous client's. The
 * contract of storage_redis_batch_run holds: a pipe that never left is "unreachable"
 * (-ENOTCONN upstairs); one whose connection died after it left is replayed once on a fresh
 * connection if that connection had worked (it answered before, or came from the pool: Redis
 * restarted, and every batch is idempotent), else it fails as sent; one unanswered for the command timeout fails as
 * TIMED_OUT with everything else in flight on that connection, whose node turns suspect.
 */
#include "storage/redis/redis_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#define TICK_MS 20 /* how often pipes are checked against the command timeout */

typedef struct mux_s mux_t;

/* One node's shared connection and its pipes. */
typedef struct mconn_s {
    mux_t *mux;
    int node;
    storage_redis__conn_t *conn; /* NULL: none (connecting, or not needed yet) */
    bool connecting;
    bool fresh;      /* opened for the mux, not taken from the pool's idle ones */
    bool answered;   /* has answered a command since */
    uv_poll_t *poll; /* heap: its close completes after the connection is gone */
    int events;
    storage_redis__pipe_t *wait_head, *wait_tail; /* not written yet */
    storage_redis__pipe_t *fly_head, *fly_tail;   /* written, replies pending, in order */
} mconn_t;

struct mux_s {
    storage_redis_t *s;
    uv_loop_t loop;
    uv_async_t wake;
    uv_timer_t tick;
    uv_thread_t thread;
    pthread_mutex_t mu; /* guards the inbox and stopping */
    storage_redis__pipe_t *in_head, *in_tail;
    bool stopping;
    mconn_t conn[STORAGE_REDIS_MAX_NODES];
};

/* ---- pipe lists --------------------------------------------------------------------------- */

static void push(storage_redis__pipe_t **head, storage_redis__pipe_t **tail,
                 storage_redis__pipe_t *p)
{
    p->next = NULL;
    if (*tail)
        (*tail)->next = p;
    else
        *head = p;
    *tail = p;
}

static storage_redis__pipe_t *take_all(storage_redis__pipe_t **head, storage_redis__pipe_t **tail)
{
    storage_redis__pipe_t *p = *head;
    *head = *tail = NULL;
    return p;
}

static void drop_replies(storage_redis__pipe_t *p)
{
    for (size_t i = 0; i < p->n; i++)
        if (p->replies[i]) {
            freeReplyObject(p->replies[i]);
            p->replies[i] = NULL;
        }
    p->got = 0;
}

static void complete(storage_redis__pipe_t *p, storage_redis__conn_end_t end)
{
    p->end = end;
    if (end != STORAGE_REDIS__CONN_OK)
        drop_replies(p);
    p->done(p);
}

/* Fails the pipes waiting for a connection: none of them left. */
static void refuse_waiting(mconn_t *mc)
{
    storage_redis__pipe_t *p = take_all(&mc->wait_head, &mc->wait_tail);
    while (p) {
        storage_redis__pipe_t *next = p->next;
        p->unreachable = true;
        complete(p, STORAGE_REDIS__CONN_DEAD);
        p = next;
    }
}

/* ---- one node's connection ---------------------------------------------------------------- */

static void connect_node(mconn_t *mc);
static void on_poll(uv_poll_t *h, int status, int events);

static void on_poll_closed(uv_handle_t *h)
{
    free(h);
}

static void set_events(mconn_t *mc, int events)
{
    if (mc->events != events && mc->poll) {
        mc->events = events;
        uv_poll_start(mc->poll, events, on_poll);
    }
}

/* The connection is gone (died, or timed out): settles its pipes and reconnects for the
 * ones still waiting. */
static void lose(mconn_t *mc, storage_redis__conn_end_t end)
{
    if (mc->poll) {
        uv_close((uv_handle_t *)mc->poll, on_poll_closed); /* takes it out of epoll now */
        mc->poll = NULL;
    }
    /* Died, not stuck, and known to have worked (it answered, or was a pooled one Redis may
     * have dropped while idle): Redis restarted, and a fresh connection will do. */
    bool worked = mc->answered || !mc->fresh;
    bool replay = end == STORAGE_REDIS__CONN_DEAD && worked;
    storage_redis__release(mc->mux->s, mc->node, mc->conn, !worked, end);
    mc->conn = NULL;
    mc->events = 0;
    mc->answered = false;
    storage_redis__pipe_t *p = take_all(&mc->fly_head, &mc->fly_tail);
    while (p) {
        storage_redis__pipe_t *next = p->next;
        p->sent = true;
        if (replay && p->replays == 0) {
            p->replays++;
            drop_replies(p);
            push(&mc->wait_head, &mc->wait_tail, p);
        } else {
            complete(p, end);
        }
        p = next;
    }
    if (mc->wait_head && !mc->mux->stopping)
        connect_node(mc);
}

/* Writes what has gathered; asks for writability while some is left. */
static void flush_out(mconn_t *mc)
{
    int done = 0;
    if (redisBufferWrite(mc->conn->c, &done) != REDIS_OK) {
        lose(mc, STORAGE_REDIS__CONN_DEAD);
        return;
    }
    set_events(mc, UV_READABLE | (done ? 0 : UV_WRITABLE));
}

/* Appends the waiting pipes to the connection and writes them. */
static void send_waiting(mconn_t *mc)
{
    if (!mc->conn || !mc->wait_head)
        return;
    uint64_t deadline = storage_redis__monotonic_ms() + (uint64_t)mc->mux->s->command_timeout_ms;
    storage_redis__pipe_t *p = take_all(&mc->wait_head, &mc->wait_tail);
    while (p) {
        storage_redis__pipe_t *next = p->next;
        for (size_t i = 0; i < p->n; i++)
            redisAppendFormattedCommand(mc->conn->c, p->cmds[i], p->lens[i]);
        p->deadline_ms = deadline;
        atomic_fetch_add_explicit(&mc->mux->s->pipelines, 1, memory_order_relaxed);
        push(&mc->fly_head, &mc->fly_tail, p);
        p = next;
    }
    flush_out(mc);
}

/* Hands each reply to the oldest pipe in flight. */
static void read_in(mconn_t *mc)
{
    if (redisBufferRead(mc->conn->c) != REDIS_OK) {
        lose(mc, STORAGE_REDIS__CONN_DEAD);
        return;
    }
    bool any = false;
    for (;;) {
        void *reply = NULL;
        if (redisGetReplyFromReader(mc->conn->c, &reply) != REDIS_OK) {
            lose(mc, STORAGE_REDIS__CONN_DEAD);
            return;
        }
        if (!reply)
            break;
        storage_redis__pipe_t *p = mc->fly_head;
        if (!p) { /* an answer nobody asked for: the stream cannot be trusted */
            freeReplyObject(reply);
            lose(mc, STORAGE_REDIS__CONN_DEAD);
            return;
        }
        p->replies[p->got++] = reply;
        if (p->got == p->n) {
            mc->fly_head = p->next;
            if (!mc->fly_head)
                mc->fly_tail = NULL;
            complete(p, STORAGE_REDIS__CONN_OK);
        }
        any = true;
    }
    if (any && !mc->answered) {
        mc->answered = true;
        storage_redis__node_answered(mc->mux->s, mc->node, mc->conn);
    }
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    mconn_t *mc = h->data;
    if (status < 0) {
        lose(mc, STORAGE_REDIS__CONN_DEAD);
        return;
    }
    if (events & UV_WRITABLE)
        flush_out(mc);
    if (mc->conn && (events & UV_READABLE))
        read_in(mc);
}

typedef struct connect_job_s {
    uv_work_t work;
    mconn_t *mc;
    storage_redis__conn_t *conn;
    bool fresh;
} connect_job_t;

static void connect_work(uv_work_t *w)
{
    connect_job_t *j = w->data;
    j->conn = storage_redis__acquire(j->mc->mux->s, j->mc->node, &j->fresh);
}

static void connect_done(uv_work_t *w, int status)
{
    (void)status;
    connect_job_t *j = w->data;
    mconn_t *mc = j->mc;
    storage_redis__conn_t *conn = j->conn;
    bool fresh = j->fresh;
    free(j);
    mc->connecting = false;
    int fd = conn ? conn->c->fd : -1;
    if (conn && !mc->mux->stopping && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == 0) {
        mc->poll = malloc(sizeof(*mc->poll));
        if (mc->poll && uv_poll_init(&mc->mux->loop, mc->poll, fd) == 0) {
            conn->c->flags &= ~REDIS_BLOCK;
            mc->poll->data = mc;
            mc->conn = conn;
            mc->fresh = fresh;
            set_events(mc, UV_READABLE);
            send_waiting(mc);
            return;
        }
        free(mc->poll);
        mc->poll = NULL;
    }
    if (conn)
        storage_redis__release(mc->mux->s, mc->node, conn, true, STORAGE_REDIS__CONN_DEAD);
    refuse_waiting(mc); /* the node is out of reach for now */
}

static void connect_node(mconn_t *mc)
{
    if (mc->connecting || mc->conn)
        return;
    connect_job_t *j = calloc(1, sizeof(*j));
    if (!j)
        return; /* retried with the next pipe */
    j->mc = mc;
    j->work.data = j;
    mc->connecting = true;
    if (uv_queue_work(&mc->mux->loop, &j->work, connect_work, connect_done) != 0) {
        mc->connecting = false;
        free(j);
    }
}

/* ---- the loop ----------------------------------------------------------------------------- */

typedef struct timer_job_s {
    uv_timer_t timer;
    storage_redis__pipe_t *p;
} timer_job_t;

static void on_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

static void on_timer(uv_timer_t *t)
{
    timer_job_t *j = t->data;
    complete(j->p, STORAGE_REDIS__CONN_OK);
    uv_close((uv_handle_t *)&j->timer, on_timer_closed);
}

typedef struct work_job_s {
    uv_work_t work;
    storage_redis__pipe_t *p;
} work_job_t;

static void on_work(uv_work_t *w)
{
    work_job_t *j = w->data;
    j->p->work(j->p->work_arg);
}

static void on_work_done(uv_work_t *w, int status)
{
    (void)status;
    work_job_t *j = w->data;
    complete(j->p, STORAGE_REDIS__CONN_OK);
    free(j);
}

static void start(mux_t *m, storage_redis__pipe_t *p)
{
    if (p->kind == STORAGE_REDIS__PIPE_AFTER) {
        timer_job_t *j = malloc(sizeof(*j));
        if (!j || uv_timer_init(&m->loop, &j->timer) != 0) {
            free(j);
            complete(p, STORAGE_REDIS__CONN_OK); /* a pause cut short */
            return;
        }
        j->p = p;
        j->timer.data = j;
        uv_timer_start(&j->timer, on_timer, p->after_ms, 0);
    } else if (p->kind == STORAGE_REDIS__PIPE_WORK) {
        work_job_t *j = malloc(sizeof(*j));
        if (j) {
            j->p = p;
            j->work.data = j;
        }
        if (!j || uv_queue_work(&m->loop, &j->work, on_work, on_work_done) != 0) {
            free(j);
            p->work(p->work_arg); /* on this thread, then */
            complete(p, STORAGE_REDIS__CONN_OK);
        }
    } else {
        mconn_t *mc = &m->conn[p->node];
        push(&mc->wait_head, &mc->wait_tail, p);
        if (mc->conn)
            send_waiting(mc);
        else
            connect_node(mc);
    }
}

static void close_all(mux_t *m)
{
    uv_close((uv_handle_t *)&m->wake, NULL);
    uv_close((uv_handle_t *)&m->tick, NULL);
    for (int i = 0; i < STORAGE_REDIS_MAX_NODES; i++) {
        mconn_t *mc = &m->conn[i];
        if (mc->conn)
            lose(mc, STORAGE_REDIS__CONN_DEAD); /* none is in flight at shutdown */
        refuse_waiting(mc);
    }
}

static void on_wake(uv_async_t *a)
{
    mux_t *m = a->data;
    pthread_mutex_lock(&m->mu);
    storage_redis__pipe_t *p = take_all(&m->in_head, &m->in_tail);
    bool stopping = m->stopping;
    pthread_mutex_unlock(&m->mu);
    while (p) {
        storage_redis__pipe_t *next = p->next;
        start(m, p);
        p = next;
    }
    if (stopping)
        close_all(m);
}

static void on_tick(uv_timer_t *t)
{
    mux_t *m = t->data;
    uint64_t now = storage_redis__monotonic_ms();
    for (int i = 0; i < STORAGE_REDIS_MAX_NODES; i++) {
        mconn_t *mc = &m->conn[i];
        if (mc->conn && mc->fly_head && now >= mc->fly_head->deadline_ms)
            lose(mc, STORAGE_REDIS__CONN_TIMED_OUT);
    }
}

static void run(void *arg)
{
    mux_t *m = arg;
    uv_run(&m->loop, UV_RUN_DEFAULT);
}

static mux_t *mux_new(storage_redis_t *s)
{
    mux_t *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->s = s;
    for (int i = 0; i < STORAGE_REDIS_MAX_NODES; i++)
        m->conn[i] = (mconn_t){.mux = m, .node = i};
    if (uv_loop_init(&m->loop) != 0) {
        free(m);
        return NULL;
    }
    pthread_mutex_init(&m->mu, NULL);
    uv_async_init(&m->loop, &m->wake, on_wake);
    m->wake.data = m;
    uv_timer_init(&m->loop, &m->tick);
    m->tick.data = m;
    uv_timer_start(&m->tick, on_tick, TICK_MS, TICK_MS);
    if (uv_thread_create(&m->thread, run, m) != 0) {
        uv_close((uv_handle_t *)&m->wake, NULL);
        uv_close((uv_handle_t *)&m->tick, NULL);
        uv_run(&m->loop, UV_RUN_DEFAULT);
        uv_loop_close(&m->loop);
        pthread_mutex_destroy(&m->mu);
        free(m);
        return NULL;
    }
    return m;
}

/* ---- the client's side -------------------------------------------------------------------- */

void storage_redis__mux_send(storage_redis_t *s, storage_redis__pipe_t *p)
{
    pthread_mutex_lock(&s->mu);
    if (!s->mux)
        s->mux = mux_new(s);
    mux_t *m = s->mux;
    pthread_mutex_unlock(&s->mu);
    if (!m) {
        p->unreachable = true;
        complete(p, STORAGE_REDIS__CONN_DEAD);
        return;
    }
    pthread_mutex_lock(&m->mu);
    bool stopping = m->stopping;
    if (!stopping)
        push(&m->in_head, &m->in_tail, p);
    pthread_mutex_unlock(&m->mu);
    if (stopping) {
        p->unreachable = true;
        complete(p, STORAGE_REDIS__CONN_DEAD);
        return;
    }
    uv_async_send(&m->wake);
}

void storage_redis__mux_destroy(storage_redis_t *s)
{
    mux_t *m = s->mux;
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    m->stopping = true;
    pthread_mutex_unlock(&m->mu);
    uv_async_send(&m->wake);
    uv_thread_join(&m->thread);
    uv_loop_close(&m->loop);
    pthread_mutex_destroy(&m->mu);
    free(m);
    s->mux = NULL;
}
