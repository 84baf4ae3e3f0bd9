/* tests/interactions/test_likes.c -- likes (idempotent, exact like_count, grouped like
 * notifications that move up when a new actor joins and lose actors on unlike), self-actions
 * that notify nobody, replies and mentions, over real HTTP. */
#include "tests/interactions/ix.h"

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(likes, .init = ix_setup, .fini = ix_teardown, .timeout = 300);

Test(likes, like_and_unlike_are_idempotent_and_like_count_is_exact)
{
    ts_user_t a, b, c;
    ts_register_all(PORT, "lk", &a, &b, &c, NULL);
    char p[24];
    ts_post(PORT, &a, "like me", p);
    cr_expect_eq(ix_like_count(PORT, &a, p), 0);

    ts_resp_t r;
    char path[64];
    snprintf(path, sizeof(path), "/v1/posts/%s/like", p);
    ts_http(PORT, "PUT", path, b.token, NULL, NULL, &r);
    cr_assert_eq(r.status, 204, "like: %d %s", r.status, r.body);
    cr_expect_eq(r.body_len, 0, "a 204 has no body");
    ts_resp_free(&r);
    cr_expect_eq(ix_like_count(PORT, &a, p), 1, "like_count counts a like at once");

    ts_like(PORT, &b, p);
    cr_expect_eq(ix_like_count(PORT, &a, p), 1, "liking twice counts once");
    ts_like(PORT, &c, p);
    cr_expect_eq(ix_like_count(PORT, &c, p), 2);
    json_decref(ts_callf(PORT, "DELETE", &b, NULL, 204, "/v1/posts/%s/like", p));
    cr_expect_eq(ix_like_count(PORT, &a, p), 1, "unlike drops like_count at once");
    json_decref(ts_callf(PORT, "DELETE", &b, NULL, 204, "/v1/posts/%s/like", p));
    cr_expect_eq(ix_like_count(PORT, &a, p), 1, "unliking twice drops it once");

    /* The author's timeline entry carries the same count. */
    json_t *entry = ix_wait_timeline_has(PORT, &a, p);
    cr_expect_eq(ts_int(entry, "like_count"), 1);
    cr_expect_eq(ts_int(entry, "repost_count"), 0);
    json_decref(entry);

    /* c's like is notified once, however often c likes. */
    /* b's like was notified and undone: [b] and [c, b] are states on the way, not the end. */
    json_t *n = ix_wait_actors(PORT, &a, "like", p, IX_IDS(c.id));
    cr_expect_eq(ts_int(n, "actor_count"), 1, "the like's actor is c alone");
    cr_expect_eq(ts_int(json_object_get(n, "post"), "like_count"), 1);
    json_decref(n);
}

