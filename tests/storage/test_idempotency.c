/* tests/storage/test_idempotency.c -- Idempotency-Key claims: first wins, replays compare. */
#include "tests/storage/fixture.h"
#include "tests/support/support.h"

#include <criterion/criterion.h>
#include <errno.h>

TestSuite(idempotency, .init = st_setup, .fini = st_teardown, .timeout = 60);

Test(idempotency, first_claim_wins_and_replays_see_its_id)
{
    uint64_t user = st_user(st, "ik", NULL);
    char key[40];
    ts_unique(key, sizeof(key), "key");
    uint64_t first = storage_id_next(st), second = storage_id_next(st), existing = 0;
    bool same = false;
    cr_assert_eq(storage_idempotency_claim(st, user, key, "fp-1", first, &existing, &same), 0);
    cr_expect_eq(storage_idempotency_claim(st, user, key, "fp-1", second, &existing, &same),
                 -EEXIST);
    cr_expect_eq(existing, first);
    cr_expect(same, "the same fingerprint was not recognised");
}

Test(idempotency, different_fingerprint_is_another_request)
{
    uint64_t user = st_user(st, "ik", NULL);
    char key[40];
    ts_unique(key, sizeof(key), "key");
    uint64_t first = storage_id_next(st), existing = 0;
    bool same = true;
    cr_assert_eq(storage_idempotency_claim(st, user, key, "fp-1", first, &existing, &same), 0);
    cr_expect_eq(
        storage_idempotency_claim(st, user, key, "fp-2", storage_id_next(st), &existing, &same),
        -EEXIST);
    cr_expect_eq(existing, first);
    cr_expect_not(same);
    /* A fingerprint that merely starts like the stored one is another request too. */
    cr_expect_eq(
        storage_idempotency_claim(st, user, key, "fp-", storage_id_next(st), &existing, &same),
        -EEXIST);
    cr_expect_not(same);
}

Test(idempotency, keys_belong_to_one_user)
{
    uint64_t a = st_user(st, "ia", NULL), b = st_user(st, "ib", NULL);
    char key[40];
    ts_unique(key, sizeof(key), "shared");
    uint64_t existing = 0;
    bool same;
    cr_expect_eq(storage_idempotency_claim(st, a, key, "fp", storage_id_next(st), &existing, &same),
                 0);
    cr_expect_eq(storage_idempotency_claim(st, b, key, "fp", storage_id_next(st), &existing, &same),
                 0);
}

Test(idempotency, claims_expire_after_a_day)
{
    uint64_t user = st_user(st, "ttl", NULL);
    char key[40];
    ts_unique(key, sizeof(key), "ttl");
    uint64_t existing;
    bool same;
    cr_assert_eq(
        storage_idempotency_claim(st, user, key, "fp", storage_id_next(st), &existing, &same), 0);
    redisReply *r = ts_redis_cmd(st_redis, "TTL idem:{%llu}:%s", (unsigned long long)user, key);
    cr_expect(r->integer > 86000 && r->integer <= 86400, "TTL %lld", r->integer);
    freeReplyObject(r);
}
