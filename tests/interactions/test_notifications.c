/* tests/interactions/test_notifications.c -- the grouped inbox over real HTTP: every type's
 * shape, follows grouped by day, replies and mentions never grouped, cursor pages across
 * groups, the read mark and the unread count, the types filter, and the --notifications-max
 * cap.
 */
#include "tests/interactions/ix.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

TestSuite(notifications, .init = ix_setup, .fini = ix_teardown, .timeout = 300);

static bool all_digits(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

static unsigned long long id_of(const json_t *n)
{
    return strtoull(ts_str(n, "id"), NULL, 10);
}

/* The UTC day now, as yyyymmdd. */
static int utc_day(void)
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    return (tm.tm_year + 1900) * 10000 + (tm.tm_mon + 1) * 100 + tm.tm_mday;
}

Test(notifications, every_type_has_its_shape)
{
    ts_user_t a, b;
    ts_register_all(PORT, "sh", &a, &b, NULL);
    char pa[24], rb[24], mb[24];
    ts_post(PORT, &a, "a's post", pa);
    ts_follow(PORT, &b, &a);
    ts_like(PORT, &b, pa);
    ix_repost(PORT, &b, pa);
    ix_reply(PORT, &b, "a plain reply", pa, rb);
    ix_mention(PORT, &b, &a, NULL, mb);
    ix_wait_actions(PORT, &a, b.id, "follow", NULL, "like", pa, "repost", pa, "reply", rb,
                    "mention", mb, NULL);

    ix_inbox_t in = ix_inbox(PORT, &a, NULL);
    cr_assert_eq(json_array_size(in.list), 5, "%s", in.text);
    size_t i;
    const json_t *n;
    unsigned long long prev = 0;
    json_array_foreach(in.list, i, n)
    {
        const char *type = ts_str(n, "type");
        cr_expect(all_digits(ts_str(n, "id")), "%s: id is a decimal string", type);
        if (i > 0)
            cr_expect_lt(id_of(n), prev, "newest first (%s after %llu)", type, prev);
        prev = id_of(n);
        const json_t *actors = json_object_get(n, "actors");
        cr_assert_eq(json_array_size(actors), 1, "%s: %s", type, in.text);
        const json_t *actor = json_array_get(actors, 0);
        cr_expect_str_eq(ts_str(actor, "id"), b.id);
        cr_expect_str_eq(ts_str(actor, "handle"), b.handle);
        cr_expect(json_is_string(json_object_get(actor, "display_name")));
        cr_expect_geq(ts_int(actor, "followers_count"), 0, "an actor is a full user");
        cr_expect_eq(ts_int(n, "actor_count"), 1);
        const char *at = ts_str(n, "created_at");
        cr_expect(strlen(at) >= 20 && at[strlen(at) - 1] == 'Z', "%s: created_at %s", type, at);
        cr_expect(json_is_false(json_object_get(n, "read")), "%s: unread", type);
        const json_t *post = json_object_get(n, "post");
        if (strcmp(type, "follow") == 0) {
            cr_expect_null(post, "a follow concerns no post");
        } else if (strcmp(type, "like") == 0 || strcmp(type, "repost") == 0) {
            cr_expect_str_eq(ts_str(post, "id"), pa, "%s: the post acted on", type);
            cr_expect_str_eq(ts_str(json_object_get(post, "author"), "id"), a.id);
            cr_expect_eq(ts_int(post, "like_count"), 1);
            cr_expect_eq(ts_int(post, "repost_count"), 1);
        } else if (strcmp(type, "reply") == 0) {
            cr_expect_str_eq(ts_str(post, "id"), rb, "a reply's post is the reply");
            cr_expect_str_eq(ts_str(post, "reply_to"), pa);
        } else {
            cr_expect_str_eq(type, "mention");
            cr_expect_str_eq(ts_str(post, "id"), mb, "a mention's post is the mentioning post");
            cr_expect_str_eq(
                json_string_value(json_array_get(json_object_get(post, "mentions"), 0)), a.id);
        }
    }
    ix_inbox_free(&in);
    cr_expect_eq(ix_unread(PORT, &a), 5);
    cr_expect_eq(ix_unread(PORT, &b), 0);
}

