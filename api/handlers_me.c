/* api/handlers_me.c -- the caller's own profile: GET /v1/me and PATCH /v1/me.
 *
 * GET reads the user fresh from storage, not the token cache (which may be 10 s old), so a
 * client sees its edit at once. PATCH checks every field before writing any of them.
 */
#include "api/api.h"
#include "api/utf8.h"

#include <stdint.h>
#include <string.h>

#define DISPLAY_NAME_MAX_CHARS 50
#define BIO_MAX_CHARS 160

/* Decodes the UTF-8 sequence at *p (valid: the JSON parser checked it) and advances *p. */
static uint32_t next_code_point(const unsigned char **p)
{
    const unsigned char *s = *p;
    uint32_t c = s[0];
    size_t n = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    if (n > 1)
        c &= n == 2 ? 0x1F : n == 3 ? 0x0F : 0x07;
    for (size_t i = 1; i < n && s[i]; i++)
        c = (c << 6) | (s[i] & 0x3F);
    *p = s + n;
    return c;
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

void api_me_get(api_req_t *r)
{
    storage_user_t user;
    int rc = storage_user_get(r->api->storage, r->caller.id, &user);
    if (rc)
        api_storage_problem(r, rc, "user");
    else
        api_reply_json(r, 200, api_user_json(&user));
}

/* Checks the PATCH body's fields; false after answering a problem. */
static bool check_fields(api_req_t *r, json_t *jn, json_t *jb)
{
    const char *name = json_string_value(jn), *bio = json_string_value(jb);
    if (!jn && !jb) {
        api_problem(r, API_BAD_REQUEST, "give display_name, bio or both");
    } else if (jn && !name) {
        api_problem(r, API_BAD_REQUEST, "display_name must be a string");
    } else if (jb && !bio) {
        api_problem(r, API_BAD_REQUEST, "bio must be a string");
    } else if (name &&
               (api_utf8_length(name) < 1 || api_utf8_length(name) > DISPLAY_NAME_MAX_CHARS ||
                !clean_text(name, false, true))) {
        api_problem(r, API_BAD_REQUEST,
                    "display_name must be 1 to %d characters without control, bidirectional "
                    "or invisible characters",
                    DISPLAY_NAME_MAX_CHARS);
    } else if (bio && (api_utf8_length(bio) > BIO_MAX_CHARS || !clean_text(bio, true, false))) {
        api_problem(r, API_BAD_REQUEST,
                    "bio must be at most %d characters without control characters (newlines "
                    "are fine) or bidirectional controls",
                    BIO_MAX_CHARS);
    } else {
        return true;
    }
    return false;
}

void api_me_patch(api_req_t *r)
{
    static const char *const fields[] = {"display_name", "bio", NULL};
    json_t *body = api_body_object(r, fields);
    if (!body)
        return;
    json_t *jn = json_object_get(body, "display_name"), *jb = json_object_get(body, "bio");
    if (check_fields(r, jn, jb)) {
        storage_user_t user;
        int rc = storage_user_update(r->api->storage, r->caller.id, json_string_value(jn),
                                     json_string_value(jb), &user);
        if (rc)
            api_storage_problem(r, rc, "user");
        else
            api_reply_json(r, 200, api_user_json(&user));
    }
    json_decref(body);
}
