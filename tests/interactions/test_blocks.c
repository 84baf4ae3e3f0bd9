/* tests/interactions/test_blocks.c -- blocks (both ways: follows ended and refused, timeline
 * entries and notifications hidden, those written before included, nothing new written) and
 * mutes (one way: the muted user's posts, reposts and actions hidden from the muter only),
 * and the /v1/blocks and /v1/mutes lists.
 *
 * A negative ("nothing was written") is checked once the job queue is empty (ix_wait_idle),
 * after a sentinel too: the same action by an unrelated user, queued after the ones under
 * test, whose effect is waited for, so that the positive path is seen to work. */
#include "tests/interactions/ix.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(blocks, .init = ix_setup, .fini = ix_teardown, .timeout = 300);
TestSuite(mutes, .init = ix_setup, .fini = ix_teardown, .timeout = 300);

static long long user_count(const ts_user_t *as, const ts_user_t *u, const char *field)
{
    json_t *j = ts_callf(PORT, "GET", as, NULL, 200, "/v1/users/%s", u->id);
    long long v = ts_int(j, field);
    json_decref(j);
    return v;
}

/* Is other among u's followers (or following, when following is true)? */
static bool edge(const ts_user_t *u, const char *which, const ts_user_t *other)
{
    json_t *j = ts_callf(PORT, "GET", u, NULL, 200, "/v1/users/%s/%s?limit=100", u->id, which);
    bool has = ix_list_has(j, other->id);
    json_decref(j);
    return has;
}

/* Are u's /v1/blocks or /v1/mutes exactly the users want[0..n), newest first, one page? */
static bool relations_are(const ts_user_t *u, const char *which, const char *const *want, size_t n)
{
    json_t *j = ts_callf(PORT, "GET", u, NULL, 200, "/v1/%s", which);
    const json_t *items = json_object_get(j, "items"), *v;
    bool same = json_array_size(items) == n;
    size_t i;
    json_array_foreach(items, i, v)
    {
        same = same && strcmp(ts_str(v, "id"), want[i]) == 0;
        cr_expect(*ts_str(v, "handle"), "a listed user has a handle");
    }
    cr_expect(json_is_null(json_object_get(j, "next_cursor")));
    json_decref(j);
    return same;
}

/* ---- blocks -------------------------------------------------------------------------------- */

Test(blocks, end_follows_both_ways_and_refuse_follows_until_lifted)
{
    ts_user_t a, b, c;
    ts_register_all(PORT, "bf", &a, &b, &c, NULL);
    ts_follow(PORT, &a, &b);
    ts_follow(PORT, &b, &a);
    ts_follow(PORT, &c, &a);

    json_decref(ts_callf(PORT, "PUT", &a, NULL, 204, "/v1/users/%s/block", b.id));
    cr_expect_eq(user_count(&a, &a, "followers_count"), 1, "only c still follows a");
    cr_expect_eq(user_count(&a, &a, "following_count"), 0);
    cr_expect_eq(user_count(&b, &b, "followers_count"), 0);
    cr_expect_eq(user_count(&b, &b, "following_count"), 0);
    cr_expect(!edge(&a, "followers", &b) && !edge(&a, "following", &b));
    cr_expect(!edge(&b, "followers", &a) && !edge(&b, "following", &a));
    cr_expect(edge(&a, "followers", &c));

    cr_expect_eq(ts_status(PORT, "PUT", &b, NULL, "/v1/users/%s/follow", a.id), 403,
                 "the blocked user cannot follow the blocker");
    cr_expect_eq(ts_status(PORT, "PUT", &a, NULL, "/v1/users/%s/follow", b.id), 403,
                 "the blocker cannot follow the blocked user");
    cr_expect(!edge(&a, "followers", &b) && !edge(&b, "followers", &a));

    /* Listed most recent first; blocking again keeps the original place. */
    json_decref(ts_callf(PORT, "PUT", &a, NULL, 204, "/v1/users/%s/block", c.id));
    json_decref(ts_callf(PORT, "PUT", &a, NULL, 204, "/v1/users/%s/block", b.id));
    cr_expect(relations_are(&a, "blocks", IX_IDS(c.id, b.id)), "a's blocks are c then b");
    cr_expect(relations_are(&b, "blocks", NULL, 0), "being blocked is not blocking");
    cr_expect_eq(ts_status(PORT, "PUT", &c, NULL, "/v1/users/%s/follow", a.id), 403,
                 "the block of c ended c's follow and refuses a new one");
    cr_expect(!edge(&a, "followers", &c));

    /* Lifting it: idempotent; the follows it ended stay ended; following works again. */
    json_decref(ts_callf(PORT, "DELETE", &a, NULL, 204, "/v1/users/%s/block", b.id));
    json_decref(ts_callf(PORT, "DELETE", &a, NULL, 204, "/v1/users/%s/block", b.id));
    cr_expect(relations_are(&a, "blocks", IX_IDS(c.id)));
    cr_expect(!edge(&a, "following", &b) && !edge(&b, "following", &a));
    ts_follow(PORT, &b, &a);
    ts_follow(PORT, &a, &b);
    cr_expect(edge(&a, "followers", &b) && edge(&b, "followers", &a));
}

