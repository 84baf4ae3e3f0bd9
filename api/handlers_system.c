/* api/handlers_system.c -- the System tag: health, readiness, metrics, the spec, the demo page. */
#include "api/api.h"
#include "api/publish_outcome.h"
#include "api/text.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>

void api_system_healthz(api_req_t *r)
{
    api_reply_json(r, 200, json_pack("{s:s}", "status", "ok"));
}

/* From the background probe's state (storage_readiness): a load balancer's probe gets its
 * answer at once, also while Redis answers nothing. */
void api_system_readyz(api_req_t *r)
{
    storage_readiness_t st;
    storage_readiness(r->api->storage, &st);
    bool ids = storage_node_id(r->api->storage) >= 0;
    bool ready = st.redis && ids && st.writes == 0;
    const char *writes = st.writes == 0 ? "ok" : st.writes == -ENOSPC ? "refused" : "failing";
    api_reply_json(r, ready ? 200 : 503,
                   json_pack("{s:s, s:{s:s, s:s, s:s}}", "status", ready ? "ready" : "unavailable",
                             "checks", "redis", st.redis ? "up" : "down", "id_node",
                             ids ? "leased" : "pending", "writes", writes));
    if (!ready)
        r->retry_after = 1;
}

/* The engine's counters, gauges and job-duration histogram. */
static void api_fanout_metrics(const fanout_stats_t *st, const api_histogram_t *job_duration,
                               api_text_t *t)
{
    static const struct {
        const char *name, *type, *help;
        size_t offset;
        bool is_signed;
    } series[] = {
#define U(field, name, type, help) {name, type, help, offsetof(fanout_stats_t, field), false}
#define S(field, name, type, help)                                                                 \
    {                                                                                              \
        name, type, help, offsetof(fanout_stats_t, field), true                                    \
    }
        U(jobs_done, "tidings_fanout_jobs_done_total", "counter", "Fan-out jobs finished."),
        U(jobs_failed, "tidings_fanout_jobs_failed_total", "counter",
          "Fan-out job attempts that failed (retried later)."),
        U(jobs_dead, "tidings_fanout_jobs_dead_lettered_total", "counter",
          "Fan-out jobs moved to the dead-letter stream."),
        U(jobs_retried, "tidings_fanout_jobs_retried_total", "counter",
          "Fan-out job attempts that met a transient Redis failure (unreachable, OOM, a "
          "failover) and were retried by the same process, uncounted towards dead-lettering."),
        U(jobs_claimed, "tidings_fanout_jobs_claimed_total", "counter",
          "Jobs taken over from consumers that went idle."),
        U(timeline_writes, "tidings_fanout_timeline_writes_total", "counter",
          "Timeline entries written or removed by the engine."),
        S(queue_length, "tidings_fanout_queue_length", "gauge", "Jobs in the queue streams."),
        S(queue_pending, "tidings_fanout_queue_pending", "gauge",
          "Jobs handed out and not yet acknowledged."),
        S(oldest_pending_ms, "tidings_fanout_oldest_pending_seconds", "gauge",
          "Age of the oldest unacknowledged job."),
        S(dead_letters, "tidings_fanout_dead_letters", "gauge", "Jobs in the dead-letter stream."),
        S(active_jobs, "tidings_fanout_active_jobs", "gauge", "Jobs this process works on now."),
#undef U
#undef S
    };
    for (size_t i = 0; i < sizeof(series) / sizeof(series[0]); i++) {
        const char *p = (const char *)st + series[i].offset;
        double v = series[i].is_signed ? (double)atomic_load((const atomic_llong *)p)
                                       : (double)atomic_load((const atomic_ullong *)p);
        if (series[i].offset == offsetof(fanout_stats_t, oldest_pending_ms))
            v /= 1000.0;
        api_text_printf(t, "# HELP %s %s\n# TYPE %s %s\n%s %.15g\n", series[i].name, series[i].help,
                        series[i].name, series[i].type, series[i].name, v);
    }
    api_text_printf(t, "# HELP tidings_fanout_job_duration_seconds Time from a job's start to "
                       "its acknowledgement.\n"
                       "# TYPE tidings_fanout_job_duration_seconds histogram\n");
    api_histogram_render(job_duration, &api_job_bounds, "tidings_fanout_job_duration_seconds", "",
                         t);
}

