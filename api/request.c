/* api/request.c -- reading a request's inputs: path ids, paging parameters, JSON bodies.
 * Each reader answers the problem itself and returns false/NULL, so handlers stay flat. */
#include "api/api.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define LIMIT_DEFAULT 20
#define LIMIT_MAX 100

uint64_t api_parse_id(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > STORAGE_ID_MAX_DIGITS || s[0] == '0')
        return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    return v < (1ULL << 53) ? v : 0;
}

const char *api_header(api_req_t *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

bool api_param_id(api_req_t *r, int index, uint64_t *id)
{
    *id = api_parse_id(r->params[index]);
    if (!*id) {
        api_problem(r, API_BAD_REQUEST, "'%.40s' is not an id (1 to 16 digits)", r->params[index]);
        return false;
    }
    return true;
}

bool api_query_page(api_req_t *r, size_t *limit, uint64_t *cursor)
{
    const char *l = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "limit");
    const char *c = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "cursor");
    *limit = LIMIT_DEFAULT;
    *cursor = 0;
    if (l) {
        uint64_t v = api_parse_id(l);
        if (v < 1 || v > LIMIT_MAX) {
            api_problem(r, API_BAD_REQUEST, "limit must be an integer from 1 to %d", LIMIT_MAX);
            return false;
        }
        *limit = (size_t)v;
    }
    if (c) {
        *cursor = api_parse_id(c);
        if (!*cursor) {
            api_problem(r, API_BAD_REQUEST, "cursor is not one this server handed out");
            return false;
        }
    }
    return true;
}

static bool is_json_media_type(const char *ct)
{
    if (!ct)
        return false;
    size_t n = strlen("application/json");
    return strncasecmp(ct, "application/json", n) == 0 &&
           (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

json_t *api_body_object(api_req_t *r, const char *const *allowed)
{
    if (!is_json_media_type(api_header(r, MHD_HTTP_HEADER_CONTENT_TYPE))) {
        api_problem(r, API_UNSUPPORTED_MEDIA, "the body must be sent as application/json");
        return NULL;
    }
    json_error_t err;
    /* jansson rejects invalid UTF-8, lone surrogates and NUL characters for us. */
    json_t *body = json_loadb(r->body ? r->body : "", r->body_len, JSON_REJECT_DUPLICATES, &err);
    if (!body) {
        api_problem(r, API_BAD_REQUEST, "the body is not valid JSON: %s (at byte %d)", err.text,
                    err.position);
        return NULL;
    }
    if (!json_is_object(body)) {
        json_decref(body);
        api_problem(r, API_BAD_REQUEST, "the body must be a JSON object");
        return NULL;
    }
    const char *key;
    json_t *value;
    json_object_foreach(body, key, value)
    {
        bool known = false;
        for (const char *const *a = allowed; *a && !known; a++)
            known = strcmp(*a, key) == 0;
        if (!known) {
            api_problem(r, API_BAD_REQUEST, "unknown field '%.64s'", key);
            json_decref(body);
            return NULL;
        }
    }
    return body;
}
