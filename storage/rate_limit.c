/* storage/rate_limit.c -- token buckets that every process on the same Redis shares.
 *
 * A bucket is one string key holding its "theoretical arrival time" (GCRA, the generic cell
 * rate algorithm): the moment the bucket would be full again. A request is allowed when that
 * moment is at most burst intervals away after adding its own interval. One script call per
 * check, on the key's own slot (rl:{<subject>}:<class>, where a user's subject is their id,
 * so the bucket sits beside the user's keys); the script reads Redis' clock, so processes
 * on different machines agree. The key expires when the bucket is full again. A bucket
 * spent under an older, stricter policy counts as at most empty under the current one, so
 * raising a limit takes effect at once.
 */
#include "storage/storage_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define K_RATE "rl:{%s}:%s" /* string: the bucket's full-again time, µs (GCRA) */
#define US_PER_MS 1000

/* KEYS[1] the bucket; ARGV: interval and burst. Times in microseconds. Returns {allowed,
 * remaining, retry, full}: requests left now, how long until one is allowed (0 when allowed)
 * and how long until the bucket is full again. A full-again time beyond the current policy's
 * span (left by an older, stricter policy) is cut back to it and stored: the bucket is
 * empty, not spent for longer than the policy allows. */
static const char take_script[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "local interval, burst = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
    "local span = burst * interval\n"
    "local tat = tonumber(redis.call('GET', KEYS[1])) or now\n"
    "if tat < now then tat = now end\n"
    "if tat > now + span then\n"
    "  tat = now + span\n"
    "  redis.call('SET', KEYS[1], tat, 'PX', math.ceil(span / 1000))\n"
    "end\n"
    "local new_tat = tat + interval\n"
    "local allow_at = new_tat - span\n"
    "if allow_at > now then return {0, 0, allow_at - now, tat - now} end\n"
    "redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000))\n"
    "return {1, math.floor((now - allow_at) / interval), 0, new_tat - now}\n";

struct storage_rate_gate_s {
    storage_redis_gate_t gate;
    storage_rate_t result;
    int rc; /* the check's outcome: 0, or a Redis failure (the request goes on) */
};

/* The gate's judge: the script's {allowed, remaining, retry, full}. */
static bool read_reply(void *priv, const redisReply *r)
{
    storage_rate_gate_t *g = priv;
    g->rc = r ? 0 : -EAGAIN;
    if (r && (r->type != REDIS_REPLY_ARRAY || r->elements != 4))
        g->rc = -EIO;
    for (size_t i = 0; g->rc == 0 && i < 4; i++)
        if (r->element[i]->type != REDIS_REPLY_INTEGER)
            g->rc = -EIO;
    if (g->rc)
        return true; /* a failing Redis is not a reason to refuse: the request meets it */
    g->result.allowed = r->element[0]->integer == 1;
    g->result.remaining = (uint32_t)r->element[1]->integer;
    g->result.retry_ms = ((uint64_t)r->element[2]->integer + US_PER_MS - 1) / US_PER_MS;
    g->result.full_ms = ((uint64_t)r->element[3]->integer + US_PER_MS - 1) / US_PER_MS;
    return g->result.allowed;
}

storage_rate_gate_t *storage_rate_gate_new(storage_t *s, const char *subject,
                                           const char *class_name, uint64_t interval_us,
                                           uint32_t burst)
{
    if (!interval_us || !burst || strchr(subject, '}') || strchr(subject, '{'))
        return NULL;
    char key[160], interval[24], size[16];
    int n = snprintf(key, sizeof(key), K_RATE, subject, class_name);
    if (n < 0 || (size_t)n >= sizeof(key))
        return NULL;
    snprintf(interval, sizeof(interval), "%llu", (unsigned long long)interval_us);
    snprintf(size, sizeof(size), "%u", burst);
    const char *argv[] = {"EVAL", take_script, "1", key, interval, size};
    storage_rate_gate_t *g = calloc(1, sizeof(*g));
    if (g && storage_redis_gate_init(&g->gate, s->redis, 6, argv, read_reply, g)) {
        free(g);
        g = NULL;
    }
    return g;
}

void storage_rate_gate_arm(storage_rate_gate_t *g)
{
    storage_redis_gate_arm(&g->gate);
}

int storage_rate_gate_settle(storage_rate_gate_t *g, storage_rate_t *out)
{
    storage_redis_gate_settle(&g->gate);
    *out = g->result;
    return g->rc;
}

void storage_rate_gate_free(storage_rate_gate_t *g)
{
    if (!g)
        return;
    storage_redis_gate_free(&g->gate);
    free(g);
}

int storage_rate_take(storage_t *s, const char *subject, const char *class_name,
                      uint64_t interval_us, uint32_t burst, storage_rate_t *out)
{
    storage_rate_gate_t *g = storage_rate_gate_new(s, subject, class_name, interval_us, burst);
    if (!g)
        return -EINVAL;
    int rc = storage_rate_gate_settle(g, out);
    storage_rate_gate_free(g);
    return rc;
}
