/* api/rate_limit.c -- rate limits by route class, and their headers.
 *
 * Each route names a class (api/routes.c). A request spends one token of its class's bucket
 * before its body is read: the caller's bucket where the route takes a token, the client
 * address's otherwise (registration). The bucket lives in Redis (storage/rate_limit.c), so
 * the limit holds across every process; the check is one round trip on the caller's own
 * slot. The headers follow the IETF httpapi rate-limit draft: RateLimit-Policy names the
 * quota (the burst) and its window (the time the burst takes to refill), RateLimit what is
 * left and the seconds until the bucket is full again (or, refused, until a request passes).
 */
#include "api/rate_limit.h"
#include "api/api.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MS_PER_S 1000
#define US_PER_MS 1000
#define US_PER_S 1000000
#define BURST_MAX_FACTOR 10 /* a burst beyond ten windows' worth is no limit */

const char *const api_rate_class_names[API_RATE_CLASSES] = {
    [API_RATE_PUBLISH] = "publish", [API_RATE_INTERACT] = "interact",
    [API_RATE_FOLLOW] = "follow",   [API_RATE_REGISTER] = "register",
    [API_RATE_READ] = "read",       [API_RATE_STREAM] = "stream",
};

void api_rate_policy_defaults(api_rate_policy_t p[API_RATE_CLASSES])
{
    /* What an active person on a busy day does, with room for a client that batches. */
    p[API_RATE_PUBLISH] = (api_rate_policy_t){300, 3600, 30};    /* 5 a minute, 30 at once */
    p[API_RATE_INTERACT] = (api_rate_policy_t){1200, 3600, 120}; /* 20 a minute */
    p[API_RATE_FOLLOW] = (api_rate_policy_t){400, 3600, 60};
    p[API_RATE_REGISTER] = (api_rate_policy_t){60, 3600, 20}; /* per address: NATs share */
    p[API_RATE_READ] = (api_rate_policy_t){3600, 60, 600};    /* 60 a second */
    p[API_RATE_STREAM] = (api_rate_policy_t){60, 60, 20};     /* reconnect loops */
}

int api_rate_policy_parse(const char *text, api_rate_policy_t *out)
{
    if (strcmp(text, "off") == 0) {
        *out = (api_rate_policy_t){0, 0, 0};
        return 0;
    }
    char *end;
    unsigned long count = strtoul(text, &end, 10);
    if (end == text || *end != '/' || count == 0 || count > 1000000)
        return -EINVAL;
    char unit = end[1];
    uint32_t window = unit == 's' ? 1 : unit == 'm' ? 60 : unit == 'h' ? 3600 : 0;
    if (!window)
        return -EINVAL;
    unsigned long burst = count;
    const char *rest = end + 2;
    if (*rest == ':') {
        burst = strtoul(rest + 1, &end, 10);
        if (end == rest + 1 || *end || burst == 0 || burst > count * BURST_MAX_FACTOR)
            return -EINVAL;
    } else if (*rest) {
        return -EINVAL;
    }
    *out = (api_rate_policy_t){(uint32_t)count, window, (uint32_t)burst};
    return 0;
}

static uint64_t ceil_seconds(uint64_t ms)
{
    return (ms + MS_PER_S - 1) / MS_PER_S;
}

/* The class r's route spends, and its policy; NULL when r is not limited. */
static const api_rate_policy_t *policy_of(const api_req_t *r, api_rate_class_t *cls)
{
    if (r->route < 0 || !r->api->cfg->rate_limits)
        return NULL;
    *cls = api_routes[r->route].rate;
    if (*cls == API_RATE_NONE)
        return NULL;
    const api_rate_policy_t *p = &r->api->cfg->rate[*cls];
    return p->count ? p : NULL;
}

/* The bucket's check for r, not yet run. */
static storage_rate_gate_t *gate_for(const api_req_t *r, api_rate_class_t cls,
                                     const api_rate_policy_t *p)
{
    char subject[64];
    if (r->caller.id) {
        snprintf(subject, sizeof(subject), "%llu", (unsigned long long)r->caller.id);
    } else {
        char addr[API_ADDRESS_MAX];
        api_address_format(&r->client, addr);
        snprintf(subject, sizeof(subject), "a:%s", addr);
    }
    uint64_t interval = (uint64_t)p->window_s * US_PER_S / p->count; /* count ≤ 10^6: ≥ 1 */
    return storage_rate_gate_new(r->api->storage, subject, api_rate_class_names[cls], interval,
                                 p->burst);
}

/* Runs (or collects) the check and answers it: the headers, and false after a 429. */
static bool settle(api_req_t *r, storage_rate_gate_t *g, api_rate_class_t cls,
                   const api_rate_policy_t *p)
{
    storage_rate_t got;
    int rc = storage_rate_gate_settle(g, &got);
    if (rc)
        return true; /* a failing Redis lets the request through: it meets the outage itself */
    const char *name = api_rate_class_names[cls];
    uint64_t interval = (uint64_t)p->window_s * US_PER_S / p->count;
    snprintf(r->rate_policy, sizeof(r->rate_policy), "\"%s\";q=%u;w=%llu", name, p->burst,
             (unsigned long long)ceil_seconds(interval * p->burst / US_PER_MS));
    uint64_t t = got.allowed ? ceil_seconds(got.full_ms) : ceil_seconds(got.retry_ms);
    snprintf(r->rate_state, sizeof(r->rate_state), "\"%s\";r=%u;t=%llu", name, got.remaining,
             (unsigned long long)t);
    if (got.allowed)
        return true;
    atomic_fetch_add_explicit(&r->api->metrics.rate_limited[cls], 1, memory_order_relaxed);
    api_reply_reset(r); /* whatever the handler began to answer (it wrote nothing) */
    r->retry_after = (int)(t ? t : 1);
    api_problem(r, API_TOO_MANY_REQUESTS,
                "the %s rate limit (%u per %u s, %u at once) is spent; "
                "retry in %llu s",
                name, p->count, p->window_s, p->burst, (unsigned long long)(t ? t : 1));
    return false;
}

bool api_rate_check(api_req_t *r, bool now)
{
    api_rate_class_t cls;
    const api_rate_policy_t *p = policy_of(r, &cls);
    if (!p)
        return true;
    storage_rate_gate_t *g = gate_for(r, cls, p);
    if (!g)
        return true;
    if (!now && cls != API_RATE_STREAM) {
        r->rate_gate = g; /* rides on the handler's first batch (api_rate_handle) */
        return true;
    }
    bool ok = settle(r, g, cls, p);
    storage_rate_gate_free(g);
    return ok;
}

void api_rate_handle(api_req_t *r, void (*handler)(api_req_t *))
{
    storage_rate_gate_t *g = r->rate_gate;
    if (!g) {
        handler(r);
        return;
    }
    r->rate_gate = NULL;
    storage_rate_gate_arm(g);
    handler(r);
    api_rate_class_t cls = API_RATE_NONE;
    const api_rate_policy_t *p = policy_of(r, &cls); /* the one the gate was made with */
    if (p)
        settle(r, g, cls, p);
    storage_rate_gate_free(g);
}