Test(blocks, hide_timeline_entries_written_before_both_ways)
{
    ts_user_t a, b, c, d;
    ts_register_all(PORT, "bt", &a, &b, &c, &d, NULL);
    ts_follow(PORT, &a, &c); /* a gets b's post through c's repost */
    ts_follow(PORT, &b, &a);
    ts_follow(PORT, &d, &c);
    char pb[24], pa[24], pc[24];
    ts_post(PORT, &b, "by b", pb);
    ts_post(PORT, &a, "by a", pa);
    ts_post(PORT, &c, "by c", pc);
    ix_repost(PORT, &c, pb);
    json_t *e = ix_wait_timeline_has(PORT, &a, pb);
    cr_expect_str_eq(ts_str(json_object_get(e, "reposted_by"), "id"), c.id);
    json_decref(e);
    json_decref(ix_wait_timeline_has(PORT, &a, pc));
    json_decref(ix_wait_timeline_has(PORT, &b, pa));

    json_decref(ts_callf(PORT, "PUT", &a, NULL, 204, "/v1/users/%s/block", b.id));
    /* At once, before the engine has removed anything. */
    cr_expect_eq(ix_timeline_count(PORT, &a, pb), 0, "b's post (via c's repost) is hidden from a");
    cr_expect_eq(ix_timeline_count(PORT, &a, pc), 1);
    cr_expect_eq(ix_timeline_count(PORT, &b, pa), 0, "a's post is hidden from b");
    cr_expect_eq(ix_timeline_count(PORT, &b, pb), 1, "b keeps its own post");

    /* Nothing new either: b's next post reposted by c, then c's own post as a sentinel. */
    char pb2[24], pc2[24], pa2[24];
    ts_post(PORT, &b, "by b, after the block", pb2);
    ix_repost(PORT, &c, pb2);
    ts_post(PORT, &c, "by c, after the block", pc2);
    ts_post(PORT, &a, "by a, after the block", pa2);
    ix_wait_timeline_holds(PORT, &d, pb2, pc2, NULL);
    ix_wait_timeline_holds(PORT, &a, pc2, pa2, NULL);
    ix_wait_idle();
    cr_expect_eq(ix_timeline_count(PORT, &a, pb), 0);
    cr_expect_eq(ix_timeline_count(PORT, &a, pb2), 0, "b's post after the block is hidden from a");
    cr_expect_eq(ix_timeline_count(PORT, &b, pa), 0);
    cr_expect_eq(ix_timeline_count(PORT, &b, pa2), 0);
    /* Nor does either read the other's post: it does not exist for them (tests/safety). */
    json_decref(ts_callf(PORT, "GET", &b, NULL, 404, "/v1/posts/%s", pa));
}

