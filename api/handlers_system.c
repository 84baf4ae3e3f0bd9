/* api/handlers_system.c -- the System tag: liveness, readiness, metrics, the spec. */
#include "api/api.h"
#include "api/text.h"

#include <stdlib.h>

void api_system_healthz(api_req_t *r)
{
    api_reply_json(r, 200, json_pack("{s:s}", "status", "ok"));
}

void api_system_readyz(api_req_t *r)
{
    bool redis = storage_ping(r->api->storage) == 0;
    bool ids = storage_node_id(r->api->storage) >= 0;
    bool ready = redis && ids;
    api_reply_json(r, ready ? 200 : 503,
                   json_pack("{s:s, s:{s:s, s:s}}", "status", ready ? "ready" : "unavailable",
                             "checks", "redis", redis ? "up" : "down", "id_node",
                             ids ? "leased" : "pending"));
    if (!ready)
        r->retry_after = 1;
}

void api_system_metrics(api_req_t *r)
{
    const char *names[API_METRICS_ROUTES];
    for (size_t i = 0; i < api_routes_count && i < API_METRICS_ROUTES; i++)
        names[i] = api_routes[i].pattern;
    api_text_t t = {0};
    api_metrics_render(&r->api->metrics, names, api_routes_count, &t);
    storage_t *s = r->api->storage;
    api_text_printf(&t,
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
