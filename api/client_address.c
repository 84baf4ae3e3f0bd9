/* api/client_address.c -- the client's address, and X-Forwarded-For only from trusted peers.
 *
 * Rate limits and connection caps are per client address, so whoever can choose the address
 * can dodge them. A header is the client's to write; only a proxy the operator named may
 * speak for another address, and only for the entry it appended itself. Addresses are kept
 * in one form (IPv4 as IPv4-mapped IPv6) so that a v4 peer on a dual-stack socket and the
 * same peer on a v4 socket count as one.
 */
#include "api/client_address.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define V4_MAPPED_PREFIX_BITS 96

static void from_v4(const uint8_t v4[4], api_address_t *out)
{
    memset(out->bytes, 0, 10);
    out->bytes[10] = out->bytes[11] = 0xff;
    memcpy(out->bytes + 12, v4, 4);
}

static bool is_v4_mapped(const api_address_t *a)
{
    static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return memcmp(a->bytes, prefix, sizeof(prefix)) == 0;
}

bool api_address_from_sockaddr(const struct sockaddr *sa, api_address_t *out)
{
    if (!sa)
        return false;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        from_v4((const uint8_t *)&in->sin_addr, out);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        memcpy(out->bytes, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        return true;
    }
    return false;
}

bool api_address_parse(const char *text, size_t len, api_address_t *out)
{
    char buf[API_ADDRESS_MAX];
    if (len == 0 || len >= sizeof(buf))
        return false;
    memcpy(buf, text, len);
    buf[len] = '\0';
    uint8_t v4[4];
    if (inet_pton(AF_INET, buf, v4) == 1) {
        from_v4(v4, out);
        return true;
    }
    return inet_pton(AF_INET6, buf, out->bytes) == 1;
}

void api_address_format(const api_address_t *a, char *out)
{
    if (is_v4_mapped(a))
        inet_ntop(AF_INET, a->bytes + 12, out, API_ADDRESS_MAX);
    else
        inet_ntop(AF_INET6, a->bytes, out, API_ADDRESS_MAX);
}

static bool prefix_matches(const api_address_t *net, unsigned prefix, const api_address_t *a)
{
    unsigned whole = prefix / 8, rest = prefix % 8;
    if (memcmp(net->bytes, a->bytes, whole) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (net->bytes[whole] & mask) == (a->bytes[whole] & mask);
}

bool api_proxies_contain(const api_proxies_t *p, const api_address_t *a)
{
    for (size_t i = 0; p && i < p->n; i++)
        if (prefix_matches(&p->nets[i].net, p->nets[i].prefix, a))
            return true;
    return false;
}

/* One "address[/prefix]" entry of len bytes. */
static int parse_net(const char *s, size_t len, api_address_t *net, unsigned *prefix)
{
    const char *slash = memchr(s, '/', len);
    size_t addr_len = slash ? (size_t)(slash - s) : len;
    if (!api_address_parse(s, addr_len, net))
        return -EINVAL;
    bool v4 = is_v4_mapped(net) && memchr(s, ':', addr_len) == NULL;
    unsigned max = v4 ? 32 : 128;
    unsigned bits = max;
    if (slash) {
        const char *digits = slash + 1;
        size_t n = len - addr_len - 1;
        if (n == 0 || n > 3)
            return -EINVAL;
        bits = 0;
        for (size_t i = 0; i < n; i++) {
            if (digits[i] < '0' || digits[i] > '9')
                return -EINVAL;
            bits = bits * 10 + (unsigned)(digits[i] - '0');
        }
        if (bits > max)
            return -EINVAL;
    }
    *prefix = v4 ? V4_MAPPED_PREFIX_BITS + bits : bits;
    return 0;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

/* Trims spaces around [*s, *s + *len). */
static void trim(const char **s, size_t *len)
{
    while (*len && is_space(**s)) {
        (*s)++;
        (*len)--;
    }
    while (*len && is_space((*s)[*len - 1]))
        (*len)--;
}

int api_proxies_parse(const char *list, api_proxies_t *out)
{
    memset(out, 0, sizeof(*out));
    const char *p = list;
    while (p && *p) {
        const char *comma = strchr(p, ',');
        const char *entry = p;
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        trim(&entry, &len);
        if (len == 0 || out->n == API_PROXIES_MAX)
            return -EINVAL;
        if (parse_net(entry, len, &out->nets[out->n].net, &out->nets[out->n].prefix) != 0)
            return -EINVAL;
        out->n++;
        p = comma ? comma + 1 : NULL;
    }
    return 0;
}

void api_client_address(const api_proxies_t *p, const api_address_t *peer,
                        const char *forwarded_for, api_address_t *out)
{
    *out = *peer;
    if (!forwarded_for || !api_proxies_contain(p, peer))
        return;
    /* Walk the entries right to left: each trusted hop may speak for the one before it. */
    const char *end = forwarded_for + strlen(forwarded_for);
    while (end > forwarded_for) {
        const char *start = end;
        while (start > forwarded_for && start[-1] != ',')
            start--;
        const char *entry = start;
        size_t len = (size_t)(end - start);
        trim(&entry, &len);
        api_address_t a;
        if (!api_address_parse(entry, len, &a))
            return; /* not an address: keep the last one a trusted hop vouched for */
        *out = a;
        if (!api_proxies_contain(p, &a))
            return;
        end = start > forwarded_for ? start - 1 : start;
    }
}
