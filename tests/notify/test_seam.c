/* tests/notify/test_seam.c -- the catch-up/live seam: neither gap nor duplicate.
 *
 * A stream's cursor is the id of the last event queued for it. A new stream first reads
 * the log after its cursor; live events that arrive meanwhile are not queued but ask for
 * another pass, since the log has them; after that, live events at or below the cursor are
 * dropped and those above it are delivered.
 */
#include "tests/notify/nx.h"

#include <criterion/criterion.h>

TestSuite(seam, .init = nx_setup, .fini = nx_teardown, .timeout = 10);

Test(seam, a_new_stream_catches_up_from_its_cursor_first)
{
    notify_sub_t *sub = nx.sub = nx_open(nx.hub, 7, "5-0", &nx.c);
    cr_assert_eq(nx_expect(sub, NOTIFY_NEXT_CATCHUP), 5);
    nx_catch_up(sub, 6, 8, false);
    cr_assert_eq(nx_next_k(sub), 6);
    cr_assert_eq(nx_next_k(sub), 7);
    cr_assert_eq(nx_next_k(sub), 8);
    nx_expect(sub, NOTIFY_NEXT_PARKED);
    cr_assert_eq(notify_hub_stats(nx.hub)->replayed, 3);
}

Test(seam, log_entries_at_or_below_the_cursor_are_not_replayed)
{
    notify_sub_t *sub = nx.sub = nx_open(nx.hub, 7, "5-0", &nx.c);
    nx_expect(sub, NOTIFY_NEXT_CATCHUP);
    nx_catch_up(sub, 3, 7, false); /* a log read that starts early */
    cr_assert_eq(nx_next_k(sub), 6);
    cr_assert_eq(nx_next_k(sub), 7);
    nx_expect(sub, NOTIFY_NEXT_PARKED);
}

Test(seam, live_events_at_or_below_the_cursor_are_dropped_above_delivered)
{
    notify_sub_t *sub = nx.sub = nx_open_live(nx.hub, 7, "", &nx.c, 1, 4);
    nx_publish(nx.hub, 7, 3); /* live messages of what the catch-up read */
    nx_publish(nx.hub, 7, 4);
    nx_publish(nx.hub, 7, 5);
    nx_publish(nx.hub, 7, 5); /* and a repeat */
    nx_publish(nx.hub, 7, 6);
    for (unsigned k = 1; k <= 6; k++)
        cr_assert_eq(nx_next_k(sub), k);
    nx_expect(sub, NOTIFY_NEXT_PARKED);
}

Test(seam, a_live_event_during_catchup_asks_for_another_pass)
{
    notify_sub_t *sub = nx.sub = nx_open(nx.hub, 7, "", &nx.c);
    cr_assert_eq(nx_expect(sub, NOTIFY_NEXT_CATCHUP), 0);
    /* The reader reads entries 1..3 from the log; 4 and 5 are written and published
     * meanwhile: not queued (the log has them), but another pass is owed. */
    nx_publish(nx.hub, 7, 4);
    nx_publish(nx.hub, 7, 5);
    nx_catch_up(sub, 1, 3, false);
    for (unsigned k = 1; k <= 3; k++)
        cr_assert_eq(nx_next_k(sub), k);
    cr_assert_eq(nx_expect(sub, NOTIFY_NEXT_CATCHUP), 3, "the second pass starts after 3");
    nx_catch_up(sub, 4, 5, false);
    nx_publish(nx.hub, 7, 5); /* late live copy of what the second pass read */
    nx_publish(nx.hub, 7, 6);
    for (unsigned k = 4; k <= 6; k++)
        cr_assert_eq(nx_next_k(sub), k);
    nx_expect(sub, NOTIFY_NEXT_PARKED);
    cr_assert_eq(atomic_load(&nx.c.wakes), 0);
}

