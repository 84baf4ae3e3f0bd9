/* tests/notify/nx.c -- the notify suites' helpers (see nx.h). */
#include "tests/notify/nx.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

static void park(void *arg)
{
    nx_hooks_t *c = arg;
    atomic_fetch_add(&c->parks, 1);
    if (atomic_exchange(&c->parked, true))
        atomic_fetch_add(&c->strays, 1);
}

static void wake(void *arg)
{
    nx_hooks_t *c = arg;
    atomic_fetch_add(&c->wakes, 1);
    if (!atomic_exchange(&c->parked, false))
        atomic_fetch_add(&c->strays, 1);
}

notify_sub_hooks_t nx_hooks(nx_hooks_t *c)
{
    atomic_init(&c->parks, 0);
    atomic_init(&c->wakes, 0);
    atomic_init(&c->strays, 0);
    atomic_init(&c->parked, false);
    return (notify_sub_hooks_t){park, wake, c};
}

notify_hub_t *nx_hub(size_t queue_max, size_t max_streams)
{
    notify_config_t cfg = {.queue_max = queue_max, .max_streams = max_streams};
    notify_hub_t *hub = notify_hub_create(&cfg);
    cr_assert_not_null(hub);
    return hub;
}

static notify_event_t *numbered(unsigned k)
{
    char id[NOTIFY_ID_MAX];
    snprintf(id, sizeof(id), "%u-0", k);
    notify_event_t *e = notify_event_new(id, NX_KIND_FEED, "post");
    cr_assert_not_null(e);
    return e;
}

void nx_publish(notify_hub_t *hub, uint64_t user, unsigned k)
{
    notify_event_t *e = numbered(k);
    notify_hub_publish(hub, user, e);
    notify_event_unref(e);
}

notify_event_t *nx_logged(unsigned k)
{
    notify_event_t *e = numbered(k);
    e->from_log = true;
    return e;
}

void nx_catch_up(notify_sub_t *sub, unsigned first, unsigned last, bool more)
{
    notify_event_t *log[64] = {NULL};
    size_t n = 0;
    for (unsigned k = first; k <= last; k++) {
        cr_assert_lt(n, sizeof(log) / sizeof(log[0]));
        log[n++] = nx_logged(k);
    }
    notify_sub_catchup_done(sub, log, n, more);
    for (size_t i = 0; i < n; i++)
        notify_event_unref(log[i]);
}

notify_sub_t *nx_open(notify_hub_t *hub, uint64_t user, const char *cursor, nx_hooks_t *c)
{
    notify_sub_hooks_t hooks = nx_hooks(c);
    notify_sub_t *sub = notify_sub_open(hub, user, cursor, &hooks);
    cr_assert_not_null(sub);
    return sub;
}

notify_sub_t *nx_open_live(notify_hub_t *hub, uint64_t user, const char *cursor, nx_hooks_t *c,
                           unsigned first, unsigned last)
{
    notify_sub_t *sub = nx_open(hub, user, cursor, c);
    nx_expect(sub, NOTIFY_NEXT_CATCHUP);
    nx_catch_up(sub, first, last, false);
    return sub;
}

unsigned nx_k(const char *id)
{
    return (unsigned)strtoul(id, NULL, 10);
}

unsigned nx_next_k(notify_sub_t *sub)
{
    notify_event_t *e = NULL;
    char cursor[NOTIFY_ID_MAX];
    notify_next_t next = notify_sub_next(sub, &e, cursor);
    cr_assert_eq(next, NOTIFY_NEXT_EVENT, "expected an event, got step %d", (int)next);
    unsigned k = nx_k(e->id);
    notify_event_unref(e);
    return k;
}

unsigned nx_expect(notify_sub_t *sub, notify_next_t what)
{
    notify_event_t *e = NULL;
    char cursor[NOTIFY_ID_MAX] = "";
    notify_next_t next = notify_sub_next(sub, &e, cursor);
    if (next == NOTIFY_NEXT_EVENT)
        notify_event_unref(e);
    cr_assert_eq(next, what, "expected step %d, got %d", (int)what, (int)next);
    return next == NOTIFY_NEXT_CATCHUP ? nx_k(cursor) : 0;
}

nx_fixture_t nx;

void nx_setup(void)
{
    nx.hub = nx_hub(64, 10);
    nx.sub = NULL;
}

void nx_teardown(void)
{
    if (nx.sub)
        notify_sub_close(nx.sub);
    notify_hub_destroy(nx.hub);
}

void nx_resize(size_t queue_max, size_t max_streams)
{
    notify_hub_destroy(nx.hub);
    nx.hub = nx_hub(queue_max, max_streams);
}

notify_sub_t *nx_live(void)
{
    return nx.sub = nx_open_live(nx.hub, 7, "", &nx.c, 1, 0);
}
