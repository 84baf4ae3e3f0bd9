/* api/mentions.c -- finds @handle mentions in post text. */
#include "api/api.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

static bool handle_char(char c)
{
    return isalnum((unsigned char)c) || c == '_';
}

size_t api_mentions_parse(const char *text, char (*handles)[STORAGE_HANDLE_MAX + 1], size_t max)
{
    size_t n = 0;
    for (const char *p = text; *p && n < max; p++) {
        if (*p != '@' || (p > text && (handle_char(p[-1]) || p[-1] == '@')))
            continue;
        size_t len = 0;
        while (handle_char(p[1 + len]))
            len++;
        if (len < 1 || len > STORAGE_HANDLE_MAX)
            continue;
        bool seen = false;
        for (size_t i = 0; i < n && !seen; i++)
            seen = strlen(handles[i]) == len && strncasecmp(handles[i], p + 1, len) == 0;
        if (!seen) {
            memcpy(handles[n], p + 1, len);
            handles[n][len] = '\0';
            n++;
        }
        p += len;
    }
    return n;
}
