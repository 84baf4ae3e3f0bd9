/* tests/notify/test_wake.c -- park and wake: one wake per park, under every path that wakes.
 *
 * The reader parks when it finds nothing; whoever queues something next (a publish, a
 * heartbeat, a resubscription, the shutdown) wakes it, once, and only if it is parked.
 */
#include "tests/notify/nx.h"

#include <criterion/criterion.h>

TestSuite(wake, .init = nx_setup, .fini = nx_teardown, .timeout = 10);

Test(wake, a_parked_sub_is_woken_exactly_once)
{
    notify_sub_t *sub = nx_live();
    nx_expect(sub, NOTIFY_NEXT_PARKED);
    cr_assert_eq(atomic_load(&nx.c.parks), 1);
    nx_publish(nx.hub, 7, 1);
    nx_publish(nx.hub, 7, 2);
    nx_publish(nx.hub, 7, 3);
    cr_assert_eq(atomic_load(&nx.c.wakes), 1, "three publishes to one park woke it %d times",
                 atomic_load(&nx.c.wakes));
    cr_assert_eq(nx_next_k(sub), 1);
    cr_assert_eq(nx_next_k(sub), 2);
    cr_assert_eq(nx_next_k(sub), 3);
    nx_expect(sub, NOTIFY_NEXT_PARKED);
    nx_publish(nx.hub, 7, 4);
    cr_assert_eq(atomic_load(&nx.c.parks), 2);
    cr_assert_eq(atomic_load(&nx.c.wakes), 2);
    cr_assert_eq(atomic_load(&nx.c.strays), 0);
}

Test(wake, a_sub_that_is_not_parked_is_not_woken)
{
    notify_sub_t *sub = nx_live();
    nx_publish(nx.hub, 7, 1); /* the reader has not looked yet: queued, nobody to wake */
    nx_publish(nx.hub, 7, 2);
    cr_assert_eq(atomic_load(&nx.c.wakes), 0);
    cr_assert_eq(nx_next_k(sub), 1);
    nx_publish(nx.hub, 7, 3); /* read one, not parked */
    cr_assert_eq(atomic_load(&nx.c.wakes), 0);
    cr_assert_eq(atomic_load(&nx.c.parks), 0);
}

Test(wake, another_users_event_neither_queues_nor_wakes)
{
    notify_sub_t *sub = nx_live();
    nx_expect(sub, NOTIFY_NEXT_PARKED);
    nx_publish(nx.hub, 8, 1);
    cr_assert_eq(atomic_load(&nx.c.wakes), 0);
    nx_expect(sub, NOTIFY_NEXT_PARKED);
}

Test(wake, a_closed_sub_is_never_woken)
{
    nx_hooks_t gone;
    notify_sub_t *a = nx_open_live(nx.hub, 7, "", &gone, 1, 0);
    notify_sub_t *b = nx_live();
    nx_expect(a, NOTIFY_NEXT_PARKED);
    nx_expect(b, NOTIFY_NEXT_PARKED);
    notify_sub_close(a); /* closed while parked: the adapter's stream ended */
    nx_publish(nx.hub, 7, 1);
    notify_hub_heartbeat(nx.hub, 0, 1);
    notify_hub_subscribed(nx.hub);
    notify_hub_close_all(nx.hub);
    cr_assert_eq(atomic_load(&gone.wakes), 0);
    cr_assert_eq(atomic_load(&nx.c.wakes), 1);
    cr_assert_eq(atomic_load(&nx.c.strays), 0);
}