Test(blocks, hide_notifications_written_before_both_ways)
{
    ts_user_t a, b, c;
    ts_register_all(PORT, "bn", &a, &b, &c, NULL);
    char pa[24], pb[24], rb[24], mb[24];
    ts_post(PORT, &a, "a's post", pa);
    ts_post(PORT, &b, "b's post", pb);
    ts_follow(PORT, &b, &a);
    ts_like(PORT, &b, pa);
    ts_like(PORT, &c, pa);
    ix_reply(PORT, &b, "b replies", pa, rb);
    ix_mention(PORT, &b, &a, NULL, mb);
    ts_like(PORT, &a, pb);
    ts_follow(PORT, &a, &b);
    json_decref(ix_wait_notification(PORT, &a, "like", pa, 2));
    ix_wait_actions(PORT, &a, b.id, "follow", NULL, "reply", rb, "mention", mb, NULL);
    ix_wait_actions(PORT, &b, a.id, "like", pb, "follow", NULL, NULL);
    cr_expect_eq(ix_unread(PORT, &a), 4);
    cr_expect_eq(ix_unread(PORT, &b), 2);

    json_decref(ts_callf(PORT, "PUT", &a, NULL, 204, "/v1/users/%s/block", b.id));
    /* At once: b's actions are gone from a's notifications, and a's from b's. */
    ix_inbox_t in = ix_inbox(PORT, &a, NULL);
    cr_expect_eq(json_array_size(in.list), 1, "only c's like is left for a: %s", in.text);
    const json_t *n = ix_find(in.list, "like", pa);
    cr_expect(n && ix_actors_are(n, IX_IDS(c.id)), "the like group lost b: %s", in.text);
    cr_expect_eq(ts_int(n, "actor_count"), 1, "actor_count no longer counts b: %s", in.text);
    ix_inbox_free(&in);
    cr_expect_eq(ix_inbox_size(PORT, &b), 0, "a's actions are gone from b's");

    /* Then the engine removes them: the unread counts follow. */
    ix_wait_unread(PORT, &a, 1);
    ix_wait_unread(PORT, &b, 0);
    in = ix_inbox(PORT, &a, NULL);
    cr_expect_eq(json_array_size(in.list), 1, "%s", in.text);
    cr_expect_eq(ts_int(ix_find(in.list, "like", pa), "actor_count"), 1, "%s", in.text);
    ix_inbox_free(&in);

    /* Lifting the block brings none of them back. */
    json_decref(ts_callf(PORT, "DELETE", &a, NULL, 204, "/v1/users/%s/block", b.id));
    cr_expect_eq(ix_inbox_size(PORT, &a), 1);
    cr_expect_eq(ix_inbox_size(PORT, &b), 0);
}

