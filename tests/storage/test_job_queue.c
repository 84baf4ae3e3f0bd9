/* tests/storage/test_job_queue.c -- a job is queued once however often its batch is sent: the
 * request path replays a batch on a fresh connection when its pooled one died, and a batch
 * that timed out may have run already. Sending the same request's writes again here stands
 * for that replay. */
#include "tests/storage/fixture.h"

#include <criterion/criterion.h>
#include <string.h>

TestSuite(job_queue, .init = st_setup, .fini = st_teardown, .timeout = 60);

Test(job_queue, a_replayed_post_queues_one_job)
{
    storage_user_t ana;
    uint64_t author = st_user(st, "once", &ana);
    char mark[64];
    st_stream_mark(st_redis, ST_SHARD(author), mark);
    storage_post_t p = {.id = storage_id_next(st), .author = author, .text = "only once"};
    cr_assert_eq(storage_post_create(st, &p), 0);
    cr_assert_eq(storage_post_create(st, &p), 0, "the replay answers as the first send did");
    cr_expect_eq(
        st_jobs_since(st_redis, ST_SHARD(author), mark, "post", "post", p.id, "author", author), 1,
        "a replayed batch queued the post's job twice");
    /* Another request (another id) is another job. */
    storage_post_t q = {.id = storage_id_next(st), .author = author, .text = "twice"};
    cr_assert_eq(storage_post_create(st, &q), 0);
    cr_expect_eq(
        st_jobs_since(st_redis, ST_SHARD(author), mark, "post", "post", q.id, "author", author), 1);
}

Test(job_queue, every_request_of_a_kind_queues_its_own_job)
{
    storage_user_t ana, bob;
    uint64_t a = st_user(st, "likes", &ana), b = st_user(st, "liked", &bob);
    storage_post_t p = {.id = storage_id_next(st), .author = b, .text = "like me"};
    cr_assert_eq(storage_post_create(st, &p), 0);
    char mark[64];
    st_stream_mark(st_redis, ST_SHARD(a), mark);
    /* like, unlike, like: three requests, three jobs (each mints its own id) */
    cr_assert_eq(storage_like(st, a, p.id, true), 0);
    cr_assert_eq(storage_like(st, a, p.id, false), 0);
    cr_assert_eq(storage_like(st, a, p.id, true), 0);
    cr_expect_eq(st_jobs_since(st_redis, ST_SHARD(a), mark, "like", "post", p.id, "actor", a), 2);
    cr_expect_eq(st_jobs_since(st_redis, ST_SHARD(a), mark, "unlike", "post", p.id, "actor", a), 1);
}
