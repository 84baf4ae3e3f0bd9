/* api/metrics.c -- request counters by route and status and a latency histogram by route.
 *
 * Fixed arrays of relaxed atomics: recording a request is a few uncontended increments
 * and never allocates; rendering walks the arrays and skips zero series.
 */
#include "api/metrics.h"
#include "api/text.h"

const double api_metrics_bounds[API_METRICS_BUCKETS] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5};

static size_t slot(int route)
{
    return route < 0 || route >= API_METRICS_ROUTES - 1 ? API_METRICS_ROUTES - 1 : (size_t)route;
}

void api_metrics_observe(api_metrics_t *m, int route, int status, double seconds)
{
    size_t r = slot(route);
    if (status >= 100 && status < 600)
        atomic_fetch_add_explicit(&m->requests[r][status], 1, memory_order_relaxed);
    size_t b = 0;
    while (b < API_METRICS_BUCKETS && seconds > api_metrics_bounds[b])
        b++;
    atomic_fetch_add_explicit(&m->buckets[r][b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->sum_us[r], (unsigned long long)(seconds * 1e6),
                              memory_order_relaxed);
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
        for (int s = 100; s < 600; s++) {
            unsigned long long v = atomic_load_explicit(&m->requests[r][s], memory_order_relaxed);
            if (v)
                api_text_printf(out, "tidings_http_requests_total{route=\"%s\",status=\"%d\"} %llu\n",
                                name, s, v);
        }
    }
    api_text_printf(out,
                    "# HELP tidings_http_request_duration_seconds HTTP request latency by route.\n"
                    "# TYPE tidings_http_request_duration_seconds histogram\n");
    for (size_t r = 0; r < API_METRICS_ROUTES; r++) {
        const char *name = r < n_routes ? route_names[r] : "unmatched";
        if (r >= n_routes && r != API_METRICS_ROUTES - 1)
            continue;
        unsigned long long cumulative = 0;
        for (size_t b = 0; b <= API_METRICS_BUCKETS; b++)
            cumulative += atomic_load_explicit(&m->buckets[r][b], memory_order_relaxed);
        if (!cumulative)
            continue;
        unsigned long long total = cumulative;
        cumulative = 0;
        for (size_t b = 0; b < API_METRICS_BUCKETS; b++) {
            cumulative += atomic_load_explicit(&m->buckets[r][b], memory_order_relaxed);
            api_text_printf(out,
                            "tidings_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} "
                            "%llu\n",
                            name, api_metrics_bounds[b], cumulative);
        }
        api_text_printf(out,
                        "tidings_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} "
                        "%llu\n"
                        "tidings_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n"
                        "tidings_http_request_duration_seconds_count{route=\"%s\"} %llu\n",
                        name, total, name,
                        (double)atomic_load_explicit(&m->sum_us[r], memory_order_relaxed) / 1e6,
                        name, total);
    }
}
