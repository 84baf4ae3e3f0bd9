/* tests/notify/stress_main.c -- notify_stress: the stress run (stress.c) as a plain program.
 *
 * Criterion 2.4.1's runner aborts under ThreadSanitizer ("Could not initialize inheritable
 * arena", Snaipe/Criterion#274), so the Tsan build runs this instead (tools/tsan_notify.sh).
 * Usage: notify_stress [events [seconds]]. Exits 0 when every check held.
 */
#include "tests/notify/stress.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    nx_stress_t cfg;
    nx_stress_defaults(&cfg);
    if (argc > 1)
        cfg.events = (unsigned)strtoul(argv[1], NULL, 10);
    if (argc > 2)
        cfg.seconds = strtod(argv[2], NULL);
    nx_stress_result_t res;
    if (nx_stress_run(&cfg, &res) != 0) {
        fprintf(stderr, "notify_stress: the run did not start\n");
        return 2;
    }
    printf("notify_stress: published %llu, delivered %llu, opened %llu, cut off %llu, "
           "hung up %llu, heartbeats %llu\n",
           res.published, res.delivered, res.opened, res.cut_off, res.hung_up, res.heartbeats);
    if (res.failures) {
        fprintf(stderr, "notify_stress: %llu failures, the first: %s\n", res.failures,
                res.first_failure);
        return 1;
    }
    return 0;
}
