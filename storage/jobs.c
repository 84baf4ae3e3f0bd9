/* storage/jobs.c -- the durable fan-out queue: Redis streams fanout:{n} read through the
 * consumer group "engine", and the dead-letter stream fanout:dead.
 *
 * A job is acknowledged and deleted only when it is done, so the stream holds exactly
 * the unfinished work. Claiming uses XPENDING (with IDLE) then XCLAIM rather than
 * XAUTOCLAIM because the engine needs each job's delivery count to dead-letter it after
 * too many attempts, and XAUTOCLAIM does not report it.
 */
#include "storage/storage_async.h"
#include "storage/storage_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define K_DEAD "fanout:dead"

typedef struct jobs_op_s {
    storage_async_t *sa;
    storage_jobs_cb cb;
    void *arg;
    int shard;
    char consumer[96];
    int idle_ms;
    int64_t *deliveries; /* claim: delivery counts from XPENDING, by position */
    bool own_pending;    /* read: our own unacknowledged jobs, not new ones */
    char (*ids)[48];     /* claim: the entries XPENDING listed */
    size_t n_ids;
} jobs_op_t;

#define CLAIM_MAX 1024

static void op_free(jobs_op_t *op)
{
    free(op->deliveries);
    free(op->ids);
    free(op);
}

static const char *kind_names[] = {"",       "post",   "delete",     "follow", "unfollow", "like",
                                   "unlike", "repost", "unrepost",   "block",  "unblock",  "mute",
                                   "unmute", "erase",  "erase_rest", "rebuild"};

static storage_job_kind_t parse_kind(const redisReply *v)
{
    for (int k = STORAGE_JOB_POST; k <= STORAGE_JOB_REBUILD; k++)
        if (v->type == REDIS_REPLY_STRING && strcmp(v->str, kind_names[k]) == 0)
            return (storage_job_kind_t)k;
    return STORAGE_JOB_UNKNOWN;
}

/* "<ms>-<seq>" of shard as an id of the same layout as storage_id_next's, for jobs queued
 * without an "at" id (the engine's own): the shard takes the node bits, since entry ids of
 * different shards (streams) may be equal. */
static uint64_t event_id(const char *entry, int shard)
{
    char *dash;
    uint64_t ms = strtoull(entry, &dash, 10);
    uint64_t seq = *dash == '-' ? strtoull(dash + 1, NULL, 10) : 0;
    uint64_t low =
        (seq & ((1u << SEQ_BITS) - 1)) << NODE_BITS | ((uint64_t)shard & ((1u << NODE_BITS) - 1));
    if (ms < STORAGE_ID_EPOCH_MS)
        return low + 1;
    return (ms - STORAGE_ID_EPOCH_MS) << (NODE_BITS + SEQ_BITS) | low;
}

/* Parses one [id, [field, value, ...]] entry; fields may be nil for a deleted entry. */
static void parse_entry(const redisReply *e, int shard, storage_job_t *job)
{
    memset(job, 0, sizeof(*job));
    job->shard = shard;
    job->deliveries = 1;
    if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 ||
        e->element[0]->type != REDIS_REPLY_STRING)
        return;
    snprintf(job->entry_id, sizeof(job->entry_id), "%s", e->element[0]->str);
    job->event_id = event_id(job->entry_id, shard);
    const redisReply *f = e->element[1];
    if (f->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 0; i + 1 < f->elements; i += 2) {
        const char *name = f->element[i]->str;
        const redisReply *v = f->element[i + 1];
        if (!name || v->type != REDIS_REPLY_STRING)
            continue;
        if (strcmp(name, "kind") == 0)
            job->kind = parse_kind(v);
        else if (strcmp(name, "post") == 0)
            job->post = storage_redis_uint_str(v);
        else if (strcmp(name, "author") == 0)
            job->author = storage_redis_uint_str(v);
        else if (strcmp(name, "follower") == 0)
            job->follower = storage_redis_uint_str(v);
        else if (strcmp(name, "followee") == 0)
            job->followee = storage_redis_uint_str(v);
        else if (strcmp(name, "actor") == 0)
            job->actor = storage_redis_uint_str(v);
        else if (strcmp(name, "user") == 0)
            job->user = storage_redis_uint_str(v);
        else if (strcmp(name, "target") == 0)
            job->target = storage_redis_uint_str(v);
        else if (strcmp(name, "at") == 0 && storage_redis_uint_str(v))
            job->event_id = storage_redis_uint_str(v);
        else if (strcmp(name, "after") == 0)
            job->retract_after_ms = storage_redis_uint_str(v);
    }
}

