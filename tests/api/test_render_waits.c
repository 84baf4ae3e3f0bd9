/* tests/api/test_render_waits.c -- the render waits: the streams waiting for one ref at once
 * share one fill and are each handed back exactly once, with the fill's outcome; refs are
 * filled oldest first; stopping fills what is waited for and refuses later waits. */
#include "api/render_waits.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

TestSuite(render_waits, .timeout = 20);

#define ADDERS 4
#define PER_ADDER 5000

typedef struct {
    atomic_int handed_back; /* must end at 1 */
    atomic_bool ok;
} waiter_t;

static waiter_t waiters[ADDERS][PER_ADDER];
static atomic_int fills, fills_of_b, handed_back_total;
static atomic_bool gate_open; /* the fill of "slow" waits for it */
static char order[8][16];     /* the refs in the order filled */
static atomic_int filled_n;

static int fill(void *ctx, const char *ref)
{
    (void)ctx;
    atomic_fetch_add(&fills, 1);
    if (strcmp(ref, "slow") == 0)
        while (!atomic_load(&gate_open))
            nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
    if (strcmp(ref, "b") == 0)
        atomic_fetch_add(&fills_of_b, 1);
    int at = atomic_fetch_add(&filled_n, 1);
    if (at < 8)
        snprintf(order[at], sizeof(order[at]), "%s", ref);
    return strcmp(ref, "gone") == 0 ? -EIO : 0;
}

static void done(void *arg, bool ok)
{
    waiter_t *w = arg;
    atomic_store(&w->ok, ok);
    atomic_fetch_add(&w->handed_back, 1);
    atomic_fetch_add(&handed_back_total, 1);
}

static render_waits_t *start(void)
{
    atomic_store(&fills, 0);
    atomic_store(&fills_of_b, 0);
    atomic_store(&handed_back_total, 0);
    atomic_store(&filled_n, 0);
    atomic_store(&gate_open, false);
    memset(waiters, 0, sizeof(waiters));
    render_waits_hooks_t hooks = {fill, done, NULL};
    render_waits_t *w = render_waits_start(&hooks);
    cr_assert_not_null(w);
    return w;
}

static render_waits_t *shared;

static void *add_all(void *arg)
{
    waiter_t *mine = arg;
    for (int i = 0; i < PER_ADDER; i++)
        cr_assert(render_waits_add(shared, "b", &mine[i]), "a wait was refused");
    return NULL;
}

Test(render_waits, waiters_of_one_ref_share_one_fill_and_each_is_handed_back_once)
{
    shared = start();
    /* "slow" holds the thread, so every wait for "b" queues behind it: one entry for all. */
    cr_assert(render_waits_add(shared, "slow", &waiters[0][0]));
    pthread_t t[ADDERS];
    for (int a = 1; a < ADDERS; a++)
        pthread_create(&t[a], NULL, add_all, waiters[a]);
    for (int a = 1; a < ADDERS; a++)
        pthread_join(t[a], NULL);
    atomic_store(&gate_open, true);
    render_waits_stop(shared); /* fills what is waited for first */
    cr_assert_eq(atomic_load(&fills_of_b), 1, "\"b\" was filled %d times for its waiters",
                 atomic_load(&fills_of_b));
    cr_assert_eq(atomic_load(&fills), 2);
    cr_assert_eq(atomic_load(&handed_back_total), 1 + (ADDERS - 1) * PER_ADDER);
    for (int a = 1; a < ADDERS; a++)
        for (int i = 0; i < PER_ADDER; i++) {
            cr_assert_eq(atomic_load(&waiters[a][i].handed_back), 1,
                         "waiter %d of adder %d handed back %d times", i, a,
                         atomic_load(&waiters[a][i].handed_back));
            cr_assert(atomic_load(&waiters[a][i].ok));
        }
    cr_assert_not(render_waits_add(shared, "b", &waiters[0][1]), "a wait after stop was taken");
    render_waits_destroy(shared);
}

Test(render_waits, a_failed_fill_hands_its_waiters_back_not_ok_and_refs_go_oldest_first)
{
    render_waits_t *w = start();
    cr_assert(render_waits_add(w, "slow", &waiters[0][0]));
    cr_assert(render_waits_add(w, "gone", &waiters[0][1]));
    cr_assert(render_waits_add(w, "c", &waiters[0][2]));
    cr_assert(render_waits_add(w, "gone", &waiters[0][3]));
    atomic_store(&gate_open, true);
    render_waits_stop(w);
    cr_assert_eq(atomic_load(&filled_n), 3);
    cr_assert_str_eq(order[0], "slow");
    cr_assert_str_eq(order[1], "gone");
    cr_assert_str_eq(order[2], "c");
    cr_assert_not(atomic_load(&waiters[0][1].ok), "a failed fill was reported ok");
    cr_assert_not(atomic_load(&waiters[0][3].ok), "a failed fill was reported ok");
    cr_assert(atomic_load(&waiters[0][2].ok));
    cr_assert_eq(atomic_load(&handed_back_total), 4);
    render_waits_destroy(w);
}

Test(render_waits, too_many_distinct_refs_or_a_ref_too_long_are_refused)
{
    render_waits_t *w = start();
    cr_assert(render_waits_add(w, "slow", &waiters[0][0]));
    int taken = 1;
    char ref[16];
    for (int i = 0; i < 10000 && taken < 10000; i++, taken++) {
        snprintf(ref, sizeof(ref), "p%d", i);
        if (!render_waits_add(w, ref, &waiters[1][i]))
            break;
    }
    cr_assert_lt(taken, 10000, "distinct refs were queued without bound");
    /* A ref already waited for still takes more waiters. */
    cr_assert(render_waits_add(w, "p0", &waiters[2][0]));
    char long_ref[200];
    memset(long_ref, '7', sizeof(long_ref) - 1);
    long_ref[sizeof(long_ref) - 1] = '\0';
    cr_assert_not(render_waits_add(w, long_ref, &waiters[2][1]),
                  "a ref too long to cache was taken");
    atomic_store(&gate_open, true);
    render_waits_stop(w);
    cr_assert_eq(atomic_load(&handed_back_total), taken + 1, "every waiter taken is handed back");
    render_waits_destroy(w);
}
