/* tests/fuzz/fuzz_body_user.c -- POST /v1/users' body (registration): api_input_object
 * with its fields, then api_input_user.
 *
 * Accepted: the handle is 1..30 of [A-Za-z0-9_]; a display name is 1..50 code points with
 * no C0, DEL or C1 control. Refused: a detail. */
#include "api/input.h"
#include "api/utf8.h"
#include "tests/fuzz/fuzz.h"

static const char *const fields[] = {"handle", "display_name", NULL};

static bool handle_ok(const char *h)
{
    static const char allowed[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                  "0123456789_";
    size_t n = strlen(h);
    return n >= 1 && n <= STORAGE_HANDLE_MAX && strspn(h, allowed) == n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char detail[API_DETAIL_MAX] = "";
    json_t *body = api_input_object((const char *)data, size, fields, detail, sizeof(detail));
    if (!body) {
        FUZZ_CHECK(detail[0] != '\0' && strlen(detail) < sizeof(detail));
        return 0;
    }
    const char *handle = NULL, *name = NULL;
    detail[0] = '\0';
    if (api_input_user(body, &handle, &name, detail, sizeof(detail))) {
        FUZZ_CHECK(handle && handle_ok(handle));
        if (name) {
            size_t chars = api_utf8_length(name);
            FUZZ_CHECK(chars >= 1 && chars <= API_DISPLAY_NAME_MAX_CHARS);
            for (const unsigned char *p = (const unsigned char *)name; *p; p++)
                FUZZ_CHECK(*p >= 0x20 && *p != 0x7f && !(p[0] == 0xC2 && p[1] < 0xA0));
        } else {
            const json_t *jn = json_object_get(body, "display_name");
            FUZZ_CHECK(!jn || json_is_null(jn));
        }
    } else {
        FUZZ_CHECK(detail[0] != '\0' && strlen(detail) < sizeof(detail));
    }
    json_decref(body);
    return 0;
}
