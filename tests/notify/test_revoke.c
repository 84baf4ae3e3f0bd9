/* tests/notify/test_revoke.c -- notify_hub_revoke: it ends, at once, exactly the streams of
 * one user opened with one credential (or all of the user's for 0), waking the parked once,
 * dropping what they had queued, and telling the reader why. */
#include "tests/notify/nx.h"

#include <criterion/criterion.h>

TestSuite(revoke, .init = nx_setup, .fini = nx_teardown, .timeout = 10);

Test(revoke, ends_the_streams_of_that_token_only)
{
    nx_hooks_t c2, c3, c4;
    notify_sub_t *parked = nx_live(); /* user 7, token 100 */
    notify_sub_set_token(parked, 100);
    nx_expect(parked, NOTIFY_NEXT_PARKED);
    notify_sub_t *queued = nx_open_live(nx.hub, 7, "", &c2, 1, 0); /* user 7, token 100 */
    notify_sub_set_token(queued, 100);
    notify_sub_t *other_token = nx_open_live(nx.hub, 7, "", &c3, 1, 0); /* token 101 */
    notify_sub_set_token(other_token, 101);
    notify_sub_t *other_user = nx_open_live(nx.hub, 8, "", &c4, 1, 0); /* same token id */
    notify_sub_set_token(other_user, 100);
    nx_publish(nx.hub, 7, 1);

    cr_assert_eq(notify_hub_revoke(nx.hub, 7, 100), 2);
    cr_expect_eq(atomic_load(&nx.c.wakes), 1, "the parked stream is woken");
    nx_expect(parked, NOTIFY_NEXT_END);
    nx_expect(queued, NOTIFY_NEXT_END); /* what it had queued is not sent */
    cr_expect(notify_sub_revoked(parked) && notify_sub_revoked(queued));

    cr_expect(!notify_sub_revoked(other_token) && !notify_sub_revoked(other_user));
    cr_expect_eq(nx_next_k(other_token), 1, "another token's stream goes on");
    nx_expect(other_token, NOTIFY_NEXT_PARKED);
    nx_expect(other_user, NOTIFY_NEXT_PARKED);
    /* Again: nothing left to end. */
    cr_expect_eq(notify_hub_revoke(nx.hub, 7, 100), 0);
    cr_expect_eq(atomic_load(&nx.c.wakes), 1);
    notify_sub_close(queued);
    notify_sub_close(other_token);
    notify_sub_close(other_user);
}

Test(revoke, token_zero_ends_every_stream_of_the_user)
{
    nx_hooks_t c2, c3;
    notify_sub_t *a = nx_live();
    notify_sub_set_token(a, 100);
    notify_sub_t *b = nx_open_live(nx.hub, 7, "", &c2, 1, 0);
    notify_sub_set_token(b, 101);
    notify_sub_t *other = nx_open_live(nx.hub, 8, "", &c3, 1, 0);
    notify_sub_set_token(other, 100);
    cr_assert_eq(notify_hub_revoke(nx.hub, 7, 0), 2);
    nx_expect(a, NOTIFY_NEXT_END);
    nx_expect(b, NOTIFY_NEXT_END);
    cr_expect(notify_sub_revoked(a) && notify_sub_revoked(b) && !notify_sub_revoked(other));
    nx_expect(other, NOTIFY_NEXT_PARKED);
    notify_sub_close(b);
    notify_sub_close(other);
}

Test(revoke, a_shutdown_is_no_revocation)
{
    notify_sub_t *a = nx_live();
    notify_sub_set_token(a, 100);
    notify_hub_close_all(nx.hub);
    cr_expect_eq(notify_hub_revoke(nx.hub, 7, 100), 0, "an ending stream is not ended again");
    nx_expect(a, NOTIFY_NEXT_END);
    cr_expect(!notify_sub_revoked(a), "it ended for the shutdown");
}
