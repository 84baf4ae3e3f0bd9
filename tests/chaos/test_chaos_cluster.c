/* tests/chaos/test_chaos_cluster.c -- the same load (chaos.h) on a private Redis Cluster of 3
 * masters with one replica each: a tidings process killed (SIGKILL) and started again, and a
 * master killed (SIGKILL) so that its replica takes over (cluster-node-timeout 1000 ms). */
#include "tests/chaos/chaos.h"
#include "tests/scaleout/so.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <string.h>

TestSuite(chaos_cluster, .timeout = CH_TIMEOUT);

static ch_world_t world;

#define WARM_MS 5000
#define AFTER_MS 8000
#define FAILOVER_MS 20000

Test(chaos_cluster, a_killed_process_loses_nothing)
{
    ch_start(&world, "ckill", true);
    ch_run(&world, WARM_MS);
    ch_fault_t f = {.name = "cluster: kill -9 of a process", .writes = CH_WRITES_OK};
    f.start = ts_now_ms();
    ch_server_kill(&world, 0);
    ch_run(&world, 4000);
    f.end = ts_now_ms();
    ch_server_restart(&world, 0);
    ch_run(&world, AFTER_MS);
    ch_verify(&world, &f);
    ch_finish(&world);
}

Test(chaos_cluster, a_killed_master_loses_nothing)
{
    ch_start(&world, "master", true);
    ch_run(&world, WARM_MS);
    /* The master of the first author's slot: it holds that author's posts and queue. */
    int slot = so_user_slot(world.authors[0].id);
    int victim = so_cluster_master_of(&world.redis, slot);
    cr_assert(victim, "no master serves slot %d", slot);
    ch_fault_t f = {.name = "cluster: a master killed", .writes = CH_WRITES_PARTIAL};
    pid_t pid = so_cluster_node_pid(&world.redis, victim);
    f.start = ts_now_ms();
    cr_assert_eq(kill(pid, SIGKILL), 0, "kill %d: %s", (int)pid, strerror(errno));
    int now_master = 0;
    for (uint64_t deadline = ts_now_ms() + FAILOVER_MS; ts_now_ms() < deadline;) {
        ch_run(&world, 250);
        now_master = so_cluster_master_of(&world.redis, slot);
        if (now_master && now_master != victim)
            break;
    }
    cr_assert(now_master && now_master != victim, "no replica took over slot %d within %d ms", slot,
              FAILOVER_MS);
    f.end = ts_now_ms();
    fprintf(stderr, "chaos cluster: the replica on port %d took over slot %d after %llu ms\n",
            now_master, slot, (unsigned long long)(f.end - f.start));
    ch_run(&world, AFTER_MS);
    ch_verify(&world, &f);
    ch_finish(&world);
}
