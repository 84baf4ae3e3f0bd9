/* tests/api/test_mentions.c -- api_mentions_parse: where a mention starts and ends. */
#include "api/api.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

TestSuite(mentions, .timeout = 10);

#define CAP 20
typedef char handles_t[CAP][STORAGE_HANDLE_MAX + 1];

static size_t parse(const char *text, handles_t out, size_t max)
{
    memset(out, 0, sizeof(handles_t));
    return api_mentions_parse(text, out, max);
}

Test(mentions, at_the_start_of_the_text)
{
    handles_t h;
    cr_assert_eq(parse("@alice hello", h, CAP), 1);
    cr_expect_str_eq(h[0], "alice");
}

Test(mentions, after_spaces_and_punctuation)
{
    handles_t h;
    cr_assert_eq(parse("hi @bob, (@carol) x.@dave \"@eve\" -@frank\n@gus!", h, CAP), 6);
    cr_expect_str_eq(h[0], "bob");
    cr_expect_str_eq(h[1], "carol");
    cr_expect_str_eq(h[2], "dave");
    cr_expect_str_eq(h[3], "eve");
    cr_expect_str_eq(h[4], "frank");
    cr_expect_str_eq(h[5], "gus");
}

Test(mentions, handle_stops_at_the_first_non_handle_character)
{
    handles_t h;
    cr_assert_eq(parse("@bob's @a-b @under_score_9.", h, CAP), 3);
    cr_expect_str_eq(h[0], "bob");
    cr_expect_str_eq(h[1], "a");
    cr_expect_str_eq(h[2], "under_score_9");
}

Test(mentions, email_like_text_is_not_a_mention)
{
    handles_t h;
    cr_expect_eq(parse("a@b", h, CAP), 0);
    cr_expect_eq(parse("write to bob@example.com", h, CAP), 0);
    cr_expect_eq(parse("x_@y 9@z", h, CAP), 0);
}

Test(mentions, bare_at_signs_are_not_mentions)
{
    handles_t h;
    cr_expect_eq(parse("@", h, CAP), 0);
    cr_expect_eq(parse("@ bob", h, CAP), 0);
    cr_expect_eq(parse("a @ b @. @!", h, CAP), 0);
    cr_expect_eq(parse("", h, CAP), 0);
}

Test(mentions, thirty_characters_is_a_handle_thirty_one_is_not)
{
    handles_t h;
    const char *thirty = "@abcdefghijklmnopqrstuvwxyz0123";
    const char *thirty_one = "@abcdefghijklmnopqrstuvwxyz01234";
    cr_assert_eq(strlen(thirty), 31);
    cr_assert_eq(parse(thirty, h, CAP), 1);
    cr_expect_str_eq(h[0], thirty + 1);
    cr_expect_eq(parse(thirty_one, h, CAP), 0);
    cr_expect_eq(parse("@abcdefghijklmnopqrstuvwxyz01234 and @ok", h, CAP), 1);
    cr_expect_str_eq(h[0], "ok");
}

Test(mentions, duplicates_collapse_case_insensitively_keeping_the_first)
{
    handles_t h;
    cr_assert_eq(parse("@Alice @alice @ALICE @bob @Bob", h, CAP), 2);
    cr_expect_str_eq(h[0], "Alice");
    cr_expect_str_eq(h[1], "bob");
}

Test(mentions, stops_at_max_in_order_of_appearance)
{
    handles_t h;
    cr_assert_eq(parse("@a @b @a @c @d @e", h, 3), 3);
    cr_expect_str_eq(h[0], "a");
    cr_expect_str_eq(h[1], "b");
    cr_expect_str_eq(h[2], "c");
    cr_expect_eq(parse("@a @b", h, 0), 0);
}

Test(mentions, many_distinct_handles_are_capped_at_the_array)
{
    char text[1024] = "";
    for (int i = 0; i < 30; i++) {
        char one[16];
        snprintf(one, sizeof(one), "@u%d ", i);
        strcat(text, one);
    }
    handles_t h;
    cr_assert_eq(parse(text, h, CAP), CAP);
    cr_expect_str_eq(h[0], "u0");
    cr_expect_str_eq(h[CAP - 1], "u19");
}

Test(mentions, after_multibyte_characters)
{
    handles_t h;
    cr_assert_eq(parse("caf\xc3\xa9 @zoe \xf0\x9f\x98\x80@yan", h, CAP), 2);
    cr_expect_str_eq(h[0], "zoe");
    cr_expect_str_eq(h[1], "yan");
}
