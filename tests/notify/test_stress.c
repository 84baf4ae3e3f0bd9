/* tests/notify/test_stress.c -- the two-thread publish/close stress run (stress.c), under
 * Criterion; the ThreadSanitizer build runs the same body as notify_stress. */
#include "tests/notify/stress.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>

TestSuite(stress, .timeout = 60);

Test(stress, concurrent_publish_and_close_deliver_every_stream_in_order_once)
{
    nx_stress_t cfg;
    nx_stress_defaults(&cfg);
    nx_stress_result_t res;
    cr_assert_eq(nx_stress_run(&cfg, &res), 0, "the threads did not start");
    cr_log_info("published %llu, delivered %llu, opened %llu, cut off %llu, hung up %llu, "
                "heartbeats %llu",
                res.published, res.delivered, res.opened, res.cut_off, res.hung_up, res.heartbeats);
    cr_assert_eq(res.failures, 0, "%llu failures, the first: %s", res.failures, res.first_failure);
    cr_assert_gt(res.published, 0);
    cr_assert_gt(res.delivered, 0);
}