Test(wake, a_batch_wakes_its_parked_subs_once_at_its_end)
{
    nx_hooks_t c[3];
    notify_sub_t *sub[3];
    for (int i = 0; i < 3; i++) {
        sub[i] = nx_open_live(nx.hub, (uint64_t)i, "", &c[i], 1, 0);
        nx_expect(sub[i], NOTIFY_NEXT_PARKED);
    }
    notify_hub_batch(nx.hub, true);
    for (unsigned k = 1; k <= 4; k++)
        for (int i = 0; i < 3; i++)
            nx_publish(nx.hub, (uint64_t)i, k);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(atomic_load(&c[i].wakes), 0, "woken before the batch ended");
    notify_sub_close(sub[1]); /* the resume owed to it must not outlive it */
    notify_hub_batch(nx.hub, false);
    cr_assert_eq(atomic_load(&c[0].wakes), 1);
    cr_assert_eq(atomic_load(&c[1].wakes), 0);
    cr_assert_eq(atomic_load(&c[2].wakes), 1);
    notify_hub_batch(nx.hub, true); /* an empty batch owes nothing */
    notify_hub_batch(nx.hub, false);
    cr_assert_eq(atomic_load(&c[0].wakes), 1);
    for (unsigned k = 1; k <= 4; k++)
        cr_assert_eq(nx_next_k(sub[0]), k);
    notify_sub_close(sub[0]);
    notify_sub_close(sub[2]);
}

Test(wake, resubscribing_wakes_a_parked_sub_into_a_catchup)
{
    notify_sub_t *sub = nx.sub = nx_open_live(nx.hub, 7, "", &nx.c, 1, 2);
    cr_assert_eq(nx_next_k(sub), 1);
    cr_assert_eq(nx_next_k(sub), 2);
    nx_expect(sub, NOTIFY_NEXT_PARKED);
    notify_hub_subscribed(nx.hub);
    cr_assert_eq(atomic_load(&nx.c.wakes), 1);
    cr_assert_eq(nx_expect(sub, NOTIFY_NEXT_CATCHUP), 2, "catches up after what it has");
    notify_sub_catchup_done(sub, NULL, 0, false);
    nx_expect(sub, NOTIFY_NEXT_PARKED);
    cr_assert_eq(atomic_load(&nx.c.strays), 0);
}

/* The fast path: a writer takes what its predicate accepts and parks the stream itself,
 * without the park hook (its connection is suspended already). */
static bool feed_only(void *arg, const notify_event_t *e)
{
    (void)arg;
    return e->kind == NX_KIND_FEED;
}

Test(wake, park_idle_parks_without_the_hook_and_a_publish_wakes_once)
{
    notify_sub_t *sub = nx_live();
    nx_publish(nx.hub, 7, 1);
    cr_assert_not(notify_sub_park_idle(sub), "something is queued: take again");
    notify_event_t *e = NULL;
    cr_assert_eq(notify_sub_take(sub, &e, feed_only, NULL), NOTIFY_NEXT_EVENT);
    cr_assert_eq(nx_k(e->id), 1);
    notify_event_unref(e);
    cr_assert_eq(notify_sub_take(sub, &e, feed_only, NULL), NOTIFY_NEXT_PARKED,
                 "nothing queued: the writer may park it");
    cr_assert(notify_sub_park_idle(sub));
    atomic_store(&nx.c.parked, true); /* what the writer's suspended connection means */
    cr_assert_eq(atomic_load(&nx.c.parks), 0, "park_idle does not call the park hook");
    nx_publish(nx.hub, 7, 2);
    nx_publish(nx.hub, 7, 3);
    cr_assert_eq(atomic_load(&nx.c.wakes), 1);
    cr_assert_eq(atomic_load(&nx.c.strays), 0);
}

Test(wake, take_leaves_a_refused_event_and_a_catchup_to_the_reader)
{
    notify_sub_t *sub = nx_live();
    notify_hub_heartbeat(nx.hub, 0, 1); /* kind "": feed_only refuses it */
    notify_event_t *e = NULL;
    cr_assert_eq(notify_sub_take(sub, &e, feed_only, NULL), NOTIFY_NEXT_END);
    cr_assert_not(notify_sub_park_idle(sub));
    cr_assert_eq(nx_next_k(sub), 0, "the reader gets the heartbeat");
    notify_hub_subscribed(nx.hub);
    cr_assert_eq(notify_sub_take(sub, &e, feed_only, NULL), NOTIFY_NEXT_END,
                 "a catch-up is the reader's");
    cr_assert_not(notify_sub_park_idle(sub));
    nx_expect(sub, NOTIFY_NEXT_CATCHUP);
    notify_sub_catchup_done(sub, NULL, 0, false);
}
