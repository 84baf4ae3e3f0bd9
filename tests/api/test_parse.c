/* tests/api/test_parse.c -- api_parse_id and api_utf8_length. */
#include "api/api.h"
#include "api/utf8.h"

#include <criterion/criterion.h>

TestSuite(parse, .timeout = 10);

Test(parse, ids_are_plain_decimal_digits)
{
    cr_expect_eq(api_parse_id("1"), 1);
    cr_expect_eq(api_parse_id("42"), 42);
    cr_expect_eq(api_parse_id("374267957444672"), 374267957444672ULL);
    cr_expect_eq(api_parse_id("1234567890123456"), 1234567890123456ULL);
}

Test(parse, largest_id_is_below_2_pow_53)
{
    cr_expect_eq(api_parse_id("9007199254740991"), 9007199254740991ULL); /* 2^53 - 1 */
    cr_expect_eq(api_parse_id("9007199254740992"), 0);                   /* 2^53 */
    cr_expect_eq(api_parse_id("9999999999999999"), 0);
}

Test(parse, rejects_zero_and_leading_zeros)
{
    cr_expect_eq(api_parse_id("0"), 0);
    cr_expect_eq(api_parse_id("00"), 0);
    cr_expect_eq(api_parse_id("01"), 0);
    cr_expect_eq(api_parse_id("0042"), 0);
}

Test(parse, rejects_more_than_16_digits)
{
    cr_expect_eq(api_parse_id("10000000000000000"), 0);     /* 17 digits */
    cr_expect_eq(api_parse_id("12345678901234567890"), 0);  /* 20 digits */
    cr_expect_eq(api_parse_id("184467440737095516160"), 0); /* overflows 64 bits */
}

Test(parse, rejects_empty_null_signs_spaces_and_letters)
{
    static const char *const bad[] = {
        "", "+1", "-1", " 1", "1 ", "1a", "a1", "0x1f", "1e3", "1.0", "1,000", "\xef\xbc\x91",
    };
    cr_expect_eq(api_parse_id(NULL), 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_expect_eq(api_parse_id(bad[i]), 0, "'%s' was accepted", bad[i]);
}

Test(parse, utf8_length_counts_code_points)
{
    cr_expect_eq(api_utf8_length(""), 0);
    cr_expect_eq(api_utf8_length("abc"), 3);
    cr_expect_eq(api_utf8_length("\xc3\xa9"), 1);         /* é: 2 bytes */
    cr_expect_eq(api_utf8_length("\xe2\x82\xac"), 1);     /* €: 3 bytes */
    cr_expect_eq(api_utf8_length("\xf0\x9f\x98\x80"), 1); /* 😀: 4 bytes */
    cr_expect_eq(api_utf8_length("a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z"), 5);
    cr_expect_eq(api_utf8_length("e\xcc\x81"), 2); /* e + combining acute: two code points */
}
