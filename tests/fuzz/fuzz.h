/* tests/fuzz/fuzz.h -- what every libFuzzer target here shares: the entry point's
 * declaration, a check that reports a broken invariant as a crash, and exact-size copies of
 * the input (so AddressSanitizer sees a read one byte past the end). */
#ifndef TIDINGS_TESTS_FUZZ_H
#define TIDINGS_TESTS_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken invariant is a finding: libFuzzer saves the input that aborted. */
#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* A NUL-terminated copy of the size bytes at data, in a block of exactly size + 1 bytes
 * (new: free it). Bytes after an embedded NUL are still there but unseen by C strings. */
static inline char *fuzz_string(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    FUZZ_CHECK(s != NULL);
    memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

/* Splits data at its first NUL: *rest and *rest_size are what follows it (empty when there
 * is none). Returns a NUL-terminated copy of what precedes it (new: free it). */
static inline char *fuzz_take_field(const uint8_t **data, size_t *size)
{
    const uint8_t *nul = memchr(*data, '\0', *size);
    size_t n = nul ? (size_t)(nul - *data) : *size;
    char *field = fuzz_string(*data, n);
    *data += nul ? n + 1 : n;
    *size -= nul ? n + 1 : n;
    return field;
}

/* Whether no array header in the bytes ("*<count>") counts more than 4096 elements: hiredis's
 * reader allocates an array's elements up front (as it does for any server's reply), which
 * is its cost, not the parser's under test, and would only time the target out. */
static inline bool fuzz_resp_arrays_small(const uint8_t *data, size_t size)
{
    for (size_t i = 0; i < size; i++) {
        if (data[i] != '*')
            continue;
        unsigned long count = 0;
        for (size_t k = i + 1; k < size && data[k] >= '0' && data[k] <= '9' && count <= 4096; k++)
            count = count * 10 + (data[k] - '0');
        if (count > 4096)
            return false;
    }
    return true;
}

#endif