Test(blocks, nothing_new_crosses_a_block)
{
    ts_user_t a, b, c;
    ts_register_all(PORT, "bx", &a, &b, &c, NULL);
    char pa[24], pb[24];
    ts_post(PORT, &a, "a's post", pa);
    ts_post(PORT, &b, "b's post", pb);
    json_decref(ts_callf(PORT, "PUT", &b, NULL, 204, "/v1/users/%s/block", a.id));

    /* Each acts on the other: a mention is published without it, a like, a repost or a reply
     * answers as for a post that does not exist (tests/safety/test_blocks.c checks the bodies) … */
    char m_ba[24], m_ab[24], text[80];
    ix_mention(PORT, &b, &a, NULL, m_ba);
    ix_mention(PORT, &a, &b, NULL, m_ab);
    const ts_user_t *actor[] = {&b, &a};
    const char *target[] = {pa, pb};
    for (int k = 0; k < 2; k++) {
        cr_expect_eq(ts_status(PORT, "PUT", actor[k], NULL, "/v1/posts/%s/like", target[k]), 404);
        cr_expect_eq(ts_status(PORT, "POST", actor[k], NULL, "/v1/posts/%s/repost", target[k]),
                     404);
        snprintf(text, sizeof(text), "{\"text\":\"a reply\",\"reply_to\":\"%s\"}", target[k]);
        cr_expect_eq(ts_status(PORT, "POST", actor[k], text, "/v1/posts"), 422);
    }
    cr_expect_eq(ts_status(PORT, "PUT", &a, NULL, "/v1/users/%s/follow", b.id), 403);
    cr_expect_eq(ts_status(PORT, "PUT", &b, NULL, "/v1/users/%s/follow", a.id), 403);
    cr_expect_eq(ix_like_count(PORT, &c, pa), 0);
    cr_expect_eq(ix_repost_count(PORT, &c, pb), 0);

    /* … but notify nothing. c does the same afterwards, as the sentinel. */
    char m_ca[24], m_cb[24];
    ix_mention(PORT, &c, &a, NULL, m_ca);
    ix_mention(PORT, &c, &b, NULL, m_cb);
    ts_like(PORT, &c, pa);
    ts_like(PORT, &c, pb);
    ix_repost(PORT, &c, pa);
    ix_repost(PORT, &c, pb);
    ts_follow(PORT, &c, &a);
    ts_follow(PORT, &c, &b);
    const ts_user_t *who[] = {&a, &b};
    const char *mine[] = {pa, pb}, *sentinel[] = {m_ca, m_cb};
    for (int k = 0; k < 2; k++) {
        const ts_user_t *u = who[k];
        ix_wait_actions(PORT, u, c.id, "mention", sentinel[k], "like", mine[k], "repost", mine[k],
                        "follow", NULL, NULL);
        ix_wait_idle();
        ix_inbox_t in = ix_inbox(PORT, u, NULL);
        cr_expect_eq(json_array_size(in.list), 4, "%s has c's four notifications only: %s",
                     u->handle, in.text);
        size_t i;
        const json_t *n;
        json_array_foreach(in.list, i, n)
        {
            cr_expect_eq(ts_int(n, "actor_count"), 1, "%s: nobody but c: %s", u->handle, in.text);
        }
        ix_inbox_free(&in);
        cr_expect_eq(ix_unread(PORT, u), 4);
    }
}

/* ---- mutes --------------------------------------------------------------------------------- */

