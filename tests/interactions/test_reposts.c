/* tests/interactions/test_reposts.c -- reposts: fanned out to the reposter's followers as an
 * entry with reposted_by, placed at the time of the repost, never a second copy for a
 * follower who has the post; undoing it takes back only the entries it wrote. */
#include "tests/interactions/ix.h"

#include <criterion/criterion.h>
#include <stdlib.h>

TestSuite(reposts, .init = ix_setup, .fini = ix_teardown, .timeout = 300);

Test(reposts, reach_the_reposters_followers_once_with_reposted_by)
{
    ts_user_t p, r, f1, f2;
    ts_register_all(PORT, "rp", &p, &r, NULL);
    ts_register(PORT, "rp_fa", &f1); /* follows the reposter only */
    ts_register(PORT, "rp_fb", &f2); /* follows the reposter and the author */
    ts_follow(PORT, &f1, &r);
    ts_follow(PORT, &f2, &r);
    ts_follow(PORT, &f2, &p);
    char post[24], r_post[24];
    ts_post(PORT, &p, "worth a repost", post);
    ts_post(PORT, &r, "the reposter's own post, newer than the reposted one", r_post);
    json_decref(ix_wait_timeline_has(PORT, &f2, post));
    json_decref(ix_wait_timeline_has(PORT, &f1, r_post));
    ts_sleep_ms(5); /* the repost happens in a later millisecond than r_post */

    json_t *ans = ts_callf(PORT, "POST", &r, NULL, 202, "/v1/posts/%s/repost", post);
    cr_expect_str_eq(ts_str(ans, "id"), post, "the answer is the reposted post");
    cr_expect_eq(ts_int(ans, "repost_count"), 1, "repost_count includes this repost");
    cr_expect_null(json_object_get(ans, "reposted_by"));
    json_decref(ans);
    cr_expect_eq(ix_repost_count(PORT, &f1, post), 1);

    /* f1 gets it as a repost entry, placed at the time of the repost (above r's newer post). */
    json_t *e = ix_wait_timeline_has(PORT, &f1, post);
    const json_t *rb = json_object_get(e, "reposted_by");
    cr_assert(json_is_object(rb), "a repost entry carries reposted_by");
    cr_expect_str_eq(ts_str(rb, "id"), r.id);
    cr_expect_str_eq(ts_str(rb, "handle"), r.handle);
    cr_expect_str_eq(ts_str(json_object_get(e, "author"), "id"), p.id);
    json_decref(e);
    json_t *tl = ix_timeline(PORT, &f1);
    cr_assert_eq(json_array_size(tl), 2);
    cr_expect_str_eq(ts_str(json_array_get(tl, 0), "id"), post, "the repost is the newest entry");
    cr_expect_str_eq(ts_str(json_array_get(tl, 1), "id"), r_post);
    json_decref(tl);

    /* The author hears of it; f2, who had the post, keeps one copy; r's own timeline has
     * only r's post. */
    json_t *n = ix_wait_actor(PORT, &p, "repost", post, r.id);
    cr_expect_eq(ts_int(n, "actor_count"), 1);
    cr_expect_eq(ts_int(json_object_get(n, "post"), "repost_count"), 1);
    json_decref(n);
    tl = ix_timeline(PORT, &f2);
    const json_t *entry;
    cr_expect_eq(ix_count_post(tl, post, &entry), 1, "no second copy for a follower who had it");
    cr_expect_null(json_object_get(entry, "reposted_by"), "f2's entry is the author's post");
    json_decref(tl);
    cr_expect_eq(ix_timeline_count(PORT, &r, post), 0,
                 "reposting does not change your own timeline");

    /* Idempotent. */
    ans = ts_callf(PORT, "POST", &r, NULL, 202, "/v1/posts/%s/repost", post);
    cr_expect_eq(ts_int(ans, "repost_count"), 1);
    json_decref(ans);

    /* Undo: repost_count at once; f1's repost entry and the notice go, f2 keeps the post. */
    json_decref(ts_callf(PORT, "DELETE", &r, NULL, 204, "/v1/posts/%s/repost", post));
    cr_expect_eq(ix_repost_count(PORT, &f1, post), 0);
    ix_wait_timeline_lacks(PORT, &f1, post);
    ix_wait_no_notification(PORT, &p, "repost", post);
    cr_expect_eq(ix_timeline_count(PORT, &f2, post), 1,
                 "undoing a repost keeps the author's entry");
    cr_expect_eq(ix_timeline_count(PORT, &f1, r_post), 1);
    json_decref(ts_callf(PORT, "DELETE", &r, NULL, 204, "/v1/posts/%s/repost", post));
    cr_expect_eq(ix_repost_count(PORT, &f1, post), 0);
}

Test(reposts, two_reposters_group_in_one_notification)
{
    ts_user_t p, r1, r2;
    ts_register_all(PORT, "rg", &p, &r1, &r2, NULL);
    char post[24];
    ts_post(PORT, &p, "repost me twice", post);
    ix_repost(PORT, &r1, post);
    json_decref(ix_wait_actor(PORT, &p, "repost", post, r1.id));
    ix_repost(PORT, &r2, post);
    json_t *n = ix_wait_notification(PORT, &p, "repost", post, 2);
    cr_expect(ix_actors_are(n, IX_IDS(r2.id, r1.id)), "two reposters, newest first");
    json_decref(n);
    cr_expect_eq(ix_repost_count(PORT, &p, post), 2);
    json_decref(ts_callf(PORT, "DELETE", &r2, NULL, 204, "/v1/posts/%s/repost", post));
    n = ix_wait_notification(PORT, &p, "repost", post, 1);
    cr_expect(ix_actors_are(n, IX_IDS(r1.id)));
    json_decref(n);
}

/* A follower who got the post through a repost and then followed its author has it as the
 * author's post: undoing the repost must not take it away. */
Test(reposts, undo_keeps_the_post_for_a_follower_who_followed_the_author_since)
{
    ts_user_t p, r, f, g;
    ts_register_all(PORT, "ru", &p, &r, &f, &g, NULL);
    ts_follow(PORT, &f, &r);
    ts_follow(PORT, &g, &r);
    char older[24], post[24];
    ts_post(PORT, &p, "an older post by the author", older);
    ts_post(PORT, &p, "the reposted one", post);
    ix_repost(PORT, &r, post);
    json_t *e = ix_wait_timeline_has(PORT, &f, post);
    cr_expect(json_is_object(json_object_get(e, "reposted_by")));
    json_decref(e);
    json_decref(ix_wait_timeline_has(PORT, &g, post));

    /* f follows the author: the backfill brings the author's posts (one command for all). */
    ts_follow(PORT, &f, &p);
    json_decref(ix_wait_timeline_has(PORT, &f, older));

    json_decref(ts_callf(PORT, "DELETE", &r, NULL, 204, "/v1/posts/%s/repost", post));
    ix_wait_timeline_lacks(PORT, &g, post); /* the undo reached r's followers */
    json_t *tl = ix_timeline(PORT, &f);
    char *s = json_dumps(tl, JSON_COMPACT);
    cr_expect_eq(ix_count_post(tl, post, NULL), 1,
                 "f follows the author and must keep the author's post: %s", s);
    cr_expect_eq(ix_count_post(tl, older, NULL), 1);
    free(s);
    json_decref(tl);
}
