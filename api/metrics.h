/* api/metrics.h -- request counters and latency histograms for /metrics (Prometheus text).
 * Thread: any; lock-free (relaxed atomics). */
#ifndef TIDINGS_API_METRICS_H
#define TIDINGS_API_METRICS_H

#include "api/histogram.h"
#include "api/rate_limit.h"

#include <stdatomic.h>
#include <stddef.h>

#define API_METRICS_ROUTES 40    /* routes plus one for "unmatched" */
#define API_METRICS_STATUSES 600 /* indexed by the status itself, 100..599 */

typedef struct api_metrics_s {
    atomic_ullong requests[API_METRICS_ROUTES][API_METRICS_STATUSES]; /* by route and status */
    api_histogram_t latency[API_METRICS_ROUTES];                      /* api_request_bounds */
    atomic_llong in_flight;
    api_histogram_t job_duration;    /* api_job_bounds: reported by the engine's hook */
    api_histogram_t stream_delivery; /* api_delivery_bounds: event logged to event sent */
    atomic_ullong rate_limited[API_RATE_CLASSES]; /* requests answered 429 by class */
    atomic_llong stream_buffer_bytes;             /* sse.c: held by streams' output buffers */
    atomic_llong requests_parked;   /* server.c: requests suspended while Redis answers */
    atomic_llong streams_suspended; /* sse.c: stream connections suspended now */
} api_metrics_t;

/* route is an index below API_METRICS_ROUTES - 1, or -1 for requests no route matched. */
void api_metrics_observe(api_metrics_t *m, int route, int status, double seconds);

/* Appends the request metrics to buf (a growable string, see text.h). */
struct api_text_s;
void api_metrics_render(const api_metrics_t *m, const char *const *route_names, size_t n_routes,
                        struct api_text_s *out);

#endif
