/* tests/notify/test_ring.c -- the bounded ring: growth from 8 up to queue_max, the cut-off.
 *
 * A stream's queue starts at 8 entries and doubles up to queue_max; an event that finds it
 * full ends the stream (overflow cut-off): memory stays bounded whatever one reader does,
 * and the client resumes from the log after the last event it was sent.
 */
#include "tests/notify/nx.h"

#include <criterion/criterion.h>

TestSuite(ring, .init = nx_setup, .fini = nx_teardown, .timeout = 10);

Test(ring, holds_queue_max_events_in_order_while_growing_from_eight)
{
    nx_resize(100, 10); /* 8, 16, 32, 64, then 100 */
    notify_sub_t *sub = nx_live();
    for (unsigned k = 1; k <= 100; k++)
        nx_publish(nx.hub, 7, k);
    cr_assert_eq(notify_hub_stats(nx.hub)->dropped, 0);
    for (unsigned k = 1; k <= 100; k++)
        cr_assert_eq(nx_next_k(sub), k);
    nx_expect(sub, NOTIFY_NEXT_PARKED);
}

Test(ring, grows_across_the_wrap_without_reordering)
{
    notify_sub_t *sub = nx_live();
    unsigned next = 1, sent = 0;
    /* Read a few behind, so the ring's head moves and every growth copies a wrapped ring. */
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < 5; i++)
            nx_publish(nx.hub, 7, ++sent);
        for (int i = 0; i < 3; i++)
            cr_assert_eq(nx_next_k(sub), next++);
    }
    while (next <= sent)
        cr_assert_eq(nx_next_k(sub), next++);
    nx_expect(sub, NOTIFY_NEXT_PARKED);
    cr_assert_eq(notify_hub_stats(nx.hub)->dropped, 0);
}

Test(ring, one_event_past_queue_max_ends_the_stream_and_the_client_resumes)
{
    nx_resize(40, 10);
    notify_sub_t *sub = nx_live();
    for (unsigned k = 1; k <= 3; k++) {
        nx_publish(nx.hub, 7, k);
        cr_assert_eq(nx_next_k(sub), k);
    }
    nx_expect(sub, NOTIFY_NEXT_PARKED);
    for (unsigned k = 4; k <= 43; k++) /* exactly full: still open */
        nx_publish(nx.hub, 7, k);
    cr_assert_eq(notify_hub_stats(nx.hub)->dropped, 0);
    nx_publish(nx.hub, 7, 44);
    cr_assert_eq(notify_hub_stats(nx.hub)->dropped, 1);
    cr_assert_eq(atomic_load(&nx.c.wakes), 1, "woken once, by event 4");
    nx_expect(sub, NOTIFY_NEXT_END);
    nx_publish(nx.hub, 7, 45);
    nx_expect(sub, NOTIFY_NEXT_END);
    cr_assert_eq(notify_hub_stats(nx.hub)->dropped, 1, "an ended stream queues nothing more");
    notify_sub_close(sub); /* frees what it still queued */

    /* The client resumes after the last event it was sent, 3: the log has the rest, read
     * a queue's worth at a time. */
    sub = nx.sub = nx_open(nx.hub, 7, "3-0", &nx.c);
    cr_assert_eq(nx_expect(sub, NOTIFY_NEXT_CATCHUP), 3);
    nx_catch_up(sub, 4, 43, true);
    for (unsigned k = 4; k <= 43; k++)
        cr_assert_eq(nx_next_k(sub), k);
    cr_assert_eq(nx_expect(sub, NOTIFY_NEXT_CATCHUP), 43);
    nx_catch_up(sub, 44, 45, false);
    nx_publish(nx.hub, 7, 46);
    for (unsigned k = 44; k <= 46; k++)
        cr_assert_eq(nx_next_k(sub), k);
    nx_expect(sub, NOTIFY_NEXT_PARKED);
    cr_assert_eq(notify_hub_stats(nx.hub)->dropped, 1);
}

Test(ring, a_queue_max_below_eight_is_the_ring_size)
{
    nx_resize(3, 10);
    notify_sub_t *sub = nx_live();
    for (unsigned k = 1; k <= 3; k++)
        nx_publish(nx.hub, 7, k);
    cr_assert_eq(notify_hub_stats(nx.hub)->dropped, 0);
    nx_publish(nx.hub, 7, 4);
    cr_assert_eq(notify_hub_stats(nx.hub)->dropped, 1);
    nx_expect(sub, NOTIFY_NEXT_END);
}

Test(ring, queue_max_is_at_least_two)
{
    nx_resize(0, 10);
    cr_assert_eq(notify_hub_queue_max(nx.hub), 2);
    notify_sub_t *sub = nx_live();
    nx_publish(nx.hub, 7, 1);
    nx_publish(nx.hub, 7, 2);
    cr_assert_eq(nx_next_k(sub), 1);
    cr_assert_eq(nx_next_k(sub), 2);
}

Test(ring, a_full_catchup_followed_by_a_live_event_cuts_off)
{
    nx_resize(8, 10);
    notify_sub_t *sub = nx.sub = nx_open_live(nx.hub, 7, "", &nx.c, 1, 8); /* filled it */
    nx_publish(nx.hub, 7, 9);
    nx_expect(sub, NOTIFY_NEXT_END);
    cr_assert_eq(notify_hub_stats(nx.hub)->dropped, 1);
}