Test(seam, a_live_event_before_the_first_catchup_is_left_to_it)
{
    notify_sub_t *sub = nx.sub = nx_open(nx.hub, 7, "", &nx.c);
    nx_publish(nx.hub, 7, 1); /* opened, the reader has not started: the log has it */
    cr_assert_eq(nx_expect(sub, NOTIFY_NEXT_CATCHUP), 0);
    nx_catch_up(sub, 1, 1, false);
    cr_assert_eq(nx_next_k(sub), 1);
    nx_expect(sub, NOTIFY_NEXT_PARKED);
}

Test(seam, a_catchup_cut_short_continues_after_the_queue_is_drained)
{
    nx_resize(4, 10);
    notify_sub_t *sub = nx.sub = nx_open(nx.hub, 7, "", &nx.c);
    cr_assert_eq(notify_hub_queue_max(nx.hub), 4);
    nx_expect(sub, NOTIFY_NEXT_CATCHUP);
    nx_catch_up(sub, 1, 4, true); /* a queue's worth, and the log has more */
    for (unsigned k = 1; k <= 4; k++)
        cr_assert_eq(nx_next_k(sub), k);
    cr_assert_eq(nx_expect(sub, NOTIFY_NEXT_CATCHUP), 4);
    nx_catch_up(sub, 5, 6, false);
    cr_assert_eq(nx_next_k(sub), 5);
    cr_assert_eq(nx_next_k(sub), 6);
    nx_expect(sub, NOTIFY_NEXT_PARKED);
}

Test(seam, queued_events_go_before_a_catchup)
{
    notify_sub_t *sub = nx_live();
    nx_publish(nx.hub, 7, 1);
    nx_publish(nx.hub, 7, 2);
    notify_hub_subscribed(nx.hub); /* a gap in the subscription: read the log again */
    cr_assert_eq(nx_next_k(sub), 1);
    cr_assert_eq(nx_next_k(sub), 2);
    cr_assert_eq(nx_expect(sub, NOTIFY_NEXT_CATCHUP), 2);
    nx_catch_up(sub, 1, 3, false);
    cr_assert_eq(nx_next_k(sub), 3);
    nx_expect(sub, NOTIFY_NEXT_PARKED);
}

Test(seam, ids_compare_as_numbers_and_empty_sorts_first)
{
    cr_assert_lt(notify_id_cmp("9-0", "10-0"), 0);
    cr_assert_lt(notify_id_cmp("10-2", "10-10"), 0);
    cr_assert_gt(notify_id_cmp("11-0", "10-99"), 0);
    cr_assert_eq(notify_id_cmp("10-3", "10-3"), 0);
    cr_assert_eq(notify_id_cmp("10", "10-0"), 0);
    cr_assert_lt(notify_id_cmp("", "0-0"), 0);
    cr_assert_gt(notify_id_cmp("0-1", ""), 0);
    cr_assert_eq(notify_id_cmp("", ""), 0);
}

Test(seam, two_streams_of_one_user_each_keep_their_own_cursor)
{
    nx_hooks_t cb;
    notify_sub_t *a = nx.sub = nx_open_live(nx.hub, 7, "", &nx.c, 1, 2);
    nx_publish(nx.hub, 7, 3);
    nx_publish(nx.hub, 7, 4);
    notify_sub_t *b = nx_open_live(nx.hub, 7, "1-0", &cb, 2, 4); /* resumes after 1 */
    nx_publish(nx.hub, 7, 4);                                    /* a late copy: b has it */
    nx_publish(nx.hub, 7, 5);
    for (unsigned k = 1; k <= 5; k++)
        cr_assert_eq(nx_next_k(a), k);
    for (unsigned k = 2; k <= 5; k++)
        cr_assert_eq(nx_next_k(b), k);
    nx_expect(a, NOTIFY_NEXT_PARKED);
    nx_expect(b, NOTIFY_NEXT_PARKED);
    notify_sub_close(b);
}
