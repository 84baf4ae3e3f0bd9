/* api/problem.c -- failures as RFC 9457 application/problem+json; the one place that maps
 * error kinds and storage codes to HTTP status codes (openapi.yaml lists the same). */
#include "api/api.h"
#include "api/utf8.h"
#include "api/log.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const struct {
    int status;
    const char *slug;
    const char *title;
} problems[] = {
    [API_BAD_REQUEST] = {400, "bad-request", "Bad Request"},
    [API_UNAUTHORIZED] = {401, "unauthorized", "Unauthorized"},
    [API_FORBIDDEN] = {403, "forbidden", "Forbidden"},
    [API_NOT_FOUND] = {404, "not-found", "Not Found"},
    [API_METHOD_NOT_ALLOWED] = {405, "method-not-allowed", "Method Not Allowed"},
    [API_CONFLICT] = {409, "conflict", "Conflict"},
    [API_TOO_LARGE] = {413, "payload-too-large", "Payload Too Large"},
    [API_UNSUPPORTED_MEDIA] = {415, "unsupported-media-type", "Unsupported Media Type"},
    [API_UNPROCESSABLE] = {422, "unprocessable", "Unprocessable Content"},
    [API_TOO_MANY_REQUESTS] = {429, "too-many-requests", "Too Many Requests"},
    [API_INTERNAL] = {500, "internal", "Internal Server Error"},
    [API_UNAVAILABLE] = {503, "unavailable", "Service Unavailable"},
};

/* The request path percent-encoded back into a URI reference (MHD hands it decoded). */
static void instance_of(char *out, size_t size, const char *path)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)(path ? path : "/"); *p && o + 4 < size;
         p++) {
        if (isalnum(*p) || strchr("/-._~", *p)) {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    out[o] = '\0';
}

void api_problem(api_req_t *r, api_problem_t kind, const char *fmt, ...)
{
    char detail[512], type[64], instance[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    api_utf8_sanitize(detail); /* a quoted input may be cut inside a character, or invalid */
    instance_of(instance, sizeof(instance), r->path);
    snprintf(type, sizeof(type), "urn:tidings:problem:%s", problems[kind].slug);
    json_t *body =
        json_pack("{s:s, s:s, s:i, s:s, s:s}", "type", type, "title", problems[kind].title,
                  "status", problems[kind].status, "detail", detail, "instance", instance);
    api_reply_json(r, problems[kind].status, body);
    r->content_type = "application/problem+json";
    if (kind == API_UNAVAILABLE)
        r->retry_after = 1;
}

void api_storage_problem(api_req_t *r, int rc, const char *what)
{
    switch (rc) {
    case -ENOENT:
        api_problem(r, API_NOT_FOUND, "%s not found", what);
        return;
    case -EAGAIN:
    case -ENOTCONN: /* nothing was sent */
        api_problem(r, API_UNAVAILABLE, "storage is unreachable, retry shortly");
        return;
    case -ETIMEDOUT: /* sent, unanswered: a write may have been made */
        api_problem(r, API_UNAVAILABLE, "storage did not answer in time, retry shortly");
        return;
    case -ENOMEM:
        api_problem(r, API_UNAVAILABLE, "out of memory, retry shortly");
        return;
    case -ENOSPC: /* Redis at maxmemory refuses writes */
        api_problem(r, API_UNAVAILABLE, "storage is full and refuses writes, retry later");
        return;
    case -ECANCELED: /* the rate check refused: api_rate_handle answers 429 in its place */
        api_problem(r, API_TOO_MANY_REQUESTS, "the rate limit is spent");
        return;
    case -EIO:
        LOG_RATELIMITED(LOG_ERROR, "storage", 0, "redis answered an error for %s %s", r->method,
                        r->path);
        api_problem(r, API_UNAVAILABLE, "storage refused the operation, retry shortly");
        return;
    default:
        LOG_RATELIMITED(LOG_ERROR, "api", -rc, "unexpected failure for %s %s", r->method, r->path);
        api_problem(r, API_INTERNAL, "unexpected failure");
    }
}