Test(notifications, follows_group_by_day_and_unfollow_takes_the_follower_out)
{
    int day = utc_day();
    ts_user_t a, f[3];
    ts_register(PORT, "fd_a", &a);
    for (int i = 0; i < 3; i++) {
        ts_register(PORT, "fd_f", &f[i]);
        ts_follow(PORT, &f[i], &a);
        json_decref(ix_wait_notification(PORT, &a, "follow", NULL, i + 1));
    }
    if (utc_day() != day)
        cr_skip_test("the follows straddled midnight UTC: two groups are right");
    json_t *list = ix_notifications(PORT, &a, NULL, 100);
    cr_assert_eq(json_array_size(list), 1, "three follows on one day are one notification");
    cr_expect(ix_actors_are(json_array_get(list, 0), IX_IDS(f[2].id, f[1].id, f[0].id)),
              "followers, newest first");
    json_decref(list);
    ts_follow(PORT, &f[0], &a); /* following again changes nothing */

    ts_unfollow(PORT, &f[1], &a);
    json_t *n = ix_wait_notification(PORT, &a, "follow", NULL, 2);
    cr_expect(ix_actors_are(n, IX_IDS(f[2].id, f[0].id)), "the unfollower is taken out");
    json_decref(n);
    ts_unfollow(PORT, &f[0], &a);
    ts_unfollow(PORT, &f[2], &a);
    ix_wait_no_notification(PORT, &a, "follow", NULL);
    ix_wait_unread(PORT, &a, 0);

    /* Following again is a new follow. */
    ts_follow(PORT, &f[1], &a);
    n = ix_wait_notification(PORT, &a, "follow", NULL, 1);
    cr_expect(ix_actors_are(n, IX_IDS(f[1].id)));
    json_decref(n);
}

Test(notifications, replies_and_mentions_are_never_grouped)
{
    ts_user_t a, b, c;
    ts_register_all(PORT, "ng", &a, &b, &c, NULL);
    char pa[24], r1[24], r2[24], r3[24], m1[24], m2[24];
    ts_post(PORT, &a, "reply to me", pa);
    ix_reply(PORT, &b, "first reply", pa, r1);
    ix_reply(PORT, &b, "second reply", pa, r2);
    ix_reply(PORT, &c, "third reply", pa, r3);
    ix_mention(PORT, &b, &a, NULL, m1);
    ix_mention(PORT, &b, &a, NULL, m2);
    const char *replies[] = {r1, r2, r3}, *mentions[] = {m1, m2};
    const ts_user_t *repliers[] = {&b, &b, &c};
    for (int i = 0; i < 3; i++)
        json_decref(ix_wait_actor(PORT, &a, "reply", replies[i], repliers[i]->id));
    for (int i = 0; i < 2; i++)
        json_decref(ix_wait_actor(PORT, &a, "mention", mentions[i], b.id));
    ix_inbox_t in = ix_inbox(PORT, &a, NULL);
    cr_expect_eq(json_array_size(in.list), 5, "one notification per reply and per mention: %s",
                 in.text);
    cr_expect_eq(ix_count(in.list, "reply", NULL), 3, "%s", in.text);
    cr_expect_eq(ix_count(in.list, "mention", NULL), 2, "%s", in.text);
    size_t i;
    const json_t *n;
    json_array_foreach(in.list, i, n)
    {
        cr_expect_eq(ts_int(n, "actor_count"), 1, "never grouped: %s", in.text);
    }
    ix_inbox_free(&in);
    cr_expect_eq(ix_unread(PORT, &a), 5);
}