Test(likes, likers_group_newest_first_and_a_new_liker_moves_the_group_to_the_top)
{
    ts_user_t a, l[4], f;
    ts_register(PORT, "grp_a", &a);
    for (int i = 0; i < 4; i++)
        ts_register(PORT, "grp_l", &l[i]);
    ts_register(PORT, "grp_f", &f);
    char p1[24], p2[24];
    ts_post(PORT, &a, "first", p1);
    ts_post(PORT, &a, "second", p2);

    ts_like(PORT, &l[0], p1);
    json_decref(ix_wait_notification(PORT, &a, "like", p1, 1));
    ts_like(PORT, &l[1], p1);
    json_t *n = ix_wait_notification(PORT, &a, "like", p1, 2);
    cr_expect(ix_actors_are(n, IX_IDS(l[1].id, l[0].id)), "two likers, newest first");
    json_decref(n);

    /* A follow comes on top of the like group … */
    ts_follow(PORT, &f, &a);
    json_t *follow = ix_wait_notification(PORT, &a, "follow", NULL, 1);
    json_t *list = ix_notifications(PORT, &a, NULL, 100);
    cr_assert_eq(json_array_size(list), 2, "one like group and one follow");
    cr_expect_str_eq(ts_str(json_array_get(list, 0), "type"), "follow");
    json_decref(list);

    /* … and a third liker moves the like group back to the top, with a newer id. */
    ts_like(PORT, &l[2], p1);
    json_t *three = ix_wait_notification(PORT, &a, "like", p1, 3);
    const char *ids3[] = {l[2].id, l[1].id, l[0].id};
    cr_expect(ix_actors_are(three, ids3, 3), "three likers, newest first");
    list = ix_notifications(PORT, &a, NULL, 100);
    cr_assert_eq(json_array_size(list), 2, "still one like group and one follow");
    const json_t *top = json_array_get(list, 0);
    cr_expect_str_eq(ts_str(top, "type"), "like", "the group a new actor joined is on top");
    cr_expect_str_eq(ts_str(json_object_get(top, "post"), "id"), p1);
    cr_expect_gt(strtoull(ts_str(three, "id"), NULL, 10), strtoull(ts_str(follow, "id"), NULL, 10),
                 "the group's id is its latest activity");
    cr_expect_geq(strcmp(ts_str(three, "created_at"), ts_str(follow, "created_at")), 0);
    json_decref(list);
    json_decref(follow);

    /* The same actor again changes nothing; a like of p2 afterwards shows the engine got
     * that far. */
    ts_like(PORT, &l[0], p1);
    ts_like(PORT, &l[3], p2);
    json_decref(ix_wait_notification(PORT, &a, "like", p2, 1));
    list = ix_notifications(PORT, &a, NULL, 100);
    const json_t *g1 = ix_find(list, "like", p1);
    cr_assert(g1);
    cr_expect_str_eq(ts_str(g1, "id"), ts_str(three, "id"), "a repeated like moved the group");
    cr_expect_eq(ts_int(g1, "actor_count"), 3);
    cr_expect_str_eq(ts_str(json_array_get(list, 0), "type"), "like");
    cr_expect_str_eq(ts_str(json_object_get(json_array_get(list, 0), "post"), "id"), p2);
    json_decref(list);
    json_decref(three);

    /* A fourth liker: the newest three are shown, all four counted. */
    ts_like(PORT, &l[3], p1);
    n = ix_wait_notification(PORT, &a, "like", p1, 4);
    cr_expect(ix_actors_are(n, IX_IDS(l[3].id, l[2].id, l[1].id)),
              "at most three actors, newest first");
    cr_expect_eq(ts_int(json_object_get(n, "post"), "like_count"), 4);
    json_decref(n);

    /* Unlikes take actors out, the last one the whole group; p2's group stays. */
    json_decref(ts_callf(PORT, "DELETE", &l[3], NULL, 204, "/v1/posts/%s/like", p1));
    n = ix_wait_notification(PORT, &a, "like", p1, 3);
    cr_expect(ix_actors_are(n, ids3, 3), "the unliker is gone from the actors");
    json_decref(n);
    json_decref(ts_callf(PORT, "DELETE", &l[2], NULL, 204, "/v1/posts/%s/like", p1));
    json_decref(ts_callf(PORT, "DELETE", &l[1], NULL, 204, "/v1/posts/%s/like", p1));
    n = ix_wait_notification(PORT, &a, "like", p1, 1);
    cr_expect(ix_actors_are(n, IX_IDS(l[0].id)));
    json_decref(n);
    json_decref(ts_callf(PORT, "DELETE", &l[0], NULL, 204, "/v1/posts/%s/like", p1));
    ix_wait_no_notification(PORT, &a, "like", p1);
    cr_expect_eq(ix_like_count(PORT, &a, p1), 0);
    list = ix_notifications(PORT, &a, NULL, 100);
    cr_expect_eq(ix_count(list, "like", p2), 1, "the other post's group is untouched");
    cr_expect_eq(ix_count(list, "follow", NULL), 1);
    cr_expect_eq(json_array_size(list), 2);
    json_decref(list);
}

Test(likes, like_then_unlike_at_once_leaves_no_notification)
{
    ts_user_t a, b, c;
    ts_register_all(PORT, "lu", &a, &b, &c, NULL);
    char p[24];
    ts_post(PORT, &a, "quick", p);
    for (int i = 0; i < 5; i++) {
        ts_like(PORT, &b, p);
        json_decref(ts_callf(PORT, "DELETE", &b, NULL, 204, "/v1/posts/%s/like", p));
    }
    ts_like(PORT, &c, p); /* sentinel */
    json_decref(ix_wait_actor(PORT, &a, "like", p, c.id));
    ix_wait_idle(); /* every like and unlike done */
    json_t *n = ix_wait_actor(PORT, &a, "like", p, c.id);
    cr_expect(ix_actors_are(n, IX_IDS(c.id)), "only c likes the post");
    cr_expect_eq(ts_int(n, "actor_count"), 1);
    cr_expect_eq(ix_like_count(PORT, &a, p), 1);
    json_decref(n);
}

