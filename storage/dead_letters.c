/* storage/dead_letters.c -- the dead-letter stream seen from outside the engine: listing its
 * entries and putting one back on its queue (tidings admin dead-letters).
 *
 * A dead letter (written by storage_job_dead_letter) holds the job's fields beside why it
 * died. Redriving queues a job with the same fields on the shard it came from, then deletes
 * the letter: in that order, behind a barrier, so a failure in between leaves the letter to
 * redrive again rather than lose the job.
 */
#include "storage/storage_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define K_DEAD "fanout:dead" /* the engine's: storage/jobs.c */
/* The job's own fields, in the order the API queues them. */
static const char *const job_fields[] = {"kind",  "post", "author", "follower", "followee",
                                         "actor", "user", "target", "at",       "after"};
#define JOB_FIELDS (sizeof(job_fields) / sizeof(job_fields[0]))

static void copy_field(const redisReply *v, char *out, size_t size)
{
    snprintf(out, size, "%.*s", v->type == REDIS_REPLY_STRING ? (int)v->len : 0,
             v->type == REDIS_REPLY_STRING ? v->str : "");
}

/* Reads one [id, [field, value, ...]] entry of the dead-letter stream. */
static void parse_letter(const redisReply *e, storage_dead_letter_t *out)
{
    memset(out, 0, sizeof(*out));
    if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 || e->element[1]->type != REDIS_REPLY_ARRAY)
        return;
    copy_field(e->element[0], out->id, sizeof(out->id));
    const redisReply *f = e->element[1];
    for (size_t i = 0; i + 1 < f->elements && out->n_fields < STORAGE_DEAD_FIELDS_MAX; i += 2) {
        storage_dead_field_t *d = &out->fields[out->n_fields++];
        copy_field(f->element[i], d->name, sizeof(d->name));
        copy_field(f->element[i + 1], d->value, sizeof(d->value));
    }
}

int storage_dead_letters_list(storage_t *s, const char *after, size_t max,
                              storage_dead_letter_t *out, size_t *n)
{
    *n = 0;
    char start[STORAGE_EVENT_ID_MAX + 1];
    snprintf(start, sizeof(start), "%s%s", after && *after ? "(" : "",
             after && *after ? after : "-");
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    storage_redis_batch_add(&b, "XRANGE " K_DEAD " %s + COUNT %llu", start,
                            (unsigned long long)max);
    int rc = storage_redis_batch_run_checked(&b);
    if (rc == 0 && b.r[0]->type != REDIS_REPLY_ARRAY)
        rc = -EIO;
    for (size_t i = 0; rc == 0 && i < b.r[0]->elements && i < max; i++)
        parse_letter(b.r[0]->element[i], &out[(*n)++]);
    storage_redis_batch_free(&b);
    return rc;
}

const char *storage_dead_letter_field(const storage_dead_letter_t *d, const char *name)
{
    for (size_t i = 0; i < d->n_fields; i++)
        if (strcmp(d->fields[i].name, name) == 0)
            return d->fields[i].value;
    return NULL;
}

int storage_dead_letter_redrive(storage_t *s, const char *id)
{
    storage_redis_batch_t b;
    storage_redis_batch_init(&b, s->redis);
    storage_redis_batch_add(&b, "XRANGE " K_DEAD " %s %s", id, id);
    int rc = storage_redis_batch_run_checked(&b);
    if (rc == 0 && (b.r[0]->type != REDIS_REPLY_ARRAY || b.r[0]->elements != 1))
        rc = b.r[0]->type == REDIS_REPLY_ARRAY ? -ENOENT : -EIO;
    storage_dead_letter_t d;
    if (rc == 0)
        parse_letter(b.r[0]->element[0], &d);
    storage_redis_batch_free(&b);
    if (rc)
        return rc;
    const char *shard_text = storage_dead_letter_field(&d, "shard");
    int shard = shard_text ? atoi(shard_text) : -1;
    if (shard < 0 || shard >= s->fanout_shards || !storage_dead_letter_field(&d, "kind"))
        return -EINVAL;
    /* The job's fields that say something (an id of 0 is the same as none). */
    const char *argv[3 + 2 * JOB_FIELDS];
    char key[32];
    snprintf(key, sizeof(key), K_FANOUT, shard);
    int argc = 0;
    argv[argc++] = "XADD";
    argv[argc++] = key;
    argv[argc++] = "*";
    for (size_t i = 0; i < JOB_FIELDS; i++) {
        const char *v = storage_dead_letter_field(&d, job_fields[i]);
        if (v && *v && strcmp(v, "0") != 0) {
            argv[argc++] = job_fields[i];
            argv[argc++] = v;
        }
    }
    storage_redis_batch_init(&b, s->redis);
    storage_redis_batch_addargv(&b, argc, argv, NULL);
    storage_redis_batch_barrier(&b);
    storage_redis_batch_add(&b, "XDEL " K_DEAD " %s", id);
    rc = storage_redis_batch_run_checked(&b);
    storage_redis_batch_free(&b);
    return rc;
}
