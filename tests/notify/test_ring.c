/* tests/notify/test_ring.c -- the bounded ring: growth from 8 up to queue_max, the cut-off.
 *
 * A stream's queue starts at 8 entries and doubles up to queue_max; an event that finds it
 * full ends the stream (overflow cut-off): memory stays bounded whatever one reader does,
 * and the client resumes from the log after the last event it was sent.
 */
#include "tests/notify/nx.h"

#include <criterion/criterion.h>

TestSuite(ring, .timeout = 10);

Test(ring, holds_queue_max_events_in_order_while_growing_from_eight)
{
    notify_hub_t *hub = nx_hub(100, 10); /* 8, 16, 32, 64, then 100 */
    nx_hooks_t c;
    notify_sub_t *sub = nx_open_live(hub, 7, "", &c, 1, 0);
    for (unsigned k = 1; k <= 100; k++)
        nx_publish(hub, 7, k);
    cr_assert_eq(notify_hub_stats(hub)->dropped, 0);
    for (unsigned k = 1; k <= 100; k++)
        cr_assert_eq(nx_next_k(sub), k);
    nx_expect(sub, NOTIFY_NEXT_PARKED);
    notify_sub_close(sub);
    notify_hub_destroy(hub);
}

Test(ring, grows_across_the_wrap_without_reordering)
{
    notify_hub_t *hub = nx_hub(64, 10);
    nx_hooks_t c;
    notify_sub_t *sub = nx_open_live(hub, 7, "", &c, 1, 0);
    unsigned next = 1, sent = 0;
    /* Read a few behind, so the ring's head moves and every growth copies a wrapped ring. */
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < 5; i++)
            nx_publish(hub, 7, ++sent);
        for (int i = 0; i < 3; i++)
            cr_assert_eq(nx_next_k(sub), next++);
    }
    while (next <= sent)
        cr_assert_eq(nx_next_k(sub), next++);
    nx_expect(sub, NOTIFY_NEXT_PARKED);
    cr_assert_eq(notify_hub_stats(hub)->dropped, 0);
    notify_sub_close(sub);
    notify_hub_destroy(hub);
}

Test(ring, one_event_past_queue_max_ends_the_stream_and_the_client_resumes)
{
    notify_hub_t *hub = nx_hub(40, 10);
    nx_hooks_t c;
    notify_sub_t *sub = nx_open_live(hub, 7, "", &c, 1, 0);
    for (unsigned k = 1; k <= 3; k++) {
        nx_publish(hub, 7, k);
        cr_assert_eq(nx_next_k(sub), k);
    }
    nx_expect(sub, NOTIFY_NEXT_PARKED);
    for (unsigned k = 4; k <= 43; k++) /* exactly full: still open */
        nx_publish(hub, 7, k);
    cr_assert_eq(notify_hub_stats(hub)->dropped, 0);
    nx_publish(hub, 7, 44);
    cr_assert_eq(notify_hub_stats(hub)->dropped, 1);
    cr_assert_eq(atomic_load(&c.wakes), 1, "woken once, by event 4");
    nx_expect(sub, NOTIFY_NEXT_END);
    nx_publish(hub, 7, 45);
    nx_expect(sub, NOTIFY_NEXT_END);
    cr_assert_eq(notify_hub_stats(hub)->dropped, 1, "an ended stream queues nothing more");
    notify_sub_close(sub); /* frees what it still queued */

    /* The client resumes after the last event it was sent, 3: the log has the rest, read
     * a queue's worth at a time. */
    nx_hooks_t c2;
    notify_sub_hooks_t hooks = nx_hooks(&c2);
    sub = notify_sub_open(hub, 7, "3-0", &hooks);
    cr_assert_eq(nx_expect(sub, NOTIFY_NEXT_CATCHUP), 3);
    notify_event_t *log[40];
    for (unsigned i = 0; i < 40; i++)
        log[i] = nx_logged(4 + i);
    notify_sub_catchup_done(sub, log, 40, true);
    for (unsigned i = 0; i < 40; i++)
        notify_event_unref(log[i]);
    for (unsigned k = 4; k <= 43; k++)
        cr_assert_eq(nx_next_k(sub), k);
    cr_assert_eq(nx_expect(sub, NOTIFY_NEXT_CATCHUP), 43);
    log[0] = nx_logged(44);
    log[1] = nx_logged(45);
    notify_sub_catchup_done(sub, log, 2, false);
    notify_event_unref(log[0]);
    notify_event_unref(log[1]);
    nx_publish(hub, 7, 46);
    for (unsigned k = 44; k <= 46; k++)
        cr_assert_eq(nx_next_k(sub), k);
    nx_expect(sub, NOTIFY_NEXT_PARKED);
    cr_assert_eq(notify_hub_stats(hub)->dropped, 1);
    notify_sub_close(sub);
    notify_hub_destroy(hub);
}

Test(ring, a_queue_max_below_eight_is_the_ring_size)
{
    notify_hub_t *hub = nx_hub(3, 10);
    nx_hooks_t c;
    notify_sub_t *sub = nx_open_live(hub, 7, "", &c, 1, 0);
    for (unsigned k = 1; k <= 3; k++)
        nx_publish(hub, 7, k);
    cr_assert_eq(notify_hub_stats(hub)->dropped, 0);
    nx_publish(hub, 7, 4);
    cr_assert_eq(notify_hub_stats(hub)->dropped, 1);
    nx_expect(sub, NOTIFY_NEXT_END);
    notify_sub_close(sub);
    notify_hub_destroy(hub);
}

Test(ring, queue_max_is_at_least_two)
{
    notify_hub_t *hub = nx_hub(0, 10);
    cr_assert_eq(notify_hub_queue_max(hub), 2);
    nx_hooks_t c;
    notify_sub_t *sub = nx_open_live(hub, 7, "", &c, 1, 0);
    nx_publish(hub, 7, 1);
    nx_publish(hub, 7, 2);
    cr_assert_eq(nx_next_k(sub), 1);
    cr_assert_eq(nx_next_k(sub), 2);
    notify_sub_close(sub);
    notify_hub_destroy(hub);
}

Test(ring, a_full_catchup_followed_by_a_live_event_cuts_off)
{
    notify_hub_t *hub = nx_hub(8, 10);
    nx_hooks_t c;
    notify_sub_t *sub = nx_open_live(hub, 7, "", &c, 1, 8); /* the catch-up filled it */
    nx_publish(hub, 7, 9);
    nx_expect(sub, NOTIFY_NEXT_END);
    cr_assert_eq(notify_hub_stats(hub)->dropped, 1);
    notify_sub_close(sub);
    notify_hub_destroy(hub);
}
