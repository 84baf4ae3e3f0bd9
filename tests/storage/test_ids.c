/* tests/storage/test_ids.c -- the id generator and the lease on its node id. */
#include "tests/storage/fixture.h"
#include "tests/support/support.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

TestSuite(ids, .init = st_setup, .fini = st_teardown, .timeout = 60);

#define THREADS 4
#define PER_THREAD 50000

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

Test(ids, none_without_a_leased_node)
{
    storage_t *s = st_create(NULL);
    cr_assert_not_null(s);
    cr_expect_eq(storage_node_id(s), -1);
    cr_expect_eq(storage_id_next(s), 0);
    storage_destroy(s);
}

Test(ids, increase_within_one_thread_and_fit_53_bits)
{
    uint64_t prev = 0;
    for (int i = 0; i < 100000; i++) {
        uint64_t id = storage_id_next(st);
        cr_assert_gt(id, prev, "id %d went backwards", i);
        cr_assert_lt(id, 1ULL << 53);
        prev = id;
    }
}

typedef struct {
    storage_t *s;
    uint64_t *out;
    bool monotonic;
} worker_t;

static void *generate(void *arg)
{
    worker_t *w = arg;
    w->monotonic = true;
    for (int i = 0; i < PER_THREAD; i++) {
        w->out[i] = storage_id_next(w->s);
        if (i > 0 && w->out[i] <= w->out[i - 1])
            w->monotonic = false;
    }
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

Test(ids, unique_across_threads)
{
    uint64_t *all = calloc(THREADS * PER_THREAD, sizeof(*all));
    cr_assert_not_null(all);
    pthread_t t[THREADS];
    worker_t w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (worker_t){.s = st, .out = all + (size_t)i * PER_THREAD};
        cr_assert_eq(pthread_create(&t[i], NULL, generate, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        cr_expect(w[i].monotonic, "thread %d saw its ids go backwards", i);
    }
    qsort(all, THREADS * PER_THREAD, sizeof(*all), cmp_u64);
    cr_expect_neq(all[0], 0, "an id was 0");
    size_t dups = 0;
    for (size_t i = 1; i < THREADS * PER_THREAD; i++)
        dups += all[i] == all[i - 1];
    cr_expect_eq(dups, 0, "%zu duplicate ids among %d", dups, THREADS * PER_THREAD);
    free(all);
}

Test(ids, encode_their_creation_time)
{
    uint64_t before = wall_ms();
    uint64_t id = storage_id_next(st);
    uint64_t after = wall_ms();
    uint64_t t = storage_id_time_ms(id);
    cr_expect(t >= before && t <= after, "id time %llu not within [%llu, %llu]",
              (unsigned long long)t, (unsigned long long)before, (unsigned long long)after);
    cr_expect_eq(storage_id_time_ms(0), STORAGE_ID_EPOCH_MS);
}

Test(ids, lease_is_a_redis_key_that_expires)
{
    int node = storage_node_id(st);
    cr_assert(node >= 0 && node < 64, "node %d", node);
    long long pttl = ts_redis_int(st_redis, "PTTL node:{%d}", node);
    cr_expect(pttl > 0 && pttl <= 30000, "lease PTTL %lld", pttl);
}

Test(ids, renew_keeps_the_node_and_extends_the_lease)
{
    int node = storage_node_id(st);
    cr_assert_eq(ts_redis_int(st_redis, "PEXPIRE node:{%d} 5000", node), 1);
    cr_expect_eq(storage_node_renew(st), 0);
    cr_expect_eq(storage_node_id(st), node);
    long long pttl = ts_redis_int(st_redis, "PTTL node:{%d}", node);
    cr_expect_gt(pttl, 5000, "the lease was not extended: PTTL %lld", pttl);
}

Test(ids, renew_takes_a_node_again_after_losing_the_lease)
{
    int node = storage_node_id(st);
    cr_assert_eq(ts_redis_int(st_redis, "DEL node:{%d}", node), 1);
    cr_expect_eq(storage_node_renew(st), 0);
    int now = storage_node_id(st);
    cr_assert(now >= 0 && now < 64);
    cr_expect_eq(ts_redis_int(st_redis, "EXISTS node:{%d}", now), 1,
                 "node %d is not leased after renew", now);
}

Test(ids, release_frees_the_node)
{
    int node = storage_node_id(st);
    storage_node_release(st);
    cr_expect_eq(storage_node_id(st), -1, "the node id outlived its release");
    cr_expect_eq(ts_redis_int(st_redis, "EXISTS node:{%d}", node), 0,
                 "node %d still leased after release", node);
}

/* storage.h: storage_id_next "returns 0 while no node id is leased". After a release
 * another process may lease the same node, so ids from it could clash. */
Test(ids, no_ids_after_release)
{
    storage_node_release(st);
    cr_expect_eq(storage_node_id(st), -1);
    cr_expect_eq(storage_id_next(st), 0, "an id was handed out after the node was released");
}

Test(ids, two_instances_lease_different_nodes)
{
    storage_t *b = st_storage();
    cr_expect_neq(storage_node_id(st), storage_node_id(b));
    uint64_t ia = storage_id_next(st), ib = storage_id_next(b);
    cr_expect_neq(ia, ib);
    st_storage_free(b);
}
