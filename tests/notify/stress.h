/* tests/notify/stress.h -- a two-thread publish/close stress run of the hub.
 *
 * One body serves two binaries: test_notify's stress suite (Criterion) and notify_stress,
 * a plain program that the ThreadSanitizer build runs (tools/tsan_notify.sh), because
 * Criterion 2.4.1's runner aborts under ThreadSanitizer before any test starts. It uses
 * no Criterion: failures are counted and described in the result.
 */
#ifndef TIDINGS_TESTS_NOTIFY_STRESS_H
#define TIDINGS_TESTS_NOTIFY_STRESS_H

#include <stddef.h>

typedef struct nx_stress_s {
    unsigned users;   /* users the publisher picks from */
    unsigned clients; /* streams the reader keeps, client i on user i % users */
    unsigned events;  /* events to publish at most */
    double seconds;   /* publishing stops after this long, whatever events says */
    size_t queue_max; /* small, so that cut-offs and resumptions happen */
} nx_stress_t;

typedef struct nx_stress_result_s {
    unsigned long long published, delivered, opened, cut_off, hung_up, heartbeats;
    unsigned long long failures; /* 0 when every check held */
    char first_failure[256];
} nx_stress_result_t;

/* Fills cfg with the sizes the suite and the TSan run use. */
void nx_stress_defaults(nx_stress_t *cfg);

/* Runs a publisher thread (publish, heartbeat, batches, resubscriptions) against a reader
 * thread (open, drain, catch up from a simulated log, hang up, resume), then drains every
 * client and checks it holds its user's last event. Checks that each client's events come
 * in order with neither gap nor duplicate, across cut-offs and resumptions, and that every
 * wake finds its stream parked. Returns 0, or -1 when a thread could not start. */
int nx_stress_run(const nx_stress_t *cfg, nx_stress_result_t *res);

#endif
