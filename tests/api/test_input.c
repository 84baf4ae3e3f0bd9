/* tests/api/test_input.c -- api/input.c's checks of client input, called directly: each
 * refusal writes its detail, each acceptance its values, and nothing depends on a request. */
#include "api/input.h"

#include <criterion/criterion.h>
#include <string.h>

TestSuite(input, .timeout = 10);

static json_t *object(const char *text, const char *const *fields, char *detail)
{
    return api_input_object(text, strlen(text), fields, detail, API_DETAIL_MAX);
}

Test(input, a_body_is_one_json_object_of_known_fields)
{
    static const char *const fields[] = {"text", "reply_to", NULL};
    char detail[API_DETAIL_MAX];
    json_t *ok = object("{\"text\":\"a\",\"reply_to\":null}", fields, detail);
    cr_assert(ok);
    json_decref(ok);
    static const struct {
        const char *body, *detail;
    } bad[] = {
        {"", "the body is not valid JSON"},
        {"{\"text\":", "the body is not valid JSON"},
        {"{\"text\":\"a\",\"text\":\"b\"}", "the body is not valid JSON"},
        {"{\"text\":\"\xff\"}", "the body is not valid JSON"},
        {"[1]", "the body must be a JSON object"},
        {"\"text\"", "the body is not valid JSON"}, /* jansson wants an array or object */
        {"{\"text\":\"a\",\"extra\":1}", "unknown field 'extra'"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        detail[0] = '\0';
        cr_expect_null(object(bad[i].body, fields, detail), "case %zu", i);
        cr_expect(strncmp(detail, bad[i].detail, strlen(bad[i].detail)) == 0, "case %zu: %s", i,
                  detail);
    }
    cr_expect_null(api_input_object(NULL, 0, fields, detail, sizeof(detail)));
    cr_expect(api_input_is_json("application/json; charset=utf-8"));
    cr_expect(api_input_is_json("Application/JSON"));
    cr_expect(!api_input_is_json("application/jsonx") && !api_input_is_json(NULL) &&
              !api_input_is_json("text/plain"));
}

Test(input, page_parameters_have_defaults_and_bounds)
{
    char detail[API_DETAIL_MAX];
    size_t limit;
    uint64_t cursor;
    cr_assert(api_input_page(NULL, NULL, &limit, &cursor, detail, sizeof(detail)));
    cr_expect(limit == API_LIMIT_DEFAULT && cursor == 0);
    cr_assert(api_input_page("100", "374267423817792", &limit, &cursor, detail, sizeof(detail)));
    cr_expect(limit == 100 && cursor == 374267423817792ULL);
    static const char *const bad_limits[] = {"0", "101", "", "-1", "1.5", "01", "ten"};
    for (size_t i = 0; i < sizeof(bad_limits) / sizeof(bad_limits[0]); i++) {
        cr_expect(!api_input_page(bad_limits[i], NULL, &limit, &cursor, detail, sizeof(detail)));
        cr_expect_str_eq(detail, "limit must be an integer from 1 to 100");
    }
    static const char *const bad_cursors[] = {"0", "", "9007199254740992", "x1"};
    for (size_t i = 0; i < sizeof(bad_cursors) / sizeof(bad_cursors[0]); i++) {
        cr_expect(!api_input_page("5", bad_cursors[i], &limit, &cursor, detail, sizeof(detail)));
        cr_expect_str_eq(detail, "cursor is not one this server handed out");
    }
}

Test(input, types_are_a_comma_separated_list_of_known_names)
{
    char detail[API_DETAIL_MAX];
    unsigned types;
    cr_assert(api_input_types(NULL, &types, detail, sizeof(detail)));
    cr_expect_eq(types, (1u << STORAGE_NOTIFICATION_TYPES) - 1);
    cr_assert(api_input_types("like,like,reply", &types, detail, sizeof(detail)));
    cr_expect_eq(__builtin_popcount(types), 2);
    static const char *const bad[] = {"", ",", "like,", ",like", "Like", "like ,reply", "likes"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        detail[0] = '\0';
        cr_expect(!api_input_types(bad[i], &types, detail, sizeof(detail)), "'%s'", bad[i]);
        cr_expect(strstr(detail, "comma-separated") != NULL);
    }
}

Test(input, route_bodies_are_checked_field_by_field)
{
    static const char *const any[] = {"text",         "reply_to", "up_to", "handle",
                                      "display_name", "bio",      NULL};
    char detail[API_DETAIL_MAX];
    const char *text, *handle, *name, *bio;
    uint64_t id;
    json_t *b = object("{\"text\":\" \\u200b\\u3000\"}", any, detail);
    cr_expect(!api_input_post(b, &text, &id, detail, sizeof(detail)));
    cr_expect_str_eq(detail, "text must be 1 to 5000 characters and not blank");
    json_decref(b);
    b = object("{\"text\":\"hi\",\"reply_to\":\"42\"}", any, detail);
    cr_expect(api_input_post(b, &text, &id, detail, sizeof(detail)));
    cr_expect(strcmp(text, "hi") == 0 && id == 42);
    json_decref(b);
    b = object("{\"text\":\"hi\",\"reply_to\":42}", any, detail);
    cr_expect(!api_input_post(b, &text, &id, detail, sizeof(detail)));
    cr_expect_str_eq(detail, "reply_to must be a post id string or null");
    json_decref(b);
    b = object("{\"up_to\":\"7\"}", any, detail);
    cr_expect(api_input_read_mark(b, &id, detail, sizeof(detail)) && id == 7);
    json_decref(b);
    b = object("{}", any, detail);
    cr_expect(!api_input_read_mark(b, &id, detail, sizeof(detail)));
    cr_expect_str_eq(detail, "up_to is required");
    cr_expect(!api_input_user(b, &handle, &name, detail, sizeof(detail)));
    cr_expect_str_eq(detail, "handle is required");
    cr_expect(!api_input_me(b, &name, &bio, detail, sizeof(detail)));
    cr_expect_str_eq(detail, "give display_name, bio or both");
    json_decref(b);
    b = object("{\"handle\":\"ana_1\",\"display_name\":null}", any, detail);
    cr_expect(api_input_user(b, &handle, &name, detail, sizeof(detail)));
    cr_expect(strcmp(handle, "ana_1") == 0 && name == NULL);
    json_decref(b);
    b = object("{\"handle\":\"ana\",\"display_name\":\"a\\u0085\"}", any, detail);
    cr_expect(!api_input_user(b, &handle, &name, detail, sizeof(detail)));
    json_decref(b);
    b = object("{\"display_name\":\"a\\u200bb\",\"bio\":\"x\"}", any, detail);
    cr_expect(!api_input_me(b, &name, &bio, detail, sizeof(detail)), "invisible in a name");
    json_decref(b);
    b = object("{\"bio\":\"one\\ntwo\"}", any, detail);
    cr_expect(api_input_me(b, &name, &bio, detail, sizeof(detail)) && name == NULL);
    json_decref(b);
    cr_expect(api_input_idempotency_key("6c1f-a") && !api_input_idempotency_key("") &&
              !api_input_idempotency_key("a b"));
}