Test(notifications, pages_walk_every_group_once_in_order)
{
    ts_user_t a, u[3];
    ts_register(PORT, "pg_a", &a);
    for (int i = 0; i < 3; i++)
        ts_register(PORT, "pg_u", &u[i]);
    char p1[24], p2[24], p3[24], r[24], m[24];
    ts_post(PORT, &a, "p1", p1);
    ts_post(PORT, &a, "p2", p2);
    ts_post(PORT, &a, "p3", p3);
    ts_like(PORT, &u[0], p1);
    ts_like(PORT, &u[1], p1);
    ts_like(PORT, &u[0], p2);
    ix_repost(PORT, &u[2], p3);
    ts_follow(PORT, &u[0], &a);
    ts_follow(PORT, &u[1], &a);
    ix_reply(PORT, &u[2], "a reply", p1, r);
    ix_mention(PORT, &u[1], &a, NULL, m);
    json_decref(ix_wait_notification(PORT, &a, "like", p1, 2));
    json_decref(ix_wait_notification(PORT, &a, "follow", NULL, 2));
    json_decref(ix_wait_actor(PORT, &a, "like", p2, u[0].id));
    ix_wait_actions(PORT, &a, u[2].id, "repost", p3, "reply", r, NULL);
    json_decref(ix_wait_actor(PORT, &a, "mention", m, u[1].id));

    ix_inbox_t in = ix_inbox(PORT, &a, NULL);
    cr_assert_eq(json_array_size(in.list), 6, "six groups: %s", in.text);
    int sizes[] = {1, 2, 4, 5, 6};
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        json_t *walked = ix_notifications(PORT, &a, NULL, sizes[k]);
        cr_expect_eq(json_array_size(walked), 6, "pages of %d: every group: %s", sizes[k], in.text);
        for (size_t i = 0; i < json_array_size(walked) && i < 6; i++) {
            cr_expect_str_eq(ts_str(json_array_get(walked, i), "id"),
                             ts_str(json_array_get(in.list, i), "id"),
                             "pages of %d: item %zu, no duplicate or gap", sizes[k], i);
            cr_expect(json_equal(json_array_get(walked, i), json_array_get(in.list, i)),
                      "pages of %d: item %zu is the same group", sizes[k], i);
        }
        json_decref(walked);
    }
    /* The first page of one names a cursor; the last page's is null. */
    json_t *page = ts_callf(PORT, "GET", &a, NULL, 200, "/v1/notifications?limit=1");
    cr_expect(json_is_string(json_object_get(page, "next_cursor")));
    cr_expect_str_eq(ts_str(json_array_get(json_object_get(page, "items"), 0), "id"),
                     ts_str(json_array_get(in.list, 0), "id"));
    json_decref(page);
    page = ts_callf(PORT, "GET", &a, NULL, 200, "/v1/notifications?limit=6");
    cr_expect(json_is_null(json_object_get(page, "next_cursor")), "six of six: the last page");
    json_decref(page);
    /* Paging a filtered list. */
    json_t *likes = ix_notifications(PORT, &a, "types=like", 1);
    cr_expect_eq(json_array_size(likes), 2);
    cr_expect_str_eq(ts_str(json_object_get(json_array_get(likes, 0), "post"), "id"), p2);
    cr_expect_str_eq(ts_str(json_object_get(json_array_get(likes, 1), "post"), "id"), p1);
    json_decref(likes);
    ix_inbox_free(&in);
}

static void mark_read(const ts_user_t *u, const char *up_to)
{
    char body[64];
    snprintf(body, sizeof(body), "{\"up_to\":\"%s\"}", up_to);
    json_decref(ts_callf(PORT, "POST", u, body, 204, "/v1/notifications/read"));
}

