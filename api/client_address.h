/* api/client_address.h -- who the client is: the peer's address, or, behind a reverse proxy
 * the operator trusts (--trusted-proxies), the address that proxy saw (X-Forwarded-For).
 * Thread: any (the proxy list is immutable once parsed). */
#ifndef TIDINGS_API_CLIENT_ADDRESS_H
#define TIDINGS_API_CLIENT_ADDRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define API_PROXIES_MAX 32
/* Room for any address as text (INET6_ADDRSTRLEN plus the terminator). */
#define API_ADDRESS_MAX 48

/* An address normalised for comparison: IPv4 as the IPv4-mapped IPv6 form. */
typedef struct api_address_s {
    uint8_t bytes[16];
} api_address_t;

typedef struct api_proxies_s {
    struct {
        api_address_t net;
        unsigned prefix; /* bits of net that must match, counted in the IPv6 form */
    } nets[API_PROXIES_MAX];
    size_t n;
} api_proxies_t;

/* Parses "127.0.0.1,10.0.0.0/8,::1" (spaces allowed around commas; "" for none) into out.
 * Returns 0 or -EINVAL (a malformed entry, a prefix too long, more than API_PROXIES_MAX). */
int api_proxies_parse(const char *list, api_proxies_t *out);

/* Fills out from a socket address; false for a family that is not IPv4 or IPv6. */
bool api_address_from_sockaddr(const struct sockaddr *sa, api_address_t *out);
/* Parses an IPv4 or IPv6 literal (no port, no brackets); false when it is not one. */
bool api_address_parse(const char *text, size_t len, api_address_t *out);
/* Writes the address as text ("127.0.0.1", "::1") into out (API_ADDRESS_MAX bytes). */
void api_address_format(const api_address_t *a, char *out);

bool api_proxies_contain(const api_proxies_t *p, const api_address_t *a);

/* The client's address: the peer, unless the peer is a trusted proxy and forwarded_for (an
 * X-Forwarded-For value, may be NULL) names one; then the rightmost entry that is not itself
 * a trusted proxy (proxies append what they saw; entries left of it are the client's to
 * forge). Where the client's entry is not an address, the last trusted hop is the client. */
void api_client_address(const api_proxies_t *p, const api_address_t *peer,
                        const char *forwarded_for, api_address_t *out);

#endif
