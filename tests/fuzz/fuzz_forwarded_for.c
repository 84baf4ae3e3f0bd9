/* tests/fuzz/fuzz_forwarded_for.c -- who the client is (api/client_address.c): the
 * --trusted-proxies list, address literals and X-Forwarded-For, which any client may send.
 *
 * Input: the proxy list, the peer's address and the header, separated by NUL (a peer that
 * is no address is 127.0.0.1). An address prints and parses back to itself; a parsed proxy
 * list has at most API_PROXIES_MAX nets of at most 128 bits; the client is the peer unless
 * the peer is trusted, and otherwise the peer or an address the header holds; and what a
 * client writes left of the entry the trusted proxies vouch for never changes the answer. */
#include "api/client_address.h"
#include "tests/fuzz/fuzz.h"

static void check_round_trip(const char *text, size_t len)
{
    api_address_t a, again;
    if (!api_address_parse(text, len, &a))
        return;
    char out[API_ADDRESS_MAX];
    api_address_format(&a, out);
    FUZZ_CHECK(strlen(out) < API_ADDRESS_MAX);
    FUZZ_CHECK(api_address_parse(out, strlen(out), &again));
    FUZZ_CHECK(memcmp(a.bytes, again.bytes, 16) == 0);
}

/* Is a one of the header's comma-separated entries (spaces and tabs trimmed)? */
static bool in_header(const char *header, const api_address_t *a)
{
    for (const char *p = header;;) {
        size_t len = strcspn(p, ",");
        const char *e = p;
        size_t n = len;
        while (n && (*e == ' ' || *e == '\t')) {
            e++;
            n--;
        }
        while (n && (e[n - 1] == ' ' || e[n - 1] == '\t'))
            n--;
        api_address_t b;
        if (api_address_parse(e, n, &b) && memcmp(b.bytes, a->bytes, 16) == 0)
            return true;
        if (!p[len])
            return false;
        p += len + 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *list = fuzz_take_field(&data, &size);
    char *peer_text = fuzz_take_field(&data, &size);
    char *header = fuzz_take_field(&data, &size);
    api_proxies_t proxies;
    if (api_proxies_parse(list, &proxies) == 0) {
        FUZZ_CHECK(proxies.n <= API_PROXIES_MAX);
        for (size_t i = 0; i < proxies.n; i++)
            FUZZ_CHECK(proxies.nets[i].prefix <= 128);
    } else {
        proxies.n = 0;
    }
    api_address_t peer;
    if (!api_address_parse(peer_text, strlen(peer_text), &peer))
        FUZZ_CHECK(api_address_parse("127.0.0.1", 9, &peer));
    check_round_trip(peer_text, strlen(peer_text));
    check_round_trip(header, strlen(header));

    api_address_t client, forged;
    api_client_address(&proxies, &peer, header, &client);
    bool same_as_peer = memcmp(client.bytes, peer.bytes, 16) == 0;
    if (!api_proxies_contain(&proxies, &peer))
        FUZZ_CHECK(same_as_peer);
    FUZZ_CHECK(same_as_peer || in_header(header, &client));
    api_address_t none;
    api_client_address(&proxies, &peer, NULL, &none);
    FUZZ_CHECK(memcmp(none.bytes, peer.bytes, 16) == 0);

    /* An entry the client put in front of the header: only read when every hop right of it
     * was a trusted proxy, so it changes nothing once the answer is an untrusted address. */
    if (!api_proxies_contain(&proxies, &client) && header[0]) {
        size_t n = strlen(header);
        char *longer = malloc(n + 16);
        FUZZ_CHECK(longer != NULL);
        snprintf(longer, n + 16, "203.0.113.9,%s", header);
        api_client_address(&proxies, &peer, longer, &forged);
        FUZZ_CHECK(memcmp(forged.bytes, client.bytes, 16) == 0);
        free(longer);
    }
    free(list);
    free(peer_text);
    free(header);
    return 0;
}
