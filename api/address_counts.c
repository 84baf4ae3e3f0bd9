/* api/address_counts.c -- counts per client address in a chained hash table.
 *
 * An address appears only while it holds something: its entry is freed when its count falls
 * to zero, so a scan of many addresses leaves nothing behind.
 */
#include "api/address_counts.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define BUCKETS 4096
#define FNV_OFFSET 1469598103934665603ull /* FNV-1a, 64-bit */
#define FNV_PRIME 1099511628211ull

typedef struct entry_s {
    struct entry_s *next;
    api_address_t addr;
    size_t count;
} entry_t;

struct api_address_counts_s {
    pthread_mutex_t mu;
    entry_t *buckets[BUCKETS];
};

static entry_t **bucket_of(api_address_counts_t *t, const api_address_t *a)
{
    uint64_t h = FNV_OFFSET;
    for (size_t i = 0; i < sizeof(a->bytes); i++)
        h = (h ^ a->bytes[i]) * FNV_PRIME;
    return &t->buckets[h % BUCKETS];
}

/* The entry's link in its chain, or the chain's end. Lock held. */
static entry_t **find(api_address_counts_t *t, const api_address_t *a)
{
    entry_t **p = bucket_of(t, a);
    while (*p && memcmp(&(*p)->addr, a, sizeof(*a)) != 0)
        p = &(*p)->next;
    return p;
}

api_address_counts_t *api_address_counts_create(void)
{
    api_address_counts_t *t = calloc(1, sizeof(*t));
    if (t)
        pthread_mutex_init(&t->mu, NULL);
    return t;
}

void api_address_counts_destroy(api_address_counts_t *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < BUCKETS; i++) {
        while (t->buckets[i]) {
            entry_t *e = t->buckets[i];
            t->buckets[i] = e->next;
            free(e);
        }
    }
    pthread_mutex_destroy(&t->mu);
    free(t);
}

bool api_address_counts_take(api_address_counts_t *t, const api_address_t *addr, size_t max)
{
    pthread_mutex_lock(&t->mu);
    entry_t **p = find(t, addr);
    if (!*p && (*p = calloc(1, sizeof(**p))) != NULL)
        (*p)->addr = *addr;
    bool ok = *p && (max == 0 || (*p)->count < max);
    if (ok)
        (*p)->count++;
    pthread_mutex_unlock(&t->mu);
    return ok;
}

void api_address_counts_release(api_address_counts_t *t, const api_address_t *addr)
{
    pthread_mutex_lock(&t->mu);
    entry_t **p = find(t, addr);
    if (*p && --(*p)->count == 0) {
        entry_t *e = *p;
        *p = e->next;
        free(e);
    }
    pthread_mutex_unlock(&t->mu);
}

size_t api_address_counts_get(api_address_counts_t *t, const api_address_t *addr)
{
    pthread_mutex_lock(&t->mu);
    entry_t **p = find(t, addr);
    size_t n = *p ? (*p)->count : 0;
    pthread_mutex_unlock(&t->mu);
    return n;
}
