/* tests/chaos/test_chaos.c -- two tidings processes on one redis-server (AOF, fsync always)
 * under steady load (chaos.h), one fault per test: a process killed (SIGKILL) and started
 * again, Redis crashed and restarted from its AOF, Redis paused for 5 s (SIGSTOP, SIGCONT),
 * Redis out of memory (maxmemory just above what it uses) and then given room. */
#include "tests/chaos/chaos.h"

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

TestSuite(chaos, .timeout = CH_TIMEOUT);

static ch_world_t world;

#define WARM_MS 5000
#define AFTER_MS 8000
#define GRACE_MS 300 /* a /readyz answered just as the fault began may still say 200 */

Test(chaos, a_killed_process_loses_nothing)
{
    ch_start(&world, "kill", false);
    ch_run(&world, WARM_MS);
    ch_fault_t f = {.name = "kill -9 of a process", .writes = CH_WRITES_OK};
    f.start = ts_now_ms();
    ch_server_kill(&world, 1);
    ch_run(&world, 4000);
    f.end = ts_now_ms();
    ch_server_restart(&world, 1);
    ch_run(&world, AFTER_MS);
    ch_verify(&world, &f);
    ch_finish(&world);
}

Test(chaos, a_redis_restart_loses_nothing)
{
    ch_start(&world, "restart", false);
    ch_run(&world, WARM_MS);
    ch_fault_t f = {.name = "redis restart", .writes = CH_WRITES_FAIL};
    f.start = ts_now_ms();
    f.fail_from = f.start + GRACE_MS;
    ts_redis_kill(&world.redis);
    ch_run(&world, 3000);
    f.end = ts_now_ms();
    ts_redis_start(&world.redis, world.redis.port);
    ch_run(&world, AFTER_MS);
    ch_verify(&world, &f);
    ch_finish(&world);
}

Test(chaos, a_paused_redis_loses_nothing)
{
    ch_start(&world, "pause", false);
    ch_run(&world, WARM_MS);
    ch_fault_t f = {.name = "redis paused 5 s", .writes = CH_WRITES_FAIL};
    f.start = ts_now_ms();
    f.fail_from = f.start + GRACE_MS;
    cr_assert_eq(kill(world.redis.pid, SIGSTOP), 0);
    ch_run(&world, 5000);
    f.end = ts_now_ms();
    cr_assert_eq(kill(world.redis.pid, SIGCONT), 0);
    ch_run(&world, AFTER_MS);
    ch_verify(&world, &f);
    ch_finish(&world);
}

/* used_memory from INFO memory. */
static long long used_memory(struct redisContext *c)
{
    redisReply *r = ts_redis_cmd_ok(c, "INFO memory");
    const char *at = strstr(r->str, "used_memory:");
    long long used = at ? atoll(at + 12) : 0;
    freeReplyObject(r);
    cr_assert_gt(used, 0, "no used_memory in INFO memory");
    return used;
}

Test(chaos, a_full_redis_refuses_and_recovers)
{
    ch_start(&world, "oom", false);
    ch_run(&world, WARM_MS);
    ch_fault_t f = {.name = "redis at maxmemory", .writes = CH_WRITES_FAIL};
    struct redisContext *c = ch_redis(&world);
    f.start = ts_now_ms();
    freeReplyObject(ts_redis_cmd_ok(c, "CONFIG SET maxmemory %lld", used_memory(c) + 256 * 1024));
    /* The load fills the last 256 KB within a second or two; writes are refused from the
     * first post answered with an error. */
    ch_post_t first;
    bool refused = false;
    for (uint64_t deadline = ts_now_ms() + 15000; !refused && ts_now_ms() < deadline;)
        ch_run(&world, 100), refused = ch_first_refused_post(&world, f.start, &first);
    cr_assert(refused, "no post was refused within 15 s of maxmemory");
    f.fail_from = first.end + GRACE_MS;
    ch_run(&world, 4000);
    f.end = ts_now_ms();
    freeReplyObject(ts_redis_cmd_ok(c, "CONFIG SET maxmemory 0"));
    ts_redis_close(c);
    ch_run(&world, AFTER_MS);
    ch_verify(&world, &f);
    ch_finish(&world);
}
