/* tests/live_state/test_counts.c -- the counts event: every stream of a user (two tokens, two
 * devices) hears the same unread count after a like, an unlike that empties the group and a
 * read on the other device; a burst of changes yields few counts events, never two within
 * 100 ms (by their ids, stamped by Redis' clock), the last carrying the final value; and a
 * reconnect with Last-Event-ID replays the logged counts. */
#include "tests/live_state/ls.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(live_counts, .init = ls_setup, .fini = ls_teardown, .timeout = LS_TIMEOUT);

/* What a stream showed of the counts, read until it showed want. */
typedef struct counts_seen_s {
    int n;                     /* counts events */
    long long last;            /* the last value (-1: none) */
    unsigned long long ms[64]; /* their ids' milliseconds, the first 64 */
} counts_seen_t;

/* Reads c (skipping other events) until a counts event of value want arrives; fails after
 * LS_WAIT_MS. Every counts event has data {"notifications_unread": N} alone. */
static void wait_counts(ts_sse_t *c, long long want, counts_seen_t *seen, const char *what)
{
    uint64_t deadline = ts_now_ms() + LS_WAIT_MS;
    for (;;) {
        uint64_t now = ts_now_ms();
        cr_assert(now < deadline, "%s: no counts of %lld within %d ms (last: %lld)", what, want,
                  LS_WAIT_MS, seen->last);
        ts_sse_item_t it = {0};
        ts_sse_kind_t k = ts_sse_next_event(c, &it, (int)(deadline - now));
        cr_assert(k == TS_SSE_EVENT, "%s: the stream ended or went quiet (last count %lld)", what,
                  seen->last);
        if (strcmp(it.type, "counts") != 0) {
            ts_sse_item_clear(&it);
            continue;
        }
        json_t *d = ts_sse_data(&it);
        long long v = ts_int(d, "notifications_unread");
        cr_assert(v >= 0 && json_object_size(d) == 1, "%s: counts data %s", what, it.data);
        json_decref(d);
        if (seen->n < 64)
            seen->ms[seen->n] = strtoull(it.id, NULL, 10);
        seen->n++;
        seen->last = v;
        ts_sse_item_clear(&it);
        if (v == want)
            return;
    }
}

/* Reads c for quiet_ms: no counts event may come (others may). */
static void expect_no_counts(ts_sse_t *c, int quiet_ms, const char *what)
{
    uint64_t deadline = ts_now_ms() + (uint64_t)quiet_ms;
    for (uint64_t now = ts_now_ms(); now < deadline; now = ts_now_ms()) {
        ts_sse_item_t it = {0};
        if (ts_sse_next_event(c, &it, (int)(deadline - now)) != TS_SSE_EVENT)
            return;
        cr_assert(strcmp(it.type, "counts") != 0, "%s: a late counts event: %s", what, it.data);
        ts_sse_item_clear(&it);
    }
}

static void second_device(const ts_user_t *u, ts_user_t *phone)
{
    *phone = *u;
    json_t *t = ts_callf(PORT, "POST", u, "{\"name\":\"phone\"}", 201, "/v1/tokens");
    snprintf(phone->token, sizeof(phone->token), "%s", ts_str(t, "token"));
    json_decref(t);
}

static long long unread_count(const ts_user_t *u)
{
    json_t *r = ts_callf(PORT, "GET", u, NULL, 200, "/v1/notifications/unread_count");
    long long n = ts_int(r, "count");
    json_decref(r);
    return n;
}

