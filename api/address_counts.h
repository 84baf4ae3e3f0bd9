/* api/address_counts.h -- how many of something (connections, streams) each client address
 * holds, against a cap. Thread: any (one lock per table). */
#ifndef TIDINGS_API_ADDRESS_COUNTS_H
#define TIDINGS_API_ADDRESS_COUNTS_H

#include "api/client_address.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct api_address_counts_s api_address_counts_t;

/* Returns new or NULL. */
api_address_counts_t *api_address_counts_create(void);
void api_address_counts_destroy(api_address_counts_t *t);
/* Counts one more for addr unless it already holds max (0: no cap); false when refused or
 * out of memory. Every true is paired with one api_address_counts_release. */
bool api_address_counts_take(api_address_counts_t *t, const api_address_t *addr, size_t max);
void api_address_counts_release(api_address_counts_t *t, const api_address_t *addr);
/* What addr holds now. */
size_t api_address_counts_get(api_address_counts_t *t, const api_address_t *addr);

#endif
