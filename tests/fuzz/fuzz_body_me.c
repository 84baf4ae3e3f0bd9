/* tests/fuzz/fuzz_body_me.c -- PATCH /v1/me's body: api_input_object with its fields, then
 * api_input_me.
 *
 * Accepted: at least one field; a display name of 1..50 code points and a bio of at most
 * 160, neither with a control character (the bio may hold newlines) or a bidirectional
 * control (U+202A..U+202E, U+2066..U+2069). Refused: a detail. */
#include "api/input.h"
#include "api/utf8.h"
#include "tests/fuzz/fuzz.h"

static const char *const fields[] = {"display_name", "bio", NULL};

/* Decodes valid UTF-8 (the JSON parser checked it) independently of api/input.c. */
static bool clean(const char *s, bool newlines)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        uint32_t c;
        if (p[0] < 0x80) {
            c = *p++;
        } else if (p[0] < 0xE0) {
            c = (uint32_t)(p[0] & 0x1F) << 6 | (p[1] & 0x3F);
            p += 2;
        } else if (p[0] < 0xF0) {
            c = (uint32_t)(p[0] & 0x0F) << 12 | (uint32_t)(p[1] & 0x3F) << 6 | (p[2] & 0x3F);
            p += 3;
        } else {
            c = (uint32_t)(p[0] & 0x07) << 18 | (uint32_t)(p[1] & 0x3F) << 12 |
                (uint32_t)(p[2] & 0x3F) << 6 | (p[3] & 0x3F);
            p += 4;
        }
        if ((c < 0x20 && !(newlines && c == '\n')) || (c >= 0x7F && c <= 0x9F) ||
            (c >= 0x202A && c <= 0x202E) || (c >= 0x2066 && c <= 0x2069))
            return false;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char detail[API_DETAIL_MAX] = "";
    json_t *body = api_input_object((const char *)data, size, fields, detail, sizeof(detail));
    if (!body) {
        FUZZ_CHECK(detail[0] != '\0' && strlen(detail) < sizeof(detail));
        return 0;
    }
    const char *name = NULL, *bio = NULL;
    detail[0] = '\0';
    if (api_input_me(body, &name, &bio, detail, sizeof(detail))) {
        FUZZ_CHECK(name || bio);
        if (name)
            FUZZ_CHECK(api_utf8_length(name) >= 1 &&
                       api_utf8_length(name) <= API_DISPLAY_NAME_MAX_CHARS && clean(name, false));
        if (bio)
            FUZZ_CHECK(api_utf8_length(bio) <= API_BIO_MAX_CHARS && clean(bio, true));
    } else {
        FUZZ_CHECK(detail[0] != '\0' && strlen(detail) < sizeof(detail));
    }
    json_decref(body);
    return 0;
}
