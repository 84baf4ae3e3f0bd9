/* storage/redis/client.c -- the synchronous client's life: create from a URL, destroy, and
 * the readiness it last observed.
 *
 * Creating parses the URL into seed nodes and connects nowhere: the first batch learns the
 * slot map (topology.c) and opens connections (pool.c). Readiness is a flag any command
 * updates, so reading it costs nothing.
 */
#include "storage/redis/redis_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

storage_redis_t *storage_redis_create(const storage_redis_config_t *cfg)
{
    storage_redis_t *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->pool_size = cfg->pool_size > 0 ? cfg->pool_size : 1;
    s->connect_timeout_ms = cfg->connect_timeout_ms;
    s->command_timeout_ms = cfg->command_timeout_ms;
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->refresh_mu, NULL);
    atomic_init(&s->up, false);
    atomic_init(&s->reconnects, 0);
    atomic_init(&s->redirects, 0);
    atomic_init(&s->refreshes, 0);
    atomic_init(&s->pipelines, 0);
    atomic_init(&s->oom_at_ms, 0);
    if (storage_redis__parse_url(s, cfg->url ? cfg->url : "") != 0) {
        storage_redis_destroy(s);
        return NULL;
    }
    return s;
}

void storage_redis_destroy(storage_redis_t *s)
{
    if (!s)
        return;
    storage_redis__mux_destroy(s);
    for (int i = 0; i < s->n_nodes; i++) {
        for (size_t k = 0; k < s->nodes[i].n_idle; k++)
            storage_redis__conn_free(s->nodes[i].idle[k]);
        free(s->nodes[i].idle);
    }
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->refresh_mu);
    free(s->password);
    free(s);
}

bool storage_redis_is_up(const storage_redis_t *s)
{
    return atomic_load(&s->up);
}

uint64_t storage_redis_reconnects(const storage_redis_t *s)
{
    return atomic_load(&s->reconnects);
}
