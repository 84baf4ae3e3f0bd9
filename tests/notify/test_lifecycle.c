/* tests/notify/test_lifecycle.c -- opening and closing streams: the max_streams limit and
 * the shutdown (notify_hub_close_all ends every stream and refuses new ones). */
#include "tests/notify/nx.h"

#include <criterion/criterion.h>
#include <errno.h>

TestSuite(lifecycle, .init = nx_setup, .fini = nx_teardown, .timeout = 10);

Test(lifecycle, opens_past_max_streams_are_refused_with_ebusy)
{
    nx_resize(64, 3);
    nx_hooks_t c[4];
    notify_sub_t *sub[4];
    for (int i = 0; i < 3; i++)
        sub[i] = nx_open_live(nx.hub, 7, "", &c[i], 1, 0);
    cr_assert_eq(notify_hub_stats(nx.hub)->open, 3);
    notify_sub_hooks_t hooks = nx_hooks(&c[3]);
    errno = 0;
    cr_assert_null(notify_sub_open(nx.hub, 8, "", &hooks));
    cr_assert_eq(errno, EBUSY);
    notify_sub_close(sub[1]);
    cr_assert_eq(notify_hub_stats(nx.hub)->open, 2);
    sub[1] = notify_sub_open(nx.hub, 8, "", &hooks);
    cr_assert_not_null(sub[1], "a closed stream frees its place");
    cr_assert_eq(notify_sub_user(sub[1]), 8);
    cr_assert_eq(notify_hub_stats(nx.hub)->opened, 4);
    for (int i = 0; i < 3; i++)
        notify_sub_close(sub[i]);
    cr_assert_eq(notify_hub_stats(nx.hub)->open, 0);
}

Test(lifecycle, close_all_ends_every_stream_and_wakes_the_parked_once)
{
    nx_hooks_t cq, cc;
    notify_sub_t *parked = nx_live();
    nx_expect(parked, NOTIFY_NEXT_PARKED);
    notify_sub_t *queued = nx_open_live(nx.hub, 8, "", &cq, 1, 0);
    nx_publish(nx.hub, 8, 1);
    notify_sub_t *catching = nx_open(nx.hub, 9, "", &cc);
    nx_expect(catching, NOTIFY_NEXT_CATCHUP);

    notify_hub_close_all(nx.hub);
    cr_assert_eq(atomic_load(&nx.c.wakes), 1);
    cr_assert_eq(atomic_load(&cq.wakes), 0, "it was not parked");
    nx_expect(parked, NOTIFY_NEXT_END);
    nx_expect(queued, NOTIFY_NEXT_END); /* ends before what it queued */
    nx_catch_up(catching, 1, 1, false);
    nx_expect(catching, NOTIFY_NEXT_END);
    nx_publish(nx.hub, 7, 2); /* streams not yet closed by their adapters take nothing */
    notify_hub_close_all(nx.hub);
    cr_assert_eq(atomic_load(&nx.c.wakes), 1, "a second shutdown wakes nobody again");
    nx_expect(parked, NOTIFY_NEXT_END);
    notify_sub_close(queued);
    notify_sub_close(catching);
}

Test(lifecycle, opens_after_close_all_are_refused_with_ecanceled)
{
    notify_hub_close_all(nx.hub);
    notify_sub_hooks_t hooks = nx_hooks(&nx.c);
    errno = 0;
    cr_assert_null(notify_sub_open(nx.hub, 7, "", &hooks));
    cr_assert_eq(errno, ECANCELED);
    cr_assert_eq(notify_hub_stats(nx.hub)->open, 0);
    cr_assert_eq(notify_hub_stats(nx.hub)->opened, 0);
}

Test(lifecycle, a_full_hub_shutting_down_refuses_with_ecanceled)
{
    nx_resize(64, 1);
    nx_live();
    notify_hub_close_all(nx.hub);
    nx_hooks_t d;
    notify_sub_hooks_t hooks = nx_hooks(&d);
    errno = 0;
    cr_assert_null(notify_sub_open(nx.hub, 8, "", &hooks));
    cr_assert_eq(errno, ECANCELED);
}

Test(lifecycle, users_lists_each_connected_user_once)
{
    nx_hooks_t c[2];
    notify_sub_t *a = nx_open_live(nx.hub, 42, "", &c[0], 1, 0);
    notify_sub_t *b = nx_open_live(nx.hub, 42, "", &c[1], 1, 0);
    nx.sub = nx_open_live(nx.hub, 43, "", &nx.c, 1, 0);
    uint64_t users[4];
    cr_assert_eq(notify_hub_users(nx.hub, 0, 1, users, 4), 2);
    cr_assert_eq(users[0] + users[1], 85);
    cr_assert_eq(notify_hub_users(nx.hub, 0, 1, users, 1), 2, "counts past max");
    notify_sub_close(a);
    notify_sub_close(b);
    cr_assert_eq(notify_hub_users(nx.hub, 0, 1, users, 4), 1);
    cr_assert_eq(users[0], 43);
}
