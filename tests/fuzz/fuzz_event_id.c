/* tests/fuzz/fuzz_event_id.c -- event ids from clients and from Redis: the Last-Event-ID
 * check of GET /v1/stream (valid_event_id, static in api/sse.c), the hub's ordering of ids
 * (notify_id_cmp) and the event kind names (storage_event_kind_parse).
 *
 * api/sse.c is compiled into this target (its check is file-local, and that file belongs
 * to the stream code, not to the fuzzers), so the linker takes nothing of it from
 * tidings_api. Input: up to three ids separated by NUL. An id is accepted exactly when it
 * is "<ms>-<seq>" of two decimal numbers within 64 bits; ids compare as an order (reflexive,
 * antisymmetric, transitive), and as their numbers when accepted. */
#include "api/sse.c"
#include "tests/fuzz/fuzz.h"

/* 1..20 digits, at most 18446744073709551615. */
static bool reference_u64(const char *s, size_t n)
{
    if (n < 1 || n > 20)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    const char *max = "18446744073709551615";
    while (n > 1 && *s == '0') { /* leading zeros do not make a number larger */
        s++;
        n--;
    }
    return n < 20 || memcmp(s, max, 20) <= 0;
}

static bool reference_id(const char *id, unsigned long long *ms, unsigned long long *seq)
{
    const char *dash = strchr(id, '-');
    if (!dash || !reference_u64(id, (size_t)(dash - id)) ||
        !reference_u64(dash + 1, strlen(dash + 1)))
        return false;
    *ms = strtoull(id, NULL, 10);
    *seq = strtoull(dash + 1, NULL, 10);
    return true;
}

static int sign(int v)
{
    return (v > 0) - (v < 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *id[3];
    for (int i = 0; i < 3; i++)
        id[i] = fuzz_take_field(&data, &size);
    unsigned long long ms[3], seq[3];
    bool ok[3];
    for (int i = 0; i < 3; i++) {
        ok[i] = reference_id(id[i], &ms[i], &seq[i]);
        FUZZ_CHECK(valid_event_id(id[i]) == ok[i]);
        FUZZ_CHECK(notify_id_cmp(id[i], id[i]) == 0);
    }
    int ab = sign(notify_id_cmp(id[0], id[1])), bc = sign(notify_id_cmp(id[1], id[2]));
    int ac = sign(notify_id_cmp(id[0], id[2]));
    FUZZ_CHECK(ab == -sign(notify_id_cmp(id[1], id[0])));
    if (ab <= 0 && bc <= 0)
        FUZZ_CHECK(ac <= 0 && (ac < 0 || (ab == 0 && bc == 0)));
    if (ok[0] && ok[1]) {
        int want =
            ms[0] != ms[1] ? (ms[0] < ms[1] ? -1 : 1) : (seq[0] > seq[1]) - (seq[0] < seq[1]);
        FUZZ_CHECK(ab == want);
    }
    storage_event_kind_t kind = storage_event_kind_parse(id[0], strlen(id[0]));
    if (kind != STORAGE_EVENT_UNKNOWN)
        FUZZ_CHECK(strcmp(storage_event_kind_name(kind), id[0]) == 0);
    for (int i = 0; i < 3; i++)
        free(id[i]);
    return 0;
}
