/* tests/notify/nx.h -- what the notify suites share: hooks that count, events by number.
 *
 * Every event a suite makes is numbered: its id is "<k>-0", so k orders the events of one
 * stream as the log would. Hooks count parks and wakes and flag a wake that finds its
 * stream not parked (a stray wake) or a park of a stream already parked. The helpers assert
 * with Criterion and so run on the test's own thread only; the counters are atomic because
 * a publisher on another thread may call the hooks.
 */
#ifndef TIDINGS_TESTS_NX_H
#define TIDINGS_TESTS_NX_H

#include "notify/notify.h"

/* Any non-negative kind: the hub passes kinds through untouched. */
#define NX_KIND_FEED 1

#include <stdatomic.h>
#include <stdbool.h>

typedef struct nx_hooks_s {
    atomic_int parks, wakes;
    atomic_int strays; /* a wake of a stream not parked, or a park of one parked */
    atomic_bool parked;
} nx_hooks_t;

/* Hooks counting into c (borrowed: it outlives the stream). */
notify_sub_hooks_t nx_hooks(nx_hooks_t *c);

/* A hub of that size; asserts it was made. Returns new. */
notify_hub_t *nx_hub(size_t queue_max, size_t max_streams);

/* Publishes event k (id "<k>-0", kind "feed") live to user, then drops the caller's
 * reference: the hub keeps its own. */
void nx_publish(notify_hub_t *hub, uint64_t user, unsigned k);

/* Returns new: event k as read back from the log. */
notify_event_t *nx_logged(unsigned k);

/* Opens user's stream after cursor (asserted made), its first catch-up pending. Returns new. */
notify_sub_t *nx_open(notify_hub_t *hub, uint64_t user, const char *cursor, nx_hooks_t *c);

/* Hands log entries first..last (none when first > last) to sub's pending catch-up. */
void nx_catch_up(notify_sub_t *sub, unsigned first, unsigned last, bool more);

/* Opens a stream for user after cursor and runs its first catch-up, handing over the log
 * entries first..last, so it is live. Returns new. */
notify_sub_t *nx_open_live(notify_hub_t *hub, uint64_t user, const char *cursor, nx_hooks_t *c,
                           unsigned first, unsigned last);

/* Asserts the next step is an event and returns its number (a heartbeat is 0), dropping
 * the reference the hub handed over. */
unsigned nx_next_k(notify_sub_t *sub);

/* Asserts the next step is what (not an event); returns the cursor of a catch-up as k. */
unsigned nx_expect(notify_sub_t *sub, notify_next_t what);

/* The k of an id "<k>-<seq>" ("" is 0). */
unsigned nx_k(const char *id);

/* ---- the fixture: suites with .init = nx_setup, .fini = nx_teardown ---------------------- */
typedef struct nx_fixture_s {
    notify_hub_t *hub; /* 64 entries, 10 streams, unless nx_resize */
    notify_sub_t *sub; /* user 7's stream once nx_live opened it; closed by nx_teardown */
    nx_hooks_t c;      /* its hooks */
} nx_fixture_t;
extern nx_fixture_t nx;
void nx_setup(void);
/* Closes nx.sub unless NULL (a test that closes it itself sets it NULL), destroys nx.hub. */
void nx_teardown(void);
/* Replaces nx.hub, before any stream is opened, with one of that size. */
void nx_resize(size_t queue_max, size_t max_streams);
/* Opens nx.sub: user 7's stream after "", live after an empty catch-up. Returns it. */
notify_sub_t *nx_live(void);

#endif