/* Which shard a stream name "fanout:{7}" is. */
static int shard_of(const char *name)
{
    const char *brace = strchr(name, '{');
    return brace ? atoi(brace + 1) : 0;
}

static void on_read(void *priv, int status, redisReply *r)
{
    jobs_op_t *op = priv;
    storage_job_t *jobs = NULL;
    size_t n = 0;
    if (status == 0 && r->type == REDIS_REPLY_ARRAY) {
        size_t total = 0;
        for (size_t s = 0; s < r->elements; s++)
            total += r->element[s]->element[1]->elements;
        jobs = calloc(total ? total : 1, sizeof(*jobs));
        if (!jobs)
            status = -ENOMEM;
        for (size_t s = 0; jobs && s < r->elements; s++) {
            const redisReply *stream = r->element[s];
            int shard = shard_of(stream->element[0]->str);
            for (size_t i = 0; i < stream->element[1]->elements; i++) {
                parse_entry(stream->element[1]->element[i], shard, &jobs[n]);
                /* Our own backlog: handed out before, perhaps partly done. */
                if (op->own_pending)
                    jobs[n].deliveries = 2;
                n++;
            }
        }
    }
    op->cb(op->arg, status, jobs, n);
    free(jobs);
    free(op);
}

int storage_jobs_shards(const storage_async_t *sa)
{
    return storage__async_shards(sa);
}

int storage_jobs_read(storage_async_t *sa, int shard, const char *consumer, size_t count,
                      int block_ms, bool own_pending, storage_jobs_cb cb, void *arg)
{
    if (shard < 0 || shard >= storage__async_shards(sa))
        return -EINVAL;
    char name[24], countbuf[24], blockbuf[24];
    const char *argv[12];
    int argc = 0;
    snprintf(name, sizeof(name), K_FANOUT, shard);
    snprintf(countbuf, sizeof(countbuf), "%zu", count);
    snprintf(blockbuf, sizeof(blockbuf), "%d", block_ms);
    argv[argc++] = "XREADGROUP";
    argv[argc++] = "GROUP";
    argv[argc++] = FANOUT_GROUP;
    argv[argc++] = consumer;
    argv[argc++] = "COUNT";
    argv[argc++] = countbuf;
    if (!own_pending) {
        argv[argc++] = "BLOCK";
        argv[argc++] = blockbuf;
    }
    argv[argc++] = "STREAMS";
    argv[argc++] = name;
    argv[argc++] = own_pending ? "0" : ">";
    jobs_op_t *op = calloc(1, sizeof(*op));
    if (!op)
        return -ENOMEM;
    op->sa = sa;
    op->cb = cb;
    op->arg = arg;
    op->own_pending = own_pending;
    /* One shard per read: on Redis Cluster the shards live in different slots, and a
     * blocking read gets a connection of its own (the shard's reader). */
    int rc = storage_redis_send_argv(sa->redis,
                                     own_pending ? STORAGE_REDIS_WRITER : STORAGE_REDIS_READER,
                                     on_read, op, argc, argv, NULL);
    if (rc)
        free(op);
    return rc;
}

