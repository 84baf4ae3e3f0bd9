/* api/listener.h -- the listening socket and the thread that accepts on it. */
#ifndef TIDINGS_API_LISTENER_H
#define TIDINGS_API_LISTENER_H

#include <microhttpd.h>
#include <sys/socket.h>

typedef struct api_listener_s api_listener_t;

/* Binds and listens on addr. At most limit connections are held at once (accepted and not yet
 * closed); past that the rest wait in the listen backlog. Returns new, or NULL with errno set. */
api_listener_t *api_listener_open(const struct sockaddr *addr, socklen_t addrlen, size_t limit);
/* The port bound (useful with port 0). */
int api_listener_port(const api_listener_t *l);
/* Starts accepting: each connection goes to daemon (MHD_add_connection, which runs the
 * accept policy and the connection limit on it). Returns 0 or an errno. */
int api_listener_start(api_listener_t *l, struct MHD_Daemon *daemon);
/* A connection the daemon started has closed: room for the next. Any thread. */
void api_listener_released(api_listener_t *l);
/* Stops accepting and closes the socket, so the kernel refuses new connections at once.
 * Idempotent; NULL is fine. */
void api_listener_close(api_listener_t *l);
/* Closes (if still open) and frees. */
void api_listener_free(api_listener_t *l);

#endif
