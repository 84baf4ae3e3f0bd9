/* api/text.c -- a growable string; an allocation failure is remembered, not fatal. */
#include "api/text.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Room for more than n more bytes; false (and failed) when memory ran out. */
static bool reserve(api_text_t *t, size_t n)
{
    if (t->failed)
        return false;
    if (t->buf && t->cap - t->len > n)
        return true;
    size_t cap = t->cap ? t->cap * 2 : 4096;
    while (cap - t->len <= n)
        cap *= 2;
    char *buf = realloc(t->buf, cap);
    if (!buf) {
        t->failed = true;
        return false;
    }
    t->buf = buf;
    t->cap = cap;
    return true;
}

void api_text_printf(api_text_t *t, const char *fmt, ...)
{
    /* Twice at most: the first try measures what did not fit. */
    for (size_t want = 0; reserve(t, want);) {
        size_t room = t->cap - t->len;
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->buf + t->len, room, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = true;
            return;
        }
        if ((size_t)n < room) {
            t->len += (size_t)n;
            return;
        }
        want = (size_t)n;
    }
}

void api_text_append(api_text_t *t, const char *s, size_t n)
{
    if (!reserve(t, n))
        return;
    memcpy(t->buf + t->len, s, n);
    t->len += n;
    t->buf[t->len] = '\0';
}

void api_text_free(api_text_t *t)
{
    free(t->buf);
    t->buf = NULL;
    t->len = t->cap = 0;
}