static void on_claimed(void *priv, int status, redisReply *r)
{
    jobs_op_t *op = priv;
    storage_job_t *jobs = NULL;
    size_t n = 0;
    if (status == 0 && r->type == REDIS_REPLY_ARRAY) {
        jobs = calloc(r->elements ? r->elements : 1, sizeof(*jobs));
        if (!jobs)
            status = -ENOMEM;
        for (size_t i = 0; jobs && i < r->elements; i++) {
            parse_entry(r->element[i], op->shard, &jobs[n]);
            for (size_t k = 0; k < op->n_ids; k++) /* n is small: at most max_jobs */
                if (strcmp(op->ids[k], jobs[n].entry_id) == 0)
                    jobs[n].deliveries = op->deliveries[k] + 1;
            n++;
        }
    }
    op->cb(op->arg, status, jobs, n);
    free(jobs);
    op_free(op);
}

static void on_pending(void *priv, int status, redisReply *r)
{
    jobs_op_t *op = priv;
    size_t want = status == 0 && r->type == REDIS_REPLY_ARRAY ? r->elements : 0;
    if (want > CLAIM_MAX)
        want = CLAIM_MAX;
    op->ids = want ? malloc(want * sizeof(*op->ids)) : NULL;
    op->deliveries = want ? malloc(want * sizeof(*op->deliveries)) : NULL;
    if (want && (!op->ids || !op->deliveries))
        status = -ENOMEM;
    if (status == 0 && want > 0) {
        const char *argv[8 + CLAIM_MAX];
        char key[24], idle[24];
        int argc = 0;
        snprintf(key, sizeof(key), K_FANOUT, op->shard);
        snprintf(idle, sizeof(idle), "%d", op->idle_ms);
        argv[argc++] = "XCLAIM";
        argv[argc++] = key;
        argv[argc++] = FANOUT_GROUP;
        argv[argc++] = op->consumer;
        argv[argc++] = idle;
        for (size_t i = 0; i < want; i++) {
            const redisReply *e = r->element[i];
            snprintf(op->ids[op->n_ids], sizeof(op->ids[0]), "%s", e->element[0]->str);
            op->deliveries[op->n_ids] = e->element[3]->integer;
            argv[argc++] = op->ids[op->n_ids++];
        }
        status = storage_redis_send_argv(op->sa->redis, STORAGE_REDIS_WRITER, on_claimed, op, argc,
                                         argv, NULL);
        if (status == 0)
            return;
    }
    op->cb(op->arg, status, NULL, 0);
    op_free(op);
}

int storage_jobs_claim(storage_async_t *sa, const char *consumer, int idle_ms, size_t count,
                       storage_jobs_cb cb, void *arg)
{
    static int next_shard;
    jobs_op_t *op = calloc(1, sizeof(*op));
    if (!op)
        return -ENOMEM;
    *op = (jobs_op_t){.sa = sa, .cb = cb, .arg = arg, .idle_ms = idle_ms};
    op->shard = next_shard++ % storage__async_shards(sa);
    snprintf(op->consumer, sizeof(op->consumer), "%s", consumer);
    if (count > CLAIM_MAX)
        count = CLAIM_MAX;
    int rc = storage_redis_send(sa->redis, STORAGE_REDIS_WRITER, on_pending, op,
                                "XPENDING " K_FANOUT " " FANOUT_GROUP " IDLE %d - + %llu",
                                op->shard, idle_ms, (ull)count);
    if (rc)
        free(op);
    return rc;
}

int storage_jobs_prepare(storage_async_t *sa, storage_status_cb cb, void *arg)
{
    storage_redis_group_t *g = storage_redis_group_new(sa->redis, cb, arg);
    if (!g)
        return -ENOMEM;
    /* BUSYGROUP errors (the group exists) make the status -EIO; callers ignore it. */
    for (int i = 0; i < storage__async_shards(sa); i++)
        storage_redis_group_add(g, "XGROUP CREATE " K_FANOUT " " FANOUT_GROUP " 0 MKSTREAM", i);
    return storage_redis_group_end(g);
}

int storage_job_touch(storage_async_t *sa, const char *consumer, const storage_job_t *job,
                      storage_status_cb cb, void *arg)
{
    storage_redis_group_t *g = storage_redis_group_new(sa->redis, cb, arg);
    if (!g)
        return -ENOMEM;
    storage_redis_group_add(g, "XCLAIM " K_FANOUT " " FANOUT_GROUP " %s 0 %s JUSTID", job->shard,
                            consumer, job->entry_id);
    return storage_redis_group_end(g);
}

