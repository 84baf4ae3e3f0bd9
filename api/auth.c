/* api/auth.c -- bearer tokens: creation, verification, and a short-lived cache.
 *
 * A token is "tdg_<user id>_<token id>_<43 base64url characters>": 256 random bits from
 * getrandom(2) plus the ids, so verification reads one token's record (storage/tokens.h)
 * with its user's instead of searching an index. A token issued before users held several,
 * "tdg_<user id>_<secret>", is still verified against the user record's token field; its
 * token id is the user's own.
 * Redis holds only SHA-256(token); verification hashes the presented token and compares
 * the digests in constant time (CRYPTO_memcmp). Verified digests are cached for a few
 * seconds, which takes a Redis round trip off every authenticated request; a cache hit
 * still requires the full digest to match.
 */
#include "api/api.h"
#include "storage/tickets.h"
#include "storage/tokens.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#define CACHE_SLOTS 4096
#define CACHE_TTL_MS 10000

typedef struct {
    uint8_t digest[32];
    api_caller_t user;
    uint64_t token_id;
    uint64_t token_expires_ms; /* wall clock; 0: never */
    uint64_t expires_ms;       /* monotonic: the cache entry's own end */
} cache_entry_t;

struct api_auth_cache_s {
    pthread_mutex_t mu;
    cache_entry_t slots[CACHE_SLOTS];
};

/* A token's last_used is written at most this often: by a verification that missed the
 * cache and found the stored time older than this. */
#define LAST_USED_GRAIN_MS 60000

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int api_auth_create(api_t *api)
{
    api->auth_cache = calloc(1, sizeof(*api->auth_cache));
    if (!api->auth_cache)
        return -ENOMEM;
    pthread_mutex_init(&api->auth_cache->mu, NULL);
    return api_seen_create(api);
}

void api_auth_destroy(api_t *api)
{
    api_seen_destroy(api);
    if (api->auth_cache) {
        pthread_mutex_destroy(&api->auth_cache->mu);
        free(api->auth_cache);
        api->auth_cache = NULL;
    }
}

static void sha256(const char *data, size_t len, uint8_t out[32])
{
    unsigned int n = 32;
    EVP_Digest(data, len, out, &n, EVP_sha256(), NULL);
}

static void base64url(char *out, const uint8_t *in, size_t len)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        acc = (acc << 8) | in[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[o++] = abc[(acc >> bits) & 63];
        }
    }
    if (bits)
        out[o++] = abc[(acc << (6 - bits)) & 63];
    out[o] = '\0';
}

int api_token_new(uint64_t user, uint64_t token_id, char token[API_TOKEN_MAX], uint8_t hash[32])
{
    uint8_t secret[32];
    if (getrandom(secret, sizeof(secret), 0) != (ssize_t)sizeof(secret))
        return -EIO;
    char encoded[48];
    base64url(encoded, secret, sizeof(secret));
    snprintf(token, API_TOKEN_MAX, "tdg_%llu_%llu_%s", (unsigned long long)user,
             (unsigned long long)token_id, encoded);
    sha256(token, strlen(token), hash);
    return 0;
}

/* The decimal id of the n characters at p, or 0. */
static uint64_t id_at(const char *p, size_t n)
{
    if (n < 1 || n > STORAGE_ID_MAX_DIGITS)
        return 0;
    char digits[STORAGE_ID_MAX_DIGITS + 1];
    memcpy(digits, p, n);
    digits[n] = '\0';
    return api_parse_id(digits);
}

/* The user id inside a well-formed token, or 0; *token_id is its token id (the user's id for
 * the pre-device form). The secret is base64url, which has '_' too: it is the last 43. */
static uint64_t token_user(const char *token, uint64_t *token_id)
{
    size_t len = strlen(token);
    *token_id = 0;
    if (strncmp(token, "tdg_", 4) != 0 || len < 4 + 1 + 44 || token[len - 44] != '_')
        return 0;
    const char *ids = token + 4, *end = token + len - 44;
    const char *sep = memchr(ids, '_', (size_t)(end - ids));
    uint64_t user = id_at(ids, (size_t)((sep ? sep : end) - ids));
    *token_id = sep ? id_at(sep + 1, (size_t)(end - sep - 1)) : user;
    return *token_id ? user : 0;
}

