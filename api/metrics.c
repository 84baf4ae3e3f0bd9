/* api/metrics.c -- request counters by route and status and a latency histogram by route.
 *
 * Fixed arrays of relaxed atomics: recording a request is a few uncontended increments
 * and never allocates; rendering walks the arrays and skips zero series.
 */
#include "api/metrics.h"
#include "api/text.h"

#include <stdio.h>

static size_t slot(int route)
{
    return route < 0 || route >= API_METRICS_ROUTES - 1 ? API_METRICS_ROUTES - 1 : (size_t)route;
}

void api_metrics_observe(api_metrics_t *m, int route, int status, double seconds)
{
    size_t r = slot(route);
    if (status >= 100 && status < API_METRICS_STATUSES)
        atomic_fetch_add_explicit(&m->requests[r][status], 1, memory_order_relaxed);
    api_histogram_observe(&m->latency[r], &api_request_bounds, seconds);
}

void api_metrics_render(const api_metrics_t *m, const char *const *route_names, size_t n_routes,
                        api_text_t *out)
{
    api_text_printf(out, "# HELP tidings_http_requests_total HTTP requests by route and status.\n"
                         "# TYPE tidings_http_requests_total counter\n");
    for (size_t r = 0; r < API_METRICS_ROUTES; r++) {
        const char *name = r < n_routes ? route_names[r] : "unmatched";
        if (r >= n_routes && r != API_METRICS_ROUTES - 1)
            continue;
        for (int s = 100; s < API_METRICS_STATUSES; s++) {
            unsigned long long v = atomic_load_explicit(&m->requests[r][s], memory_order_relaxed);
            if (v)
                api_text_printf(out,
                                "tidings_http_requests_total{route=\"%s\",status=\"%d\"} %llu\n",
                                name, s, v);
        }
    }
    api_text_printf(out,
                    "# HELP tidings_http_request_duration_seconds HTTP request latency by route.\n"
                    "# TYPE tidings_http_request_duration_seconds histogram\n");
    for (size_t r = 0; r < API_METRICS_ROUTES; r++) {
        const char *name = r < n_routes ? route_names[r] : "unmatched";
        if ((r >= n_routes && r != API_METRICS_ROUTES - 1) || !api_histogram_count(&m->latency[r]))
            continue;
        char labels[160];
        snprintf(labels, sizeof(labels), "route=\"%s\"", name);
        api_histogram_render(&m->latency[r], &api_request_bounds,
                             "tidings_http_request_duration_seconds", labels, out);
    }
}
