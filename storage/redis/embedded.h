/* storage/redis/embedded.h -- a private redis-server, started as a child that dies with us.
 *
 * For the zero-configuration default: AOF on, data in data_dir, a unix socket only, a memory
 * cap with noeviction (an evicted follower edge or job would be silent loss: a full Redis
 * must refuse writes, which the API answers 503, instead). Thread:
 * main, at start and at exit. */
#ifndef TIDINGS_STORAGE_REDIS_EMBEDDED_H
#define TIDINGS_STORAGE_REDIS_EMBEDDED_H

typedef struct storage_embedded_s storage_embedded_t;
/* Returns new or NULL (errno set); *url_out is borrowed from the handle. */
/* maxmemory_mb caps Redis' memory with the noeviction policy (0: half the machine's). */
storage_embedded_t *storage_embedded_start(const char *data_dir, const char *server_path,
                                           long maxmemory_mb, const char **url_out);
void storage_embedded_stop(storage_embedded_t *e);

#endif
