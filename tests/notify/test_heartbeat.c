/* tests/notify/test_heartbeat.c -- heartbeats, one slice of the streams per tick.
 *
 * notify_hub_heartbeat(hub, tick, slices) queues a heartbeat (an event of kind "") on the
 * idle streams of one slice; over slices ticks every stream gets exactly one, so dead
 * peers show up without ten thousand streams waking at once.
 */
#include "tests/notify/nx.h"

#include <criterion/criterion.h>
#include <stdlib.h>

TestSuite(heartbeat, .init = nx_setup, .fini = nx_teardown, .timeout = 20);

#define USERS 600
#define SLICES 16

/* Reads a stream until it parks; returns how many heartbeats it had. */
static int drain_beats(notify_sub_t *sub)
{
    int beats = 0;
    for (;;) {
        notify_event_t *e = NULL;
        char cursor[NOTIFY_ID_MAX];
        notify_next_t next = notify_sub_next(sub, &e, cursor);
        if (next == NOTIFY_NEXT_PARKED)
            return beats;
        cr_assert_eq(next, NOTIFY_NEXT_EVENT);
        cr_assert_eq(e->kind, NOTIFY_KIND_HEARTBEAT, "only heartbeats were queued");
        cr_assert_str_empty(e->id, "a heartbeat has no log id");
        beats++;
        notify_event_unref(e);
    }
}

static int by_user(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

Test(heartbeat, every_stream_gets_exactly_one_per_period)
{
    nx_resize(64, 2 * USERS);
    static nx_hooks_t c[USERS + USERS / 3];
    static notify_sub_t *sub[USERS + USERS / 3];
    static uint64_t user_of[USERS + USERS / 3];
    static int beats[USERS + USERS / 3];
    size_t n = 0;
    for (uint64_t u = 1; u <= USERS; u++) /* a third of the users have two streams */
        for (int twice = 0; twice < (u % 3 == 0 ? 2 : 1); twice++) {
            user_of[n] = u;
            sub[n] = nx_open_live(nx.hub, u, "", &c[n], 1, 0);
            nx_expect(sub[n], NOTIFY_NEXT_PARKED);
            n++;
        }
    for (unsigned tick = 0; tick < 2 * SLICES; tick++) {
        notify_hub_heartbeat(nx.hub, tick, SLICES);
        uint64_t beaten[USERS], listed[USERS];
        size_t n_beaten = 0;
        int now[USERS + USERS / 3];
        for (size_t i = 0; i < n; i++) {
            /* A stream still parked was not woken: the reader is not called for it. */
            now[i] = atomic_load(&c[i].parked) ? 0 : drain_beats(sub[i]);
            cr_assert_leq(now[i], 1, "stream %zu beat %d times in one tick", i, now[i]);
            beats[i] += now[i];
            bool second = i > 0 && user_of[i - 1] == user_of[i];
            if (second)
                cr_assert_eq(now[i], now[i - 1], "a user's streams share a slice");
            if (now[i] && !second)
                beaten[n_beaten++] = user_of[i];
        }
        /* The slice a tick beats is the one notify_hub_users lists. */
        size_t n_listed = notify_hub_users(nx.hub, tick, SLICES, listed, USERS);
        cr_assert_eq(n_listed, n_beaten, "tick %u: %zu users listed, %zu beaten", tick, n_listed,
                     n_beaten);
        qsort(listed, n_listed, sizeof(*listed), by_user);
        qsort(beaten, n_beaten, sizeof(*beaten), by_user);
        for (size_t i = 0; i < n_listed; i++)
            cr_assert_eq(listed[i], beaten[i]);
        if (tick == SLICES - 1)
            for (size_t i = 0; i < n; i++)
                cr_assert_eq(beats[i], 1, "stream %zu had %d heartbeats in a period", i, beats[i]);
    }
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(beats[i], 2, "stream %zu had %d heartbeats in two periods", i, beats[i]);
        cr_assert_eq(atomic_load(&c[i].wakes), 2, "a parked stream wakes for each beat");
        cr_assert_eq(atomic_load(&c[i].strays), 0);
        notify_sub_close(sub[i]);
    }
}

Test(heartbeat, one_slice_is_the_whole_hub)
{
    nx_hooks_t c[3];
    notify_sub_t *sub[3];
    for (int i = 0; i < 3; i++)
        sub[i] = nx_open_live(nx.hub, (uint64_t)(i * 1000 + 1), "", &c[i], 1, 0);
    notify_hub_heartbeat(nx.hub, 5, 1);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(drain_beats(sub[i]), 1);
        notify_sub_close(sub[i]);
    }
}

Test(heartbeat, a_stream_with_events_queued_or_catching_up_gets_none)
{
    nx_hooks_t cc;
    notify_sub_t *queued = nx_live();
    nx_publish(nx.hub, 7, 1);
    notify_sub_t *catching = nx_open(nx.hub, 8, "", &cc);
    nx_expect(catching, NOTIFY_NEXT_CATCHUP);
    notify_hub_heartbeat(nx.hub, 0, 1);
    notify_hub_heartbeat(nx.hub, 0, 1); /* nor a second one on the first */
    cr_assert_eq(nx_next_k(queued), 1);
    nx_expect(queued, NOTIFY_NEXT_PARKED);
    notify_sub_catchup_done(catching, NULL, 0, false);
    nx_expect(catching, NOTIFY_NEXT_PARKED);
    notify_sub_close(catching);
}

Test(heartbeat, an_unread_heartbeat_is_not_doubled)
{
    notify_sub_t *sub = nx_live();
    for (unsigned tick = 0; tick < 3 * SLICES; tick++)
        notify_hub_heartbeat(nx.hub, tick, SLICES); /* a reader that is slow to look */
    cr_assert_eq(drain_beats(sub), 1);
}
