/* api/problem.c -- failures as RFC 9457 application/problem+json; the one place that maps
 * error kinds and storage codes to HTTP status codes (openapi.yaml lists the same). */
#include "api/api.h"
#include "api/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

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
    [API_INTERNAL] = {500, "internal", "Internal Server Error"},
    [API_UNAVAILABLE] = {503, "unavailable", "Service Unavailable"},
};

void api_problem(api_req_t *r, api_problem_t kind, const char *fmt, ...)
{
    char detail[512], type[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    snprintf(type, sizeof(type), "urn:tidings:problem:%s", problems[kind].slug);
    json_t *body = json_pack("{s:s, s:s, s:i, s:s, s:s}", "type", type, "title",
                             problems[kind].title, "status", problems[kind].status, "detail",
                             detail, "instance", r->path ? r->path : "/");
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
        api_problem(r, API_UNAVAILABLE, "storage is unreachable, retry shortly");
        return;
    case -ENOMEM:
        api_problem(r, API_UNAVAILABLE, "out of memory, retry shortly");
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
