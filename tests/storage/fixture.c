/* tests/storage/fixture.c -- shared set-up for the storage tests (see fixture.h). */
#include "tests/storage/fixture.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

storage_t *st_create(const char *url)
{
    char fixture[64];
    ts_redis_url(fixture, sizeof(fixture), ts_redis_port());
    storage_config_t cfg;
    storage_config_defaults(&cfg);
    cfg.url = url ? url : fixture;
    return storage_create(&cfg);
}

storage_t *st_storage(void)
{
    char url[64];
    ts_redis_url(url, sizeof(url), ts_redis_port());
    storage_config_t cfg;
    storage_config_defaults(&cfg);
    cfg.url = url;
    cfg.pool_size = 8;
    cfg.fanout_shards = ST_SHARDS;
    storage_t *s = storage_create(&cfg);
    cr_assert(s, "storage_create(%s) failed", url);
    int rc = storage_prepare(s);
    cr_assert(rc == 0, "storage_prepare: %d", rc);
    rc = storage_node_acquire(s);
    cr_assert(rc == 0, "storage_node_acquire: %d", rc);
    return s;
}

void st_storage_free(storage_t *s)
{
    if (!s)
        return;
    storage_node_release(s);
    storage_destroy(s);
}

storage_t *st;
redisContext *st_redis;

void st_setup(void)
{
    st = st_storage();
    st_redis = ts_redis_connect(ts_redis_port());
}

void st_teardown(void)
{
    ts_redis_close(st_redis);
    st_storage_free(st);
}

uint64_t st_user(storage_t *s, const char *prefix, storage_user_t *out)
{
    char handle[STORAGE_HANDLE_MAX + 1];
    ts_unique(handle, sizeof(handle), prefix);
    uint8_t hash[32];
    memset(hash, 0xab, sizeof(hash));
    uint64_t id;
    do
        id = storage_id_next(s);
    while (id && ST_SHARD(id) == 0);
    cr_assert(id, "no id");
    storage_user_t user;
    int rc = storage_user_create(s, id, handle, handle, hash, out ? out : &user);
    cr_assert(rc == 0, "storage_user_create(%s): %d", handle, rc);
    return id;
}

uint64_t st_unknown_id(storage_t *s)
{
    uint64_t id = storage_id_next(s);
    cr_assert(id);
    return id;
}

void st_stream_mark(redisContext *c, int shard, char mark[64])
{
    redisReply *r = ts_redis_cmd(c, "XREVRANGE fanout:{%d} + - COUNT 1", shard);
    snprintf(mark, 64, "0-0");
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 1)
        snprintf(mark, 64, "%s", r->element[0]->element[0]->str);
    freeReplyObject(r);
}

static const char *field(const redisReply *fields, const char *name)
{
    for (size_t i = 0; i + 1 < fields->elements; i += 2)
        if (strcmp(fields->element[i]->str, name) == 0)
            return fields->element[i + 1]->str;
    return NULL;
}

static bool field_is(const redisReply *fields, const char *name, uint64_t value)
{
    const char *v = field(fields, name);
    return v && strtoull(v, NULL, 10) == value;
}

size_t st_jobs_since(redisContext *c, int shard, const char *mark, const char *kind, const char *k1,
                     uint64_t v1, const char *k2, uint64_t v2)
{
    char start[70];
    snprintf(start, sizeof(start), "(%s", mark);
    redisReply *r = ts_redis_cmd(c, "XRANGE fanout:{%d} %s +", shard, start);
    cr_assert(r->type == REDIS_REPLY_ARRAY, "XRANGE failed: %s", r->str);
    size_t n = 0;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *fields = r->element[i]->element[1];
        const char *k = field(fields, "kind");
        if (k && strcmp(k, kind) == 0 && field_is(fields, k1, v1) && field_is(fields, k2, v2))
            n++;
    }
    freeReplyObject(r);
    return n;
}
