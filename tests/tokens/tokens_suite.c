/* tests/tokens/tokens_suite.c -- the tokens suite's own helpers (tokens_suite.h). */
#include "tests/tokens/tokens_suite.h"

#include <criterion/criterion.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *tk_expect_problem(int port, const char *token, const char *method, const char *path,
                        const char *body, int status)
{
    ts_resp_t r;
    ts_http(port, method, path, token, NULL, body, &r);
    cr_expect_eq(r.status, status, "%s %s %s: expected %d, got %d: %s", method, path,
                 body ? body : "", status, r.status, r.body);
    char ct[96], www[96];
    const char *got = ts_resp_header(&r, "Content-Type", ct, sizeof(ct));
    cr_expect(got && strncmp(got, "application/problem+json", 24) == 0, "%s %s: Content-Type %s",
              method, path, got ? got : "(none)");
    if (status == 401)
        cr_expect(ts_resp_header(&r, "WWW-Authenticate", www, sizeof(www)) &&
                      strncmp(www, "Bearer", 6) == 0,
                  "%s %s: a 401 without WWW-Authenticate: Bearer", method, path);
    json_t *j = ts_resp_json(&r);
    cr_expect_eq(ts_int(j, "status"), status, "%s %s: the problem's status", method, path);
    cr_expect(ts_str(j, "type")[0] && ts_str(j, "title")[0], "%s %s: type and title", method, path);
    char *detail = strdup(ts_str(j, "detail"));
    json_decref(j);
    ts_resp_free(&r);
    return detail;
}

json_t *tk_create(int port, const char *token, const char *name, long expires_in, char *text)
{
    char body[256];
    if (expires_in)
        snprintf(body, sizeof(body), "{\"name\":\"%s\",\"expires_in\":%ld}", name, expires_in);
    else
        snprintf(body, sizeof(body), "{\"name\":\"%s\"}", name);
    json_t *t = ts_call(port, "POST", "/v1/tokens", token, body, 201);
    if (text)
        snprintf(text, 128, "%s", ts_str(t, "token"));
    return t;
}

json_t *tk_list(int port, const char *token)
{
    json_t *page = ts_call(port, "GET", "/v1/tokens", token, NULL, 200);
    json_t *items = json_incref(json_object_get(page, "items"));
    cr_assert(json_is_array(items), "GET /v1/tokens: no items");
    json_decref(page);
    return items;
}

json_t *tk_find(json_t *items, const char *id)
{
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it) if (strcmp(ts_str(it, "id"), id) == 0) return it;
    return NULL;
}

int tk_me_status(int port, const char *token)
{
    ts_resp_t r;
    ts_http(port, "GET", "/v1/me", token, NULL, NULL, &r);
    int status = r.status;
    ts_resp_free(&r);
    return status;
}

void tk_sha256_hex(const char *text, char out[65])
{
    uint8_t d[32];
    unsigned n = 32;
    EVP_Digest(text, strlen(text), d, &n, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}
