/* tests/api/test_token.c -- api_token_new: the token format and its SHA-256. */
#include "api/api.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

TestSuite(token, .timeout = 10);

static void hex(const uint8_t in[32], char out[65])
{
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", in[i]);
}

Test(token, format_is_prefix_user_token_id_and_43_base64url_characters)
{
    char token[API_TOKEN_MAX];
    uint8_t hash[32];
    cr_assert_eq(api_token_new(374267957444672ULL, 374267957444999ULL, token, hash), 0);
    const char *prefix = "tdg_374267957444672_374267957444999_";
    cr_assert_eq(strncmp(token, prefix, strlen(prefix)), 0, "token %s", token);
    const char *secret = token + strlen(prefix);
    cr_expect_eq(strlen(secret), 43, "secret part '%s'", secret);
    cr_expect_eq(strspn(secret, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
                 strlen(secret), "secret part '%s' is not base64url", secret);
}

Test(token, hash_is_the_sha256_of_the_token)
{
    char token[API_TOKEN_MAX], want[65], got[65];
    uint8_t hash[32];
    cr_assert_eq(api_token_new(1, 2, token, hash), 0);
    api_fingerprint(token, strlen(token), want);
    hex(hash, got);
    cr_expect_str_eq(got, want);
}

Test(token, every_token_is_new)
{
    char a[API_TOKEN_MAX], b[API_TOKEN_MAX];
    uint8_t ha[32], hb[32];
    cr_assert_eq(api_token_new(5, 6, a, ha), 0);
    cr_assert_eq(api_token_new(5, 6, b, hb), 0);
    cr_expect_str_neq(a, b);
    cr_expect_arr_neq(ha, hb, 32);
}

Test(token, fingerprint_is_hex_sha256)
{
    char out[65];
    api_fingerprint("", 0, out);
    cr_expect_str_eq(out, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    api_fingerprint("abc", 3, out);
    cr_expect_str_eq(out, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}
