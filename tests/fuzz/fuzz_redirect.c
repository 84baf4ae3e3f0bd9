/* tests/fuzz/fuzz_redirect.c -- storage_redirect_parse (storage/redis/slots.c) on any error
 * reply text, read from an exact-size buffer (an error's text need not end in NUL).
 *
 * A redirect names a slot below 16384, a port of 1..65535 and a host that fits host_size;
 * the text began with "MOVED " or "ASK "; and the redirect written back out in canonical
 * form parses to the same thing. */
#include "storage/redis/slots.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *err = malloc(size ? size : 1);
    FUZZ_CHECK(err != NULL);
    memcpy(err, data, size);
    size_t host_size = size > 0 ? 1 + data[0] % 64 : 64;
    char *host = malloc(host_size);
    FUZZ_CHECK(host != NULL);
    int slot = -1, port = -1;
    storage_redirect_t kind = storage_redirect_parse(err, size, &slot, host, host_size, &port);
    if (kind != STORAGE_REDIRECT_NONE) {
        const char *word = kind == STORAGE_REDIRECT_MOVED ? "MOVED " : "ASK ";
        FUZZ_CHECK(kind == STORAGE_REDIRECT_MOVED || kind == STORAGE_REDIRECT_ASK);
        FUZZ_CHECK(size > strlen(word) && memcmp(err, word, strlen(word)) == 0);
        FUZZ_CHECK(slot >= 0 && slot < STORAGE_SLOTS && port >= 1 && port <= 65535);
        FUZZ_CHECK(strlen(host) < host_size);
        char again[256];
        int n = snprintf(again, sizeof(again), "%s%d %s:%d", word, slot, host, port);
        char host2[64];
        int slot2 = -1, port2 = -1;
        FUZZ_CHECK(storage_redirect_parse(again, (size_t)n, &slot2, host2, sizeof(host2), &port2) ==
                   kind);
        FUZZ_CHECK(slot2 == slot && port2 == port && strcmp(host2, host) == 0);
    }
    free(host);
    free(err);
    return 0;
}