Test(live_counts, two_devices_agree_after_a_like_an_unlike_and_a_read_elsewhere)
{
    ts_user_t laptop, phone, fan;
    ts_register_all(PORT, "lsc", &laptop, &fan, NULL);
    second_device(&laptop, &phone);
    char p1[24], p2[24];
    ts_post(PORT, &laptop, "one", p1);
    ts_post(PORT, &laptop, "two", p2);
    ls_wait_idle();
    ts_sse_t *c[2] = {ts_stream(PORT, &laptop, NULL), ts_stream(PORT, &phone, NULL)};
    counts_seen_t seen[2] = {{.last = -1}, {.last = -1}};
    const char *dev[2] = {"laptop", "phone"};

    ts_like(PORT, &fan, p1);
    for (int i = 0; i < 2; i++)
        wait_counts(c[i], 1, &seen[i], dev[i]);
    ts_like(PORT, &fan, p2);
    for (int i = 0; i < 2; i++)
        wait_counts(c[i], 2, &seen[i], dev[i]);
    json_decref(ts_callf(PORT, "DELETE", &fan, NULL, 204, "/v1/posts/%s/like", p2));
    for (int i = 0; i < 2; i++)
        wait_counts(c[i], 1, &seen[i], dev[i]);
    cr_assert_eq(unread_count(&laptop), 1, "the REST count agrees with the streams");

    /* The phone reads everything: both devices hear 0. */
    json_t *page = ts_callf(PORT, "GET", &phone, NULL, 200, "/v1/notifications");
    char body[80];
    snprintf(body, sizeof(body), "{\"up_to\":\"%s\"}",
             ts_str(json_array_get(json_object_get(page, "items"), 0), "id"));
    json_decref(page);
    json_decref(ts_callf(PORT, "POST", &phone, body, 204, "/v1/notifications/read"));
    for (int i = 0; i < 2; i++)
        wait_counts(c[i], 0, &seen[i], dev[i]);
    cr_assert_eq(unread_count(&laptop), 0);
    for (int i = 0; i < 2; i++) {
        expect_no_counts(c[i], 400, dev[i]);
        ts_sse_close(c[i]);
    }
}

Test(live_counts, a_burst_gives_few_counts_spaced_by_the_window_and_the_last_value_wins)
{
    enum { LIKERS = 30 };
    ts_user_t owner, fans[LIKERS];
    char posts[LIKERS][24];
    ts_register(PORT, "lsk", &owner);
    for (int i = 0; i < LIKERS; i++) {
        ts_register(PORT, "lskf", &fans[i]);
        ts_post(PORT, &owner, "one of thirty", posts[i]);
    }
    ls_wait_idle();
    ts_sse_t *c = ts_stream(PORT, &owner, NULL);
    /* Thirty likes of thirty posts: thirty groups, the count going 1 … 30. */
    uint64_t t0 = ts_now_ms();
    for (int i = 0; i < LIKERS; i++)
        ts_like(PORT, &fans[i], posts[i]);
    uint64_t took = ts_now_ms() - t0;
    counts_seen_t seen = {.last = -1};
    wait_counts(c, LIKERS, &seen, "the burst");
    expect_no_counts(c, 500, "after the last value");
    fprintf(stderr, "live_counts: 30 likes sent in %llu ms gave %d counts events\n",
            (unsigned long long)took, seen.n);
    cr_assert(seen.n >= 1 && seen.n <= 15, "%d counts events for 30 changes", seen.n);
    for (int i = 1; i < seen.n && i < 64; i++)
        cr_assert(seen.ms[i] >= seen.ms[i - 1] + 100,
                  "counts events %d and %d are %llu ms apart, under the 100 ms window", i - 1, i,
                  seen.ms[i] - seen.ms[i - 1]);
    cr_assert_eq(unread_count(&owner), LIKERS);
    ts_sse_close(c);
}

Test(live_counts, a_reconnect_replays_the_logged_counts)
{
    ts_user_t owner, a, b;
    ts_register_all(PORT, "lsy", &owner, &a, &b, NULL);
    char p1[24], p2[24];
    ts_post(PORT, &owner, "one", p1);
    ts_post(PORT, &owner, "two", p2);
    ls_wait_idle();
    ts_sse_t *c = ts_stream(PORT, &owner, NULL);
    char after[64];
    json_decref(ts_callf(PORT, "PUT", &a, NULL, 204, "/v1/posts/%s/like", p1));
    json_decref(ls_expect(c, "notification", after, LS_WAIT_MS, "a's like"));
    ts_sse_close(c); /* away: the log goes on for the grace period */
    ts_like(PORT, &b, p2);
    ls_wait_idle();
    ts_sleep_ms(300); /* any counts held back by the window is flushed */

    c = ts_stream(PORT, &owner, after);
    counts_seen_t seen = {.last = -1};
    wait_counts(c, 1, &seen, "the replayed count after a's like");
    cr_assert_eq(seen.n, 1, "1 came first");
    wait_counts(c, 2, &seen, "the count after b's like, logged while away");
    cr_assert_eq(seen.n, 2, "then 2");
    expect_no_counts(c, 400, "after the replay");
    ts_sse_close(c);
}
