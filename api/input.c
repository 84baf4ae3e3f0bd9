/* api/input.c -- what clients send, parsed and checked without touching the request: JSON
 * bodies, the paging and type query parameters, each route's body fields.
 *
 * Split from the handlers so that each check is one pure function the fuzzers can drive
 * (tests/fuzz); the handlers only turn a false into a 400 with the detail written here.
 * Strings in bodies are valid UTF-8 without NUL (jansson refuses anything else), which the
 * code point walks below rely on.
 */
#include "api/input.h"
#include "api/api.h"
#include "api/utf8.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

__attribute__((format(printf, 3, 4))) static bool fail(char *detail, size_t size, const char *fmt,
                                                       ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, size, fmt, ap);
    va_end(ap);
    return false;
}

/* ---- bodies and query parameters ----------------------------------------------------------- */

bool api_input_is_json(const char *ct)
{
    if (!ct)
        return false;
    size_t n = strlen("application/json");
    return strncasecmp(ct, "application/json", n) == 0 &&
           (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

json_t *api_input_object(const char *body, size_t len, const char *const *allowed, char *detail,
                         size_t detail_size)
{
    json_error_t err;
    /* jansson rejects invalid UTF-8, lone surrogates and NUL characters for us. */
    json_t *obj = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, &err);
    if (!obj) {
        fail(detail, detail_size, "the body is not valid JSON: %s (at byte %d)", err.text,
             err.position);
        return NULL;
    }
    if (!json_is_object(obj)) {
        json_decref(obj);
        fail(detail, detail_size, "the body must be a JSON object");
        return NULL;
    }
    const char *key;
    json_t *value;
    json_object_foreach(obj, key, value)
    {
        bool known = false;
        for (const char *const *a = allowed; *a && !known; a++)
            known = strcmp(*a, key) == 0;
        if (!known) {
            fail(detail, detail_size, "unknown field '%.64s'", key);
            json_decref(obj);
            return NULL;
        }
    }
    return obj;
}

bool api_input_page(const char *limit_text, const char *cursor_text, size_t *limit,
                    uint64_t *cursor, char *detail, size_t detail_size)
{
    *limit = API_LIMIT_DEFAULT;
    *cursor = 0;
    if (limit_text) {
        uint64_t v = api_parse_id(limit_text);
        if (v < 1 || v > API_LIMIT_MAX)
            return fail(detail, detail_size, "limit must be an integer from 1 to %d",
                        API_LIMIT_MAX);
        *limit = (size_t)v;
    }
    if (cursor_text) {
        *cursor = api_parse_id(cursor_text);
        if (!*cursor)
            return fail(detail, detail_size, "cursor is not one this server handed out");
    }
    return true;
}

bool api_input_types(const char *text, unsigned *types, char *detail, size_t detail_size)
{
    *types = (1u << STORAGE_NOTIFICATION_TYPES) - 1;
    if (!text)
        return true;
    *types = 0;
    for (const char *p = text;;) {
        size_t len = strcspn(p, ",");
        int found = -1;
        for (int t = 0; t < STORAGE_NOTIFICATION_TYPES; t++)
            if (strlen(storage_notification_types[t]) == len &&
                memcmp(storage_notification_types[t], p, len) == 0)
                found = t;
        if (found < 0)
            return fail(detail, detail_size,
                        "types must be a comma-separated list of follow, like, repost, reply, "
                        "mention");
        *types |= 1u << found;
        if (!p[len])
            return true;
        p += len + 1;
    }
}

bool api_input_idempotency_key(const char *key)
{
    size_t n = strlen(key);
    if (n < 1 || n > API_IDEMPOTENCY_KEY_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (key[i] < 0x21 || key[i] > 0x7e)
            return false;
    return true;
}

/* ---- text, code point by code point ----------------------------------------------------------- */

/* Decodes the UTF-8 sequence at *p (valid: the JSON parser checked it) and advances *p. */
static uint32_t next_code_point(const unsigned char **p)
{
    const unsigned char *s = *p;
    uint32_t c = s[0];
    size_t n = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    if (n > 1)
        c &= n == 2 ? 0x1F : n == 3 ? 0x0F : 0x07;
    size_t i = 1;
    for (; i < n && s[i]; i++)
        c = (c << 6) | (s[i] & 0x3F);
    *p = s + i; /* never past the NUL, even on a sequence cut short */
    return c;
}

/* Characters that show nothing: Unicode White_Space (which is JavaScript's \s plus U+0085)
 * and the zero-width ones (U+180E, U+200B-U+200D, U+2060, U+FEFF). A post of only these
 * would be an empty post. */
static bool blank_char(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0d) || c == 0x20 || c == 0x85 || c == 0xa0 || c == 0x1680 ||
           c == 0x180e || (c >= 0x2000 && c <= 0x200d) || c == 0x2028 || c == 0x2029 ||
           c == 0x202f || c == 0x205f || c == 0x2060 || c == 0x3000 || c == 0xfeff;
}

static bool blank(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p)
        if (!blank_char(next_code_point(&p)))
            return false;
    return true;
}