Test(mutes, hide_the_muted_users_posts_and_reposts_from_the_muter_only)
{
    ts_user_t a, b, c, d, g;
    ts_register_all(PORT, "mt", &a, &b, &c, &d, &g, NULL);
    ts_follow(PORT, &a, &b);
    ts_follow(PORT, &a, &c);
    ts_follow(PORT, &b, &a);
    ts_follow(PORT, &g, &b);
    ts_follow(PORT, &g, &c);
    ts_follow(PORT, &d, &c); /* d gets c's reposts of b's posts */
    char b1[24], d1[24];
    ts_post(PORT, &b, "b1", b1);
    ts_post(PORT, &d, "d1", d1);
    ix_repost(PORT, &c, d1);
    ix_wait_timeline_holds(PORT, &a, b1, d1, NULL);

    json_decref(ts_callf(PORT, "PUT", &a, NULL, 204, "/v1/users/%s/mute", b.id));
    json_decref(ts_callf(PORT, "PUT", &a, NULL, 204, "/v1/users/%s/mute", b.id)); /* idempotent */
    cr_expect_eq(ix_timeline_count(PORT, &a, b1), 0, "the muted user's post is hidden at once");
    cr_expect_eq(ix_timeline_count(PORT, &a, d1), 1);
    cr_expect(relations_are(&a, "mutes", IX_IDS(b.id)), "a mutes b");
    cr_expect(relations_are(&b, "mutes", NULL, 0));
    cr_expect(edge(&a, "following", &b) && edge(&b, "following", &a), "follows are untouched");

    /* b's new post, reposted by c, stays out of a's timeline; c's own post comes in. */
    char b2[24], c1[24], a1[24];
    ts_post(PORT, &b, "b2", b2);
    ix_repost(PORT, &c, b2);
    ts_post(PORT, &c, "c1", c1);
    ts_post(PORT, &a, "a1", a1);
    ix_wait_timeline_holds(PORT, &g, b2, c1, NULL);
    json_decref(ix_wait_timeline_has(PORT, &a, c1));
    json_decref(ix_wait_timeline_has(PORT, &d, b2)); /* c's repost reached c's followers */
    json_decref(ix_wait_timeline_has(PORT, &b, a1)); /* one way: b still reads a */
    ix_wait_idle();
    cr_expect_eq(ix_timeline_count(PORT, &a, b1), 0);
    cr_expect_eq(ix_timeline_count(PORT, &a, b2), 0,
                 "nor the muted user's posts reposted by others");

    /* Muting the reposter hides what it reposted, and its own posts, at once. */
    json_decref(ts_callf(PORT, "PUT", &a, NULL, 204, "/v1/users/%s/mute", c.id));
    cr_expect_eq(ix_timeline_count(PORT, &a, d1), 0, "the muted reposter's repost is hidden");
    cr_expect_eq(ix_timeline_count(PORT, &a, c1), 0);
    cr_expect(relations_are(&a, "mutes", IX_IDS(c.id, b.id)), "most recent mute first");

    /* Unmuting: posts of a user still followed come back. */
    json_decref(ts_callf(PORT, "DELETE", &a, NULL, 204, "/v1/users/%s/mute", c.id));
    json_decref(ix_wait_timeline_has(PORT, &a, c1));
    json_decref(ts_callf(PORT, "DELETE", &a, NULL, 204, "/v1/users/%s/mute", b.id));
    json_decref(ts_callf(PORT, "DELETE", &a, NULL, 204, "/v1/users/%s/mute", b.id));
    ix_wait_timeline_holds(PORT, &a, b2, b1, NULL);
    cr_expect(relations_are(&a, "mutes", NULL, 0));
}

Test(mutes, hide_the_muted_users_actions_from_the_muters_notifications_only)
{
    ts_user_t a, b, c;
    ts_register_all(PORT, "mn", &a, &b, &c, NULL);
    char a1[24], b1[24], m1[24];
    ts_post(PORT, &a, "a1", a1);
    ts_post(PORT, &b, "b1", b1);
    ts_follow(PORT, &b, &a);
    ts_like(PORT, &b, a1);
    ts_like(PORT, &c, a1);
    ix_mention(PORT, &b, &a, NULL, m1);
    ts_like(PORT, &a, b1);
    json_decref(ix_wait_notification(PORT, &a, "like", a1, 2));
    ix_wait_actions(PORT, &a, b.id, "follow", NULL, "mention", m1, NULL);
    json_decref(ix_wait_actor(PORT, &b, "like", b1, a.id));

    json_decref(ts_callf(PORT, "PUT", &a, NULL, 204, "/v1/users/%s/mute", b.id));
    ix_inbox_t in = ix_inbox(PORT, &a, NULL);
    cr_expect_eq(json_array_size(in.list), 1, "only c's like is left for a, at once: %s", in.text);
    const json_t *n = ix_find(in.list, "like", a1);
    cr_expect(n && ix_actors_are(n, IX_IDS(c.id)) && ts_int(n, "actor_count") == 1, "%s", in.text);
    ix_inbox_free(&in);
    json_decref(ix_wait_actor(PORT, &b, "like", b1, a.id)); /* one way: b's are untouched */

    /* New actions of b: none notified to a. a's, to b, still are. */
    char a2[24], r1[24], m2[24], m3[24];
    ts_post(PORT, &a, "a2", a2);
    ix_reply(PORT, &b, "b replies", a1, r1);
    ix_repost(PORT, &b, a1);
    ix_mention(PORT, &b, &a, NULL, m2);
    ts_like(PORT, &b, a2);
    ts_follow(PORT, &a, &b);
    ix_mention(PORT, &c, &a, NULL, m3); /* sentinels */
    ts_like(PORT, &c, a2);
    ix_wait_actions(PORT, &a, c.id, "mention", m3, "like", a2, NULL);
    json_decref(ix_wait_actor(PORT, &b, "follow", NULL, a.id));
    ix_wait_idle();
    in = ix_inbox(PORT, &a, NULL);
    cr_expect_eq(json_array_size(in.list), 3, "like a1, like a2 and mention m3, all by c: %s",
                 in.text);
    cr_expect_eq(ix_count(in.list, "reply", r1), 0, "%s", in.text);
    cr_expect_eq(ix_count(in.list, "repost", a1), 0, "%s", in.text);
    cr_expect_eq(ix_count(in.list, "mention", m2), 0, "%s", in.text);
    n = ix_find(in.list, "like", a2);
    cr_expect(n && ix_actors_are(n, IX_IDS(c.id)) && ts_int(n, "actor_count") == 1, "%s", in.text);
    ix_inbox_free(&in);
    ix_wait_unread(PORT, &a, 3);

    /* Unmuting brings none of the removed ones back; b's next action is notified. */
    json_decref(ts_callf(PORT, "DELETE", &a, NULL, 204, "/v1/users/%s/mute", b.id));
    in = ix_inbox(PORT, &a, NULL);
    cr_expect_eq(json_array_size(in.list), 3, "%s", in.text);
    cr_expect_eq(ix_count(in.list, "follow", NULL), 0, "%s", in.text);
    cr_expect_eq(ix_count(in.list, "mention", m1), 0, "%s", in.text);
    ix_inbox_free(&in);
    char a3[24];
    ts_post(PORT, &a, "a3", a3);
    ts_like(PORT, &b, a3);
    json_t *got = ix_wait_actor(PORT, &a, "like", a3, b.id);
    cr_expect_eq(ts_int(got, "actor_count"), 1);
    json_decref(got);
}

