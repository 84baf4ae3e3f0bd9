/* tests/api/test_stream_writers.c -- the SSE writer threads' queue: every item pushed is
 * served exactly once, on the thread its index picks, in push order there; stopping serves
 * what is queued and refuses later pushes. */
#include "api/stream_writers.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

TestSuite(stream_writers, .timeout = 20);

#define WRITERS 3
#define PUSHERS 4
#define PER_PUSHER 20000

typedef struct {
    unsigned pusher, seq;
    atomic_int served; /* times served: must end at 1 */
    pthread_t thread;  /* who served it */
} item_t;

static item_t items[PUSHERS][PER_PUSHER];
/* The last seq served per (writer, pusher): a writer serves one pusher's items in order. */
static unsigned last_seq[WRITERS][PUSHERS];
static atomic_int served_total, out_of_order, refused;
static stream_writers_t *ws;

static void serve(void *arg)
{
    item_t *it = arg;
    it->thread = pthread_self();
    atomic_fetch_add(&it->served, 1);
    unsigned w = it->seq % WRITERS;
    if (it->seq / WRITERS != last_seq[w][it->pusher]) /* asserted on the test's own thread */
        atomic_fetch_add(&out_of_order, 1);
    last_seq[w][it->pusher]++;
    atomic_fetch_add(&served_total, 1);
}

static void *push_all(void *arg)
{
    unsigned p = (unsigned)(uintptr_t)arg;
    for (unsigned i = 0; i < PER_PUSHER; i++) {
        items[p][i].pusher = p;
        items[p][i].seq = i;
        if (!stream_writers_push(ws, i, &items[p][i]))
            atomic_fetch_add(&refused, 1);
    }
    return NULL;
}

Test(stream_writers, every_item_is_served_once_in_order_on_its_writer)
{
    ws = stream_writers_start(WRITERS, serve);
    cr_assert_not_null(ws);
    pthread_t t[PUSHERS];
    for (unsigned p = 0; p < PUSHERS; p++)
        pthread_create(&t[p], NULL, push_all, (void *)(uintptr_t)p);
    for (unsigned p = 0; p < PUSHERS; p++)
        pthread_join(t[p], NULL);
    stream_writers_stop(ws); /* serves what is still queued first */
    cr_assert_eq(atomic_load(&refused), 0, "pushes were refused before stop");
    cr_assert_eq(atomic_load(&out_of_order), 0, "items of one pusher were served out of order");
    cr_assert_eq(atomic_load(&served_total), PUSHERS * PER_PUSHER);
    for (unsigned p = 0; p < PUSHERS; p++)
        for (unsigned i = 0; i < PER_PUSHER; i++) {
            cr_assert_eq(atomic_load(&items[p][i].served), 1,
                         "item %u of pusher %u served %d times", i, p,
                         atomic_load(&items[p][i].served));
            /* Same index, same writer thread. */
            cr_assert(pthread_equal(items[p][i].thread, items[0][i % WRITERS].thread),
                      "item %u of pusher %u ran on another thread than index %u", i, p,
                      i % WRITERS);
        }
    cr_assert_not(stream_writers_push(ws, 0, &items[0][0]), "a push after stop was taken");
    stream_writers_destroy(ws);
}

Test(stream_writers, zero_writers_is_an_error)
{
    cr_assert_null(stream_writers_start(0, serve));
    stream_writers_destroy(NULL); /* a no-op */
}