Test(notifications, read_up_to_marks_older_groups_and_later_activity_is_unread_again)
{
    ts_user_t a, b, c;
    ts_register_all(PORT, "rd", &a, &b, &c, NULL);
    char p[4][24];
    for (int i = 0; i < 4; i++) {
        ts_post(PORT, &a, "to be liked", p[i]);
        ts_like(PORT, &b, p[i]);
    }
    for (int i = 0; i < 4; i++)
        json_decref(ix_wait_actor(PORT, &a, "like", p[i], b.id));
    cr_expect_eq(ix_unread(PORT, &a), 4);
    json_t *list = ix_notifications(PORT, &a, NULL, 100);
    cr_assert_eq(json_array_size(list), 4);
    for (int i = 0; i < 4; i++)
        cr_assert_str_eq(ts_str(json_object_get(json_array_get(list, (size_t)i), "post"), "id"),
                         p[3 - i], "likes in the order they were made, newest first");
    char newest[24], third[24], oldest[24];
    snprintf(newest, sizeof(newest), "%s", ts_str(json_array_get(list, 0), "id"));
    snprintf(third, sizeof(third), "%s", ts_str(json_array_get(list, 2), "id"));
    snprintf(oldest, sizeof(oldest), "%s", ts_str(json_array_get(list, 3), "id"));
    json_decref(list);

    mark_read(&a, third);
    cr_expect_eq(ix_unread(PORT, &a), 2, "two groups above the mark");
    list = ix_notifications(PORT, &a, NULL, 100);
    bool want[] = {false, false, true, true};
    for (size_t i = 0; i < 4; i++)
        cr_expect_eq(json_is_true(json_object_get(json_array_get(list, i), "read")), want[i],
                     "item %zu's read flag", i);
    json_decref(list);

    mark_read(&a, oldest); /* the mark never moves back */
    cr_expect_eq(ix_unread(PORT, &a), 2);
    mark_read(&a, newest);
    cr_expect_eq(ix_unread(PORT, &a), 0);
    mark_read(&a, IX_UNKNOWN_ID); /* beyond the newest: the mark stops at the newest */
    cr_expect_eq(ix_unread(PORT, &a), 0);
    list = ix_notifications(PORT, &a, NULL, 100);
    for (size_t i = 0; i < 4; i++)
        cr_expect(json_is_true(json_object_get(json_array_get(list, i), "read")));
    json_decref(list);

    /* A later notification is unread, although up_to named an id above it … */
    char p5[24];
    ts_post(PORT, &a, "later", p5);
    ts_like(PORT, &c, p5);
    ix_wait_unread(PORT, &a, 1);
    list = ix_notifications(PORT, &a, NULL, 100);
    cr_expect_str_eq(ts_str(json_object_get(json_array_get(list, 0), "post"), "id"), p5);
    cr_expect(json_is_false(json_object_get(json_array_get(list, 0), "read")));
    cr_expect(json_is_true(json_object_get(json_array_get(list, 1), "read")));
    json_decref(list);

    /* … and so is a read group a new actor joins, now on top with a new id. */
    ts_like(PORT, &c, p[0]);
    ix_wait_unread(PORT, &a, 2);
    list = ix_notifications(PORT, &a, NULL, 100);
    const json_t *top = json_array_get(list, 0);
    cr_expect_str_eq(ts_str(json_object_get(top, "post"), "id"), p[0]);
    cr_expect(json_is_false(json_object_get(top, "read")));
    cr_expect_eq(ts_int(top, "actor_count"), 2);
    cr_expect_gt(id_of(top), strtoull(newest, NULL, 10));
    json_decref(list);

    /* Someone else's read mark is their own. */
    cr_expect_eq(ix_unread(PORT, &b), 0);
    mark_read(&b, newest); /* b has no notification: nothing changes */
    cr_expect_eq(ix_unread(PORT, &b), 0);
}

