/* tests/fuzz/fuzz_body_read_mark.c -- POST /v1/notifications/read's body: api_input_object
 * with its one field, then api_input_read_mark.
 *
 * Accepted: up_to was a string that prints back from the id read. Refused: a detail. */
#include "api/input.h"
#include "tests/fuzz/fuzz.h"

static const char *const fields[] = {"up_to", NULL};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char detail[API_DETAIL_MAX] = "";
    json_t *body = api_input_object((const char *)data, size, fields, detail, sizeof(detail));
    if (!body) {
        FUZZ_CHECK(detail[0] != '\0' && strlen(detail) < sizeof(detail));
        return 0;
    }
    FUZZ_CHECK(json_object_size(body) <= 1);
    uint64_t up_to = 0;
    detail[0] = '\0';
    if (api_input_read_mark(body, &up_to, detail, sizeof(detail))) {
        char back[24];
        snprintf(back, sizeof(back), "%llu", (unsigned long long)up_to);
        const char *given = json_string_value(json_object_get(body, "up_to"));
        FUZZ_CHECK(up_to != 0 && up_to < (1ULL << 53) && given && strcmp(back, given) == 0);
    } else {
        FUZZ_CHECK(detail[0] != '\0' && strlen(detail) < sizeof(detail));
    }
    json_decref(body);
    return 0;
}
