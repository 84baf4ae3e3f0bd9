/* api/demo.c -- GET /: the demo page (web/index.html), served with a Content-Security-
 * Policy that allows exactly its own inline script and style and nothing from elsewhere.
 *
 * The page is one file with one <script> and one <style>, so instead of 'unsafe-inline' the
 * policy names their SHA-256 hashes, computed once from the bytes compiled into the binary:
 * an injected script or style (say, through a post's text) does not run. frame-ancestors
 * 'none' keeps the page out of other sites' frames (clickjacking).
 */
#include "api/api.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define HASH_SOURCE_MAX 80 /* "'sha256-" + 44 base64 characters + "'" */

static char policy[512];
static pthread_once_t policy_once = PTHREAD_ONCE_INIT;

static const char *find(const char *hay, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= len; i++)
        if (memcmp(hay + i, needle, n) == 0)
            return hay + i;
    return NULL;
}

/* "'sha256-<base64>'" of the text between the first open and close tag, or "'none'". */
static void hash_source(const char *page, size_t len, const char *open, const char *close,
                        char out[HASH_SOURCE_MAX])
{
    snprintf(out, HASH_SOURCE_MAX, "'none'");
    const char *start = find(page, len, open);
    if (!start)
        return;
    start += strlen(open);
    const char *end = find(start, len - (size_t)(start - page), close);
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    if (!end || !EVP_Digest(start, (size_t)(end - start), digest, &digest_len, EVP_sha256(), NULL))
        return;
    unsigned char b64[64];
    EVP_EncodeBlock(b64, digest, (int)digest_len);
    snprintf(out, HASH_SOURCE_MAX, "'sha256-%s'", b64);
}

static void make_policy(void)
{
    char script[HASH_SOURCE_MAX], style[HASH_SOURCE_MAX];
    hash_source(api_demo_html, api_demo_html_len, "<script>", "</script>", script);
    hash_source(api_demo_html, api_demo_html_len, "<style>", "</style>", style);
    snprintf(policy, sizeof(policy),
             "default-src 'none'; script-src %s; style-src %s; connect-src 'self'; "
             "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
             script, style);
}

void api_system_demo(api_req_t *r)
{
    pthread_once(&policy_once, make_policy);
    api_reply_text(r, 200, "text/html; charset=utf-8", api_demo_html, api_demo_html_len);
    api_reply_header(r, "Content-Security-Policy", policy);
    api_reply_header(r, "X-Frame-Options", "DENY"); /* frame-ancestors for older browsers */
}