/* Live streams: open, events sent and replayed, streams cut off, delivery lag. */
static void api_stream_metrics(const notify_stats_t *st, const api_metrics_t *m, api_text_t *t)
{
    const api_histogram_t *delivery = &m->stream_delivery;
    api_text_printf(
        t,
        "# HELP tidings_streams_open Event streams open now.\n"
        "# TYPE tidings_streams_open gauge\n"
        "tidings_streams_open %lld\n"
        "# HELP tidings_streams_opened_total Event streams opened.\n"
        "# TYPE tidings_streams_opened_total counter\n"
        "tidings_streams_opened_total %llu\n"
        "# HELP tidings_stream_events_replayed_total Events sent from the log on resume.\n"
        "# TYPE tidings_stream_events_replayed_total counter\n"
        "tidings_stream_events_replayed_total %llu\n"
        "# HELP tidings_streams_dropped_total Streams cut off for reading too slowly.\n"
        "# TYPE tidings_streams_dropped_total counter\n"
        "tidings_streams_dropped_total %llu\n"
        "# HELP tidings_stream_delivery_seconds From an event's logging to its sending.\n"
        "# TYPE tidings_stream_delivery_seconds histogram\n",
        (long long)atomic_load(&st->open), (unsigned long long)atomic_load(&st->opened),
        (unsigned long long)atomic_load(&st->replayed),
        (unsigned long long)atomic_load(&st->dropped));
    api_histogram_render(delivery, &api_delivery_bounds, "tidings_stream_delivery_seconds", "", t);
    api_text_printf(t,
                    "# HELP tidings_stream_events_sent_total Events sent on streams.\n"
                    "# TYPE tidings_stream_events_sent_total counter\n"
                    "tidings_stream_events_sent_total %llu\n"
                    "# HELP tidings_stream_buffer_bytes Bytes the streams' output buffers hold.\n"
                    "# TYPE tidings_stream_buffer_bytes gauge\n"
                    "tidings_stream_buffer_bytes %lld\n"
                    "# HELP tidings_streams_suspended Stream connections suspended (parked) now.\n"
                    "# TYPE tidings_streams_suspended gauge\n"
                    "tidings_streams_suspended %lld\n",
                    api_histogram_count(delivery), (long long)atomic_load(&m->stream_buffer_bytes),
                    (long long)atomic_load(&m->streams_suspended));
}

/* Connections: open, refused at the per-address cap, cut for a request that came too slowly. */
static void api_connection_metrics(const api_connections_stats_t *st, api_text_t *t)
{
    api_text_printf(
        t,
        "# HELP tidings_http_connections_open HTTP connections open now (event streams too).\n"
        "# TYPE tidings_http_connections_open gauge\n"
        "tidings_http_connections_open %lld\n"
        "# HELP tidings_http_connections_refused_total Connections refused: the client address "
        "held its --max-connections-per-address.\n"
        "# TYPE tidings_http_connections_refused_total counter\n"
        "tidings_http_connections_refused_total{reason=\"per_address\"} %llu\n"
        "# HELP tidings_http_connections_cut_total Connections cut: a request's head and body did "
        "not arrive within --request-deadline.\n"
        "# TYPE tidings_http_connections_cut_total counter\n"
        "tidings_http_connections_cut_total{reason=\"request_deadline\"} %llu\n",
        (long long)atomic_load(&st->open),
        (unsigned long long)atomic_load(&st->refused_per_address),
        (unsigned long long)atomic_load(&st->cut_deadline));
}

/* Publishes Redis did not answer (api/publish_outcome.c), by how they were decided. */
static void api_publish_metrics(const api_publish_outcome_stats_t *st, api_text_t *t)
{
    api_text_printf(
        t,
        "# HELP tidings_publish_unanswered_total Publishes Redis did not answer, by outcome: "
        "published (202), abandoned (503, made never to stand), undecided (503 at once, decided "
        "later; retracted: found published and deleted).\n"
        "# TYPE tidings_publish_unanswered_total counter\n"
        "tidings_publish_unanswered_total{outcome=\"published\"} %llu\n"
        "tidings_publish_unanswered_total{outcome=\"abandoned\"} %llu\n"
        "tidings_publish_unanswered_total{outcome=\"undecided\"} %llu\n"
        "tidings_publish_unanswered_total{outcome=\"retracted\"} %llu\n",
        (unsigned long long)atomic_load(&st->settled_published),
        (unsigned long long)atomic_load(&st->settled_abandoned),
        (unsigned long long)atomic_load(&st->undecided),
        (unsigned long long)atomic_load(&st->retracted));
}

