/* api/utf8.h -- UTF-8 checks on client text. Thread: any (pure functions). */
#ifndef TIDINGS_API_UTF8_H
#define TIDINGS_API_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* Replaces every byte that does not belong to a valid UTF-8 sequence with '?'. */
void api_utf8_sanitize(char *s);
/* Whether valid UTF-8 text holds C0 or C1 control characters or DEL. */
bool api_has_control_chars(const char *s);
/* Counts UTF-8 code points (the text is already valid UTF-8). */
size_t api_utf8_length(const char *s);

#endif