/* ---- an author's turn ------------------------------------------------------------------------ */

static bool in_author_order(const storage_job_t *job)
{
    return job->kind == STORAGE_JOB_POST || job->kind == STORAGE_JOB_DELETE ||
           job->kind == STORAGE_JOB_ERASE || job->kind == STORAGE_JOB_ERASE_REST;
}

/* Ends job's place in its author's order list (a job queued without one has none). */
static void leave_order(storage_redis_group_t *g, const storage_job_t *job)
{
    if (in_author_order(job))
        storage_redis_group_add(g, "LREM " K_JOB_ORDER " 1 %s", job->shard, (ull)job->author,
                                job->entry_id);
}

/* KEYS[1] the author's order list, KEYS[2] the stream; ARGV[1] the job's entry. 1 when the
 * job is first, or not in the list (queued before lists, or redriven); 0 while an earlier one
 * is. A first entry no longer in the stream (its job finished, and its removal from the list
 * was lost) is dropped. */
static const char turn_script[] = "while true do\n"
                                  "  local first = redis.call('LINDEX', KEYS[1], 0)\n"
                                  "  if not first or first == ARGV[1] then return 1 end\n"
                                  "  if #redis.call('XRANGE', KEYS[2], first, first) > 0 then\n"
                                  "    if redis.call('LPOS', KEYS[1], ARGV[1]) then return 0 end\n"
                                  "    return 1\n"
                                  "  end\n"
                                  "  redis.call('LPOP', KEYS[1])\n"
                                  "end\n";

typedef struct turn_op_s {
    storage_bool_cb cb;
    void *arg;
} turn_op_t;

static void on_turn(void *priv, int status, redisReply *r)
{
    turn_op_t *op = priv;
    op->cb(op->arg, status, status == 0 && r->type == REDIS_REPLY_INTEGER && r->integer == 1);
    free(op);
}

int storage_job_turn(storage_async_t *sa, const storage_job_t *job, storage_bool_cb cb, void *arg)
{
    if (!in_author_order(job))
        return -EINVAL;
    turn_op_t *op = malloc(sizeof(*op));
    if (!op)
        return -ENOMEM;
    *op = (turn_op_t){cb, arg};
    char order[64], stream[32];
    snprintf(order, sizeof(order), K_JOB_ORDER, job->shard, (ull)job->author);
    snprintf(stream, sizeof(stream), K_FANOUT, job->shard);
    const char *argv[] = {"EVAL", turn_script, "2", order, stream, job->entry_id};
    int rc = storage_redis_send_argv(sa->redis, STORAGE_REDIS_WRITER, on_turn, op, 6, argv, NULL);
    if (rc)
        free(op);
    return rc;
}

int storage_job_ack(storage_async_t *sa, const storage_job_t *job, storage_status_cb cb, void *arg)
{
    storage_redis_group_t *g = storage_redis_group_new(sa->redis, cb, arg);
    if (!g)
        return -ENOMEM;
    storage_redis_group_add(g, "XACK " K_FANOUT " " FANOUT_GROUP " %s", job->shard, job->entry_id);
    storage_redis_group_add(g, "XDEL " K_FANOUT " %s", job->shard, job->entry_id);
    leave_order(g, job);
    return storage_redis_group_end(g);
}

int storage_job_dead_letter(storage_async_t *sa, const storage_job_t *job, const char *reason,
                            storage_status_cb cb, void *arg)
{
    storage_redis_group_t *g = storage_redis_group_new(sa->redis, cb, arg);
    if (!g)
        return -ENOMEM;
    storage_redis_group_add(g,
                            "XADD " K_DEAD " * shard %d entry %s kind %s post %llu author %llu "
                            "follower %llu followee %llu actor %llu user %llu target %llu "
                            "at %llu after %llu deliveries %lld reason %s",
                            job->shard, job->entry_id, kind_names[job->kind], (ull)job->post,
                            (ull)job->author, (ull)job->follower, (ull)job->followee,
                            (ull)job->actor, (ull)job->user, (ull)job->target, (ull)job->event_id,
                            (ull)job->retract_after_ms, (long long)job->deliveries, reason);
    storage_redis_group_add(g, "XACK " K_FANOUT " " FANOUT_GROUP " %s", job->shard, job->entry_id);
    storage_redis_group_add(g, "XDEL " K_FANOUT " %s", job->shard, job->entry_id);
    leave_order(g, job);
    return storage_redis_group_end(g);
}