Test(likes, acting_on_your_own_post_or_yourself_notifies_nobody)
{
    ts_user_t a, b;
    ts_register_all(PORT, "self", &a, &b, NULL);
    char p[24], own_reply[24], own_mention[24];
    ts_post(PORT, &a, "mine", p);
    ts_like(PORT, &a, p);
    ix_repost(PORT, &a, p);
    ix_reply(PORT, &a, "replying to myself", p, own_reply);
    char text[96];
    snprintf(text, sizeof(text), "note to self @%s", a.handle);
    json_t *own = ix_reply_json(PORT, &a, text, NULL, own_mention);
    cr_expect_eq(json_array_size(json_object_get(own, "mentions")), 1,
                 "mentioning yourself is still a mention in the post");
    json_decref(own);

    /* The same actions by b, queued after a's, are notified: once they are there, a's would
     * have been too. b's reply also mentions a: it is only a reply. */
    char b_reply[24], b_mention[24];
    ts_like(PORT, &b, p);
    ix_repost(PORT, &b, p);
    snprintf(text, sizeof(text), "@%s nice one", a.handle);
    ix_reply(PORT, &b, text, p, b_reply);
    ts_post(PORT, &b, text, b_mention);
    ix_wait_actions(PORT, &a, b.id, "like", p, "repost", p, "reply", b_reply, "mention", b_mention,
                    NULL);
    ix_wait_idle();

    ix_inbox_t in = ix_inbox(PORT, &a, NULL);
    cr_expect_eq(json_array_size(in.list), 4, "only b's four actions are notified: %s", in.text);
    cr_expect(ix_actors_are(ix_find(in.list, "like", p), IX_IDS(b.id)),
              "a's own like is not notified");
    cr_expect(ix_actors_are(ix_find(in.list, "repost", p), IX_IDS(b.id)),
              "a's own repost is not notified");
    cr_expect_eq(ix_count(in.list, "reply", own_reply), 0, "a's reply to itself is not notified");
    cr_expect_eq(ix_count(in.list, "mention", own_mention), 0, "a's self-mention is not notified");
    cr_expect_eq(ix_count(in.list, "mention", b_reply), 0,
                 "a reply mentioning its parent's author is only a reply");
    ix_inbox_free(&in);
    cr_expect_eq(ix_like_count(PORT, &b, p), 2, "a's own like still counts");
    cr_expect_eq(ix_repost_count(PORT, &b, p), 2, "a's own repost still counts");
}

Test(likes, replies_need_a_live_parent_and_mentions_name_existing_users_only)
{
    ts_user_t a, b;
    ts_register_all(PORT, "rm", &a, &b, NULL);
    char p[24], reply[24];
    ts_post(PORT, &a, "parent", p);
    json_t *r = ix_reply_json(PORT, &b, "a reply", p, reply);
    cr_expect_str_eq(ts_str(r, "reply_to"), p);
    json_decref(r);
    r = ts_callf(PORT, "GET", &a, NULL, 200, "/v1/posts/%s", reply);
    cr_expect_str_eq(ts_str(r, "reply_to"), p);
    json_decref(r);
    json_t *n = ix_wait_notification(PORT, &a, "reply", reply, 1);
    cr_expect(ix_actors_are(n, IX_IDS(b.id)));
    cr_expect_str_eq(ts_str(json_object_get(n, "post"), "reply_to"), p,
                     "a reply notification's post is the reply");
    json_decref(n);

    /* Mentions: existing users only, handles matched case-insensitively. */
    char upper[40], text[160], m[24];
    snprintf(upper, sizeof(upper), "%s", a.handle);
    for (char *c = upper; *c; c++)
        if (*c >= 'a' && *c <= 'z')
            *c = (char)(*c - 'a' + 'A');
    char ghost[32];
    ts_unique(ghost, sizeof(ghost), "ghost");
    snprintf(text, sizeof(text), "hi @%s and @%s", upper, ghost);
    r = ix_reply_json(PORT, &b, text, NULL, m);
    json_t *mentions = json_object_get(r, "mentions");
    cr_expect_eq(json_array_size(mentions), 1, "only the existing user is mentioned");
    cr_expect_str_eq(json_string_value(json_array_get(mentions, 0)), a.id);
    json_decref(r);
    n = ix_wait_notification(PORT, &a, "mention", m, 1);
    cr_expect(ix_actors_are(n, IX_IDS(b.id)));
    json_decref(n);
}

