/* api/connections.h -- admission and deadlines for every HTTP connection: a cap per client
 * address, a deadline for each request's head and body, and the connection limit the fd
 * table allows. libmicrohttpd calls the hooks; api/server.c wires them. */
#ifndef TIDINGS_API_CONNECTIONS_H
#define TIDINGS_API_CONNECTIONS_H

#include "api/client_address.h"

#include <microhttpd.h>
#include <stdatomic.h>
#include <stddef.h>

typedef struct api_connections_s api_connections_t;

typedef struct api_connections_config_s {
    size_t per_address_max;       /* connections one address may hold; 0: no cap */
    int request_deadline_ms;      /* a request's head and body must arrive within this */
    const api_proxies_t *trusted; /* borrowed: these peers are exempt from the cap */
} api_connections_config_t;

/* For /metrics. Thread: any. */
typedef struct api_connections_stats_s {
    atomic_llong open;
    atomic_ullong refused_per_address; /* accepts refused by the per-address cap */
    atomic_ullong cut_deadline;        /* connections cut because a request came too slowly */
} api_connections_stats_t;

/* Returns new (and starts the deadline thread) or NULL. cfg is copied. */
api_connections_t *api_connections_create(const api_connections_config_t *cfg);
/* After the HTTP daemon stopped (no hook runs any more); NULL: no-op. */
void api_connections_destroy(api_connections_t *c);
const api_connections_stats_t *api_connections_stats(const api_connections_t *c);

/* MHD's accept policy (cls = the api_connections_t): refuses an address at its cap. */
enum MHD_Result api_connections_admit(void *cls, const struct sockaddr *addr, socklen_t len);
/* MHD_OPTION_NOTIFY_CONNECTION (cls = the api_connections_t): counts the connection and
 * starts its first request's deadline; forgets it when it closes. */
void api_connections_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                            enum MHD_ConnectionNotificationCode code);

/* Thread: MHD. conn's request has arrived whole: its deadline stops. */
void api_connections_request_read(struct MHD_Connection *conn);
/* Thread: MHD. conn's request was answered: the next one (keep-alive) must arrive within the
 * deadline from now, so an idle connection is closed after it too. */
void api_connections_request_done(struct MHD_Connection *conn);
/* Thread: MHD. The peer's address (NULL for a connection we were not told of). */
const api_address_t *api_connections_peer(struct MHD_Connection *conn);

/* How many connections the open-files limit leaves room for, after a reserve for Redis
 * connections, event fds, the listen socket and logs (so accept never fails with EMFILE and a
 * Redis reconnect never starves); requested (0: none) lowers it. Never below 1. */
size_t api_connection_limit(size_t requested);

#endif
