/* tests/fuzz/fuzz_utf8.c -- api/utf8.c on any bytes: api_utf8_sanitize, api_utf8_length and
 * api_has_control_chars.
 *
 * Sanitizing keeps the length, leaves valid UTF-8 (as jansson, an independent validator,
 * judges it) and is a no-op on text that already was; after it, the code point count and the
 * control-character verdict agree with a decoder written here. */
#include "api/utf8.h"
#include "tests/fuzz/fuzz.h"

#include <jansson.h>

/* Decodes valid UTF-8: the code point count, and whether any is C0, DEL or C1. */
static size_t decode(const char *s, bool *control)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = 0;
    *control = false;
    while (*p) {
        uint32_t c;
        size_t len = p[0] < 0x80 ? 1 : p[0] < 0xE0 ? 2 : p[0] < 0xF0 ? 3 : 4;
        c = len == 1 ? p[0] : p[0] & (0xFF >> (len + 1));
        for (size_t i = 1; i < len; i++)
            c = c << 6 | (p[i] & 0x3F);
        *control = *control || c < 0x20 || (c >= 0x7F && c <= 0x9F);
        p += len;
        n++;
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_string(data, size);
    size_t len = strlen(s);
    json_t *valid_before = json_stringn(s, len);
    char *before = fuzz_string((const uint8_t *)s, len);
    api_utf8_sanitize(s);
    FUZZ_CHECK(strlen(s) == len);
    if (valid_before)
        FUZZ_CHECK(memcmp(s, before, len) == 0);
    json_t *valid_after = json_stringn(s, len);
    FUZZ_CHECK(valid_after != NULL);
    char *again = fuzz_string((const uint8_t *)s, len);
    api_utf8_sanitize(again);
    FUZZ_CHECK(memcmp(again, s, len) == 0);
    bool control;
    FUZZ_CHECK(api_utf8_length(s) == decode(s, &control));
    FUZZ_CHECK(api_has_control_chars(s) == control);
    json_decref(valid_before);
    json_decref(valid_after);
    free(before);
    free(again);
    free(s);
    return 0;
}
