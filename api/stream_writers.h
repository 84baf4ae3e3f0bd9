/* api/stream_writers.h -- threads that write live events straight to parked streams.
 *
 * A pool of n threads, each with a queue of items (streams) to serve. Pushing is cheap
 * and wakes a thread at most once per batch of pushes; an item always goes to the same
 * thread, so one stream is never served by two threads at once. */
#ifndef TIDINGS_API_STREAM_WRITERS_H
#define TIDINGS_API_STREAM_WRITERS_H

#include <stdbool.h>

typedef struct stream_writers_s stream_writers_t;

/* serve(item) runs on a writer thread for each item pushed. NULL when n < 1 or on
 * failure (errno). */
stream_writers_t *stream_writers_start(int n, void (*serve)(void *item));
/* Queues item for the writer `which` picks (which % n). False once stopping: the caller
 * serves it some other way. */
bool stream_writers_push(stream_writers_t *w, unsigned which, void *item);
/* Serves what is queued, then joins the threads; pushes fail from the start of the call. */
void stream_writers_stop(stream_writers_t *w);
/* Frees w (stopped first if need be). */
void stream_writers_destroy(stream_writers_t *w);

#endif
