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

size_t api_utf8_length(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            n++;
    return n;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when it is not one. */
static size_t utf8_sequence(const unsigned char *s)
{
    unsigned char c = s[0];
    size_t n = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3
                                                       : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (n == 0 || (n == 2 && c < 0xC2) || (n == 4 && c > 0xF4))
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    if ((n == 3 && c == 0xE0 && s[1] < 0xA0) || (n == 3 && c == 0xED && s[1] >= 0xA0) ||
        (n == 4 && c == 0xF0 && s[1] < 0x90) || (n == 4 && c == 0xF4 && s[1] >= 0x90))
        return 0; /* overlong, surrogate or beyond U+10FFFF */
    return n;
}

void api_utf8_sanitize(char *s)
{
    unsigned char *p = (unsigned char *)s;
    while (*p) {
        size_t n = utf8_sequence(p);
        if (n == 0)
            *p++ = '?';
        else
            p += n;
    }
}

bool api_has_control_chars(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f || (*p == 0xC2 && p[1] >= 0x80 && p[1] <= 0x9F))
            return true; /* C0, DEL, C1 (U+0080..U+009F is C2 80..C2 9F in UTF-8) */
    return false;
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
    return strncasecmp(ct, "application/json", n) == 0 && (ct[n] == '\0' || ct[n] == ';' ||
                                                            ct[n] == ' ');
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
