/* tests/storage/test_idempotency.c -- Idempotency-Key claims: first wins, replays compare. */
#include "tests/storage/fixture.h"
#include "tests/support/support.h"

#include <criterion/criterion.h>
#include <errno.h>

static storage_t *s;

static void setup(void)
{
    s = st_storage();
}

static void teardown(void)
{
    st_storage_free(s);
}

TestSuite(idempotency, .init = setup, .fini = teardown, .timeout = 60);

Test(idempotency, first_claim_wins_and_replays_see_its_id)
{
    uint64_t user = st_user(s, "ik", NULL);
    char key[40];
    ts_unique(key, sizeof(key), "key");
    uint64_t first = storage_id_next(s), second = storage_id_next(s), existing = 0;
    bool same = false;
    cr_assert_eq(storage_idempotency_claim(s, user, key, "fp-1", first, &existing, &same), 0);
    cr_expect_eq(storage_idempotency_claim(s, user, key, "fp-1", second, &existing, &same),
                 -EEXIST);
    cr_expect_eq(existing, first);
    cr_expect(same, "the same fingerprint was not recognised");
}

Test(idempotency, different_fingerprint_is_another_request)
{
    uint64_t user = st_user(s, "ik", NULL);
    char key[40];
    ts_unique(key, sizeof(key), "key");
    uint64_t first = storage_id_next(s), existing = 0;
    bool same = true;
    cr_assert_eq(storage_idempotency_claim(s, user, key, "fp-1", first, &existing, &same), 0);
    cr_expect_eq(storage_idempotency_claim(s, user, key, "fp-2", storage_id_next(s), &existing,
                                           &same),
                 -EEXIST);
    cr_expect_eq(existing, first);
    cr_expect_not(same);
    /* A fingerprint that merely starts like the stored one is another request too. */
    cr_expect_eq(storage_idempotency_claim(s, user, key, "fp-", storage_id_next(s), &existing,
                                           &same),
                 -EEXIST);
    cr_expect_not(same);
}

Test(idempotency, keys_belong_to_one_user)
{
    uint64_t a = st_user(s, "ia", NULL), b = st_user(s, "ib", NULL);
    char key[40];
    ts_unique(key, sizeof(key), "shared");
    uint64_t existing = 0;
    bool same;
    cr_expect_eq(storage_idempotency_claim(s, a, key, "fp", storage_id_next(s), &existing, &same), 0);
    cr_expect_eq(storage_idempotency_claim(s, b, key, "fp", storage_id_next(s), &existing, &same), 0);
}

Test(idempotency, claims_expire_after_a_day)
{
    uint64_t user = st_user(s, "ttl", NULL);
    char key[40];
    ts_unique(key, sizeof(key), "ttl");
    uint64_t existing;
    bool same;
    cr_assert_eq(storage_idempotency_claim(s, user, key, "fp", storage_id_next(s), &existing,
                                           &same), 0);
    redisContext *c = ts_redis_connect(ts_redis_port());
    redisReply *r = ts_redis_cmd(c, "TTL idem:{%llu}:%s", (unsigned long long)user, key);
    cr_expect(r->integer > 86000 && r->integer <= 86400, "TTL %lld", r->integer);
    freeReplyObject(r);
    ts_redis_close(c);
}
