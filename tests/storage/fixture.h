/* tests/storage/fixture.h -- storage_t on the fixture Redis, users with unique handles, and the
 * fan-out stream's recent jobs (a raw connection behind it is ts_redis_connect's). */
/* Every suite in a binary uses the same .timeout: Criterion 2.4.1 leaks 48 bytes (a
 * LeakSanitizer report that fails the Asan build) when suites in one binary differ. */
#ifndef TIDINGS_TEST_STORAGE_FIXTURE_H
#define TIDINGS_TEST_STORAGE_FIXTURE_H

#include "storage/storage.h"
#include "tests/support/support.h"

#include <hiredis/hiredis.h>
#include <stdint.h>

/* Fan-out streams the storage tests write to. Servers started by other tests share the
 * fixture Redis and run the engine on fanout:{0}, which deletes the jobs it finishes; so
 * the tests spread jobs over ST_SHARDS streams and their users avoid shard 0. */
#define ST_SHARDS 61
#define ST_SHARD(user) ((int)((user) % ST_SHARDS))

/* storage_create with the default config on url (NULL: the fixture Redis); NULL when refused.
 * Nothing is leased. */
storage_t *st_create(const char *url);
/* A storage_t on the fixture Redis with ST_SHARDS fan-out shards and a node id leased (so
 * storage_id_next works). */
storage_t *st_storage(void);
/* Releases the lease and destroys s. */
void st_storage_free(storage_t *s);
/* The running test's st_storage() and raw connection to the fixture Redis: st_setup, the
 * storage suites' .init, makes them; st_teardown, their .fini, frees them. */
extern storage_t *st;
extern redisContext *st_redis;
void st_setup(void);
void st_teardown(void);

/* Creates a user whose handle is prefix plus a random suffix and whose fan-out shard is not
 * 0; returns its id. */
uint64_t st_user(storage_t *s, const char *prefix, storage_user_t *out);
/* A fresh id that names nothing in Redis. */
uint64_t st_unknown_id(storage_t *s);

/* The id of the last entry of the stream fanout:{shard} ("0-0" when empty), to count the
 * jobs queued after it. */
void st_stream_mark(redisContext *c, int shard, char mark[64]);
/* How many jobs in fanout:{shard} after mark have kind, field k1 = v1 and field k2 = v2. */
size_t st_jobs_since(redisContext *c, int shard, const char *mark, const char *kind, const char *k1,
                     uint64_t v1, const char *k2, uint64_t v2);

#endif
