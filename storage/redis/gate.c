/* storage/redis/gate.c -- a check that rides on the calling thread's next reading batch.
 *
 * The request path's rate check (storage/rate_limit.c) would cost a round trip of its own
 * before every request. A request's first batch usually reads (a page of ids, a post, an
 * existence check), and a read may be dropped: so the check is appended to it and both go
 * in one pipeline. A batch that writes must not run before the check has passed, so there
 * the check goes alone first. The gate belongs to the running request -- its fiber, or its
 * thread outside fibers -- because a request's code need not know a gate exists.
 */
#include "storage/redis/redis_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local storage_redis_gate_t *thread_armed;

/* Where the running task keeps its gate: a fiber's own (a thread runs many requests' fibers
 * in turn), or the thread's. */
static storage_redis_gate_t **armed_slot(void)
{
    storage_redis_fiber_t *f = storage_redis__fiber_current();
    return f ? storage_redis__fiber_gate(f) : &thread_armed;
}

int storage_redis_gate_init(storage_redis_gate_t *g, storage_redis_t *client, int argc,
                            const char **argv, bool (*judge)(void *, const redisReply *),
                            void *priv)
{
    memset(g, 0, sizeof(*g));
    char *cmd = NULL;
    int len = redisFormatCommandArgv(&cmd, argc, argv, NULL);
    if (len < 0 || !cmd)
        return -ENOMEM;
    *g = (storage_redis_gate_t){.client = client,
                                .cmd = cmd,
                                .len = (size_t)len,
                                .state = STORAGE_REDIS_GATE_PENDING,
                                .judge = judge,
                                .priv = priv};
    return 0;
}

void storage_redis_gate_arm(storage_redis_gate_t *g)
{
    *armed_slot() = g;
}

static void judge(storage_redis_gate_t *g, const redisReply *r)
{
    g->state = g->judge(g->priv, r) ? STORAGE_REDIS_GATE_OPEN : STORAGE_REDIS_GATE_SHUT;
}

/* The gate's command alone, in a batch of its own (no gate is armed while it runs). */
static void run_alone(storage_redis_gate_t *g)
{
    storage_redis_gate_t **slot = armed_slot();
    storage_redis_gate_t *was = *slot;
    *slot = NULL;
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, g->client);
    storage_redis__batch_push_copy(&b, g->cmd, g->len);
    int rc = storage_redis_batch_run(&b);
    judge(g, rc == 0 ? b.r[0] : NULL);
    storage_redis_batch_free(&b);
    *armed_slot() = was;
}

storage_redis_gate_state_t storage_redis_gate_settle(storage_redis_gate_t *g)
{
    if (g->state == STORAGE_REDIS_GATE_PENDING)
        run_alone(g);
    storage_redis_gate_t **slot = armed_slot();
    if (*slot == g)
        *slot = NULL;
    return g->state;
}

void storage_redis_gate_free(storage_redis_gate_t *g)
{
    storage_redis_gate_t **slot = armed_slot();
    if (*slot == g)
        *slot = NULL;
    redisFreeCommand(g->cmd);
    g->cmd = NULL;
}

/* ---- the batch runner's side -------------------------------------------------------------- */

static bool batch_reads_only(const storage_redis_batch_t *b)
{
    for (size_t i = 0; i < b->n; i++)
        if (!storage_command_reads_only(b->cmds[i], b->lens[i]))
            return false;
    return true;
}

int storage_redis__gate_before(storage_redis_batch_t *b, bool *rides)
{
    *rides = false;
    storage_redis_gate_t *g = *armed_slot();
    if (!g || g->client != b->client || b->err)
        return 0;
    if (g->state == STORAGE_REDIS_GATE_PENDING) {
        if (batch_reads_only(b)) {
            storage_redis__batch_push_copy(b, g->cmd, g->len);
            *rides = !b->err;
            return b->err;
        }
        run_alone(g);
    }
    return g->state == STORAGE_REDIS_GATE_SHUT ? -ECANCELED : 0;
}

int storage_redis__gate_after(storage_redis_batch_t *b, int rc)
{
    storage_redis_gate_t *g = *armed_slot();
    size_t last = b->n - 1;
    judge(g, rc == 0 ? b->r[last] : NULL);
    if (b->r && b->r[last]) {
        freeReplyObject(b->r[last]);
        b->r[last] = NULL;
    }
    redisFreeCommand(b->cmds[last]);
    b->n = last;
    return rc == 0 && g->state == STORAGE_REDIS_GATE_SHUT ? -ECANCELED : rc;
}
