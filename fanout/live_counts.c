/* fanout/live_counts.c -- flushing users' counts windows when they are due.
 *
 * A change of a user's unread count inside their counts window (storage/: SCRIPT_COUNTS) is
 * held back, and "counts_due <ms>" reaches the live loops subscribed to the user's node. Each
 * keeps the users due in a small list and one timer for the earliest, and then runs
 * storage_counts_flush, which logs the count as it is by then. A flush whose window is not
 * over by Redis' clock is put back for the time left. Every process subscribed to the node
 * flushes (the first finds the window dirty, the others nothing): a user's streams may be on
 * any of them, and one flush per process per window is cheap next to a hub lookup per
 * message. Thread: the live thread, throughout.
 */
#include "fanout/live_internal.h"

#include <errno.h>
#include <stdlib.h>

typedef struct due_s {
    uint64_t user;
    uint64_t at; /* uv_now() ms */
} due_t;

struct fanout__counts_s {
    uv_loop_t *loop;
    const fanout_live_config_t *live;
    storage_async_t *sa;
    uv_timer_t timer;
    bool closing;
    due_t *due;
    size_t n, cap;
};

typedef struct flush_s {
    fanout__counts_t *c;
    uint64_t user;
    size_t again_ms;
} flush_t;

static void on_timer(uv_timer_t *t);

fanout__counts_t *fanout__counts_create(uv_loop_t *loop, const fanout_live_config_t *live)
{
    fanout__counts_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->loop = loop;
    c->live = live;
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    return c;
}

void fanout__counts_attach(fanout__counts_t *c, storage_async_t *sa)
{
    if (c)
        c->sa = sa;
}

static void arm(fanout__counts_t *c)
{
    if (c->n == 0 || c->closing)
        return;
    uint64_t first = c->due[0].at;
    for (size_t i = 1; i < c->n; i++)
        if (c->due[i].at < first)
            first = c->due[i].at;
    uint64_t now = uv_now(c->loop);
    uv_timer_start(&c->timer, on_timer, first > now ? first - now : 0, 0);
}

void fanout__counts_due(fanout__counts_t *c, uint64_t user, uint64_t in_ms)
{
    if (!c || !c->sa || c->closing)
        return;
    if (in_ms > 1000)
        in_ms = 1000; /* a window is 100 ms: anything longer is no message of ours */
    uint64_t at = uv_now(c->loop) + in_ms + 1;
    for (size_t i = 0; i < c->n; i++)
        if (c->due[i].user == user) {
            if (at < c->due[i].at)
                c->due[i].at = at;
            arm(c);
            return;
        }
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        due_t *grown = realloc(c->due, cap * sizeof(*grown));
        if (!grown) {
            fanout__live_report(c->live, -ENOMEM, "no memory to flush the counts of user %llu",
                                (unsigned long long)user);
            return; /* the user's next change, or a reconnect's fetch, corrects the count */
        }
        c->due = grown;
        c->cap = cap;
    }
    c->due[c->n++] = (due_t){user, at};
    arm(c);
}

static void on_flushed(void *arg, int status)
{
    flush_t *f = arg;
    fanout__counts_t *c = f->c;
    if (status && status != -ECANCELED)
        fanout__live_report(c->live, status, "flushing the unread count of user %llu failed",
                            (unsigned long long)f->user);
    else if (status == 0 && f->again_ms > 0)
        fanout__counts_due(c, f->user, f->again_ms);
    free(f);
}

static void on_timer(uv_timer_t *t)
{
    fanout__counts_t *c = t->data;
    uint64_t now = uv_now(c->loop);
    for (size_t i = 0; i < c->n;) {
        if (c->due[i].at > now) {
            i++;
            continue;
        }
        uint64_t user = c->due[i].user;
        c->due[i] = c->due[--c->n];
        flush_t *f = malloc(sizeof(*f));
        int rc = f ? 0 : -ENOMEM;
        if (f) {
            *f = (flush_t){c, user, 0};
            rc = storage_counts_flush(c->sa, user, &f->again_ms, on_flushed, f);
            if (rc)
                free(f);
        }
        if (rc)
            fanout__live_report(c->live, rc, "flushing the unread count of user %llu failed",
                                (unsigned long long)user);
    }
    arm(c);
}

void fanout__counts_close(fanout__counts_t *c)
{
    if (!c)
        return;
    c->closing = true;
    uv_close((uv_handle_t *)&c->timer, NULL);
}

void fanout__counts_free(fanout__counts_t *c)
{
    if (!c)
        return;
    free(c->due);
    free(c);
}
