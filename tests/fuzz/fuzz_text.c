/* tests/fuzz/fuzz_text.c -- api_text_printf (api/text.c), the growable string response
 * bodies are built in, on pieces of any length.
 *
 * Input: pieces, each a byte choosing how it is appended, then its text up to a NUL. The
 * text must equal the same pieces appended by hand, stay NUL-terminated within its
 * capacity, and never be marked failed (no allocation fails here). */
#include "api/text.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    api_text_t t = {0};
    char *want = malloc(size + 24 * (size + 1) + 1); /* each piece adds at most itself + 21 */
    size_t want_len = 0;
    FUZZ_CHECK(want != NULL);
    while (size > 0) {
        uint8_t how = data[0] % 3;
        data++;
        size--;
        char *piece = fuzz_take_field(&data, &size);
        size_t n = strlen(piece);
        if (how == 0) { /* whole */
            api_text_printf(&t, "%s", piece);
            memcpy(want + want_len, piece, n);
            want_len += n;
        } else if (how == 1) { /* half, with a precision, then a separator */
            api_text_printf(&t, "%.*s|", (int)(n / 2), piece);
            memcpy(want + want_len, piece, n / 2);
            want_len += n / 2;
            want[want_len++] = '|';
        } else { /* a number */
            api_text_printf(&t, "%zu", n);
            want_len += (size_t)sprintf(want + want_len, "%zu", n);
        }
        free(piece);
        FUZZ_CHECK(!t.failed);
        FUZZ_CHECK(t.len == want_len && t.len < t.cap && t.buf[t.len] == '\0');
        FUZZ_CHECK(memcmp(t.buf, want, want_len) == 0);
    }
    free(want);
    api_text_free(&t);
    FUZZ_CHECK(t.buf == NULL && t.len == 0 && t.cap == 0);
    return 0;
}
