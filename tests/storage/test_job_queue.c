/* tests/storage/test_job_queue.c -- a job is queued once however often its batch is sent: the
 * request path replays a batch on a fresh connection when its pooled one died, and a batch
 * that timed out may have run already. Sending the same request's writes again here stands
 * for that replay. */
#include "tests/storage/fixture.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

TestSuite(job_queue, .init = st_setup, .fini = st_teardown, .timeout = 60);

Test(job_queue, a_replayed_post_queues_one_job)
{
    storage_user_t ana;
    uint64_t author = st_user(st, "once", &ana);
    char mark[64];
    st_stream_mark(st_redis, ST_SHARD(author), mark);
    storage_post_t p = {.id = storage_id_next(st), .author = author, .text = "only once"};
    cr_assert_eq(storage_post_create(st, &p, &(bool){false}), 0);
    cr_assert_eq(storage_post_create(st, &p, &(bool){false}), 0,
                 "the replay answers as the first send did");
    cr_expect_eq(
        st_jobs_since(st_redis, ST_SHARD(author), mark, "post", "post", p.id, "author", author), 1,
        "a replayed batch queued the post's job twice");
    /* Another request (another id) is another job. */
    storage_post_t q = {.id = storage_id_next(st), .author = author, .text = "twice"};
    cr_assert_eq(storage_post_create(st, &q, &(bool){false}), 0);
    cr_expect_eq(
        st_jobs_since(st_redis, ST_SHARD(author), mark, "post", "post", q.id, "author", author), 1);
}

Test(job_queue, every_request_of_a_kind_queues_its_own_job)
{
    storage_user_t ana, bob;
    uint64_t a = st_user(st, "likes", &ana), b = st_user(st, "liked", &bob);
    storage_post_t p = {.id = storage_id_next(st), .author = b, .text = "like me"};
    cr_assert_eq(storage_post_create(st, &p, &(bool){false}), 0);
    char mark[64];
    st_stream_mark(st_redis, ST_SHARD(a), mark);
    /* like, unlike, like: three requests, three jobs (each mints its own id) */
    cr_assert_eq(storage_like(st, a, p.id, true), 0);
    cr_assert_eq(storage_like(st, a, p.id, false), 0);
    cr_assert_eq(storage_like(st, a, p.id, true), 0);
    cr_expect_eq(st_jobs_since(st_redis, ST_SHARD(a), mark, "like", "post", p.id, "actor", a), 2);
    cr_expect_eq(st_jobs_since(st_redis, ST_SHARD(a), mark, "unlike", "post", p.id, "actor", a), 1);
}

/* A publish Redis did not answer (a paused Redis holds its batch in its socket) is settled
 * before that batch runs: the late batch must then queue nothing and leave no post. */
Test(job_queue, a_publish_settled_as_lost_stays_lost_when_its_batch_arrives_late)
{
    storage_user_t ana;
    uint64_t author = st_user(st, "late", &ana);
    char mark[64];
    st_stream_mark(st_redis, ST_SHARD(author), mark);
    storage_post_t p = {.id = storage_id_next(st), .author = author, .text = "too late"};
    bool published = true;
    cr_assert_eq(storage_post_settle(st, &p, &published), 0);
    cr_assert_not(published, "nothing was written yet");
    bool answered = false;
    cr_assert_neq(storage_post_create(st, &p, &answered), 0, "the late batch is refused");
    cr_expect(answered, "Redis answered it: an error, not a timeout");
    cr_expect_eq(
        st_jobs_since(st_redis, ST_SHARD(author), mark, "post", "post", p.id, "author", author), 0,
        "the late batch queued the post's job");
    storage_post_t got;
    cr_expect_eq(storage_post_get(st, p.id, &got), -ENOENT, "the late batch wrote the post");
    /* Its late ZADD may list the id in the author's index (another slot than the post's):
     * it reads as no post, which every page drops. */
    storage_page_t page;
    cr_assert_eq(storage_author_posts_page(st, author, 0, 10, &page), 0);
    for (size_t i = 0; i < page.n; i++) {
        storage_post_t listed;
        cr_assert_eq(storage_posts_get(st, &page.ids[i], 1, &listed), 0);
        cr_expect_eq(listed.id, 0, "the author's index shows the abandoned post");
        storage_post_clear(&listed);
    }
    storage_page_free(&page);
    /* Settling again gives the same answer. */
    cr_assert_eq(storage_post_settle(st, &p, &published), 0);
    cr_expect_not(published);
}

Test(job_queue, a_publish_that_ran_settles_as_published_and_stays)
{
    storage_user_t ana;
    uint64_t author = st_user(st, "ran", &ana);
    storage_post_t p = {.id = storage_id_next(st), .author = author, .text = "it ran"};
    bool answered = false;
    cr_assert_eq(storage_post_create(st, &p, &answered), 0);
    bool published = false;
    cr_assert_eq(storage_post_settle(st, &p, &published), 0);
    cr_expect(published);
    storage_post_t got;
    cr_assert_eq(storage_post_get(st, p.id, &got), 0, "settling touched a published post");
    cr_expect_str_eq(got.text, "it ran");
    storage_post_clear(&got);
    /* And a replay of its batch still answers as the first send did. */
    cr_expect_eq(storage_post_create(st, &p, &answered), 0);
}

Test(job_queue, an_abandoned_create_leaves_no_post_and_no_index_entry)
{
    storage_user_t ana;
    uint64_t author = st_user(st, "gone", &ana);
    storage_post_t p = {.id = storage_id_next(st), .author = author, .text = "refused"};
    bool answered = false;
    cr_assert_eq(storage_post_create(st, &p, &answered), 0);
    cr_assert_eq(storage_post_abandon(st, &p), 0);
    storage_post_t got;
    cr_expect_eq(storage_post_get(st, p.id, &got), -ENOENT);
    storage_page_t page;
    cr_assert_eq(storage_author_posts_page(st, author, 0, 10, &page), 0);
    cr_expect_eq(page.n, 0);
    storage_page_free(&page);
    /* The tombstone expires: it only has to outlive a late copy of the create. */
    redisReply *ttl = redisCommand(st_redis, "TTL post:{%llu}", (unsigned long long)p.id);
    cr_assert(ttl && ttl->type == REDIS_REPLY_INTEGER);
    cr_expect_gt(ttl->integer, 0);
    freeReplyObject(ttl);
}
