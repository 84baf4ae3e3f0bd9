/* api/histogram.h -- one latency histogram for /metrics: observe a duration, render it as
 * Prometheus text. The bounds are a named set per kind of latency, so a zeroed histogram is
 * ready to use. Thread: any; lock-free (relaxed atomics). */
#ifndef TIDINGS_API_HISTOGRAM_H
#define TIDINGS_API_HISTOGRAM_H

#include <stdatomic.h>
#include <stddef.h>

#define API_HISTOGRAM_MAX_BOUNDS 12

typedef struct api_histogram_bounds_s {
    double upper[API_HISTOGRAM_MAX_BOUNDS]; /* seconds, ascending; +Inf follows */
    size_t n;
} api_histogram_bounds_t;

/* HTTP requests (0.1 ms .. 2.5 s); fan-out jobs (1 ms .. 10 s); stream deliveries (1 ms ..
 * 2.5 s). */
extern const api_histogram_bounds_t api_request_bounds, api_job_bounds, api_delivery_bounds;

typedef struct api_histogram_s {
    atomic_ullong buckets[API_HISTOGRAM_MAX_BOUNDS + 1]; /* the last is +Inf */
    atomic_ullong sum_us;
} api_histogram_t;

void api_histogram_observe(api_histogram_t *h, const api_histogram_bounds_t *b, double seconds);
/* How many were observed. */
unsigned long long api_histogram_count(const api_histogram_t *h);

struct api_text_s;
/* Appends name_bucket{labels,le="…"} for every bound and +Inf, then name_sum{labels} and
 * name_count{labels}; labels is "" or `route="/v1/posts"` (no braces). */
void api_histogram_render(const api_histogram_t *h, const api_histogram_bounds_t *b,
                          const char *name, const char *labels, struct api_text_s *out);

#endif