/* Characters that reorder or hide text around them: a name could pose as another. */
static bool is_bidi_control(uint32_t c)
{
    return (c >= 0x202A && c <= 0x202E) || (c >= 0x2066 && c <= 0x2069);
}

static bool is_invisible(uint32_t c)
{
    return (c >= 0x200B && c <= 0x200F) || (c >= 0x2060 && c <= 0x2064) || c == 0xFEFF ||
           c == 0x00AD;
}

/* Is s free of control characters (newlines allowed when lines), bidi controls and, when
 * visible_only, zero-width and invisible characters? */
static bool clean_text(const char *s, bool lines, bool visible_only)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        uint32_t c = next_code_point(&p);
        bool control = c < 0x20 || (c >= 0x7F && c <= 0x9F);
        if ((control && !(lines && c == '\n')) || is_bidi_control(c) ||
            (visible_only && is_invisible(c)))
            return false;
    }
    return true;
}

/* 1..30 of [A-Za-z0-9_]. */
static bool valid_handle(const char *h)
{
    size_t n = strlen(h);
    if (n < 1 || n > STORAGE_HANDLE_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)h[i]) && h[i] != '_')
            return false;
    return true;
}

/* ---- each route's body ------------------------------------------------------------------------ */

bool api_input_post(const json_t *body, const char **text, uint64_t *reply_to, char *detail,
                    size_t detail_size)
{
    const json_t *jt = json_object_get(body, "text");
    const json_t *jr = json_object_get(body, "reply_to");
    *text = json_string_value(jt);
    *reply_to = 0;
    if (!jt)
        return fail(detail, detail_size, "text is required");
    if (!*text)
        return fail(detail, detail_size, "text must be a string");
    size_t chars = api_utf8_length(*text);
    if (chars < 1 || chars > API_TEXT_MAX_CHARS || blank(*text))
        return fail(detail, detail_size, "text must be 1 to %d characters and not blank",
                    API_TEXT_MAX_CHARS);
    if (jr && !json_is_null(jr)) {
        *reply_to = api_parse_id(json_string_value(jr));
        if (!*reply_to)
            return fail(detail, detail_size, "reply_to must be a post id string or null");
    }
    return true;
}

bool api_input_read_mark(const json_t *body, uint64_t *up_to, char *detail, size_t detail_size)
{
    const json_t *up = json_object_get(body, "up_to");
    *up_to = api_parse_id(json_string_value(up));
    if (!up)
        return fail(detail, detail_size, "up_to is required");
    if (!*up_to)
        return fail(detail, detail_size, "up_to must be a notification id string");
    return true;
}

bool api_input_user(const json_t *body, const char **handle, const char **display_name,
                    char *detail, size_t detail_size)
{
    const json_t *jh = json_object_get(body, "handle");
    const json_t *jn = json_object_get(body, "display_name");
    const char *name = jn && !json_is_null(jn) ? json_string_value(jn) : NULL;
    *handle = json_string_value(jh);
    *display_name = name;
    if (!jh)
        return fail(detail, detail_size, "handle is required");
    if (!*handle)
        return fail(detail, detail_size, "handle must be a string");
    if (!valid_handle(*handle))
        return fail(detail, detail_size, "handle must be 1 to 30 letters, digits or underscores");
    if (jn && !json_is_null(jn) && !name)
        return fail(detail, detail_size, "display_name must be a string");
    if (name && (api_utf8_length(name) < 1 || api_utf8_length(name) > API_DISPLAY_NAME_MAX_CHARS ||
                 api_has_control_chars(name)))
        return fail(detail, detail_size,
                    "display_name must be 1 to %d characters without control characters",
                    API_DISPLAY_NAME_MAX_CHARS);
    return true;
}

bool api_input_me(const json_t *body, const char **display_name, const char **bio, char *detail,
                  size_t detail_size)
{
    const json_t *jn = json_object_get(body, "display_name"), *jb = json_object_get(body, "bio");
    const char *name = json_string_value(jn), *b = json_string_value(jb);
    *display_name = name;
    *bio = b;
    if (!jn && !jb)
        return fail(detail, detail_size, "give display_name, bio or both");
    if (jn && !name)
        return fail(detail, detail_size, "display_name must be a string");
    if (jb && !b)
        return fail(detail, detail_size, "bio must be a string");
    if (name && (api_utf8_length(name) < 1 || api_utf8_length(name) > API_DISPLAY_NAME_MAX_CHARS ||
                 !clean_text(name, false, true)))
        return fail(detail, detail_size,
                    "display_name must be 1 to %d characters without control, bidirectional "
                    "or invisible characters",
                    API_DISPLAY_NAME_MAX_CHARS);
    if (b && (api_utf8_length(b) > API_BIO_MAX_CHARS || !clean_text(b, true, false)))
        return fail(detail, detail_size,
                    "bio must be at most %d characters without control characters (newlines "
                    "are fine) or bidirectional controls",
                    API_BIO_MAX_CHARS);
    return true;
}
