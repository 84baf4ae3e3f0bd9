/* tests/notify/test_refcount.c -- a shared event is freed exactly once.
 *
 * Every queue holding an event holds a reference; a reader drops the one it is handed; a
 * closed stream drops what it still queued. The counts are checked directly, and the Asan
 * build catches a free too many (use after free, double free) or too few (a leak).
 */
#include "tests/notify/nx.h"

#include <criterion/criterion.h>
#include <string.h>

TestSuite(refcount, .init = nx_setup, .fini = nx_teardown, .timeout = 10);

static notify_event_t *event(const char *id)
{
    notify_event_t *e = notify_event_new(id, NX_KIND_FEED, "post");
    cr_assert_not_null(e);
    return e;
}

Test(refcount, each_queue_holds_one_reference_and_drops_it_once)
{
    nx_hooks_t c[3];
    notify_sub_t *sub[3];
    for (int i = 0; i < 3; i++)
        sub[i] = nx_open_live(nx.hub, 7, "", &c[i], 1, 0);
    notify_event_t *e = event("1-0");
    notify_hub_publish(nx.hub, 7, e);
    cr_assert_eq(atomic_load(&e->refs), 4, "ours and one per queue");
    notify_event_t *got = NULL;
    char cursor[NOTIFY_ID_MAX];
    cr_assert_eq(notify_sub_next(sub[0], &got, cursor), NOTIFY_NEXT_EVENT);
    cr_assert_eq(got, e, "shared, not copied");
    cr_assert_eq(atomic_load(&e->refs), 4, "handed over with the queue's reference");
    notify_event_unref(got);
    cr_assert_eq(atomic_load(&e->refs), 3);
    notify_sub_close(sub[1]); /* still queued there */
    cr_assert_eq(atomic_load(&e->refs), 2);
    notify_hub_close_all(nx.hub);
    notify_sub_close(sub[2]);
    cr_assert_eq(atomic_load(&e->refs), 1);
    notify_sub_close(sub[0]);
    notify_event_unref(e);
}

Test(refcount, what_is_not_queued_takes_no_reference)
{
    nx_resize(2, 10);
    notify_sub_t *sub = nx_open_live(nx.hub, 7, "5-0", &nx.c, 1, 0);
    notify_event_t *old = event("5-0"), *a = event("6-0"), *b = event("7-0"), *over = event("8-0");
    notify_hub_publish(nx.hub, 7, old); /* at the cursor: dropped */
    notify_hub_publish(nx.hub, 7, a);
    notify_hub_publish(nx.hub, 7, b);
    notify_hub_publish(nx.hub, 7, over); /* past queue_max: cut off */
    cr_assert_eq(atomic_load(&old->refs), 1);
    cr_assert_eq(atomic_load(&a->refs), 2);
    cr_assert_eq(atomic_load(&over->refs), 1);
    notify_hub_publish(nx.hub, 8, a); /* nobody's */
    cr_assert_eq(atomic_load(&a->refs), 2);
    notify_sub_close(sub);
    cr_assert_eq(atomic_load(&a->refs), 1);
    cr_assert_eq(atomic_load(&b->refs), 1);
    notify_event_unref(old);
    notify_event_unref(a);
    notify_event_unref(b);
    notify_event_unref(over);
}

Test(refcount, a_catchup_borrows_the_log_events_it_is_handed)
{
    notify_sub_t *sub = nx.sub = nx_open(nx.hub, 7, "1-0", &nx.c);
    nx_expect(sub, NOTIFY_NEXT_CATCHUP);
    notify_event_t *log[2] = {nx_logged(1), nx_logged(2)};
    notify_sub_catchup_done(sub, log, 2, false);
    cr_assert_eq(atomic_load(&log[0]->refs), 1, "at the cursor: not queued");
    cr_assert_eq(atomic_load(&log[1]->refs), 2);
    notify_event_t *got = NULL;
    char cursor[NOTIFY_ID_MAX];
    cr_assert_eq(notify_sub_next(sub, &got, cursor), NOTIFY_NEXT_EVENT);
    cr_assert(got->from_log);
    notify_event_unref(got);
    notify_event_unref(log[0]);
    notify_event_unref(log[1]);
}

Test(refcount, a_heartbeat_is_shared_and_freed_with_its_last_stream)
{
    nx_hooks_t cb;
    notify_sub_t *a = nx_live();
    notify_sub_t *b = nx_open_live(nx.hub, 8, "", &cb, 1, 0);
    notify_hub_heartbeat(nx.hub, 0, 1);
    notify_event_t *beat = NULL;
    char cursor[NOTIFY_ID_MAX];
    cr_assert_eq(notify_sub_next(a, &beat, cursor), NOTIFY_NEXT_EVENT);
    cr_assert_eq(atomic_load(&beat->refs), 2, "ours and b's queue: the hub kept none");
    notify_sub_close(b);
    cr_assert_eq(atomic_load(&beat->refs), 1);
    notify_event_unref(beat); /* freed here; Asan reports it if anything touches it again */
}

Test(refcount, an_event_copies_and_cuts_its_strings)
{
    char longref[NOTIFY_REF_MAX + 20];
    memset(longref, 'r', sizeof(longref) - 1);
    longref[sizeof(longref) - 1] = '\0';
    notify_event_t *e = notify_event_new("1-2", NX_KIND_FEED + 1, longref);
    cr_assert_not_null(e);
    cr_assert_str_eq(e->id, "1-2");
    cr_assert_eq(e->kind, NX_KIND_FEED + 1, "the kind passes through untouched");
    cr_assert_eq(strlen(e->ref), NOTIFY_REF_MAX - 1);
    cr_assert_not(e->from_log);
    cr_assert_eq(atomic_load(&e->refs), 1);
    cr_assert_eq(notify_event_ref(e), e);
    notify_event_unref(e);
    notify_event_unref(e);
    notify_event_unref(NULL); /* a no-op */
}