/* ---- with no engine running, and after every job ------------------------------------------
 * With the server restarted with --engine off, nothing but the read-time filter stands
 * between a block or mute and the entries and notifications written before it. */

TestSuite(blocks_alone, .fini = ix_teardown, .timeout = 300);

Test(blocks_alone, read_time_filter_hides_everything_written_before_with_no_engine_running)
{
    ix_start(NULL);
    enum { OTHERS = 13 };
    ts_user_t a, b, c, l[OTHERS];
    ts_register_all(PORT, "ro", &a, &b, &c, NULL);
    for (int i = 0; i < OTHERS; i++)
        ts_register(PORT, "ro_l", &l[i]);
    char pa[24], pb[24], pc[24], mb[24], mc[24];
    ts_post(PORT, &a, "a's post", pa);
    ts_post(PORT, &b, "b's post", pb);
    ts_post(PORT, &c, "c's post", pc);
    ts_follow(PORT, &a, &b);
    ts_follow(PORT, &a, &c);
    ts_follow(PORT, &b, &a);
    ts_follow(PORT, &c, &a);
    /* b and c are the oldest of 15 likers of a's post. */
    ts_like(PORT, &b, pa);
    ts_like(PORT, &c, pa);
    for (int i = 0; i < OTHERS; i++)
        ts_like(PORT, &l[i], pa);
    ix_mention(PORT, &b, &a, NULL, mb);
    ix_mention(PORT, &c, &a, NULL, mc);
    ix_wait_idle();
    json_decref(ix_wait_notification(PORT, &a, "like", pa, OTHERS + 2));
    json_decref(ix_wait_notification(PORT, &a, "follow", NULL, 2));

    /* From here on no engine runs: only reading can hide anything. */
    ix_stop();
    const char *no_engine[] = {"--engine", "off", NULL};
    ix_start(no_engine);
    json_decref(ts_callf(PORT, "PUT", &a, NULL, 204, "/v1/users/%s/block", b.id));
    json_decref(ts_callf(PORT, "PUT", &a, NULL, 204, "/v1/users/%s/mute", c.id));

    cr_expect_eq(ix_timeline_count(PORT, &a, pb), 0, "the blocked user's post is hidden from a");
    cr_expect_eq(ix_timeline_count(PORT, &a, pc), 0, "the muted user's post is hidden from a");
    cr_expect_eq(ix_timeline_count(PORT, &a, pa), 1);
    cr_expect_eq(ix_timeline_count(PORT, &b, pa), 0, "the blocker's post is hidden from b");
    cr_expect_eq(ix_timeline_count(PORT, &c, pa), 1, "a mute is one-way");

    ix_inbox_t in = ix_inbox(PORT, &a, NULL);
    cr_expect_eq(ix_count(in.list, "follow", NULL), 0, "both followers are hidden: %s", in.text);
    cr_expect_eq(ix_count(in.list, "mention", mb), 0, "%s", in.text);
    cr_expect_eq(ix_count(in.list, "mention", mc), 0, "%s", in.text);
    const json_t *n = ix_find(in.list, "like", pa);
    cr_assert(n, "the like group stays: %s", in.text);
    cr_expect_eq(ts_int(n, "actor_count"), OTHERS,
                 "actor_count leaves out the blocked and the muted liker, however old: %s",
                 in.text);
    cr_expect(ix_actors_are(n, IX_IDS(l[OTHERS - 1].id, l[OTHERS - 2].id, l[OTHERS - 3].id)), "%s",
              in.text);
    ix_inbox_free(&in);
}

