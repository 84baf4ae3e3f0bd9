/* api/histogram.c -- latency histograms: observed on any thread, rendered for /metrics.
 *
 * The modules below api/ keep no histograms: the engine reports each job's duration through
 * its on_job_done hook and the stream adapter observes deliveries here, so one piece of code
 * buckets and one renders.
 */
#include "api/histogram.h"
#include "api/text.h"

#define US_PER_S 1e6

const api_histogram_bounds_t api_request_bounds = {
    {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5}, 12};
const api_histogram_bounds_t api_job_bounds = {
    {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10}, 12};
const api_histogram_bounds_t api_delivery_bounds = {
    {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}, 11};

void api_histogram_observe(api_histogram_t *h, const api_histogram_bounds_t *b, double seconds)
{
    if (seconds < 0)
        seconds = 0;
    size_t i = 0;
    while (i < b->n && seconds > b->upper[i])
        i++;
    atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_us, (unsigned long long)(seconds * US_PER_S),
                              memory_order_relaxed);
}

unsigned long long api_histogram_count(const api_histogram_t *h)
{
    unsigned long long n = 0;
    for (size_t i = 0; i <= API_HISTOGRAM_MAX_BOUNDS; i++)
        n += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
    return n;
}

void api_histogram_render(const api_histogram_t *h, const api_histogram_bounds_t *b,
                          const char *name, const char *labels, api_text_t *out)
{
    const char *sep = labels[0] ? "," : "";
    unsigned long long cumulative = 0;
    for (size_t i = 0; i < b->n; i++) {
        cumulative += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
        api_text_printf(out, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep, b->upper[i],
                        cumulative);
    }
    for (size_t i = b->n; i <= API_HISTOGRAM_MAX_BOUNDS; i++)
        cumulative += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
    const char *open = labels[0] ? "{" : "", *close = labels[0] ? "}" : "";
    api_text_printf(out,
                    "%s_bucket{%s%sle=\"+Inf\"} %llu\n%s_sum%s%s%s %.6f\n%s_count%s%s%s %llu\n",
                    name, labels, sep, cumulative, name, open, labels, close,
                    (double)atomic_load_explicit(&h->sum_us, memory_order_relaxed) / US_PER_S, name,
                    open, labels, close, cumulative);
}
