/* tests/fuzz/fuzz_body_post.c -- POST /v1/posts' body: api_input_object with its fields,
 * then api_input_post.
 *
 * Accepted: the object has only text and reply_to, text is 1..5000 code points with a
 * visible one among them, and reply_to prints back as the id string the body held (or is
 * 0 for absent or null). Refused: a detail that fits and says what is wrong. */
#include "api/input.h"
#include "api/utf8.h"
#include "tests/fuzz/fuzz.h"

static const char *const fields[] = {"text", "reply_to", NULL};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char detail[API_DETAIL_MAX] = "";
    json_t *body = api_input_object((const char *)data, size, fields, detail, sizeof(detail));
    if (!body) {
        FUZZ_CHECK(detail[0] != '\0' && strlen(detail) < sizeof(detail));
        return 0;
    }
    FUZZ_CHECK(json_is_object(body) && json_object_size(body) <= 2);
    const char *text = NULL;
    uint64_t reply_to = 1;
    detail[0] = '\0';
    if (api_input_post(body, &text, &reply_to, detail, sizeof(detail))) {
        FUZZ_CHECK(text == json_string_value(json_object_get(body, "text")));
        size_t chars = api_utf8_length(text);
        FUZZ_CHECK(chars >= 1 && chars <= API_TEXT_MAX_CHARS);
        FUZZ_CHECK(text[strspn(text, " \t\n\v\f\r")] != '\0');
        const json_t *jr = json_object_get(body, "reply_to");
        if (!jr || json_is_null(jr)) {
            FUZZ_CHECK(reply_to == 0);
        } else {
            char back[24];
            snprintf(back, sizeof(back), "%llu", (unsigned long long)reply_to);
            FUZZ_CHECK(reply_to != 0 && strcmp(back, json_string_value(jr)) == 0);
        }
    } else {
        FUZZ_CHECK(detail[0] != '\0' && strlen(detail) < sizeof(detail));
    }
    json_decref(body);
    return 0;
}