/* The block hides b's posts and reposts from a; the engine removes those written before, and
 * the fan-out writes none during the block. So lifting it brings nothing back. */
Test(blocks_alone, unblocking_brings_back_nothing_the_block_hid)
{
    ix_start(NULL);
    ts_user_t a, b, c, x;
    ts_register_all(PORT, "ub", &a, &b, &c, &x, NULL);
    ts_follow(PORT, &a, &b);
    ts_follow(PORT, &a, &c);
    char px[24], pb[24];
    ts_post(PORT, &x, "by x, reposted by b", px);
    ts_post(PORT, &b, "by b", pb);
    ix_repost(PORT, &b, px);
    json_t *e = ix_wait_timeline_has(PORT, &a, px);
    cr_expect_str_eq(ts_str(json_object_get(e, "reposted_by"), "id"), b.id);
    json_decref(e);
    json_decref(ix_wait_timeline_has(PORT, &a, pb));

    json_decref(ts_callf(PORT, "PUT", &a, NULL, 204, "/v1/users/%s/block", b.id));
    /* During the block, c (whom a follows) reposts a new post of b's. */
    char pb2[24];
    ts_post(PORT, &b, "by b, during the block", pb2);
    ix_repost(PORT, &c, pb2);
    ix_wait_idle(); /* every job done: removals, and the repost's fan-out */
    cr_expect_eq(ix_timeline_count(PORT, &a, px), 0);
    cr_expect_eq(ix_timeline_count(PORT, &a, pb), 0);
    cr_expect_eq(ix_timeline_count(PORT, &a, pb2), 0);

    /* Lifted: the follow stays ended, and nothing the block hid comes back. */
    json_decref(ts_callf(PORT, "DELETE", &a, NULL, 204, "/v1/users/%s/block", b.id));
    ix_wait_idle();
    json_t *tl = ix_timeline(PORT, &a);
    char *s = json_dumps(tl, JSON_COMPACT);
    cr_expect_eq(ix_count_post(tl, pb, NULL), 0, "b's post does not come back: %s", s);
    cr_expect_eq(ix_count_post(tl, px, NULL), 0,
                 "b's repost, written before the block, does not come back: %s", s);
    cr_expect_eq(ix_count_post(tl, pb2, NULL), 0,
                 "b's post, reposted by c during the block, was never a's: %s", s);
    free(s);
    json_decref(tl);
    cr_expect(!edge(&a, "following", &b));
}