static bool cache_get(struct api_auth_cache_s *c, const uint8_t digest[32], api_caller_t *out,
                      uint64_t *token_id)
{
    cache_entry_t *e = &c->slots[(digest[0] | digest[1] << 8) % CACHE_SLOTS];
    pthread_mutex_lock(&c->mu);
    bool hit = e->expires_ms > monotonic_ms() && CRYPTO_memcmp(e->digest, digest, 32) == 0 &&
               (e->token_expires_ms == 0 || e->token_expires_ms > wall_ms());
    if (hit) {
        *out = e->user;
        *token_id = e->token_id;
    }
    pthread_mutex_unlock(&c->mu);
    return hit;
}

static void cache_put(struct api_auth_cache_s *c, const uint8_t digest[32],
                      const api_caller_t *user, uint64_t token_id, uint64_t token_expires_ms)
{
    cache_entry_t *e = &c->slots[(digest[0] | digest[1] << 8) % CACHE_SLOTS];
    pthread_mutex_lock(&c->mu);
    memcpy(e->digest, digest, 32);
    e->user = *user;
    e->token_id = token_id;
    e->token_expires_ms = token_expires_ms;
    e->expires_ms = monotonic_ms() + CACHE_TTL_MS;
    pthread_mutex_unlock(&c->mu);
}

void api_auth_forget(api_t *api, uint64_t user, uint64_t token_id)
{
    struct api_auth_cache_s *c = api->auth_cache;
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < CACHE_SLOTS; i++) {
        cache_entry_t *e = &c->slots[i];
        if (e->user.id == user && (token_id == 0 || e->token_id == token_id))
            e->expires_ms = 0;
    }
    pthread_mutex_unlock(&c->mu);
}

/* The token of the Authorization: Bearer header, or NULL after setting a 401 problem. */
static const char *bearer_token(api_req_t *r)
{
    const char *h = api_header(r, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h) {
        api_problem(r, API_UNAUTHORIZED, "an Authorization: Bearer token is required");
        return NULL;
    }
    if (strncasecmp(h, "Bearer ", 7) != 0) {
        api_problem(r, API_UNAUTHORIZED, "the Authorization header must use the Bearer scheme");
        return NULL;
    }
    const char *token = h + 7;
    while (*token == ' ')
        token++;
    return token;
}

bool api_authenticate(api_req_t *r)
{
    const char *token = bearer_token(r);
    return token && api_authenticate_token(r, token);
}

bool api_authenticate_operator(api_req_t *r, const char *secret)
{
    const char *token = bearer_token(r);
    if (!token)
        return false;
    /* Digests have one length, so the comparison takes as long whatever was sent. */
    uint8_t got[32], want[32];
    sha256(token, strlen(token), got);
    sha256(secret, strlen(secret), want);
    if (CRYPTO_memcmp(got, want, sizeof(got)) != 0) {
        api_problem(r, API_UNAUTHORIZED, "the bearer token is not the operators' token");
        return false;
    }
    return true;
}

static void caller_from_profile(api_caller_t *caller, const storage_user_t *u)
{
    caller->id = u->id;
    memcpy(caller->handle, u->handle, sizeof(caller->handle));
    memcpy(caller->display_name, u->display_name, sizeof(caller->display_name));
}

/* Reads the stored digest of token token_id of user (its own record, or the user record's
 * for the pre-device form) with the caller's profile into r->caller, and records a use now
 * and then. */
static int token_credentials(api_req_t *r, uint64_t user, uint64_t token_id, uint8_t stored[32],
                             uint64_t *token_expires_ms)
{
    *token_expires_ms = 0;
    storage_user_t profile;
    storage_token_t tok;
    int rc = token_id == user ? storage_user_credentials(r->api->storage, user, stored, &profile)
                              : storage_token_credentials(r->api->storage, user, token_id, stored,
                                                          &tok, &profile);
    if (rc)
        return rc;
    caller_from_profile(&r->caller, &profile);
    if (token_id == user)
        return 0;
    *token_expires_ms = tok.expires_ms;
    uint64_t now = wall_ms();
    /* Best effort: a lost write only leaves last_used_at a minute older. */
    if (now >= tok.last_used_ms + LAST_USED_GRAIN_MS)
        (void)storage_token_touch(r->api->storage, user, token_id, now);
    return 0;
}

