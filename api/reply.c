/* api/reply.c -- fills a request's response; server.c sends it after the handler. */
#include "api/api.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

static void set_body(api_req_t *r, int status, const char *content_type, char *body, size_t len)
{
    free(r->resp_body);
    r->status = status;
    r->content_type = content_type;
    r->resp_body = body;
    r->resp_len = len;
}

void api_reply_json(api_req_t *r, int status, json_t *json)
{
    char *s = json ? json_dumps(json, JSON_COMPACT) : NULL;
    json_decref(json);
    if (!s) {
        /* Out of memory while building the answer: say so without allocating. */
        static const char oom[] = "{\"type\":\"urn:tidings:problem:unavailable\",\"title\":"
                                  "\"Service Unavailable\",\"status\":503,\"detail\":\"out of "
                                  "memory, retry shortly\"}";
        char *copy = malloc(sizeof(oom));
        if (copy)
            memcpy(copy, oom, sizeof(oom));
        set_body(r, 503, "application/problem+json", copy, copy ? sizeof(oom) - 1 : 0);
        r->retry_after = 1;
        return;
    }
    set_body(r, status, "application/json", s, strlen(s));
}

void api_reply_owned(api_req_t *r, int status, const char *content_type, char *body, size_t len)
{
    set_body(r, status, content_type, body, len);
}

void api_reply_empty(api_req_t *r, int status)
{
    set_body(r, status, NULL, NULL, 0);
}

void api_reply_text(api_req_t *r, int status, const char *content_type, const char *text,
                    size_t len)
{
    char *copy = malloc(len + 1);
    if (!copy) {
        api_reply_json(r, 503, NULL);
        return;
    }
    memcpy(copy, text, len);
    copy[len] = '\0';
    set_body(r, status, content_type, copy, len);
}

void api_reply_reset(api_req_t *r)
{
    set_body(r, 0, NULL, NULL, 0);
    if (r->custom)
        MHD_destroy_response(r->custom);
    r->custom = NULL;
    r->location[0] = '\0';
    r->retry_after = 0;
    r->n_extra = 0;
}

void api_reply_header(api_req_t *r, const char *name, const char *value)
{
    assert(r->n_extra < API_EXTRA_HEADERS);
    r->extra[r->n_extra].name = name;
    r->extra[r->n_extra].value = value;
    r->n_extra++;
}
