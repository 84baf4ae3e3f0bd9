/* api/server.h -- the libmicrohttpd daemon: request contexts, body limits, dispatch,
 * access log and metrics. Thread: the functions here are called from main's thread. */
#ifndef TIDINGS_API_SERVER_H
#define TIDINGS_API_SERVER_H

#include "api/api.h"

typedef struct api_server_s api_server_t;

/* Starts serving api (borrowed) on cfg->listen. Returns new or NULL (logged). */
api_server_t *api_server_start(api_t *api);
/* The port actually bound (useful with port 0). */
int api_server_port(const api_server_t *srv);
/* Stops accepting connections; requests already read go on. */
void api_server_quiesce(api_server_t *srv);
/* Requests begun and not yet completed. */
long long api_server_in_flight(const api_server_t *srv);
/* Requests whose connection is suspended while Redis answers (the daemon must not stop). */
long long api_server_parked(const api_server_t *srv);
/* Closes every connection and joins the threads. */
void api_server_stop(api_server_t *srv);

#endif
