/* api/request.c -- reading a request's inputs: path ids, paging parameters, JSON bodies.
 * Each reader answers the problem itself and returns false/NULL, so handlers stay flat; the
 * parsing and checking are api/input.c's pure functions. */
#include "api/api.h"
#include "api/input.h"

#include <string.h>

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
    char detail[API_DETAIL_MAX];
    if (!api_input_page(l, c, limit, cursor, detail, sizeof(detail))) {
        api_problem(r, API_BAD_REQUEST, "%s", detail);
        return false;
    }
    return true;
}

json_t *api_body_object(api_req_t *r, const char *const *allowed)
{
    if (!api_input_is_json(api_header(r, MHD_HTTP_HEADER_CONTENT_TYPE))) {
        api_problem(r, API_UNSUPPORTED_MEDIA, "the body must be sent as application/json");
        return NULL;
    }
    char detail[API_DETAIL_MAX];
    json_t *body = api_input_object(r->body, r->body_len, allowed, detail, sizeof(detail));
    if (!body)
        api_problem(r, API_BAD_REQUEST, "%s", detail);
    return body;
}