int storage_job_queue_delete(storage_async_t *sa, uint64_t post, uint64_t author, uint64_t after_ms,
                             storage_status_cb cb, void *arg)
{
    storage_redis_group_t *g = storage_redis_group_new(sa->redis, cb, arg);
    if (!g)
        return -ENOMEM;
    storage_redis_group_add(g, "XADD " K_FANOUT " * kind delete post %llu author %llu after %llu",
                            (int)(author % (uint64_t)storage__async_shards(sa)), (ull)post,
                            (ull)author, (ull)after_ms);
    return storage_redis_group_end(g);
}

/* ---- queue statistics ------------------------------------------------------------------- */

typedef struct stats_op_s {
    storage_queue_stats_cb cb;
    void *arg;
    int pending, status;
    storage_queue_stats_t st;
    uint64_t oldest_ms;
} stats_op_t;

static void stats_unref(stats_op_t *op)
{
    if (--op->pending > 0)
        return;
    if (op->oldest_ms) {
        uint64_t now = storage__now_ms();
        op->st.oldest_pending_ms = now > op->oldest_ms ? (int64_t)(now - op->oldest_ms) : 0;
    }
    op->cb(op->arg, op->status, &op->st);
    free(op);
}

static void on_xlen(void *priv, int status, redisReply *r)
{
    stats_op_t *op = priv;
    if (status == 0)
        op->st.length += r->integer;
    else if (!op->status)
        op->status = status;
    stats_unref(op);
}

static void on_dead_len(void *priv, int status, redisReply *r)
{
    stats_op_t *op = priv;
    if (status == 0)
        op->st.dead = r->integer;
    stats_unref(op);
}

static void on_summary(void *priv, int status, redisReply *r)
{
    stats_op_t *op = priv;
    if (status == 0 && r->type == REDIS_REPLY_ARRAY && r->elements >= 2) {
        op->st.pending += r->element[0]->integer;
        if (r->element[1]->type == REDIS_REPLY_STRING) {
            uint64_t ms = strtoull(r->element[1]->str, NULL, 10);
            if (!op->oldest_ms || ms < op->oldest_ms)
                op->oldest_ms = ms;
        }
    } else if (status && !op->status) {
        op->status = status;
    }
    stats_unref(op);
}

int storage_queue_stats(storage_async_t *sa, storage_queue_stats_cb cb, void *arg)
{
    stats_op_t *op = calloc(1, sizeof(*op));
    if (!op)
        return -ENOMEM;
    op->cb = cb;
    op->arg = arg;
    op->pending = 1;
    int rc = 0;
    for (int i = 0; rc == 0 && i < storage__async_shards(sa); i++) {
        rc = storage_redis_send(sa->redis, STORAGE_REDIS_WRITER, on_xlen, op, "XLEN " K_FANOUT, i);
        op->pending += rc == 0;
        if (rc == 0) {
            rc = storage_redis_send(sa->redis, STORAGE_REDIS_WRITER, on_summary, op,
                                    "XPENDING " K_FANOUT " " FANOUT_GROUP, i);
            op->pending += rc == 0;
        }
    }
    if (rc == 0) {
        rc = storage_redis_send(sa->redis, STORAGE_REDIS_WRITER, on_dead_len, op, "XLEN " K_DEAD);
        op->pending += rc == 0;
    }
    if (rc && op->pending == 1) {
        free(op);
        return rc;
    }
    op->status = rc;
    stats_unref(op);
    return 0;
}

void storage_jobs_unblock(storage_async_t *sa)
{
    storage_redis_async_unblock_readers(sa->redis);
}