Test(notifications, types_filter_selects_and_bad_types_are_400)
{
    ts_user_t a, b;
    ts_register_all(PORT, "ty", &a, &b, NULL);
    char pa[24], r[24], m[24];
    ts_post(PORT, &a, "pa", pa);
    ts_follow(PORT, &b, &a);
    ts_like(PORT, &b, pa);
    ix_reply(PORT, &b, "reply", pa, r);
    ix_mention(PORT, &b, &a, NULL, m);
    ix_wait_actions(PORT, &a, b.id, "follow", NULL, "like", pa, "reply", r, "mention", m, NULL);

    static const struct {
        const char *query;
        int follow, like, repost, reply, mention;
    } cases[] = {
        {"types=like", 0, 1, 0, 0, 0},
        {"types=follow,mention", 1, 0, 0, 0, 1},
        {"types=repost", 0, 0, 0, 0, 0},
        {"types=reply,like,follow", 1, 1, 0, 1, 0},
        {"types=like,like", 0, 1, 0, 0, 0},
        {"types=follow,like,repost,reply,mention", 1, 1, 0, 1, 1},
        {"types=mention%2Creply", 0, 0, 0, 1, 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ix_inbox_t in = ix_inbox(PORT, &a, cases[i].query);
        cr_expect_eq(ix_count(in.list, "follow", NULL), cases[i].follow, "%s: %s", cases[i].query,
                     in.text);
        cr_expect_eq(ix_count(in.list, "like", NULL), cases[i].like, "%s: %s", cases[i].query,
                     in.text);
        cr_expect_eq(ix_count(in.list, "repost", NULL), cases[i].repost, "%s: %s", cases[i].query,
                     in.text);
        cr_expect_eq(ix_count(in.list, "reply", NULL), cases[i].reply, "%s: %s", cases[i].query,
                     in.text);
        cr_expect_eq(ix_count(in.list, "mention", NULL), cases[i].mention, "%s: %s", cases[i].query,
                     in.text);
        cr_expect_eq(json_array_size(in.list),
                     (size_t)(cases[i].follow + cases[i].like + cases[i].repost + cases[i].reply +
                              cases[i].mention),
                     "%s: %s", cases[i].query, in.text);
        ix_inbox_free(&in);
    }
    static const char *const bad[] = {
        "types=likes",       "types=",     "types=like,",   "types=,like",
        "types=like,,reply", "types=LIKE", "types=like%20", "types=unknown"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ts_resp_t resp;
        char path[96], ct[96];
        snprintf(path, sizeof(path), "/v1/notifications?%s", bad[i]);
        ts_http(PORT, "GET", path, a.token, NULL, NULL, &resp);
        cr_expect_eq(resp.status, 400, "%s: %d %s", bad[i], resp.status, resp.body);
        const char *got = ts_resp_header(&resp, "Content-Type", ct, sizeof(ct));
        cr_expect(got && strncmp(got, "application/problem+json", 24) == 0, "%s: a problem",
                  bad[i]);
        ts_resp_free(&resp);
    }
}

/* ---- the cap ------------------------------------------------------------------------------- */

TestSuite(notifications_cap, .fini = ix_teardown, .timeout = 300);

/* Are the like groups of list exactly posts want[0..n), in that order? */
static bool likes_are(const json_t *list, char (*want)[24], size_t n)
{
    if (json_array_size(list) != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        const json_t *it = json_array_get(list, i);
        if (strcmp(ts_str(it, "type"), "like") != 0 ||
            strcmp(ts_str(json_object_get(it, "post"), "id"), want[i]) != 0)
            return false;
    }
    return true;
}

Test(notifications_cap, keeps_the_newest_groups)
{
    const char *extra[] = {"--notifications-max", "5", NULL};
    ix_start(extra);

    ts_user_t a, b, f;
    ts_register_all(PORT, "cap", &a, &b, &f, NULL);
    enum { N = 8, CAP = 5 };
    char p[N][24];
    for (int i = 0; i < N; i++) {
        ts_post(PORT, &a, "capped", p[i]);
        ts_like(PORT, &b, p[i]);
    }
    char want[CAP][24];
    for (int i = 0; i < CAP; i++)
        snprintf(want[i], sizeof(want[i]), "%s", p[N - 1 - i]);
    uint64_t deadline = ts_now_ms() + IX_WAIT_MS;
    for (;;) {
        json_t *list = ix_notifications(PORT, &a, NULL, 100);
        bool ok = likes_are(list, want, CAP);
        if (!ok && ts_now_ms() > deadline) {
            char *s = json_dumps(list, JSON_COMPACT);
            cr_assert_fail("the newest %d like groups, newest first, were not all that was left "
                           "within %d ms: %s",
                           CAP, IX_WAIT_MS, s);
        }
        json_decref(list);
        if (ok)
            break;
        ts_sleep_ms(25);
    }
    cr_expect_eq(ix_unread(PORT, &a), CAP, "the unread count counts the groups kept");
    json_t *walked = ix_notifications(PORT, &a, NULL, 1);
    cr_expect(likes_are(walked, want, CAP), "pages of one walk the kept groups");
    json_decref(walked);

    /* One more group pushes the oldest kept one out. */
    ts_follow(PORT, &f, &a);
    json_decref(ix_wait_actor(PORT, &a, "follow", NULL, f.id));
    ix_inbox_t in = ix_inbox(PORT, &a, NULL);
    cr_expect_eq(json_array_size(in.list), CAP, "%s", in.text);
    cr_expect_str_eq(ts_str(json_array_get(in.list, 0), "type"), "follow", "%s", in.text);
    cr_expect_eq(ix_count(in.list, "like", p[N - CAP]), 0, "the oldest kept group is gone: %s",
                 in.text);
    for (int i = N - CAP + 1; i < N; i++)
        cr_expect_eq(ix_count(in.list, "like", p[i]), 1, "%s", in.text);
    ix_inbox_free(&in);
    cr_expect_eq(ix_unread(PORT, &a), CAP);
}
