/* storage/seen.c -- "last seen": when a user last made an authenticated request.
 *
 * seen:{user} holds the time in ms. It is coarse on purpose, like a token's last_used: the
 * script writes it only when the stored time is an hour old or more, and the caller keeps its
 * own memory of whom it marked lately (api/seen.c), so a busy user costs one write an hour,
 * not one a request. The key shares the user's hash tag, so the fan-out's timeline scripts
 * read it on the timeline's own slot: skipping an inactive follower costs no round trip.
 * A user without the key (registered before it existed) is never taken for inactive.
 *
 * A user whose stored time is older than the inactivity cutoff is coming back: the same
 * script marks their timeline as rebuilding (rebuild:{user}, which the read path reports),
 * and the caller then queues the rebuild job. Should that fail, the old time goes back, so the
 * next request is again a return; should the process die in between, the mark expires after
 * REBUILD_MARK_MS and the timeline stays as the fan-out left it.
 */
#include "storage/seen.h"
#include "storage/storage_internal.h"

#include <errno.h>
#include <stdio.h>

/* How long a rebuilding mark lives if its job never ends it: a job lost before it was queued,
 * or dead-lettered. Retries and a claim after a crash fit in it. */
#define REBUILD_MARK_MS (15ull * 60 * 1000)

/* KEYS: user, seen, rebuild; ARGV: now, grain, cutoff (0: none), mark lifetime. Returns the
 * stored time before (a string) when the user came back, -1 when nothing was written, -2
 * when the user is gone, 0 otherwise. */
static const char seen_script[] =
    "if redis.call('EXISTS', KEYS[1]) == 0 then return -2 end\n"
    "local prev = redis.call('GET', KEYS[2])\n"
    "local now = tonumber(ARGV[1])\n"
    "if prev and now - tonumber(prev) < tonumber(ARGV[2]) then return -1 end\n"
    "redis.call('SET', KEYS[2], ARGV[1])\n"
    "if prev and tonumber(prev) < tonumber(ARGV[3]) then\n"
    "  redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[4])\n"
    "  return prev\n"
    "end\n"
    "return 0\n";

/* KEYS: seen, rebuild; ARGV: the time to put back. */
static const char undo_script[] = "redis.call('SET', KEYS[1], ARGV[1])\n"
                                  "redis.call('DEL', KEYS[2])\n"
                                  "return 0\n";

int storage_user_seen(storage_t *s, uint64_t user, uint64_t now_ms, uint64_t inactive_before_ms,
                      bool *rebuild)
{
    if (rebuild)
        *rebuild = false;
    uint64_t at = storage_id_next(s);
    if (!at)
        return -EAGAIN;
    char ukey[40], seen[40], mark[40], now[24], grain[24], cutoff[24], ttl[24];
    snprintf(ukey, sizeof(ukey), K_USER, (ull)user);
    snprintf(seen, sizeof(seen), K_SEEN, (ull)user);
    snprintf(mark, sizeof(mark), K_REBUILD, (ull)user);
    snprintf(now, sizeof(now), "%llu", (ull)now_ms);
    snprintf(grain, sizeof(grain), "%llu", (ull)STORAGE_SEEN_GRAIN_MS);
    snprintf(cutoff, sizeof(cutoff), "%llu", (ull)inactive_before_ms);
    snprintf(ttl, sizeof(ttl), "%llu", (ull)REBUILD_MARK_MS);
    const char *argv[] = {"EVAL", seen_script, "3", ukey, seen, mark, now, grain, cutoff, ttl};
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    storage_redis_batch_addargv(&b, (int)(sizeof(argv) / sizeof(argv[0])), argv, NULL);
    int rc = storage_redis_batch_run_checked(&b);
    char prev[24] = "";
    if (rc == 0 && b.r[0]->type == REDIS_REPLY_STRING)
        snprintf(prev, sizeof(prev), "%s", b.r[0]->str);
    storage_redis_batch_free(&b);
    if (rc || !prev[0])
        return rc;

    storage_redis_batch_init(&b, s->redis);
    storage__job_enqueue(&b, storage__shard(s, user), at, 0, "kind rebuild user %llu at %llu",
                         (ull)user, (ull)at);
    rc = storage_redis_batch_run_checked(&b);
    storage_redis_batch_free(&b);
    if (rc) {
        const char *undo[] = {"EVAL", undo_script, "2", seen, mark, prev};
        storage_redis_batch_init(&b, s->redis);
        storage_redis_batch_addargv(&b, 6, undo, NULL);
        (void)storage_redis_batch_run(&b); /* best effort: else the mark expires */
        storage_redis_batch_free(&b);
        return rc;
    }
    if (rebuild)
        *rebuild = true;
    return 0;
}
