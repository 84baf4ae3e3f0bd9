/* api/text.h -- a growable string for building response bodies. */
#ifndef TIDINGS_API_TEXT_H
#define TIDINGS_API_TEXT_H

#include <stdbool.h>
#include <stddef.h>

typedef struct api_text_s {
    char *buf; /* owned; NUL-terminated */
    size_t len, cap;
    bool failed; /* an allocation failed: the text is incomplete */
} api_text_t;

void api_text_printf(api_text_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends n bytes of s (kept NUL-terminated). */
void api_text_append(api_text_t *t, const char *s, size_t n);
void api_text_free(api_text_t *t);

#endif