/* The hash field a read takes like_count from, against the set it counts. */
static void expect_count_field(struct redisContext *rc, const char *post, const char *field,
                               const char *set, const char *why)
{
    redisReply *f = ts_redis_cmd_ok(rc, "HGET post:{%s} %s", post, field);
    long long size = ts_redis_int(rc, "SCARD %s:{%s}", set, post);
    cr_expect(f->type == REDIS_REPLY_STRING && atoll(f->str) == size, "%s: %s is %s, %s holds %lld",
              why, field, f->type == REDIS_REPLY_STRING ? f->str : "(absent)", set, size);
    freeReplyObject(f);
}

/* Posts written before counts were kept in the post have no count fields: they show their
 * sets' sizes, on the post and on a timeline page, a read writes nothing, and the first like
 * or repost writes the field, exact from then on. */
Test(likes, a_post_from_before_counts_were_kept_shows_its_sets_sizes)
{
    ts_user_t a, b, c;
    ts_register_all(PORT, "old", &a, &b, &c, NULL);
    char p[24];
    ts_post(PORT, &a, "from the old days", p);
    json_decref(ix_wait_timeline_has(PORT, &a, p));
    struct redisContext *rc = ts_redis_connect(ix_redis.port);
    freeReplyObject(ts_redis_cmd_ok(rc, "HDEL post:{%s} likes reposts", p));
    freeReplyObject(ts_redis_cmd_ok(rc, "SADD likes:{%s} 11 12 13", p));
    freeReplyObject(ts_redis_cmd_ok(rc, "SADD reposts:{%s} 14 15", p));

    cr_expect_eq(ix_like_count(PORT, &b, p), 3, "like_count is the set's size");
    cr_expect_eq(ix_repost_count(PORT, &b, p), 2, "repost_count is the set's size");
    json_t *entry = ix_wait_timeline_has(PORT, &a, p);
    cr_expect_eq(ts_int(entry, "like_count"), 3, "a timeline page counts the same");
    cr_expect_eq(ts_int(entry, "repost_count"), 2);
    json_decref(entry);
    cr_expect_eq(ts_redis_int(rc, "HEXISTS post:{%s} likes", p), 0, "a read writes nothing");

    ts_like(PORT, &c, p);
    cr_expect_eq(ix_like_count(PORT, &b, p), 4);
    expect_count_field(rc, p, "likes", "likes", "the first like writes the count");
    ix_repost(PORT, &c, p);
    cr_expect_eq(ix_repost_count(PORT, &b, p), 3);
    expect_count_field(rc, p, "reposts", "reposts", "the first repost writes the count");
    json_decref(ts_callf(PORT, "DELETE", &c, NULL, 204, "/v1/posts/%s/repost", p));
    json_decref(ts_callf(PORT, "DELETE", &c, NULL, 204, "/v1/posts/%s/like", p));
    cr_expect_eq(ix_like_count(PORT, &b, p), 3, "unlike counts down");
    cr_expect_eq(ix_repost_count(PORT, &b, p), 2, "undoing a repost counts down");
    expect_count_field(rc, p, "likes", "likes", "after an unlike");
    expect_count_field(rc, p, "reposts", "reposts", "after an undone repost");
    ts_redis_close(rc);
}

/* A post written now starts with its counts, so no read of it needs a set's size. */
Test(likes, a_new_post_keeps_its_counts_in_the_post)
{
    ts_user_t a, b;
    ts_register_all(PORT, "cnt", &a, &b, NULL);
    char p[24];
    ts_post(PORT, &a, "counted", p);
    struct redisContext *rc = ts_redis_connect(ix_redis.port);
    expect_count_field(rc, p, "likes", "likes", "a new post");
    expect_count_field(rc, p, "reposts", "reposts", "a new post");
    ts_like(PORT, &b, p);
    ts_like(PORT, &b, p);
    expect_count_field(rc, p, "likes", "likes", "liked twice by one user");
    cr_expect_eq(ix_like_count(PORT, &a, p), 1);
    /* A Redis that forgot its scripts (a restart, SCRIPT FLUSH) still answers reads: the
     * page scripts are loaded again on NOSCRIPT. */
    freeReplyObject(ts_redis_cmd_ok(rc, "SCRIPT FLUSH"));
    cr_expect_eq(ix_like_count(PORT, &a, p), 1);
    json_decref(ix_wait_timeline_has(PORT, &a, p));
    ts_redis_close(rc);
}
