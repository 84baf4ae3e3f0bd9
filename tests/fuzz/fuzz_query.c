/* tests/fuzz/fuzz_query.c -- the query parameters of lists: limit and cursor
 * (api_input_page), types (api_input_types) and the ids they hold (api_parse_id).
 *
 * Input: a flags byte (which parameters are present), then limit, cursor and types
 * separated by NUL. An id is accepted exactly when a plain re-implementation accepts it,
 * and an accepted one prints back as the same text; an accepted types list holds only
 * known names and its bits are exactly theirs. */
#include "api/input.h"
#include "api/api.h"
#include "tests/fuzz/fuzz.h"

#include <errno.h>

/* 1..16 decimal digits, no leading zero, below 2^53: the contract's id. */
static uint64_t reference_id(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 16 || s[0] == '0' || strspn(s, "0123456789") != n)
        return 0;
    errno = 0;
    unsigned long long v = strtoull(s, NULL, 10);
    return errno == 0 && v < (1ULL << 53) ? (uint64_t)v : 0;
}

static void check_id(const char *s)
{
    uint64_t v = api_parse_id(s);
    FUZZ_CHECK(v == reference_id(s));
    if (v) {
        char back[24];
        snprintf(back, sizeof(back), "%llu", (unsigned long long)v);
        FUZZ_CHECK(strcmp(back, s) == 0);
    }
}

static int type_index(const char *p, size_t len)
{
    for (int t = 0; t < STORAGE_NOTIFICATION_TYPES; t++)
        if (strlen(storage_notification_types[t]) == len &&
            memcmp(storage_notification_types[t], p, len) == 0)
            return t;
    return -1;
}

static void check_types(const char *text)
{
    unsigned types = 0;
    char detail[API_DETAIL_MAX] = "";
    bool ok = api_input_types(text, &types, detail, sizeof(detail));
    unsigned want = 0;
    bool known = true;
    for (const char *p = text;;) {
        size_t len = strcspn(p, ",");
        int t = type_index(p, len);
        known = known && t >= 0;
        want |= t >= 0 ? 1u << t : 0;
        if (!p[len])
            break;
        p += len + 1;
    }
    FUZZ_CHECK(ok == known);
    FUZZ_CHECK(ok ? types == want && types != 0 : detail[0] != '\0');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t flags = data[0];
    data++;
    size--;
    char *limit_text = fuzz_take_field(&data, &size);
    char *cursor_text = fuzz_take_field(&data, &size);
    char *types_text = fuzz_take_field(&data, &size);
    const char *l = flags & 1 ? limit_text : NULL, *c = flags & 2 ? cursor_text : NULL;

    size_t limit = 0;
    uint64_t cursor = 1;
    char detail[API_DETAIL_MAX] = "";
    bool ok = api_input_page(l, c, &limit, &cursor, detail, sizeof(detail));
    uint64_t want_limit = l ? reference_id(l) : API_LIMIT_DEFAULT;
    uint64_t want_cursor = c ? reference_id(c) : 0;
    bool want_ok = want_limit >= 1 && want_limit <= API_LIMIT_MAX && (!c || want_cursor);
    FUZZ_CHECK(ok == want_ok);
    if (ok) {
        FUZZ_CHECK(limit == want_limit && cursor == want_cursor);
    } else {
        FUZZ_CHECK(detail[0] != '\0' && strlen(detail) < sizeof(detail));
    }
    check_id(limit_text);
    check_id(cursor_text);
    if (flags & 4) {
        check_types(types_text);
    } else {
        unsigned all = 0;
        FUZZ_CHECK(api_input_types(NULL, &all, detail, sizeof(detail)));
        FUZZ_CHECK(all == (1u << STORAGE_NOTIFICATION_TYPES) - 1);
    }
    free(limit_text);
    free(cursor_text);
    free(types_text);
    return 0;
}
