/* storage/post_job.c -- a small author's post job, written and acknowledged in one script.
 *
 * Once a post job's turn, its post and its followers are read (fanout/job_first.c), a job
 * whose followers fit in that one chunk is one more call: the followers' and the author's
 * timelines, their live events, the delivery status and the acknowledgement. Apart, they
 * were two round trips (the writes, then the acknowledgement once they were confirmed).
 * Together they are safe because the acknowledgement is the script's last step: a write
 * that fails (OOM, say) ends the script before it, and the job stays pending as a failed
 * write left it before. The writes are the same functions as the walk's (SCRIPT_ADD_TIMELINES,
 * SCRIPT_PUBLISH_EVENTS), so a retry after a partial run repeats them idempotently.
 *
 * A script reaches only its own node's keys, so this runs only when every key lives on one
 * node (one Redis, or a cluster of one master); elsewhere the job walks as before. A post
 * deleted by then is written and not acknowledged, and the job queues its delete job first,
 * as the recheck does (fanout/job.c).
 */
#include "storage/storage_async.h"
#include "storage/storage_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* KEYS[1] the job's queue (routes the call); ARGV: n, the n followers, then author post
 * timeline-max trim cutoff maxlen ref job channel entry order delivery now followers ttl. */
static const char post_job_script[] =
    SCRIPT_TRIM_TIMELINE SCRIPT_ADD_TIMELINES SCRIPT_PUBLISH_EVENTS
    "local n = tonumber(ARGV[1])\n"
    "local a = {unpack(ARGV, n + 2)}\n"
    "local author, post = a[1], a[2]\n"
    "local tl, ev = {}, {}\n"
    "for i = 1, n do\n"
    "  tl[i] = 'tl:{' .. ARGV[i + 1] .. '}'\n"
    "  ev[i] = 'ev:{' .. ARGV[i + 1] .. '}'\n"
    "end\n"
    "local written = {post, a[3], a[4], a[5]}\n"
    "add_timelines(tl, written)\n"
    "add_timelines({'tl:{' .. author .. '}'}, written)\n"
    "local told = {a[6], 'feed', a[7], a[8], '', '', '', a[9]}\n"
    "local live = publish_events(ev, told)\n"
    "publish_events({'ev:{' .. author .. '}'}, told)\n"
    "redis.call('HSET', a[12], 'state', 'done', 'started_at', a[13], 'finished_at', a[13],\n"
    "           'followers', a[14], 'merged', 0, 'timelines', n, 'live', live)\n"
    "redis.call('EXPIRE', a[12], a[15])\n"
    "if redis.call('HGET', 'post:{' .. post .. '}', 'deleted') == '1' then return {0, n, live} "
    "end\n"
    "redis.call('XACK', KEYS[1], '" FANOUT_GROUP "', a[10])\n"
    "redis.call('XDEL', KEYS[1], a[10])\n"
    "redis.call('LREM', a[11], 1, a[10])\n"
    "return {1, n, live}\n";

typedef struct post_job_op_s {
    storage_post_job_cb cb;
    void *arg;
} post_job_op_t;

static void on_reply(void *priv, int status, redisReply *r)
{
    post_job_op_t *op = priv;
    storage_post_job_outcome_t out = {0};
    if (status == 0 && (r->type != REDIS_REPLY_ARRAY || r->elements != 3))
        status = -EIO;
    if (status == 0) {
        out.acked = r->element[0]->integer == 1;
        out.timelines = (uint64_t)r->element[1]->integer;
        out.live = (uint64_t)r->element[2]->integer;
    }
    op->cb(op->arg, status, &out);
    free(op);
}

/* The fixed arguments after the followers, in the script's order. */
#define TAIL_ARGS 15

int storage_post_job_run(storage_async_t *sa, const storage_job_t *job, const uint64_t *followers,
                         size_t n, const storage_post_job_t *p, storage_post_job_cb cb, void *arg)
{
    int node;
    if (job->kind != STORAGE_JOB_POST || !storage_redis_async_one_node(sa->redis, &node))
        return -EPROTO;
    char queue[32], author[24], post[24], max[16], cutoff[24], maxlen[16], name[64], channel[32],
        order[64], delivery[48], now[24], count[24], nbuf[24], ttl[16];
    snprintf(queue, sizeof(queue), K_FANOUT, job->shard);
    snprintf(author, sizeof(author), "%llu", (ull)job->author);
    snprintf(post, sizeof(post), "%llu", (ull)job->post);
    snprintf(max, sizeof(max), "%d", p->timeline_max);
    snprintf(cutoff, sizeof(cutoff), "%llu", (ull)p->seen_after_ms);
    snprintf(maxlen, sizeof(maxlen), "%d", EVENTS_MAXLEN);
    snprintf(name, sizeof(name), "%d/%s", job->shard, job->entry_id);
    storage_redis_live_channel(storage_redis_async_client(sa->redis), node, channel,
                               sizeof(channel));
    snprintf(order, sizeof(order), K_JOB_ORDER, job->shard, (ull)job->author);
    snprintf(delivery, sizeof(delivery), K_DELIVERY, (ull)job->post);
    snprintf(now, sizeof(now), "%llu", (ull)storage__wall_ms());
    snprintf(ttl, sizeof(ttl), "%d", DELIVERY_TTL_S);
    snprintf(count, sizeof(count), "%lld", (long long)p->followers);
    snprintf(nbuf, sizeof(nbuf), "%zu", n);

    size_t argc = 5 + n + TAIL_ARGS;
    const char **argv = malloc(argc * sizeof(*argv));
    char(*ids)[24] = malloc((n ? n : 1) * sizeof(*ids));
    post_job_op_t *op = malloc(sizeof(*op));
    int rc = -ENOMEM;
    if (argv && ids && op) {
        size_t a = 0;
        argv[a++] = "EVAL";
        argv[a++] = post_job_script;
        argv[a++] = "1";
        argv[a++] = queue;
        argv[a++] = nbuf;
        for (size_t i = 0; i < n; i++) {
            snprintf(ids[i], sizeof(ids[i]), "%llu", (ull)followers[i]);
            argv[a++] = ids[i];
        }
        const char *tail[TAIL_ARGS] = {
            author,  post,          max,   storage__timeline_trims(job->post) ? "1" : "0",
            cutoff,  maxlen,        post,  name,
            channel, job->entry_id, order, delivery,
            now,     count,         ttl};
        for (size_t i = 0; i < TAIL_ARGS; i++)
            argv[a++] = tail[i];
        *op = (post_job_op_t){cb, arg};
        rc = storage_redis_send_argv(sa->redis, STORAGE_REDIS_WRITER, on_reply, op, (int)a, argv,
                                     NULL);
    }
    if (rc)
        free(op);
    free(argv);
    free(ids);
    return rc;
}
