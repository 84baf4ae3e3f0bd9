/* tests/safety/test_units.c -- trusted proxies, X-Forwarded-For, the rate-limit policy
 * syntax and the redaction of Redis passwords: the pure functions behind issue 14's limits. */
#include "api/client_address.h"
#include "api/log.h"
#include "api/rate_limit.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

static api_address_t addr(const char *text)
{
    api_address_t a;
    cr_assert(api_address_parse(text, strlen(text), &a), "%s", text);
    return a;
}

static void expect_client(const api_proxies_t *p, const char *peer, const char *xff,
                          const char *want)
{
    api_address_t peer_addr = addr(peer), got;
    api_client_address(p, &peer_addr, xff, &got);
    char text[API_ADDRESS_MAX];
    api_address_format(&got, text);
    cr_expect_str_eq(text, want, "peer %s, X-Forwarded-For '%s'", peer, xff ? xff : "(none)");
}

Test(client_address, forwarded_for_is_believed_only_from_trusted_proxies)
{
    api_proxies_t p;
    cr_assert_eq(api_proxies_parse(" 10.0.0.0/8 , 127.0.0.4,::1", &p), 0);
    cr_assert_eq(p.n, 3);
    expect_client(&p, "127.0.0.4", "198.51.100.7", "198.51.100.7");
    expect_client(&p, "127.0.0.4", NULL, "127.0.0.4");
    expect_client(&p, "192.0.2.1", "198.51.100.7", "192.0.2.1"); /* not a proxy: ignored */
    /* Rightmost entry that is not a trusted proxy: the left is the client's to forge. */
    expect_client(&p, "10.1.2.3", "6.6.6.6, 198.51.100.7, 10.9.9.9", "198.51.100.7");
    expect_client(&p, "::1", "2001:db8::5", "2001:db8::5");
    /* A garbled client entry leaves the last hop a trusted proxy vouched for. */
    expect_client(&p, "127.0.0.4", "garbage, 10.2.2.2", "10.2.2.2");
    expect_client(&p, "127.0.0.4", "not-an-ip", "127.0.0.4");
    /* v4-mapped and plain v4 are one address. */
    expect_client(&p, "::ffff:127.0.0.4", "203.0.113.9", "203.0.113.9");
}

Test(client_address, bad_proxy_lists_are_refused)
{
    api_proxies_t p;
    const char *bad[] = {"10.0.0.0/33",          "::1/129",  "10.0.0.0/",
                         "10.0.0.0/x",           "1.2.3",    ",",
                         "127.0.0.1,,127.0.0.2", "localhost"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_expect_eq(api_proxies_parse(bad[i], &p), -EINVAL, "'%s'", bad[i]);
    cr_expect_eq(api_proxies_parse("", &p), 0);
    cr_expect_eq(p.n, 0);
}

Test(rate_policy, parses_count_unit_and_burst)
{
    api_rate_policy_t p;
    cr_assert_eq(api_rate_policy_parse("300/h:30", &p), 0);
    cr_expect(p.count == 300 && p.window_s == 3600 && p.burst == 30);
    cr_assert_eq(api_rate_policy_parse("5/s", &p), 0);
    cr_expect(p.count == 5 && p.window_s == 1 && p.burst == 5);
    cr_assert_eq(api_rate_policy_parse("off", &p), 0);
    cr_expect_eq(p.count, 0);
    const char *bad[] = {
        "", "5", "5/", "5/d", "0/s", "5/s:", "5/s:0", "5/s:51", "5/s:2x", "/s", "5/sx"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_expect_eq(api_rate_policy_parse(bad[i], &p), -EINVAL, "'%s'", bad[i]);
}

Test(redaction, a_redis_password_never_survives)
{
    char out[256];
    log_redact_url("redis://:hunter2@10.0.0.5:6379/0", out, sizeof(out));
    cr_expect_str_eq(out, "redis://:***@10.0.0.5:6379/0");
    log_redact_url("redis://app:hunter2@h:1,h2:2", out, sizeof(out));
    cr_expect_str_eq(out, "redis://app:***@h:1,h2:2");
    log_redact_url("redis://127.0.0.1:6379", out, sizeof(out));
    cr_expect_str_eq(out, "redis://127.0.0.1:6379");
    log_redact_url("unix:///run/redis.sock", out, sizeof(out));
    cr_expect_str_eq(out, "unix:///run/redis.sock");
    log_redact_url("redis://:hunter2@h:1", out, 12); /* cut short: still no secret */
    cr_expect(strstr(out, "hunter2") == NULL, "%s", out);
}