bool api_authenticate_token(api_req_t *r, const char *token)
{
    uint64_t token_id, id = token_user(token, &token_id);
    if (!id) {
        api_problem(r, API_UNAUTHORIZED, "the bearer token is malformed");
        return false;
    }
    uint8_t digest[32], stored[32];
    sha256(token, strlen(token), digest);
    if (cache_get(r->api->auth_cache, digest, &r->caller, &r->caller_token)) {
        api_seen(r);
        return true;
    }
    uint64_t token_expires_ms;
    int rc = token_credentials(r, id, token_id, stored, &token_expires_ms);
    bool matches = rc == 0 && CRYPTO_memcmp(stored, digest, 32) == 0;
    bool expired = token_expires_ms && token_expires_ms <= wall_ms();
    if (matches && !expired) {
        r->caller_token = token_id;
        cache_put(r->api->auth_cache, digest, &r->caller, token_id, token_expires_ms);
        api_seen(r);
        return true;
    }
    memset(&r->caller, 0, sizeof(r->caller));
    if (matches)
        api_problem(r, API_UNAUTHORIZED, "the bearer token has expired");
    else if (rc == 0 || rc == -ENOENT)
        api_problem(r, API_UNAUTHORIZED, "the bearer token is not valid");
    else
        api_storage_problem(r, rc, "user");
    return false;
}

/* ---- stream tickets ---------------------------------------------------------------------- */

int api_ticket_new(uint64_t user, char ticket[API_TOKEN_MAX], uint8_t hash[32])
{
    uint8_t secret[32];
    if (getrandom(secret, sizeof(secret), 0) != (ssize_t)sizeof(secret))
        return -EIO;
    char encoded[48];
    base64url(encoded, secret, sizeof(secret));
    snprintf(ticket, API_TOKEN_MAX, "tkt_%llu_%s", (unsigned long long)user, encoded);
    sha256(ticket, strlen(ticket), hash);
    return 0;
}

bool api_authenticate_ticket(api_req_t *r, const char *ticket)
{
    size_t len = strlen(ticket);
    uint64_t user = 0;
    if (strncmp(ticket, "tkt_", 4) == 0 && len > 4 + 44 && ticket[len - 44] == '_')
        user = id_at(ticket + 4, len - 4 - 44);
    if (!user) {
        api_problem(r, API_UNAUTHORIZED, "the ticket is malformed");
        return false;
    }
    uint8_t digest[32];
    sha256(ticket, len, digest);
    uint64_t token_id;
    int rc = storage_ticket_use(r->api->storage, user, digest, &token_id);
    storage_user_t profile = {0};
    if (rc == 0)
        rc = storage_profiles_get(r->api->storage, &user, 1, &profile);
    if (rc == 0 && profile.id == user) {
        caller_from_profile(&r->caller, &profile);
        r->caller_token = token_id;
        api_seen(r);
        return true;
    }
    memset(&r->caller, 0, sizeof(r->caller));
    if (rc == 0 || rc == -ENOENT)
        api_problem(r, API_UNAUTHORIZED, "the ticket is not valid: used, expired or unknown");
    else
        api_storage_problem(r, rc, "user");
    return false;
}

void api_auth_forget_user(api_t *api, uint64_t user)
{
    struct api_auth_cache_s *c = api->auth_cache;
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < CACHE_SLOTS; i++)
        if (c->slots[i].user.id == user)
            c->slots[i].expires_ms = 0;
    pthread_mutex_unlock(&c->mu);
}

void api_fingerprint(const char *data, size_t len, char out[65])
{
    static const char digits[] = "0123456789abcdef";
    uint8_t d[32];
    sha256(data, len, d);
    for (int i = 0; i < 32; i++) {
        out[2 * i] = digits[d[i] >> 4];
        out[2 * i + 1] = digits[d[i] & 15];
    }
    out[64] = '\0';
}
