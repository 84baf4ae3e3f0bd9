/* tests/fuzz/fuzz_mentions.c -- api_mentions_parse (api/mentions.c) on any post text.
 *
 * Every handle found is 1..30 handle characters, distinct from the others without regard
 * to case, and stands in the text as a mention: '@' not after a handle character or another
 * '@', the handle, then no handle character. At most max are returned, and a text whose
 * every '@' is escaped by a preceding letter yields none. */
#include "api/api.h"
#include "tests/fuzz/fuzz.h"

#include <ctype.h>
#include <strings.h>

static bool handle_char(char c)
{
    return isalnum((unsigned char)c) || c == '_';
}

/* Is there a mention of exactly handle (case as given) in text? */
static bool mentioned(const char *text, const char *handle)
{
    size_t len = strlen(handle);
    for (const char *p = text; (p = strchr(p, '@')) != NULL; p++) {
        bool starts = p == text || (!handle_char(p[-1]) && p[-1] != '@');
        if (starts && strncmp(p + 1, handle, len) == 0 && !handle_char(p[1 + len]))
            return true;
    }
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t max = data[0] % (STORAGE_MENTIONS_MAX + 1);
    char *text = fuzz_string(data + 1, size - 1);
    char handles[STORAGE_MENTIONS_MAX][STORAGE_HANDLE_MAX + 1];
    size_t n = api_mentions_parse(text, handles, max);
    FUZZ_CHECK(n <= max);
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(handles[i]);
        FUZZ_CHECK(len >= 1 && len <= STORAGE_HANDLE_MAX);
        for (size_t k = 0; k < len; k++)
            FUZZ_CHECK(handle_char(handles[i][k]));
        FUZZ_CHECK(mentioned(text, handles[i]));
        for (size_t j = 0; j < i; j++)
            FUZZ_CHECK(strcasecmp(handles[i], handles[j]) != 0);
    }
    free(text);
    return 0;
}