void api_system_metrics(api_req_t *r)
{
    const char *secret = r->api->cfg->metrics_token;
    if (secret[0] && !api_authenticate_operator(r, secret))
        return;
    const char *names[API_METRICS_ROUTES];
    for (size_t i = 0; i < api_routes_count && i < API_METRICS_ROUTES; i++)
        names[i] = api_routes[i].pattern;
    api_text_t t = {0};
    api_metrics_render(&r->api->metrics, names, api_routes_count, &t);
    storage_t *s = r->api->storage;
    api_text_printf(
        &t,
        "# HELP tidings_http_requests_in_flight Requests being handled now.\n"
        "# TYPE tidings_http_requests_in_flight gauge\n"
        "tidings_http_requests_in_flight %lld\n"
        "# HELP tidings_redis_up Whether the last Redis command got through.\n"
        "# TYPE tidings_redis_up gauge\n"
        "tidings_redis_up %d\n"
        "# HELP tidings_redis_reconnects_total Connections opened after Redis was down.\n"
        "# TYPE tidings_redis_reconnects_total counter\n"
        "tidings_redis_reconnects_total %llu\n"
        "# HELP tidings_id_node The leased id-generator node id (-1: none).\n"
        "# TYPE tidings_id_node gauge\n"
        "tidings_id_node %d\n",
        (long long)atomic_load(&r->api->metrics.in_flight), storage_is_up(s) ? 1 : 0,
        (unsigned long long)storage_reconnects(s), storage_node_id(s));
    storage_topology_stats_t topo;
    storage_topology_stats(s, &topo);
    api_text_printf(
        &t,
        "# HELP tidings_redis_cluster Whether Redis is a Redis Cluster (0: one Redis).\n"
        "# TYPE tidings_redis_cluster gauge\n"
        "tidings_redis_cluster %d\n"
        "# HELP tidings_redis_masters Redis nodes that own slots, as last learnt.\n"
        "# TYPE tidings_redis_masters gauge\n"
        "tidings_redis_masters %d\n"
        "# HELP tidings_redis_redirects_total MOVED and ASK replies followed.\n"
        "# TYPE tidings_redis_redirects_total counter\n"
        "tidings_redis_redirects_total %llu\n"
        "# HELP tidings_redis_slot_map_refreshes_total Times the slot map was learnt.\n"
        "# TYPE tidings_redis_slot_map_refreshes_total counter\n"
        "tidings_redis_slot_map_refreshes_total %llu\n"
        "# HELP tidings_redis_pipelines_total Round trips of the request path to Redis: "
        "pipelines sent, one per node a batch touches.\n"
        "# TYPE tidings_redis_pipelines_total counter\n"
        "tidings_redis_pipelines_total %llu\n",
        topo.cluster ? 1 : 0, topo.masters, (unsigned long long)topo.redirects,
        (unsigned long long)topo.refreshes, (unsigned long long)topo.pipelines);
    storage_read_cache_stats_t rc;
    storage_read_cache_stats(s, &rc);
    api_text_printf(
        &t,
        "# HELP tidings_read_cache_up Whether posts are read from the process's cache now "
        "(--read-cache on, one Redis node, Redis' invalidations flowing).\n"
        "# TYPE tidings_read_cache_up gauge\n"
        "tidings_read_cache_up %d\n"
        "# HELP tidings_read_cache_hits_total Post reads (a post, a page) served from the cache "
        "alone.\n"
        "# TYPE tidings_read_cache_hits_total counter\n"
        "tidings_read_cache_hits_total %llu\n"
        "# HELP tidings_read_cache_misses_total Post reads that went to Redis while the cache "
        "was up.\n"
        "# TYPE tidings_read_cache_misses_total counter\n"
        "tidings_read_cache_misses_total %llu\n"
        "# HELP tidings_read_cache_timeline_hits_total Home timeline first pages whose entries "
        "came from the cache (no Redis round trip for them).\n"
        "# TYPE tidings_read_cache_timeline_hits_total counter\n"
        "tidings_read_cache_timeline_hits_total %llu\n"
        "# HELP tidings_read_cache_timeline_misses_total Home timeline first pages whose entries "
        "Redis read while the cache was up.\n"
        "# TYPE tidings_read_cache_timeline_misses_total counter\n"
        "tidings_read_cache_timeline_misses_total %llu\n",
        rc.live ? 1 : 0, (unsigned long long)rc.hits, (unsigned long long)rc.misses,
        (unsigned long long)rc.page_hits, (unsigned long long)rc.page_misses);
    if (r->api->connections)
        api_connection_metrics(r->api->connections, &t);
    if (r->api->publish_doubts)
        api_publish_metrics(api_publish_outcome_stats(r->api->publish_doubts), &t);
    api_text_printf(&t, "# HELP tidings_http_rate_limited_total Requests answered 429: their "
                        "class's rate limit was spent.\n"
                        "# TYPE tidings_http_rate_limited_total counter\n");
    for (int c = 0; c < API_RATE_CLASSES; c++)
        api_text_printf(&t, "tidings_http_rate_limited_total{class=\"%s\"} %llu\n",
                        api_rate_class_names[c],
                        (unsigned long long)atomic_load(&r->api->metrics.rate_limited[c]));
    if (r->api->fanout)
        api_fanout_metrics(r->api->fanout, &r->api->metrics.job_duration, &t);
    if (r->api->hub)
        api_stream_metrics(notify_hub_stats(r->api->hub), &r->api->metrics, &t);
    if (t.failed)
        api_reply_json(r, 503, NULL);
    else
        api_reply_text(r, 200, "text/plain; version=0.0.4; charset=utf-8", t.buf, t.len);
    api_text_free(&t);
}

void api_system_openapi(api_req_t *r)
{
    api_reply_text(r, 200, "application/yaml", api_openapi_yaml, api_openapi_yaml_len);
}
