/* tests/live_state/test_groups.c -- notification groups keep a stable key: a live update of a
 * group carries the same group_key as its row in GET /v1/notifications, so a client replaces
 * the row; a group that empties (unlike, block, deleted post) sends notification_removed with
 * the key, and a notification event whose group is gone by the time it is sent is one too. */
#include "tests/live_state/ls.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

TestSuite(live_groups, .init = ls_setup, .fini = ls_teardown, .timeout = LS_TIMEOUT);

/* A notification event's group_key, checked against want, and its actor_count. */
static long long expect_group(ts_sse_t *c, const char *want_key, const char *what)
{
    json_t *n = ls_expect(c, "notification", NULL, LS_WAIT_MS, what);
    cr_assert_str_eq(ts_str(n, "group_key"), want_key, "%s: the event's group_key", what);
    long long count = ts_int(n, "actor_count");
    json_decref(n);
    return count;
}

static void expect_removed(ts_sse_t *c, const char *want_key, const char *what)
{
    json_t *n = ls_expect(c, "notification_removed", NULL, LS_WAIT_MS, what);
    cr_assert_str_eq(ts_str(n, "group_key"), want_key, "%s: the removed group's key", what);
    cr_assert_eq(json_object_size(n), 1, "%s: data is {\"group_key\"} alone", what);
    json_decref(n);
}

static void unlike(const ts_user_t *u, const char *post)
{
    json_decref(ts_callf(PORT, "DELETE", u, NULL, 204, "/v1/posts/%s/like", post));
}

Test(live_groups, a_group_row_is_replaced_by_its_key_and_removed_when_it_empties)
{
    ts_user_t owner, a, b;
    ts_register_all(PORT, "lsg", &owner, &a, &b, NULL);
    char post[24], key[48];
    ts_post(PORT, &owner, "liked twice", post);
    snprintf(key, sizeof(key), "like:%s", post);
    ts_sse_t *c = ts_stream(PORT, &owner, NULL);

    ts_like(PORT, &a, post);
    cr_assert_eq(expect_group(c, key, "the first like"), 1);
    ts_like(PORT, &b, post);
    cr_assert_eq(expect_group(c, key, "the second like"), 2, "the second like: actor_count");

    json_t *page = ts_callf(PORT, "GET", &owner, NULL, 200, "/v1/notifications");
    json_t *items = json_object_get(page, "items");
    cr_assert_eq(json_array_size(items), 1, "one group of two likes");
    cr_assert_str_eq(ts_str(json_array_get(items, 0), "group_key"), key,
                     "the REST row carries the stream's key");
    json_decref(page);

    unlike(&a, post);
    cr_assert_eq(expect_group(c, key, "an unlike that leaves one actor"), 1,
                 "after one unlike: actor_count");
    unlike(&b, post);
    expect_removed(c, key, "the unlike that empties the group");
    ls_wait_idle();
    ls_expect_quiet(c, 500, "after the group went");

    page = ts_callf(PORT, "GET", &owner, NULL, 200, "/v1/notifications");
    cr_assert_eq(json_array_size(json_object_get(page, "items")), 0, "the group is gone");
    json_decref(page);
    ts_sse_close(c);
}

Test(live_groups, a_deleted_posts_groups_are_removed_by_key)
{
    ts_user_t owner, a;
    ts_register_all(PORT, "lsd", &owner, &a, NULL);
    char post[24], key[48];
    ts_post(PORT, &owner, "soon gone", post);
    snprintf(key, sizeof(key), "like:%s", post);
    ts_sse_t *c = ts_stream(PORT, &owner, NULL);
    ts_like(PORT, &a, post);
    cr_assert_eq(expect_group(c, key, "the like"), 1);
    ts_delete_post(PORT, &owner, post);
    expect_removed(c, key, "the post's deletion");
    ts_sse_close(c);
}

Test(live_groups, a_block_scrubs_the_blocked_actor_and_updates_the_group)
{
    ts_user_t owner, a, b;
    ts_register_all(PORT, "lsb", &owner, &a, &b, NULL);
    char post[24], key[48];
    ts_post(PORT, &owner, "liked, then a block", post);
    snprintf(key, sizeof(key), "like:%s", post);
    ts_sse_t *c = ts_stream(PORT, &owner, NULL);
    ts_like(PORT, &a, post);
    cr_assert_eq(expect_group(c, key, "a's like"), 1);
    ts_like(PORT, &b, post);
    cr_assert_eq(expect_group(c, key, "b's like"), 2);
    json_decref(ts_callf(PORT, "PUT", &owner, NULL, 204, "/v1/users/%s/block", a.id));
    cr_assert_eq(expect_group(c, key, "the block of a"), 1, "the group without a");
    json_decref(ts_callf(PORT, "PUT", &owner, NULL, 204, "/v1/users/%s/block", b.id));
    expect_removed(c, key, "the block of the group's last actor");
    ts_sse_close(c);
}

Test(live_groups, a_replayed_notification_whose_group_is_gone_is_sent_as_removed)
{
    ts_user_t owner, a;
    ts_register_all(PORT, "lsr", &owner, &a, NULL);
    char post[24], other[24], key[48], other_key[48], last[64];
    ts_post(PORT, &owner, "liked while away", post);
    ts_post(PORT, &owner, "liked while here", other);
    snprintf(key, sizeof(key), "like:%s", post);
    snprintf(other_key, sizeof(other_key), "like:%s", other);
    ls_wait_idle();
    ts_sse_t *c = ts_stream(PORT, &owner, NULL);
    /* Something to resume after. */
    ts_like(PORT, &a, other);
    json_t *n = ls_expect(c, "notification", last, LS_WAIT_MS, "a like while here");
    cr_assert_str_eq(ts_str(n, "group_key"), other_key);
    json_decref(n);
    ts_sse_close(c); /* away: the log goes on for the grace period */

    ts_like(PORT, &a, post);
    ls_wait_idle();
    unlike(&a, post);
    ls_wait_idle();

    c = ts_stream(PORT, &owner, last);
    expect_removed(c, key, "the logged notification, replayed after its group emptied");
    expect_removed(c, key, "the logged removal");
    ls_expect_quiet(c, 500, "after the replay");
    ts_sse_close(c);
}
